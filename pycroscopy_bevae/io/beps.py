"""Finding, validating and slicing BEPS datasets in USID HDF5 files.

A BEPS measurement translated by the instrument translator and fitted by
BGlib's SHO fitter holds a compound dataset ``.../Raw_Data-SHO_Fit_NNN/Fit``
with one row per position and one column per spectroscopic step.  The
spectroscopic dimensions are ``DC_Offset`` (always), ``Field`` (0 = out of
field / remanent, 1 = in field; optional) and ``Cycle`` (optional), in an
order of variation that is read from the file's ``Spectroscopic_Indices``,
never assumed.

The same machinery describes any USID main dataset with a ``DC_Offset``
spectroscopic dimension, for example the ``Piezoresponse`` written by
:class:`~pycroscopy_bevae.LoopProjector`.
"""

from __future__ import annotations

import logging
import os
import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Union

import h5py
import numpy as np

from ..exceptions import BEPSFormatError, FileInUseError, MissingFileError, ParameterError
from ..params import Integer, check
from .provenance import check_fits_memory, volts_per_unit

__all__ = [
    "SHO_FIELDS",
    "bias_label",
    "LoopLayout",
    "LoopSelection",
    "find_sho_fit",
    "describe_loops",
    "validate_sho_fit",
    "select_loops",
    "open_h5",
    "check_fits_usable",
    "check_readable",
    "external_link_holder",
]

logger = logging.getLogger(__name__)

#: Fields of the SHO-fit compound dataset that BGlib writes.
SHO_FIELDS: tuple[str, ...] = (
    "Amplitude [V]",
    "Frequency [Hz]",
    "Quality Factor",
    "Phase [rad]",
    "R2 Criterion",
)

#: Names (lower case, spaces and underscores ignored) a DC-bias dimension goes by.
BIAS_NAMES = ("dcoffset", "dc", "dcbias", "bias", "voltage", "vdc", "dcvoltage")


def spectroscopic_names(h5_inds: h5py.Dataset) -> tuple[list[str], list[str]]:
    """Names and units (``''`` where none are stored) of the dimensions of a USID
    ``Spectroscopic_Indices`` dataset, in stored order."""
    from pyUSID.io.hdf_utils import get_attr

    labels = [str(x) for x in get_attr(h5_inds, "labels")]
    units = [str(x) for x in get_attr(h5_inds, "units")] if "units" in h5_inds.attrs \
        else [""] * len(labels)
    return labels, units


def bias_label(labels, units) -> str | None:
    """The spectroscopic dimension that is the DC bias, whatever it is called.

    ``DC_Offset`` (BGlib's name) if present; else the one dimension whose name is a bias
    name (:data:`BIAS_NAMES`: ``DC Offset``, ``Voltage``, ``Bias`` ...) or, failing that,
    whose units are volts. None when there is no such dimension or it is ambiguous.

    Examples
    --------
    >>> bias_label(["Cycle", "DC Offset", "Field"], ["", "V", ""])
    'DC Offset'
    >>> bias_label(["Frequency"], ["Hz"]) is None
    True
    """
    labels = [str(x) for x in labels]
    units = [str(u) for u in units] if units is not None else [""] * len(labels)
    if "DC_Offset" in labels:
        return "DC_Offset"
    named = [lab for lab in labels if lab.lower().replace(" ", "").replace("_", "")
             in BIAS_NAMES]
    if len(named) == 1:
        return named[0]
    volts = [lab for lab, u in zip(labels, units, strict=False)
             if u.strip() in _VOLT_UNITS]
    return volts[0] if len(volts) == 1 else None


#: Units that mark a dimension as the bias when its name does not (converted to volts).
_VOLT_UNITS = ("V", "v", "volt", "volts", "Volt", "Volts", "mV", "kV", "uV", "\u00b5V")

#: Field value -> name.  BGlib's translator writes 0 for out-of-field and 1 for in-field.
FIELD_NAMES = {0: "off", 1: "on"}
_FIELD_CHOICES = ("off", "on", "both")
_SHO_GROUP = re.compile(r"-SHO_Fit_\d+$")

H5Source = Union[str, "os.PathLike[str]", h5py.File, h5py.Group, h5py.Dataset]


def _where(dset: h5py.Dataset) -> str:
    """Return ``'<dataset> in <file>'`` for error messages."""
    return f"dataset '{dset.name}' in file '{dset.file.filename}'"


class open_h5:
    """Open an HDF5 source for reading, or pass an open object through.

    A context manager: a path is opened read-only (and closed on exit) after
    checking that it exists and is HDF5; an open ``h5py`` object is returned
    unchanged and left open.

    Parameters
    ----------
    source : str, os.PathLike, h5py.File, h5py.Group or h5py.Dataset
        What to open.

    Examples
    --------
    >>> import tempfile, os, h5py
    >>> path = os.path.join(tempfile.mkdtemp(), "x.h5")
    >>> with h5py.File(path, "w") as f:
    ...     _ = f.create_dataset("a", data=[1, 2])
    >>> with open_h5(path) as h5:
    ...     print(h5["a"][()])
    [1 2]
    """

    def __init__(self, source: H5Source):
        self._source = source
        self._opened: h5py.File | None = None

    def __enter__(self) -> h5py.File | h5py.Group | h5py.Dataset:
        src = self._source
        if isinstance(src, (h5py.File, h5py.Group, h5py.Dataset)):
            return src
        if not isinstance(src, (str, os.PathLike)):
            raise ParameterError(
                f"expected a file path or an open h5py File/Group/Dataset, got {type(src).__name__}"
            )
        path = os.fspath(src)
        if not os.path.exists(path):
            raise MissingFileError(f"file '{path}' does not exist")
        if not h5py.is_hdf5(path):
            raise BEPSFormatError(f"file '{path}' is not an HDF5 file (expected a USID BEPS file)")
        try:
            self._opened = h5py.File(path, "r")
        except OSError as exc:  # truncated or locked files
            if "unable to lock file" in str(exc):
                raise FileInUseError(
                    f"file '{path}' is in use: another program has it open for writing "
                    "(HDF5 file lock); expected it to be closed there first"
                ) from exc
            raise BEPSFormatError(f"file '{path}' could not be opened as HDF5: {exc}") from exc
        return self._opened

    def __exit__(self, *exc_info) -> None:
        if self._opened is not None:
            self._opened.close()


def find_sho_fit(h5_obj: h5py.File | h5py.Group | h5py.Dataset) -> h5py.Dataset:
    """Locate the SHO-fit ``Fit`` dataset of a BEPS file and validate it.

    Parameters
    ----------
    h5_obj : h5py.File, h5py.Group or h5py.Dataset
        An open file or group to search (recursively), or the ``Fit`` dataset.
        When several ``*-SHO_Fit_NNN/Fit`` datasets exist, the last one in
        alphabetical order (usually the most recent fit) is used and the
        others are logged.

    Returns
    -------
    h5py.Dataset
        The validated ``Fit`` dataset.

    Raises
    ------
    BEPSFormatError
        If no SHO fit is found or it fails :func:`validate_sho_fit`.

    Examples
    --------
    >>> import tempfile, os, h5py
    >>> from pycroscopy_bevae.datasets import write_synthetic_beps
    >>> path = write_synthetic_beps(os.path.join(tempfile.mkdtemp(), "s.h5"), shape=(4, 5))
    >>> with h5py.File(path, "r") as f:
    ...     print(find_sho_fit(f).name)
    /Measurement_000/Channel_000/Raw_Data-SHO_Fit_000/Fit
    """
    if isinstance(h5_obj, h5py.Dataset):
        validate_sho_fit(h5_obj)
        return h5_obj
    if not isinstance(h5_obj, (h5py.File, h5py.Group)):
        raise ParameterError(
            f"expected an open h5py File, Group or the Fit Dataset, got {type(h5_obj).__name__}"
        )
    found: list[str] = []

    def _visit(name: str, obj) -> None:
        if isinstance(obj, h5py.Dataset) and name.rsplit("/", 1)[-1] == "Fit":
            parent = name.rsplit("/", 2)[-2] if "/" in name else ""
            if _SHO_GROUP.search(parent):
                found.append(obj.name)

    def _visit_link(name: str, link) -> None:  # SHO fits kept in another file
        if isinstance(link, h5py.ExternalLink) and name.rsplit("/", 1)[-1] == "Fit":
            parent = name.rsplit("/", 2)[-2] if "/" in name else h5_obj.name.rsplit("/", 1)[-1]
            if _SHO_GROUP.search(parent):
                found.append(posixpath.join(h5_obj.name, name))

    h5_obj.visititems(_visit)
    h5_obj.visititems_links(_visit_link)
    if not found:
        raise BEPSFormatError(
            f"no SHO fit found under '{h5_obj.name}' in file '{h5_obj.file.filename}': "
            "expected a dataset '.../<source>-SHO_Fit_NNN/Fit' as written by BGlib's SHO fitter "
            "(from the raw response: 'pycroscopy-bevae fit-sho' or SHOFitProcess)"
        )
    found.sort()
    if len(found) > 1:
        logger.info("several SHO fits found (%s); using %s", ", ".join(found), found[-1])
    try:
        dset = h5_obj.file[found[-1]]
    except (KeyError, OSError) as exc:
        link = h5_obj.file.get(found[-1], getlink=True)
        raise BEPSFormatError(
            f"'{found[-1]}' in file '{h5_obj.file.filename}' is an external link to "
            f"'{link.path}' in file '{link.filename}', which cannot be opened ({exc}); "
            "expected the linked file beside it") from None
    validate_sho_fit(dset)
    return dset


def external_link_holder(dset: h5py.Dataset) -> h5py.Group | None:
    """The group of another open file that reaches ``dset`` through an external link.

    A dataset opened through an HDF5 external link belongs, for h5py, to the linked
    file; results written "beside it" would land there and the file the user opened
    would get nothing.  The processes ask this function where the link lives and
    write their results there instead (unless ``h5_target_group`` says otherwise).

    Parameters
    ----------
    dset : h5py.Dataset
        An open dataset.

    Returns
    -------
    h5py.Group or None
        The group holding the external link in the first other open file that has
        one to ``dset``; None when ``dset`` was not reached that way.

    Examples
    --------
    >>> import tempfile, os, h5py
    >>> d = tempfile.mkdtemp()
    >>> with h5py.File(os.path.join(d, "data.h5"), "w") as f:
    ...     _ = f.create_dataset("Fit", data=[1.0])
    >>> with h5py.File(os.path.join(d, "user.h5"), "w") as f:
    ...     f["grp/Fit"] = h5py.ExternalLink("data.h5", "/Fit")
    ...     print(external_link_holder(f["grp/Fit"]).name)
    /grp
    """
    own = os.path.realpath(dset.file.filename)
    target = "/" + dset.name.lstrip("/")
    base = target.rsplit("/", 1)[-1]
    for fid in h5py.h5f.get_obj_ids(types=h5py.h5f.OBJ_FILE):
        other = h5py.File(fid)
        if os.path.realpath(other.filename) == own:
            continue
        home = os.path.dirname(os.path.realpath(other.filename))
        hits: list[str] = []

        def _visit(name: str, link, home=home, hits=hits) -> None:
            if (isinstance(link, h5py.ExternalLink) and name.rsplit("/", 1)[-1] == base
                    and "/" + link.path.lstrip("/") == target
                    and own in (os.path.realpath(os.path.join(home, link.filename)),
                                os.path.realpath(link.filename))):
                hits.append(name)

        other.visititems_links(_visit)
        if hits:
            return other[posixpath.dirname("/" + hits[0])]
    return None


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
        if field not in _FIELD_CHOICES:
            raise ParameterError(f"field must be one of {_FIELD_CHOICES}, got {field!r}")
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
    >>> path = write_synthetic_beps(os.path.join(tempfile.mkdtemp(), "s.h5"), shape=(4, 5))
    >>> with h5py.File(path, "r") as f:
    ...     layout = describe_loops(find_sho_fit(f))
    >>> layout.n_steps, layout.n_cycles, layout.fields, layout.grid_shape
    (96, 2, ('off', 'on'), (4, 5))
    """
    from pyUSID.io.hdf_utils import check_if_main

    where = _where(dset)
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
    pos_labels, grid_shape = _position_grid(h5_pos_inds, dset.shape[0], where)
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


def validate_sho_fit(dset: h5py.Dataset) -> LoopLayout:
    """Check that a dataset is a BGlib SHO fit usable for loop projection.

    Checks: USID main dataset; compound dtype with the fields of :data:`SHO_FIELDS`
    as float32 or float64; a ``DC_Offset`` spectroscopic dimension; consistent
    spectroscopic indices; at least one position and step.

    Parameters
    ----------
    dset : h5py.Dataset
        Candidate ``Fit`` dataset.

    Returns
    -------
    LoopLayout
        The spectroscopic layout (see :func:`describe_loops`).

    Raises
    ------
    BEPSFormatError
        Naming the dataset, the file and what was expected.
    """
    if not isinstance(dset, h5py.Dataset):
        raise BEPSFormatError(f"expected the SHO 'Fit' h5py.Dataset, got {type(dset).__name__}")
    where = _where(dset)
    names = dset.dtype.names
    if names is None:
        raise BEPSFormatError(
            f"{where} has dtype {dset.dtype}; expected a compound dtype with fields "
            f"{list(SHO_FIELDS)}"
        )
    missing = [f for f in SHO_FIELDS if f not in names]
    if missing:
        raise BEPSFormatError(
            f"{where} lacks field(s) {missing}; found {list(names)}, expected {list(SHO_FIELDS)}"
        )
    # either byte order (big-endian files from other platforms read the same)
    bad = [f for f in SHO_FIELDS if dset.dtype[f].kind != "f" or dset.dtype[f].itemsize
           not in (4, 8)]
    if bad:
        raise BEPSFormatError(
            f"{where}: field(s) {bad} have types {[str(dset.dtype[f]) for f in bad]}; "
            "expected float32 or float64"
        )
    return describe_loops(dset)


def check_fits_usable(dset: h5py.Dataset, r2_threshold: float = 0.0,
                      block_values: int = 1 << 20) -> None:
    """Check that at least one SHO fit is finite and has ``R2 Criterion >= r2_threshold``.

    Reads the fit a block of rows at a time and stops at the first usable fit, so a
    normal file costs one block.

    Parameters
    ----------
    dset : h5py.Dataset
        A validated SHO ``Fit`` dataset (see :func:`validate_sho_fit`).
    r2_threshold : float
        Fits with a lower ``R2 Criterion`` are not usable.
    block_values : int
        Fits read at a time.

    Raises
    ------
    BEPSFormatError
        If every fit has a non-finite amplitude, phase, frequency or R2.
    ParameterError
        If finite fits exist but ``r2_threshold`` rejects every one.
    """
    where = _where(dset)
    rows = max(1, block_values // max(1, dset.shape[1]))
    n_finite, best = 0, -np.inf
    for start in range(0, dset.shape[0], rows):
        block = dset[start:start + rows]
        finite = np.ones(block.shape, dtype=bool)
        for name in ("Amplitude [V]", "Phase [rad]", "Frequency [Hz]", "R2 Criterion"):
            finite &= np.isfinite(block[name])
        if finite.any():
            r2 = block["R2 Criterion"][finite]
            if (r2 >= r2_threshold).any():
                return
            n_finite += int(finite.sum())
            best = max(best, float(r2.max()))
    if n_finite == 0:
        raise BEPSFormatError(
            f"{where} has no usable SHO fit: all {dset.size} fits have non-finite (NaN or inf) "
            "values; expected finite Amplitude, Phase, Frequency and R2 Criterion (re-run the "
            "SHO fit)"
        )
    raise ParameterError(
        f"r2_threshold={r2_threshold} rejects every SHO fit of {where}: the highest "
        f"'R2 Criterion' of its {n_finite} finite fits is {best:.3g}; expected a threshold "
        "at or below the R2 of the fits to keep"
    )


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
    from .sidpy_in import is_sidpy, sidpy_to_usid

    if is_sidpy(source):  # through an in-memory HDF5 file
        with h5py.File(f"sidpy-{id(source)}.h5", "w", driver="core", backing_store=False) as mem:
            return select_loops(sidpy_to_usid(source, mem, name="Loops"), cycle=cycle,
                                field=field, fields=fields, fixed=fixed)
    with open_h5(source) as h5:
        dset = h5 if isinstance(h5, h5py.Dataset) else find_sho_fit(h5)
        layout = describe_loops(dset) if dset.dtype.names is None else validate_sho_fit(dset)
        cols = layout.columns(cycle=cycle, field=field, fixed=fixed)
        block = _read_columns(dset, cols)
        if dset.dtype.names is not None:
            wanted = fields or tuple(dset.dtype.names)
            unknown = [f for f in wanted if f not in dset.dtype.names]
            if unknown:
                raise ParameterError(f"fields {unknown} not in {_where(dset)}")
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


def _read_columns(dset: h5py.Dataset, cols: np.ndarray, rows=None) -> np.ndarray:
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


def _position_grid(
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


def check_readable(dset: h5py.Dataset) -> None:
    """Refuse a dataset HDF5 cannot read here, before anything is read or written.

    Checks that every filter of the dataset's pipeline (compression) is available
    in this HDF5 installation, and that the USID ancillary references it carries
    (``Position_Indices``, ``Position_Values``, ``Spectroscopic_Indices``,
    ``Spectroscopic_Values``) point to existing objects.

    Parameters
    ----------
    dset : h5py.Dataset
        The dataset to check.

    Raises
    ------
    BEPSFormatError
        Naming the dataset, the file, the filter or the attribute.

    Examples
    --------
    >>> import tempfile, os, h5py
    >>> path = os.path.join(tempfile.mkdtemp(), "x.h5")
    >>> with h5py.File(path, "w") as f:
    ...     d = f.create_dataset("a", data=[[1.0, 2.0]], compression="gzip")
    ...     d.attrs["Position_Values"] = f.create_dataset("p", data=[0.0]).ref
    ...     del f["p"]
    ...     check_readable(d)
    Traceback (most recent call last):
    ...
    pycroscopy_bevae.exceptions.BEPSFormatError: attribute 'Position_Values' of dataset '/a' ...
    """
    where = _where(dset)
    plist = dset.id.get_create_plist()
    for i in range(plist.get_nfilters()):
        code, _flags, _vals, name = plist.get_filter(i)
        if not h5py.h5z.filter_avail(code):
            label = name.decode(errors="replace") if isinstance(name, bytes) else str(name)
            raise BEPSFormatError(
                f"{where} is stored with HDF5 filter {label!r} (id {code}), which this HDF5 "
                "installation cannot read; expected a filter h5py provides (gzip, lzf, "
                "szip, shuffle, fletcher32) or its plugin installed (e.g. `pip install "
                "hdf5plugin` and `import hdf5plugin` first)")
    for attr in ("Position_Indices", "Position_Values", "Spectroscopic_Indices",
                 "Spectroscopic_Values"):
        ref = dset.attrs.get(attr)
        if not isinstance(ref, h5py.Reference):
            continue
        try:
            dset.file[ref]
        except (ValueError, KeyError, OSError) as exc:
            raise BEPSFormatError(
                f"attribute '{attr}' of {where} refers to an object that no longer exists "
                f"(a dangling reference: {exc}); expected a reference to its {attr} dataset"
            ) from None
