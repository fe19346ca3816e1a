"""Elementary comparison metrics, vectorised over spectra."""

from __future__ import annotations

import numpy as np

__all__ = ["rowwise_correlation", "angle_difference"]


def rowwise_correlation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlation of each row of ``a`` with the same row of ``b``.

    Parameters
    ----------
    a, b : numpy.ndarray
        Arrays of the same shape; the last axis is correlated.

    Returns
    -------
    numpy.ndarray
        Correlations, shape ``a.shape[:-1]``; NaN where a row is constant.

    Examples
    --------
    >>> x = np.array([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]])
    >>> y = np.array([[2.0, 4.0, 6.0], [3.0, 2.0, 1.0]])
    >>> rowwise_correlation(x, y)
    array([ 1., -1.])
    """
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    da = a - a.mean(axis=-1, keepdims=True)
    db = b - b.mean(axis=-1, keepdims=True)
    den = np.sqrt((da**2).sum(axis=-1) * (db**2).sum(axis=-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (da * db).sum(axis=-1) / np.where(den > 0, den, 1.0), np.nan)


def angle_difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Signed difference ``a - b`` of angles (rad), wrapped to (-pi, pi].

    Examples
    --------
    >>> float(angle_difference(np.pi - 0.1, -np.pi + 0.1)).__round__(6)
    -0.2
    """
    return np.angle(np.exp(1j * (np.asarray(a, float) - np.asarray(b, float))))
