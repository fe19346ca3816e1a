"""``LoopFitProcess``: the 9-parameter loop model fit to projected loops, in HDF5."""

from __future__ import annotations

import logging
import warnings

import h5py
import numpy as np
from pyUSID.io.hdf_utils import write_reduced_anc_dsets
from sidpy.base.num_utils import integers_to_slices

from ..exceptions import BEPSFormatError, DataQualityWarning, ParameterError
from ..io.layout import describe_loops, loop_columns, match_loops
from ..io.provenance import require_complete
from ..io.selection import read_rows
from ..io.usid import as_text, linked_ancillaries, make_dims, quiet_pyusid, write_main
from ..models.loop_fit import LOOP_PARAMETERS, fit_loops, sweeps_both_ways
from ..params import Integer, Real
from .base import ChunkedProcess, accepts_sidpy

__all__ = ["LoopFitProcess"]

logger = logging.getLogger(__name__)

_MODEL = ("offset + amplitude/2 erf((V - Vc)/w) + slope V per branch; Vc and the widths "
          "(below / above Vc) of the rising and of the falling branch; batched "
          "Levenberg-Marquardt, v1")


class LoopFitProcess(ChunkedProcess):
    """Fit the 9-parameter hysteresis-loop model to every loop of a projected dataset.

    The model (:mod:`pycroscopy_bevae.models.loop_fit`) describes each loop by its
    offset, amplitude, the coercive voltages of the rising (``Up``) and the falling
    (``Down``) branch, a linear slope and four branch widths, the physical vocabulary
    latent channels are read in. Every loop of every position (each cycle and field) is
    fit; the rising and falling steps are read from the DC waveform, so loops acquired
    in any order are handled. Positions are fit a chunk at a time, all loops of a chunk
    at once.

    Results go to ``<source>-Loop_Fit_NNN`` next to the source (e.g.
    ``Piezoresponse-Loop_Fit_000``): one USID main dataset per parameter (``Offset``,
    ``Amplitude``, ``Coercive_Voltage_Up``, ``Coercive_Voltage_Down``, ``Slope``,
    ``Width_Up_Low``, ``Width_Up_High``, ``Width_Down_Low``, ``Width_Down_High``: positions
    x loops, with units), ``R2`` (positions x loops, against the loop fitted) and
    ``Fitted_Loops`` (the model, over the source's dimensions).

    Parameters
    ----------
    h5_main : h5py.Dataset or sidpy.Dataset
        A loop dataset with a DC-bias spectroscopic dimension, e.g. the
        ``Piezoresponse`` of a ``Fit-Loop_Projection_NNN`` group (a ``sidpy.Dataset`` is
        written as USID into ``h5_target_group``, required then, first).
    max_iter : int
        Levenberg-Marquardt iterations at most (default 200).
    tol : float
        Relative cost decrease below which a loop's fit stops (default 1e-6).
    progress : bool
        Show a tqdm progress bar.
    **kwargs
        ``pyUSID.processing.Process`` options (``h5_target_group``, ``max_mem_mb``,
        ``verbose``).

    Examples
    --------
    >>> import tempfile, os, h5py
    >>> from pycroscopy_bevae.datasets import write_synthetic_beps
    >>> from pycroscopy_bevae import LoopProjector
    >>> path = write_synthetic_beps(os.path.join(tempfile.mkdtemp(), "s.h5"), shape=(4, 5))
    >>> with h5py.File(path, "r+") as f:
    ...     proj = LoopProjector(f, progress=False).compute()
    ...     grp = LoopFitProcess(proj["Piezoresponse"], progress=False).compute()
    ...     print(grp.name.rsplit("/", 1)[-1], grp["Coercive_Voltage_Up"].shape,
    ...           grp["R2"][()].min() > 0.9)
    Piezoresponse-Loop_Fit_000 (20, 4) True
    """

    _progress_label = "Loop fit"
    result_names = ("Coercive_Voltage_Up", "Coercive_Voltage_Down", "Amplitude", "R2",
                    "Fitted_Loops")
    _resume_requires = ("Fitted_Loops", "R2", *LOOP_PARAMETERS)
    _parameter_constraints = {"max_iter": Integer(low=1), "tol": Real(low=0.0)}

    @accepts_sidpy
    def __init__(self, h5_main: h5py.Dataset, *, max_iter: int = 200, tol: float = 1e-6,
                 progress: bool = True, **kwargs) -> None:
        if not isinstance(h5_main, h5py.Dataset):
            raise ParameterError(
                f"h5_main must be a loop dataset (h5py.Dataset, e.g. the Piezoresponse of a "
                f"loop projection), got {type(h5_main).__name__}")
        if h5_main.dtype.names is not None:
            raise BEPSFormatError(
                f"dataset '{h5_main.name}' in file '{h5_main.file.filename}' has a compound "
                "dtype (an SHO fit?); expected projected loops: run LoopProjector first and "
                "pass its Piezoresponse")
        p = self._check_parameters({"max_iter": max_iter, "tol": tol})
        require_complete(h5_main)  # never fit an interrupted projection's rows
        self.layout = describe_loops(h5_main)
        self._loop_columns = loop_columns(self.layout)
        dc = self.layout.dc_values[self._loop_columns]
        for j, loop in enumerate(dc):
            if not sweeps_both_ways(loop):
                raise BEPSFormatError(
                    f"dataset '{h5_main.name}' in file '{h5_main.file.filename}': loop {j} "
                    "does not sweep the DC bias up and down (expected a hysteresis loop)")
        n_par = len(LOOP_PARAMETERS)
        if self._loop_columns.shape[1] < 2 * n_par:
            raise BEPSFormatError(
                f"dataset '{h5_main.name}' in file '{h5_main.file.filename}': loops have "
                f"{self._loop_columns.shape[1]} DC steps; the {n_par}-parameter loop model "
                f"needs at least {2 * n_par} (twice its parameters) for a meaningful fit")
        self.n_unusable = _unusable_loops(h5_main, self._loop_columns)
        self.progress = progress
        parms = {"max_iter": p["max_iter"], "tol": float(p["tol"]), "model": _MODEL}
        self._init_process(h5_main, "Loop_Fit", parms, **kwargs)

    # ---- numerics ---------------------------------------------------------------------
    def _fit(self, block: np.ndarray):
        """Fit the loops of a block of rows: parameters (rows, loops, 9), r2, fitted."""
        cols = self._loop_columns
        n, n_loops = block.shape[0], cols.shape[0]
        params = np.empty((n, n_loops, 9))
        r2 = np.empty((n, n_loops))
        fitted = np.full(block.shape, np.nan)
        for j, c in enumerate(cols):
            res = fit_loops(block[:, c], self.layout.dc_values[c],
                            max_iter=self.parms_dict["max_iter"], tol=self.parms_dict["tol"])
            params[:, j], r2[:, j], fitted[:, c] = res.parameters, res.r2, res.fitted
        return params, r2, fitted

    def _test(self, positions: np.ndarray) -> dict:
        """Fit the loops of the given positions.

        Returns
        -------
        dict
            ``positions``, ``parameters`` (positions, loops, 9; loops in acquisition
            order, named by ``LOOP_PARAMETERS``), ``r2`` (positions, loops) and
            ``fitted`` (positions, steps).
        """
        params, r2, fitted = self._fit(np.asarray(read_rows(self.h5_main, positions),
                                                  dtype=float))
        return {"positions": positions, "parameters": params, "r2": r2, "fitted": fitted}

    # ---- pyUSID Process hooks ---------------------------------------------------------
    def _source_units(self) -> str:
        return as_text(self.h5_main.attrs.get("units", "a.u.")) or "a.u."

    def _provenance(self) -> dict:
        units = self._source_units()
        return {"source_dataset": self.h5_main.name, "parameters": list(LOOP_PARAMETERS),
                "parameter_units": [u.format(u=units) for u in LOOP_PARAMETERS.values()]}

    def _unit_computation(self, *args, **kwargs) -> None:
        self._results = self._fit(np.asarray(self.data, dtype=float))

    def _result_bytes(self) -> int:
        n, m = self.h5_main.shape
        return n * (m + 10 * self._loop_columns.shape[0]) * 8

    def _create_results_datasets(self) -> None:
        src = self.h5_main
        grp = self._new_results_group()
        units = self._source_units()
        n, m = src.shape
        pos, spec = linked_ancillaries(grp, src)
        n_loops = self._loop_columns.shape[0]
        if n_loops > 1:
            with quiet_pyusid():
                inds, vals = write_reduced_anc_dsets(grp, src.h5_spec_inds, src.h5_spec_vals,
                                                     self.layout.dc_label, basename="Loop")
            loop_spec: dict | list = {"inds": inds, "vals": vals}
            self._loop_order = match_loops(src, inds, self._loop_columns)
        else:
            loop_spec = make_dims([("Loop", "", [0])])
            self._loop_order = np.zeros(1, dtype=int)
        self.h5_params = {}
        for name, unit in LOOP_PARAMETERS.items():
            self.h5_params[name] = write_main(
                grp, (n, n_loops), name, name.replace("_", " "), unit.format(u=units), pos,
                loop_spec, dtype=np.float64, aux_spec_prefix="Loop_")
            if isinstance(loop_spec, list):  # the first dataset wrote the loop ancillaries
                loop_spec = {"inds": grp["Loop_Indices"], "vals": grp["Loop_Values"]}
        self.h5_r2 = write_main(grp, (n, n_loops), "R2", "Coefficient of determination", "a.u.",
                                pos, loop_spec, dtype=np.float64)
        self.h5_fitted = write_main(grp, (n, m), "Fitted_Loops", "Fitted " + as_text(
            src.attrs.get("quantity", "loop")), units, pos, spec, dtype=np.float64)

    def _get_existing_datasets(self) -> None:
        grp = self.h5_results_grp
        self.h5_params = {name: grp[name] for name in LOOP_PARAMETERS}
        self.h5_r2, self.h5_fitted = grp["R2"], grp["Fitted_Loops"]
        if self._loop_columns.shape[0] > 1:
            self._loop_order = match_loops(self.h5_main, grp.file[
                self.h5_r2.attrs["Spectroscopic_Indices"]], self._loop_columns)
        else:
            self._loop_order = np.zeros(1, dtype=int)

    def _write_results_chunk(self) -> None:
        params, r2, fitted = self._results
        order = self._loop_order
        pixels = self._get_pixels_in_current_batch()
        start = 0
        for sl in integers_to_slices(pixels):
            stop = start + (sl.stop - sl.start)
            for k, name in enumerate(LOOP_PARAMETERS):
                self.h5_params[name][sl] = params[start:stop, order, k]
            self.h5_r2[sl] = r2[start:stop, order]
            self.h5_fitted[sl] = fitted[start:stop]
            start = stop
        self._advance(len(pixels))

    def _finalize(self) -> None:
        grp = self.h5_results_grp
        if "r2_median" not in grp.attrs:
            grp.attrs["n_unusable_loops"] = self.n_unusable
            if self.n_unusable:
                warnings.warn(
                    f"loop fit of dataset '{self.h5_main.name}' in file "
                    f"'{self.h5_main.file.filename}': {self.n_unusable} loop(s) hold NaN/inf "
                    "values or are flat and are left NaN (parameters and R2)",
                    DataQualityWarning, stacklevel=3)
            r2 = grp["R2"][()]
            grp.attrs["r2_median"] = float(np.nanmedian(r2)) if np.isfinite(r2).any() else \
                float("nan")
            logger.info("loop fit: median R2 %.4f over %d loops", grp.attrs["r2_median"],
                        r2.size)


def _unusable_loops(dset: h5py.Dataset, loop_columns: np.ndarray) -> int:
    """Number of loops (position x loop) that hold a non-finite value or are flat, read in
    blocks of rows; refuses a dataset in which no loop can be fitted."""
    n, m = dset.shape
    rows = max(1, (32 * 2**20) // (8 * m))
    bad = 0
    for start in range(0, n, rows):
        block = np.asarray(dset[start:start + rows], dtype=float)[:, loop_columns]
        usable = np.isfinite(block).all(axis=2) & (np.ptp(np.nan_to_num(block), axis=2) > 0)
        bad += int((~usable).sum())
    if bad == n * loop_columns.shape[0]:
        raise BEPSFormatError(
            f"dataset '{dset.name}' in file '{dset.file.filename}': none of its "
            f"{bad} loops can be fitted (every loop holds NaN/inf values or is flat); "
            "expected finite loops that vary with the bias")
    return bad
