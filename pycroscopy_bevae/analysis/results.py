"""Read the results groups the processes write back into arrays for validation and figures."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import h5py
import numpy as np

from ..exceptions import BEPSFormatError
from ..io.results import find_results, result_kind
from ..io.usid import as_text
from ..preprocessing import MultiScaler, unstack_features
from ..store import load_beta_vae, read_scaler
from .validation import active_components

__all__ = ["ModelResult", "find_results", "read_loop_fit", "read_model_result",
           "read_ground_truth"]

LABELS = {"dictionary": "dictionary learning", "beta_vae": "beta-VAE"}


@dataclass
class ModelResult:
    """One model's results on one file, in arrays (scaled units, as the model saw them).

    Attributes
    ----------
    kind : str
        ``'dictionary'`` or ``'beta_vae'``.
    group : str
        HDF5 path of the results group.
    label : str
        Name for legends and tables.
    embedding : numpy.ndarray
        (positions, channels): coefficients or latent means.
    active : numpy.ndarray
        Indices of the active channels (stored selection for the beta-VAE; channels
        with spread for dictionary learning).
    data, reconstruction : list of numpy.ndarray
        Per modality, (positions, steps) scaled loops and their reconstruction.
    errors : numpy.ndarray
        (positions,) mean squared error.
    names : list of str
        Modality names.
    axis_values : numpy.ndarray
        Step axis (DC bias in V for projected loops).
    grid_shape : tuple of int
        Position grid (rows, cols) where known.
    attrs : dict
        The group's attributes (parameters, MSE, timing).
    scaler : MultiScaler or None
        The stored scaler (``scaler.inverse_transform(modalities)`` gives physical units).
    """

    kind: str
    group: str
    label: str
    embedding: np.ndarray
    active: np.ndarray
    data: list
    reconstruction: list
    errors: np.ndarray
    names: list
    axis_values: np.ndarray
    grid_shape: tuple
    attrs: dict = field(default_factory=dict)
    scaler: MultiScaler | None = None
    _decoder: Callable | None = field(default=None, repr=False)

    @property
    def steps(self) -> list[int]:
        """Number of steps of each modality."""
        return [d.shape[1] for d in self.data]

    @property
    def held_out(self) -> np.ndarray:
        """Indices of the positions the model did not train on (empty when none).

        A beta-VAE trained with ``validation_fraction`` > 0 held a seeded share of the
        positions out (:func:`~pycroscopy_bevae.models.vae_data.validation_split` of its
        ``random_state``); its ``Embedding`` and ``Reconstruction`` still cover them, so
        ``errors[held_out]`` are errors on positions it has not seen. Dictionary
        learning fits every position (empty). Empty also where the recorded
        ``n_validation_positions`` does not match the split drawn again.
        """
        from ..models.vae_data import validation_split

        n = int(self.attrs.get("n_validation_positions", 0))
        if self.kind != "beta_vae" or n == 0 or "random_state" not in self.attrs:
            return np.arange(0)
        held = validation_split(len(self.errors), float(self.attrs["validation_fraction"]),
                                int(self.attrs["random_state"]))[1]
        return held if held.size == n else np.arange(0)

    def decode(self, latents: np.ndarray) -> list[np.ndarray]:
        """Spectra generated from (n, channels) latent vectors / coefficients, per modality."""
        flat = np.asarray(self._decoder(np.asarray(latents, dtype=float)))
        return unstack_features(flat, self.steps)

    def decode_flat(self, latents: np.ndarray) -> np.ndarray:
        """Like :meth:`decode`, modalities concatenated (for :func:`latent_traversal`)."""
        return np.asarray(self._decoder(np.asarray(latents, dtype=float)))


def read_model_result(grp: h5py.Group) -> ModelResult:
    """Read a ``*-Dictionary_Learning_NNN`` or ``*-Beta_VAE_NNN`` group into arrays.

    The input loops are read again from the group's sources (object references) with
    its cycle/field selection and scaled with the stored scaler values, so data and
    reconstruction are in the same (scaled) units.

    Raises
    ------
    BEPSFormatError
        The group is not a complete result of either process.

    Examples
    --------
    >>> import os, tempfile
    >>> from pycroscopy_bevae import (LoopProjector, DictionaryLearningProcess,
    ...                               write_synthetic_beps)
    >>> path = write_synthetic_beps(os.path.join(tempfile.mkdtemp(), "s.h5"), shape=(6, 6))
    >>> with h5py.File(path, "r+") as f:
    ...     proj = LoopProjector(f, progress=False).compute()
    ...     grp = DictionaryLearningProcess(proj, n_components=3).compute()
    ...     res = read_model_result(grp)
    >>> res.embedding.shape, res.steps, res.names
    ((36, 3), [96, 96], ['Piezoresponse', 'Resonance'])
    """
    from ..io.loop_sources import LoopSources

    where = f"group '{grp.name}' in file '{grp.file.filename}'"
    kind = result_kind(grp.name)
    if kind not in LABELS:
        raise BEPSFormatError(f"{where} is not a dictionary-learning or beta-VAE result")
    needed = ("Reconstruction", "Reconstruction_Error", "Scaler_Mean", "Scaler_Std",
              "Coefficients" if kind == "dictionary" else "Embedding")
    missing = [n for n in needed if n not in grp]
    if missing or "num_source_dsets" not in grp.attrs:
        raise BEPSFormatError(f"{where} lacks {missing or ['num_source_dsets']}; expected a "
                              "complete results group")
    attrs = {k: (as_text(v) if isinstance(v, bytes) else v) for k, v in grp.attrs.items()
             if not isinstance(v, h5py.Reference)}
    sources = [grp.file[grp.attrs[f"source_{i:03d}"]]
               for i in range(int(grp.attrs["num_source_dsets"]))]
    cycle = attrs.get("cycle", -1)
    src = LoopSources.from_input(sources, cycle=int(cycle), field=as_text(attrs.get("field",
                                                                                  "off")))
    scaler = read_scaler(grp)
    data = scaler.transform(src.read())
    recon = unstack_features(grp["Reconstruction"][()].astype(float), src.steps)
    errors = grp["Reconstruction_Error"][:, 0].astype(float)
    if kind == "dictionary":
        embedding = grp["Coefficients"][()].astype(float)
        atoms = grp["Dictionary"][()].astype(float)
        active = active_components(embedding)

        def decoder(z):
            return z @ atoms
    else:
        embedding = grp["Embedding"][()].astype(float)
        active = np.asarray(attrs.get("Active_Channels", []), dtype=int).ravel()
        decoder = _vae_decoder(grp)
    return ModelResult(kind=kind, group=grp.name, label=LABELS[kind], embedding=embedding,
                       active=active, data=data, reconstruction=recon, errors=errors,
                       names=list(src.names), axis_values=np.asarray(src.axis_values),
                       grid_shape=tuple(int(v) for v in src.grid_shape), attrs=attrs,
                       scaler=scaler, _decoder=decoder)


def _vae_decoder(grp: h5py.Group) -> Callable:
    """A decoder that loads the stored model on first use (TensorFlow only when needed)."""
    file_name, name = grp.file.filename, grp.name
    cache: dict = {}

    def decoder(z: np.ndarray) -> np.ndarray:
        if "vae" not in cache:
            if grp.id.valid:
                cache["vae"] = load_beta_vae(grp)[0]
            else:  # the file was closed since: open it again, read-only
                with h5py.File(file_name, "r") as f:
                    cache["vae"] = load_beta_vae(f[name])[0]
        out = cache["vae"].decode(z)
        return np.moveaxis(out, 2, 1).reshape(len(out), -1)  # modality-major features

    return decoder


def read_ground_truth(h5: h5py.File) -> dict | None:
    """The ``/Ground_Truth`` of a synthetic file as arrays, or None for measured data.

    Returns
    -------
    dict or None
        ``mechanism`` (positions,) integer labels, ``mechanism_names``,
        ``loop_parameters`` {name: (positions,)}.
    """
    if "Ground_Truth" not in h5:
        return None
    gt = h5["Ground_Truth"]
    out: dict = {}
    if "Mechanism" in gt:
        out["mechanism"] = gt["Mechanism"][()].ravel()
        out["mechanism_names"] = [as_text(v) for v in gt["Mechanism"].attrs.get("labels", [])]
    if "Loop_Parameters" in gt:
        out["loop_parameters"] = {k: v[()] for k, v in gt["Loop_Parameters"].items()}
    return out


def read_loop_fit(grp: h5py.Group, cycle: int = -1, field: str = "off") -> dict[str, np.ndarray]:
    """The loop-fit parameters of one loop per position, from a ``*-Loop_Fit_NNN`` group.

    These are the "known physics" to read latent channels in: pass them to
    :func:`~pycroscopy_bevae.analysis.factor_scores` with an embedding to see which
    channel follows the coercive voltage, the loop height, the imprint (offset) ...

    Parameters
    ----------
    grp : h5py.Group
        A results group of :class:`~pycroscopy_bevae.LoopFitProcess`.
    cycle : int
        Cycle (0-based, negative from the end; default the last), as the models select.
    field : {'off', 'on'}
        Field of the loop (default remanent, off). Ignored without a ``Field`` dimension.

    Returns
    -------
    dict
        Parameter name (``Coercive_Voltage_Up``, ..., ``R2``) -> (positions,) values.

    Examples
    --------
    >>> import os, tempfile
    >>> from pycroscopy_bevae import LoopFitProcess, LoopProjector, write_synthetic_beps
    >>> path = write_synthetic_beps(os.path.join(tempfile.mkdtemp(), "s.h5"), shape=(4, 4))
    >>> with h5py.File(path, "r+") as f:
    ...     proj = LoopProjector(f, progress=False).compute()
    ...     fit = LoopFitProcess(proj["Piezoresponse"], progress=False).compute()
    ...     params = read_loop_fit(fit)
    >>> sorted(params)[:3], params["Coercive_Voltage_Up"].shape
    (['Amplitude', 'Coercive_Voltage_Down', 'Coercive_Voltage_Up'], (16,))
    """
    from ..models.loop_fit import LOOP_PARAMETERS

    missing = [k for k in (*LOOP_PARAMETERS, "R2") if not isinstance(grp.get(k), h5py.Dataset)]
    if missing:
        raise BEPSFormatError(f"group '{grp.name}' in file '{grp.file.filename}' is not a loop "
                              f"fit: no {', '.join(missing)}")
    vals = grp.file[grp["R2"].attrs["Spectroscopic_Values"]]
    labels = [as_text(x) for x in np.atleast_1d(vals.attrs["labels"])]
    table = np.atleast_2d(vals[()])
    keep = np.ones(table.shape[1], dtype=bool)
    if "Cycle" in labels:
        cycles = np.unique(table[labels.index("Cycle")])
        if not -len(cycles) <= cycle < len(cycles):
            raise BEPSFormatError(f"loop fit '{grp.name}' has {len(cycles)} cycle(s); cycle "
                                  f"{cycle} does not exist")
        keep &= table[labels.index("Cycle")] == cycles[cycle]
    if "Field" in labels:
        keep &= table[labels.index("Field")] == (1 if field == "on" else 0)
    cols = np.flatnonzero(keep)
    if cols.size == 0:
        raise BEPSFormatError(f"loop fit '{grp.name}' has no loop for cycle {cycle}, field "
                              f"{field!r}")
    return {k: grp[k][:, cols[0]] for k in (*LOOP_PARAMETERS, "R2")}
