"""A rotation of the active latent channels to statistically independent axes.

The beta-VAE's loss does not prefer one rotation of its active latent subspace over
another: on data whose mechanisms vary independently, the trained channels come out as
mixtures of them (issue 22: on the toy, the best single channel explains a colour with
R^2 0.4, and seeds disagree on the rotation). Independent component analysis
(FastICA) of the latent means of the training positions picks the axes along which the
channels are most independent, which for independent, non-Gaussian factors are the
factors themselves. The map is affine and invertible, so the embedding, the decoder and
the latent traversals stay consistent: :meth:`LatentRotation.forward` turns latent means
into rotated coordinates and :meth:`LatentRotation.inverse` turns them back before
decoding; reconstructions are unchanged.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

__all__ = ["ROTATIONS", "LatentRotation", "fit_rotation"]

logger = logging.getLogger(__name__)

#: Accepted values of the ``rotation`` parameter.
ROTATIONS = ("none", "ica")


@dataclass(frozen=True)
class LatentRotation:
    """The affine map of the active channels to independent axes.

    ``rotated = (z[:, channels] - mean) @ unmixing.T`` and back
    ``z[:, channels] = rotated @ mixing.T + mean``; the other channels are untouched
    (inactive channels are 0 throughout).

    Attributes
    ----------
    channels : numpy.ndarray
        Latent channels the map acts on (the active ones), int, (k,).
    mean : numpy.ndarray
        Mean latent vector of those channels over the positions it was fitted on, (k,).
    unmixing, mixing : numpy.ndarray
        (k, k) matrices, inverses of each other; each rotated coordinate has unit variance
        on the fitted positions.
    """

    channels: np.ndarray
    mean: np.ndarray
    unmixing: np.ndarray
    mixing: np.ndarray

    def forward(self, Z: np.ndarray) -> np.ndarray:
        """Latent means -> rotated coordinates (a copy; other channels unchanged)."""
        out = np.array(Z, dtype=float, copy=True)
        out[:, self.channels] = (out[:, self.channels] - self.mean) @ self.unmixing.T
        return out

    def inverse(self, Z: np.ndarray) -> np.ndarray:
        """Rotated coordinates -> latent means (a copy; other channels unchanged)."""
        out = np.array(Z, dtype=float, copy=True)
        out[:, self.channels] = out[:, self.channels] @ self.mixing.T + self.mean
        return out

    def to_dict(self) -> dict:
        """JSON-serialisable form (lists), read back by :meth:`from_dict`."""
        return {"channels": self.channels.tolist(), "mean": self.mean.tolist(),
                "unmixing": self.unmixing.tolist(), "mixing": self.mixing.tolist()}

    @classmethod
    def from_dict(cls, d: Mapping | None) -> LatentRotation | None:
        """The rotation stored by :meth:`to_dict` (None stays None)."""
        if not d:
            return None
        return cls(np.asarray(d["channels"], int), np.asarray(d["mean"], float),
                   np.asarray(d["unmixing"], float), np.asarray(d["mixing"], float))


def fit_rotation(mu: np.ndarray, channels: np.ndarray, random_state: int = 0
                 ) -> LatentRotation | None:
    """Independent axes of the latent means ``mu[:, channels]`` (FastICA, unit variance).

    The components are ordered by how far each moves the latent means (the norm of its
    mixing column, largest first) and signed so that the largest entry of each mixing
    column is positive, so the result depends only on the data and ``random_state``.

    Parameters
    ----------
    mu : numpy.ndarray
        Latent means, (n, latent_dim), of the positions to fit on.
    channels : numpy.ndarray
        The active channels (the map acts on these only).
    random_state : int
        Seed of FastICA's initial unmixing matrix.

    Returns
    -------
    LatentRotation or None
        None when there are no channels or fewer than ``3 * len(channels)`` positions.

    Examples
    --------
    Two independent uniform sources mixed by a rotation come back as the sources:

    >>> rng = np.random.default_rng(0)
    >>> s = rng.uniform(-1, 1, (2000, 2))
    >>> mix = np.array([[np.cos(0.6), -np.sin(0.6)], [np.sin(0.6), np.cos(0.6)]])
    >>> z = np.c_[s @ mix.T, np.zeros(2000)]  # a third, inactive channel
    >>> rot = fit_rotation(z, np.array([0, 1]))
    >>> r = rot.forward(z)
    >>> corr = np.abs(np.corrcoef(r[:, :2].T, s.T)[:2, 2:])
    >>> bool(np.all(corr.max(axis=1) > 0.99)), np.allclose(rot.inverse(r), z)
    (True, True)
    """
    from sklearn.decomposition import FastICA
    from sklearn.exceptions import ConvergenceWarning

    channels = np.asarray(channels, int)
    k = channels.size
    z = np.asarray(mu, float)[:, channels]
    if k == 0 or len(z) < 3 * k:
        return None
    ica = FastICA(n_components=k, whiten="unit-variance", random_state=random_state,
                  max_iter=2000, tol=1e-5)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        ica.fit(z)
    if any(issubclass(w.category, ConvergenceWarning) for w in caught):
        logger.warning("the independent-axes rotation (FastICA) did not converge on %d "
                       "channels; it is kept, but its axes may be less independent", k)
    unmixing = np.asarray(ica.components_, float)
    mixing = np.linalg.inv(unmixing)
    order = np.argsort(-np.linalg.norm(mixing, axis=0), kind="stable")
    mixing, unmixing = mixing[:, order], unmixing[order]
    signs = np.sign(mixing[np.argmax(np.abs(mixing), axis=0), np.arange(k)])
    mixing, unmixing = mixing * signs, unmixing * signs[:, None]
    return LatentRotation(channels, np.asarray(ica.mean_, float), unmixing, mixing)
