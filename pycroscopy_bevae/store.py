"""The trained-model store: a beta-VAE, its snapshots and checkpoints in an HDF5 group.

:func:`write_beta_vae` writes what :func:`load_beta_vae` reads back. It sits above
``io/`` (file formats, which know no learning) and ``models/``, and imports both.
Only JSON text and numeric arrays are written and read (no pickle, no code). Reading
checks the stored configuration and the size of every array against bounds derived from
the results' own datasets before anything is built or read, so a damaged or hostile
group is refused in well under a second with little memory.
"""

from __future__ import annotations

import json
import warnings

import h5py
import numpy as np

from .exceptions import BEPSFormatError, DataQualityWarning, ParameterError
from .io.usid import as_text, write_attrs
from .models.network_config import NetworkConfig
from .models.schedule import RelaxSchedule
from .models.selection import Snapshot
from .models.vae import BetaVAE
from .params import Integer, Real, check_optional_ints
from .preprocessing import MultiScaler

__all__ = ["load_beta_vae", "numeric", "read_arrays", "read_checkpoint", "read_scaler",
           "read_snapshots", "resumable_state", "write_arrays", "write_beta_vae",
           "write_checkpoint", "write_snapshot"]


def write_beta_vae(grp: h5py.Group, vae: BetaVAE) -> None:
    """Write a trained beta-VAE into a results group: ``Training_History``,
    ``Embedding_Snapshots`` (latent means of every snapshot; epochs, betas, losses and
    active-channel counts in its attributes) and ``Model/`` (JSON config, the selected
    snapshot's weights with its inactive channels masked, as the model uses
    them). The snapshots' own weights are written as training goes
    (:func:`write_snapshot`). :func:`load_beta_vae` reads it back.

    Examples
    --------
    >>> import h5py
    >>> from pycroscopy_bevae.models import BetaVAE
    >>> X = np.random.default_rng(0).normal(size=(20, 16, 1))
    >>> vae = BetaVAE(units=4, embedding_dim=4, latent_dim=2, epochs=2, prime_epochs=1,
    ...               step_epochs=1, round_updates=0, relax_epochs=0,
    ...               random_state=0).fit(X, progress=False)
    >>> with h5py.File("model.h5", "w", driver="core", backing_store=False) as f:
    ...     write_beta_vae(f.create_group("Beta_VAE_000"), vae)
    ...     sorted(f["Beta_VAE_000"]), f["Beta_VAE_000/Embedding_Snapshots"].shape
    (['Embedding_Snapshots', 'Model', 'Training_History'], (2, 20, 2))
    """
    hist_cols = list(vae.history_)
    hist = np.array([vae.history_[k] for k in hist_cols], dtype=float).T
    h = grp.create_dataset("Training_History", data=hist)
    write_attrs(h, {"columns": hist_cols, "rows": "epoch (0-based)"})
    snaps = vae.snapshots_
    es = grp.create_dataset("Embedding_Snapshots", shape=(len(snaps), *snaps[0].mu.shape),
                            dtype=snaps[0].mu.dtype)
    for i, snap in enumerate(snaps):  # no stacked copy of every snapshot
        es[i] = snap.mu
    write_attrs(es, {"epochs": [s.epoch for s in snaps], "betas": [s.beta for s in snaps],
                     "lambdas": [s.lam for s in snaps],
                     "mse": [s.losses["mse"] for s in snaps],
                     "recon_mse": [s.losses.get("recon_mse", np.nan) for s in snaps],
                     "n_active": [vae.n_active(i) for i in range(len(snaps))],
                     "dims": "snapshot x position x latent"})
    model = grp.require_group("Model")
    model.attrs["config"] = vae.config_json()
    model.attrs["selected_snapshot"] = int(vae.selected_)
    # the model as used: the selected snapshot's weights with its inactive channels masked
    write_arrays(model.create_group("Weights"), vae.model_.get_weight_arrays())


def load_beta_vae(grp: h5py.Group, n_active: int | None = None,
                  snapshot: int | None = None) -> tuple[BetaVAE, MultiScaler]:
    """Rebuild a trained beta-VAE and its scaler from a ``*-Beta_VAE_NNN`` group.

    Only JSON text and numeric arrays are read (no pickle, no code): the network is
    rebuilt from the stored sizes and the weights are assigned by name and shape.

    Parameters
    ----------
    grp : h5py.Group
        A results group written by :class:`BetaVAEProcess`.
    n_active : int, optional
        Load the latest snapshot with this many active channels (the closest count when
        none has exactly as many, as the process chose) instead of the selected one.
    snapshot : int, optional
        Load this snapshot index.

    Returns
    -------
    (BetaVAE, MultiScaler)

    Raises
    ------
    BEPSFormatError
        The group holds no model, or a configuration or array that is malformed or
        larger than its own results allow (checked before anything is built or read).

    Examples
    --------
    >>> import os, tempfile, h5py
    >>> from pycroscopy_bevae import BetaVAEProcess, LoopProjector, write_synthetic_beps
    >>> path = write_synthetic_beps(os.path.join(tempfile.mkdtemp(), "s.h5"), shape=(5, 4))
    >>> with h5py.File(path, "r+") as f:
    ...     proj = LoopProjector(f, progress=False).compute()
    ...     grp = BetaVAEProcess(proj, units=4, embedding_dim=4, latent_dim=3, epochs=2,
    ...                          prime_epochs=1, step_epochs=1, beta_start=0.01,
    ...                          round_updates=0, relax_epochs=0, progress=False).compute()
    ...     vae, scaler = load_beta_vae(grp)
    >>> vae.transform(np.zeros((1, 96, 2))).shape, scaler.mode
    ((1, 3), 'global')
    """
    n_active, snapshot = check_optional_ints(n_active=n_active, snapshot=snapshot)
    where = f"group '{grp.name}' in file '{grp.file.filename}'"
    if "Model" not in grp or "config" not in grp["Model"].attrs:
        raise BEPSFormatError(f"{where} holds no trained beta-VAE (Model/ with a config)")
    # sizes are checked against the data before anything big is read or built
    config, limits = _checked_config(grp, where)
    try:
        snaps = read_snapshots(grp, limits)
    except (KeyError, ValueError, TypeError) as exc:
        raise BEPSFormatError(f"{where}: stored snapshots are unreadable: {exc}") from exc
    # everything else is read and checked before the (slow) network is built
    hist_ds = grp["Training_History"]
    if hist_ds.dtype.kind in "fiub" and (hist_ds.ndim != 2 or hist_ds.shape[0] > limits[
            "epochs"] or hist_ds.shape[1] > 64):
        raise BEPSFormatError(f"{where}: Training_History has shape {hist_ds.shape}; expected "
                              f"at most {limits['epochs']} epochs x 64 columns")
    hist = numeric(hist_ds)
    history = {c: hist[:, i].tolist() for i, c in enumerate(
        as_text(x) for x in grp["Training_History"].attrs["columns"])}
    scaler = read_scaler(grp)
    selected = grp["Model"].attrs.get("selected_snapshot", len(snaps) - 1)
    if isinstance(selected, np.ndarray) or not isinstance(selected, (int, np.integer)) \
            or not -1 <= int(selected) < max(len(snaps), 1):
        raise BEPSFormatError(f"{where}: selected_snapshot {selected!r} is not one of the "
                              f"{len(snaps)} stored snapshots")
    try:
        vae = BetaVAE.from_config(config, read_arrays(grp["Model/Weights"], limits["weights"]))
    except (KeyError, ValueError, TypeError) as exc:
        raise BEPSFormatError(f"{where}: stored weights do not fit the stored config: "
                              f"{exc}") from exc
    vae.snapshots_ = snaps
    vae.selected_ = int(selected)
    if snapshot is not None:
        if not 0 <= snapshot < len(snaps):
            raise ParameterError(f"snapshot must be in 0..{len(snaps) - 1}, got {snapshot}")
        vae.use_snapshot(snapshot)
    elif n_active is not None:
        vae.select_requested(n_active)
    vae.history_ = history
    return vae, scaler


def read_scaler(grp: h5py.Group) -> MultiScaler:
    """The scaler a learning process stored (``Scaler_Mean``, ``Scaler_Std``, attribute
    ``scaling``); modalities with fewer steps than the longest are NaN-padded there."""
    rows = [[r[np.isfinite(r)] for r in numeric(grp[name])]
            for name in ("Scaler_Mean", "Scaler_Std")]
    return MultiScaler.from_arrays(as_text(grp.attrs.get("scaling", "global")), *rows)


def write_arrays(g: h5py.Group, arrays: dict) -> None:
    """One dataset per named array under ``g`` (names with ``/`` make subgroups)."""
    for name, arr in arrays.items():
        g.create_dataset(name, data=np.asarray(arr))


#: Largest network a stored model may describe (a config beyond is refused unread).
_MAX_NETWORK = {"units": 4096, "n_blocks": 32, "layers_per_block": 16, "embedding_dim": 4096,
                "latent_dim": 4096}
#: Network keys added later: optional in stored configs (absent: the value given here).
_LATER_NETWORK_KEYS = {"linear_path": False}
#: Network keys every stored config has (the seven sizes first, then the two choices).
_NETWORK_KEYS = tuple(k for k in NetworkConfig.__dataclass_fields__
                      if k not in _LATER_NETWORK_KEYS)
_MAX_CONFIG_CHARS = 1 << 20


def _checked_config(grp: h5py.Group, where: str) -> tuple[dict, dict]:
    """The stored model config, checked against the results' own datasets, and the
    bounds (``weights``: values per weight set, ``positions``, ``latent_dim``,
    ``epochs``) that every stored array must keep to."""
    text = as_text(grp["Model"].attrs["config"])
    if len(text) > _MAX_CONFIG_CHARS:
        raise BEPSFormatError(f"{where}: model config has {len(text)} characters; expected "
                              f"at most {_MAX_CONFIG_CHARS}")
    try:
        config = json.loads(text)
    except (ValueError, TypeError, RecursionError) as exc:
        raise BEPSFormatError(f"{where}: model config is not valid JSON: "
                              f"{type(exc).__name__}") from None
    if not isinstance(config, dict) or not {"params", "network", "input_shape"} <= set(config):
        raise BEPSFormatError(f"{where}: model config lacks params/network/input_shape")
    net = config["network"]
    _check_network(net, where)
    emb = grp.get("Embedding")
    recon = grp.get("Reconstruction")
    if not isinstance(emb, h5py.Dataset) or emb.ndim != 2 or emb.shape[1] != net["latent_dim"]:
        raise BEPSFormatError(f"{where}: Embedding does not have the model's "
                              f"{net['latent_dim']} latent channels")
    if isinstance(recon, h5py.Dataset) and (recon.ndim != 2 or recon.shape[1] !=
                                            net["n_steps"] * net["n_channels"]):
        raise BEPSFormatError(f"{where}: the model's {net['n_steps']} x {net['n_channels']} "
                              f"input does not match Reconstruction {recon.shape}")
    if config["input_shape"] != [net["n_steps"], net["n_channels"]]:
        raise BEPSFormatError(f"{where}: input_shape {config['input_shape']!r} does not match "
                              f"the network's ({net['n_steps']}, {net['n_channels']})")
    resolved = _stored_params(config["params"], net, where)
    _check_stored_schedule(config, where)
    weights = NetworkConfig(**net).weight_count()
    return config, {"weights": weights, "positions": emb.shape[0],
                    "latent_dim": net["latent_dim"],
                    "epochs": int(resolved["epochs"]) + int(resolved["relax_epochs"]) + 1}


def _check_network(net, where: str) -> None:
    """The ``network`` entry of a stored model config: the keys of a NetworkConfig, the
    sizes within :data:`_MAX_NETWORK`."""
    if not isinstance(net, dict) or not set(_NETWORK_KEYS) <= set(net) <= \
            set(_NETWORK_KEYS) | set(_LATER_NETWORK_KEYS):
        raise BEPSFormatError(f"{where}: model config 'network' must have the keys "
                              f"{list(_NETWORK_KEYS)} (and optionally "
                              f"{list(_LATER_NETWORK_KEYS)})")
    if not isinstance(net.get("linear_path", False), bool):
        raise BEPSFormatError(f"{where}: model config network linear_path="
                              f"{net['linear_path']!r}; expected true or false")
    for key in _NETWORK_KEYS[:7]:
        val = net[key]
        top = _MAX_NETWORK.get(key, 10**6)
        low = 0 if key == "n_blocks" else 1
        if not Integer(low=low, high=top).accepts(val):
            raise BEPSFormatError(f"{where}: model config network {key}={val!r}; expected an "
                                  f"integer in {low}..{top}")


def _stored_params(params, net: dict, where: str) -> dict:
    """The ``params`` entry of a stored model config, checked as the estimator checks
    them and against the stored network; resolved."""
    if not isinstance(params, dict) or not set(params) <= set(BetaVAE.parameter_names()):
        raise BEPSFormatError(f"{where}: model config 'params' must be a mapping of BetaVAE "
                              "parameters")
    try:
        est = BetaVAE(preset=None, **params)
        resolved = est.resolved_params()
    except (ParameterError, TypeError) as exc:
        raise BEPSFormatError(f"{where}: stored parameters are invalid: {exc}") from None
    for key in ("units", "n_blocks", "layers_per_block", "embedding_dim", "latent_dim"):
        if resolved[key] != net[key]:
            raise BEPSFormatError(f"{where}: parameter {key}={resolved[key]!r} differs from "
                                  f"the network's {net[key]!r}")
    if resolved["linear_path"] != net.get("linear_path", False):
        raise BEPSFormatError(f"{where}: parameter linear_path={resolved['linear_path']!r} "
                              f"differs from the network's {net.get('linear_path', False)!r}")
    return resolved


def _check_stored_schedule(config: dict, where: str) -> None:
    """The optional ``data_variance`` and ``relax`` entries of a stored model config."""
    var = config.get("data_variance")
    if var is not None and not Real(low=0).accepts(var):
        raise BEPSFormatError(f"{where}: model config data_variance={var!r}; expected a "
                              "finite number >= 0 or null")
    relax = config.get("relax")
    if relax is None:
        return
    fields = set(RelaxSchedule.__dataclass_fields__) | {"from_snapshot"}
    if not isinstance(relax, dict) or set(relax) != fields or not all(
            Real().accepts(v) for v in relax.values()):
        raise BEPSFormatError(f"{where}: model config 'relax' must be null or a mapping of "
                              f"the numbers {sorted(fields)}")


def read_arrays(g: h5py.Group, max_values: int | None = None) -> dict:
    """Every dataset under ``g`` by path; with ``max_values``, refused unread when the
    datasets hold more values than that in all."""
    dsets = {}
    g.visititems(lambda name, obj: dsets.__setitem__(name, obj)
                 if isinstance(obj, h5py.Dataset) else None)
    if max_values is not None:
        total = sum(int(d.size) for d in dsets.values())
        if total > max_values:
            raise ValueError(f"'{g.name}' holds {total} values; the stored network has at "
                             f"most {max_values} weights")
    return {name: numeric(d) for name, d in dsets.items()}


def numeric(dset: h5py.Dataset) -> np.ndarray:
    """The values of a numeric dataset; anything else (strings, opaque bytes) is refused."""
    if dset.dtype.kind not in "fiub":
        raise BEPSFormatError(f"'{dset.name}' in file '{dset.file.filename}' has non-numeric "
                              f"type {dset.dtype}; expected numbers")
    return dset[()]


def write_snapshot(grp: h5py.Group, index: int, snap: Snapshot) -> None:
    """Store snapshot ``index`` (weights, latent means and log-variances, schedule values
    and losses) under ``grp/Model/Snapshots/NNNN``, replacing one written earlier."""
    snaps = grp.require_group("Model").require_group("Snapshots")
    name = f"{index:04d}"
    if name in snaps:  # written after the checkpoint a run was resumed from
        del snaps[name]
        snaps.file.flush()  # see clear_group: freed space must not be reused before this
    g = snaps.create_group(name)
    write_arrays(g.create_group("Weights"), snap.weights)
    g.create_dataset("mu", data=snap.mu)
    g.create_dataset("logvar", data=snap.logvar)
    write_attrs(g, {"epoch": snap.epoch, "beta": snap.beta, "lambda": snap.lam,
                    **{f"loss_{k}": v for k, v in snap.losses.items()}})


def read_snapshots(grp: h5py.Group, limits: dict | None = None) -> list[Snapshot]:
    """The snapshots under ``grp/Model/Snapshots`` in order; with ``limits`` (from the
    checked config) every array's shape is checked before it is read."""
    if "Model/Snapshots" not in grp:
        return []
    out = []
    names = sorted(grp["Model/Snapshots"])
    if limits is not None and len(names) > limits["epochs"]:
        raise ValueError(f"{len(names)} snapshots for at most {limits['epochs']} epochs")
    for name in names:
        g = grp["Model/Snapshots"][name]
        a = g.attrs
        if limits is not None:
            want = (limits["positions"], limits["latent_dim"])
            for key in ("mu", "logvar"):
                d = g.get(key)
                if not isinstance(d, h5py.Dataset) or (d.dtype.kind in "fiub"
                                                       and d.shape != want):
                    raise ValueError(f"snapshot {name} {key} is not positions x latent {want}")
        out.append(Snapshot(epoch=int(a["epoch"]), beta=float(a["beta"]), lam=float(a["lambda"]),
                            losses={k[5:]: float(a[k]) for k in a if k.startswith("loss_")},
                            mu=numeric(g["mu"]), logvar=numeric(g["logvar"]),
                            weights=read_arrays(g["Weights"], limits and limits["weights"])))
    return out


def write_checkpoint(grp: h5py.Group, est: BetaVAE) -> None:
    """Write the training state to Checkpoint_new, then swap it in for Checkpoint."""
    st = est.training_state()
    g = grp.create_group("Checkpoint_new")
    write_arrays(g.create_group("Weights"), st["weights"])
    opt = g.create_group("Optimizer")
    for i, v in enumerate(st["optimizer"]):
        opt.create_dataset(f"{i:04d}", data=v)
    g.create_dataset("seed_state", data=st["seed_state"])
    hist = g.create_group("History")
    for k, v in st["history"].items():
        hist.create_dataset(k, data=np.asarray(v, dtype=float))
    write_attrs(hist, {"columns": list(st["history"])})  # HDF5 lists members sorted
    write_attrs(g, {"epoch": int(st["epoch"]), "n_snapshots": len(st["snapshots"]),
                    "beta_start": "None" if st["beta_start"] is None else float(st["beta_start"]),
                    "relax": json.dumps(st["relax"])})
    if "Checkpoint" in grp:
        del grp["Checkpoint"]
    grp.move("Checkpoint_new", "Checkpoint")
    grp.file.flush()


def resumable_state(grp: h5py.Group) -> dict | None:
    """The training state to resume from (:func:`read_checkpoint`), after removing a
    checkpoint cut short by a crash (``Checkpoint_new``)."""
    if "Checkpoint_new" in grp:
        del grp["Checkpoint_new"]
        grp.file.flush()  # freed space must not be reused before this (see clear_group)
    return read_checkpoint(grp)


def read_checkpoint(grp: h5py.Group) -> dict | None:
    """The training state in ``grp/Checkpoint``; None (with a warning) if absent or unusable."""
    if "Checkpoint" not in grp:
        return None
    try:
        g = grp["Checkpoint"]
        n_snaps = int(g.attrs["n_snapshots"])
        snaps = read_snapshots(grp)[:n_snaps]
        if len(snaps) != n_snaps:
            raise BEPSFormatError(f"it needs {n_snaps} snapshots, {len(snaps)} are stored")
        bs = g.attrs["beta_start"]
        state = {"epoch": int(g.attrs["epoch"]), "weights": read_arrays(g["Weights"]),
                 "optimizer": [numeric(g["Optimizer"][k]) for k in sorted(g["Optimizer"])],
                 "seed_state": numeric(g["seed_state"]),
                 "history": {as_text(k): numeric(g["History"][as_text(k)]).tolist()
                             for k in g["History"].attrs["columns"]},
                 "snapshots": snaps, "beta_start": None if as_text(bs) == "None" else float(bs),
                 "relax": json.loads(as_text(g.attrs.get("relax", "null")))}
        if any(len(v) != state["epoch"] for v in state["history"].values()):
            raise BEPSFormatError(f"its history does not cover its {state['epoch']} epochs")
    except (KeyError, ValueError, TypeError, OSError) as exc:
        warnings.warn(f"checkpoint in results group '{grp.name}' in file '{grp.file.filename}' "
                      f"is unreadable ({exc}); training restarts from epoch 0",
                      DataQualityWarning, stacklevel=2)
        return None
    return state
