"""Do the channels come back with another seed? Channels of runs matched one to one.

On real data there is no ground truth to judge a channel by; that it comes back when
the model is trained again with another seed is the least a scientist needs before
reading physics into it. :func:`seed_agreement` matches the channels of every pair of
runs one to one (the Hungarian assignment on the absolute correlation of the channels
over positions, :func:`scipy.optimize.linear_sum_assignment`) and reports the mean
matched absolute correlation (MCC, as in the disentanglement literature). A channel
that comes back with its sign flipped, or in another order, or rescaled, still counts
as the same channel.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import combinations

import numpy as np

from ..exceptions import ParameterError

__all__ = ["SeedAgreement", "PairMatch", "seed_agreement", "match_channels"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PairMatch:
    """The one-to-one matching of the channels of two runs.

    Attributes
    ----------
    runs : tuple of int
        Indices ``(a, b)`` of the two runs.
    channels_a, channels_b : numpy.ndarray
        Matched channel indices: ``channels_a[i]`` of run ``a`` is
        ``channels_b[i]`` of run ``b``.
    correlation : numpy.ndarray
        Signed correlation of each matched pair (a negative value: the channel came
        back with its sign flipped).
    unmatched_a, unmatched_b : numpy.ndarray
        Channels left without a partner (only when the runs have unequal channel
        counts: the larger run's extra channels).
    """

    runs: tuple[int, int]
    channels_a: np.ndarray
    channels_b: np.ndarray
    correlation: np.ndarray
    unmatched_a: np.ndarray
    unmatched_b: np.ndarray

    @property
    def mcc(self) -> float:
        """Mean absolute correlation over the matched pairs."""
        return float(np.mean(np.abs(self.correlation)))

    @property
    def mcc_all(self) -> float:
        """Mean absolute correlation over the larger run's channels, an unmatched
        channel counting as 0 (equals :attr:`mcc` for equal channel counts)."""
        n = len(self.correlation) + max(len(self.unmatched_a), len(self.unmatched_b))
        return float(np.sum(np.abs(self.correlation)) / n)


@dataclass(frozen=True)
class SeedAgreement:
    """Agreement of the channels of several runs (see :func:`seed_agreement`).

    Attributes
    ----------
    mcc : float
        Mean over all pairs of runs of the pair's mean matched absolute correlation
        (over the matched channels: ``min`` of the two counts).
    mcc_all : float
        The same with each unmatched channel counting as 0.
    pairwise : numpy.ndarray
        (runs, runs) matrix of the pairs' MCC (1 on the diagonal).
    matches : list of PairMatch
        The matching of every pair ``a < b``.
    n_channels : tuple of int
        Channels of each run.
    equal_counts : bool
        Whether every run has the same number of channels.
    """

    mcc: float
    mcc_all: float
    pairwise: np.ndarray
    matches: list[PairMatch] = field(repr=False)
    n_channels: tuple[int, ...]
    equal_counts: bool

    def summary(self) -> str:
        """One line: MCC, its range over pairs, and the channel counts."""
        off = self.pairwise[~np.eye(len(self.pairwise), dtype=bool)]
        text = (f"seed agreement: MCC {self.mcc:.3f} (pairs {off.min():.3f}-{off.max():.3f}) "
                f"over {len(self.n_channels)} runs with {list(self.n_channels)} channels")
        if not self.equal_counts:
            text += (f"; unequal channel counts: MCC over the matched channels, "
                     f"{self.mcc_all:.3f} counting unmatched channels as 0")
        return text


def _as_embedding(z, i: int) -> np.ndarray:
    z = np.asarray(z, dtype=float)
    if z.ndim != 2 or z.shape[1] < 1:
        raise ParameterError(f"embeddings[{i}] must be (positions, channels >= 1), got shape "
                             f"{z.shape}")
    if not np.all(np.isfinite(z)):
        raise ParameterError(f"embeddings[{i}] contains NaN or infinite values; expected "
                             "finite latent means")
    return z


def _abs_correlation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Signed correlation matrix (channels of a x channels of b); 0 for a constant channel."""
    da, db = a - a.mean(axis=0), b - b.mean(axis=0)
    na, nb = np.linalg.norm(da, axis=0), np.linalg.norm(db, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        c = (da.T @ db) / np.outer(na, nb)
    return np.where(np.isfinite(c), np.clip(c, -1.0, 1.0), 0.0)


def match_channels(a: np.ndarray, b: np.ndarray, runs: tuple[int, int] = (0, 1)) -> PairMatch:
    """Match the channels of two embeddings one to one by absolute correlation.

    Parameters
    ----------
    a, b : numpy.ndarray
        (positions, channels) embeddings of the same positions; the channel counts may
        differ (the extra channels of the larger one stay unmatched).
    runs : tuple of int
        Labels of the two runs, kept in the result.

    Returns
    -------
    PairMatch

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> a = rng.normal(size=(200, 3))
    >>> m = match_channels(a, -2 * a[:, [2, 0, 1]])
    >>> m.channels_a.tolist(), m.channels_b.tolist(), round(m.mcc, 6)
    ([0, 1, 2], [1, 2, 0], 1.0)
    """
    from scipy.optimize import linear_sum_assignment

    a, b = _as_embedding(a, runs[0]), _as_embedding(b, runs[1])
    if len(a) != len(b):
        raise ParameterError(f"embeddings[{runs[0]}] has {len(a)} positions, "
                             f"embeddings[{runs[1]}] {len(b)}; expected the same positions")
    corr = _abs_correlation(a, b)
    rows, cols = linear_sum_assignment(-np.abs(corr))
    return PairMatch(runs=tuple(runs), channels_a=rows, channels_b=cols,
                     correlation=corr[rows, cols],
                     unmatched_a=np.setdiff1d(np.arange(a.shape[1]), rows),
                     unmatched_b=np.setdiff1d(np.arange(b.shape[1]), cols))


def seed_agreement(embeddings: Sequence[np.ndarray]) -> SeedAgreement:
    """How well the channels of several runs (seeds) agree, matched one to one.

    For every pair of runs the channels are matched one to one by the Hungarian
    assignment on the absolute correlation over positions
    (:func:`scipy.optimize.linear_sum_assignment`); the pair's MCC is the mean matched
    absolute correlation, and the result's MCC the mean over all pairs. Channel order,
    sign and scale do not matter. When the runs have different channel counts only
    ``min(k_a, k_b)`` channels of a pair are matched; this is said in the log and in
    :meth:`SeedAgreement.summary`, and :attr:`SeedAgreement.mcc_all` counts the
    unmatched channels as 0.

    Parameters
    ----------
    embeddings : sequence of numpy.ndarray
        At least two (positions, channels) arrays of the same positions (e.g. the
        active latent means of beta-VAEs trained with different seeds).

    Returns
    -------
    SeedAgreement

    Raises
    ------
    ParameterError
        Fewer than two embeddings, an embedding that is not 2-D, has no channel or
        non-finite values, or unequal numbers of positions.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> z = rng.normal(size=(300, 3))
    >>> runs = [z, -z[:, [1, 2, 0]] + 0.01 * rng.normal(size=(300, 3))]
    >>> agreement = seed_agreement(runs)
    >>> round(agreement.mcc, 3), agreement.matches[0].channels_b.tolist()
    (1.0, [2, 0, 1])
    """
    embeddings = list(embeddings)
    if len(embeddings) < 2:
        raise ParameterError(f"seed_agreement needs at least 2 embeddings, got "
                             f"{len(embeddings)}")
    zs = [_as_embedding(z, i) for i, z in enumerate(embeddings)]
    n = len(zs)
    pairwise = np.eye(n)
    matches = []
    for i, j in combinations(range(n), 2):
        m = match_channels(zs[i], zs[j], runs=(i, j))
        pairwise[i, j] = pairwise[j, i] = m.mcc
        matches.append(m)
    counts = tuple(z.shape[1] for z in zs)
    equal = len(set(counts)) == 1
    if not equal:
        logger.warning("seed_agreement: the runs have unequal channel counts %s; each pair "
                       "is matched on min(k_a, k_b) channels", list(counts))
    return SeedAgreement(mcc=float(np.mean([m.mcc for m in matches])),
                         mcc_all=float(np.mean([m.mcc_all for m in matches])),
                         pairwise=pairwise, matches=matches, n_channels=counts,
                         equal_counts=equal)
