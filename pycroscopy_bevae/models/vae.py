"""The LSTM beta-VAE as a scikit-learn style estimator, with regularisation scheduling,
snapshots and disentanglement-based model selection.

TensorFlow is imported only when a network is built (``fit``, ``load``), so importing
this module is cheap.

Schedule (as the paper): ``beta = lambda = 0`` for ``prime_epochs`` (the model learns to
reconstruct), then ``beta`` rises by ``beta_step`` every ``step_epochs`` epochs, starting
at ``beta_start`` (or, with ``beta_start='auto'``, at the value that makes the KL term
``kl_fraction`` of the loss when it switches on, as the paper chose its first step);
``lambda`` follows ``lambda0 * 10**beta`` (reference code) or rises by its own
``lambda_step``. At the end of every schedule step a *snapshot* stores the epoch, beta,
lambda, losses, the latent means and log-variances of the training data, and the
weights, so any step can be restored.

Model selection replaces the paper's watching of a movie: a latent channel is *active*
when its mean KL divergence from the prior over the training data is at least
``kl_threshold`` nats (an inactive channel has collapsed to the prior: its means are ~0
and its maps are noise). :meth:`BetaVAE.select` restores the latest snapshot with the
requested number of active channels; without a number, the latest snapshot whose
reconstruction MSE (decoded from the latent means) is within ``mse_tolerance`` times
the primed model's.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
from sklearn.base import BaseEstimator

from .. import exceptions as _exceptions
from ..exceptions import ParameterError, TrainingDivergedError
from ..params import Choice, Either, Flag, Integer, Literal, Real, check_params, plain
from .runtime import tensorflow
from .schedule import (
    CapacitySchedule,
    RelaxSchedule,
    Schedule,
    ScheduleValues,
    StepSchedule,
    active_channels,
    channel_kl,
    schedule_values,
)

__all__ = ["BetaVAE", "PRESETS", "PRECISIONS", "STRATEGIES", "Snapshot", "schedule_values",
           "channel_kl", "active_channels", "resolve_strategy",
           "IncompatibleStateError", "SpectraSource"]

logger = logging.getLogger(__name__)

#: Preset parameter sets. ``paper``: exact sizes, optimiser and BEPS schedule of the paper
#: (meant for a GPU). ``fast``: a compact model of the same family for a 2-core CPU,
#: redesigned from measurements (docs/method.rst): one BiLSTM per side beside a linear
#: path, a schedule counted in rounds of 100 updates with geometric beta stairs from the
#: ``auto`` start, and prune-then-relax (20 rounds) at ``target_active`` channels or,
#: without a target, at 2 % of the data variance from the primed reconstruction.
PRESETS: dict[str, dict] = {
    "paper": dict(units=128, n_blocks=3, layers_per_block=2, embedding_dim=16, latent_dim=16,
                  learning_rate=3e-5, batch_size=300, epochs=20_000, prime_epochs=6000,
                  beta_start=0.0025, beta_step=0.0025, step_epochs=1000, lambda0=1e-5,
                  lambda_mode="follow", kl_reduction="mean", layer_norm_axis="time"),
    "fast": dict(units=32, n_blocks=0, layers_per_block=2, embedding_dim=16, latent_dim=16,
                 learning_rate=1e-3, batch_size=64, round_updates=100, epochs=110,
                 prime_epochs=30, beta_start="auto", beta_step=0.0, beta_growth=1.3,
                 step_epochs=3, lambda0=1e-5, lambda_mode="follow", kl_reduction="sum",
                 layer_norm_axis="time", linear_path=True, relax_epochs=20, relax_beta=0.01,
                 relax_lr=0.1, r2_tolerance=0.02),
}

_PARAMS = ("units", "n_blocks", "layers_per_block", "embedding_dim", "latent_dim",
           "learning_rate", "batch_size", "epochs", "prime_epochs", "beta_start", "beta_step",
           "step_epochs", "kl_fraction", "lambda0", "lambda_mode", "lambda_step",
           "kl_reduction", "layer_norm_axis", "snapshot_every", "kl_threshold", "mse_tolerance",
           "precision", "random_state", "round_updates", "schedule", "capacity_start",
           "capacity_step", "target_active", "relax_epochs", "relax_beta", "relax_lr",
           "linear_path", "beta_growth", "r2_tolerance")

_DEFAULTS = dict(kl_fraction=0.6, lambda_step=0.0, snapshot_every=0, kl_threshold=0.1,
                 mse_tolerance=2.0, precision="float32", random_state=0, round_updates=0,
                 schedule="steps", capacity_start=0.0, capacity_step=0.0, target_active=0,
                 relax_epochs=0, relax_beta=0.1, relax_lr=0.1, linear_path=False,
                 beta_growth=1.0, r2_tolerance=0.0)

#: Regularisation schedules (``schedule`` parameter).
SCHEDULES = ("steps", "capacity")

#: Accepted ``precision`` values: float32, or Keras mixed precision (float16 compute with
#: loss scaling for GPUs; bfloat16 compute for CPUs/TPUs with native bfloat16).
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
#: Accepted ``strategy`` names (or pass a ``tf.distribute.Strategy`` instance).
STRATEGIES = ("mirrored", "multiworker")


class IncompatibleStateError(ParameterError):
    """A training state given to :meth:`BetaVAE.fit` does not fit the model being trained."""


class SpectraSource:
    """Training spectra read on demand, for data sets that do not fit in memory.

    Given one instead of an array, :meth:`BetaVAE.fit` streams every epoch's
    mini-batches from it through ``tf.data`` (same batches, in the same order, as the
    in-memory path: the permutation drawn from ``(random_state, epoch)``, so resuming
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
_STREAM_BLOCK = 16 * 1024


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


class BetaVAE(BaseEstimator):
    """LSTM beta-VAE for hysteresis loops / spectra (scikit-learn conventions).

    Parameters
    ----------
    preset : {'fast', 'paper'} or None
        Defaults for every size and schedule parameter left as None (see :data:`PRESETS`).
    units, n_blocks, layers_per_block, embedding_dim, latent_dim : int
        Network sizes (paper: 128, 3, 2, 16, 16).
    learning_rate : float
        Adam learning rate.
    batch_size, epochs : int
        Mini-batch size and total epochs.
    prime_epochs, step_epochs : int
        Epochs with beta = lambda = 0; epochs per beta step.
    beta_start : float or 'auto'
        First beta after priming; ``'auto'`` makes the KL term ``kl_fraction`` of the loss.
    beta_step : float
        Beta increment per step.
    beta_growth : float
        Beta factor per step (>= 1): step k has ``beta_start * beta_growth**k +
        beta_step * k`` (paper: 1, even stairs).
    kl_fraction : float
        Target share of the KL term for ``beta_start='auto'`` (paper: 0.6).
    lambda0 : float
        L1 strength scale: lambda = ``lambda0 * 10**beta`` (``lambda_mode='follow'``).
    lambda_mode : {'follow', 'step'}
        Lambda follows beta (reference) or rises by ``lambda_step`` per step from ``lambda0``.
    lambda_step : float
        Lambda increment per step for ``lambda_mode='step'``.
    kl_reduction : {'mean', 'sum'}
        KL averaged over batch and latent units (reference code) or summed over units.
    layer_norm_axis : {'time', 'features'}
        Axis of the layer normalisation (reference: time).
    snapshot_every : int
        Also snapshot every N epochs (0: only at schedule steps and the last epoch).
    kl_threshold : float
        Channel activity threshold (nats) for :meth:`n_active` and :meth:`select`.
    mse_tolerance : float
        Automatic selection keeps MSE <= ``mse_tolerance`` x the primed model's MSE
        (when ``r2_tolerance`` is 0).
    r2_tolerance : float
        0: the ``mse_tolerance`` rule. > 0: automatic selection (and the end of the
        annealing before a relax phase) keeps MSE <= the primed model's MSE +
        ``r2_tolerance`` x the variance of the data: the model may explain at most this
        fraction of the variance less than the unregularised one (0.02: 2 points of R^2).
    precision : {'float32', 'mixed_float16', 'mixed_bfloat16'}
        Compute precision of the hidden layers (weights, latent outputs, reconstruction
        and losses stay float32). ``mixed_float16`` adds dynamic loss scaling; meant for
        GPUs with tensor cores. Inference after loading runs in float32.
    random_state : int
        Seed of weights, shuffling and sampling; CPU runs repeat exactly.
    round_updates : int
        0 (default, the paper): a schedule epoch is one pass over the data. N > 0: every
        epoch of the schedule (``epochs``, ``prime_epochs``, ``step_epochs``,
        ``relax_epochs``, ``snapshot_every``, the history) is a round of exactly N
        optimiser updates, drawn from the same stream of shuffled passes; a preset then
        applies the same pressure per update on 1,000 or 65,000 positions.
    schedule : {'steps', 'capacity'}
        ``'steps'``: beta rises in stairs (the paper). ``'capacity'``: capacity control
        (Burgess et al. 2018), loss term ``beta * |KL - C|`` with ``beta = beta_start``
        constant and C rising from ``capacity_start`` by ``capacity_step`` per step.
    capacity_start, capacity_step : float
        KL target (nats, in the unit of ``kl_reduction``) of the capacity schedule.
    target_active : int
        0: no target. N > 0: the annealing stops at the first step that leaves at most N
        active channels and the relax phase keeps the N strongest channels of the last
        snapshot that had at least N.
    relax_epochs : int
        Prune-then-relax (0: off). When the annealing ends (``target_active`` reached,
        the reconstruction MSE leaving the tolerance (``r2_tolerance``,
        ``mse_tolerance``) of the primed one - the run
        then goes back to the last snapshot within it - or ``epochs`` spent), the
        inactive channels are frozen (masked to exactly 0) and training goes on for
        ``relax_epochs`` with beta x ``relax_beta`` and the learning rate decaying
        (cosine) to ``relax_lr`` x its value, so the reconstruction converges with the
        channels that are left. Snapshots every ``step_epochs`` and at the end.
    relax_beta, relax_lr : float
        Beta factor and final learning-rate factor of the relax phase.
    linear_path : bool
        Add linear maps input -> latent means and latent -> output beside the LSTMs, so
        the network contains the linear model of the same dimension (PCA-k) and the
        recurrent layers learn what is left.
    strategy : None, {'mirrored', 'multiworker'} or tf.distribute.Strategy
        Train under a ``tf.distribute`` strategy: ``'mirrored'`` replicates the model on
        every GPU of this host (``tf.distribute.MirroredStrategy``; one replica per
        logical device), ``'multiworker'`` on every GPU of several hosts
        (``MultiWorkerMirroredStrategy``; each host runs the same script with its
        ``TF_CONFIG``). Each step splits the ``batch_size`` batch across the replicas
        and sums their gradients, so a replica sees ``batch_size / replicas`` spectra;
        with 1 replica the run is the same as without a strategy. An execution
        setting: not stored with the model.

    Attributes
    ----------
    history_ : dict
        Per-epoch ``loss``, ``mse``, ``l1``, ``kl``, ``beta``, ``lambda`` (and ``val_*``).
    snapshots_ : list of Snapshot
    selected_ : int
        Index of the snapshot whose weights are loaded.
    fit_time_ : float

    Examples
    --------
    A tiny network for two epochs (real runs use a preset's sizes and schedule):

    >>> import numpy as np
    >>> X = np.sin(np.linspace(0, 6, 20))[None, :] * np.linspace(-1, 1, 64)[:, None]
    >>> vae = BetaVAE(preset="fast", units=4, embedding_dim=4, latent_dim=3, epochs=2,
    ...               round_updates=0, relax_epochs=0, beta_growth=1.0,
    ...               prime_epochs=1, step_epochs=1, beta_start=0.01, batch_size=32)
    >>> vae = vae.fit(X, progress=False)
    >>> vae.transform(X).shape, vae.reconstruct(X).shape, [s.epoch for s in vae.snapshots_]
    ((64, 3), (64, 20), [0, 1])
    """

    def __init__(self, *, preset: str | None = "fast", units=None, n_blocks=None,
                 layers_per_block=None, embedding_dim=None, latent_dim=None, learning_rate=None,
                 batch_size=None, epochs=None, prime_epochs=None, beta_start=None,
                 beta_step=None, step_epochs=None, kl_fraction=None, lambda0=None,
                 lambda_mode=None, lambda_step=None, kl_reduction=None, layer_norm_axis=None,
                 snapshot_every=None, kl_threshold=None, mse_tolerance=None, precision=None,
                 random_state=None, strategy=None, round_updates=None, schedule=None,
                 r2_tolerance=None,
                 capacity_start=None, capacity_step=None, target_active=None,
                 relax_epochs=None, relax_beta=None, relax_lr=None, linear_path=None,
                 beta_growth=None):
        self.preset = preset
        self.units = units
        self.n_blocks = n_blocks
        self.layers_per_block = layers_per_block
        self.embedding_dim = embedding_dim
        self.latent_dim = latent_dim
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.epochs = epochs
        self.prime_epochs = prime_epochs
        self.beta_start = beta_start
        self.beta_step = beta_step
        self.step_epochs = step_epochs
        self.kl_fraction = kl_fraction
        self.lambda0 = lambda0
        self.lambda_mode = lambda_mode
        self.lambda_step = lambda_step
        self.kl_reduction = kl_reduction
        self.layer_norm_axis = layer_norm_axis
        self.snapshot_every = snapshot_every
        self.kl_threshold = kl_threshold
        self.mse_tolerance = mse_tolerance
        self.r2_tolerance = r2_tolerance
        self.precision = precision
        self.random_state = random_state
        self.strategy = strategy
        self.round_updates = round_updates
        self.schedule = schedule
        self.capacity_start = capacity_start
        self.capacity_step = capacity_step
        self.target_active = target_active
        self.relax_epochs = relax_epochs
        self.relax_beta = relax_beta
        self.relax_lr = relax_lr
        self.linear_path = linear_path
        self.beta_growth = beta_growth

    # ---- parameters -------------------------------------------------------------------
    def resolved_params(self) -> dict:
        """Every training parameter after applying the preset (plain values).

        Numpy scalars are taken as the Python numbers, strings and flags they stand for.

        Examples
        --------
        >>> BetaVAE(epochs=np.int64(3), learning_rate=np.float32(1e-3)).resolved_params()["epochs"]
        3
        """
        if isinstance(self.strategy, str) and self.strategy not in STRATEGIES:
            raise ParameterError(f"strategy must be None, one of {STRATEGIES} or a "
                                 f"tf.distribute.Strategy, got {self.strategy!r}")
        if self.strategy is not None and not isinstance(self.strategy, str):
            resolve_strategy(self.strategy)  # an instance: refused here if it is not one
        if self.preset is not None and self.preset not in PRESETS:
            raise ParameterError(f"unknown preset {self.preset!r}; choose one of "
                                 f"{sorted(PRESETS)} or None")
        base = dict(_DEFAULTS)
        base.update(PRESETS.get(self.preset, {}) if self.preset else {})
        out = {}
        for name in _PARAMS:
            val = getattr(self, name)
            out[name] = plain(base.get(name) if val is None else val)
        missing = [k for k, v in out.items() if v is None]
        if missing:
            raise ParameterError(f"parameters {missing} have no value: set them or use a preset")
        return _validate(out)

    def storage_estimate(self, n: int, n_steps: int, n_channels: int) -> dict:
        """Numbers that size what training on ``n`` spectra of ``(n_steps, n_channels)``
        stores, computed from the parameters alone (no network is built).

        Returns
        -------
        dict
            ``weights`` (number of weights, incl. normalisation statistics; an upper
            bound), ``snapshots`` (how many the schedule takes) and ``latent_dim``.

        Examples
        --------
        >>> BetaVAE(preset="fast").storage_estimate(100, 96, 2)["snapshots"]
        35
        """
        p = self.resolved_params()
        u, e, lat = p["units"], p["embedding_dim"], p["latent_dim"]

        def bilstm(d_in: int) -> int:
            return 2 * 4 * u * (d_in + u + 1)

        norm = 2 * (n_steps if p["layer_norm_axis"] == "time" else 2 * u)  # gamma, beta

        def blocks(d_in: int) -> int:
            total, d = 0, d_in
            for _ in range(p["n_blocks"]):
                for _ in range(p["layers_per_block"]):
                    total += bilstm(d)
                    d = 2 * u
                # a skip projection where the widths differ, then the layer norm
                total += ((d_in + 1) * 2 * u if d_in != 2 * u else 0) + norm
                d_in = d
            return total

        enc = blocks(n_channels) + bilstm(2 * u if p["n_blocks"] else n_channels) + 4 * 2 * u \
            + (2 * u + 1) * e + 2 * (e + 1) * lat + lat  # ... + the channel mask
        dec = (lat + 1) * e + bilstm(e) + blocks(2 * u) + (2 * u + 1) * n_channels
        if p["linear_path"]:
            enc += n_steps * n_channels * lat
            dec += (lat + 1) * n_steps * n_channels
        snaps = sum(_anneal_snapshot_due(ep, p) for ep in range(int(p["epochs"])))
        if p["relax_epochs"]:
            snaps += p["relax_epochs"] // p["step_epochs"] + 1
        return {"weights": int(enc + dec), "snapshots": int(snaps), "latent_dim": int(lat)}

    # ---- training ---------------------------------------------------------------------
    def fit(self, X: np.ndarray, X_val: np.ndarray | None = None, progress: bool = True,
            on_epoch_end: Callable[[int, BetaVAE], None] | None = None,
            initial_state: Mapping | None = None) -> BetaVAE:
        """Train with the regularisation schedule, snapshotting as it goes.

        Each epoch's data order is drawn from ``(random_state, epoch)``, so a run
        resumed from :meth:`training_state` ends in exactly the state of an
        uninterrupted run (on CPU). The epochs between two snapshots go through one
        Keras ``fit`` call (a GPU is not held up by a per-epoch set-up);
        ``on_epoch_end`` is still called after every epoch.

        Parameters
        ----------
        X : numpy.ndarray or SpectraSource
            (n, T) or (n, T, C) training spectra (already scaled); a
            :class:`SpectraSource` (n, T, C) is streamed batch by batch (``tf.data``)
            and gives the same batches as the array it stands for.
        X_val : numpy.ndarray, optional
            Validation spectra; their losses are logged as ``val_*``.
        progress : bool
            Show a tqdm bar (epoch, loss terms, beta).
        on_epoch_end : callable, optional
            Called as ``on_epoch_end(epoch, self)`` after every epoch (checkpointing).
        initial_state : mapping, optional
            Resume from :meth:`training_state`.

        Returns
        -------
        self
        """
        tensorflow()
        import keras

        from .vae_network import BetaVAEModel, NetworkConfig, ScheduleCallback

        p = self.resolved_params()
        streamed = isinstance(X, SpectraSource)
        X = _check_source(X) if streamed else _as_3d(X, "X")
        val = None
        if X_val is not None:
            X_val = _as_3d(X_val, "X_val")
            if X_val.shape[1:] != tuple(X.shape[1:]):
                raise ParameterError(f"X_val has steps x channels {X_val.shape[1:]}, X has "
                                     f"{X.shape[1:]}")
            val = (X_val, X_val)
        seed = int(p["random_state"])
        strategy = resolve_strategy(self.strategy)
        keras.utils.set_random_seed(seed)
        cfg = NetworkConfig(n_steps=X.shape[1], n_channels=X.shape[2], units=p["units"],
                            n_blocks=p["n_blocks"], layers_per_block=p["layers_per_block"],
                            embedding_dim=p["embedding_dim"], latent_dim=p["latent_dim"],
                            layer_norm_axis=p["layer_norm_axis"],
                            kl_reduction=p["kl_reduction"], linear_path=p["linear_path"])
        with strategy.scope() if strategy is not None else contextlib.nullcontext():
            # variables (weights, optimiser slots, beta, lambda) are mirrored on every replica
            model = BetaVAEModel(cfg, seed=seed, precision=p["precision"])
            opt = keras.optimizers.Adam(p["learning_rate"])
            if p["precision"] == "mixed_float16":
                opt = keras.optimizers.LossScaleOptimizer(opt)
            model.compile(optimizer=opt)
            model(X.take(np.arange(1)) if streamed else X[:1])  # build the weights
        self.model_, self.config_ = model, cfg
        self.n_replicas_ = 1 if strategy is None else int(strategy.num_replicas_in_sync)
        self.input_shape_ = X.shape[1:]
        self.n_features_in_ = X.shape[1] * X.shape[2]
        self.history_ = {k: [] for k in ("loss", "mse", "l1", "kl", "beta", "lambda",
                                         "capacity", "lr_scale")}
        self.snapshots_: list[Snapshot] = []
        self.beta_start_ = None if p["beta_start"] == "auto" else float(p["beta_start"])
        self.relax_: RelaxSchedule | None = None
        start = 0
        if initial_state is not None:
            try:
                start = self._restore_state(initial_state)
            except (KeyError, ValueError, TypeError) as exc:
                raise IncompatibleStateError(f"initial_state does not fit this model: {exc}"
                                             ) from exc
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=p["epochs"] + p["relax_epochs"], initial=start, desc="beta-VAE",
                       unit="epoch", leave=False)
        t0 = time.perf_counter()
        src = X if streamed else _InMemory(X)
        self.data_variance_ = _mean_variance(src)
        batch = int(p["batch_size"])
        per_epoch = int(p["round_updates"]) or -(-len(X) // batch)
        self.updates_per_epoch_ = per_epoch
        applied: dict[int, ScheduleValues] = {}
        schedule_cb = ScheduleCallback(lambda e: self._values(e, p), p["learning_rate"],
                                       on_values=lambda e, v: applied.__setitem__(e, v))
        epoch_done = keras.callbacks.LambdaCallback(
            on_epoch_end=lambda e, logs: self._epoch_done(e, applied.pop(e), logs or {}, X, p,
                                                          bar, on_epoch_end))
        try:
            epoch = start
            while epoch < self._last_epoch(p):
                # one model.fit call per run of epochs that ends at the next snapshot: Keras'
                # per-call set-up is paid per run, not per epoch (it dominates short epochs
                # on a GPU); the batches and results are those of one call per epoch
                end = self._run_end(epoch, p)
                # batches through tf.data for arrays too: the same batches as
                # model.fit(X[order]), without Keras' per-epoch tensor copies of X
                model.fit(_batches(src, seed, epoch * per_epoch, (end - epoch) * per_epoch,
                                   batch),
                          initial_epoch=epoch, epochs=end, steps_per_epoch=per_epoch,
                          shuffle=False, verbose=0, validation_data=val,
                          callbacks=[schedule_cb, epoch_done])
                epoch = end
                if p["relax_epochs"] and self.relax_ is None:
                    self._maybe_relax(epoch, p)
        finally:
            if bar is not None:
                bar.close()
        self.fit_time_ = time.perf_counter() - t0
        self.selected_ = len(self.snapshots_) - 1
        return self

    def _anneal_schedule(self, p: dict) -> Schedule:
        """The schedule before any relax phase (beta_start resolved)."""
        if self.beta_start_ is None:
            # 'auto': from the training losses of the last primed epoch, so that the KL term
            # is kl_fraction of the loss when it switches on
            h, f = self.history_, p["kl_fraction"]
            if not h["mse"]:
                raise ParameterError("beta_start='auto' needs prime_epochs >= 1")
            self.beta_start_ = float(f * h["mse"][-1] / ((1 - f) * max(h["kl"][-1], 1e-12)))
            logger.info("auto beta_start = %.4g (KL = %.0f%% of the loss)", self.beta_start_,
                        100 * f)
        if p["schedule"] == "capacity":
            return CapacitySchedule(p["prime_epochs"], self.beta_start_, p["capacity_start"],
                                    p["capacity_step"], p["step_epochs"], p["lambda0"])
        return StepSchedule(p["prime_epochs"], self.beta_start_, p["beta_step"],
                            p["step_epochs"], p["lambda0"], p["lambda_mode"], p["lambda_step"],
                            p["beta_growth"])

    def _values(self, epoch: int, p: dict) -> ScheduleValues:
        """Schedule values of ``epoch`` (applied by the ScheduleCallback)."""
        if self.relax_ is not None and epoch >= self.relax_.start:
            return self.relax_.values(epoch)
        if epoch < p["prime_epochs"]:
            return ScheduleValues(0.0, 0.0, phase="prime")
        return self._anneal_schedule(p).values(epoch)

    def _last_epoch(self, p: dict) -> int:
        """One past the last epoch of training (known once the relax phase has begun)."""
        return self.relax_.end if self.relax_ is not None else int(p["epochs"])

    def _maybe_relax(self, epoch: int, p: dict) -> None:
        """After a run that ended with a snapshot at ``epoch - 1``: start the relax phase
        when the annealing is over (see ``relax_epochs``)."""
        snaps = self.snapshots_
        thr = p["kl_threshold"]
        if not snaps or epoch <= p["prime_epochs"] or snaps[-1].epoch != epoch - 1:
            return
        counts = [s.n_active(thr) for s in snaps]
        last = len(snaps) - 1
        keep = None
        if p["target_active"]:
            want = p["target_active"]
            if counts[-1] > want and epoch < p["epochs"]:
                return
            # the last snapshot with at least the wanted channels; its strongest ones
            idx = max([i for i, c in enumerate(counts) if c >= want] or [last])
            kl = snaps[idx].channel_kl()
            keep = np.sort(np.argsort(kl)[::-1][:min(want, counts[idx])])
        else:
            within = self._within_tolerance(p)
            if within and within[-1] == last and epoch < p["epochs"]:
                return
            idx = within[-1] if within else last
        snap = snaps[idx]
        if keep is None:
            keep = snap.active(thr)
        if idx != last:
            self.model_.set_weight_arrays(snap.weights)
        self.model_.set_channel_mask(keep)
        anneal = self._anneal_schedule(p).values(snap.epoch)
        self.relax_ = RelaxSchedule(start=epoch, epochs=int(p["relax_epochs"]),
                                    beta=anneal.beta, lam=anneal.lam, capacity=anneal.capacity,
                                    beta_factor=p["relax_beta"], lr_final=p["relax_lr"],
                                    step_epochs=int(p["step_epochs"]))
        self.relax_from_ = idx
        logger.info("relax phase from epoch %d: snapshot %d (epoch %d, beta %.4g), channels "
                    "%s kept", epoch, idx, snap.epoch, snap.beta, keep.tolist())

    def _within_tolerance(self, p: dict) -> list[int]:
        """Indices of the snapshots whose reconstruction MSE is within the tolerance of
        the primed model's (``r2_tolerance`` of the data variance, else ``mse_tolerance``
        times)."""
        ref = _recon_mse(self._primed_snapshot())
        if p["r2_tolerance"] > 0 and getattr(self, "data_variance_", None) is not None:
            limit = ref + p["r2_tolerance"] * self.data_variance_
        else:
            limit = p["mse_tolerance"] * ref
        return [i for i, s in enumerate(self.snapshots_) if _recon_mse(s) <= limit]

    def _primed_snapshot(self) -> Snapshot:
        primed = [s for s in self.snapshots_ if s.beta == 0.0]
        return primed[-1] if primed else self.snapshots_[0]

    def _run_end(self, epoch: int, p: dict) -> int:
        """One past the last epoch of the run that starts at ``epoch``: the run stops after
        the next snapshot epoch (schedule steps end with one) or at the end."""
        last = self._last_epoch(p)
        end = epoch
        while end < last and not self._snapshot_due(end, p):
            end += 1
        return min(end + 1, last)

    def _epoch_done(self, epoch: int, values: ScheduleValues, logs: dict,
                    X: np.ndarray | SpectraSource, p: dict, bar,
                    on_epoch_end: Callable[[int, BetaVAE], None] | None) -> None:
        """Book-keeping after each epoch: history, snapshot, progress bar, user callback."""
        logs = {k: float(v) for k, v in logs.items()}
        if not all(np.isfinite(logs.get(k, 0.0)) for k in ("loss", "mse", "kl", "l1")):
            self._diverged(epoch, values, logs)
        for k, v in logs.items():
            self.history_.setdefault(k, []).append(v)
        for k, v in (("beta", values.beta), ("lambda", values.lam),
                     ("capacity", values.capacity), ("lr_scale", values.lr_scale)):
            self.history_.setdefault(k, []).append(v)
        if self._snapshot_due(epoch, p):
            self._take_snapshot(epoch, values.beta, values.lam, logs, X)
        if bar is not None:
            bar.set_postfix(mse=f"{logs['mse']:.4f}", kl=f"{logs['kl']:.3g}",
                            beta=f"{values.beta:.3g}", refresh=False)
            bar.update(1)
        if on_epoch_end is not None:
            on_epoch_end(epoch, self)

    def _diverged(self, epoch: int, values: ScheduleValues, logs: dict) -> None:
        """Stop: back to the last good snapshot, then raise TrainingDivergedError."""
        snap = len(self.snapshots_) - 1 if self.snapshots_ else None
        if snap is not None:
            self.model_.set_weight_arrays(self.snapshots_[snap].weights)
            self.selected_ = snap
        self.fit_time_ = float("nan")
        lr = float(self.resolved_params()["learning_rate"]) * values.lr_scale
        kept = (f"the model is back at snapshot {snap} (epoch {self.snapshots_[snap].epoch}, "
                f"beta {self.snapshots_[snap].beta:.4g})" if snap is not None
                else "no snapshot was taken before")
        raise TrainingDivergedError(
            f"beta-VAE training diverged: the loss of epoch {epoch} is not finite "
            f"(loss {logs.get('loss')}, mse {logs.get('mse')}, kl {logs.get('kl')}; beta "
            f"{values.beta:.4g}, learning rate {lr:.3g}); {kept}. Expected finite losses: "
            "try a smaller learning_rate, or scaled input (scaling='global')",
            epoch=int(epoch), snapshot=snap)

    def _snapshot_due(self, epoch: int, p: dict) -> bool:
        if epoch == self._last_epoch(p) - 1 or epoch + 1 == p["prime_epochs"]:
            return True
        if p["snapshot_every"] and (epoch + 1) % p["snapshot_every"] == 0:
            return True
        if self.relax_ is not None and epoch >= self.relax_.start:
            return self.relax_.step_ends(epoch)
        return _anneal_snapshot_due(epoch, p)

    def _take_snapshot(self, epoch: int, beta: float, lam: float, logs: dict,
                       X: np.ndarray | SpectraSource) -> None:
        losses = {k: float(logs[k]) for k in ("loss", "mse", "l1", "kl")}
        # deterministic reconstruction error (from the latent means), used for selection:
        # the training MSE above includes the sampling noise, which grows with beta
        if isinstance(X, SpectraSource):
            mu, logvar, losses["recon_mse"] = self._stream_latents(X)
        else:
            mu, logvar, _ = self._run("encoder", X)
            recon, _ = self._run("decoder", mu)
            losses["recon_mse"] = float(np.mean((np.asarray(recon) - X) ** 2))
        self.snapshots_.append(Snapshot(
            epoch=int(epoch), beta=float(beta), lam=float(lam),
            losses=losses,
            mu=np.asarray(mu, np.float32), logvar=np.asarray(logvar, np.float32),
            weights=self.model_.get_weight_arrays()))

    def _stream_latents(self, src: SpectraSource) -> tuple[np.ndarray, np.ndarray, float]:
        """Latent means, log-variances and reconstruction MSE of a source, block by block."""
        n = len(src)
        mus, logvars, sq_sum = [], [], 0.0
        for start in range(0, n, _STREAM_BLOCK):
            xb = np.asarray(src.take(np.arange(start, min(start + _STREAM_BLOCK, n))),
                            dtype="float32")
            mu, logvar, _ = self._run("encoder", xb)
            recon, _ = self._run("decoder", mu)
            sq_sum += float(np.sum(np.square(recon - xb), dtype=np.float64))
            mus.append(mu)
            logvars.append(logvar)
        return np.concatenate(mus), np.concatenate(logvars), sq_sum / (n * int(np.prod(
            src.shape[1:])))

    # ---- inference --------------------------------------------------------------------
    def _run(self, part: str, X: np.ndarray, batch_size: int = 1024) -> list[np.ndarray]:
        """Apply the encoder or decoder in batches through one compiled function per part
        (``reduce_retracing``: any batch length reuses it, unlike repeated ``predict``)."""
        tf = tensorflow()

        cache = self.__dict__.setdefault("_compiled", {})
        key = (part, id(self.model_))
        if key not in cache:
            net = getattr(self.model_, part)
            cache[key] = tf.function(lambda x: net(x, training=False), reduce_retracing=True,
                                     autograph=False)
        fn = cache[key]
        # cast batch by batch: no float32 copy of the whole input
        outs = [fn(tf.constant(np.asarray(X[i:i + batch_size], dtype="float32")))
                for i in range(0, len(X), batch_size)]
        return [np.concatenate([np.asarray(o[j]) for o in outs]) for j in range(len(outs[0]))]

    def lstm_implementation(self) -> str:
        """Which LSTM kernel the training pass runs on this machine, read from the graph.

        Traces the encoder and decoder in training mode and inspects the operations:
        ``'cudnn'`` when every LSTM runs as the fused cuDNN kernel (``CudnnRNN*`` ops, a
        GPU), ``'generic'`` when they run as a step-by-step ``While`` loop (CPU, or a
        setting cuDNN does not support), ``'mixed'`` for both. Verifies rather than
        assumes the GPU fast path (Keras silently falls back to the loop).

        Returns
        -------
        str

        Examples
        --------
        >>> import numpy as np
        >>> X = np.sin(np.linspace(0, 6, 20))[None, :] * np.linspace(-1, 1, 32)[:, None]
        >>> vae = BetaVAE(units=4, embedding_dim=4, latent_dim=3, epochs=1, prime_epochs=1,
        ...               round_updates=0).fit(X, progress=False)
        >>> vae.lstm_implementation()  # on a CPU-only machine
        'generic'
        """
        tf = tensorflow()

        self._check_fitted()
        cfg = self.config_
        ops: set[str] = set()
        for part, spec in (("encoder", (None, cfg.n_steps, cfg.n_channels)),
                           ("decoder", (None, cfg.latent_dim))):
            net = getattr(self.model_, part)
            graph = tf.function(lambda x, net=net: net(x, training=True), autograph=False
                                ).get_concrete_function(tf.TensorSpec(spec, tf.float32)
                                                        ).graph.as_graph_def()
            ops.update(n.op for n in graph.node)
            for fn in graph.library.function:
                ops.update(n.op for n in fn.node_def)
        cudnn = any(op.startswith("CudnnRNN") for op in ops)
        loop = "While" in ops or "StatelessWhile" in ops
        return "mixed" if cudnn and loop else "cudnn" if cudnn else "generic"

    def encode(self, X: np.ndarray, batch_size: int = 1024) -> tuple[np.ndarray, np.ndarray]:
        """Latent means and log-variances, (n, latent_dim) each."""
        self._check_fitted()
        X = self._check_input(X)
        mu, logvar, _ = self._run("encoder", X, batch_size)
        return np.asarray(mu, float), np.asarray(logvar, float)

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Latent means (the embedding), (n, latent_dim)."""
        return self.encode(X)[0]

    def decode(self, Z: np.ndarray, batch_size: int = 1024) -> np.ndarray:
        """Spectra generated from latent vectors, always (n, steps, channels)."""
        self._check_fitted()
        Z = np.asarray(Z, dtype="float32")
        if Z.ndim != 2 or Z.shape[1] != self.config_.latent_dim:
            raise ParameterError(f"Z must be (n, {self.config_.latent_dim}), got {Z.shape}")
        out, _ = self._run("decoder", Z, batch_size)
        return np.asarray(out, float)

    inverse_transform = decode

    def reconstruct(self, X: np.ndarray) -> np.ndarray:
        """``decode(transform(X))`` (deterministic, from the latent means), in the shape
        of ``X`` ((n, steps) input of one channel gives (n, steps))."""
        out = self.decode(self.transform(X))
        return out[..., 0] if np.ndim(X) == 2 else out

    def score_mse(self, X: np.ndarray) -> float:
        """Mean squared reconstruction error."""
        X = np.asarray(X, float)
        return float(np.mean((self.reconstruct(X) - X) ** 2))

    # ---- model selection --------------------------------------------------------------
    def channel_activity(self, snapshot: int | None = None) -> dict:
        """KL per channel (nats) and variance of the latent means across samples."""
        snap = self._snapshot(snapshot)
        return {"kl": snap.channel_kl(), "variance": snap.mu.var(axis=0)}

    def n_active(self, snapshot: int | None = None) -> int:
        """Active channels (KL >= ``kl_threshold``) at a snapshot (default: selected)."""
        return self._snapshot(snapshot).n_active(self.resolved_params()["kl_threshold"])

    def select(self, n_active: int | None = None, closest: bool = False) -> int:
        """Load the weights of a snapshot chosen by its number of active channels.

        Parameters
        ----------
        n_active : int, optional
            The latest snapshot with exactly this many active channels (``closest``: the
            latest of those whose count is nearest to it, with a warning in the log when
            none has exactly as many). Without it,
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
        p = self.resolved_params()
        snaps = self.snapshots_
        if not snaps:
            raise ParameterError("no snapshots recorded; train for at least one epoch")
        counts = [s.n_active(p["kl_threshold"]) for s in snaps]
        if n_active is not None:
            gap = [abs(c - n_active) for c in counts]
            idx = [i for i, g in enumerate(gap) if g == (min(gap) if closest else 0)]
            if not idx:
                raise ParameterError(f"no snapshot has exactly {n_active} active channels; "
                                     f"snapshots have {sorted(set(counts))}")
            choice = idx[-1]
            if counts[choice] != n_active:
                logger.warning("no snapshot has exactly %d active channels; using %d "
                               "(snapshot %d)", n_active, counts[choice], choice)
        elif getattr(self, "relax_", None) is not None:
            choice = len(snaps) - 1  # the end of the relax phase
        else:
            ok = self._within_tolerance(p)
            choice = ok[-1] if ok else 0
        self.model_.set_weight_arrays(snaps[choice].weights)
        self.selected_ = choice
        logger.info("selected snapshot %d: epoch %d, beta %.4g, %d active channels", choice,
                    snaps[choice].epoch, snaps[choice].beta, counts[choice])
        return choice

    # ---- persistence (plain arrays + JSON; no pickle, no code) -----------------------------
    def get_config(self) -> dict:
        """JSON-serialisable description: resolved parameters and network sizes."""
        self._check_fitted()
        variance = getattr(self, "data_variance_", None)
        return {"params": self.resolved_params(), "network": self.config_.to_dict(),
                "input_shape": list(self.input_shape_),
                "data_variance": None if variance is None else float(variance),
                "relax": self._relax_record()}

    def training_state(self) -> dict:
        """Everything needed to continue training: epoch, weights, optimiser, history, snapshots."""
        self._check_fitted()
        opt = self.model_.optimizer
        return {"epoch": len(self.history_["loss"]), "weights": self.model_.get_weight_arrays(),
                "optimizer": [np.asarray(v.numpy()) for v in opt.variables],
                "seed_state": np.asarray(self.model_.seed_gen.state.numpy()),
                "history": {k: list(v) for k, v in self.history_.items()},
                "snapshots": list(self.snapshots_), "beta_start": self.beta_start_,
                "relax": self._relax_record()}

    def _relax_record(self) -> dict | None:
        """The relax phase as plain numbers (None before one began); read by
        :meth:`_set_relax`."""
        relax = getattr(self, "relax_", None)
        return None if relax is None else dict(vars(relax), from_snapshot=int(self.relax_from_))

    def _set_relax(self, record: Mapping | None) -> None:
        """Restore the relax phase written by :meth:`_relax_record`."""
        relax = dict(record or {})
        self.relax_ = None
        if relax:
            self.relax_from_ = int(relax.pop("from_snapshot"))
            self.relax_ = RelaxSchedule(**relax)

    def _restore_state(self, state: Mapping) -> int:
        model = self.model_
        model.set_weight_arrays(state["weights"])
        opt = model.optimizer
        opt.build(model.trainable_variables)
        values = list(state.get("optimizer") or [])
        if values:
            if len(values) != len(opt.variables):
                raise ParameterError(f"stored optimiser state has {len(values)} variables, the "
                                     f"model needs {len(opt.variables)}")
            for var, val in zip(opt.variables, values, strict=True):
                var.assign(val)
        if state.get("seed_state") is not None:
            model.seed_gen.state.assign(np.asarray(state["seed_state"]))
        self.history_ = {k: list(v) for k, v in state["history"].items()}
        self.snapshots_ = list(state.get("snapshots") or [])
        if state.get("beta_start") is not None:
            self.beta_start_ = float(state["beta_start"])
        self._set_relax(state.get("relax"))
        return int(state["epoch"])

    @classmethod
    def from_config(cls, config: Mapping, weights: Mapping) -> BetaVAE:
        """Rebuild a trained model from :meth:`get_config` and weight arrays."""
        from .vae_network import BetaVAEModel, NetworkConfig

        params = dict(config["params"])
        obj = cls(preset=None, **params)
        obj.resolved_params()  # validates the stored values
        cfg = NetworkConfig(**config["network"])
        model = BetaVAEModel(cfg, seed=int(params["random_state"]))
        import keras

        model.compile(optimizer=keras.optimizers.Adam(params["learning_rate"]))
        model(np.zeros((1, cfg.n_steps, cfg.n_channels), "float32"))
        model.set_weight_arrays(weights)
        obj.model_, obj.config_ = model, cfg
        obj.input_shape_ = tuple(config["input_shape"])
        obj.n_features_in_ = int(np.prod(obj.input_shape_))
        variance = config.get("data_variance")
        obj.data_variance_ = None if variance is None else float(variance)
        obj._set_relax(config.get("relax"))
        obj.history_, obj.snapshots_, obj.selected_ = {}, [], -1
        return obj

    def config_json(self) -> str:
        """:meth:`get_config` as a JSON string."""
        return json.dumps(self.get_config())

    # ---- helpers -----------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise _exceptions.NotFittedError("this BetaVAE is not fitted yet: call fit() first")

    def _check_input(self, X: np.ndarray) -> np.ndarray:
        X3 = _as_3d(X, "X")
        if X3.shape[1:] != tuple(self.input_shape_):
            raise ParameterError(f"X has (steps, channels) = {X3.shape[1:]}, the model was "
                                 f"trained on {tuple(self.input_shape_)}")
        return X3

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


def _mean_variance(src: SpectraSource) -> float:
    """Variance across spectra, averaged over steps and channels (float64 sums, by block)."""
    n = len(src)
    total = total_sq = 0.0
    for start in range(0, n, _STREAM_BLOCK):
        xb = np.asarray(src.take(np.arange(start, min(start + _STREAM_BLOCK, n))), np.float64)
        total = total + xb.sum(axis=0)
        total_sq = total_sq + np.square(xb).sum(axis=0)
    mean = total / n
    return float(np.mean(np.maximum(total_sq / n - np.square(mean), 0.0)))


def _anneal_snapshot_due(epoch: int, p: dict) -> bool:
    """Snapshot epochs before any relax phase: the end of priming and of every step, every
    ``snapshot_every`` epochs and the last of ``epochs``."""
    if epoch + 1 in (p["epochs"], p["prime_epochs"]):
        return True
    if p["snapshot_every"] and (epoch + 1) % p["snapshot_every"] == 0:
        return True
    return epoch >= p["prime_epochs"] and (epoch + 1 - p["prime_epochs"]) % p["step_epochs"] == 0


def _recon_mse(snap: Snapshot) -> float:
    """Deterministic reconstruction MSE of a snapshot (training MSE for old snapshots)."""
    return snap.losses.get("recon_mse", snap.losses["mse"])


def _check_source(src: SpectraSource) -> SpectraSource:
    shape = tuple(int(s) for s in src.shape)
    if len(shape) != 3 or shape[0] < 1 or shape[1] < 2 or shape[2] < 1:
        raise ParameterError(f"a SpectraSource must have shape (n, steps, channels) with n >= 1 "
                             f"and steps >= 2, got {shape}")
    return src


class _InMemory(SpectraSource):
    """An array seen as a :class:`SpectraSource`."""

    def __init__(self, x: np.ndarray):
        self.x, self.shape = x, x.shape

    def take(self, indices: np.ndarray) -> np.ndarray:
        return self.x[indices]


def _batches(src: SpectraSource, seed: int, first: int, count: int, batch_size: int):
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


def resolve_strategy(strategy):
    """The ``tf.distribute.Strategy`` for a :class:`BetaVAE` ``strategy`` setting.

    Parameters
    ----------
    strategy : None, {'mirrored', 'multiworker'} or tf.distribute.Strategy
        ``None``: no strategy (returns None). ``'mirrored'``: ``MirroredStrategy`` over
        the GPUs of this host (the CPU when there is none). ``'multiworker'``:
        ``MultiWorkerMirroredStrategy`` (reads ``TF_CONFIG``). An instance is returned
        as is.

    Returns
    -------
    tf.distribute.Strategy or None

    Raises
    ------
    ParameterError
        For any other value.

    Examples
    --------
    >>> resolve_strategy(None) is None
    True
    >>> resolve_strategy("mirrored").num_replicas_in_sync >= 1  # doctest: +SKIP
    True
    """
    if strategy is None:
        return None
    if isinstance(strategy, str) and strategy not in STRATEGIES:
        raise ParameterError(f"strategy must be None, one of {STRATEGIES} or a "
                             f"tf.distribute.Strategy, got {strategy!r}")
    tf = tensorflow()

    if strategy == "mirrored":
        return tf.distribute.MirroredStrategy()
    if strategy == "multiworker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    if isinstance(strategy, tf.distribute.Strategy):
        return strategy
    raise ParameterError(f"strategy must be None, one of {STRATEGIES} or a "
                         f"tf.distribute.Strategy, got {type(strategy).__name__}")


def _as_3d(X: np.ndarray, name: str) -> np.ndarray:
    X = np.asarray(X, dtype="float32")
    if X.ndim == 2:
        X = X[..., None]
    if X.ndim != 3 or X.shape[0] == 0 or X.shape[1] < 2:
        raise ParameterError(f"{name} must be (n, steps) or (n, steps, channels) with n >= 1 "
                             f"and steps >= 2, got shape {X.shape}")
    if not np.isfinite(X).all():
        raise ParameterError(f"{name} contains {int((~np.isfinite(X)).sum())} non-finite values")
    return X


#: What each BetaVAE parameter accepts (checked by :func:`~pycroscopy_bevae.params.check_params`).
_CONSTRAINTS = {
    **dict.fromkeys(("units", "layers_per_block", "embedding_dim", "latent_dim", "batch_size",
                     "step_epochs"), Integer(low=1)),
    **dict.fromkeys(("n_blocks", "epochs", "prime_epochs", "snapshot_every", "round_updates",
                     "target_active", "relax_epochs"), Integer(low=0)),
    "r2_tolerance": Real(low=0, high=1, high_open=True),
    **dict.fromkeys(("learning_rate", "mse_tolerance"), Real(low=0, low_open=True)),
    **dict.fromkeys(("beta_step", "lambda0", "lambda_step", "kl_threshold", "capacity_start",
                     "capacity_step"), Real(low=0)),
    "beta_start": Either((Literal("auto"), Real(low=0))),
    **dict.fromkeys(("relax_beta", "relax_lr"), Real(low=0, high=1)),
    "beta_growth": Real(low=1, high=100),
    "linear_path": Flag(),
    "kl_fraction": Real(low=0, high=1, low_open=True, high_open=True),
    "random_state": Integer(low=0, high=2**32, high_open=True),
    "lambda_mode": Choice(("follow", "step")),
    "kl_reduction": Choice(("mean", "sum")),
    "layer_norm_axis": Choice(("time", "features")),
    "precision": Choice(PRECISIONS),
    "schedule": Choice(SCHEDULES),
}


def _validate(p: dict) -> dict:
    """The resolved parameters checked (:data:`_CONSTRAINTS` and the rules between
    parameters), as plain values."""
    p = check_params(p, _CONSTRAINTS)
    if p["epochs"] < 1:
        raise ParameterError(f"epochs must be >= 1, got {p['epochs']!r}")
    if p["target_active"] > p["latent_dim"]:
        raise ParameterError(f"target_active={p['target_active']} exceeds latent_dim="
                             f"{p['latent_dim']}")
    return p
