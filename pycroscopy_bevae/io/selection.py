"""Reading the loops of one cycle and field from a BEPS dataset."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import h5py
import numpy as np

from ..exceptions import ParameterError
from .h5file import H5Source, open_h5
from .layout import LoopLayout, describe_loops
from .names import dataset_where
from .sho_fit import find_sho_fit, validate_sho_fit
from .sidpy_in import is_sidpy, sidpy_to_usid

__all__ = ["LoopSelection", "select_loops", "read_columns", "read_rows"]


@dataclass
class LoopSelection:
    """Loops of one cycle and field, as returned by :func:`select_loops`.

    Attributes
    ----------
    data : numpy.ndarray or dict
        (positions, steps) array; for a compound dataset a dict field -> array.
    dc_values : numpy.ndarray
        DC voltage of each step, acquisition order.
    columns : numpy.ndarray
        Column indices the steps came from.
    field_values : numpy.ndarray or None
        Field value (0 off, 1 on) of each step.
    cycle, field : int, str
        What was selected.
    layout : LoopLayout
        Layout of the source dataset.
    """

    data: np.ndarray | dict
    dc_values: np.ndarray
    columns: np.ndarray
    field_values: np.ndarray | None
    cycle: int
    field: str
    layout: LoopLayout


def select_loops(
    source: H5Source,
    cycle: int | None = None,
    field: str = "off",
    fields: tuple[str, ...] | None = None,
    fixed: Mapping[str, int] | None = None,
) -> LoopSelection:
    """Read the loops of one cycle and field from a BEPS dataset.

    Parameters
    ----------
    source : path, h5py.File, h5py.Group, h5py.Dataset or sidpy.Dataset
        A file or group (its SHO fit is located), any USID main dataset with
        a DC-bias dimension (an SHO ``Fit``, a ``Piezoresponse``...), or a sidpy dataset
        of loops (SPATIAL dimensions and one SPECTRAL dimension in volts).
    cycle : int, optional
        0-based cycle, negative counts from the end; default the last.
    field : {'off', 'on', 'both'}
        Out-of-field (remanent), in-field, or both in acquisition order.
    fields : tuple of str, optional
        For compound datasets, the fields to read (default all).
    fixed : mapping, optional
        Index along further spectroscopic dimensions (e.g. ``{'FORC': 1}``).

    Returns
    -------
    LoopSelection

    Examples
    --------
    >>> import tempfile, os
    >>> from pycroscopy_bevae.datasets import write_synthetic_beps
    >>> path = write_synthetic_beps(os.path.join(tempfile.mkdtemp(), "s.h5"), shape=(4, 5))
    >>> sel = select_loops(path, cycle=1, field="off", fields=("Amplitude [V]",))
    >>> sel.data["Amplitude [V]"].shape, sel.dc_values.shape
    ((20, 96), (96,))
    """
    if is_sidpy(source):  # through an in-memory HDF5 file
        with h5py.File(f"sidpy-{id(source)}.h5", "w", driver="core", backing_store=False) as mem:
            return select_loops(sidpy_to_usid(source, mem, name="Loops"), cycle=cycle,
                                field=field, fields=fields, fixed=fixed)
    with open_h5(source) as h5:
        dset = h5 if isinstance(h5, h5py.Dataset) else find_sho_fit(h5)
        layout = describe_loops(dset) if dset.dtype.names is None else validate_sho_fit(dset)
        cols = layout.columns(cycle=cycle, field=field, fixed=fixed)
        block = read_columns(dset, cols)
        if dset.dtype.names is not None:
            wanted = fields or tuple(dset.dtype.names)
            unknown = [f for f in wanted if f not in dset.dtype.names]
            if unknown:
                raise ParameterError(f"fields {unknown} not in {dataset_where(dset)}")
            data: np.ndarray | dict = {f: np.asarray(block[f], dtype=float) for f in wanted}
        else:
            data = np.asarray(block)
    n_cycles = layout.n_cycles
    return LoopSelection(
        data=data,
        dc_values=layout.dc_values[cols],
        columns=cols,
        field_values=None if layout.field_values is None else layout.field_values[cols],
        cycle=(n_cycles - 1) if cycle is None else int(cycle) % n_cycles,
        field=field,
        layout=layout,
    )


def read_columns(dset: h5py.Dataset, cols: np.ndarray, rows=None) -> np.ndarray:
    """Read the given sorted columns (of the given sorted rows) of a 2-D dataset efficiently.

    Consecutive rows are read as one slice (a hyperslab) rather than a point list, which
    HDF5 selects row by row (about 10x slower for blocks of thousands of rows).
    """
    if rows is None:
        rsel: slice | list = slice(None)
    else:
        r = np.asarray(rows)
        if r.size and r.ndim == 1 and int(r[-1]) - int(r[0]) + 1 == r.size and \
                np.all(np.diff(r) == 1):
            rsel = slice(int(r[0]), int(r[-1]) + 1)
        else:
            rsel = r.tolist()
    lo, hi = int(cols[0]), int(cols[-1]) + 1
    if hi - lo == cols.size:
        return dset[rsel, lo:hi]
    step = int(cols[1] - cols[0]) if cols.size > 1 else 1
    if step > 0 and np.array_equal(cols, np.arange(lo, hi, step)[: cols.size]):
        return dset[rsel, lo:hi:step]
    return dset[rsel, lo:hi][:, cols - lo]


def read_rows(dset: h5py.Dataset, positions: np.ndarray) -> np.ndarray:
    """Rows ``positions`` of a dataset in the order given, repeats allowed (h5py itself
    reads only increasing, distinct rows).

    Examples
    --------
    >>> with h5py.File("rows.h5", "w", driver="core", backing_store=False) as f:
    ...     d = f.create_dataset("a", data=np.arange(5) * 10)
    ...     read_rows(d, np.array([3, 1, 3]))
    array([30, 10, 30])
    """
    positions = np.asarray(positions, dtype=int)
    uniq, inverse = np.unique(positions, return_inverse=True)
    return dset[uniq.tolist()][np.asarray(inverse).ravel()]
