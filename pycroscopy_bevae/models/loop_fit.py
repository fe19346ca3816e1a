"""Batched fitting of the 9-parameter hysteresis-loop model to projected BEPS loops.

The model is the one BEPS workflows read loops in (after Jesse et al.'s loop fitting,
as BGlib fits it): per loop an offset, the loop amplitude (the height between the two
saturated states), the coercive voltages of the rising and of the falling branch, a
linear slope (electrostatic / dielectric background) and four branch shapes (the width of
each branch below and above its coercive voltage). Written here from the physics:

.. math::

    f(V) = a_0 + \\frac{a_1}{2}\\,\\mathrm{erf}\\!\\left(\\frac{V - V_c}{w(V)}\\right) + a_4 V,
    \\qquad V_c = \\begin{cases} V_c^{+} & \\text{rising bias} \\\\ V_c^{-} &
    \\text{falling bias} \\end{cases}

with :math:`w(V)` the branch's lower width below :math:`V_c` and its upper width above.
Which steps belong to the rising branch is read from the bias waveform itself, so loops
acquired in any order (starting at 0 V, at the negative or the positive extreme) are fit
alike.

Every loop of a block is fit at once by a batched Levenberg-Marquardt iteration in NumPy
(:func:`~pycroscopy_bevae.models.lm.levenberg_marquardt`, one 9 x 9 solve per loop and
iteration), from two guesses read off the loop (mid-level
crossings of each branch, the spread between the saturated states; once with the slope
estimated from the saturated ends and removed, once without), keeping the better fit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import erf

from ..exceptions import ParameterError
from .lm import levenberg_marquardt

__all__ = ["LOOP_PARAMETERS", "LoopFitResult", "fit_loops", "loop_model", "rising_steps",
           "sweeps_both_ways"]

#: Parameter names (in order) and their units relative to the loop's (``'{u}'``: the
#: loop's units, ``'V'``: volts of the bias).
LOOP_PARAMETERS = {
    "Offset": "{u}", "Amplitude": "{u}", "Coercive_Voltage_Up": "V",
    "Coercive_Voltage_Down": "V", "Slope": "{u}/V", "Width_Up_Low": "V", "Width_Up_High": "V",
    "Width_Down_Low": "V", "Width_Down_High": "V",
}
_MIN_WIDTH = 1e-3  # V; widths are fit as logarithms above this floor


@dataclass
class LoopFitResult:
    """Fitted loop parameters.

    Attributes
    ----------
    parameters : numpy.ndarray
        (loops, 9) in the order of :data:`LOOP_PARAMETERS`.
    fitted : numpy.ndarray
        (loops, steps): the model at the fitted parameters.
    r2 : numpy.ndarray
        (loops,) coefficient of determination of each fit (NaN for a constant or
        non-finite loop).
    n_iter : int
        Levenberg-Marquardt iterations run.
    """

    parameters: np.ndarray
    fitted: np.ndarray
    r2: np.ndarray
    n_iter: int


def rising_steps(dc: np.ndarray) -> np.ndarray:
    """Which steps of a bias waveform belong to the rising branch.

    The waveform is taken as periodic (a loop); a step is rising when the bias around it
    increases (central difference; at a turning point, the forward difference).

    Examples
    --------
    >>> rising_steps(np.array([0., 1, 2, 1, 0, -1, -2, -1])).astype(int)
    array([1, 1, 0, 0, 0, 0, 1, 1])
    """
    dc = np.asarray(dc, dtype=float)
    central = np.roll(dc, -1) - np.roll(dc, 1)
    forward = np.roll(dc, -1) - dc
    return np.where(central != 0, central > 0, forward > 0)


def sweeps_both_ways(dc: np.ndarray) -> bool:
    """Whether a bias waveform goes up and down (a loop can be fit on it).

    Examples
    --------
    >>> sweeps_both_ways(np.array([0., 1, 0, -1])), sweeps_both_ways(np.arange(4.0))
    (True, False)
    """
    steps = np.diff(np.asarray(dc, dtype=float))
    return bool((steps > 0).any() and (steps < 0).any())


def loop_model(params: np.ndarray, dc: np.ndarray, rising: np.ndarray | None = None
               ) -> np.ndarray:
    """The loop model at ``params`` ((loops, 9), see :data:`LOOP_PARAMETERS`) over ``dc``.

    Examples
    --------
    >>> dc = np.array([0., 1, 2, 1, 0, -1, -2, -1])
    >>> p = np.array([[0, 2, 0.5, -0.5, 0, 0.3, 0.3, 0.3, 0.3]])
    >>> np.round(loop_model(p, dc), 2)
    array([[-0.98,  0.98,  1.  ,  1.  ,  0.98, -0.98, -1.  , -1.  ]])
    """
    params = np.atleast_2d(np.asarray(params, dtype=float))
    dc = np.asarray(dc, dtype=float)[None, :]
    up = rising_steps(dc[0]) if rising is None else rising
    vc = np.where(up, params[:, 2:3], params[:, 3:4])
    below = dc < vc
    width = np.where(up, np.where(below, params[:, 5:6], params[:, 6:7]),
                     np.where(below, params[:, 7:8], params[:, 8:9]))
    return params[:, 0:1] + 0.5 * params[:, 1:2] * erf((dc - vc) / width) + params[:, 4:5] * dc


def _to_params(theta: np.ndarray) -> np.ndarray:
    p = theta.copy()
    p[:, 5:] = _MIN_WIDTH + np.exp(np.clip(theta[:, 5:], -30.0, 30.0))
    return p


def _guess(loops: np.ndarray, dc: np.ndarray, up: np.ndarray, detrend: bool) -> np.ndarray:
    """Initial parameters (internal form: log widths) read off each loop; with
    ``detrend``, the slope is first estimated from the saturated ends of the loop (pooled
    within each end) and removed."""
    n = loops.shape[0]
    span = float(np.ptp(dc)) or 1.0
    theta = np.zeros((n, 9))
    if detrend:
        vmax = np.abs(dc).max()
        num = den = 0.0
        for end in (dc >= 0.6 * vmax, dc <= -0.6 * vmax):
            if end.sum() >= 2:
                v = dc[end] - dc[end].mean()
                num = num + (loops[:, end] - loops[:, end].mean(axis=1, keepdims=True)) @ v
                den += float(v @ v)
        theta[:, 4] = num / den if den > 0 else 0.0
    flat = loops - theta[:, 4:5] * dc[None, :]
    lo, hi = np.nanpercentile(flat, [10, 90], axis=1)
    mid = 0.5 * (lo + hi)
    theta[:, 0] = mid
    theta[:, 1] = hi - lo
    for col, branch in ((2, up), (3, ~up)):
        v = dc[branch]
        order = np.argsort(v)
        v, y = v[order], flat[:, branch][:, order] - mid[:, None]
        # bias where the branch is closest to its mid-level crossing
        theta[:, col] = v[np.argmin(np.abs(y), axis=1)]
    theta[:, 5:] = np.log(0.08 * span)
    return theta


def fit_loops(loops: np.ndarray, dc: np.ndarray, *, max_iter: int = 200, tol: float = 1e-6
              ) -> LoopFitResult:
    """Fit :func:`loop_model` to every loop at once.

    Parameters
    ----------
    loops : numpy.ndarray
        (loops, steps) projected loops (NaN loops are returned with NaN parameters).
    dc : numpy.ndarray
        (steps,) DC bias of each step, in acquisition order (any start and direction).
    max_iter : int
        Levenberg-Marquardt iterations at most.
    tol : float
        A loop stops when an accepted step lowers its cost by less than this fraction (or
        its step becomes negligible, or no step is accepted at the largest damping).

    Returns
    -------
    LoopFitResult

    Examples
    --------
    >>> dc = 4 * np.sin(np.linspace(0, 2 * np.pi, 64, endpoint=False))
    >>> true = np.array([[0.1, 2.0, 1.5, -1.0, 0.05, 0.4, 0.6, 0.5, 0.3]])
    >>> res = fit_loops(loop_model(true, dc), dc)
    >>> np.round(res.parameters[0, :5], 3), round(float(res.r2[0]), 6)
    (array([ 0.1 ,  2.  ,  1.5 , -1.  ,  0.05]), 1.0)
    """
    loops = np.asarray(loops, dtype=float)
    dc = np.asarray(dc, dtype=float).ravel()
    if loops.ndim != 2 or loops.shape[1] != dc.size:
        raise ParameterError(f"loops must be (loops, {dc.size}) to match dc, got {loops.shape}")
    up = rising_steps(dc)
    if not sweeps_both_ways(dc):
        raise ParameterError("dc must sweep up and down (a loop); it only "
                             + ("rises" if (np.diff(dc) >= 0).all() else "falls"))
    ok = np.isfinite(loops).all(axis=1) & (np.ptp(np.nan_to_num(loops), axis=1) > 0)
    y = np.where(ok[:, None], loops, 0.0)
    scale = np.where(ok, np.std(y, axis=1), 1.0)[:, None]
    scale[scale == 0] = 1.0
    # two starts (slope estimated from the saturated ends, and none); the better one wins.
    # One BLAS thread: thousands of 9 x 9 solves are slower when split over threads.
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        def resid(theta: np.ndarray, idx: np.ndarray) -> np.ndarray:
            return _resid_rows(theta, idx, dc, up, y, scale)

        theta, cost, it = levenberg_marquardt(_guess(y, dc, up, detrend=True), resid,
                                              max_iter, tol)
        theta2, cost2, it2 = levenberg_marquardt(_guess(y, dc, up, detrend=False), resid,
                                                 max_iter, tol)
    second = cost2 < cost
    theta[second] = theta2[second]
    it = max(it, it2)
    params = _to_params(theta)
    fitted = loop_model(params, dc, up)
    with np.errstate(invalid="ignore", divide="ignore"):
        ss_tot = np.sum((y - y.mean(axis=1, keepdims=True)) ** 2, axis=1)
        r2 = 1 - np.sum((fitted - y) ** 2, axis=1) / ss_tot
    params[~ok] = np.nan
    fitted[~ok] = np.nan
    r2[~ok] = np.nan
    return LoopFitResult(parameters=params, fitted=fitted, r2=r2, n_iter=it)


def _resid_rows(theta: np.ndarray, idx: np.ndarray, dc: np.ndarray, up: np.ndarray,
               y: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Scaled residuals of rows ``idx`` at internal parameters ``theta``."""
    return (loop_model(_to_params(theta), dc, up) - y[idx]) / scale[idx]
