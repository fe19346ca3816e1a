"""``BetaVAEProcess``: train the LSTM beta-VAE on loops and write everything to HDF5."""

from __future__ import annotations

import hashlib
import json
import logging
import time
import warnings
from collections.abc import Callable

import h5py
import numpy as np

from ..exceptions import BEPSFormatError, DataQualityWarning, ParameterError
from ..io.usid import linked_ancillaries, make_dims, write_attrs, write_main
from ..models.runtime import runtime_info
from ..models.schedule import RelaxSchedule
from ..models.vae import (
    _DEFAULTS,
    _PARAMS,
    BetaVAE,
    IncompatibleStateError,
    Snapshot,
    SpectraSource,
)
from ..parallel import active_pool
from ..preprocessing import MultiScaler, stack_channels
from .base import GlobalFitProcess, clear_group
from .sources import LoopSources

__all__ = ["BetaVAEProcess", "load_beta_vae"]

logger = logging.getLogger(__name__)

_PROCESS_KWARGS = ("h5_target_group", "verbose", "max_mem_mb", "cores", "mem_multiplier",
                   "lazy")

#: ``stream='auto'`` streams the training data from the file above this size (float32 MB
#: of positions x steps x modalities; 256 x 256 positions of 96 x 2 steps take 48 MB). In
#: memory, the process holds ~3x this (float64 + float32 copies) next to TensorFlow's
#: ~1.5 GB (import + training activations of a fast-preset batch).
_STREAM_ABOVE_MB = 64
#: Positions read, encoded, decoded and written at a time for the results (a multiple of
#: the inference batch, 1024, so every spectrum meets the batch it meets in one pass).
_RESULT_BLOCK = 16 * 1024
#: Rows per read when the scaler is fitted from the file (streaming).
_SCALER_ROWS = 64 * 1024


class BetaVAEProcess(GlobalFitProcess):
    """Train an LSTM beta-VAE on (multi-modal) loops, as a ``pyUSID.processing.Process``.

    The selected loops of every modality are scaled and stacked as channels of one
    sequence (positions x steps x modalities; piezoresponse and resonance give
    ``(96, 2)``), a :class:`~pycroscopy_bevae.models.BetaVAE` is trained with the
    regularisation schedule, the snapshot with the requested number of active latent
    channels is selected, and the results are written to
    ``<first source>-Beta_VAE_NNN``:

    ========================  ==========================================================
    ``Embedding``             positions x latent: latent means of the selected model
    ``Log_Variance``          positions x latent
    ``Reconstruction``        positions x (modality, step), scaled units
    ``Reconstruction_Error``  positions x 1, mean squared error (scaled units)
    ``Training_History``      epoch x (loss, mse, l1, kl, beta, lambda, ...)
    ``Embedding_Snapshots``   snapshot x positions x latent (epochs, betas in attributes)
    ``Scaler_Mean/Std``       modality x step
    ``Model/``                JSON config, selected weights, every snapshot's weights
    ========================  ==========================================================

    Training checkpoints (weights, optimiser state, epoch, schedule position) are saved
    to ``Checkpoint/`` every ``checkpoint_every`` epochs; an interrupted run continued
    with the same parameters picks up where it stopped and ends in the same state as an
    uninterrupted one (CPU). Nothing is unpickled or executed when loading.

    Parameters
    ----------
    h5_main : h5py.Dataset, sequence of h5py.Dataset, or h5py.Group
        Loop dataset(s) (e.g. a ``Fit-Loop_Projection_NNN`` group: Piezoresponse + Resonance).
        All modalities need the same number of steps.
    cycle, field : see :class:`~pycroscopy_bevae.DictionaryLearningProcess`
    scaling : {'global', 'step', 'balanced', 'none'}
        Scaling of each modality (see :class:`~pycroscopy_bevae.preprocessing.LoopScaler`;
        ``'balanced'`` weighs each modality by its own spread about the mean loop).
    preset : {'fast', 'paper'}
        Model and schedule defaults (see :data:`pycroscopy_bevae.models.vae.PRESETS`).
    n_active : int, optional
        Select the latest snapshot with this many active channels (closest count if none
        matches exactly); default the automatic rule of :meth:`BetaVAE.select`. With a
        relax phase (``relax_epochs`` > 0, the ``fast`` preset) it is also the
        ``target_active`` of the training, unless that is given.
    checkpoint_every : int
        Epochs between training checkpoints (and at every snapshot).
    progress : bool
        tqdm progress bar.
    stream : bool or 'auto'
        Read the training batches from the file (``tf.data``) instead of holding the
        scaled loops in memory; snapshots and results are then computed block by block
        too, so memory does not grow with the map beyond the latent maps. ``'auto'``
        (default) streams when the loops would take more than 64 MB as float32
        (more than about 87,000 positions of 96 x 2 steps; a 256 x 256 map stays in
        memory). Streaming fits the scaler in two
        passes over the file and feeds float32 loops, so its results equal the
        in-memory ones to float32 precision (not bit for bit); a streamed run is
        recorded (``stream`` attribute) and resumes exactly like an in-memory one.
    strategy : None, {'mirrored', 'multiworker'} or tf.distribute.Strategy
        Train under a ``tf.distribute`` strategy (several GPUs; see
        :class:`~pycroscopy_bevae.models.BetaVAE`). Recorded as the ``strategy``
        attribute; such a run is not a duplicate of a single-device one.
    **kwargs
        Any :class:`~pycroscopy_bevae.models.BetaVAE` parameter (``epochs``, ``units``,
        ``beta_step``, ``random_state``...) and ``pyUSID.processing.Process`` options
        (``h5_target_group``, ``verbose``).

    Examples
    --------
    A tiny network for a few epochs (real runs use the presets' sizes and schedules):

    >>> import tempfile, os, h5py
    >>> from pycroscopy_bevae import LoopProjector, write_synthetic_beps
    >>> path = write_synthetic_beps(os.path.join(tempfile.mkdtemp(), "s.h5"), shape=(6, 6))
    >>> with h5py.File(path, "r+") as f:
    ...     proj = LoopProjector(f, progress=False).compute()
    ...     grp = BetaVAEProcess(proj, units=4, embedding_dim=4, latent_dim=3, epochs=3,
    ...                          prime_epochs=2, step_epochs=1, beta_start=0.01,
    ...                          round_updates=0, relax_epochs=0, progress=False).compute()
    ...     print(grp["Embedding"].shape, grp["Reconstruction"].shape)
    (36, 3) (36, 192)
    """

    result_names = ("Embedding", "Log_Variance", "Reconstruction", "Reconstruction_Error")

    def __init__(self, h5_main, cycle: int | None = None, field: str = "off",
                 scaling: str = "global", preset: str = "fast", n_active: int | None = None,
                 checkpoint_every: int = 10, progress: bool = True,
                 stream: bool | str = "auto", strategy=None, **kwargs) -> None:
        proc_kwargs = {k: kwargs.pop(k) for k in list(kwargs) if k in _PROCESS_KWARGS}
        unknown = [k for k in kwargs if k not in _PARAMS]
        if unknown:
            raise ParameterError(f"unknown parameter(s) {unknown}; BetaVAE parameters are "
                                 f"{list(_PARAMS)}")
        self.sources = LoopSources.from_input(h5_main, cycle=cycle, field=field)
        if len(set(self.sources.steps)) != 1:
            raise BEPSFormatError(
                f"modalities {self.sources.names} have {self.sources.steps} steps; channel "
                "stacking for the beta-VAE needs the same number of steps in each")
        n_pos = self.sources.datasets[0].shape[0]
        if n_pos < 2:
            raise ParameterError(
                f"dataset '{self.sources.datasets[0].name}' in file "
                f"'{self.sources.datasets[0].file.filename}' has {n_pos} position; the beta-VAE "
                "needs at least 2 positions to learn from")
        MultiScaler(scaling)  # validates
        if n_active is not None and (isinstance(n_active, bool) or not
                                     isinstance(n_active, (int, np.integer)) or n_active < 0):
            raise ParameterError(f"n_active must be a non-negative integer, got {n_active!r}")
        self.vae = BetaVAE(preset=preset, strategy=strategy, **kwargs)
        resolved = self.vae.resolved_params()  # validates every parameter before any write
        if n_active and resolved["relax_epochs"] and "target_active" not in kwargs:
            # a relax phase trains the requested channel count to convergence
            self.vae.set_params(target_active=int(n_active))
            resolved = self.vae.resolved_params()
        if isinstance(checkpoint_every, (np.integer, np.bool_)):
            checkpoint_every = checkpoint_every.item()
        if isinstance(checkpoint_every, bool) or not isinstance(checkpoint_every, int) \
                or checkpoint_every < 1:
            raise ParameterError(f"checkpoint_every must be a positive integer, got "
                                 f"{checkpoint_every!r}")
        self.scaling = scaling
        self.n_active = None if n_active is None else int(n_active)
        self.checkpoint_every = checkpoint_every
        self.progress = progress
        if stream == "auto":
            size_mb = n_pos * sum(self.sources.steps) * 4 / 2**20
            stream = size_mb > _STREAM_ABOVE_MB
        elif not isinstance(stream, (bool, np.bool_)):
            raise ParameterError(f"stream must be True, False or 'auto', got {stream!r}")
        self.stream = bool(stream)
        parms = self.sources.parms()
        parms.update({"scaling": scaling, "preset": str(preset), "stacking": "channels"})
        parms.update(resolved)
        for key in _LATER_PARAMS:  # at values training as before they existed: same duplicates
            if parms[key] == _DEFAULTS[key]:
                del parms[key]
        if strategy is not None:  # a replicated run draws other noise: not a duplicate
            parms["strategy"] = strategy if isinstance(strategy, str) else \
                type(strategy).__name__
        if self.stream:  # in-memory runs keep the parameters (and duplicates) they had
            parms["stream"] = True
        self._init_process(self.sources.datasets[0], "Beta_VAE", parms, **proc_kwargs)

    def _check_for_duplicates(self) -> tuple[list, list]:
        """pyUSID's check, plus: streamed and in-memory results are not each other's
        duplicates (nor resumed by each other; groups without a ``stream`` attribute are
        in-memory ones)."""
        dups, partial = super()._check_for_duplicates()

        def same(grp: h5py.Group) -> bool:
            return bool(grp.attrs.get("stream", False)) == self.stream

        return [g for g in dups if same(g)], [g for g in partial if same(g)]

    def _result_bytes(self) -> int:
        n, steps, n_mod = self.h5_main.shape[0], self.sources.steps[0], len(self.sources.names)
        est = self.vae.storage_estimate(n, steps, n_mod)
        w, s, lat = est["weights"] * 4, est["snapshots"], est["latent_dim"]
        epochs = int(self.vae.resolved_params()["epochs"])
        results = n * (2 * lat + n_mod * steps + 1 + n_mod) * 8
        snapshots = s * (w + 3 * n * lat * 4)  # Model/Snapshots (weights, mu, logvar) + maps
        checkpoints = 2 * (3 * w + epochs * 10 * 8)  # Checkpoint and Checkpoint_new (Adam)
        return results + snapshots + checkpoints + w

    # ---- data --------------------------------------------------------------------------
    def _scaled_input(self, positions=None) -> tuple[np.ndarray, MultiScaler]:
        mods = self.sources.read(positions)
        scaler = MultiScaler(self.scaling).fit(mods)
        return stack_channels(scaler.transform(mods)), scaler

    def _training_data(self) -> tuple[np.ndarray | SpectraSource, MultiScaler]:
        """Scaled loops in memory, or (``stream``) a source reading them from the file."""
        if not self.stream:
            return self._scaled_input()
        scaler = _fit_scaler_in_chunks(self.sources, self.scaling)
        logger.info("beta-VAE: streaming %d positions from '%s'", self.h5_main.shape[0],
                    self.h5_main.file.filename)
        return _ScaledLoops(self.sources, scaler), scaler

    def test(self, n_positions: int = 200, seed: int = 0, epochs: int = 2) -> dict:
        """Train briefly on a random subset without writing anything.

        Returns
        -------
        dict
            ``positions``, ``embedding``, ``reconstruction`` (scaled), ``mse`` per position,
            ``history`` and the fitted ``model``.
        """
        from sklearn.base import clone

        n = self.h5_main.shape[0]
        if n_positions < 1:
            raise ParameterError(f"n_positions must be >= 1, got {n_positions}")
        rng = np.random.default_rng(seed)
        pos = np.sort(rng.choice(n, size=min(n, n_positions), replace=False))
        X, _ = self._scaled_input(pos)
        vae = clone(self.vae).set_params(epochs=epochs)
        vae.fit(X, progress=self.progress)
        recon = vae.reconstruct(X)
        return {"positions": pos, "embedding": vae.transform(X), "reconstruction": recon,
                "mse": np.mean((recon - X) ** 2, axis=(1, 2)), "history": vae.history_,
                "model": vae}

    # ---- compute -----------------------------------------------------------------------
    def _fit_and_write(self) -> None:
        X, scaler = self._training_data()
        grp = self._open_results_group(clear=False)
        if "Checkpoint_new" in grp:  # a checkpoint cut short by a crash
            del grp["Checkpoint_new"]
            grp.file.flush()  # see clear_group: freed space must not be reused before this
        state = _read_checkpoint(grp)
        if state is not None:
            logger.info("resuming beta-VAE training at epoch %d from %s", state["epoch"],
                        grp.name)
        else:  # a partial group without a usable checkpoint
            clear_group(grp, keep=(self._status_dset_name,))
        saved = {"n": len(state["snapshots"]) if state else 0}

        def checkpoint(epoch: int, est: BetaVAE) -> None:
            new_snaps = est.snapshots_[saved["n"]:]
            for i, snap in enumerate(new_snaps, start=saved["n"]):
                _write_snapshot(grp, i, snap)
            saved["n"] = len(est.snapshots_)
            if new_snaps or (epoch + 1) % self.checkpoint_every == 0:
                _write_checkpoint(grp, est)
            self._after_epoch(epoch, est)

        vae = self.vae
        try:
            vae.fit(X, progress=self.progress, on_epoch_end=checkpoint, initial_state=state)
        except IncompatibleStateError as exc:  # stored state does not fit this model: start afresh
            warnings.warn(f"checkpoint in results group '{grp.name}' in file "
                          f"'{grp.file.filename}' cannot be resumed ({exc}); training "
                          "restarts from epoch 0", DataQualityWarning, stacklevel=2)
            clear_group(grp, keep=(self._status_dset_name,))
            saved["n"] = 0
            vae.fit(X, progress=self.progress, on_epoch_end=checkpoint)
        if self.n_active is not None:
            counts = np.array([s.n_active(vae.resolved_params()["kl_threshold"])
                               for s in vae.snapshots_])
            best = np.flatnonzero(np.abs(counts - self.n_active) ==
                                  np.abs(counts - self.n_active).min())[-1]
            if counts[best] != self.n_active:
                logger.warning("no snapshot has exactly %d active channels; using %d (snapshot "
                               "%d)", self.n_active, counts[best], best)
            vae.select(n_active=int(counts[best]))
        else:
            vae.select()
        self._write_results(grp, vae, scaler, X)
        if "Checkpoint" in grp:
            del grp["Checkpoint"]

    def _after_epoch(self, epoch: int, est: BetaVAE) -> None:
        """Hook called after each epoch's checkpointing (subclasses: monitoring, tests)."""

    def _write_results(self, grp: h5py.Group, vae: BetaVAE, scaler: MultiScaler,
                       X: np.ndarray) -> None:
        src = self.sources
        # results of an earlier attempt that stopped while writing them
        clear_group(grp, keep=(self._status_dset_name, "Checkpoint", "Model"))
        if "Model" in grp:
            clear_group(grp["Model"], keep=("Snapshots",))
        # inference in blocks of positions, each written as it is done
        n, n_mod = len(X), len(src.names)
        n_lat = vae.config_.latent_dim
        pos, _ = linked_ancillaries(grp, src.datasets[0], spec=False)
        latent = make_dims([("Latent", "", np.arange(n_lat))])
        emb = write_main(grp, (n, n_lat), "Embedding", "Latent mean", "a.u.", pos, latent,
                         dtype=np.float64)
        lat = {"inds": grp.file[emb.attrs["Spectroscopic_Indices"]],
               "vals": grp.file[emb.attrs["Spectroscopic_Values"]]}
        h_logvar = write_main(grp, (n, n_lat), "Log_Variance", "Latent log-variance", "a.u.",
                              pos, lat, dtype=np.float64)
        h_recon = write_main(grp, (n, n_mod * src.steps[0]), "Reconstruction", "Reconstruction",
                             "scaled", pos, src.feature_dims(), aux_spec_prefix="Feature_",
                             dtype=np.float64)
        err = np.empty(n)
        mod_err = np.empty((n, n_mod))  # per position and modality
        t_infer = 0.0
        infer = _inferrer(vae)
        for a in range(0, n, _RESULT_BLOCK):
            b = min(a + _RESULT_BLOCK, n)
            # errors against the float64 scaled loops, as in memory
            xb = X.take(np.arange(a, b), np.float64) if isinstance(X, _ScaledLoops) else X[a:b]
            t0 = time.perf_counter()
            mu, logvar, recon = infer(xb)
            t_infer += time.perf_counter() - t0
            recon = recon[..., None] if recon.ndim == 2 else recon
            sq = (recon - xb) ** 2
            err[a:b] = sq.mean(axis=(1, 2))
            mod_err[a:b] = sq.mean(axis=1)
            emb[a:b] = mu
            h_logvar[a:b] = logvar
            h_recon[a:b] = np.moveaxis(recon, 2, 1).reshape(b - a, -1)  # modality-major
        self._write_shared_results(grp, pos, err, scaler.scalers_)
        hist_cols = list(vae.history_)
        hist = np.array([vae.history_[k] for k in hist_cols], dtype=float).T
        h = grp.create_dataset("Training_History", data=hist)
        write_attrs(h, {"columns": hist_cols, "rows": "epoch (0-based)"})
        p = vae.resolved_params()
        snaps = vae.snapshots_
        es = grp.create_dataset("Embedding_Snapshots", shape=(len(snaps), *snaps[0].mu.shape),
                                dtype=snaps[0].mu.dtype)
        for i, snap in enumerate(snaps):  # no stacked copy of every snapshot
            es[i] = snap.mu
        write_attrs(es, {"epochs": [s.epoch for s in snaps], "betas": [s.beta for s in snaps],
                         "lambdas": [s.lam for s in snaps],
                         "mse": [s.losses["mse"] for s in snaps],
                         "recon_mse": [s.losses.get("recon_mse", np.nan) for s in snaps],
                         "n_active": [s.n_active(p["kl_threshold"]) for s in snaps],
                         "dims": "snapshot x position x latent"})
        model = grp.require_group("Model")
        model.attrs["config"] = vae.config_json()
        model.attrs["selected_snapshot"] = int(vae.selected_)
        _write_arrays(model.create_group("Weights"), snaps[vae.selected_].weights)
        per_mod = {f"mse_{name}": float(mod_err[:, i].mean()) for i, name in enumerate(src.names)}
        sel = snaps[vae.selected_]
        active = sel.active(p["kl_threshold"])
        write_attrs(grp, {
            "mse": float(err.mean()), **per_mod, "fit_time_s": float(vae.fit_time_),
            "inference_time_s": float(t_infer),
            "inference_ranks": getattr(active_pool(), "size", 1),
            "epochs_trained": len(vae.history_["loss"]), "modality_names": src.names,
            "Active_Channels": active.astype(int), "n_active_channels": int(active.size),
            "selected_snapshot": int(vae.selected_), "selected_epoch": int(sel.epoch),
            "selected_beta": float(sel.beta), "selection_request": "auto" if self.n_active is
            None else int(self.n_active), "beta_start_used": float(vae.beta_start_ or 0.0),
            "relax_start_epoch": -1 if vae.relax_ is None else int(vae.relax_.start),
            "relax_from_snapshot": -1 if vae.relax_ is None else int(vae.relax_from_),
            "updates_per_epoch": int(vae.updates_per_epoch_),
            # what TensorFlow ran with (determinism, thread pools, oneDNN, versions)
            **{f"runtime_{k}": v for k, v in runtime_info().items()},
        })
        logger.info("beta-VAE: MSE %.4f, %d active channels (snapshot %d, epoch %d, beta %.4g)",
                    err.mean(), active.size, vae.selected_, sel.epoch, sel.beta)

    # ---- re-using a trained model ------------------------------------------------------
    def reselect(self, n_active: int | None = None, snapshot: int | None = None) -> dict:
        """Apply another snapshot of the trained model to the data (nothing is written).

        Returns
        -------
        dict
            ``embedding``, ``log_variance``, ``reconstruction`` (scaled, positions x steps x
            modalities), ``mse`` per position, ``snapshot`` index.
        """
        if self.h5_results_grp is None:
            raise ParameterError("no results yet: call compute() first")
        vae, _ = load_beta_vae(self.h5_results_grp, n_active=n_active, snapshot=snapshot)
        X, _ = self._scaled_input()
        mu, logvar, recon = _inferrer(vae)(X)
        recon = recon[..., None] if recon.ndim == 2 else recon
        return {"embedding": mu, "log_variance": logvar, "reconstruction": recon,
                "mse": np.mean((recon - X) ** 2, axis=(1, 2)), "snapshot": vae.selected_}


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
        Load the latest snapshot with this many active channels instead of the selected one.
    snapshot : int, optional
        Load this snapshot index.

    Returns
    -------
    (BetaVAE, MultiScaler)
    """
    where = f"group '{grp.name}' in file '{grp.file.filename}'"
    if "Model" not in grp or "config" not in grp["Model"].attrs:
        raise BEPSFormatError(f"{where} holds no trained beta-VAE (Model/ with a config)")
    # sizes are checked against the data before anything big is read or built
    config, limits = _checked_config(grp, where)
    try:
        snaps = _read_snapshots(grp, limits)
    except (KeyError, ValueError, TypeError) as exc:
        raise BEPSFormatError(f"{where}: stored snapshots are unreadable: {exc}") from exc
    # everything else is read and checked before the (slow) network is built
    hist_ds = grp["Training_History"]
    if hist_ds.dtype.kind in "fiub" and (hist_ds.ndim != 2 or hist_ds.shape[0] > limits[
            "epochs"] or hist_ds.shape[1] > 64):
        raise BEPSFormatError(f"{where}: Training_History has shape {hist_ds.shape}; expected "
                              f"at most {limits['epochs']} epochs x 64 columns")
    hist = _numeric(hist_ds)
    history = {c: hist[:, i].tolist() for i, c in enumerate(
        _text(x) for x in grp["Training_History"].attrs["columns"])}
    scaler = MultiScaler.from_arrays(_text(grp.attrs["scaling"]),
                                     _numeric(grp["Scaler_Mean"]), _numeric(grp["Scaler_Std"]))
    selected = grp["Model"].attrs.get("selected_snapshot", len(snaps) - 1)
    if isinstance(selected, np.ndarray) or not isinstance(selected, (int, np.integer)) \
            or not -1 <= int(selected) < max(len(snaps), 1):
        raise BEPSFormatError(f"{where}: selected_snapshot {selected!r} is not one of the "
                              f"{len(snaps)} stored snapshots")
    try:
        vae = BetaVAE.from_config(config, _read_arrays(grp["Model/Weights"], limits["weights"]))
    except (KeyError, ValueError, TypeError) as exc:
        raise BEPSFormatError(f"{where}: stored weights do not fit the stored config: "
                              f"{exc}") from exc
    vae.snapshots_ = snaps
    vae.selected_ = int(selected)
    if snapshot is not None:
        if not 0 <= snapshot < len(snaps):
            raise ParameterError(f"snapshot must be in 0..{len(snaps) - 1}, got {snapshot}")
        vae.model_.set_weight_arrays(snaps[snapshot].weights)
        vae.selected_ = snapshot
    elif n_active is not None:
        vae.select(n_active=n_active)
    vae.history_ = history
    return vae, scaler


# ---- streaming from the file ----------------------------------------------------------
class _ScaledLoops(SpectraSource):
    """The process's training input (scaled, channel-stacked loops) read from the file on
    demand: ``take(i)`` equals ``_scaled_input()[0][i]`` cast to float32 for the same
    scaler."""

    def __init__(self, sources: LoopSources, scaler: MultiScaler):
        self.sources, self.scaler = sources, scaler
        self.shape = (sources.datasets[0].shape[0], sources.steps[0], len(sources.datasets))

    def take(self, indices: np.ndarray, dtype=np.float32) -> np.ndarray:
        idx = np.asarray(indices, dtype=np.int64)
        order = np.argsort(idx, kind="stable")  # HDF5 reads rows in increasing order
        block = stack_channels(self.scaler.transform(self.sources.read(idx[order])))
        out = np.empty(block.shape, dtype=dtype)
        out[order] = block
        return out


def _fit_scaler_in_chunks(sources: LoopSources, mode: str) -> MultiScaler:
    """``MultiScaler(mode).fit(sources.read())`` without reading everything at once: two
    passes (mean, then squared deviations, as numpy's std) over blocks of rows; equal to
    the in-memory fit up to summation order (~1e-15 relative)."""
    n, steps = sources.datasets[0].shape[0], sources.steps[0]
    n_mod = len(sources.datasets)
    if mode == "none":
        return MultiScaler.from_arrays(mode, np.zeros((n_mod, steps)), np.ones((n_mod, steps)))
    axis = 0 if mode in ("step", "balanced") else None  # balanced: about the mean loop

    def blocks():
        for a in range(0, n, _SCALER_ROWS):
            yield sources.read(np.arange(a, min(a + _SCALER_ROWS, n)))

    total = np.zeros((n_mod, steps))
    for mods in blocks():
        total += np.stack([m.sum(axis=0) for m in mods])
    mean = total / n if axis == 0 else np.repeat(total.sum(axis=1, keepdims=True) / (n * steps),
                                                 steps, axis=1)
    dev = np.zeros((n_mod, steps))
    for mods in blocks():
        dev += np.stack([((m - mean[i]) ** 2).sum(axis=0) for i, m in enumerate(mods)])
    var = dev / n if mode == "step" else np.repeat(dev.sum(axis=1, keepdims=True) /
                                                   (n * steps), steps, axis=1)
    if mode == "balanced":  # centred on the global mean, scaled by the spread about the loop
        mean = np.repeat(mean.mean(axis=1, keepdims=True), steps, axis=1)
    std = np.sqrt(var)
    return MultiScaler.from_arrays(mode, mean, np.where(std > 0, std, 1.0))


# ---- HDF5 helpers: arrays by name, snapshots, checkpoints --------------------------------
def _inferrer(vae: BetaVAE) -> Callable[[np.ndarray], tuple]:
    """A function giving latent means, log-variances and reconstructions of a block;
    spread over the MPI ranks under :func:`~pycroscopy_bevae.parallel.run_mpi`. What the
    ranks need (config, weights, their token) is prepared once, not per block."""
    pool = active_pool()
    if pool is None:
        return lambda X: _infer_block(X, vae=vae)
    weights = vae.model_.get_weight_arrays()
    # a token of the weights lets the workers build the model once per selected snapshot
    shared = {"config": vae.config_json(), "weights": weights,
              "token": hashlib.sha256(b"".join(np.ascontiguousarray(w).tobytes()
                                               for _, w in sorted(weights.items()))).hexdigest()}

    def infer(X: np.ndarray) -> tuple:
        parts = pool.map(_infer_block, X, **shared)
        return tuple(np.concatenate([p[i] for p in parts]) for i in range(3))

    return infer


#: Models built by MPI worker ranks, by weight token (one at a time).
_WORKER_MODELS: dict[str, BetaVAE] = {}


def _infer_block(X: np.ndarray, vae: BetaVAE | None = None, config: str | None = None,
                 weights: dict | None = None, token: str | None = None):
    """Encode and decode one block (one rank's share under MPI)."""
    if vae is None:
        if token not in _WORKER_MODELS:
            _WORKER_MODELS.clear()
            _WORKER_MODELS[token] = BetaVAE.from_config(json.loads(config), weights)
        vae = _WORKER_MODELS[token]
    if len(X) == 0:
        n_lat = vae.config_.latent_dim
        return np.empty((0, n_lat)), np.empty((0, n_lat)), np.empty((0, *X.shape[1:]))
    mu, logvar = vae.encode(X)
    return mu, logvar, vae.decode(mu)


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _write_arrays(g: h5py.Group, arrays: dict) -> None:
    for name, arr in arrays.items():
        g.create_dataset(name, data=np.asarray(arr))


#: Largest network a stored model may describe (a config beyond is refused unread).
_MAX_NETWORK = {"units": 4096, "n_blocks": 32, "layers_per_block": 16, "embedding_dim": 4096,
                "latent_dim": 4096}
_NETWORK_KEYS = ("n_steps", "n_channels", "units", "n_blocks", "layers_per_block",
                 "embedding_dim", "latent_dim", "layer_norm_axis", "kl_reduction")
#: Network keys added later: optional in stored configs (absent: the value given here).
_LATER_NETWORK_KEYS = {"linear_path": False}
#: BetaVAE parameters added later: left out of the duplicate check at these default values.
_LATER_PARAMS = ("precision", "round_updates", "schedule", "capacity_start", "capacity_step",
                 "target_active", "relax_epochs", "relax_beta", "relax_lr", "linear_path",
                 "beta_growth", "r2_tolerance")
_MAX_CONFIG_CHARS = 1 << 20


def _checked_config(grp: h5py.Group, where: str) -> tuple[dict, dict]:
    """The stored model config, checked against the results' own datasets, and the
    bounds (``weights``: values per weight set, ``positions``, ``latent_dim``,
    ``epochs``) that every stored array must keep to."""
    text = _text(grp["Model"].attrs["config"])
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
    net, params = config["network"], config["params"]
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
        if isinstance(val, bool) or not isinstance(val, int) or not low <= val <= top:
            raise BEPSFormatError(f"{where}: model config network {key}={val!r}; expected an "
                                  f"integer in {low}..{top}")
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
    if not isinstance(params, dict) or not set(params) <= set(_PARAMS):
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
    _check_stored_schedule(config, where)
    weights = est.storage_estimate(emb.shape[0], net["n_steps"], net["n_channels"])["weights"]
    return config, {"weights": weights, "positions": emb.shape[0],
                    "latent_dim": net["latent_dim"],
                    "epochs": int(resolved["epochs"]) + int(resolved["relax_epochs"]) + 1}


def _check_stored_schedule(config: dict, where: str) -> None:
    """The optional ``data_variance`` and ``relax`` entries of a stored model config."""
    var = config.get("data_variance")
    if var is not None and (isinstance(var, bool) or not isinstance(var, (int, float))
                            or not np.isfinite(var) or var < 0):
        raise BEPSFormatError(f"{where}: model config data_variance={var!r}; expected a "
                              "finite number >= 0 or null")
    relax = config.get("relax")
    if relax is None:
        return
    fields = set(RelaxSchedule.__dataclass_fields__) | {"from_snapshot"}
    if not isinstance(relax, dict) or set(relax) != fields or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v)
            for v in relax.values()):
        raise BEPSFormatError(f"{where}: model config 'relax' must be null or a mapping of "
                              f"the numbers {sorted(fields)}")


def _read_arrays(g: h5py.Group, max_values: int | None = None) -> dict:
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
    return {name: _numeric(d) for name, d in dsets.items()}


def _numeric(dset: h5py.Dataset) -> np.ndarray:
    """The values of a numeric dataset; anything else (strings, opaque bytes) is refused."""
    if dset.dtype.kind not in "fiub":
        raise BEPSFormatError(f"'{dset.name}' in file '{dset.file.filename}' has non-numeric "
                              f"type {dset.dtype}; expected numbers")
    return dset[()]


def _write_snapshot(grp: h5py.Group, index: int, snap: Snapshot) -> None:
    snaps = grp.require_group("Model").require_group("Snapshots")
    name = f"{index:04d}"
    if name in snaps:  # written after the checkpoint a run was resumed from
        del snaps[name]
        snaps.file.flush()  # see clear_group: freed space must not be reused before this
    g = snaps.create_group(name)
    _write_arrays(g.create_group("Weights"), snap.weights)
    g.create_dataset("mu", data=snap.mu)
    g.create_dataset("logvar", data=snap.logvar)
    write_attrs(g, {"epoch": snap.epoch, "beta": snap.beta, "lambda": snap.lam,
                    **{f"loss_{k}": v for k, v in snap.losses.items()}})


def _read_snapshots(grp: h5py.Group, limits: dict | None = None) -> list[Snapshot]:
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
                            mu=_numeric(g["mu"]), logvar=_numeric(g["logvar"]),
                            weights=_read_arrays(g["Weights"], limits and limits["weights"])))
    return out


def _write_checkpoint(grp: h5py.Group, est: BetaVAE) -> None:
    """Write the training state to Checkpoint_new, then swap it in for Checkpoint."""
    st = est.training_state()
    g = grp.create_group("Checkpoint_new")
    _write_arrays(g.create_group("Weights"), st["weights"])
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


def _read_checkpoint(grp: h5py.Group) -> dict | None:
    """The training state in ``grp/Checkpoint``; None (with a warning) if absent or unusable."""
    if "Checkpoint" not in grp:
        return None
    try:
        g = grp["Checkpoint"]
        n_snaps = int(g.attrs["n_snapshots"])
        snaps = _read_snapshots(grp)[:n_snaps]
        if len(snaps) != n_snaps:
            raise BEPSFormatError(f"it needs {n_snaps} snapshots, {len(snaps)} are stored")
        bs = g.attrs["beta_start"]
        state = {"epoch": int(g.attrs["epoch"]), "weights": _read_arrays(g["Weights"]),
                 "optimizer": [_numeric(g["Optimizer"][k]) for k in sorted(g["Optimizer"])],
                 "seed_state": _numeric(g["seed_state"]),
                 "history": {_text(k): _numeric(g["History"][_text(k)]).tolist()
                             for k in g["History"].attrs["columns"]},
                 "snapshots": snaps, "beta_start": None if _text(bs) == "None" else float(bs),
                 "relax": json.loads(_text(g.attrs.get("relax", "null")))}
        if any(len(v) != state["epoch"] for v in state["history"].values()):
            raise BEPSFormatError(f"its history does not cover its {state['epoch']} epochs")
    except (KeyError, ValueError, TypeError, OSError) as exc:
        warnings.warn(f"checkpoint in results group '{grp.name}' in file '{grp.file.filename}' "
                      f"is unreadable ({exc}); training restarts from epoch 0",
                      DataQualityWarning, stacklevel=2)
        return None
    return state
