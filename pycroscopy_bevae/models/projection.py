"""Loop projection: SHO amplitude and phase -> piezoresponse hysteresis loops.

The complex response ``z = A exp(i phi)`` of a ferroelectric switching between
two polarisation states lies, ideally, on a line in the complex plane; its
direction is set by the instrument phase at that position.  Projection rotates
the response by the angle ``theta`` that puts this line on the real axis and
keeps the real part: ``P = A cos(phi + theta)``.

``theta`` is found in closed form as the principal axis of the (centred) point
cloud: the variance of ``Re(z exp(i theta))`` is maximal at
``theta = -arg(sum (z - mean z)**2) / 2``.  That leaves a sign ambiguity
(``theta + pi`` gives ``-P``); it is resolved by a documented convention so the
loops of all positions have the same orientation: by default the projected
loop correlates positively with the DC bias (``sign='positive'``), as in the
published PbZr0.2Ti0.8O3 loops.

Everything is vectorised over positions and loops; no Python loop runs per
position.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..exceptions import ParameterError
from ..preprocessing import interp_nan

__all__ = ["ProjectionResult", "project_loops", "rotation_angles"]

_PER = ("position", "loop")
_SIGN = ("positive", "negative")


@dataclass
class ProjectionResult:
    """Output of :func:`project_loops`.

    Attributes
    ----------
    piezoresponse : numpy.ndarray
        (positions, loops, steps) projected loops ``A cos(phi + theta)``.
    resonance : numpy.ndarray
        (positions, loops, steps) resonance frequency, failed fits interpolated.
    rotation_angle : numpy.ndarray
        (positions, 1) for ``per='position'``, (positions, loops) for ``per='loop'``;
        radians in (-pi, pi].
    valid : numpy.ndarray
        (positions, loops, steps) bool, False where the fit was rejected.
    n_failed : int
        Number of rejected fits (interpolated along their loop).
    """

    piezoresponse: np.ndarray
    resonance: np.ndarray
    rotation_angle: np.ndarray
    valid: np.ndarray
    n_failed: int


def rotation_angles(
    z: np.ndarray,
    dc: np.ndarray,
    valid: np.ndarray | None = None,
    per: str = "position",
    sign: str = "positive",
) -> np.ndarray:
    """Optimal rotation angles for complex loops.

    Parameters
    ----------
    z : numpy.ndarray
        (positions, loops, steps) complex response.
    dc : numpy.ndarray
        DC bias, broadcastable to ``z`` (e.g. (loops, steps) or (steps,)).
    valid : numpy.ndarray of bool, optional
        Points to use; default all finite points.
    per : {'position', 'loop'}
        One angle from all loops of a position, or one per loop (as BGlib).
    sign : {'positive', 'negative'}
        Orientation: the projected loop's covariance with the DC bias is made
        positive (or negative).

    Returns
    -------
    numpy.ndarray
        (positions, loops) angles in (-pi, pi]; for ``per='position'`` every loop
        of a position has the same angle.

    Examples
    --------
    >>> dc = np.linspace(-1, 1, 8)
    >>> loop = np.tanh(4 * dc)
    >>> z = (loop * np.exp(0.7j))[None, None, :]
    >>> round(float(rotation_angles(z, dc)[0, 0]), 6)
    -0.7
    """
    if per not in _PER:
        raise ParameterError(f"per must be one of {_PER}, got {per!r}")
    if sign not in _SIGN:
        raise ParameterError(f"sign must be one of {_SIGN}, got {sign!r}")
    z = np.asarray(z)
    good = np.isfinite(z) if valid is None else (np.asarray(valid, bool) & np.isfinite(z))
    w = good.astype(float)
    zc = np.where(good, z, 0.0)
    v = np.broadcast_to(np.asarray(dc, dtype=float), z.shape)
    axes = (1, 2) if per == "position" else (2,)
    n = np.maximum(w.sum(axis=axes, keepdims=True), 1.0)
    mean = zc.sum(axis=axes, keepdims=True) / n
    moment = (w * (zc - mean) ** 2).sum(axis=axes, keepdims=True)
    theta = -0.5 * np.angle(moment)
    # a degenerate cloud (all points equal) has no axis: rotate the mean onto the real axis
    degenerate = np.abs(moment) <= 1e-300
    theta = np.where(degenerate, -np.angle(mean), theta)
    proj = np.real(zc * np.exp(1j * theta))
    v_mean = (w * v).sum(axis=axes, keepdims=True) / n
    p_mean = (w * proj).sum(axis=axes, keepdims=True) / n
    cov = (w * (proj - p_mean) * (v - v_mean)).sum(axis=axes, keepdims=True)
    flip = cov < 0 if sign == "positive" else cov > 0
    theta = np.where(flip, theta + np.pi, theta)
    theta = np.angle(np.exp(1j * theta))  # wrap to (-pi, pi]
    return np.broadcast_to(theta[..., 0], z.shape[:2]).copy()


def project_loops(
    amplitude: np.ndarray,
    phase: np.ndarray,
    dc: np.ndarray,
    frequency: np.ndarray | None = None,
    r2: np.ndarray | None = None,
    r2_threshold: float = 0.0,
    per: str = "position",
    sign: str = "positive",
    fill_failed: bool = True,
) -> ProjectionResult:
    """Project SHO-fit loops onto the piezoresponse axis.

    Parameters
    ----------
    amplitude, phase : numpy.ndarray
        (positions, loops, steps) SHO amplitude and phase (rad), steps in
        acquisition order.
    dc : numpy.ndarray
        DC bias of each step, broadcastable to (positions, loops, steps).
    frequency : numpy.ndarray, optional
        (positions, loops, steps) SHO resonance frequency; cleaned like the loops.
    r2 : numpy.ndarray, optional
        SHO fit quality; fits with ``r2 < r2_threshold`` or non-finite values are rejected.
    r2_threshold : float
        Rejection threshold (0 keeps every finite fit).
    per : {'position', 'loop'}
        See :func:`rotation_angles`.
    sign : {'positive', 'negative'}
        See :func:`rotation_angles`.
    fill_failed : bool
        Replace rejected fits by linear interpolation along their loop (default);
        otherwise leave them NaN.

    Returns
    -------
    ProjectionResult

    Examples
    --------
    >>> dc = np.concatenate([np.linspace(-1, 1, 10), np.linspace(1, -1, 10)])
    >>> true = np.tanh(5 * (dc - 0.2 * np.sign(np.gradient(dc))))
    >>> z = true * np.exp(2.0j)
    >>> res = project_loops(np.abs(z)[None, None], np.angle(z)[None, None], dc)
    >>> bool(np.allclose(res.piezoresponse[0, 0], true))
    True
    """
    amplitude = np.asarray(amplitude, dtype=float)
    phase = np.asarray(phase, dtype=float)
    if amplitude.ndim != 3 or amplitude.shape != phase.shape:
        raise ParameterError(
            "amplitude and phase must have the same shape (positions, loops, steps), got "
            f"{amplitude.shape} and {phase.shape}"
        )
    if not np.isfinite(r2_threshold):
        raise ParameterError(f"r2_threshold must be finite, got {r2_threshold!r}")
    valid = np.isfinite(amplitude) & np.isfinite(phase)
    if r2 is not None:
        r2 = np.asarray(r2, dtype=float)
        valid &= np.isfinite(r2) & (r2 >= r2_threshold)
    if frequency is not None:
        frequency = np.asarray(frequency, dtype=float)
        valid &= np.isfinite(frequency)
    with np.errstate(invalid="ignore"):
        z = np.where(valid, amplitude * np.exp(1j * phase), np.nan)
    theta = rotation_angles(z, dc, valid=valid, per=per, sign=sign)
    with np.errstate(invalid="ignore"):
        proj = np.where(valid, amplitude * np.cos(phase + theta[..., None]), np.nan)
    res = np.where(valid, frequency, np.nan) if frequency is not None else \
        np.full(amplitude.shape, np.nan)
    if fill_failed:
        # both loops share the validity mask: interpolate them in one pass
        proj, res = interp_nan(np.stack([proj, res]), axis=-1)
    angle = theta[:, :1] if per == "position" else theta
    return ProjectionResult(
        piezoresponse=proj,
        resonance=res,
        rotation_angle=angle,
        valid=valid,
        n_failed=int((~valid).sum()),
    )
