"""``SHOFitProcess``: band-excitation ``Raw_Data`` -> the SHO ``Guess`` and ``Fit`` in HDF5."""

from __future__ import annotations

import logging

import h5py
import numpy as np
from pyUSID.io.hdf_utils import get_attr, write_reduced_anc_dsets
from sidpy.base.num_utils import integers_to_slices

from ..exceptions import BEPSFormatError, ParameterError
from ..io.names import SHO_FIELDS, spectroscopic_names
from ..io.selection import read_rows
from ..io.sidpy_raw import raw_input
from ..io.usid import linked_ancillaries, quiet_pyusid, write_main
from ..models.sho_fit import fit_sho
from ..params import Integer, Real
from .base import ChunkedProcess

__all__ = ["SHOFitProcess", "find_raw_data"]

logger = logging.getLogger(__name__)

_MODEL = ("A e^{i phi} w0^2 / (w^2 - i w w0 / Q - w0^2) (BGlib's convention); guess: best "
          "shape of a (w0, Q) grid; fit: variable-projection batched Levenberg-Marquardt over "
          "w0 (bounded to the band) and log Q, v1")
#: The compound type BGlib writes (its ``sho32``, float64 fields despite the name; its
#: loop fitter accepts no other).
SHO_DTYPE = np.dtype([(name, np.float64) for name in SHO_FIELDS])
#: Default chunk budget (MB) and its ratio to the raw bytes read (the float64 working
#: arrays of the fit: about 20 complex128 / float64 values per complex64 bin).
_MAX_MEM_MB = 512
_MEM_MULTIPLIER = 24.0
_MIN_BINS = 4


class SHOFitProcess(ChunkedProcess):
    """Fit the simple-harmonic-oscillator model to every band-excitation spectrum of a
    ``Raw_Data`` dataset, and write the SHO ``Guess`` and ``Fit`` as BGlib does.

    Every spectrum (one per position and step of the other spectroscopic dimensions: DC
    step, field, cycle ...) is fit by :func:`pycroscopy_bevae.models.sho_fit.fit_sho`: a
    grid-of-shapes first guess and a batched, bounded Levenberg-Marquardt refinement, all
    spectra of a chunk of positions at once. The Frequency dimension may be anywhere in
    the spectroscopic order.

    Results go to ``Raw_Data-SHO_Fit_NNN`` next to the source: ``Guess`` and ``Fit``,
    compound datasets (positions x spectra, float64 fields ``Amplitude [V]``,
    ``Frequency [Hz]``, ``Quality Factor``, ``Phase [rad]``, ``R2 Criterion``) with the
    source's position ancillaries and the spectroscopic ancillaries without Frequency
    (``Spectroscopic_Indices`` / ``_Values``), exactly the layout of BGlib's
    ``BESHOfitter``, so :class:`~pycroscopy_bevae.LoopProjector` and BGlib's loop tools
    read it unchanged.

    Parameters
    ----------
    h5_main : h5py.Dataset or sidpy.Dataset
        The complex band-excitation response (``Raw_Data``), positions x spectroscopic
        steps, with a ``Frequency`` dimension (or the one dimension in Hz) of at least 4
        bins; or the same as a complex ``sidpy.Dataset`` (positions SPATIAL, frequency
        and bias SPECTRAL), written as USID into ``h5_target_group`` (required then).
    max_iter : int
        Levenberg-Marquardt iterations at most (default 100).
    tol : float
        Relative cost decrease below which a spectrum's fit stops (default 1e-10).
    progress : bool
        Show a tqdm progress bar.
    **kwargs
        ``pyUSID.processing.Process`` options (``h5_target_group``, ``max_mem_mb``,
        ``mem_multiplier``, ``verbose``); defaults ``max_mem_mb=512``,
        ``mem_multiplier=24`` keep the peak memory near 512 MB for any map size.

    Raises
    ------
    BEPSFormatError
        Before anything is written, when the data are not complex, have no frequency
        dimension, fewer than 4 bins, frequencies that differ between spectra, or
        non-finite values.

    Examples
    --------
    >>> import tempfile, os, h5py
    >>> from pycroscopy_bevae.datasets import write_synthetic_beps
    >>> path = write_synthetic_beps(os.path.join(tempfile.mkdtemp(), "s.h5"), shape=(3, 4),
    ...                             n_steps=16, raw_data=True)
    >>> with h5py.File(path, "r+") as f:
    ...     grp = SHOFitProcess(f["Measurement_000/Channel_000/Raw_Data"],
    ...                         progress=False).compute()
    ...     fit = grp["Fit"]
    ...     print(grp.name.rsplit("/", 1)[-1], fit.shape, fit.dtype.names[-1],
    ...           float(grp.attrs["r2_median"]) > 0.95)
    Raw_Data-SHO_Fit_001 (12, 64) R2 Criterion True
    """

    _progress_label = "SHO fit"
    result_names = ("Fit", "Guess")
    _resume_requires = ("Guess", "Fit")
    _parameter_constraints = {"max_iter": Integer(low=1), "tol": Real(low=0.0)}

    def __init__(self, h5_main: h5py.Dataset, *, max_iter: int = 100, tol: float = 1e-10,
                 progress: bool = True, **kwargs) -> None:
        # a sidpy input is validated, then written into h5_target_group (removed again if
        # the set-up fails)
        with raw_input(h5_main, kwargs.get("h5_target_group")) as h5:
            self._set_up(h5, max_iter, tol, progress, kwargs)

    def _set_up(self, h5_main, max_iter: int, tol: float, progress: bool, kwargs: dict
                ) -> None:
        if not isinstance(h5_main, h5py.Dataset):
            raise ParameterError(
                f"h5_main must be the band-excitation response (h5py.Dataset, e.g. "
                f"'Raw_Data'), got {type(h5_main).__name__}")
        p = self._check_parameters({"max_iter": max_iter, "tol": tol})
        self._columns, self._freqs, self._freq_label, self._keys = _describe_raw(h5_main)
        _check_finite(h5_main)
        self.progress = progress
        parms = {"max_iter": p["max_iter"], "tol": float(p["tol"]), "model": _MODEL,
                 "SHO_guess_method": "pycroscopy_bevae grid of shapes",
                 "SHO_fit_method": "pycroscopy_bevae batched Levenberg-Marquardt"}
        kwargs.setdefault("max_mem_mb", _MAX_MEM_MB)
        kwargs.setdefault("mem_multiplier", _MEM_MULTIPLIER)
        self._init_process(h5_main, "SHO_Fit", parms, **kwargs)

    # ---- numerics ---------------------------------------------------------------------
    def _fit(self, block: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Guess and Fit (compound, rows x spectra in this process's spectrum order)."""
        n, (n_spec, n_bins) = block.shape[0], self._columns.shape
        spectra = np.asarray(block)[:, self._columns].reshape(n * n_spec, n_bins)
        res = fit_sho(spectra, self._freqs, max_iter=self.parms_dict["max_iter"],
                      tol=self.parms_dict["tol"])
        out = []
        for params, r2 in ((res.guess, res.guess_r2), (res.parameters, res.r2)):
            comp = np.empty((n, n_spec), dtype=SHO_DTYPE)
            for k, name in enumerate(SHO_FIELDS[:4]):
                comp[name] = params[:, k].reshape(n, n_spec)
            comp["R2 Criterion"] = r2.reshape(n, n_spec)
            out.append(comp)
        return out[0], out[1]

    def _test(self, positions: np.ndarray) -> dict:
        """Guess and fit the spectra of the given positions.

        Returns
        -------
        dict
            ``positions``, ``guess`` and ``fit`` (positions x spectra, compound with the
            fields of ``SHO_FIELDS``, spectra in the order of the written ``Fit``).
        """
        guess, fit = self._fit(read_rows(self.h5_main, positions))
        return {"positions": positions, "guess": guess, "fit": fit}

    # ---- pyUSID Process hooks ---------------------------------------------------------
    def _provenance(self) -> dict:
        return {"source_dataset": self.h5_main.name, "frequency_dimension": self._freq_label}

    def _unit_computation(self, *args, **kwargs) -> None:
        self._results = self._fit(self.data)

    def _result_bytes(self) -> int:
        return 2 * self.h5_main.shape[0] * self._columns.shape[0] * SHO_DTYPE.itemsize

    def _create_results_datasets(self) -> None:
        src = self.h5_main
        grp = self._new_results_group()
        pos, _ = linked_ancillaries(grp, src, spec=False)
        with quiet_pyusid():
            inds, vals = write_reduced_anc_dsets(grp, src.h5_spec_inds, src.h5_spec_vals,
                                                 self._freq_label)
        spec = {"inds": inds, "vals": vals}
        n, n_spec = src.shape[0], self._columns.shape[0]
        self.h5_guess = write_main(grp, (n, n_spec), "Guess", "SHO", "compound", pos, spec,
                                   dtype=SHO_DTYPE)
        self.h5_fit = write_main(grp, (n, n_spec), "Fit", "SHO", "compound", pos, spec,
                                 dtype=SHO_DTYPE)
        self._order = self._match(inds)

    def _get_existing_datasets(self) -> None:
        grp = self.h5_results_grp
        self.h5_guess, self.h5_fit = grp["Guess"], grp["Fit"]
        self._order = self._match(grp.file[self.h5_fit.attrs["Spectroscopic_Indices"]])

    def _match(self, h5_red_inds: h5py.Dataset) -> np.ndarray:
        """For each column of the written (Frequency-free) spectroscopic indices, the
        matching spectrum of :attr:`_columns`."""
        labels = [str(x) for x in get_attr(h5_red_inds, "labels")]
        red = np.asarray(h5_red_inds[()])
        if not self._keys:  # only a Frequency dimension (BE-line): one spectrum
            return np.zeros(1, dtype=int)
        keys = np.stack([self._keys[lab] for lab in labels])
        order = np.empty(red.shape[1], dtype=int)
        for j in range(red.shape[1]):
            order[j] = np.flatnonzero((keys == red[:, j:j + 1]).all(axis=0))[0]
        return order

    def _write_results_chunk(self) -> None:
        guess, fit = self._results
        order = self._order
        pixels = self._get_pixels_in_current_batch()
        start = 0
        for sl in integers_to_slices(pixels):
            stop = start + (sl.stop - sl.start)
            self.h5_guess[sl] = guess[start:stop, order]
            self.h5_fit[sl] = fit[start:stop, order]
            start = stop
        self._advance(len(pixels))

    def _finalize(self) -> None:
        grp = self.h5_results_grp
        if "r2_median" not in grp.attrs:
            r2 = grp["Fit"]["R2 Criterion"]
            grp.attrs["r2_median"] = float(np.nanmedian(r2)) if np.isfinite(r2).any() else \
                float("nan")
            logger.info("SHO fit: median R2 %.4f over %d spectra", grp.attrs["r2_median"],
                        r2.size)


def _describe_raw(dset: h5py.Dataset) -> tuple[np.ndarray, np.ndarray, str, dict]:
    """Validate a band-excitation response and map its columns to spectra.

    Returns ``columns`` ((spectra, bins): the columns of each spectrum, by increasing
    frequency index), the bin frequencies, the name of the frequency dimension and, per
    other spectroscopic dimension, the index of each spectrum along it."""
    from pyUSID.io.hdf_utils import check_if_main

    where = f"dataset '{dset.name}' in file '{dset.file.filename}'"
    if not np.issubdtype(dset.dtype, np.complexfloating):
        raise BEPSFormatError(f"{where} holds {dset.dtype} values; expected the complex "
                              "band-excitation response (e.g. Raw_Data, complex64)")
    if dset.ndim != 2 or not check_if_main(dset):
        raise BEPSFormatError(f"{where} is not a USID main dataset (positions x "
                              "spectroscopic steps with ancillary datasets); expected the "
                              "translated Raw_Data")
    f = dset.file
    h5_inds = f[dset.attrs["Spectroscopic_Indices"]]
    labels, units = spectroscopic_names(h5_inds)
    label = "Frequency" if "Frequency" in labels else None
    if label is None:
        hz = [lab for lab, u in zip(labels, units, strict=False) if u.strip().lower() == "hz"]
        label = hz[0] if len(hz) == 1 else None
    if label is None:
        raise BEPSFormatError(f"{where} has no frequency dimension (spectroscopic dimensions "
                              f"{labels}); expected one named 'Frequency' or in Hz")
    inds = np.asarray(h5_inds[()], dtype=np.int64)
    vals = np.asarray(f[dset.attrs["Spectroscopic_Values"]][()], dtype=float)
    row = labels.index(label)
    others = [i for i in range(len(labels)) if i != row]
    key = inds[others] if others else np.zeros((1, inds.shape[1]), dtype=np.int64)
    _, first, inverse = np.unique(key, axis=1, return_index=True, return_inverse=True)
    inverse = np.asarray(inverse).ravel()
    counts = np.bincount(inverse)
    if counts.min() != counts.max():
        raise BEPSFormatError(f"{where}: the spectra have different numbers of frequency "
                              f"bins ({counts.min()} to {counts.max()}); expected one band")
    n_bins = int(counts[0])
    if n_bins < _MIN_BINS:
        raise BEPSFormatError(f"{where}: a band of {n_bins} frequency bin(s); an SHO fit "
                              f"needs at least {_MIN_BINS}")
    spectra = np.argsort(first)  # spectra in acquisition order
    columns = np.stack([np.flatnonzero(inverse == k) for k in spectra])
    columns = np.take_along_axis(columns, np.argsort(inds[row][columns], axis=1), axis=1)
    freqs = vals[row][columns]
    if not np.allclose(freqs, freqs[:1], rtol=1e-9, atol=0):
        raise BEPSFormatError(f"{where}: the frequency bins differ between spectra; expected "
                              "the same band for every step")
    freqs = freqs[0]
    if not (np.isfinite(freqs).all() and (freqs > 0).all()
            and np.unique(freqs).size == freqs.size):
        raise BEPSFormatError(f"{where}: frequencies {freqs.tolist()} are not distinct, "
                              "finite and positive")
    keys = {labels[i]: inds[i][columns[:, 0]] for i in others}
    return columns, freqs, label, keys


def _check_finite(dset: h5py.Dataset) -> None:
    """Refuse non-finite values (read a block of rows at a time)."""
    rows = max(1, (1 << 24) // max(1, dset.shape[1] * dset.dtype.itemsize))
    for start in range(0, dset.shape[0], rows):
        block = dset[start:start + rows]
        bad = ~np.isfinite(block)
        if bad.any():
            r, c = np.argwhere(bad)[0]
            raise BEPSFormatError(
                f"dataset '{dset.name}' in file '{dset.file.filename}' has non-finite values "
                f"({int(bad.sum())} in rows {start}..{start + block.shape[0] - 1}; first at "
                f"position {start + r}, column {c}); expected a finite response in every bin")


def find_raw_data(h5_obj: h5py.File | h5py.Group) -> h5py.Dataset:
    """The ``Raw_Data`` dataset (complex band-excitation response) of a BEPS file.

    Parameters
    ----------
    h5_obj : h5py.File or h5py.Group
        Searched recursively; with several, the first in alphabetical order.

    Returns
    -------
    h5py.Dataset

    Raises
    ------
    BEPSFormatError
        When there is none.

    Examples
    --------
    >>> import tempfile, os, h5py
    >>> from pycroscopy_bevae.datasets import write_synthetic_beps
    >>> path = write_synthetic_beps(os.path.join(tempfile.mkdtemp(), "s.h5"), shape=(2, 2),
    ...                             n_steps=8, raw_data=True)
    >>> with h5py.File(path, "r") as f:
    ...     print(find_raw_data(f).name)
    /Measurement_000/Channel_000/Raw_Data
    """
    found: list[str] = []

    def _visit(name: str, obj) -> None:
        if isinstance(obj, h5py.Dataset) and name.rsplit("/", 1)[-1] == "Raw_Data":
            found.append(obj.name)

    h5_obj.visititems(_visit)
    if not found:
        raise BEPSFormatError(f"no 'Raw_Data' dataset under '{h5_obj.name}' in file "
                              f"'{h5_obj.file.filename}'; expected the band-excitation "
                              "response as the translator writes it")
    return h5_obj.file[sorted(found)[0]]
