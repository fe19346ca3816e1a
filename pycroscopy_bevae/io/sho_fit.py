"""Finding the SHO-fit ``Fit`` dataset of a BEPS file and checking that it is usable."""

from __future__ import annotations

import logging
import posixpath
import re

import h5py
import numpy as np

from ..exceptions import BEPSFormatError, ParameterError
from .layout import LoopLayout, describe_loops
from .names import SHO_FIELDS, dataset_where

__all__ = ["find_sho_fit", "validate_sho_fit", "check_fits_usable"]

logger = logging.getLogger(__name__)

_SHO_GROUP = re.compile(r"-SHO_Fit_\d+$")


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
    where = dataset_where(dset)
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
    where = dataset_where(dset)
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
