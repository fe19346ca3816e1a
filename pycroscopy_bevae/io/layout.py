"""How the spectroscopic columns of a USID BEPS dataset map to loops.

The spectroscopic dimensions are ``DC_Offset`` (always), ``Field`` (0 = out of
field / remanent, 1 = in field; optional) and ``Cycle`` (optional), in an
order of variation that is read from the file's ``Spectroscopic_Indices``,
never assumed; the position grid is read from ``Position_Indices`` the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import h5py
import numpy as np

from ..exceptions import BEPSFormatError, ParameterError
from ..params import Integer, check
from .names import FIELD_CHOICES, FIELD_NAMES, bias_label, dataset_where, spectroscopic_names
from .provenance import check_fits_memory, volts_per_unit
from .readable import check_readable

__all__ = ["LoopLayout", "describe_loops", "position_grid", "loop_columns", "match_loops"]


@dataclass(frozen=True)
class LoopLayout:
    """How the spectroscopic columns of a BEPS dataset map to loops.

    Attributes
    ----------
    file : str
        Path of the HDF5 file.
    dataset : str
        Path of the dataset inside the file.
    n_positions : int
        Number of rows (positions).
    grid_shape : tuple of int
        Position grid, slowest dimension first (e.g. ``(rows, cols)``).
    pos_labels : tuple of str
        Position dimension names, slowest first.
    spec_labels : tuple of str
        Spectroscopic dimension names as stored in the file.
    dc_index : numpy.ndarray
        DC step index of each column.
    dc_values : numpy.ndarray
        DC voltage of each column.
    field_values : numpy.ndarray or None
        ``Field`` value (0 off, 1 on) of each column, None without a Field dimension.
    cycle_index : numpy.ndarray
        Cycle number (0-based, acquisition order) of each column; zeros without a Cycle dimension.
    other_index : dict
        Index of each column along any further spectroscopic dimension (e.g. ``FORC``).
    n_steps : int
        DC steps per cycle.
    dc_label : str
        Name of the DC-bias dimension in the file (``DC_Offset``, or e.g. ``Voltage``).
    dc_units : str
        Units of the bias as recorded in the file (``dc_values`` are always volts:
        ``mV`` / ``kV`` values are converted).
    """

    file: str
    dataset: str
    n_positions: int
    grid_shape: tuple[int, ...]
    pos_labels: tuple[str, ...]
    spec_labels: tuple[str, ...]
    dc_index: np.ndarray
    dc_values: np.ndarray
    field_values: np.ndarray | None
    cycle_index: np.ndarray
    other_index: dict = field(default_factory=dict)
    n_steps: int = 0
    dc_label: str = "DC_Offset"
    dc_units: str = "V"

    @property
    def n_cycles(self) -> int:
        """Number of cycles in the dataset."""
        return int(self.cycle_index.max()) + 1

    @property
    def fields(self) -> tuple[str, ...]:
        """Field names present (``'off'``, ``'on'``), or ``()`` without a Field dimension."""
        if self.field_values is None:
            return ()
        return tuple(FIELD_NAMES[int(v)] for v in np.unique(self.field_values))

    def columns(
        self,
        cycle: int | None = None,
        field: str = "off",
        fixed: Mapping[str, int] | None = None,
    ) -> np.ndarray:
        """Column indices of one cycle and field, in acquisition order.

        Parameters
        ----------
        cycle : int, optional
            0-based cycle; negative values count from the end; default the last.
        field : {'off', 'on', 'both'}
            Remanent (out-of-field) steps, in-field steps, or both interleaved.
        fixed : mapping, optional
            Index to take along any further spectroscopic dimension (default 0).

        Returns
        -------
        numpy.ndarray
            Sorted column indices.
        """
        where = f"dataset '{self.dataset}' in file '{self.file}'"
        n_cycles = self.n_cycles
        if cycle is None:
            cycle = n_cycles - 1
        cycle = check("cycle", cycle, Integer())
        if not -n_cycles <= cycle < n_cycles:
            raise ParameterError(
                f"cycle={cycle} is out of range for {where}, which has {n_cycles} cycle(s) "
                f"(valid: 0..{n_cycles - 1})"
            )
        cycle = int(cycle) % n_cycles
        if field not in FIELD_CHOICES:
            raise ParameterError(f"field must be one of {FIELD_CHOICES}, got {field!r}")
        mask = self.cycle_index == cycle
        if self.field_values is not None and field != "both":
            want = 0 if field == "off" else 1
            if want not in self.field_values:
                raise ParameterError(
                    f"field='{field}' requested but {where} only has "
                    f"{', '.join(self.fields)}-field steps"
                )
            mask &= self.field_values == want
        fixed = dict(fixed or {})
        unknown = set(fixed) - set(self.other_index)
        if unknown:
            raise ParameterError(
                f"fixed dimension(s) {sorted(unknown)} not in {where}; "
                f"it has further dimensions {sorted(self.other_index)}"
            )
        for name, idx in self.other_index.items():
            want_idx = fixed.get(name, 0)
            if want_idx not in idx:
                raise ParameterError(
                    f"{name}={want_idx} is out of range for {where} "
                    f"(valid: 0..{int(idx.max())})"
                )
            mask &= idx == want_idx
        cols = np.flatnonzero(mask)
        if cols.size == 0:
            raise BEPSFormatError(f"no steps for cycle={cycle}, field='{field}' in {where}")
        return cols


def describe_loops(dset: h5py.Dataset) -> LoopLayout:
    """Read the spectroscopic layout of a USID main dataset with a ``DC_Offset`` dimension.

    Parameters
    ----------
    dset : h5py.Dataset
        A USID main dataset (positions x spectroscopic steps).

    Returns
    -------
    LoopLayout

    Raises
    ------
    BEPSFormatError
        If the dataset is not USID main, is empty, has no ``DC_Offset`` spectroscopic
        dimension, or its spectroscopic indices do not match its shape.

    Examples
    --------
    >>> import tempfile, os, h5py
    >>> from pycroscopy_bevae.datasets import write_synthetic_beps
    >>> from pycroscopy_bevae.io import find_sho_fit
    >>> path = write_synthetic_beps(os.path.join(tempfile.mkdtemp(), "s.h5"), shape=(4, 5))
    >>> with h5py.File(path, "r") as f:
    ...     layout = describe_loops(find_sho_fit(f))
    >>> layout.n_steps, layout.n_cycles, layout.fields, layout.grid_shape
    (96, 2, ('off', 'on'), (4, 5))
    """
    from pyUSID.io.hdf_utils import check_if_main

    where = dataset_where(dset)
    if not isinstance(dset, h5py.Dataset):
        raise ParameterError(f"expected an h5py.Dataset, got {type(dset).__name__}")
    if dset.ndim != 2:
        raise BEPSFormatError(f"{where} has shape {dset.shape}; expected 2-D (positions, steps)")
    if dset.shape[0] == 0 or dset.shape[1] == 0:
        raise BEPSFormatError(f"{where} is empty (shape {dset.shape}); expected positions x steps")
    check_readable(dset)
    try:
        is_main = check_if_main(dset)
    except Exception as exc:  # pyUSID raises assorted errors on malformed ancillaries
        raise BEPSFormatError(f"{where} has malformed USID ancillary datasets: {exc}") from exc
    if not is_main:
        raise BEPSFormatError(
            f"{where} is not a USID main dataset{_not_main_reason(dset)} (expected "
            "Position_/Spectroscopic_ Indices and Values datasets linked as attributes, "
            "matching its shape, plus 'quantity' and 'units')"
        )
    h5_spec_inds = dset.file[dset.attrs["Spectroscopic_Indices"]]
    h5_spec_vals = dset.file[dset.attrs["Spectroscopic_Values"]]
    h5_pos_inds = dset.file[dset.attrs["Position_Indices"]]
    labels, units = spectroscopic_names(h5_spec_inds)
    labels = tuple(labels)
    spec_inds = np.asarray(h5_spec_inds[()])
    spec_vals = np.asarray(h5_spec_vals[()], dtype=float)
    if spec_inds.ndim == 1:
        spec_inds = spec_inds[None, :]
        spec_vals = spec_vals[None, :]
    if spec_inds.shape != (len(labels), dset.shape[1]) or spec_vals.shape != spec_inds.shape:
        raise BEPSFormatError(
            f"{where}: spectroscopic indices have shape {spec_inds.shape} and values "
            f"{spec_vals.shape}, expected ({len(labels)}, {dset.shape[1]}) "
            "(one row per spectroscopic dimension, one column per step)"
        )
    for i, lab in enumerate(labels):
        bad = np.flatnonzero(~np.isfinite(spec_vals[i]))
        if bad.size:
            raise BEPSFormatError(
                f"{where}: Spectroscopic_Values of '{lab}' are not finite at {bad.size} "
                f"step(s) (first: step {int(bad[0])}, value {spec_vals[i, bad[0]]}); expected "
                "a finite value at every step")
        if np.issubdtype(spec_inds.dtype, np.floating) and not np.all(np.isfinite(spec_inds[i])):
            raise BEPSFormatError(
                f"{where}: Spectroscopic_Indices of '{lab}' are not finite; expected "
                "non-negative integers")
    dc_label = bias_label(labels, units)
    if dc_label is None:
        raise BEPSFormatError(
            f"{where} has spectroscopic dimensions {list(labels)}; expected a DC-bias "
            "dimension ('DC_Offset', or one named like 'DC Offset' / 'Voltage' / 'Bias', or "
            "the one dimension in volts)"
        )
    row = {lab: i for i, lab in enumerate(labels)}
    dc_index = spec_inds[row[dc_label]].astype(np.int64)
    dc_units = units[row[dc_label]]
    # the bias in volts whatever unit the file records (mV, kV; another unit is refused)
    dc_values = spec_vals[row[dc_label]] * volts_per_unit(
        dc_units, f"spectroscopic dimension '{dc_label}' of {where}")
    field_values = None
    if "Field" in row:
        field_values = np.rint(spec_vals[row["Field"]]).astype(np.int64)
        if not set(np.unique(field_values)) <= {0, 1}:
            raise BEPSFormatError(
                f"{where}: 'Field' values are {sorted(set(np.unique(field_values)))}; "
                "expected 0 (out of field) and/or 1 (in field) as BGlib writes"
            )
    if "Cycle" in row:
        # number cycles by first appearance (acquisition order)
        raw = spec_inds[row["Cycle"]]
        _, first = np.unique(raw, return_index=True)
        order = np.argsort(first)
        rank = np.empty_like(order)
        rank[order] = np.arange(order.size)
        cycle_index = rank[np.searchsorted(np.unique(raw), raw)].astype(np.int64)
    else:
        cycle_index = np.zeros(dset.shape[1], dtype=np.int64)
    other = {
        lab: spec_inds[i].astype(np.int64)
        for lab, i in row.items()
        if lab not in (dc_label, "Field", "Cycle")
    }
    if np.unique(spec_inds, axis=1).shape[1] != dset.shape[1]:
        raise BEPSFormatError(
            f"{where}: spectroscopic indices repeat a combination of {list(labels)}; "
            "expected each step to appear once"
        )
    for i, lab in enumerate(labels):
        pairs = np.unique(np.stack([spec_inds[i].astype(float), spec_vals[i]]), axis=1)
        if pairs.shape[1] != np.unique(spec_inds[i]).size:
            raise BEPSFormatError(
                f"{where}: spectroscopic values of '{lab}' disagree with its indices "
                "(one index has several values); expected one value per index"
            )
    key = np.stack([dc_index, cycle_index, *(other.values())] +
                   ([field_values] if field_values is not None else []))
    n_steps = int(np.unique(dc_index).size)
    # every loop (cycle x field x other) must have every DC step exactly once
    loop_key = key[1:]
    _, counts = np.unique(loop_key, axis=1, return_counts=True)
    if not np.all(counts == n_steps):
        raise BEPSFormatError(
            f"{where}: loops have {sorted(set(counts.tolist()))} steps; expected every "
            f"cycle/field to contain all {n_steps} DC steps"
        )
    pos_labels, grid_shape = position_grid(h5_pos_inds, dset.shape[0], where)
    return LoopLayout(
        file=str(dset.file.filename),
        dataset=str(dset.name),
        n_positions=int(dset.shape[0]),
        grid_shape=grid_shape,
        pos_labels=pos_labels,
        spec_labels=labels,
        dc_index=dc_index,
        dc_values=dc_values,
        field_values=field_values,
        cycle_index=cycle_index,
        other_index=other,
        n_steps=n_steps,
        dc_label=dc_label,
        dc_units=str(dc_units).strip() or "V",
    )


def _not_main_reason(dset: h5py.Dataset) -> str:
    """pyUSID's own explanation of why ``dset`` is not a main dataset, as ``': <reason>'``."""
    import contextlib
    import io

    from pyUSID.io.hdf_utils import check_if_main

    buf = io.StringIO()
    try:
        with contextlib.redirect_stdout(buf):
            check_if_main(dset, verbose=True)
    except Exception:  # the reason is a courtesy: the error is raised anyway
        pass
    lines = [ln.strip() for ln in buf.getvalue().splitlines() if ln.strip()]
    return f": {lines[-1]}" if lines else ""


def position_grid(
    h5_pos_inds: h5py.Dataset, n_positions: int, where: str
) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """Position labels and grid shape, slowest-varying dimension first.

    The column order of ``Position_Indices`` differs between writers, so the
    order of variation is read from the indices themselves (the stride at
    which each dimension first changes).  The rows must then enumerate the
    full grid once, in that order (what pyUSID needs to reshape the results).

    Raises
    ------
    BEPSFormatError
        Naming ``where``: indices that are not non-negative integers, repeated or
        missing grid points, or rows out of grid order.
    """
    from pyUSID.io.hdf_utils import get_attr

    labels = [str(x) for x in get_attr(h5_pos_inds, "labels")]
    # the checks below hold a few int64 copies of the indices: refused from the declared size
    check_fits_memory(h5_pos_inds.shape, 8, f"{where}: Position_Indices", copies=6)
    inds = np.asarray(h5_pos_inds[()])
    if inds.ndim == 1:
        inds = inds[:, None]
    if inds.dtype.kind not in "iuf" or inds.shape[0] != n_positions or (
            inds.dtype.kind == "f" and not np.all(np.isfinite(inds) & (inds == np.rint(inds)))):
        raise BEPSFormatError(
            f"{where}: Position_Indices have shape {inds.shape} and dtype {inds.dtype}; "
            f"expected integers, one row per position ({n_positions})")
    inds = inds.astype(np.int64)
    if inds.min() < 0:
        raise BEPSFormatError(f"{where}: Position_Indices contain negative values "
                              f"({int(inds.min())}); expected indices counted from 0")
    strides = []
    for i in range(inds.shape[1]):
        changed = np.flatnonzero(inds[:, i] != inds[0, i])
        strides.append(int(changed[0]) if changed.size else n_positions)
    order = np.argsort(strides, kind="stable")[::-1]  # largest stride = slowest first
    sizes = tuple(int(inds[:, i].max()) + 1 for i in order)
    names = tuple(labels[i] for i in order)
    grid = " x ".join(f"{n} 0..{s - 1}" for n, s in zip(names, sizes, strict=True))
    uniq, first, counts = np.unique(inds, axis=0, return_index=True, return_counts=True)
    if np.any(counts > 1):
        rep = int(np.argmax(counts > 1))
        rows = np.flatnonzero(np.all(inds == uniq[rep], axis=1))[:2].tolist()
        raise BEPSFormatError(
            f"{where}: Position_Indices repeat a position: rows {rows[0]} and {rows[1]} both "
            f"have indices {uniq[rep].tolist()} ({', '.join(labels)}); expected each position "
            "once")
    if int(np.prod(sizes)) != n_positions:
        raise BEPSFormatError(
            f"{where}: Position_Indices span a grid of {grid} = {int(np.prod(sizes))} "
            f"positions but the dataset has {n_positions} rows; expected every grid point "
            "exactly once (indices counted from 0)")
    expected = np.stack(np.unravel_index(np.arange(n_positions), sizes), axis=1)
    off = np.flatnonzero(np.any(inds[:, order] != expected, axis=1))
    if off.size:
        r = int(off[0])
        raise BEPSFormatError(
            f"{where}: Position_Indices are out of grid order: row {r} has "
            f"{dict(zip(names, inds[r, order].tolist(), strict=True))}, expected "
            f"{dict(zip(names, expected[r].tolist(), strict=True))} for a {grid} grid "
            "stored with the last dimension varying fastest")
    return names, sizes


def loop_columns(layout: LoopLayout) -> np.ndarray:
    """(loops, steps) column indices: loops in acquisition order, steps in acquisition order."""
    keys = [layout.cycle_index, *layout.other_index.values()]
    if layout.field_values is not None:
        keys.append(layout.field_values)
    key = np.stack(keys, axis=0)
    # loops ordered by their first column
    _, first, inverse = np.unique(key, axis=1, return_index=True, return_inverse=True)
    inverse = np.asarray(inverse).ravel()
    order = np.argsort(first)
    cols = [np.flatnonzero(inverse == k) for k in order]
    return np.stack(cols)


def match_loops(src, h5_red_inds: h5py.Dataset, loop_columns: np.ndarray) -> np.ndarray:
    """For each column of reduced (DC-free) spectroscopic indices, the matching loop number."""
    from pyUSID.io.hdf_utils import get_attr

    src_inds = np.asarray(src.h5_spec_inds[()])
    src_labels = [str(x) for x in get_attr(src.h5_spec_inds, "labels")]
    red = np.asarray(h5_red_inds[()])
    red_labels = [str(x) for x in get_attr(h5_red_inds, "labels")]
    rows = [src_labels.index(lab) for lab in red_labels]
    loop_keys = src_inds[rows][:, loop_columns[:, 0]]  # (dims, loops)
    order = np.empty(red.shape[1], dtype=int)
    for j in range(red.shape[1]):
        match = np.flatnonzero((loop_keys == red[:, j:j + 1]).all(axis=0))
        order[j] = match[0]
    return order
