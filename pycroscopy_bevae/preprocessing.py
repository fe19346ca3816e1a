"""Cleaning of hysteresis loops before analysis.

Pure numpy, vectorised over all loops at once.
"""

from __future__ import annotations

import numpy as np

__all__ = ["interp_nan"]


def interp_nan(x: np.ndarray, axis: int = -1, valid: np.ndarray | None = None) -> np.ndarray:
    """Fill missing points of each loop by linear interpolation along ``axis``.

    Points before the first (after the last) valid point take the value of the
    first (last) valid point, as :func:`numpy.interp` does.  Loops without any
    valid point stay NaN.

    Parameters
    ----------
    x : array_like
        Loops, any shape.
    axis : int
        Axis along which the loop runs (acquisition order).
    valid : array_like of bool, optional
        Which points to keep; default ``numpy.isfinite(x)``. Non-finite points
        are always treated as missing.

    Returns
    -------
    numpy.ndarray
        A float copy of ``x`` with the missing points filled.

    Examples
    --------
    >>> interp_nan(np.array([np.nan, 1.0, np.nan, 3.0, np.nan]))
    array([1., 1., 2., 3., 3.])
    """
    arr = np.moveaxis(np.array(x, dtype=float, copy=True), axis, -1)
    good = np.isfinite(arr)
    if valid is not None:
        good &= np.moveaxis(np.asarray(valid, dtype=bool), axis, -1)
    if good.all():
        return np.moveaxis(arr, -1, axis)
    shape = arr.shape
    flat, ok = arr.reshape(-1, shape[-1]), good.reshape(-1, shape[-1])
    rows = np.flatnonzero(~ok.all(axis=1))  # only loops with missing points need work
    flat[rows] = _fill_rows(flat[rows], ok[rows])
    return np.moveaxis(flat.reshape(shape), -1, axis)


def _fill_rows(x: np.ndarray, good: np.ndarray) -> np.ndarray:
    """Linear interpolation of the missing points of each row of a 2-D array."""
    n = x.shape[-1]
    idx = np.broadcast_to(np.arange(n), x.shape)
    prev = np.maximum.accumulate(np.where(good, idx, -1), axis=-1)
    nxt = np.minimum.accumulate(np.where(good, idx, n)[..., ::-1], axis=-1)[..., ::-1]
    x_prev = np.take_along_axis(x, np.clip(prev, 0, n - 1), axis=-1)
    x_next = np.take_along_axis(x, np.clip(nxt, 0, n - 1), axis=-1)
    has_prev, has_next = prev >= 0, nxt < n
    both = has_prev & has_next
    span = np.where(both, np.maximum(nxt - prev, 1), 1)
    frac = np.where(both, (idx - prev) / span, 0.0)
    filled = np.where(
        both,
        x_prev + frac * (x_next - x_prev),
        np.where(has_prev, x_prev, np.where(has_next, x_next, np.nan)),
    )
    return np.where(good, x, filled)
