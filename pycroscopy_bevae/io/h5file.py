"""Opening HDF5 sources (for reading, or a path for writing) and finding where an external
link to a dataset lives."""

from __future__ import annotations

import os
import posixpath
from typing import Union

import h5py

from ..exceptions import BEPSFormatError, FileInUseError, MissingFileError, ParameterError

__all__ = ["H5Source", "open_h5", "open_writable", "external_link_holder"]

H5Source = Union[str, "os.PathLike[str]", h5py.File, h5py.Group, h5py.Dataset]


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


def open_writable(path: str) -> h5py.File:
    """``h5py.File(path, 'r+')`` after :class:`~pycroscopy_bevae.io.open_h5`'s checks (the
    file exists, is HDF5), with a one-line error when another program holds it.

    Raises
    ------
    FileInUseError
        When another program holds the file (HDF5 file lock) or it is read-only.

    Examples
    --------
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "x.h5")
    >>> h5py.File(path, "w").close()
    >>> with open_writable(path) as f:
    ...     f.mode
    'r+'
    """
    with open_h5(path):
        pass
    try:
        return h5py.File(path, "r+")
    except OSError as exc:
        if "lock" in str(exc).lower():
            raise FileInUseError(
                f"file '{path}' is in use: another program has it open (HDF5 file lock); "
                "close it there (e.g. the notebook kernel) and run again") from None
        if "ermission denied" in str(exc) or "read-only" in str(exc).lower():
            raise FileInUseError(f"file '{path}' cannot be opened for writing (permission "
                                 "denied); results are written into the file") from None
        raise


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
