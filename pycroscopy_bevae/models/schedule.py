"""Regularisation schedules of the beta-VAE: small objects with one interface.

A schedule maps a position in training (a schedule *epoch*: one pass over the data, or
a round of ``round_updates`` optimiser updates when :class:`~.BetaVAE` counts in
updates) to the loss weights of that epoch, a :class:`ScheduleValues`::

    loss = MSE + lam * L1(embedding activations) + beta * |KL - capacity|

with KL the latent divergence from the prior (``capacity = 0``: the plain beta-VAE
term). Each schedule also says at which epochs a step ends (where the estimator takes a
snapshot). The estimator applies the values through a Keras callback
(:class:`pycroscopy_bevae.models.vae_network.ScheduleCallback`) at the start of every
epoch, so beta, lambda, the capacity and the learning rate change without rebuilding
or recompiling the model.

* :class:`StepSchedule` - the paper: ``beta = lambda = 0`` while priming, then beta
  rises in stairs; lambda follows ``lambda0 * 10**beta`` or rises in its own stairs.
* :class:`CapacitySchedule` - capacity control (Burgess et al. 2018): a constant
  ``beta`` (gamma) pulls the KL towards a capacity that rises in stairs, so channels
  open one after another in order of how much they improve the reconstruction.
* :class:`RelaxSchedule` - prune-then-relax: after the channels have been pruned to
  the wanted number, the inactive ones are frozen (masked) and training goes on with
  beta lowered and the learning rate decaying (cosine) until the reconstruction
  converges with the channels that are left.

This module is plain Python (no TensorFlow).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["ScheduleValues", "Schedule", "StepSchedule", "CapacitySchedule", "RelaxSchedule",
           "schedule_values", "channel_kl", "active_channels"]


@dataclass(frozen=True)
class ScheduleValues:
    """Loss weights and learning-rate factor of one schedule epoch.

    Attributes
    ----------
    beta : float
        Weight of ``|KL - capacity|``.
    lam : float
        Weight of the L1 activity penalty of the embedding layers.
    capacity : float
        KL target (nats, in the unit of the KL reduction); 0 for the plain beta term.
    lr_scale : float
        Factor on the base learning rate.
    phase : str
        ``'prime'``, ``'anneal'`` or ``'relax'``.
    """

    beta: float
    lam: float
    capacity: float = 0.0
    lr_scale: float = 1.0
    phase: str = "anneal"

    def to_dict(self) -> dict:
        """Plain-dict form."""
        return asdict(self)


class Schedule:
    """Interface: :meth:`values` of an epoch and whether a step ends there."""

    def values(self, epoch: int) -> ScheduleValues:
        """Loss weights of the (0-based) ``epoch``."""
        raise NotImplementedError

    def step_ends(self, epoch: int) -> bool:
        """True when ``epoch`` is the last of a step with constant values (snapshot)."""
        raise NotImplementedError


def _lambda(lambda0: float, lambda_mode: str, lambda_step: float, beta: float, k: int) -> float:
    return lambda0 * 10.0 ** beta if lambda_mode == "follow" else lambda0 + lambda_step * k


@dataclass(frozen=True)
class StepSchedule(Schedule):
    """The paper's schedule: prime, then beta in stairs.

    Step ``k`` (0-based) after priming has ``beta = beta_start * beta_growth**k +
    beta_step * k``: the paper's even stairs with ``beta_growth = 1``; geometric
    stairs (each step ``beta_growth`` times the last) with ``beta_step = 0``, which
    spend the same number of steps on every decade of beta.

    Examples
    --------
    >>> s = StepSchedule(prime_epochs=10, beta_start=0.01, beta_step=0.005, step_epochs=4,
    ...                  lambda0=1e-5)
    >>> s.values(5).beta, s.values(5).phase
    (0.0, 'prime')
    >>> v = s.values(17)
    >>> round(v.beta, 6), round(v.lam, 9), s.step_ends(13), s.step_ends(14)
    (0.015, 1.0351e-05, True, False)
    """

    prime_epochs: int
    beta_start: float
    beta_step: float
    step_epochs: int
    lambda0: float
    lambda_mode: str = "follow"
    lambda_step: float = 0.0
    beta_growth: float = 1.0

    def values(self, epoch: int) -> ScheduleValues:
        if epoch < self.prime_epochs:
            return ScheduleValues(0.0, 0.0, phase="prime")
        k = (epoch - self.prime_epochs) // max(self.step_epochs, 1)
        beta = self.beta_start * self.beta_growth ** k + self.beta_step * k
        return ScheduleValues(float(beta), float(_lambda(self.lambda0, self.lambda_mode,
                                                         self.lambda_step, beta, k)))

    def step_ends(self, epoch: int) -> bool:
        if epoch + 1 == self.prime_epochs:
            return True
        return epoch >= self.prime_epochs and \
            (epoch + 1 - self.prime_epochs) % max(self.step_epochs, 1) == 0


@dataclass(frozen=True)
class CapacitySchedule(Schedule):
    """Capacity control: constant ``beta`` (gamma), KL target rising in stairs.

    The target starts at ``capacity_start`` after priming and rises by
    ``capacity_step`` per step; lambda is ``lambda0`` throughout (after priming).

    Examples
    --------
    >>> s = CapacitySchedule(prime_epochs=2, beta=5.0, capacity_start=0.0,
    ...                      capacity_step=0.5, step_epochs=3, lambda0=0.0)
    >>> [s.values(e).capacity for e in (1, 2, 4, 5, 8)]
    [0.0, 0.0, 0.0, 0.5, 1.0]
    """

    prime_epochs: int
    beta: float
    capacity_start: float
    capacity_step: float
    step_epochs: int
    lambda0: float

    def values(self, epoch: int) -> ScheduleValues:
        if epoch < self.prime_epochs:
            return ScheduleValues(0.0, 0.0, phase="prime")
        k = (epoch - self.prime_epochs) // max(self.step_epochs, 1)
        return ScheduleValues(float(self.beta), float(self.lambda0),
                              float(self.capacity_start + self.capacity_step * k))

    def step_ends(self, epoch: int) -> bool:
        return StepSchedule.step_ends(self, epoch)  # same stairs


@dataclass(frozen=True)
class RelaxSchedule(Schedule):
    """Prune-then-relax: ``epochs`` epochs from ``start`` with beta times
    ``beta_factor`` and the learning rate decaying from 1 to ``lr_final`` (cosine).

    ``values`` are those in force when the relax phase began (``beta``, ``lam``,
    ``capacity``). A step (snapshot) ends every ``step_epochs`` and at the end.

    Examples
    --------
    >>> r = RelaxSchedule(start=10, epochs=4, beta=0.2, lam=1e-5, capacity=0.0,
    ...                   beta_factor=0.1, lr_final=0.01, step_epochs=2)
    >>> v = r.values(10)
    >>> round(v.beta, 6), v.lr_scale, v.phase
    (0.02, 1.0, 'relax')
    >>> round(r.values(13).lr_scale, 4), [r.step_ends(e) for e in (10, 11, 12, 13)]
    (0.01, [False, True, False, True])
    """

    start: int
    epochs: int
    beta: float
    lam: float
    capacity: float
    beta_factor: float
    lr_final: float
    step_epochs: int

    def values(self, epoch: int) -> ScheduleValues:
        t = min(max(epoch - self.start, 0), max(self.epochs - 1, 1)) / max(self.epochs - 1, 1)
        scale = self.lr_final + (1.0 - self.lr_final) * 0.5 * (1.0 + math.cos(math.pi * t))
        return ScheduleValues(float(self.beta * self.beta_factor), float(self.lam),
                              float(self.capacity), float(scale), "relax")

    def step_ends(self, epoch: int) -> bool:
        i = epoch - self.start
        return i == self.epochs - 1 or (i + 1) % max(self.step_epochs, 1) == 0

    @property
    def end(self) -> int:
        """One past the last relax epoch."""
        return self.start + self.epochs


def schedule_values(epoch: int, prime_epochs: int, beta_start: float, beta_step: float,
                    step_epochs: int, lambda0: float, lambda_mode: str = "follow",
                    lambda_step: float = 0.0) -> tuple[float, float]:
    """Beta and lambda of the paper's schedule at a (0-based) epoch.

    Shorthand for ``StepSchedule(...).values(epoch)``.

    Examples
    --------
    >>> schedule_values(5, 10, 0.01, 0.005, 4, 1e-5)
    (0.0, 0.0)
    >>> b, l = schedule_values(17, 10, 0.01, 0.005, 4, 1e-5)
    >>> round(b, 6), round(l, 9)
    (0.015, 1.0351e-05)
    """
    v = StepSchedule(prime_epochs, beta_start, beta_step, step_epochs, lambda0, lambda_mode,
                     lambda_step).values(epoch)
    return v.beta, v.lam


def channel_kl(mu: np.ndarray, logvar: np.ndarray) -> np.ndarray:
    """Mean KL divergence of each latent channel from N(0, 1) over samples (nats).

    Examples
    --------
    >>> channel_kl(np.zeros((4, 2)), np.zeros((4, 2)))
    array([0., 0.])
    """
    kl = 0.5 * (np.square(mu) + np.exp(logvar) - 1.0 - logvar)
    return kl.mean(axis=0)


def active_channels(mu: np.ndarray, logvar: np.ndarray, kl_threshold: float) -> np.ndarray:
    """Indices of the *active* latent channels: the package's one definition.

    A channel is active when its mean KL divergence from the prior N(0, 1) over the
    samples (:func:`channel_kl`) is at least
    ``kl_threshold`` nats. An inactive channel has collapsed to the prior (or was
    frozen by the relax phase): its means carry no information about the sample.
    The estimator, the process, the report and the viewers all count channels with this
    function.

    Examples
    --------
    >>> mu = np.array([[1.0, 0.0, 0.2], [-1.0, 0.0, -0.2]])
    >>> active_channels(mu, np.zeros_like(mu), 0.1)
    array([0])
    """
    return np.flatnonzero(channel_kl(np.asarray(mu, float), np.asarray(logvar, float))
                          >= kl_threshold)
