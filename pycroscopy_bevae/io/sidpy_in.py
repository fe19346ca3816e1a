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
from .names import SHO_FIELDS, bias_label
from .provenance import check_fits_memory, digest_arrays, volts_per_unit
from .space import room_for
from .usid import make_dims, write_main

__all__ = ["is_sidpy", "sidpy_to_usid", "sho_fit_from_sidpy", "usid_inputs", "clean_name"]


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
    check_fits_memory(tuple(ds.shape), 8, where)  # declared size, before anything is read
    data = np.asarray(ds)
    if data.size == 0:
        raise BEPSFormatError(f"{where} is empty (shape {data.shape})")
    return axes, spatial, bias, [i for i in rest if i != bias], data


def _usid_dims(axes, order, bias: int | None) -> list:
    """USID dimensions of the sidpy axes ``order``; the bias in volts, whatever its unit."""
    dims = []
    for i in order:
        a = axes[i]
        values = np.asarray(a.values, dtype=float)
        if i == bias:
            values = values * volts_per_unit(str(a.units), f"bias dimension '{a.name}'")
            dims.append(("DC_Offset", "V", values))
            continue
        units = str(a.units) if str(a.units) not in ("a.u.", "generic") else ""
        dims.append((str(a.name), units, values))
    return dims


def _axes_key(ds) -> list:
    """Every dimension's values, name, units and type."""
    parts: list = []
    for i in range(ds.ndim):
        a = ds._axes[i]
        parts += [np.asarray(a.values, dtype=float), str(a.name), str(a.units),
                  a.dimension_type.name]
    return parts


def _same(a, b) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return np.shape(a) == np.shape(b) and bool(np.array_equal(a, b))
    return a == b


def sidpy_digest(ds, data: np.ndarray | None = None) -> str:
    """Digest of a sidpy dataset's values (``data`` if already read) and of every
    dimension's values, name, units and type (what identifies its USID copy: a
    recalibrated bias, relabelled fields or other units make another copy)."""
    return digest_arrays(np.asarray(ds) if data is None else data, str(ds.units),
                         str(ds.quantity), *_axes_key(ds))


def _rows(layout: tuple, data: np.ndarray) -> tuple[np.ndarray, list, list]:
    """``data`` (in the dataset's dimension order) as positions x spectroscopic steps, with
    the USID position and spectroscopic dimensions (the bias named ``DC_Offset``)."""
    axes, spatial, bias, others, _ = layout
    spec = sorted(others + [bias])
    n_pos = int(np.prod([data.shape[i] for i in spatial]))
    rows = data.transpose(spatial + spec).reshape(n_pos, -1)
    return rows, make_dims(_usid_dims(axes, spatial, None)), make_dims(_usid_dims(axes, spec,
                                                                                   bias))


def clean_name(text: str) -> str:
    """``text`` made an HDF5 name: runs of other characters become ``_`` (``Loops`` if empty).

    Examples
    --------
    >>> clean_name("Piezo response (a.u.)")
    'Piezo_response_a_u'
    """
    return re.sub(r"[^A-Za-z0-9_]+", "_", str(text)).strip("_") or "Loops"


def _default_name(ds) -> str:
    """An HDF5 name from the last part of a sidpy dataset's title."""
    return clean_name(str(ds.title or "Loops").rstrip("/").rsplit("/", 1)[-1])


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
    digest = sidpy_digest(ds, layout[4])
    attrs = {"sidpy_title": str(ds.title), "sidpy_dimension_names": [str(a.name) for a in axes],
             "sidpy_dimension_types": [a.dimension_type.name for a in axes],
             "sidpy_dimension_units": [str(a.units) for a in axes], "sidpy_digest": digest,
             "description": "written from a sidpy.Dataset by pycroscopy_bevae (bias in V)"}
    name = _free_name(group, clean_name(name) if name else _default_name(ds), digest)
    if name in group:  # the same input, written before: reused (its results are found)
        return group[name]
    return write_main(group, arr, name, str(ds.quantity or name), str(ds.units or "a.u."),
                      pos_dims, spec_dims, attrs=attrs,
                      aux_pos_prefix=f"{name}_Position_", aux_spec_prefix=f"{name}_Spectroscopic_")


def _free_name(group: h5py.Group, name: str, digest: str) -> str:
    """``name``, or ``name_001``, ``name_002`` ...: the first that holds the copy with this
    ``digest`` or is free (another input of the same title never reuses an old copy)."""
    candidates = [name] + [f"{name}_{i:03d}" for i in range(1, 1000)]
    for cand in candidates:
        if cand not in group:
            ancillaries = [f"{cand}_{kind}_{what}" for kind in ("Position", "Spectroscopic")
                           for what in ("Indices", "Values")]
            if not any(a in group for a in ancillaries):  # another dataset has its names
                return cand
            continue
        old = group[cand]
        if isinstance(old, h5py.Dataset) and old.attrs.get("sidpy_digest") == digest:
            return cand
    raise BEPSFormatError(f"group '{group.name}' in file '{group.file.filename}' holds 1000 "
                          f"datasets named like '{name}'; pass another h5_target_group")


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
    by_field: dict = {}
    for key, value in fields.items():
        field_name = _sho_key(key)
        if field_name in by_field:
            raise ParameterError(f"SHO field {field_name!r} given twice (keys "
                                 f"{[k for k in fields if _sho_key(k) == field_name]}); "
                                 "expected one dataset per field")
        by_field[field_name] = value
    missing = [f for f in SHO_FIELDS if f not in by_field]
    if missing:
        raise ParameterError(f"SHO fit datasets missing: {missing}; expected all of "
                             f"{list(SHO_FIELDS)}")
    layouts = {k: _layout(v, f"SHO field {k!r}") for k, v in by_field.items()}
    first = layouts[SHO_FIELDS[0]]
    ref_key = _axes_key(by_field[SHO_FIELDS[0]])
    for k, (axes, _, _, _, data) in layouts.items():
        key = _axes_key(by_field[k])
        same_axes = len(key) == len(ref_key) and all(
            _same(a, b) for a, b in zip(key, ref_key, strict=True))
        if data.shape != first[4].shape or not same_axes:
            raise BEPSFormatError(
                f"SHO field {k!r} has shape {data.shape} and dimensions "
                f"{[str(a.name) for a in axes]}; expected the grid and bias of "
                f"{SHO_FIELDS[0]!r}: shape {first[4].shape}, dimensions "
                f"{[str(a.name) for a in first[0]]} with the same values, units and types")
    if group.file.mode == "r":
        raise ParameterError(f"file '{group.file.filename}' is open read-only")
    digest = digest_arrays(*(sidpy_digest(by_field[f], layouts[f][4]) for f in SHO_FIELDS))
    name = _free_name(group, name, digest)
    if name in group:  # these five datasets were written before: reused
        return group[name]
    rows = {f: _rows(first, layouts[f][4]) for f in SHO_FIELDS}
    _, pos_dims, spec_dims = rows[SHO_FIELDS[0]]
    # float32 as BGlib writes, unless a finite value would overflow it
    big = any(np.nanmax(np.abs(np.where(np.isfinite(r[0]), r[0], 0)), initial=0)
              > np.finfo(np.float32).max for r in rows.values())
    ftype = np.float64 if big else np.float32
    arr = np.empty(rows[SHO_FIELDS[0]][0].shape, dtype=[(f, ftype) for f in SHO_FIELDS])
    for f in SHO_FIELDS:
        arr[f] = rows[f][0]
    return write_main(group, arr, name, "SHO", "compound", pos_dims, spec_dims,
                      attrs={"sidpy_dimension_names": [str(a.name) for a in first[0]],
                             "sidpy_dimension_units": [str(a.units) for a in first[0]],
                             "sidpy_digest": digest,
                             "description": "SHO fit written from sidpy datasets by "
                                            "pycroscopy_bevae (bias in V)"},
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
    if sho:
        size = sum(np.prod(d.shape) for d in items if is_sidpy(d)) * 8
    else:
        layouts = [_layout(d, "each input") for d in items]
        for d, lay in zip(items, layouts, strict=True):
            bad = ~np.isfinite(lay[4])
            if bad.any():
                raise BEPSFormatError(
                    f"sidpy dataset '{d.title or 'untitled'}' has {int(bad.sum())} non-finite "
                    "values; expected finite loops (clean them with "
                    "preprocessing.clean_loops); nothing was written")
        names = [_default_name(d) for d in items]
        names = [n if names.count(n) == 1 else f"{n}_{i}" for i, n in enumerate(names)]
        size = sum(lay[4].size for lay in layouts) * 8
    room_for(target.file.filename, int(size))  # the copy must fit too
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
