"""Batched Levenberg-Marquardt: many small least-squares problems solved at once in NumPy.

One damped Gauss-Newton step per problem and iteration (forward-difference Jacobian, one
``k x k`` solve per problem), each problem with its own damping and its own stopping
rule. Used by the loop fit (:mod:`pycroscopy_bevae.models.loop_fit`) and the SHO fit
(:mod:`pycroscopy_bevae.models.sho_fit`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["levenberg_marquardt"]


def levenberg_marquardt(theta: np.ndarray, residuals: Callable[[np.ndarray, np.ndarray],
                                                               np.ndarray],
                        max_iter: int, tol: float, lower: np.ndarray | None = None,
                        upper: np.ndarray | None = None
                        ) -> tuple[np.ndarray, np.ndarray, int]:
    """Minimise ``sum(residuals(theta, rows)**2)`` for every row of ``theta`` at once.

    Parameters
    ----------
    theta : numpy.ndarray
        (problems, k) starting parameters.
    residuals : callable
        ``residuals(theta_rows, rows)``: the (len(rows), m) residuals of problems ``rows``
        at parameters ``theta_rows``.
    max_iter : int
        Iterations at most.
    tol : float
        A problem stops when an accepted step lowers its cost by less than this fraction,
        its step becomes negligible, or no step is accepted at the largest damping.
    lower, upper : numpy.ndarray, optional
        (k,) bounds: each trial step is clipped into them.

    Returns
    -------
    theta : numpy.ndarray
        (problems, k) fitted parameters.
    cost : numpy.ndarray
        (problems,) sum of squared residuals at ``theta``.
    n_iter : int
        Iterations run.

    Examples
    --------
    >>> x = np.linspace(0, 1, 20)
    >>> y = np.array([[2.0], [0.5]]) * np.exp(-np.array([[3.0], [1.0]]) * x)
    >>> res = lambda th, rows: th[:, :1] * np.exp(-th[:, 1:] * x) - y[rows]
    >>> th, cost, _ = levenberg_marquardt(np.ones((2, 2)), res, 100, 1e-12)
    >>> np.round(th, 6)
    array([[2. , 3. ],
           [0.5, 1. ]])
    """
    n, k = theta.shape
    theta = theta.copy()
    lo = np.full(k, -np.inf) if lower is None else np.asarray(lower, dtype=float)
    hi = np.full(k, np.inf) if upper is None else np.asarray(upper, dtype=float)
    bounded = lower is not None or upper is not None
    rows = np.arange(n)
    r = residuals(theta, rows)
    cost = np.sum(r**2, axis=1)
    lam = np.full(n, 1e-2)
    active = np.ones(n, dtype=bool)
    eps = 1e-6
    it = 0
    for it in range(1, max_iter + 1):  # noqa: B007 - the count is reported
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        th, ri = theta[idx], r[idx]
        jac = np.empty((*ri.shape, k))
        for j in range(k):
            step = eps * np.maximum(1.0, np.abs(th[:, j]))
            if bounded:  # step inwards at an upper bound
                step = np.where(th[:, j] + step > hi[j], -step, step)
            shifted = th.copy()
            shifted[:, j] += step
            jac[:, :, j] = (residuals(shifted, idx) - ri) / step[:, None]
        jtj = np.matmul(jac.transpose(0, 2, 1), jac)  # (batched matmul: 8x einsum's speed)
        grad = np.matmul(ri[:, None, :], jac)[:, 0]
        diag = np.einsum("nkk->nk", jtj)
        damped = jtj + (lam[idx, None] * np.maximum(diag, 1e-12))[:, :, None] * np.eye(k)
        try:
            delta = np.linalg.solve(damped, -grad[..., None])[..., 0]
        except np.linalg.LinAlgError:
            delta = -grad / np.maximum(diag, 1e-12)
        trial = th + delta
        if bounded:
            trial = np.clip(trial, lo, hi)
            delta = trial - th
        r_new = residuals(trial, idx)
        c_new = np.sum(r_new**2, axis=1)
        better = np.isfinite(c_new) & (c_new < cost[idx])
        rel = np.where(better, (cost[idx] - c_new) / np.maximum(cost[idx], 1e-300), 0.0)
        good = idx[better]
        theta[good], r[good], cost[good] = trial[better], r_new[better], c_new[better]
        lam[idx] = np.where(better, np.maximum(lam[idx] / 3, 1e-9),
                            np.minimum(lam[idx] * 4, 1e9))
        small = np.all(np.abs(delta) <= 1e-9 * (1.0 + np.abs(th)), axis=1)
        done = (better & (rel < tol)) | (lam[idx] >= 1e9) | small
        active[idx[done]] = False
    return theta, cost, it
