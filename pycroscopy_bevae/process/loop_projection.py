"""``LoopProjector``: SHO fits -> piezoresponse and resonance-frequency loops in HDF5."""

from __future__ import annotations

import logging
import warnings

import h5py
import numpy as np
from pyUSID.io.hdf_utils import write_reduced_anc_dsets
from sidpy.base.num_utils import integers_to_slices

from ..exceptions import BEPSFormatError, DataQualityWarning
from ..io.layout import loop_columns, match_loops
from ..io.selection import read_rows
from ..io.sho_fit import check_fits_usable, find_sho_fit, validate_sho_fit
from ..io.usid import linked_ancillaries, make_dims, quiet_pyusid, write_main
from ..models.projection import ProjectionResult, project_loops
from ..parallel import active_pool
from ..params import Choice, Flag, Real
from .base import ChunkedProcess, accepts_sidpy

__all__ = ["LoopProjector"]

logger = logging.getLogger(__name__)

_ALGORITHM = "principal axis of the centred complex response (closed form), v1"

#: Default memory budget of one chunk (MB) and its ratio to the SHO fit bytes read: the
#: block, the projection's float64 temporaries and the previous chunk's results peak at
#: ~9x the float32 compound (measured: 68 kB per 384-step position of 7.7 kB).
_MAX_MEM_MB = 512
_MEM_MULTIPLIER = 9.0


class LoopProjector(ChunkedProcess):
    """Project BEPS SHO fits to piezoresponse loops ``A cos(phi + theta)``.

    For each position the rotation angle ``theta`` that puts the complex response
    ``A exp(i phi)`` on the real axis is found in closed form (principal axis of
    the centred response, see :mod:`pycroscopy_bevae.models.projection`); its sign
    is chosen so that every loop correlates positively with the DC bias (or
    negatively, ``sign='negative'``).  Resonance-frequency loops come from the SHO
    ``Frequency``.  Rejected fits (non-finite values, ``R2 < r2_threshold``) are
    interpolated along their loop and counted per position.

    Results go to ``<Fit group>/Fit-Loop_Projection_NNN``: USID main datasets
    ``Piezoresponse`` (V) and ``Resonance`` (Hz) over the same dimensions as the
    SHO fit, ``Rotation_Angle`` (rad; positions x 1, or positions x loops for
    ``per='loop'``), and ``Rejected_Fits`` (count per position).

    Parameters
    ----------
    h5_main : h5py.Dataset, h5py.File, h5py.Group or mapping of sidpy.Dataset
        The SHO ``Fit`` dataset, or an open file/group in which it is located.
        The file must be open for writing (``'r+'``) unless ``h5_target_group``
        points to a writable group elsewhere. Or the SHO fit as sidpy datasets, as
        SciFiReaders returns it: ``{'Amplitude': ds, 'Frequency': ds, 'Quality Factor':
        ds, 'Phase': ds, 'R2 Criterion': ds}`` (each e.g. X x Y x Cycle x DC x Field,
        the bias a SPECTRAL dimension in volts, whatever its name); they are written as
        one USID ``Fit`` into ``h5_target_group`` (required then) and projected there.
    per : {'position', 'loop'}
        One rotation angle per position from all its loops (default, robust), or
        one per loop (what BGlib's ``projectLoop`` does).
    r2_threshold : float
        SHO fits with a lower ``R2 Criterion`` are rejected (default 0.5).
    sign : {'positive', 'negative'}
        Orientation convention of the projected loops.
    fill_failed : bool
        Interpolate rejected fits along the loop (default) or write NaN.
    progress : bool
        Show a tqdm progress bar.
    **kwargs
        Passed to ``pyUSID.processing.Process`` (``max_mem_mb``, ``mem_multiplier``,
        ``cores``, ``h5_target_group``, ``verbose``). Positions are read, projected and
        written in chunks of ``max_mem_mb / (mem_multiplier x bytes per SHO position)``;
        the defaults here, ``max_mem_mb=512`` and ``mem_multiplier=9.0`` (the float64
        working arrays of the projection take about 8 times the SHO fit they come
        from), keep the peak memory near 512 MB above the interpreter's for any map
        size (pyUSID's own default, 4 GB counted for the source alone, would read a
        256 x 256 map in one go and peak above 4 GB).

    Examples
    --------
    >>> import tempfile, os, h5py
    >>> from pycroscopy_bevae.datasets import write_synthetic_beps
    >>> path = write_synthetic_beps(os.path.join(tempfile.mkdtemp(), "s.h5"), shape=(4, 5))
    >>> with h5py.File(path, "r+") as f:
    ...     proj = LoopProjector(f, progress=False)
    ...     grp = proj.compute()
    ...     print(grp.name.split("/")[-1], grp["Piezoresponse"].shape)
    Fit-Loop_Projection_000 (20, 384)
    """

    _progress_label = "Loop projection"
    result_names = ("Piezoresponse", "Resonance", "Rotation_Angle")
    _resume_requires = ("Piezoresponse", "Resonance", "Rotation_Angle", "Rejected_Fits")
    _parameter_constraints = {"per": Choice(("position", "loop")),
                              "sign": Choice(("positive", "negative")),
                              "fill_failed": Flag(), "r2_threshold": Real()}
    _test_positions = None  # four positions spread over the map

    @accepts_sidpy
    def __init__(
        self,
        h5_main: h5py.Dataset | h5py.File | h5py.Group,
        *,
        per: str = "position",
        r2_threshold: float = 0.5,
        sign: str = "positive",
        fill_failed: bool = True,
        progress: bool = True,
        **kwargs,
    ) -> None:
        checked = self._check_parameters(
            {"per": per, "sign": sign, "fill_failed": fill_failed, "r2_threshold": r2_threshold})
        per, sign, fill_failed = checked["per"], checked["sign"], checked["fill_failed"]
        r2_threshold = float(checked["r2_threshold"])
        fit = find_sho_fit(h5_main)
        self.layout = validate_sho_fit(fit)
        check_fits_usable(fit, r2_threshold)  # an all-NaN or all-rejected fit: refuse now
        self._loop_columns = loop_columns(self.layout)
        dc = self.layout.dc_values[self._loop_columns]
        flat = [i for i, loop in enumerate(dc) if np.unique(loop).size < 2]
        if flat:
            raise BEPSFormatError(
                f"dataset '{fit.name}' in file '{fit.file.filename}': loop {flat[0]} has "
                f"{dc[flat[0]].size} step(s) at a single DC_Offset value "
                f"({float(dc[flat[0]][0]):g} V); loop projection fixes the sign of each loop "
                "by its correlation with the DC bias and needs a bias sweep (at least 2 "
                "distinct DC_Offset values per loop)")
        self.progress = progress
        parms = {
            "per": per,
            "r2_threshold": r2_threshold,
            "sign": sign,
            "fill_failed": bool(fill_failed),
            "algorithm": _ALGORITHM,
        }
        kwargs.setdefault("max_mem_mb", _MAX_MEM_MB)
        kwargs.setdefault("mem_multiplier", _MEM_MULTIPLIER)
        self._init_process(fit, "Loop_Projection", parms, **kwargs)

    # ---- numerics on a block of rows --------------------------------------------------
    def _project(self, block: np.ndarray) -> ProjectionResult:
        cols = self._loop_columns
        shared = {"cols": cols, "dc": self.layout.dc_values[cols],
                  "parms": {k: self.parms_dict[k] for k in
                            ("r2_threshold", "per", "sign", "fill_failed")}}
        pool = active_pool()
        if pool is None:
            return _project_block(block, **shared)
        # under run_mpi: every rank projects a share of the positions
        parts = pool.map(_project_block, block, **shared)
        return ProjectionResult(
            *(np.concatenate([getattr(r, f) for r in parts]) for f in
              ("piezoresponse", "resonance", "rotation_angle", "valid")),
            n_failed=sum(r.n_failed for r in parts))

    def _test(self, positions: np.ndarray) -> dict:
        """Project the given positions (repeats and any order allowed).

        Returns
        -------
        dict
            ``piezoresponse``, ``resonance`` (positions, loops, steps), ``rotation_angle``,
            ``dc`` (loops, steps), ``positions`` and ``n_rejected``.
        """
        res = self._project(read_rows(self.h5_main, positions))
        return {
            "piezoresponse": res.piezoresponse,
            "resonance": res.resonance,
            "rotation_angle": res.rotation_angle,
            "dc": self.layout.dc_values[self._loop_columns],
            "positions": positions,
            "n_rejected": int((~res.valid).sum()),
        }

    # ---- pyUSID Process hooks ---------------------------------------------------------
    def _provenance(self) -> dict:
        return {"source_dataset": self.h5_main.name, "sign_convention": (
            "projected loops correlate positively with DC bias" if self.parms_dict["sign"] ==
            "positive" else "projected loops correlate negatively with DC bias")}

    def _unit_computation(self, *args, **kwargs) -> None:
        self._results = self._project(self.data)

    def _result_bytes(self) -> int:
        n, m = self.h5_main.shape
        size = np.result_type(self.h5_main.dtype["Amplitude [V]"], np.float32).itemsize
        return n * (2 * m * size + 8 * len(self._loop_columns) + 3)

    def _create_results_datasets(self) -> None:
        src = self.h5_main
        grp = self._new_results_group()
        n, m = src.shape
        fdt = np.result_type(src.dtype["Amplitude [V]"], np.float32)
        pos, spec = linked_ancillaries(grp, src)
        self.h5_piezo = write_main(grp, (n, m), "Piezoresponse", "Piezoresponse", "V", pos, spec,
                                   dtype=fdt)
        self.h5_resonance = write_main(grp, (n, m), "Resonance", "Resonance Frequency", "Hz",
                                       pos, spec, dtype=fdt)
        if self.parms_dict["per"] == "loop":
            with quiet_pyusid():
                inds, vals = write_reduced_anc_dsets(grp, src.h5_spec_inds, src.h5_spec_vals,
                                                     self.layout.dc_label, basename="Loop")
            angle_spec: dict | list = {"inds": inds, "vals": vals}
            self._angle_order = match_loops(src, inds, self._loop_columns)
            n_angle = inds.shape[1]
        else:
            angle_spec = make_dims([("Loop", "", [0])])
            self._angle_order = None
            n_angle = 1
        self.h5_angle = write_main(grp, (n, n_angle), "Rotation_Angle", "Rotation Angle", "rad",
                                   pos, angle_spec, dtype=np.float64, aux_spec_prefix="Loop_")
        self.h5_rejected = grp.create_dataset("Rejected_Fits", shape=(n,), dtype=np.uint16)
        self.h5_rejected.attrs["description"] = "number of SHO fits rejected per position"

    def _get_existing_datasets(self) -> None:
        grp = self.h5_results_grp
        self.h5_piezo = grp["Piezoresponse"]
        self.h5_resonance = grp["Resonance"]
        self.h5_angle = grp["Rotation_Angle"]
        self.h5_rejected = grp["Rejected_Fits"]
        self._angle_order = None
        if self.parms_dict["per"] == "loop":
            self._angle_order = match_loops(self.h5_main, grp.file[
                self.h5_angle.attrs["Spectroscopic_Indices"]], self._loop_columns)

    def _write_results_chunk(self) -> None:
        res: ProjectionResult = self._results
        pixels = self._get_pixels_in_current_batch()
        cols = self._loop_columns.ravel()
        n = len(pixels)
        piezo = np.empty((n, self.h5_main.shape[1]), dtype=self.h5_piezo.dtype)
        reso = np.empty_like(piezo)
        piezo[:, cols] = res.piezoresponse.reshape(n, -1)
        reso[:, cols] = res.resonance.reshape(n, -1)
        angle = res.rotation_angle if self._angle_order is None else \
            res.rotation_angle[:, self._angle_order]
        rejected = (~res.valid).reshape(n, -1).sum(axis=1)
        start = 0
        for sl in integers_to_slices(pixels):
            stop = start + (sl.stop - sl.start)
            self.h5_piezo[sl] = piezo[start:stop]
            self.h5_resonance[sl] = reso[start:stop]
            self.h5_angle[sl] = angle[start:stop]
            self.h5_rejected[sl] = rejected[start:stop]
            start = stop
        self._advance(n)

    def _finalize(self) -> None:
        grp = self.h5_results_grp
        if "n_rejected_fits" not in grp.attrs:
            n_rej = int(grp["Rejected_Fits"][()].sum())
            grp.attrs["n_rejected_fits"] = n_rej
            pool = active_pool()
            grp.attrs["mpi_ranks"] = 1 if pool is None else pool.size
            total = self.h5_main.shape[0] * self.h5_main.shape[1]
            logger.info("loop projection: %d of %d SHO fits rejected (%.2f%%) and interpolated",
                        n_rej, total, 100 * n_rej / total)
            if n_rej:
                _warn_rejected(grp, self.h5_main, n_rej, self.parms_dict)


def _project_block(block: np.ndarray, cols: np.ndarray, dc: np.ndarray,
                   parms: dict) -> ProjectionResult:
    """Project the loops of a block of SHO-fit rows (one rank's share under MPI)."""
    return project_loops(block["Amplitude [V]"][:, cols], block["Phase [rad]"][:, cols], dc,
                         frequency=block["Frequency [Hz]"][:, cols],
                         r2=block["R2 Criterion"][:, cols], **parms)


def _warn_rejected(grp: h5py.Group, fit: h5py.Dataset, n_rej: int, parms: dict) -> None:
    """Warn once per projection about rejected SHO fits, and record the positions left NaN
    (every fit of one of their loops rejected) in the ``n_positions_with_nan`` attribute."""
    n_nan = 0
    if parms["fill_failed"]:
        piezo = grp["Piezoresponse"]
        rows = max(1, (1 << 20) // piezo.shape[1])
        for start in range(0, piezo.shape[0], rows):
            n_nan += int(np.isnan(piezo[start:start + rows]).any(axis=1).sum())
        grp.attrs["n_positions_with_nan"] = n_nan
    total = fit.shape[0] * fit.shape[1]
    done = "interpolated along their loops" if parms["fill_failed"] else \
        "left NaN (fill_failed=False)"
    msg = (f"loop projection of dataset '{fit.name}' in file '{fit.file.filename}': {n_rej} of "
           f"{total} SHO fits ({100 * n_rej / total:.2g}%) rejected (non-finite, or R2 "
           f"Criterion < {parms['r2_threshold']}) and {done}")
    if n_nan:
        msg += (f"; {n_nan} position(s) have a loop with no usable fit at all and keep NaN "
                f"values in '{grp.name}'")
    warnings.warn(msg, DataQualityWarning, stacklevel=2)
