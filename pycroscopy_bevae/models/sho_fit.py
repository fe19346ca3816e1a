"""Batched simple-harmonic-oscillator (SHO) fit of band-excitation spectra.

The band-excitation response of a cantilever in contact is, over the excited band, that of
a driven damped harmonic oscillator. In BGlib's convention (the one its ``BESHOfitter``
and the synthetic ``Raw_Data`` of :func:`~pycroscopy_bevae.datasets.write_synthetic_beps`
use)

.. math::

    r(\\omega) = \\frac{A e^{i\\phi}\\, \\omega_0^2}{\\omega^2 - i\\omega\\omega_0/Q - \\omega_0^2},

which peaks at :math:`\\omega_0` with magnitude :math:`A Q` and phase :math:`\\phi + \\pi/2`.

The model is linear in the complex amplitude :math:`c = A e^{i\\phi}`: for any resonance
frequency and quality factor the best :math:`c` is a closed-form projection of the
spectrum onto the oscillator's shape. Only :math:`(\\omega_0, Q)` are therefore searched
(variable projection):

1. first guess: every spectrum is compared at once (one complex matrix product) with the
   normalised oscillator shapes of a grid of resonance frequencies across the band and
   log-spaced quality factors; the best-matching shape and its projected amplitude are
   the guess, robust to noise and needing no peak picking;
2. refinement: a batched Levenberg-Marquardt
   (:func:`~pycroscopy_bevae.models.lm.levenberg_marquardt`) over :math:`\\omega_0`
   (bounded to the band) and :math:`\\log Q` (so :math:`Q > 0`) of the projected
   residual, thousands of spectra at once; :math:`A = |c| \\ge 0` and
   :math:`\\phi = \\arg c` follow.

Numpy in, numpy out: complex64 or complex128 spectra, parameters in the matching float
precision.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..exceptions import ParameterError
from .lm import levenberg_marquardt

__all__ = ["SHO_PARAMETERS", "SHOFitResult", "fit_sho", "sho_guess", "sho_model", "sho_r2"]

#: Parameters of a fit, in column order.
SHO_PARAMETERS = ("Amplitude", "Frequency", "Quality Factor", "Phase")
#: Quality factors the search allows (Q is fit as log Q inside these bounds).
_Q_BOUNDS = (1e-2, 1e7)
#: Spectra compared with the grid of oscillator shapes at a time (bounds the memory of the
#: first guess: this many x grid size complex values).
_GUESS_BLOCK = 4096


@dataclass
class SHOFitResult:
    """SHO fit of a batch of spectra.

    Attributes
    ----------
    parameters : numpy.ndarray
        (spectra, 4): amplitude, resonance frequency, quality factor, phase (rad), see
        :data:`SHO_PARAMETERS`; NaN rows for spectra that cannot be fit (non-finite or
        all zero).
    guess : numpy.ndarray
        (spectra, 4): the first guess, same layout.
    r2 : numpy.ndarray
        (spectra,) coefficient of determination of the fit,
        ``1 - sum|y - fit|^2 / sum|y - mean(y)|^2``.
    guess_r2 : numpy.ndarray
        (spectra,) the same for the guess.
    n_iter : int
        Levenberg-Marquardt iterations run.
    """

    parameters: np.ndarray
    guess: np.ndarray
    r2: np.ndarray
    guess_r2: np.ndarray
    n_iter: int


def sho_model(params: np.ndarray, freqs: np.ndarray) -> np.ndarray:
    """The SHO response at ``params`` ((spectra, 4), see :data:`SHO_PARAMETERS`) over
    ``freqs`` (bins, any unit of frequency: only ratios enter).

    Examples
    --------
    >>> f = np.array([0.9e6, 1e6, 1.1e6])
    >>> r = sho_model(np.array([[1e-4, 1e6, 100.0, 0.3]]), f)
    >>> round(float(np.abs(r[0, 1]) / 1e-4), 6), round(float(np.angle(r[0, 1])), 6)
    (100.0, 1.870796)
    """
    params = np.atleast_2d(np.asarray(params, dtype=float))
    c = params[:, 0:1] * np.exp(1j * params[:, 3:4])
    return c * _shape(params[:, 1:2], params[:, 2:3], np.asarray(freqs, dtype=float)[None, :])


def _shape(w0: np.ndarray, q: np.ndarray, w: np.ndarray) -> np.ndarray:
    """The oscillator's shape ``w0^2 / (w^2 - i w w0 / Q - w0^2)`` (broadcasting)."""
    re, im = _shape_parts(w0, q, w)
    return re + 1j * im


def _shape_parts(w0: np.ndarray, q: np.ndarray, w: np.ndarray) -> tuple[np.ndarray,
                                                                         np.ndarray]:
    """Real and imaginary parts of :func:`_shape`, in real arithmetic (``1 / (a - i b)``
    with ``a = (w/w0)^2 - 1``, ``b = (w/w0) / Q``)."""
    u = w / w0
    a = u * u - 1
    b = u / q
    d = a * a + b * b
    return a / d, b / d


def sho_r2(y: np.ndarray, fitted: np.ndarray) -> np.ndarray:
    """Coefficient of determination of complex spectra (rows), as BGlib's SHO fitter
    reports it: ``1 - sum|y - fitted|^2 / sum|y - mean(y)|^2``.

    Examples
    --------
    >>> y = np.array([[1 + 1j, 2, 3 - 1j]])
    >>> sho_r2(y, y).tolist(), sho_r2(y, np.full_like(y, y.mean())).tolist()
    ([1.0], [0.0])
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        ss_tot = np.sum(np.abs(y - y.mean(axis=1, keepdims=True)) ** 2, axis=1)
        return 1 - np.sum(np.abs(y - fitted) ** 2, axis=1) / ss_tot


def _check(response: np.ndarray, freqs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(response)
    w = np.asarray(freqs, dtype=float).ravel()
    if not np.iscomplexobj(y):
        raise ParameterError(f"response must be complex (the band-excitation response), got "
                             f"{y.dtype}")
    if y.ndim != 2 or y.shape[1] != w.size:
        raise ParameterError(f"response must be (spectra, {w.size}) to match freqs, got "
                             f"{y.shape}")
    if w.size < 4:
        raise ParameterError(f"an SHO fit needs at least 4 frequency bins, got {w.size}")
    if not (np.isfinite(w).all() and (w > 0).all() and np.unique(w).size == w.size):
        raise ParameterError("freqs must be distinct, finite and positive")
    return y, w


def _grid(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Resonance frequencies (bins and midpoints) and quality factors (log-spaced from a
    peak as wide as twice the band to one a quarter of a bin wide) of the first guess."""
    lo, hi = w.min(), w.max()
    w0 = np.linspace(lo, hi, 2 * w.size - 1)
    centre, band = 0.5 * (lo + hi), hi - lo
    bin_width = band / (w.size - 1)
    q = np.geomspace(centre / (2 * band), 4 * centre / bin_width, 16)
    return w0, q


def _usable(y: np.ndarray) -> np.ndarray:
    return np.isfinite(y).all(axis=1) & (np.abs(y).max(axis=1) > 0)


def sho_guess(response: np.ndarray, freqs: np.ndarray) -> np.ndarray:
    """First guess of the SHO parameters of every spectrum: the best-matching shape of a
    grid of resonance frequencies and quality factors, and its projected amplitude.

    Parameters
    ----------
    response : numpy.ndarray
        (spectra, bins) complex responses.
    freqs : numpy.ndarray
        (bins,) frequencies.

    Returns
    -------
    numpy.ndarray
        (spectra, 4), see :data:`SHO_PARAMETERS` (NaN rows for unusable spectra).

    Examples
    --------
    >>> f = np.linspace(0.97e6, 1.03e6, 16)
    >>> y = sho_model(np.array([[1e-4, 1.004e6, 150.0, -1.0]]), f)
    >>> g = sho_guess(y, f)[0]
    >>> abs(g[1] - 1.004e6) < 2e3, 50 < g[2] < 500
    (True, True)
    """
    y, w = _check(response, freqs)
    ok = _usable(y)
    yy = np.where(ok[:, None], y, 0).astype(complex)
    w0s, qs = _grid(w)
    ww0, qq = (a.ravel() for a in np.meshgrid(w0s, qs, indexing="ij"))
    shapes = _shape(ww0[:, None], qq[:, None], w[None, :])  # (grid, bins)
    norms = np.sqrt(np.sum(np.abs(shapes) ** 2, axis=1))
    # (bins, grid); single precision suffices to pick the best grid point (2x faster)
    unit = np.conj(shapes / norms[:, None]).T.astype(np.complex64)
    out = np.empty((y.shape[0], 4))
    for start in range(0, y.shape[0], _GUESS_BLOCK):
        block = slice(start, start + _GUESS_BLOCK)
        yb = yy[block]
        peak = np.abs(yb).max(axis=1, keepdims=True)  # scaled: no float32 underflow
        peak[peak == 0] = 1.0
        proj = (yb / peak).astype(np.complex64) @ unit  # <shape, y> / |shape|, each point
        best = np.argmax(proj.real ** 2 + proj.imag ** 2, axis=1)
        shape = shapes[best]  # the amplitude at the best point, in double precision
        c = np.sum(np.conj(shape) * yb, axis=1) / norms[best] ** 2
        out[block] = np.stack([np.abs(c), ww0[best], qq[best], np.angle(c)], axis=1)
    out[~ok] = np.nan
    return out


def fit_sho(response: np.ndarray, freqs: np.ndarray, *, max_iter: int = 100,
            tol: float = 1e-10) -> SHOFitResult:
    """Fit :func:`sho_model` to every spectrum at once.

    Parameters
    ----------
    response : numpy.ndarray
        (spectra, bins) complex band-excitation responses (complex64 or complex128);
        spectra with non-finite bins or all zero get NaN parameters.
    freqs : numpy.ndarray
        (bins,) frequency of each bin (at least 4; the resonance frequency is bounded to
        their range).
    max_iter : int
        Levenberg-Marquardt iterations at most.
    tol : float
        A spectrum stops when an accepted step lowers its cost by less than this fraction
        (or its step becomes negligible).

    Returns
    -------
    SHOFitResult
        Parameters in float32 for complex64 input, else float64.

    Examples
    --------
    >>> f = np.linspace(0.97e6, 1.03e6, 16)
    >>> true = np.array([[1e-4, 1.004e6, 150.0, -1.0], [3e-5, 0.99e6, 80.0, 2.5]])
    >>> res = fit_sho(sho_model(true, f), f)
    >>> np.allclose(res.parameters, true, rtol=1e-6), bool((res.r2 > 0.999999).all())
    (True, True)
    """
    y, w = _check(response, freqs)
    if not (isinstance(max_iter, (int, np.integer)) and max_iter >= 1):
        raise ParameterError(f"max_iter must be an integer >= 1, got {max_iter!r}")
    out_dtype = np.float32 if y.dtype == np.complex64 else np.float64
    ok = _usable(y)
    yy = np.where(ok[:, None], y, 0).astype(complex)
    guess = sho_guess(yy, w)
    guess[~ok] = np.nan
    centre, half = 0.5 * (w.max() + w.min()), 0.5 * (w.max() - w.min())
    # internal parameters: (w0 - centre) / half band in [-1, 1], log Q
    scale = np.sqrt(np.mean(np.abs(yy) ** 2, axis=1))
    scale[~ok] = 1.0
    yy = yy / scale[:, None]
    rows = np.flatnonzero(ok)
    ys = yy[rows]
    yr, yi = np.ascontiguousarray(ys.real), np.ascontiguousarray(ys.imag)

    def resid(theta: np.ndarray, idx: np.ndarray) -> np.ndarray:
        rr, ri = _projected_residual(theta, yr[idx], yi[idx], w, centre, half)[:2]
        return np.concatenate([rr, ri], axis=1)

    theta0 = np.stack([(guess[rows, 1] - centre) / half, np.log(guess[rows, 2])], axis=1)
    from threadpoolctl import threadpool_limits

    # one BLAS thread: thousands of 2 x 2 solves are slower when split over threads
    with threadpool_limits(limits=1, user_api="blas"):
        theta, _, n_iter = levenberg_marquardt(
            theta0, resid, max_iter, tol, lower=np.array([-1.0, np.log(_Q_BOUNDS[0])]),
            upper=np.array([1.0, np.log(_Q_BOUNDS[1])]))
    params = np.full((y.shape[0], 4), np.nan)
    _, _, cr, ci, fr, fi = _projected_residual(theta, yr, yi, w, centre, half)
    params[rows] = np.stack([np.hypot(cr, ci) * scale[rows], centre + half * theta[:, 0],
                             np.exp(theta[:, 1]), np.arctan2(ci, cr)], axis=1)
    r2 = np.full(y.shape[0], np.nan)
    r2[rows] = sho_r2(ys, fr + 1j * fi)
    guess_r2 = np.full(y.shape[0], np.nan)
    guess_r2[rows] = sho_r2(yy[rows], sho_model(guess[rows], w) / scale[rows, None])
    return SHOFitResult(parameters=params.astype(out_dtype), guess=guess.astype(out_dtype),
                        r2=r2.astype(out_dtype), guess_r2=guess_r2.astype(out_dtype),
                        n_iter=n_iter)


def _projected_residual(theta: np.ndarray, yr: np.ndarray, yi: np.ndarray, w: np.ndarray,
                        centre: float, half: float) -> tuple[np.ndarray, ...]:
    """Real and imaginary parts of the residual ``y - c g`` of the best complex amplitude
    ``c = <g, y> / <g, g>`` for the oscillator shape ``g`` at internal parameters
    ``theta``; then those of ``c`` and of ``c g`` (real arithmetic throughout)."""
    gr, gi = _shape_parts(centre + half * theta[:, 0:1], np.exp(theta[:, 1:2]), w[None, :])
    norm = np.sum(gr * gr + gi * gi, axis=1)
    cr = np.sum(gr * yr + gi * yi, axis=1) / norm
    ci = np.sum(gr * yi - gi * yr, axis=1) / norm
    fr = cr[:, None] * gr - ci[:, None] * gi
    fi = cr[:, None] * gi + ci[:, None] * gr
    return yr - fr, yi - fi, cr, ci, fr, fi
