"""Snapshots of a beta-VAE training and the rules that time and choose them.

A :class:`Snapshot` is the state of the model at one point of the schedule.
:func:`snapshot_due` is the one rule of when one is taken (the trainer, the storage
estimate); :func:`choose_snapshot` is the one rule of which one is used (the relax
phase's starting point and :meth:`~pycroscopy_bevae.models.BetaVAE.select`). Plain numpy.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..exceptions import ParameterError
from ..params import Either, Integer, Literal, check
from .rotation import fit_rotation
from .schedule import RelaxSchedule, StepSchedule, active_channels, channel_kl
from .vae_data import validation_split

__all__ = ["CHANNEL_REQUEST", "Snapshot", "SnapshotSelection", "choose_snapshot",
           "count_by_held_out", "recon_mse", "search_count", "snapshot_due",
           "within_tolerance"]

logger = logging.getLogger(__name__)

#: What a request for a number of active channels (``n_active``) accepts.
CHANNEL_REQUEST = Either((Literal(None), Integer(low=1)))


@dataclass
class Snapshot:
    """State of the model at one point of the schedule."""

    epoch: int
    beta: float
    lam: float
    losses: dict
    mu: np.ndarray
    logvar: np.ndarray
    weights: dict = field(repr=False)

    def channel_kl(self) -> np.ndarray:
        """KL of each latent channel (nats)."""
        return channel_kl(self.mu, self.logvar)

    def active(self, kl_threshold: float) -> np.ndarray:
        """Indices of the active channels (:func:`active_channels`)."""
        return active_channels(self.mu, self.logvar, kl_threshold)

    def n_active(self, kl_threshold: float) -> int:
        """Number of active channels (KL >= ``kl_threshold``)."""
        return int(self.active(kl_threshold).size)


def snapshot_due(epoch: int, s, relax: RelaxSchedule | None = None) -> bool:
    """Whether a snapshot is taken at the end of ``epoch`` (0-based) of a training with
    settings ``s``: the end of priming and of every schedule step (the relax phase's steps
    once it has begun), every ``snapshot_every`` epochs, and the last epoch.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> s = SimpleNamespace(epochs=6, prime_epochs=2, step_epochs=2, snapshot_every=0)
    >>> [e for e in range(6) if snapshot_due(e, s)]
    [1, 3, 5]
    """
    last = relax.end if relax is not None else s.epochs
    if epoch + 1 in (last, s.prime_epochs):
        return True
    if s.snapshot_every and (epoch + 1) % s.snapshot_every == 0:
        return True
    if relax is not None and epoch >= relax.start:
        return relax.step_ends(epoch)
    # the stairs of every annealing schedule (steps and capacity alike)
    return epoch + 1 == s.epochs or StepSchedule(s.prime_epochs, 0.0, 0.0, s.step_epochs,
                                                 0.0).step_ends(epoch)


def recon_mse(snap: Snapshot) -> float:
    """Deterministic reconstruction MSE of a snapshot on the held-out positions when
    there were any (``validation_fraction``), else on the training positions (the
    training MSE for old snapshots)."""
    return snap.losses.get("val_recon_mse", snap.losses.get("recon_mse", snap.losses["mse"]))


def within_tolerance(snaps: Sequence[Snapshot], s, data_variance: float | None) -> list[int]:
    """Indices of the snapshots whose reconstruction MSE is within the tolerance of the
    primed model's (``r2_tolerance`` of the data variance, else ``mse_tolerance`` times)."""
    primed = [x for x in snaps if x.beta == 0.0]
    ref = recon_mse(primed[-1] if primed else snaps[0])
    if s.r2_tolerance > 0 and data_variance is not None:
        limit = ref + s.r2_tolerance * data_variance
    else:
        limit = s.mse_tolerance * ref
    return [i for i, x in enumerate(snaps) if recon_mse(x) <= limit]


def choose_snapshot(snaps: Sequence[Snapshot], s, data_variance: float | None,
                    n_active: int | None = None, *, closest: bool = False,
                    at_least: bool = False, relaxed: bool = False, fallback: int = 0) -> int:
    """Index of the snapshot the model uses: the package's one selection rule.

    Parameters
    ----------
    snaps : sequence of Snapshot
    s : Settings
        ``kl_threshold``, ``mse_tolerance``, ``r2_tolerance`` are read.
    data_variance : float or None
        Variance of the training data (for ``r2_tolerance``).
    n_active : int, optional
        The latest snapshot with exactly this many active channels (``closest``: with
        the count nearest to it, a warning in the log when none has exactly as many;
        ``at_least``: the latest with at least as many, else the last). When the
        snapshots carry a held-out error (``val_recon_mse``), the one with the lowest
        among those with that count instead of the latest.
    relaxed : bool
        Without ``n_active``: a relax phase ran, its end (the last snapshot) is chosen.
    fallback : int
        Without ``n_active`` and ``relaxed``: the latest snapshot within the
        reconstruction tolerance (:func:`within_tolerance`), this one when none is.

    Raises
    ------
    ParameterError
        No snapshots, or none with exactly ``n_active`` channels (neither ``closest``
        nor ``at_least``).

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> s = SimpleNamespace(kl_threshold=0.1, mse_tolerance=2.0, r2_tolerance=0.0)
    >>> snap = lambda b, m, k: Snapshot(0, b, 0.0, {"mse": m}, np.full((2, 3), k),
    ...                                 np.zeros((2, 3)), {})
    >>> snaps = [snap(0.0, 1.0, 2.0), snap(0.1, 1.5, 1.0), snap(0.2, 3.0, 0.0)]
    >>> choose_snapshot(snaps, s, None), choose_snapshot(snaps, s, None, 0)
    (1, 2)
    """
    if not snaps:
        raise ParameterError("no snapshots recorded; train for at least one epoch")
    counts = [x.n_active(s.kl_threshold) for x in snaps]
    if n_active is not None and at_least:
        return max([i for i, c in enumerate(counts) if c >= n_active] or [len(snaps) - 1])
    if n_active is not None:
        gap = [abs(c - n_active) for c in counts]
        idx = [i for i, g in enumerate(gap) if g == (min(gap) if closest else 0)]
        if not idx:
            raise ParameterError(f"no snapshot has exactly {n_active} active channels; "
                                 f"snapshots have {sorted(set(counts))}")
        if all("val_recon_mse" in snaps[i].losses for i in idx):
            # held-out positions: the lowest held-out error among them (the latest on ties)
            best = min(snaps[i].losses["val_recon_mse"] for i in idx)
            idx = [i for i in idx if snaps[i].losses["val_recon_mse"] == best]
        if counts[idx[-1]] != n_active:
            logger.warning("no snapshot has exactly %d active channels; using %d "
                           "(snapshot %d)", n_active, counts[idx[-1]], idx[-1])
        return idx[-1]
    if relaxed:
        return len(snaps) - 1
    ok = within_tolerance(snaps, s, data_variance)
    return ok[-1] if ok else fallback


def count_by_held_out(counts: Sequence[int], held_out_mse: Sequence[float],
                      data_variance: float, tolerance: float = 0.01) -> int:
    """The automatic channel count from held-out reconstruction errors: the smallest
    candidate count ``k`` whose held-out MSE is at most the best held-out MSE plus
    ``tolerance`` x the variance of the held-out data.

    ``held_out_mse[i]`` is the held-out MSE of the model relaxed at ``counts[i]`` channels
    (from the latest annealing snapshot with at least that many active channels, the
    strongest by KL kept). On the toy (3 true factors, 2 seeds) ``tolerance`` 0.01-0.02
    gives 3 (docs/method.rst); KL gaps and relative tolerances did not.

    Raises
    ------
    ParameterError
        No candidates, lengths differ, a non-finite MSE, or a variance or tolerance < 0.

    Examples
    --------
    >>> count_by_held_out([1, 2, 3, 4, 5], [0.50, 0.20, 0.052, 0.050, 0.049], 1.0, 0.01)
    3
    """
    counts = [int(k) for k in counts]
    mse = np.asarray(held_out_mse, float)
    if not counts or mse.shape != (len(counts),) or not np.all(np.isfinite(mse)):
        raise ParameterError(f"held_out_mse must hold one finite number per candidate count; "
                             f"got counts {counts} and held_out_mse {mse.tolist()}")
    if not (data_variance >= 0 and tolerance >= 0):
        raise ParameterError(f"data_variance and tolerance must be >= 0, got {data_variance} "
                             f"and {tolerance}")
    limit = float(mse.min()) + tolerance * float(data_variance)
    return min(k for k, m in zip(counts, mse, strict=True) if m <= limit)


#: How :func:`search_count` orders the candidates it scores (recorded with results that
#: used it: results of the first, exhaustive version are not their duplicates).
COUNT_SEARCH = "largest, then ascending"


def search_count(counts: Sequence[int], score: Callable[[int], float],
                 data_variance: float, tolerance: float = 0.01
                 ) -> tuple[int, list[int], list[float]]:
    """The count of :func:`count_by_held_out` with fewer relax phases: score the largest
    candidate (the least constrained model), then the candidates from the smallest up,
    and stop at the first whose held-out MSE is within ``tolerance`` x ``data_variance``
    of the best scored so far.

    The result is :func:`count_by_held_out` of the scored candidates. It equals the
    rule over every candidate unless a skipped count scores below the best scored one by
    more than the difference that decided; where the held-out error falls with the count
    (every curve measured: toy, PZT) they agree, at a few relax phases instead of one per
    candidate (5 of 11 on PZT, docs/method.rst).

    Parameters
    ----------
    counts : sequence of int
        Candidate counts (at least one).
    score : callable
        Held-out MSE after a relax phase at a count.
    data_variance, tolerance : float
        As in :func:`count_by_held_out`.

    Returns
    -------
    tuple
        The count, the scored candidates (ascending) and their held-out MSE.

    Examples
    --------
    >>> curve = {1: 0.50, 2: 0.20, 3: 0.052, 4: 0.050, 5: 0.049}
    >>> search_count(curve, curve.get, 1.0, 0.01)
    (3, [1, 2, 3, 5], [0.5, 0.2, 0.052, 0.049])
    """
    ordered = sorted({int(k) for k in counts})
    if not ordered:
        raise ParameterError("search_count needs at least one candidate count")
    scored = {ordered[-1]: float(score(ordered[-1]))}
    limit = tolerance * float(data_variance)
    for k in ordered:
        if k not in scored:
            scored[k] = float(score(k))
        if scored[k] <= min(scored.values()) + limit:
            break
    done = sorted(scored)
    return k, done, [scored[c] for c in done]


class SnapshotSelection:
    """The snapshot-choosing half of :class:`~pycroscopy_bevae.models.BetaVAE`: which
    snapshot's weights the fitted model uses and which of its channels are active
    (a mixin; it needs the estimator's ``snapshots_``, ``model_`` and ``settings()``)."""

    def channel_activity(self, snapshot: int | None = None) -> dict:
        """KL per channel (nats) and variance of the latent means across samples."""
        snap = self._snapshot(snapshot)
        return {"kl": snap.channel_kl(), "variance": snap.mu.var(axis=0)}

    def n_active(self, snapshot: int | None = None) -> int:
        """Active channels (KL >= ``kl_threshold``) at a snapshot (default: selected)."""
        return self._snapshot(snapshot).n_active(self.settings().kl_threshold)

    def active_channels(self, snapshot: int | None = None) -> np.ndarray:
        """Indices of the active channels at a snapshot (default: the selected one)."""
        return self._snapshot(snapshot).active(self.settings().kl_threshold)

    def select(self, n_active: int | None = None, closest: bool = False) -> int:
        """Load the weights of a snapshot chosen by its number of active channels.

        Parameters
        ----------
        n_active : int, optional
            The latest snapshot with exactly this many active channels (``closest``: the
            latest of those whose count is nearest to it, with a warning in the log when
            none has exactly as many); with held-out positions (``validation_fraction``)
            the one of them with the lowest held-out reconstruction error. Without it,
            the last snapshot when a relax phase ran (``relax_epochs``), else the latest
            snapshot whose reconstruction MSE (decoded from the latent means, on the
            training data) is at most ``mse_tolerance`` x that of the last primed
            snapshot (beta = 0): the most regularised model that still reconstructs well.

        Returns
        -------
        int
            Index of the selected snapshot (also ``selected_``).
        """
        self._check_fitted()
        s = self.settings()
        snaps = self.snapshots_
        choice = choose_snapshot(snaps, s, getattr(self, "data_variance_", None), n_active,
                                 closest=closest,
                                 relaxed=getattr(self, "relax_", None) is not None)
        self.use_snapshot(choice)
        logger.info("selected snapshot %d: epoch %d, beta %.4g, %d active channels", choice,
                    snaps[choice].epoch, snaps[choice].beta,
                    snaps[choice].n_active(s.kl_threshold))
        return choice

    def channel_mask(self) -> np.ndarray:
        """The 0/1 mask of the latent channels the model uses (0: inactive, set to 0 in
        the embedding, the log-variances and before decoding).

        Examples
        --------
        >>> X = np.sin(np.linspace(0, 6, 20))[None, :] * np.linspace(-1, 1, 32)[:, None]
        >>> from pycroscopy_bevae.models import BetaVAE
        >>> vae = BetaVAE(units=4, embedding_dim=4, latent_dim=3, epochs=1, prime_epochs=1,
        ...               round_updates=0).fit(X, progress=False)
        >>> vae.channel_mask().shape
        (3,)
        """
        self._check_fitted()
        return np.asarray(self.model_.channel_mask().numpy(), float)

    def use_snapshot(self, index: int) -> None:
        """Load the weights of snapshot ``index``, mask its inactive channels and (with
        ``rotation='ica'``) fit the independent axes of its active ones.

        A channel is kept when the snapshot's own mask kept it and its KL is at least
        ``kl_threshold``: a model with k active channels then uses exactly k channels on
        every route (embedding, decoding, reconstruction, the stored model), annealing
        snapshots included, where channels below the threshold would otherwise still
        carry signal.

        Raises
        ------
        ParameterError
            ``index`` is not a snapshot.
        """
        snap = self._snapshot(index)
        self.model_.set_weight_arrays(snap.weights)
        kept = np.asarray(self.model_.channel_mask().numpy()) > 0
        active = np.zeros_like(kept)
        active[snap.active(self.settings().kl_threshold)] = True
        channels = np.flatnonzero(kept & active)
        self.model_.set_channel_mask(channels)
        self.selected_ = index % len(self.snapshots_)
        self.rotation_ = None
        s = self.settings()
        if s.rotation == "ica":
            # on the training positions of the seeded split, derived from the settings
            # and the snapshot alone: a reloaded model (no validation_index_) refits the
            # very rotation its written embedding was made with
            train, _ = validation_split(len(snap.mu), s.validation_fraction,
                                        int(s.random_state))
            self.rotation_ = fit_rotation(snap.mu[train], channels, int(s.random_state))

    def select_requested(self, n_active: int | None = None) -> int:
        """The selection for a channel request (:meth:`request_active`): the latest
        snapshot with ``n_active`` active channels, the closest count when none has
        exactly as many; None: the automatic rule. The process and a reload of its
        results choose through this one policy."""
        return self.select(n_active=check("n_active", n_active, CHANNEL_REQUEST), closest=True)

    def _snapshot(self, index: int | None) -> Snapshot:
        self._check_fitted()
        if not self.snapshots_:
            raise ParameterError("no snapshots recorded")
        i = self.selected_ if index is None else index
        try:
            return self.snapshots_[i]
        except IndexError:
            raise ParameterError(f"snapshot {i} does not exist (0..{len(self.snapshots_) - 1})"
                                 ) from None
