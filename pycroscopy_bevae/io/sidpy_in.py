"""``sidpy.Dataset`` in: BEPS loops and SHO fits held as sidpy datasets (SciFiReaders,
pyNSID, sidpy's fitters) become USID main datasets the processes can work on.

The processes keep their results as complete USID groups, which must reference their
source; a sidpy input is therefore first written as a USID main dataset into the group
the user names (``h5_target_group``), with the dimension names, types and units of its
sidpy metadata, and the process runs on that copy. The same input written again is
recognised (same values and dimensions) and reused, so a second run with the same
parameters is found as a duplicate.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Mapping, Sequence

import h5py
import numpy as np

from ..exceptions import BEPSFormatError, ParameterError
from .beps import SHO_FIELDS, bias_label
from .usid import make_dims, write_main

__all__ = ["is_sidpy", "sidpy_to_usid", "sho_fit_from_sidpy", "usid_inputs"]


def is_sidpy(obj) -> bool:
    """Whether ``obj`` is a ``sidpy.Dataset`` (without importing sidpy otherwise)."""
    try:
        import sidpy
    except ImportError:  # pragma: no cover - sidpy is a dependency
        return False
    return isinstance(obj, sidpy.Dataset)


def _layout(ds, what: str):
    """Spatial axes, the bias axis and the other spectral axes of a sidpy loop dataset,
    validated (no write happens before this)."""
    import sidpy

    if not is_sidpy(ds):
        raise ParameterError(f"{what} must be a sidpy.Dataset, got {type(ds).__name__}")
    title = ds.title or "untitled"
    where = f"sidpy dataset '{title}'"
    if not (np.issubdtype(ds.dtype, np.floating) or np.issubdtype(ds.dtype, np.integer)) \
            or np.issubdtype(ds.dtype, np.bool_):
        raise BEPSFormatError(f"{where} holds {ds.dtype} values; expected real numbers")
    axes = [ds._axes[i] for i in range(ds.ndim)]
    spatial = [i for i, a in enumerate(axes) if a.dimension_type in (
        sidpy.DimensionType.SPATIAL, sidpy.DimensionType.RECIPROCAL)]
    rest = [i for i in range(ds.ndim) if i not in spatial]
    if not spatial:
        raise BEPSFormatError(
            f"{where} has no SPATIAL dimension (dimension types "
            f"{[a.dimension_type.name for a in axes]}); expected the map's positions as "
            "SPATIAL dimensions and the bias as a SPECTRAL one")

    spectral = [i for i in rest if axes[i].dimension_type == sidpy.DimensionType.SPECTRAL]
    label = bias_label([axes[i].name for i in spectral], [axes[i].units for i in spectral])
    if label is None:
        found = ", ".join(f"{axes[i].name} ({axes[i].dimension_type.name}, "
                          f"'{axes[i].units}')" for i in rest) or "none"
        raise BEPSFormatError(
            f"{where}: no bias dimension (or no single one) among the non-spatial "
            f"dimensions [{found}]; expected exactly one SPECTRAL dimension in volts (named "
            "e.g. DC_Offset, DC Offset, Voltage or Bias)")
    bias = next(i for i in spectral if str(axes[i].name) == label)
    unknown = [axes[i].name for i in rest if i != bias
               and axes[i].dimension_type == sidpy.DimensionType.UNKNOWN and len(axes[i]) > 1]
    if unknown:
        raise BEPSFormatError(
            f"{where}: dimension(s) {unknown} have type UNKNOWN; expected SPATIAL (positions) "
            "or SPECTRAL / TEMPORAL / CHANNEL (cycle, field ...) dimension types")
    data = np.asarray(ds)
    if data.size == 0:
        raise BEPSFormatError(f"{where} is empty (shape {data.shape})")
    return axes, spatial, bias, [i for i in rest if i != bias], data


def _usid_dims(axes, order, bias: int | None) -> list:
    dims = []
    for i in order:
        a = axes[i]
        name = "DC_Offset" if i == bias else str(a.name)
        units = "V" if i == bias else (str(a.units) if str(a.units) not in ("a.u.", "generic")
                                       else "")
        dims.append((name, units, np.asarray(a.values, dtype=float)))
    return dims


def _rows(layout: tuple, data: np.ndarray) -> tuple[np.ndarray, list, list]:
    """``data`` (in the dataset's dimension order) as positions x spectroscopic steps, with
    the USID position and spectroscopic dimensions (the bias named ``DC_Offset``)."""
    axes, spatial, bias, others, _ = layout
    spec = sorted(others + [bias])
    n_pos = int(np.prod([data.shape[i] for i in spatial]))
    rows = data.transpose(spatial + spec).reshape(n_pos, -1)
    return rows, make_dims(_usid_dims(axes, spatial, None)), make_dims(_usid_dims(axes, spec,
                                                                                   bias))


def _clean_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]+", "_", str(text)).strip("_") or "Loops"


def _default_name(ds) -> str:
    """An HDF5 name from the last part of a sidpy dataset's title."""
    return _clean_name(str(ds.title or "Loops").rstrip("/").rsplit("/", 1)[-1])


def sidpy_to_usid(ds, group: h5py.Group, name: str | None = None) -> h5py.Dataset:
    """Write a sidpy loop dataset as a USID main dataset (or find the same one there).

    The SPATIAL dimensions become the positions (first slowest), the one SPECTRAL
    dimension in volts the ``DC_Offset`` dimension whatever it was called, and every
    other dimension (``Cycle``, ``Field`` ...) a spectroscopic dimension of its own, in
    the order of the dataset. Quantity and units come from the sidpy dataset; its title
    and original dimension names are attributes.

    Parameters
    ----------
    ds : sidpy.Dataset
        Loops: e.g. ``(X, Y, DC Offset)`` or ``(X, Y, Cycle, DC_Offset, Field)``.
    group : h5py.Group
        A group in a file open for writing.
    name : str, optional
        Dataset name (default from the title).

    Returns
    -------
    h5py.Dataset

    Raises
    ------
    BEPSFormatError
        No SPATIAL dimension, not exactly one bias dimension, UNKNOWN dimension types or
        non-numeric values (nothing is written), or a different dataset of that name.

    Examples
    --------
    >>> import numpy as np, sidpy, h5py, tempfile, os
    >>> ds = sidpy.Dataset.from_array(np.random.default_rng(0).normal(size=(3, 4, 8)))
    >>> ds.set_dimension(0, sidpy.Dimension(np.arange(3), "X", units="um",
    ...                                     dimension_type="spatial"))
    >>> ds.set_dimension(1, sidpy.Dimension(np.arange(4), "Y", units="um",
    ...                                     dimension_type="spatial"))
    >>> ds.set_dimension(2, sidpy.Dimension(np.r_[0, 1, 2, 1, 0, -1, -2, -1.], "Voltage",
    ...                                     units="V", dimension_type="spectral"))
    >>> with h5py.File(os.path.join(tempfile.mkdtemp(), "n.h5"), "w") as f:
    ...     d = sidpy_to_usid(ds, f.create_group("In"), name="Piezoresponse")
    ...     print(d.shape, d.attrs["sidpy_dimension_names"].tolist())
    (12, 8) ['X', 'Y', 'Voltage']
    """
    return _write_loops(ds, _layout(ds, "the input"), group, name)


def _write_loops(ds, layout: tuple, group: h5py.Group, name: str | None) -> h5py.Dataset:
    """:func:`sidpy_to_usid` with the input already validated (``layout`` from
    :func:`_layout`)."""
    axes = layout[0]
    if group.file.mode == "r":
        raise ParameterError(f"file '{group.file.filename}' is open read-only; the sidpy input "
                             "must be written next to its results: open it with mode 'r+'")
    arr, pos_dims, spec_dims = _rows(layout, layout[4])
    name = _clean_name(name) if name else _default_name(ds)
    attrs = {"sidpy_title": str(ds.title), "sidpy_dimension_names": [str(a.name) for a in axes],
             "sidpy_dimension_types": [a.dimension_type.name for a in axes],
             "description": "written from a sidpy.Dataset by pycroscopy_bevae"}
    if name in group:
        old = group[name]
        same = isinstance(old, h5py.Dataset) and old.shape == arr.shape and \
            np.array_equal(old[()], arr, equal_nan=True) and \
            list(old.attrs.get("sidpy_dimension_names", [])) == attrs["sidpy_dimension_names"]
        if not same:
            raise BEPSFormatError(
                f"'{group[name].name}' in file '{group.file.filename}' exists and differs from "
                f"the sidpy input; pass another name or target group")
        return old
    return write_main(group, arr, name, str(ds.quantity or name), str(ds.units or "a.u."),
                      pos_dims, spec_dims, attrs=attrs,
                      aux_pos_prefix=f"{name}_Position_", aux_spec_prefix=f"{name}_Spectroscopic_")


def _sho_key(key: str) -> str:
    """Canonical SHO field for a key such as 'Amplitude', 'amplitude [V]', 'R2 Criterion'."""
    base = re.sub(r"\[.*?\]", "", str(key)).strip().lower().replace("_", " ")
    for field_name in SHO_FIELDS:
        if re.sub(r"\[.*?\]", "", field_name).strip().lower() == base:
            return field_name
    raise ParameterError(f"unknown SHO field {key!r}; expected the five SHO fit datasets "
                         f"{[f.split(' [')[0] for f in SHO_FIELDS]}")


def sho_fit_from_sidpy(fields: Mapping, group: h5py.Group, name: str = "Fit") -> h5py.Dataset:
    """Write the five SHO-fit datasets (SciFiReaders' form) as one USID SHO ``Fit``.

    Parameters
    ----------
    fields : mapping of str to sidpy.Dataset
        ``Amplitude``, ``Frequency``, ``Quality Factor``, ``Phase``, ``R2 Criterion``
        (units in brackets optional, any case), each with the same dimensions, e.g.
        ``X x Y x Cycle x DC Offset x Field``.
    group : h5py.Group
        Where to write (a group in a writable file).
    name : str
        Dataset name.

    Returns
    -------
    h5py.Dataset
        A compound main dataset with BGlib's field names, ready for ``LoopProjector``.
    """
    if not isinstance(fields, Mapping) or not fields:
        raise ParameterError("expected a mapping of SHO field name -> sidpy.Dataset")
    by_field = {_sho_key(k): v for k, v in fields.items()}
    missing = [f for f in SHO_FIELDS if f not in by_field]
    if missing:
        raise ParameterError(f"SHO fit datasets missing: {missing}; expected all of "
                             f"{list(SHO_FIELDS)}")
    layouts = {k: _layout(v, f"SHO field {k!r}") for k, v in by_field.items()}
    first = layouts[SHO_FIELDS[0]]
    for k, (axes, _, _, _, data) in layouts.items():
        if data.shape != first[4].shape or [str(a.name) for a in axes] != \
                [str(a.name) for a in first[0]]:
            raise BEPSFormatError(
                f"SHO field {k!r} has shape {data.shape} and dimensions "
                f"{[str(a.name) for a in axes]}; expected those of {SHO_FIELDS[0]!r}: "
                f"{first[4].shape}, {[str(a.name) for a in first[0]]}")
    if group.file.mode == "r":
        raise ParameterError(f"file '{group.file.filename}' is open read-only")
    rows = {f: _rows(first, layouts[f][4]) for f in SHO_FIELDS}
    _, pos_dims, spec_dims = rows[SHO_FIELDS[0]]
    arr = np.empty(rows[SHO_FIELDS[0]][0].shape, dtype=[(f, np.float32) for f in SHO_FIELDS])
    for f in SHO_FIELDS:
        arr[f] = rows[f][0]
    if name in group:
        raise BEPSFormatError(f"'{group[name].name}' in file '{group.file.filename}' exists; "
                              "pass another group")
    return write_main(group, arr, name, "SHO", "compound", pos_dims, spec_dims,
                      attrs={"sidpy_dimension_names": [str(a.name) for a in first[0]],
                             "description": "SHO fit written from sidpy datasets by "
                                            "pycroscopy_bevae"},
                      aux_pos_prefix=f"{name}_Position_", aux_spec_prefix=f"{name}_Spectroscopic_")


@contextlib.contextmanager
def usid_inputs(h5_main, target: h5py.Group | None) -> Iterator:
    """The processes' input as h5py objects: sidpy datasets (one, a sequence, or a mapping
    of SHO field -> dataset) are written into ``target`` first (required then); on an
    error inside the block, what was written is removed."""
    sho = isinstance(h5_main, Mapping)
    items = list(h5_main.values()) if sho else h5_main if isinstance(h5_main, Sequence) \
        and not isinstance(h5_main, str) else [h5_main]
    if not any(is_sidpy(d) for d in items):
        yield h5_main
        return
    if target is None or not isinstance(target, h5py.Group):
        raise ParameterError("a sidpy.Dataset input needs h5_target_group= a group in an HDF5 "
                             "file open for writing (the input is stored there beside the "
                             "results)")
    # every input validated (and read) once, before anything is written
    layouts = None if sho else [_layout(d, "each input") for d in items]
    names = [_default_name(d) for d in items]
    names = [n if names.count(n) == 1 else f"{n}_{i}" for i, n in enumerate(names)]
    before = set(target.keys())
    try:
        if sho:  # validates all five fields before writing
            yield sho_fit_from_sidpy(h5_main, target)
        else:
            out = [_write_loops(d, lay, target, n)
                   for d, lay, n in zip(items, layouts, names, strict=True)]
            yield out if isinstance(h5_main, Sequence) else out[0]
    except BaseException:
        for key in set(target.keys()) - before:
            del target[key]
        raise
