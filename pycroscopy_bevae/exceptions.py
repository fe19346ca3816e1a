"""Exceptions raised by pycroscopy-bevae.

Every error that comes from bad input derives from :class:`BevaeError`, so a
caller can catch all of them at once, and also from the matching built-in
class (``ValueError``, ``FileNotFoundError``) so generic handlers still work.
"""

from __future__ import annotations

# NotFittedError is created on first use (module __getattr__ below)
__all__ = ["BevaeError", "BEPSFormatError", "ParameterError", "MissingFileError",  # noqa: F822
           "FileInUseError", "InsufficientSpaceError", "WriteFailedError",
           "TrainingDivergedError", "NotFittedError", "DataQualityWarning"]


class BevaeError(Exception):
    """Base class of every exception raised deliberately by this package."""


class BEPSFormatError(BevaeError, ValueError):
    """A file or dataset does not have the layout a BEPS analysis needs.

    The message names the file and/or dataset and says what was expected.
    """


class ParameterError(BevaeError, ValueError):
    """A parameter has a value outside what the analysis accepts.

    The message names the parameter, the value given and what is allowed.
    """


class MissingFileError(BevaeError, FileNotFoundError):
    """A file given by path does not exist."""


class FileInUseError(BevaeError, OSError):
    """A file cannot be opened because another program holds it open for writing.

    HDF5 locks a file while a program writes to it; close it there (e.g. the other
    notebook kernel) and try again.
    """


class InsufficientSpaceError(BevaeError, OSError):
    """The disk or the process's file-size limit (``ulimit -f``) cannot hold the results.

    Raised before anything is written: the file is unchanged.
    """


class WriteFailedError(BevaeError, OSError):
    """Writing results failed part way for lack of space (the disk filled up meanwhile).

    The partial results of the failed call are removed again, so the file keeps what it
    held before and still opens.
    """


class TrainingDivergedError(BevaeError, FloatingPointError):
    """Training stopped because the loss stopped being finite (NaN or infinity).

    Nothing after the last finite epoch is kept: the model holds the weights of the
    last good snapshot (``snapshot``, None when there was none), and a results group
    in a file keeps its snapshots and last checkpoint. The message names the epoch,
    the schedule values and what to change (usually a smaller ``learning_rate``).

    Attributes
    ----------
    epoch : int
        The epoch whose loss was not finite.
    snapshot : int or None
        Index of the last good snapshot.
    """

    def __init__(self, message: str, epoch: int, snapshot: int | None):
        super().__init__(message)
        self.epoch = epoch
        self.snapshot = snapshot


class DataQualityWarning(UserWarning):
    """The input is usable, but part of it was rejected or replaced (e.g. failed SHO fits)."""


def _not_fitted_error() -> type:
    from sklearn.exceptions import NotFittedError as SklearnNotFittedError

    class NotFittedError(ParameterError, SklearnNotFittedError):
        """An estimator or scaler was used before ``fit``.

        Both a package error (:class:`ParameterError`) and scikit-learn's
        ``NotFittedError``, so either ``except`` clause catches it. Created on first use
        (importing scikit-learn takes about a second, which ``import pycroscopy_bevae``
        does not pay).
        """

    NotFittedError.__module__ = __name__
    return NotFittedError


def __getattr__(name: str):
    if name == "NotFittedError":
        cls = globals()["NotFittedError"] = _not_fitted_error()
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
