"""The LSTM beta-VAE as a scikit-learn style estimator, with regularisation scheduling,
snapshots and disentanglement-based model selection.

The estimator checks its parameters (one table, :mod:`.vae_params`), builds the network
(:mod:`.vae_network`) and hands training to :mod:`.trainer`: ``beta = lambda = 0`` for
``prime_epochs``, then the schedule of :mod:`.schedule` (beta in stairs from
``beta_start``, or ``'auto'``: the value that makes the KL term ``kl_fraction`` of the
loss), a *snapshot* (epoch, beta, lambda, losses, latent means and log-variances,
weights) at the end of every step. Model selection (:mod:`.selection`) replaces the
paper's watching of a movie: a latent channel is *active* when its mean KL divergence
from the prior is at least ``kl_threshold`` nats; :meth:`BetaVAE.select` restores the
latest snapshot with the requested number of active channels, or without one the
latest whose reconstruction stays within the tolerance of the primed model's.

TensorFlow is imported only when a network is built (``fit``, ``from_config``).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable, Mapping

import numpy as np
from sklearn.base import BaseEstimator

from ..exceptions import NotFittedError, ParameterError
from ..params import check
from . import runtime, vae_params
from .network_config import NetworkConfig
from .rotation import LatentRotation
from .runtime import STRATEGIES, resolve_strategy
from .schedule import active_channels, channel_kl, schedule_values
from .selection import CHANNEL_REQUEST, Snapshot, SnapshotSelection, snapshot_due
from .trainer import IncompatibleStateError, relax_record, set_relax, train, training_state
from .vae_data import SpectraSource, as_3d, check_source, held_out_positions
from .vae_params import PRECISIONS, PRESETS, Settings

__all__ = ["BetaVAE", "CHANNEL_REQUEST", "PRESETS", "PRECISIONS", "STRATEGIES", "Snapshot",
           "schedule_values", "channel_kl", "active_channels", "resolve_strategy",
           "IncompatibleStateError", "SpectraSource"]

logger = logging.getLogger(__name__)

class BetaVAE(SnapshotSelection, BaseEstimator):
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
    validation_fraction : float
        Share of the positions held out of the training (0 <= f < 0.5; default 0.1; 0:
        none), split with ``random_state``: their losses are logged per epoch (``val_*``)
        and each snapshot's deterministic reconstruction error on them
        (``val_recon_mse``) is what the automatic selection and the end of the
        annealing compare. Ignored when :meth:`fit` gets ``X_val``.
    count_tolerance : float
        The automatic channel count on held-out positions, used when no count is asked
        for (no ``target_active`` / ``n_active``): t > 0 (the ``fast`` preset: 0.01)
        runs the annealing to ``epochs``; then, for counts k the annealing passed
        through, a relax phase from the latest snapshot with >= k active channels (its k
        strongest kept) is scored on the held-out positions, and the smallest k whose
        held-out MSE is within t x the held-out data variance of the best is relaxed for
        good (:func:`~.selection.count_by_held_out`). The largest count is scored first,
        then the counts from the smallest up until one is within the tolerance
        (:func:`~.selection.search_count`): a few relax phases, not one per candidate.
        With t = 0.01 it gave the true 3 channels on the toy and 4-6 on the PZT map in
        every seed (docs/method.rst). It needs ``relax_epochs`` and held-out positions of
        ``X`` (``validation_fraction``; not ``X_val``): where the preset's value cannot
        run it is 0, and an explicit t > 0 without them is refused. 0: the relax phase
        keeps the channels active when the reconstruction leaves ``r2_tolerance`` (2-3x
        the true count on the toy and a synthetic factor map).
    rotation : {'ica', 'none'}
        ``'ica'`` (default): the active channels of the selected model are mapped to independent
        axes (FastICA of the latent means of the training positions,
        :func:`~.rotation.fit_rotation`), so that each channel follows one independently
        varying mechanism rather than a mixture; the embedding (:meth:`transform`), the
        decoder (:meth:`decode`) and traversals use these axes, reconstructions are
        unchanged and the map is stored with the model. On the toy, the real PZT map and
        a synthetic factor map it raised the seed agreement of the channels (0.91 -> 0.98,
        0.77 -> 0.97, 0.67 -> 0.81) and how much of a factor one channel explains
        (docs/method.rst). ``'none'``: the network's own channels (results written
        before this option existed).
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
    validation_index_ : numpy.ndarray
        Positions of ``X`` held out of the training (empty: none).
    settings_ : Settings
        The parameters the fit ran with (``count_tolerance`` is 0 where the preset's
        automatic count had no held-out positions of ``X``); :meth:`get_config` stores
        these.
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

    #: What every parameter accepts (besides ``preset`` and ``strategy``), in stored order.
    _parameter_constraints = vae_params.PARAMETER_CONSTRAINTS

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
                 beta_growth=None, validation_fraction=None, count_tolerance=None,
                 rotation=None):
        # scikit-learn convention: store every argument as given, check nothing here
        vars(self).update({k: v for k, v in locals().items() if k != "self"})

    # ---- parameters -------------------------------------------------------------------
    @classmethod
    def parameter_names(cls) -> tuple[str, ...]:
        """Names of the training parameters (those stored with a model), in stored order.

        Examples
        --------
        >>> BetaVAE.parameter_names()[:3]
        ('units', 'n_blocks', 'layers_per_block')
        """
        return tuple(cls._parameter_constraints)

    @classmethod
    def parameter_defaults(cls) -> dict:
        """Values of the parameters that no preset needs to set (a copy).

        Examples
        --------
        >>> BetaVAE.parameter_defaults()["target_active"]
        0
        """
        return dict(vae_params.DEFAULTS)

    def settings(self) -> Settings:
        """Every training parameter after applying the preset, checked (a frozen object).

        Examples
        --------
        >>> BetaVAE(preset="fast").settings().units
        32
        """
        runtime.check_strategy(self.strategy)
        values = {name: getattr(self, name) for name in self.parameter_names()}
        return vae_params.settings_from(values, self.preset)

    def resolved_params(self) -> dict:
        """Every training parameter after applying the preset (plain values).

        Numpy scalars are taken as the Python numbers, strings and flags they stand for.

        Examples
        --------
        >>> BetaVAE(epochs=np.int64(3), learning_rate=np.float32(1e-3)).resolved_params()["epochs"]
        3
        """
        return self.settings().to_dict()

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
        s = self.settings()
        snaps = sum(snapshot_due(ep, s) for ep in range(int(s.epochs)))
        if s.relax_epochs:
            snaps += s.relax_epochs // s.step_epochs + 1
        return {"weights": NetworkConfig.from_settings(s, n_steps, n_channels).weight_count(),
                "snapshots": int(snaps), "latent_dim": int(s.latent_dim)}

    def request_active(self, n_active: int | None) -> BetaVAE:
        """Ask for ``n_active`` active channels (None: the automatic choice).

        With a relax phase (``relax_epochs`` > 0) and no ``target_active`` set, the
        request becomes the training's ``target_active``; after training,
        :meth:`select_requested` picks the snapshot. Returns ``self``.

        Raises
        ------
        ParameterError
            ``n_active`` is not None or an integer >= 1 (0 channels cannot be asked for),
            or it exceeds ``latent_dim``.

        Examples
        --------
        >>> BetaVAE(preset="fast").request_active(3).resolved_params()["target_active"]
        3
        """
        n_active = check("n_active", n_active, CHANNEL_REQUEST)
        if n_active is not None and self.target_active is None \
                and self.settings().relax_epochs:
            # a relax phase trains the requested channel count to convergence
            self.set_params(target_active=n_active)
        latent = self.settings().latent_dim  # validates the target against latent_dim
        if n_active is not None and n_active > latent:
            raise ParameterError(
                f"n_active={n_active} exceeds latent_dim={latent}; expected at most latent_dim "
                "active channels (raise latent_dim or ask for fewer)")
        return self

    # ---- training ---------------------------------------------------------------------
    def fit(self, X: np.ndarray, X_val: np.ndarray | None = None, progress: bool = True,
            on_epoch_end: Callable[[int, BetaVAE], None] | None = None,
            initial_state: Mapping | None = None) -> BetaVAE:
        """Train with the regularisation schedule, snapshotting as it goes.

        Each epoch's data order is drawn from ``(random_state, epoch)``, so a run
        resumed from :meth:`training_state` ends in exactly the state of an
        uninterrupted run (on CPU). The epochs between two snapshots go through one
        Keras ``fit`` call (a GPU is not held up by a per-epoch set-up);
        ``on_epoch_end`` is still called after every epoch. The loop itself is
        :func:`pycroscopy_bevae.models.trainer.train`.

        Parameters
        ----------
        X : numpy.ndarray or SpectraSource
            (n, T) or (n, T, C) training spectra (already scaled); a
            :class:`SpectraSource` (n, T, C) is streamed batch by batch (``tf.data``)
            and gives the same batches as the array it stands for.
        X_val : numpy.ndarray, optional
            Validation spectra; their losses are logged as ``val_*``. Without them,
            ``validation_fraction`` of the positions of ``X`` (a split seeded by
            ``random_state``, indices in ``validation_index_``; from a streamed source
            they are read into memory) are held out of the training instead;
            snapshots still hold the latent means of every position of ``X``.
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
        runtime.tensorflow()
        import keras

        from .vae_network import compiled_model

        s = self.settings()
        streamed = isinstance(X, SpectraSource)
        X = check_source(X) if streamed else as_3d(X, "X")
        val, train_index, self.validation_index_ = held_out_positions(
            X, X_val, s.validation_fraction, int(s.random_state))
        if s.count_tolerance and not self.validation_index_.size:
            if self.count_tolerance is not None:
                raise ParameterError(f"count_tolerance={s.count_tolerance} needs held-out "
                                     "positions of X; expected X without X_val and enough "
                                     "positions for validation_fraction to hold one out")
            # the preset's automatic count needs held-out positions of X: without them
            # the r2_tolerance end of the annealing, as with count_tolerance=0
            logger.info("no held-out positions of X (X_val given or too few positions): "
                        "the automatic count on held-out positions is off")
            s = dataclasses.replace(s, count_tolerance=0.0)
        self.settings_ = s
        strategy = resolve_strategy(self.strategy)
        keras.utils.set_random_seed(int(s.random_state))
        cfg = NetworkConfig.from_settings(s, X.shape[1], X.shape[2])
        model = compiled_model(cfg, int(s.random_state), s.precision, s.learning_rate,
                               X.take(np.arange(1)) if streamed else X[:1], strategy)
        self.model_, self.config_ = model, cfg
        self.n_replicas_ = 1 if strategy is None else int(strategy.num_replicas_in_sync)
        self.input_shape_ = X.shape[1:]
        self.n_features_in_ = X.shape[1] * X.shape[2]
        return train(self, X, val, s, self._run, progress=progress, on_epoch_end=on_epoch_end,
                     initial_state=initial_state,
                     train_index=train_index)

    # ---- inference --------------------------------------------------------------------
    def _run(self, part: str, X: np.ndarray, batch_size: int = 1024) -> list[np.ndarray]:
        """Apply the encoder or decoder in batches (:func:`~.runtime.run_network`)."""
        return runtime.run_network(self.model_, part, X, self.__dict__.setdefault("_compiled", {}),
                           batch_size)

    def lstm_implementation(self) -> str:
        """Which LSTM kernel the training pass runs on this machine, read from the graph:
        ``'cudnn'`` (the fused GPU kernel), ``'generic'`` (a step-by-step loop: CPU, or a
        setting cuDNN does not support) or ``'mixed'`` (:func:`.runtime.lstm_kernel`)."""
        self._check_fitted()
        return runtime.lstm_kernel(self.model_, self.config_)

    def encode(self, X: np.ndarray, batch_size: int = 1024) -> tuple[np.ndarray, np.ndarray]:
        """Latent means and log-variances, (n, latent_dim) each."""
        self._check_fitted()
        X = self._check_input(X)
        mu, logvar, _ = self._run("encoder", X, batch_size)
        return np.asarray(mu, float), np.asarray(logvar, float)

    def transform(self, X: np.ndarray) -> np.ndarray:
        """The embedding, (n, latent_dim): the latent means, in the independent axes of
        the active channels with ``rotation='ica'`` (:meth:`rotate`)."""
        return self.rotate(self.encode(X)[0])

    def rotate(self, mu: np.ndarray) -> np.ndarray:
        """Latent means (:meth:`encode`) -> the embedding's coordinates: the active
        channels mapped to their independent axes with ``rotation='ica'``
        (:class:`~.rotation.LatentRotation`, undone by :meth:`decode`), else unchanged."""
        rot = getattr(self, "rotation_", None)
        return np.asarray(mu, float) if rot is None else rot.forward(mu)

    def decode(self, Z: np.ndarray, batch_size: int = 1024) -> np.ndarray:
        """Spectra generated from embedding coordinates (:meth:`transform`), always (n,
        steps, channels); the inactive channels of the selected model
        (:meth:`channel_mask`) are set to 0."""
        self._check_fitted()
        Z = np.asarray(Z, dtype="float32")
        if Z.ndim != 2 or Z.shape[1] != self.config_.latent_dim:
            raise ParameterError(f"Z must be (n, {self.config_.latent_dim}), got {Z.shape}")
        rot = getattr(self, "rotation_", None)
        if rot is not None:  # back from the independent axes to the latent means
            Z = rot.inverse(Z).astype("float32")
        # inactive (masked) channels do not reach the decoder: k channels mean k channels
        Z = Z * self.channel_mask()
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
    # ---- persistence (plain arrays + JSON; no pickle, no code) -----------------------------
    def get_config(self) -> dict:
        """JSON-serialisable description: resolved parameters and network sizes."""
        self._check_fitted()
        variance = getattr(self, "data_variance_", None)
        fitted = getattr(self, "settings_", None)  # what the fit ran with
        params = self.resolved_params() if fitted is None else fitted.to_dict()
        return {"params": params, "network": self.config_.to_dict(),
                "input_shape": list(self.input_shape_),
                "data_variance": None if variance is None else float(variance),
                "relax": relax_record(self),
                "rotation": None if getattr(self, "rotation_", None) is None
                else self.rotation_.to_dict()}

    def training_state(self) -> dict:
        """Everything needed to continue training: epoch, weights, optimiser, history, snapshots."""
        self._check_fitted()
        return training_state(self)

    @classmethod
    def from_config(cls, config: Mapping, weights: Mapping) -> BetaVAE:
        """Rebuild a trained model from :meth:`get_config` and weight arrays."""
        from .vae_network import compiled_model

        params = dict(config["params"])
        obj = cls(preset=None, **params)
        obj.resolved_params()  # validates the stored values
        cfg = NetworkConfig(**config["network"])
        model = compiled_model(cfg, int(params["random_state"]), "float32",
                               params["learning_rate"],
                               np.zeros((1, cfg.n_steps, cfg.n_channels), "float32"))
        model.set_weight_arrays(weights)
        obj.model_, obj.config_ = model, cfg
        obj.input_shape_ = tuple(config["input_shape"])
        obj.n_features_in_ = int(np.prod(obj.input_shape_))
        variance = config.get("data_variance")
        obj.data_variance_ = None if variance is None else float(variance)
        set_relax(obj, config.get("relax"))
        obj.rotation_ = LatentRotation.from_dict(config.get("rotation"))
        obj.history_, obj.snapshots_, obj.selected_ = {}, [], -1
        return obj

    def config_json(self) -> str:
        """:meth:`get_config` as a JSON string."""
        return json.dumps(self.get_config())

    # ---- helpers -----------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise NotFittedError("this BetaVAE is not fitted yet: call fit() first")

    def _check_input(self, X: np.ndarray) -> np.ndarray:
        X3 = as_3d(X, "X")
        if X3.shape[1:] != tuple(self.input_shape_):
            raise ParameterError(f"X has (steps, channels) = {X3.shape[1:]}, the model was "
                                 f"trained on {tuple(self.input_shape_)}")
        return X3
