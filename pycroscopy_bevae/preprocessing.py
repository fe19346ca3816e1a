"""Cleaning, scaling and stacking of hysteresis loops before analysis.

Pure numpy, vectorised over all loops at once.  The cleaning follows the
reference pipeline of the PZT benchmark (see ``../shared/data/README.md``):
optional value-range filter -> NaN interpolation along each loop ->
Savitzky-Golay outlier removal (window 7, order 3, drop the k points furthest
from the filtered loop, re-interpolate).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

import numpy as np

from . import exceptions as _exceptions
from .exceptions import ParameterError

__all__ = [
    "interp_nan",
    "clean_loops",
    "LoopScaler",
    "MultiScaler",
    "stack_features",
    "unstack_features",
    "stack_channels",
    "unstack_channels",
]


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


def clean_loops(
    loops: np.ndarray,
    value_range: tuple[float, float] | None = None,
    window: int = 7,
    order: int = 3,
    n_outliers: int = 3,
) -> np.ndarray:
    """Clean loops as the reference pipeline does.

    1. values outside ``value_range`` (if given) become missing;
    2. missing values are filled by linear interpolation along the loop;
    3. a Savitzky-Golay filter (``window``, ``order``; scipy's ``mode='interp'``)
       is fitted to each loop, the ``n_outliers`` points furthest from it are
       dropped and re-interpolated.

    Parameters
    ----------
    loops : numpy.ndarray
        (n_loops, steps) in acquisition order.
    value_range : (low, high), optional
        Physically plausible range, e.g. ``(1.30e6, 1.34e6)`` Hz for resonance.
    window, order : int
        Savitzky-Golay window length (odd) and polynomial order.
    n_outliers : int
        Points dropped per loop (0 skips step 3).

    Returns
    -------
    numpy.ndarray
        Cleaned float copy.

    Examples
    --------
    >>> x = np.sin(np.linspace(0, 3, 20))[None, :]
    >>> x[0, 5] = 9.0  # a glitch
    >>> y = clean_loops(x, n_outliers=1)
    >>> bool(abs(y[0, 5] - 0.5 * (x[0, 4] + x[0, 6])) < 1e-12)
    True
    """
    from scipy.signal import savgol_filter

    x = np.array(loops, dtype=float, copy=True)
    if x.ndim != 2:
        raise ParameterError(f"loops must be 2-D (n_loops, steps), got shape {x.shape}")
    if window % 2 == 0 or window <= order or window > x.shape[1]:
        raise ParameterError(
            f"window must be odd, larger than order={order} and at most the {x.shape[1]} "
            f"steps; got {window}"
        )
    if not 0 <= n_outliers < x.shape[1]:
        raise ParameterError(f"n_outliers must be in 0..{x.shape[1] - 1}, got {n_outliers}")
    if value_range is not None:
        lo, hi = value_range
        with np.errstate(invalid="ignore"):
            x[(x < lo) | (x > hi)] = np.nan
    x = interp_nan(x)
    if n_outliers == 0:
        return x
    ok = np.isfinite(x).all(axis=1)  # loops with no valid point at all stay NaN
    smooth = savgol_filter(x[ok], window, order, axis=1, mode="interp")
    worst = np.argsort(np.abs(x[ok] - smooth), axis=1)[:, -n_outliers:]
    sub = x[ok]
    np.put_along_axis(sub, worst, np.nan, axis=1)
    x[ok] = interp_nan(sub)
    return x


class LoopScaler:
    """Standardise loops of one modality: one global mean/std, or one per step.

    Parameters
    ----------
    mode : {'global', 'step', 'balanced', 'none'}
        ``'global'``: one mean and standard deviation over the whole array
        (reference code of the paper); ``'step'``: per-step standardisation
        fitted on training data (paper text, toy benchmark); ``'balanced'``: the
        global mean, divided by the loops' spread about the mean loop (root mean
        square of ``x - x.mean(axis=0)``), so that the position-to-position variation
        of every modality has unit size whatever the share of its mean loop (modality
        balancing: on the real PZT map the piezoresponse varies by 8 % of its global
        variance, the resonance by 99 %); ``'none'``: identity.

    Attributes
    ----------
    mean_, std_ : numpy.ndarray
        Fitted values, shape (steps,) (constant across steps for ``'global'``).

    Examples
    --------
    >>> x = np.array([[1.0, 2.0], [3.0, 6.0]])
    >>> s = LoopScaler("step").fit(x)
    >>> s.transform(x)
    array([[-1., -1.],
           [ 1.,  1.]])
    >>> np.allclose(s.inverse_transform(s.transform(x)), x)
    True
    >>> LoopScaler("balanced").fit(x).std_  # spread about the mean loop [2, 4]: sqrt(2.5)
    array([1.58113883, 1.58113883])
    """

    MODES = ("global", "step", "balanced", "none")

    def __init__(self, mode: str = "global"):
        if mode not in self.MODES:
            raise ParameterError(f"scaling mode must be one of {self.MODES}, got {mode!r}")
        self.mode = mode

    def fit(self, x: np.ndarray) -> LoopScaler:
        """Fit on (n, steps) training loops (non-finite values ignored)."""
        x = np.asarray(x, dtype=float)
        if x.ndim != 2 or x.shape[0] == 0:
            raise ParameterError(f"expected a non-empty 2-D array (n, steps), got {x.shape}")
        steps = x.shape[1]
        if self.mode == "none":
            self.mean_, self.std_ = np.zeros(steps), np.ones(steps)
            return self
        # values so small that their squares underflow (< 1e-154) are measured on a
        # rescaled copy; everything else exactly as numpy computes it
        mag = np.where(np.isfinite(x), np.abs(x), 0.0).max(axis=0)
        if self.mode != "step":
            mag = np.full(steps, mag.max())
        unit = np.where((mag > 0) & (mag < 1e-100), mag, 1.0)
        xs = x / unit
        unit = unit if self.mode == "step" else unit[0]
        if self.mode == "global":
            self.mean_ = np.full(steps, np.nanmean(x))
            self.std_ = np.full(steps, unit * np.nanstd(xs))
        elif self.mode == "balanced":
            self.mean_ = np.full(steps, np.nanmean(x))
            self.std_ = np.full(steps, unit * np.sqrt(np.nanmean(
                (xs - np.nanmean(xs, axis=0)) ** 2)))
        else:
            self.mean_, self.std_ = np.nanmean(x, axis=0), unit * np.nanstd(xs, axis=0)
        # a spread at the level of float rounding (constant loops) is no spread: not divided
        self.std_ = np.where(self.std_ > 1e-12 * mag, self.std_, 1.0)
        return self

    def _check(self, x: np.ndarray) -> np.ndarray:
        if not hasattr(self, "mean_"):
            raise _exceptions.NotFittedError("this LoopScaler is not fitted yet: call fit() first")
        x = np.asarray(x, dtype=float)
        if x.shape[-1] != self.mean_.size:
            raise ParameterError(
                f"expected {self.mean_.size} steps (as fitted), got {x.shape[-1]}"
            )
        return x

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Scale: ``(x - mean_) / std_``."""
        return (self._check(x) - self.mean_) / self.std_

    def inverse_transform(self, z: np.ndarray) -> np.ndarray:
        """Back to physical units: ``z * std_ + mean_``."""
        return self._check(z) * self.std_ + self.mean_

    def fit_transform(self, x: np.ndarray) -> np.ndarray:
        """Fit, then transform."""
        return self.fit(x).transform(x)

    def to_dict(self) -> dict:
        """Fitted state as plain values (for HDF5 attributes or JSON)."""
        return {"mode": self.mode, "mean": self.mean_.tolist(), "std": self.std_.tolist()}

    @classmethod
    def from_dict(cls, state: Mapping) -> LoopScaler:
        """Rebuild a fitted scaler from :meth:`to_dict` output."""
        obj = cls(str(state["mode"]))
        obj.mean_ = np.asarray(state["mean"], dtype=float)
        obj.std_ = np.asarray(state["std"], dtype=float)
        return obj


class MultiScaler:
    """One :class:`LoopScaler` per modality (e.g. piezoresponse and resonance).

    Parameters
    ----------
    mode : {'global', 'step', 'balanced', 'none'}
        Scaling of every modality (see :class:`LoopScaler`).

    Examples
    --------
    >>> a, b = np.arange(6.0).reshape(3, 2), 1e6 + np.arange(6.0).reshape(3, 2)
    >>> ms = MultiScaler("global").fit([a, b])
    >>> za, zb = ms.transform([a, b])
    >>> bool(np.allclose(za, zb))
    True
    """

    def __init__(self, mode: str = "global"):
        LoopScaler(mode)  # validates
        self.mode = mode

    def fit(self, modalities: Sequence[np.ndarray]) -> MultiScaler:
        """Fit one scaler per (n, steps) array."""
        self.scalers_ = [LoopScaler(self.mode).fit(m) for m in modalities]
        return self

    def fit_blocks(self, blocks: Callable[[], Iterable[Sequence[np.ndarray]]]) -> MultiScaler:
        """Fit from data that does not fit in memory, block by block.

        Equal to :meth:`fit` on the blocks stacked (up to summation order, ~1e-15
        relative): two passes, the means first, then the squared deviations, as numpy's
        standard deviation.

        Parameters
        ----------
        blocks : callable
            Returns a fresh iterator over blocks, each a sequence of (rows, steps) arrays,
            one per modality (called twice). Non-finite values are not supported here.

        Examples
        --------
        >>> x = np.arange(24.0).reshape(6, 4) ** 1.5
        >>> ms = MultiScaler("balanced").fit_blocks(lambda: ([x[i:i + 4]] for i in (0, 4)))
        >>> bool(np.allclose(ms.std_, MultiScaler("balanced").fit([x]).std_))
        True
        """
        first = mag = None
        n = 0
        for mods in blocks():
            sums = np.stack([np.asarray(m, float).sum(axis=0) for m in mods])
            top = np.stack([np.abs(np.asarray(m, float)).max(axis=0) for m in mods])
            first = sums if first is None else first + sums
            mag = top if mag is None else np.maximum(mag, top)
            n += len(mods[0])
        if first is None or n == 0:
            raise ParameterError("fit_blocks: no data in the blocks")
        n_mod, steps = first.shape
        if self.mode == "none":
            return MultiScaler.from_arrays(self.mode, np.zeros((n_mod, steps)),
                                           np.ones((n_mod, steps)))
        step_mean = first / n
        about = step_mean if self.mode in ("step", "balanced") else np.repeat(
            step_mean.mean(axis=1, keepdims=True), steps, axis=1)
        dev = np.zeros((n_mod, steps))
        for mods in blocks():
            dev += np.stack([((np.asarray(m, float) - about[i]) ** 2).sum(axis=0)
                             for i, m in enumerate(mods)])
        var = dev / n if self.mode == "step" else np.repeat(
            dev.sum(axis=1, keepdims=True) / (n * steps), steps, axis=1)
        mean = step_mean if self.mode == "step" else np.repeat(
            step_mean.mean(axis=1, keepdims=True), steps, axis=1)
        std = np.sqrt(var)
        if self.mode != "step":
            mag = np.repeat(mag.max(axis=1, keepdims=True), steps, axis=1)
        # as fit(): a spread at the level of float rounding is no spread
        fitted = MultiScaler.from_arrays(self.mode, mean, np.where(std > 1e-12 * mag, std, 1.0))
        self.scalers_ = fitted.scalers_
        return self

    def transform(self, modalities: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Scale each modality with its own scaler."""
        self._check(modalities)
        return [s.transform(m) for s, m in zip(self.scalers_, modalities, strict=True)]

    def inverse_transform(self, modalities: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Undo :meth:`transform` for each modality."""
        self._check(modalities)
        return [s.inverse_transform(m) for s, m in zip(self.scalers_, modalities, strict=True)]

    def fit_transform(self, modalities: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Fit, then transform."""
        return self.fit(modalities).transform(modalities)

    def _check(self, modalities: Sequence[np.ndarray]) -> None:
        if not hasattr(self, "scalers_"):
            raise _exceptions.NotFittedError("this MultiScaler is not fitted yet: call fit() first")
        if len(modalities) != len(self.scalers_):
            raise ParameterError(
                f"expected {len(self.scalers_)} modalities (as fitted), got {len(modalities)}"
            )

    @property
    def mean_(self) -> np.ndarray:
        """(modalities, steps) fitted means."""
        return np.stack([s.mean_ for s in self.scalers_])

    @property
    def std_(self) -> np.ndarray:
        """(modalities, steps) fitted standard deviations."""
        return np.stack([s.std_ for s in self.scalers_])

    @classmethod
    def from_arrays(cls, mode: str, mean: np.ndarray, std: np.ndarray) -> MultiScaler:
        """Rebuild from stored (modalities, steps) means and standard deviations."""
        obj = cls(mode)
        obj.scalers_ = [LoopScaler.from_dict({"mode": mode, "mean": m, "std": s})
                        for m, s in zip(mean, std, strict=True)]
        return obj


def stack_features(modalities: Sequence[np.ndarray]) -> np.ndarray:
    """"Dimensional stacking": concatenate (n, steps_i) modalities into (n, sum steps_i).

    Examples
    --------
    >>> stack_features([np.zeros((2, 3)), np.ones((2, 4))]).shape
    (2, 7)
    """
    _same_rows(modalities)
    return np.concatenate([np.asarray(m, dtype=float) for m in modalities], axis=1)


def unstack_features(x: np.ndarray, sizes: Sequence[int]) -> list[np.ndarray]:
    """Split a dimensionally stacked (n, sum sizes) array back into modalities."""
    if sum(sizes) != x.shape[-1]:
        raise ParameterError(f"sizes {list(sizes)} do not add up to {x.shape[-1]} features")
    return np.split(x, np.cumsum(sizes)[:-1], axis=-1)


def stack_channels(modalities: Sequence[np.ndarray]) -> np.ndarray:
    """Channel stacking: (n, T) modalities -> (n, T, C), for sequence models.

    Examples
    --------
    >>> stack_channels([np.zeros((2, 5)), np.ones((2, 5))]).shape
    (2, 5, 2)
    """
    _same_rows(modalities)
    lengths = {np.shape(m)[1] for m in modalities}
    if len(lengths) != 1:
        raise ParameterError(f"channel stacking needs equal lengths, got {sorted(lengths)}")
    return np.stack([np.asarray(m, dtype=float) for m in modalities], axis=-1)


def unstack_channels(x: np.ndarray) -> list[np.ndarray]:
    """(n, T, C) -> list of C arrays (n, T)."""
    return [x[..., c] for c in range(x.shape[-1])]


def _same_rows(modalities: Sequence[np.ndarray]) -> None:
    if len(modalities) == 0:
        raise ParameterError("at least one modality is needed")
    rows = [np.shape(m)[0] for m in modalities]
    if len(set(rows)) != 1 or any(np.ndim(m) != 2 for m in modalities):
        raise ParameterError(
            f"modalities must be 2-D with the same number of positions, got shapes "
            f"{[np.shape(m) for m in modalities]}"
        )
