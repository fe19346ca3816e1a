"""Room for results before they are written: disk space and the file-size limit.

HDF5 records the end of a file in its superblock before the data that extends it are
written. When such a write then fails (disk full, the process's file-size limit
``ulimit -f`` / ``RLIMIT_FSIZE``), the file on disk is shorter than its superblock says
and HDF5 refuses to open it again ("truncated file"): the user's whole file, not just
the new results, becomes unreadable. :func:`reserved_space` prevents that: it estimates
the room the results need, refuses with :class:`InsufficientSpaceError` before anything
is written when the disk or the limit cannot hold it, and otherwise allocates that room
at the end of the file *before* HDF5 writes, so HDF5's writes land in space that already
exists. What is left of the reservation is cut off afterwards.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
from collections.abc import Iterator

import h5py

from ..exceptions import InsufficientSpaceError, WriteFailedError

__all__ = ["reserved_space", "room_for"]

logger = logging.getLogger(__name__)

#: Reserved room = estimate x _MARGIN + _SLACK (HDF5 object headers, B-trees, attributes).
_MARGIN = 1.5
_SLACK = 2 * 1024 * 1024

_SPACE_ERRNOS = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)
_SPACE_TEXT = ("No space left", "File too large", "Disk quota exceeded", "errno = 28",
               "errno = 27", "errno = 122")


def room_for(path: str, n_bytes: int) -> int:
    """Bytes to reserve for ``n_bytes`` of results in ``path``, or raise if they do not fit.

    Parameters
    ----------
    path : str
        The HDF5 file the results go to.
    n_bytes : int
        Estimated size of the results (raw data).

    Returns
    -------
    int
        ``n_bytes`` with the margin for HDF5's own structures.

    Raises
    ------
    InsufficientSpaceError
        When the free disk space or the file-size limit (``ulimit -f``) is too small.

    Examples
    --------
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "x.h5")
    >>> open(path, "wb").close()
    >>> room_for(path, 1000) > 1000
    True
    """
    need = int(n_bytes * _MARGIN) + _SLACK
    size = os.path.getsize(path) if os.path.isfile(path) else 0  # a family or in-memory file
    free = shutil.disk_usage(os.path.dirname(os.path.abspath(path))).free
    if need > free:
        raise InsufficientSpaceError(
            f"not enough disk space for the results in file '{path}': about "
            f"{_mb(need)} needed, {_mb(free)} free; nothing was written. Free some space "
            f"(or pass h5_target_group= a group in a file on another disk) and run again")
    limit = _file_size_limit()
    if limit is not None and size + need > limit:
        raise InsufficientSpaceError(
            f"the results would take file '{path}' ({_mb(size)}) past this process's file-size "
            f"limit of {_mb(limit)} (ulimit -f): about {_mb(need)} more needed; nothing was "
            f"written. Raise the limit (ulimit -f unlimited) and run again")
    return need


@contextlib.contextmanager
def reserved_space(h5_file: h5py.File, n_bytes: int, what: str) -> Iterator[None]:
    """Write results into ``h5_file`` inside this block, with room for them reserved.

    Refuses before anything is written when the room is missing; allocates it at the end
    of the file (``posix_fallocate``) so HDF5's writes cannot fail for lack of space;
    afterwards cuts what the results did not use. A write that fails for lack of space
    anyway (results larger than estimated and the disk full) becomes a
    :class:`WriteFailedError` of one line.

    Parameters
    ----------
    h5_file : h5py.File
        Open for writing.
    n_bytes : int
        Estimated size of the results' raw data.
    what : str
        What is being written (for messages), e.g. ``'loop projection'``.

    Examples
    --------
    >>> import tempfile, os, h5py, numpy as np
    >>> path = os.path.join(tempfile.mkdtemp(), "x.h5")
    >>> with h5py.File(path, "w") as f:
    ...     with reserved_space(f, 8000, "test"):
    ...         f["a"] = np.zeros(1000)
    ...     size = os.path.getsize(path)
    >>> size < 20_000  # the unused reservation is gone
    True
    """
    path = h5_file.filename
    h5_file.flush()
    if not os.path.isfile(path):  # not one file on disk (driver 'family', 'core'): no reservation
        room_for(path, n_bytes)
        yield
        return
    start = os.path.getsize(path)
    end_used = max(start, int(h5_file.id.get_filesize()))
    need = room_for(path, n_bytes)
    reserved = _allocate(path, start, end_used + need - start, what)
    try:
        yield
    except (OSError, RuntimeError) as exc:
        if not _is_space_error(exc):
            raise
        raise WriteFailedError(
            f"writing the {what} results to file '{path}' failed: {_reason(exc)}") from exc
    finally:
        if reserved:
            _trim(h5_file, path, start)


def _allocate(path: str, start: int, length: int, what: str) -> bool:
    if not hasattr(os, "posix_fallocate") or length <= 0:
        return False
    fd = os.open(path, os.O_RDWR)
    try:
        os.posix_fallocate(fd, start, length)
    except OSError as exc:
        os.ftruncate(fd, start)
        if exc.errno in _SPACE_ERRNOS:
            raise InsufficientSpaceError(
                f"cannot reserve {_mb(length)} for the {what} results in file '{path}' "
                f"({os.strerror(exc.errno)}); nothing was written. Free space or raise the "
                f"file-size limit and run again") from None
        if exc.errno in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
            return False  # a file system without preallocation: checked room only
        raise
    finally:
        os.close(fd)
    return True


def _trim(h5_file: h5py.File, path: str, start: int) -> None:
    """Cut the unused end of the reservation (HDF5's own end of file is kept)."""
    try:
        if h5_file.id.valid:
            h5_file.flush()
            used = max(start, int(h5_file.id.get_filesize()))
        else:
            used = start
        if os.path.getsize(path) > used:
            os.truncate(path, used)
    except (OSError, RuntimeError) as exc:  # the file stays readable, only larger
        logger.warning("could not release the unused space reserved in '%s': %s", path, exc)


def _is_space_error(exc: BaseException) -> bool:
    while exc is not None:
        if getattr(exc, "errno", None) in _SPACE_ERRNOS or any(
                t in str(exc) for t in _SPACE_TEXT):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _reason(exc: BaseException) -> str:
    text = str(exc)
    for t, reason in (("File too large", "the file-size limit was reached"),
                      ("errno = 27", "the file-size limit was reached"),
                      ("quota", "the disk quota was reached")):
        if t in text:
            return reason
    return "the disk is full"


def _file_size_limit() -> int | None:
    try:
        import resource
    except ImportError:  # not on POSIX
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
    return None if soft == resource.RLIM_INFINITY else int(soft)


def _mb(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"
