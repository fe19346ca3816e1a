"""``BetaVAEProcess``: train the LSTM beta-VAE on loops and write everything to HDF5."""

from __future__ import annotations

import logging
import time
import warnings

import h5py
import numpy as np

from ..exceptions import BEPSFormatError, DataQualityWarning, ParameterError
from ..io.loop_sources import LoopSources
from ..io.usid import linked_ancillaries, make_dims, write_attrs, write_main
from ..models.runtime import runtime_info
from ..models.selection import COUNT_SEARCH
from ..models.trainer import IncompatibleStateError, fit_summary
from ..models.vae import CHANNEL_REQUEST, BetaVAE
from ..parallel import active_pool, vae_inferrer
from ..params import Choice, Either, Flag, Integer, Literal
from ..preprocessing import LoopScaler, MultiScaler
from ..store import (
    load_beta_vae,
    resumable_state,
    write_beta_vae,
    write_checkpoint,
    write_snapshot,
)
from .base import PROCESS_KEYWORDS, GlobalFitProcess, accepts_sidpy, clear_group
from .streaming import ScaledLoops, scaled_input, training_input

__all__ = ["BetaVAEProcess", "load_beta_vae"]

logger = logging.getLogger(__name__)

#: ``stream='auto'`` streams the training data from the file above this size (float32 MB
#: of positions x steps x modalities; 256 x 256 positions of 96 x 2 steps take 48 MB). In
#: memory, the process holds ~3x this (float64 + float32 copies) next to TensorFlow's
#: ~1.5 GB (import + training activations of a fast-preset batch).
_STREAM_ABOVE_MB = 64
#: Positions read, encoded, decoded and written at a time for the results (a multiple of
#: the inference batch, 1024, so every spectrum meets the batch it meets in one pass).
_RESULT_BLOCK = 16 * 1024
#: BetaVAE parameters added later: left out of the duplicate check at the value that trains
#: as before they existed, their default but for held-out positions (issue 22: results
#: written before trained on every position, so a run at the default 0.1 is not theirs)
#: and the rotation (written before in the network's own channels).
_LATER_PARAMS = ("precision", "round_updates", "schedule", "capacity_start", "capacity_step",
                 "target_active", "relax_epochs", "relax_beta", "relax_lr", "linear_path",
                 "beta_growth", "r2_tolerance", "count_tolerance", "validation_fraction",
                 "rotation")


class BetaVAEProcess(GlobalFitProcess):
    """Train an LSTM beta-VAE on (multi-modal) loops, as a ``pyUSID.processing.Process``.

    The selected loops of every modality are scaled and stacked as channels of one
    sequence (positions x steps x modalities; piezoresponse and resonance give
    ``(96, 2)``), a :class:`~pycroscopy_bevae.models.BetaVAE` is trained with the
    regularisation schedule, the snapshot with the requested number of active latent
    channels is selected, and the results are written to
    ``<first source>-Beta_VAE_NNN``:

    ========================  ==========================================================
    ``Embedding``             positions x latent: latent means of the selected model
    ``Log_Variance``          positions x latent
    ``Reconstruction``        positions x (modality, step), scaled units
    ``Reconstruction_Error``  positions x 1, mean squared error (scaled units)
    ``Training_History``      epoch x (loss, mse, l1, kl, beta, lambda, ..., ``val_*``:
                              the same losses on the held-out positions)
    ``Embedding_Snapshots``   snapshot x positions x latent (epochs, betas in attributes)
    ``Scaler_Mean/Std``       modality x step
    ``Model/``                JSON config, selected weights, every snapshot's weights
    ========================  ==========================================================

    Training checkpoints (weights, optimiser state, epoch, schedule position) are saved
    to ``Checkpoint/`` every ``checkpoint_every`` epochs; an interrupted run continued
    with the same parameters picks up where it stopped and ends in the same state as an
    uninterrupted one (CPU). Nothing is unpickled or executed when loading.

    Parameters
    ----------
    h5_main : h5py.Dataset, sequence of h5py.Dataset, h5py.Group, or sidpy.Dataset(s)
        Loop dataset(s) (e.g. a ``Fit-Loop_Projection_NNN`` group: Piezoresponse + Resonance).
        All modalities need the same number of steps. ``sidpy.Dataset`` loops are
        written as USID into ``h5_target_group`` (required then) first, as for
        :class:`~pycroscopy_bevae.DictionaryLearningProcess`.
    cycle, field : see :class:`~pycroscopy_bevae.DictionaryLearningProcess`
    scaling : {'global', 'step', 'balanced', 'none'}
        Scaling of each modality (see :class:`~pycroscopy_bevae.preprocessing.LoopScaler`;
        ``'balanced'`` weighs each modality by its own spread about the mean loop).
    preset : {'fast', 'paper'}
        Model and schedule defaults (see :data:`pycroscopy_bevae.models.vae.PRESETS`).
    n_active : int (>= 1), optional
        Select the latest snapshot with this many active channels (closest count if none
        matches exactly); default the automatic count (the ``fast`` preset: on held-out
        positions, ``count_tolerance`` of :class:`~pycroscopy_bevae.models.BetaVAE`;
        the ``paper`` preset: the rule of :meth:`BetaVAE.select`). With a
        relax phase (``relax_epochs`` > 0, the ``fast`` preset) it is also the
        ``target_active`` of the training, unless that is given.
    checkpoint_every : int
        Epochs between training checkpoints (and at every snapshot).
    progress : bool
        tqdm progress bar.
    stream : bool or 'auto'
        Read the training batches from the file (``tf.data``) instead of holding the
        scaled loops in memory; snapshots and results are then computed block by block
        too, so memory does not grow with the map beyond the latent maps. ``'auto'``
        (default) streams when the loops would take more than 64 MB as float32
        (more than about 87,000 positions of 96 x 2 steps; a 256 x 256 map stays in
        memory). Streaming fits the scaler in two
        passes over the file and feeds float32 loops, so its results equal the
        in-memory ones to float32 precision (not bit for bit); a streamed run is
        recorded (``stream`` attribute) and resumes exactly like an in-memory one.
    strategy : None, {'mirrored', 'multiworker'} or tf.distribute.Strategy
        Train under a ``tf.distribute`` strategy (several GPUs; see
        :class:`~pycroscopy_bevae.models.BetaVAE`). Recorded as the ``strategy``
        attribute; such a run is not a duplicate of a single-device one.
    validation_fraction : float, via kwargs
        Share of positions held out of the training (default 0.1, seeded; 0: none): their
        losses are logged per epoch and select the snapshot; ``Embedding`` and
        ``Reconstruction`` still cover every position (``n_validation_positions``).
    **kwargs
        Any :class:`~pycroscopy_bevae.models.BetaVAE` parameter (``epochs``, ``units``,
        ``beta_step``, ``random_state``...) and ``pyUSID.processing.Process`` options
        (``h5_target_group``, ``verbose``).

    Examples
    --------
    A tiny network for a few epochs (real runs use the presets' sizes and schedules):

    >>> import tempfile, os, h5py
    >>> from pycroscopy_bevae import LoopProjector, write_synthetic_beps
    >>> path = write_synthetic_beps(os.path.join(tempfile.mkdtemp(), "s.h5"), shape=(6, 6))
    >>> with h5py.File(path, "r+") as f:
    ...     proj = LoopProjector(f, progress=False).compute()
    ...     grp = BetaVAEProcess(proj, units=4, embedding_dim=4, latent_dim=3, epochs=3,
    ...                          prime_epochs=2, step_epochs=1, beta_start=0.01,
    ...                          round_updates=0, relax_epochs=0, progress=False).compute()
    ...     print(grp["Embedding"].shape, grp["Reconstruction"].shape)
    (36, 3) (36, 192)
    """

    result_names = ("Embedding", "Log_Variance", "Reconstruction", "Reconstruction_Error")
    #: What the process's own parameters accept (the BetaVAE's are the estimator's).
    _parameter_constraints = {
        "scaling": Choice(LoopScaler.MODES),
        "n_active": CHANNEL_REQUEST,
        "checkpoint_every": Integer(low=1),
        "stream": Either((Flag(), Literal("auto"))),
        "progress": Flag(),
    }

    @accepts_sidpy
    def __init__(self, h5_main, *, cycle: int | None = None, field: str = "off",
                 scaling: str = "global", preset: str = "fast", n_active: int | None = None,
                 checkpoint_every: int = 10, progress: bool = True,
                 stream: bool | str = "auto", strategy=None, **kwargs) -> None:
        proc_kwargs = {k: kwargs.pop(k) for k in list(kwargs) if k in PROCESS_KEYWORDS}
        names = BetaVAE.parameter_names()
        unknown = [k for k in kwargs if k not in names]
        if unknown:
            raise ParameterError(f"unknown parameter(s) {unknown}; BetaVAE parameters are "
                                 f"{list(names)}")
        self.sources = LoopSources.from_input(h5_main, cycle=cycle, field=field)
        if len(set(self.sources.steps)) != 1:
            raise BEPSFormatError(
                f"modalities {self.sources.names} have {self.sources.steps} steps; channel "
                "stacking for the beta-VAE needs the same number of steps in each")
        n_pos = self.sources.datasets[0].shape[0]
        if n_pos < 2:
            raise ParameterError(
                f"dataset '{self.sources.datasets[0].name}' in file "
                f"'{self.sources.datasets[0].file.filename}' has {n_pos} position; the beta-VAE "
                "needs at least 2 positions to learn from")
        own = self._check_parameters(dict(scaling=scaling, n_active=n_active, stream=stream,
                                          checkpoint_every=checkpoint_every, progress=progress))
        scaling, n_active, checkpoint_every, stream = (own[k] for k in (
            "scaling", "n_active", "checkpoint_every", "stream"))
        # validates every parameter before any write; the estimator owns the request
        self.vae = BetaVAE(preset=preset, strategy=strategy, **kwargs).request_active(n_active)
        resolved = self.vae.resolved_params()
        self.scaling = scaling
        self.n_active = n_active
        self.checkpoint_every = checkpoint_every
        self.progress = own["progress"]
        if stream == "auto":
            size_mb = n_pos * sum(self.sources.steps) * 4 / 2**20
            stream = size_mb > _STREAM_ABOVE_MB
        self.stream = stream
        parms = self.sources.parms()
        parms.update({"scaling": scaling, "preset": str(preset), "stacking": "channels"})
        parms.update(resolved)
        before = {**BetaVAE.parameter_defaults(), "validation_fraction": 0.0,
                  "rotation": "none"}
        self._left_out = {}
        for key in _LATER_PARAMS:  # at values training as before they existed: same duplicates
            if parms[key] == before[key]:
                self._left_out[key] = parms.pop(key)
        if strategy is not None:  # a replicated run draws other noise: not a duplicate
            parms["strategy"] = strategy if isinstance(strategy, str) else \
                type(strategy).__name__
        if self.stream:  # in-memory runs keep the parameters (and duplicates) they had
            parms["stream"] = True
            if resolved["validation_fraction"] > 0:  # streamed runs held nothing out before
                parms["stream_held_out"] = True
        if resolved["count_tolerance"] > 0:  # the count from a search of the candidates
            # (scores fewer relax phases than the exhaustive rule of the first version)
            parms["count_search"] = COUNT_SEARCH
        if n_active is not None:  # picks the snapshot on every route: changes the result
            parms["n_active"] = n_active
        self._init_process(self.sources.datasets[0], "Beta_VAE", parms, **proc_kwargs)

    def _check_for_duplicates(self) -> tuple[list, list]:
        """pyUSID's check, plus: streamed and in-memory results are not each other's
        duplicates (nor resumed by each other; groups without a ``stream`` attribute are
        in-memory ones), and a parameter added later that this run leaves out (at the
        value that trains as before it existed) must be absent or at that value in the
        group (pyUSID matches only the parameters a run records)."""
        dups, partial = super()._check_for_duplicates()

        def same(grp: h5py.Group) -> bool:
            later = all(grp.attrs.get(k, v) == v for k, v in self._left_out.items())
            return later and bool(grp.attrs.get("stream", False)) == self.stream

        return [g for g in dups if same(g)], [g for g in partial if same(g)]

    def _result_bytes(self) -> int:
        n, steps, n_mod = self.h5_main.shape[0], self.sources.steps[0], len(self.sources.names)
        est = self.vae.storage_estimate(n, steps, n_mod)
        w, s, lat = est["weights"] * 4, est["snapshots"], est["latent_dim"]
        epochs = int(self.vae.resolved_params()["epochs"])
        results = n * (2 * lat + n_mod * steps + 1 + n_mod) * 8
        snapshots = s * (w + 3 * n * lat * 4)  # Model/Snapshots (weights, mu, logvar) + maps
        checkpoints = 2 * (3 * w + epochs * 10 * 8)  # Checkpoint and Checkpoint_new (Adam)
        return results + snapshots + checkpoints + w

    def _test(self, positions: np.ndarray, epochs: int = 2) -> dict:
        """Train briefly (``epochs``) on the given positions (default 200 at random).

        Returns
        -------
        dict
            ``positions``, ``embedding``, ``reconstruction`` (scaled), ``mse`` per position,
            ``history`` and the fitted ``model``.
        """
        from sklearn.base import clone

        X, _ = scaled_input(self.sources, self.scaling, positions)
        vae = clone(self.vae).set_params(epochs=epochs)
        vae.fit(X, progress=self.progress)
        recon = vae.reconstruct(X)
        return {"positions": positions, "embedding": vae.transform(X), "reconstruction": recon,
                "mse": np.mean((recon - X) ** 2, axis=(1, 2)), "history": vae.history_,
                "model": vae}

    # ---- compute -----------------------------------------------------------------------
    def _fit_and_write(self) -> None:
        X, scaler = training_input(self.sources, self.scaling, self.stream)
        grp = self._open_results_group(clear=False)
        state = resumable_state(grp)
        if state is not None:
            logger.info("resuming beta-VAE training at epoch %d from %s", state["epoch"],
                        grp.name)
        else:  # a partial group without a usable checkpoint
            clear_group(grp, keep=(self._status_dset_name,))
        saved = {"n": len(state["snapshots"]) if state else 0}

        def checkpoint(epoch: int, est: BetaVAE) -> None:
            new_snaps = est.snapshots_[saved["n"]:]
            for i, snap in enumerate(new_snaps, start=saved["n"]):
                write_snapshot(grp, i, snap)
            saved["n"] = len(est.snapshots_)
            if new_snaps or (epoch + 1) % self.checkpoint_every == 0:
                write_checkpoint(grp, est)
            self._after_epoch(epoch, est)

        vae = self.vae
        try:
            vae.fit(X, progress=self.progress, on_epoch_end=checkpoint, initial_state=state)
        except IncompatibleStateError as exc:  # stored state does not fit this model: start afresh
            warnings.warn(f"checkpoint in results group '{grp.name}' in file "
                          f"'{grp.file.filename}' cannot be resumed ({exc}); training "
                          "restarts from epoch 0", DataQualityWarning, stacklevel=2)
            clear_group(grp, keep=(self._status_dset_name,))
            saved["n"] = 0
            vae.fit(X, progress=self.progress, on_epoch_end=checkpoint)
        vae.select_requested(self.n_active)
        self._write_results(grp, vae, scaler, X)
        if "Checkpoint" in grp:
            del grp["Checkpoint"]

    def _after_epoch(self, epoch: int, est: BetaVAE) -> None:
        """Hook called after each epoch's checkpointing (subclasses: monitoring, tests)."""

    def _write_results(self, grp: h5py.Group, vae: BetaVAE, scaler: MultiScaler,
                       X: np.ndarray) -> None:
        src = self.sources
        # results of an earlier attempt that stopped while writing them
        clear_group(grp, keep=(self._status_dset_name, "Checkpoint", "Model"))
        if "Model" in grp:
            clear_group(grp["Model"], keep=("Snapshots",))
        # inference in blocks of positions, each written as it is done
        n, n_mod = len(X), len(src.names)
        n_lat = vae.config_.latent_dim
        pos, _ = linked_ancillaries(grp, src.datasets[0], spec=False)
        latent = make_dims([("Latent", "", np.arange(n_lat))])
        emb = write_main(grp, (n, n_lat), "Embedding", "Latent mean", "a.u.", pos, latent,
                         dtype=np.float64)
        lat = {"inds": grp.file[emb.attrs["Spectroscopic_Indices"]],
               "vals": grp.file[emb.attrs["Spectroscopic_Values"]]}
        h_logvar = write_main(grp, (n, n_lat), "Log_Variance", "Latent log-variance", "a.u.",
                              pos, lat, dtype=np.float64)
        h_recon = write_main(grp, (n, n_mod * src.steps[0]), "Reconstruction", "Reconstruction",
                             "scaled", pos, src.feature_dims(), aux_spec_prefix="Feature_",
                             dtype=np.float64)
        err = np.empty(n)
        mod_err = np.empty((n, n_mod))  # per position and modality
        t_infer = 0.0
        infer = vae_inferrer(vae)
        for a in range(0, n, _RESULT_BLOCK):
            b = min(a + _RESULT_BLOCK, n)
            # errors against the float64 scaled loops, as in memory
            xb = X.take(np.arange(a, b), np.float64) if isinstance(X, ScaledLoops) else X[a:b]
            t0 = time.perf_counter()
            mu, logvar, recon = infer(xb)
            t_infer += time.perf_counter() - t0
            sq = (recon - xb) ** 2
            err[a:b] = sq.mean(axis=(1, 2))
            mod_err[a:b] = sq.mean(axis=1)
            emb[a:b] = mu
            h_logvar[a:b] = logvar
            h_recon[a:b] = np.moveaxis(recon, 2, 1).reshape(b - a, -1)  # modality-major
        self._write_shared_results(grp, pos, err, scaler.scalers_)
        write_beta_vae(grp, vae)
        per_mod = {f"mse_{name}": float(mod_err[:, i].mean()) for i, name in enumerate(src.names)}
        fit = fit_summary(vae)  # what the estimator ran and chose
        write_attrs(grp, {
            "mse": float(err.mean()), **per_mod, **fit, "inference_time_s": float(t_infer),
            "inference_ranks": getattr(active_pool(), "size", 1), "modality_names": src.names,
            "selection_request": "auto" if self.n_active is None else int(self.n_active),
            # what TensorFlow ran with (determinism, thread pools, oneDNN, versions)
            **{f"runtime_{k}": v for k, v in runtime_info().items()},
        })
        logger.info("beta-VAE: MSE %.4f, %d active channels (snapshot %d, epoch %d, beta %.4g)",
                    err.mean(), fit["n_active_channels"], vae.selected_, fit["selected_epoch"],
                    fit["selected_beta"])

    # ---- re-using a trained model ------------------------------------------------------
    def reselect(self, n_active: int | None = None, snapshot: int | None = None) -> dict:
        """Apply another snapshot of the trained model to the data (nothing is written).

        Returns
        -------
        dict
            ``embedding``, ``log_variance``, ``reconstruction`` (scaled, positions x steps x
            modalities), ``mse`` per position, ``snapshot`` index.
        """
        if self.h5_results_grp is None:
            raise ParameterError("no results yet: call compute() first")
        vae, _ = load_beta_vae(self.h5_results_grp, n_active=n_active, snapshot=snapshot)
        X, _ = scaled_input(self.sources, self.scaling)
        mu, logvar, recon = vae_inferrer(vae)(X)
        return {"embedding": mu, "log_variance": logvar, "reconstruction": recon,
                "mse": np.mean((recon - X) ** 2, axis=(1, 2)), "snapshot": vae.selected_}
