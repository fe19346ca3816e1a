"""The toy benchmark of the paper: spectra generated from RGB colours (known ground truth).

Each colour (R, G, B) in [0, 1]^3 gives a 25-step spectrum on ``t = linspace(-1, 1, 25)``::

    f(t) = tanh(20 (t - 2 (R - 0.5))) + SELU(t - 2 (G - 0.5)) + sigmoid(-20 (t - (B - 0.5)))

so a model that has learned the data should need exactly three latent channels,
each tracking one colour.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from ..exceptions import MissingFileError, ParameterError

__all__ = ["ToySet", "toy_spectra", "toy_training_set", "toy_gamut_set", "toy_image_set",
           "default_image"]

SELU_SCALE = 1.0507009873554805
SELU_ALPHA = 1.6732632423543772


@dataclass
class ToySet:
    """Toy spectra with their ground truth.

    Attributes
    ----------
    spectra : numpy.ndarray
        (n, n_steps) spectra.
    rgb : numpy.ndarray
        (n, 3) colours that generated them (the ground truth).
    t : numpy.ndarray
        (n_steps,) abscissa.
    image_shape : tuple of int or None
        (rows, cols) when the set comes from an image (row-major), else None.
    """

    spectra: np.ndarray
    rgb: np.ndarray
    t: np.ndarray
    image_shape: tuple[int, int] | None = None


def _selu(x: np.ndarray) -> np.ndarray:
    return SELU_SCALE * np.where(x > 0, x, SELU_ALPHA * np.expm1(np.minimum(x, 0)))


def toy_spectra(rgb: np.ndarray, n_steps: int = 25) -> np.ndarray:
    """Spectra of colours (vectorised).

    Parameters
    ----------
    rgb : array_like
        (..., 3) colours in [0, 1].
    n_steps : int
        Number of points on ``t = linspace(-1, 1, n_steps)``.

    Returns
    -------
    numpy.ndarray
        (..., n_steps) spectra.

    Examples
    --------
    >>> s = toy_spectra([[0.5, 0.5, 0.5]], n_steps=3)
    >>> np.round(s, 4)
    array([[-1.1113,  0.5   ,  2.0507]])
    """
    rgb = np.asarray(rgb, dtype=float)
    if rgb.shape[-1] != 3:
        raise ParameterError(f"rgb must have 3 values in its last axis, got shape {rgb.shape}")
    if n_steps < 2:
        raise ParameterError(f"n_steps must be >= 2, got {n_steps}")
    t = np.linspace(-1, 1, n_steps)
    r, g, b = (rgb[..., i, None] for i in range(3))
    return (np.tanh(20 * (t - 2 * (r - 0.5))) + _selu(t - 2 * (g - 0.5))
            + 1.0 / (1.0 + np.exp(20 * (t - (b - 0.5)))))


def toy_training_set(n: int = 10_000, seed: int = 0, n_steps: int = 25) -> ToySet:
    """``n`` colours drawn uniformly from [0, 1]^3 (seeded) and their spectra.

    Examples
    --------
    >>> s = toy_training_set(100, seed=1)
    >>> s.spectra.shape, s.rgb.shape
    ((100, 25), (100, 3))
    """
    if n < 1:
        raise ParameterError(f"n must be >= 1, got {n}")
    rgb = np.random.default_rng(seed).random((n, 3))
    return ToySet(toy_spectra(rgb, n_steps), rgb, np.linspace(-1, 1, n_steps))


def toy_gamut_set(n_per_channel: int = 16, n_steps: int = 25) -> ToySet:
    """Colours on a regular grid of ``n_per_channel**3`` points spanning the whole RGB gamut.

    Examples
    --------
    >>> toy_gamut_set(4).spectra.shape
    (64, 25)
    """
    if n_per_channel < 2:
        raise ParameterError(f"n_per_channel must be >= 2, got {n_per_channel}")
    axis = np.linspace(0, 1, n_per_channel)
    rgb = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), axis=-1).reshape(-1, 3)
    return ToySet(toy_spectra(rgb, n_steps), rgb, np.linspace(-1, 1, n_steps))


def default_image() -> np.ndarray:
    """The default validation image: matplotlib's bundled ``grace_hopper.jpg`` (RGB, 0-255).

    Falls back to a procedurally generated colour pattern if the sample file is absent.
    """
    try:
        import matplotlib.cbook as cbook
        import matplotlib.image as mpimg

        with cbook.get_sample_data("grace_hopper.jpg") as fh:
            return np.asarray(mpimg.imread(fh, format="jpg"))
    except (OSError, ValueError):  # pragma: no cover - only without matplotlib's sample data
        y, x = np.mgrid[0:256, 0:256] / 255.0
        rgb = np.stack([x, y, 0.5 + 0.5 * np.sin(6 * np.pi * x * y)], axis=-1)
        return (255 * rgb).astype(np.uint8)


def toy_image_set(
    image: np.ndarray | str | os.PathLike | None = None,
    stride: int = 8,
    crop: tuple[slice, slice] | None = None,
    n_steps: int = 25,
) -> ToySet:
    """One spectrum per pixel of an RGB image, keeping the image shape.

    Parameters
    ----------
    image : array_like, path or None
        RGB(A) image as an array (uint8 0-255 or float 0-1) or a file path;
        default :func:`default_image`. The paper's image is
        ``../shared/data/toy/nala.jpg``.
    stride : int
        Take every ``stride``-th pixel in both directions (the reference notebooks
        subsample e.g. every 20th pixel).
    crop : (slice, slice), optional
        Region of the image to use, applied before the stride.
    n_steps : int
        Spectrum length.

    Returns
    -------
    ToySet
        With ``image_shape`` set, spectra in row-major pixel order.

    Examples
    --------
    >>> img = np.zeros((10, 12, 3), dtype=np.uint8)
    >>> s = toy_image_set(img, stride=2)
    >>> s.image_shape, s.spectra.shape
    ((5, 6), (30, 25))
    """
    if image is None:
        img = default_image()
    elif isinstance(image, (str, os.PathLike)):
        import matplotlib.image as mpimg

        if not os.path.exists(image):
            raise MissingFileError(f"image file '{os.fspath(image)}' does not exist")
        img = np.asarray(mpimg.imread(os.fspath(image)))
    else:
        img = np.asarray(image)
    if img.ndim != 3 or img.shape[2] not in (3, 4):
        raise ParameterError(f"expected an RGB(A) image (rows, cols, 3|4), got shape {img.shape}")
    if stride < 1:
        raise ParameterError(f"stride must be >= 1, got {stride}")
    rgb = img[..., :3]
    rgb = rgb / 255.0 if np.issubdtype(rgb.dtype, np.integer) or rgb.max() > 1.0 else \
        rgb.astype(float)
    if crop is not None:
        rgb = rgb[crop[0], crop[1]]
    rgb = rgb[::stride, ::stride]
    shape = (int(rgb.shape[0]), int(rgb.shape[1]))
    flat = rgb.reshape(-1, 3)
    return ToySet(toy_spectra(flat, n_steps), flat, np.linspace(-1, 1, n_steps), shape)
