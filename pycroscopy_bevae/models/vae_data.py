"""Training data of the beta-VAE: arrays or sources read on demand, and the ``tf.data``
pipeline of the optimiser updates (the same batches in the same order either way).

TensorFlow is imported only when a pipeline is built.
"""

from __future__ import annotations

import logging

import numpy as np

from ..exceptions import ParameterError
from .runtime import tensorflow

logger = logging.getLogger(__name__)

__all__ = ["STREAM_BLOCK", "InMemory", "SpectraSource", "Subset", "as_3d", "batches",
           "check_source", "held_out_positions", "mean_variance", "validation_pair"]


class SpectraSource:
    """Training spectra read on demand, for data sets that do not fit in memory.

    Given one instead of an array, :meth:`~pycroscopy_bevae.models.BetaVAE.fit` streams
    every epoch's mini-batches from it through ``tf.data`` (same batches, in the same
    order, as the in-memory path: the permutation drawn from ``(random_state, epoch)``, so resuming
    stays exact) and computes the snapshots' latent maps block by block. Only the
    latent maps (positions x latent) are kept in memory.

    Subclasses set ``shape`` = ``(n, steps, channels)`` and implement :meth:`take`.

    Examples
    --------
    >>> class InMemory(SpectraSource):
    ...     def __init__(self, x):
    ...         self.x, self.shape = x, x.shape
    ...     def take(self, indices):
    ...         return self.x[indices]
    >>> src = InMemory(np.zeros((10, 8, 1), "float32"))
    >>> len(src), src.take(np.array([3, 1])).shape
    (10, (2, 8, 1))
    """

    shape: tuple[int, int, int]

    def take(self, indices: np.ndarray) -> np.ndarray:
        """Spectra at ``indices`` (any order, no repeats): (len(indices), steps, channels)."""
        raise NotImplementedError

    def __len__(self) -> int:
        return int(self.shape[0])


#: Positions per block when a snapshot is computed from a :class:`SpectraSource`
#: (a multiple of the inference batch, so each spectrum meets the same batch as in memory).
STREAM_BLOCK = 16 * 1024


class InMemory(SpectraSource):
    """An array seen as a :class:`SpectraSource`."""

    def __init__(self, x: np.ndarray):
        self.x, self.shape = x, x.shape

    def take(self, indices: np.ndarray) -> np.ndarray:
        return self.x[indices]


class Subset(SpectraSource):
    """Rows ``index`` of a source, renumbered 0 .. len(index) - 1 (the training positions
    of a streamed source whose held-out positions are left out)."""

    def __init__(self, src: SpectraSource, index: np.ndarray):
        self.src, self.index = src, np.asarray(index, dtype=np.int64)
        self.shape = (len(self.index), *tuple(src.shape)[1:])

    def take(self, indices: np.ndarray) -> np.ndarray:
        return self.src.take(self.index[np.asarray(indices, dtype=np.int64)])


def check_source(src: SpectraSource) -> SpectraSource:
    """``src`` if its shape is (n >= 1, steps >= 2, channels >= 1), else a ParameterError."""
    shape = tuple(int(s) for s in src.shape)
    if len(shape) != 3 or shape[0] < 1 or shape[1] < 2 or shape[2] < 1:
        raise ParameterError(f"a SpectraSource must have shape (n, steps, channels) with n >= 1 "
                             f"and steps >= 2, got {shape}")
    return src


def as_3d(X: np.ndarray, name: str) -> np.ndarray:
    """Spectra ``X`` as float32 (n, steps, channels), checked (``name`` in the messages).

    Examples
    --------
    >>> as_3d(np.zeros((4, 6)), "X").shape
    (4, 6, 1)
    """
    X = np.asarray(X, dtype="float32")
    if X.ndim == 2:
        X = X[..., None]
    if X.ndim != 3 or X.shape[0] == 0 or X.shape[1] < 2:
        raise ParameterError(f"{name} must be (n, steps) or (n, steps, channels) with n >= 1 "
                             f"and steps >= 2, got shape {X.shape}")
    if not np.isfinite(X).all():
        raise ParameterError(f"{name} contains {int((~np.isfinite(X)).sum())} non-finite values")
    return X


def validation_pair(X_val: np.ndarray, X) -> tuple[np.ndarray, np.ndarray]:
    """Validation spectra checked against the training spectra ``X``, as Keras takes them
    (inputs, targets)."""
    X_val = as_3d(X_val, "X_val")
    if X_val.shape[1:] != tuple(X.shape[1:]):
        raise ParameterError(f"X_val has steps x channels {X_val.shape[1:]}, X has "
                             f"{X.shape[1:]}")
    return X_val, X_val


def validation_split(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded split of ``n`` positions into training and held-out indices (sorted).

    ``round(fraction * n)`` positions are held out, none when that is 0 or would leave
    fewer than 2 for training.

    Examples
    --------
    >>> train, held_out = validation_split(10, 0.2, seed=0)
    >>> len(train), len(held_out), sorted([*train, *held_out]) == list(range(10))
    (8, 2, True)
    """
    n_val = int(round(float(fraction) * n))
    if n_val == 0 or n - n_val < 2:
        return np.arange(n), np.arange(0)
    order = np.random.default_rng([int(seed), 22]).permutation(n)
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def held_out_positions(X, X_val: np.ndarray | None, fraction: float, seed: int
                       ) -> tuple[tuple | None, np.ndarray | None, np.ndarray]:
    """What training validates on: ``(val, train_index, held_out)``.

    ``X_val`` given: it is the validation pair and every position of ``X`` trains.
    Otherwise ``fraction`` of the positions of ``X`` (a split seeded by ``seed``) are
    held out: ``val`` is their (input, target) pair, read into memory also from a
    streamed :class:`SpectraSource`, ``train_index`` the rest (None when nothing is
    held out).

    Examples
    --------
    >>> val, train, held = held_out_positions(np.zeros((10, 4, 1)), None, 0.2, 0)
    >>> len(train), len(held), val[0].shape
    (8, 2, (2, 4, 1))
    """
    none = np.arange(0)
    if X_val is not None:
        return validation_pair(X_val, X), None, none
    train_index, held_out = validation_split(len(X), fraction, seed)
    if not held_out.size:
        return None, None, none
    rows = (np.asarray(X.take(held_out), dtype="float32") if isinstance(X, SpectraSource)
            else X[held_out])
    return (rows, rows), train_index, held_out


def mean_variance(src: SpectraSource) -> float:
    """Variance across spectra, averaged over steps and channels (float64 sums, by block)."""
    n = len(src)
    total = total_sq = 0.0
    for start in range(0, n, STREAM_BLOCK):
        xb = np.asarray(src.take(np.arange(start, min(start + STREAM_BLOCK, n))), np.float64)
        total = total + xb.sum(axis=0)
        total_sq = total_sq + np.square(xb).sum(axis=0)
    mean = total / n
    return float(np.mean(np.maximum(total_sq / n - np.square(mean), 0.0)))


def batches(src: SpectraSource, seed: int, first: int, count: int, batch_size: int):
    """``tf.data`` pipeline of the optimiser updates ``first .. first + count - 1``.

    The updates run through a stream of shuffled passes over the data: update ``u``
    takes ``src[order[j * batch_size:(j + 1) * batch_size]]`` with
    ``e, j = divmod(u, batches per pass)`` and ``order`` the permutation drawn from
    ``(seed, e)``. With one schedule epoch per pass, epoch ``e`` is exactly pass ``e``.
    Read one batch ahead of the training step.

    Each iteration of the dataset starts again from ``first`` (Keras iterates a dataset
    once more under a ``tf.distribute`` strategy, to peek at a batch).
    """
    tf = tensorflow()

    n = len(src)
    per_pass = -(-n // batch_size)

    def gen():
        current, order = -1, None
        for u in range(first, first + count):
            e, j = divmod(u, per_pass)
            if e != current:
                current, order = e, np.random.default_rng([seed, e]).permutation(n)
            yield np.ascontiguousarray(src.take(order[j * batch_size:(j + 1) * batch_size]),
                                       dtype="float32")

    spec = tf.TensorSpec((None, *(int(s) for s in src.shape[1:])), tf.float32)
    # a known length: Keras then runs exactly `count` steps (with an unknown one it tries
    # one more, which advances the sampling seed and breaks equality with the array path)
    return tf.data.Dataset.from_generator(gen, output_signature=spec).apply(
        tf.data.experimental.assert_cardinality(count)).prefetch(2)
