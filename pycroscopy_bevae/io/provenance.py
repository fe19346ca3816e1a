"""What a result was made from and whether it is finished.

Three rules every process and every reader of earlier results share:

* :func:`source_identity`: the identity of a process's input (which file, which
  dataset, and a digest of its values and of its dimensions' values, names and units).
  It is one of the parameters compared by the duplicate check, so a results group is
  never returned, nor resumed, for another input that happens to share its name (two
  measurements analysed into one ``h5_target_group``, a recalibrated copy).
* :func:`group_status` / :func:`require_complete`: whether a results group was
  finished (every ``completed_positions`` flag set); readers skip or refuse the others.
* :func:`volts_per_unit`: the factor that turns a bias in its recorded unit into volts.
"""

from __future__ import annotations

import hashlib
import os

import h5py
import numpy as np

from ..exceptions import BEPSFormatError

__all__ = ["check_fits_memory", "group_status", "require_complete", "source_identity",
           "digest_arrays", "volts_per_unit", "STATUS_NAME"]

#: The dataset of per-position completion flags pyUSID's processes keep in a results group.
STATUS_NAME = "completed_positions"

#: Rows hashed at a time are bounded to this many bytes.
_DIGEST_BYTES = 32 * 2**20

#: Bias units understood, and their value in volts (case matters: ``mV`` is not ``MV``).
_VOLTS = {"V": 1.0, "v": 1.0, "volt": 1.0, "volts": 1.0, "Volt": 1.0, "Volts": 1.0,
          "mV": 1e-3, "millivolt": 1e-3, "millivolts": 1e-3,
          "kV": 1e3, "kilovolt": 1e3, "kilovolts": 1e3,
          "uV": 1e-6, "\u00b5V": 1e-6, "\u03bcV": 1e-6, "microvolt": 1e-6, "microvolts": 1e-6}


def volts_per_unit(units: str, where: str) -> float:
    """Volts per unit of a bias axis recorded in ``units`` (``''``: volts, as BGlib's older
    files leave it unstated).

    Raises
    ------
    BEPSFormatError
        A unit that is not a voltage (``where`` names the dataset and dimension).

    Examples
    --------
    >>> volts_per_unit("mV", "x"), volts_per_unit("kV", "x"), volts_per_unit("V", "x")
    (0.001, 1000.0, 1.0)
    >>> volts_per_unit("Hz", "dimension 'DC_Offset' of dataset '/a'")
    Traceback (most recent call last):
    ...
    pycroscopy_bevae.exceptions.BEPSFormatError: dimension 'DC_Offset' of dataset '/a' ...
    """
    text = str(units).strip()
    if text in ("", "a.u.", "generic"):
        return 1.0
    if text not in _VOLTS:
        raise BEPSFormatError(
            f"{where} has units {text!r}; expected a voltage unit for the DC bias (V, mV, kV "
            "or uV; it is converted to volts)")
    return _VOLTS[text]


def digest_arrays(*parts) -> str:
    """A hex digest (BLAKE2b, 16 bytes) of arrays and strings, in order, with their shapes
    and types (so ``[1, 2]`` and ``[[1, 2]]`` differ).

    Examples
    --------
    >>> digest_arrays(np.arange(3), "V") == digest_arrays(np.arange(3), "V")
    True
    >>> digest_arrays(np.arange(3), "V") == digest_arrays(np.arange(3), "mV")
    False
    """
    h = hashlib.blake2b(digest_size=16)
    for p in parts:
        _feed(h, p)
    return h.hexdigest()


def _feed(h, part) -> None:
    if isinstance(part, (str, bytes)):
        text = part.encode() if isinstance(part, str) else part
        h.update(b"s%d:" % len(text) + text)
        return
    arr = np.ascontiguousarray(np.asarray(part))
    if arr.dtype.kind == "O":
        _feed(h, repr(arr.tolist()))
        return
    h.update(f"a{arr.shape}{arr.dtype.str}{arr.dtype.names}:".encode())
    h.update(arr.view(np.uint8).reshape(-1) if arr.size else b"")


def _dataset_digest(dset: h5py.Dataset) -> str:
    """Digest of a dataset's values (read in blocks of rows) and, for a USID main dataset,
    of its position and spectroscopic indices, values, labels and units."""
    h = hashlib.blake2b(digest_size=16)
    _feed(h, f"{dset.shape}{dset.dtype.str}{dset.dtype.names}")
    if dset.ndim == 0 or dset.size == 0:
        _feed(h, dset[()])
    else:
        row_bytes = max(1, dset.size // dset.shape[0]) * dset.dtype.itemsize
        step = max(1, _DIGEST_BYTES // row_bytes)
        for start in range(0, dset.shape[0], step):
            _feed(h, dset[start:start + step])
    for attr in ("Position_Indices", "Position_Values", "Spectroscopic_Indices",
                 "Spectroscopic_Values"):
        ref = dset.attrs.get(attr)
        if isinstance(ref, h5py.Reference) and ref:
            anc = dset.file[ref]
            _feed(h, attr)
            _feed(h, anc[()])
            for key in ("labels", "units"):
                if key in anc.attrs:
                    _feed(h, repr([_text(x) for x in np.atleast_1d(anc.attrs[key])]))
    for key in ("quantity", "units"):
        if key in dset.attrs:
            _feed(h, f"{key}={_text(dset.attrs[key])}")
    return h.hexdigest()


def _text(x) -> str:
    return x.decode() if isinstance(x, bytes) else str(x)


def source_identity(datasets, dest: h5py.Group) -> str:
    """The identity of a process's input, compared by the duplicate and resume checks.

    For each source: its file (``'same file'`` when the results go to the file that holds
    it, else the file's absolute path), its HDF5 path and a digest of its values and of
    its USID dimensions (indices, values, labels, units). The whole dataset is read once,
    in blocks of at most 32 MB.

    Parameters
    ----------
    datasets : sequence of h5py.Dataset
        The sources, main first.
    dest : h5py.Group
        Where the results go.

    Returns
    -------
    str

    Examples
    --------
    >>> import tempfile, os
    >>> with h5py.File(os.path.join(tempfile.mkdtemp(), "x.h5"), "w") as f:
    ...     d = f.create_dataset("a", data=np.arange(6.0).reshape(2, 3))
    ...     ident = source_identity([d], f)
    >>> ident.startswith("same file:/a#")
    True
    """
    parts = []
    for d in datasets:
        same = d.file.id.fileno == dest.file.id.fileno or os.path.abspath(
            d.file.filename) == os.path.abspath(dest.file.filename)
        where = "same file" if same else os.path.abspath(d.file.filename)
        parts.append(f"{where}:{d.name}#{_dataset_digest(d)}")
    return "|".join(parts)


def group_status(grp: h5py.Group) -> tuple[int, int] | None:
    """``(done, total)`` positions of a results group from its ``completed_positions``
    flags; None for a group without them (not written by a process).

    Examples
    --------
    >>> import tempfile, os
    >>> with h5py.File(os.path.join(tempfile.mkdtemp(), "x.h5"), "w") as f:
    ...     g = f.create_group("r")
    ...     g["completed_positions"] = np.array([1, 1, 0], dtype=np.uint8)
    ...     print(group_status(g))
    (2, 3)
    """
    status = grp.get(STATUS_NAME)
    if not isinstance(status, h5py.Dataset):
        return None
    flags = np.asarray(status[()]).ravel()
    return int(np.count_nonzero(flags)), int(flags.size)


def require_complete(dset: h5py.Dataset) -> None:
    """Refuse a dataset of an unfinished results group (an interrupted run: some of its
    ``completed_positions`` flags unset). Datasets outside results groups pass.

    Raises
    ------
    BEPSFormatError
        Naming the dataset, the file and how many positions were computed.
    """
    state = group_status(dset.parent)
    if state is not None and state[0] < state[1]:
        raise BEPSFormatError(
            f"dataset '{dset.name}' in file '{dset.file.filename}' belongs to an unfinished "
            f"results group ({state[0]} of {state[1]} positions computed; an interrupted "
            "run?); expected complete results: run the same call again to finish it, or pass "
            "a complete group")


def check_fits_memory(shape: tuple, itemsize: int, where: str, copies: float = 2.0) -> None:
    """Refuse, from its declared shape alone, an input that cannot be held in memory
    (``copies`` arrays of ``shape`` x ``itemsize`` bytes beyond the available memory).

    Raises
    ------
    BEPSFormatError
        Naming ``where``, the size needed and the memory available.

    Examples
    --------
    >>> check_fits_memory((10**6, 10**6), 8, "dataset '/a'")
    Traceback (most recent call last):
    ...
    pycroscopy_bevae.exceptions.BEPSFormatError: dataset '/a' declares shape (1000000, ...
    """
    import psutil

    need = float(np.prod([float(n) for n in shape])) * itemsize * copies
    avail = float(psutil.virtual_memory().available)
    try:  # an address-space limit (ulimit -v) binds before the machine's memory does
        import resource

        soft = resource.getrlimit(resource.RLIMIT_AS)[0]
        if soft != resource.RLIM_INFINITY:
            avail = min(avail, float(soft))
    except (ImportError, ValueError, OSError):  # pragma: no cover - not POSIX
        pass
    if need > avail:
        raise BEPSFormatError(
            f"{where} declares shape {tuple(int(n) for n in shape)}: about "
            f"{need / 2**30:.3g} GiB needed in memory, {avail / 2**30:.3g} GiB available; "
            "expected an input that fits (pass a smaller selection, or read it in parts); "
            "nothing was read or written")
