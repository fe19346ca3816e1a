"""Training of a :class:`~pycroscopy_bevae.models.BetaVAE`: the loop, the epoch
bookkeeping, divergence handling, snapshots, the relax phase and the training state.

The estimator validates its parameters and builds the network; :func:`train` then runs
the schedule on it and sets its fitted attributes (``history_``, ``snapshots_``,
``relax_``...). Each epoch's data order is drawn from ``(random_state, epoch)``, so a run
resumed from :func:`training_state` ends in exactly the state of an uninterrupted one (on
CPU).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping

import numpy as np

from ..exceptions import ParameterError, TrainingDivergedError
from .schedule import CapacitySchedule, RelaxSchedule, Schedule, ScheduleValues, StepSchedule
from .selection import (
    Snapshot,
    choose_snapshot,
    recon_mse,
    search_count,
    snapshot_due,
    within_tolerance,
)
from .vae_data import STREAM_BLOCK, InMemory, SpectraSource, Subset, batches, mean_variance

__all__ = ["IncompatibleStateError", "Trainer", "fit_summary", "restore_state", "set_relax",
           "relax_record", "train", "training_state"]

logger = logging.getLogger(__name__)

#: The per-epoch series every history starts with (Keras adds ``val_*`` with validation).
HISTORY_KEYS = ("loss", "mse", "l1", "kl", "beta", "lambda", "capacity", "lr_scale")


class IncompatibleStateError(ParameterError):
    """A training state given to :meth:`BetaVAE.fit` does not fit the model being trained."""


def train(est, X: np.ndarray | SpectraSource, val, s, run: Callable, progress: bool = True,
          on_epoch_end: Callable | None = None, initial_state: Mapping | None = None,
          train_index: np.ndarray | None = None):
    """Train ``est`` (its network built, ``model_`` set) with settings ``s``; returns ``est``.

    ``X`` is the checked (n, steps, channels) array or source, ``val`` None or the
    Keras validation data, ``run(part, X)`` applies the encoder or decoder (inference),
    ``train_index`` the positions of ``X`` trained on (None: all; the others
    are held out: snapshots hold every position and their ``val_recon_mse``); see
    :meth:`~pycroscopy_bevae.models.BetaVAE.fit`.
    """
    est.history_ = {k: [] for k in HISTORY_KEYS}
    est.snapshots_ = []
    est.beta_start_ = None if s.beta_start == "auto" else float(s.beta_start)
    est.relax_ = None
    start = 0
    if initial_state is not None:
        try:
            start = restore_state(est, initial_state)
        except (KeyError, ValueError, TypeError) as exc:
            raise IncompatibleStateError(f"initial_state does not fit this model: {exc}"
                                         ) from exc
    return Trainer(est, X, s, run, on_epoch_end, train_index).run(start, val, progress)


class Trainer:
    """The schedule of one training run on an estimator (see :func:`train`)."""

    def __init__(self, est, X: np.ndarray | SpectraSource, s, run: Callable,
                 on_epoch_end: Callable | None = None, train_index: np.ndarray | None = None):
        self.est, self.X, self.s, self.infer, self.on_epoch_end = est, X, s, run, on_epoch_end
        self.train_index = train_index
        self.bar = None

    def run(self, start: int, val, progress: bool):
        """Train from epoch ``start`` to the end of the schedule (incl. any relax phase)."""
        import keras

        from .vae_network import ScheduleCallback

        est, s, X = self.est, self.s, self.X
        if progress:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=s.epochs + s.relax_epochs, initial=start, desc="beta-VAE",
                            unit="epoch", leave=False)
        t0 = time.perf_counter()
        if self.train_index is None:
            src = X if isinstance(X, SpectraSource) else InMemory(X)
        else:
            src = Subset(X, self.train_index) if isinstance(X, SpectraSource) else \
                InMemory(X[self.train_index])
        self.held_out_rows = None if val is None else val[0]
        est.data_variance_ = mean_variance(src)
        per_epoch = int(s.round_updates) or -(-len(src) // int(s.batch_size))
        est.updates_per_epoch_ = per_epoch
        applied: dict[int, ScheduleValues] = {}
        schedule_cb = ScheduleCallback(self.values, s.learning_rate,
                                       on_values=lambda e, v: applied.__setitem__(e, v))
        epoch_done = keras.callbacks.LambdaCallback(
            on_epoch_end=lambda e, logs: self.epoch_done(e, applied.pop(e), logs or {}))
        self.fit_args = (src, per_epoch, val, [schedule_cb, epoch_done])
        est.count_candidates_, est.count_held_out_mse_, est.count_held_out_curves_ = [], [], []
        try:
            self.fit_epochs(start)
        finally:
            if self.bar is not None:
                self.bar.close()
        est.fit_time_ = time.perf_counter() - t0
        if est.snapshots_:  # the last snapshot, its inactive channels masked
            est.use_snapshot(len(est.snapshots_) - 1)
        else:
            est.selected_ = -1
        return est

    def fit_epochs(self, epoch: int) -> None:
        """Train from ``epoch`` to the end (:meth:`last_epoch`), starting the relax phase
        when the annealing is over."""
        est, s = self.est, self.s
        src, per_epoch, val, callbacks = self.fit_args
        if s.relax_epochs and est.relax_ is None:
            # a run resumed where the annealing ended (the automatic count writes no
            # checkpoints while it tries its candidates) decides on the relax phase now
            self.maybe_relax(epoch)
        while epoch < self.last_epoch():
            # one model.fit call per run of epochs that ends at the next snapshot: Keras'
            # per-call set-up is paid per run, not per epoch (it dominates short epochs
            # on a GPU); the batches and results are those of one call per epoch
            end = self.run_end(epoch)
            # batches through tf.data for arrays too: the same batches as
            # model.fit(X[order]), without Keras' per-epoch tensor copies of X
            est.model_.fit(batches(src, int(s.random_state), epoch * per_epoch,
                                   (end - epoch) * per_epoch, int(s.batch_size)),
                           initial_epoch=epoch, epochs=end, steps_per_epoch=per_epoch,
                           shuffle=False, verbose=0, validation_data=val, callbacks=callbacks)
            epoch = end
            if s.relax_epochs and est.relax_ is None:
                self.maybe_relax(epoch)

    # ---- the schedule ------------------------------------------------------------------
    def anneal_schedule(self) -> Schedule:
        """The schedule before any relax phase (``beta_start`` resolved)."""
        est, s = self.est, self.s
        if est.beta_start_ is None:
            # 'auto': from the training losses of the last primed epoch, so that the KL term
            # is kl_fraction of the loss when it switches on
            h, f = est.history_, s.kl_fraction
            if not h["mse"]:
                raise ParameterError("beta_start='auto' needs prime_epochs >= 1")
            est.beta_start_ = float(f * h["mse"][-1] / ((1 - f) * max(h["kl"][-1], 1e-12)))
            logger.info("auto beta_start = %.4g (KL = %.0f%% of the loss)", est.beta_start_,
                        100 * f)
        if s.schedule == "capacity":
            return CapacitySchedule(s.prime_epochs, est.beta_start_, s.capacity_start,
                                    s.capacity_step, s.step_epochs, s.lambda0)
        return StepSchedule(s.prime_epochs, est.beta_start_, s.beta_step, s.step_epochs,
                            s.lambda0, s.lambda_mode, s.lambda_step, s.beta_growth)

    def values(self, epoch: int) -> ScheduleValues:
        """Schedule values of ``epoch`` (applied by the ScheduleCallback)."""
        relax = self.est.relax_
        if relax is not None and epoch >= relax.start:
            return relax.values(epoch)
        if epoch < self.s.prime_epochs:
            return ScheduleValues(0.0, 0.0, phase="prime")
        return self.anneal_schedule().values(epoch)

    def last_epoch(self) -> int:
        """One past the last epoch of training (known once the relax phase has begun)."""
        relax = self.est.relax_
        return relax.end if relax is not None else int(self.s.epochs)

    def run_end(self, epoch: int) -> int:
        """One past the last epoch of the run that starts at ``epoch``: the run stops after
        the next snapshot epoch (schedule steps end with one) or at the end."""
        last = self.last_epoch()
        end = epoch
        while end < last and not snapshot_due(end, self.s, self.est.relax_):
            end += 1
        return min(end + 1, last)

    def maybe_relax(self, epoch: int) -> None:
        """After a run that ended with a snapshot at ``epoch - 1``: start the relax phase
        when the annealing is over (see ``relax_epochs``)."""
        est, s = self.est, self.s
        snaps = est.snapshots_
        if not snaps or epoch <= s.prime_epochs or snaps[-1].epoch != epoch - 1:
            return
        last = len(snaps) - 1
        keep = None
        want = s.target_active
        if not want and s.count_tolerance:
            if epoch < s.epochs:  # the count rule needs the whole annealing
                return
            want = self.held_out_count(epoch)
        if want:
            if snaps[-1].n_active(s.kl_threshold) > want and epoch < s.epochs:
                return
            # the last snapshot with at least the wanted channels; its strongest ones
            idx, keep = self.strongest(want)
        else:
            within = within_tolerance(snaps, s, est.data_variance_)
            if within and within[-1] == last and epoch < s.epochs:
                return
            idx = choose_snapshot(snaps, s, est.data_variance_, fallback=last)
            keep = snaps[idx].active(s.kl_threshold)
        self.start_relax(epoch, idx, keep)

    def strongest(self, k: int) -> tuple[int, np.ndarray]:
        """The latest snapshot with at least ``k`` active channels (else the last) and its
        ``k`` strongest channels by KL (fewer when it has fewer active)."""
        snaps, s = self.est.snapshots_, self.s
        idx = choose_snapshot(snaps, s, self.est.data_variance_, k, at_least=True)
        count = snaps[idx].n_active(s.kl_threshold)
        return idx, np.sort(np.argsort(snaps[idx].channel_kl())[::-1][:min(k, count)])

    def held_out_count(self, epoch: int) -> int:
        """The automatic channel count (``count_tolerance``): relax phases at counts the
        annealing passed through, scored on the held-out positions, the largest count
        first and then from the smallest up until one is within the tolerance
        (:func:`~.selection.search_count`); the training state is restored after each.
        Records the scored ``count_candidates_``, their ``count_held_out_mse_`` and
        ``count_held_out_curves_`` (the held-out MSE after every relax round) on the
        estimator."""
        est, s = self.est, self.s
        counts = sorted({x.n_active(s.kl_threshold) for x in est.snapshots_ if x.beta > 0}
                        - {0}) or [max(1, est.snapshots_[-1].n_active(s.kl_threshold))]
        variance = mean_variance(InMemory(self.held_out_rows))
        curves: dict[int, list[float]] = {}

        def score(c: int) -> float:
            value, curves[c] = self.relax_score(epoch, c)
            return value

        k, scored, scores = search_count(counts, score, variance, s.count_tolerance)
        est.count_candidates_, est.count_held_out_mse_ = scored, scores
        est.count_held_out_curves_ = [curves[c] for c in scored]
        logger.info("held-out MSE after relax at counts %s (of %s): %s; %d channels "
                    "(tolerance %g of the held-out variance %.4g)", scored, counts,
                    [round(x, 5) for x in scores], k, s.count_tolerance, variance)
        return k

    def relax_score(self, epoch: int, k: int) -> tuple[float, list[float]]:
        """Held-out reconstruction MSE after a relax phase at ``k`` channels from
        ``epoch``, and the held-out MSE after each of its rounds (Keras' ``val_mse``: what
        a shorter relax phase would have scored, to within its learning-rate schedule);
        the model, optimiser, noise state, history and snapshots are then put back as they
        were (no checkpoints are written meanwhile)."""
        est = self.est
        model, opt = est.model_, est.model_.optimizer
        lengths = {key: len(v) for key, v in est.history_.items()}
        saved = (model.get_weight_arrays(), [np.asarray(v.numpy()) for v in opt.variables],
                 np.asarray(model.seed_gen.state.numpy()), len(est.snapshots_))
        callback, self.on_epoch_end = self.on_epoch_end, None
        try:
            self.start_relax(epoch, *self.strongest(k))
            self.fit_epochs(epoch)
            score = recon_mse(est.snapshots_[-1])
            curve = [float(x) for x in est.history_.get("val_mse", [])[lengths.get("val_mse", 0):]]
        finally:
            self.on_epoch_end = callback
            weights, opt_values, seed_state, n_snaps = saved
            model.set_weight_arrays(weights)
            for var, value in zip(opt.variables, opt_values, strict=True):
                var.assign(value)
            model.seed_gen.state.assign(seed_state)
            est.history_ = {key: v[:lengths.get(key, 0)] for key, v in est.history_.items()
                            if key in lengths}
            del est.snapshots_[n_snaps:]
            est.relax_ = None
        return score, curve

    def start_relax(self, epoch: int, idx: int, keep: np.ndarray) -> None:
        """Begin the relax phase at ``epoch`` from snapshot ``idx`` with channels ``keep``."""
        est, s = self.est, self.s
        snap = est.snapshots_[idx]
        if idx != len(est.snapshots_) - 1:
            est.model_.set_weight_arrays(snap.weights)
        est.model_.set_channel_mask(keep)
        anneal = self.anneal_schedule().values(snap.epoch)
        est.relax_ = RelaxSchedule(start=epoch, epochs=int(s.relax_epochs), beta=anneal.beta,
                                   lam=anneal.lam, capacity=anneal.capacity,
                                   beta_factor=s.relax_beta, lr_final=s.relax_lr,
                                   step_epochs=int(s.step_epochs))
        est.relax_from_ = idx
        logger.info("relax phase from epoch %d: snapshot %d (epoch %d, beta %.4g), channels "
                    "%s kept", epoch, idx, snap.epoch, snap.beta, keep.tolist())

    # ---- after every epoch -------------------------------------------------------------
    def epoch_done(self, epoch: int, values: ScheduleValues, logs: dict) -> None:
        """Book-keeping after each epoch: history, snapshot, progress bar, user callback."""
        est = self.est
        logs = {k: float(v) for k, v in logs.items()}
        if not all(np.isfinite(logs.get(k, 0.0)) for k in ("loss", "mse", "kl", "l1")):
            self.diverged(epoch, values, logs)
        for k, v in logs.items():
            est.history_.setdefault(k, []).append(v)
        for k, v in (("beta", values.beta), ("lambda", values.lam),
                     ("capacity", values.capacity), ("lr_scale", values.lr_scale)):
            est.history_.setdefault(k, []).append(v)
        if snapshot_due(epoch, self.s, est.relax_):
            self.take_snapshot(epoch, values, logs)
        if self.bar is not None:
            self.bar.set_postfix(mse=f"{logs['mse']:.4f}", kl=f"{logs['kl']:.3g}",
                                 beta=f"{values.beta:.3g}", refresh=False)
            self.bar.update(1)
        if self.on_epoch_end is not None:
            self.on_epoch_end(epoch, est)

    def diverged(self, epoch: int, values: ScheduleValues, logs: dict) -> None:
        """Stop: back to the last good snapshot, then raise TrainingDivergedError."""
        est = self.est
        snap = len(est.snapshots_) - 1 if est.snapshots_ else None
        if snap is not None:
            est.model_.set_weight_arrays(est.snapshots_[snap].weights)
            est.selected_ = snap
        est.fit_time_ = float("nan")
        lr = float(self.s.learning_rate) * values.lr_scale
        kept = (f"the model is back at snapshot {snap} (epoch {est.snapshots_[snap].epoch}, "
                f"beta {est.snapshots_[snap].beta:.4g})" if snap is not None
                else "no snapshot was taken before")
        raise TrainingDivergedError(
            f"beta-VAE training diverged: the loss of epoch {epoch} is not finite "
            f"(loss {logs.get('loss')}, mse {logs.get('mse')}, kl {logs.get('kl')}; beta "
            f"{values.beta:.4g}, learning rate {lr:.3g}); {kept}. Expected finite losses: "
            "try a smaller learning_rate, or scaled input (scaling='global')",
            epoch=int(epoch), snapshot=snap)

    def take_snapshot(self, epoch: int, values: ScheduleValues, logs: dict) -> None:
        """Append the state at the end of ``epoch`` to the estimator's ``snapshots_``."""
        est, X = self.est, self.X
        losses = {k: float(logs[k]) for k in ("loss", "mse", "l1", "kl")}
        # deterministic reconstruction error (from the latent means), used for selection:
        # the training MSE above includes the sampling noise, which grows with beta
        if isinstance(X, SpectraSource):
            mu, logvar, err = self.stream_latents(X)
        else:
            mu, logvar, _ = self.infer("encoder", X)
            recon, _ = self.infer("decoder", mu)
            err = np.mean((np.asarray(recon) - X) ** 2, axis=(1, 2))
        if self.train_index is None:
            losses["recon_mse"] = float(np.mean(err))
        else:  # trained-on and held-out positions
            held = np.ones(len(X), bool)
            held[self.train_index] = False
            losses["recon_mse"] = float(np.mean(err[~held]))
            losses["val_recon_mse"] = float(np.mean(err[held]))
        est.snapshots_.append(Snapshot(
            epoch=int(epoch), beta=float(values.beta), lam=float(values.lam), losses=losses,
            mu=np.asarray(mu, np.float32), logvar=np.asarray(logvar, np.float32),
            weights=est.model_.get_weight_arrays()))

    def stream_latents(self, src: SpectraSource) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Latent means, log-variances and reconstruction MSE per position of a source,
        block by block."""
        n = len(src)
        mus, logvars, errs = [], [], []
        for start in range(0, n, STREAM_BLOCK):
            xb = np.asarray(src.take(np.arange(start, min(start + STREAM_BLOCK, n))),
                            dtype="float32")
            mu, logvar, _ = self.infer("encoder", xb)
            recon, _ = self.infer("decoder", mu)
            errs.append(np.mean(np.square(np.asarray(recon) - xb), axis=(1, 2)))
            mus.append(mu)
            logvars.append(logvar)
        return np.concatenate(mus), np.concatenate(logvars), np.concatenate(errs)


def fit_summary(est) -> dict:
    """What a fit of ``est`` and its selection ran and chose, as plain values (the
    attributes a results group records): ``fit_time_s``, ``epochs_trained``,
    ``updates_per_epoch``, ``beta_start_used``, ``relax_start_epoch`` and
    ``relax_from_snapshot`` (-1 without a relax phase), ``selected_snapshot``,
    ``selected_epoch``, ``selected_beta``, ``Active_Channels``, ``n_active_channels``,
    ``n_validation_positions`` (held out; the split is :func:`.vae_data.validation_split`
    of ``validation_fraction`` and ``random_state``) and ``selected_val_recon_mse``
    (NaN without held-out positions), ``count_candidates`` and ``count_held_out_mse``
    (the automatic count's curve, ``count_tolerance``; empty without it) and
    ``count_held_out_curves`` (candidates x relax rounds: the held-out MSE after every
    round of each candidate's relax phase)."""
    sel = est.snapshots_[est.selected_]
    active = est.active_channels()
    relax = est.relax_
    return {"fit_time_s": float(est.fit_time_), "epochs_trained": len(est.history_["loss"]),
            "updates_per_epoch": int(est.updates_per_epoch_),
            "beta_start_used": float(est.beta_start_ or 0.0),
            "relax_start_epoch": -1 if relax is None else int(relax.start),
            "relax_from_snapshot": -1 if relax is None else int(est.relax_from_),
            "selected_snapshot": int(est.selected_), "selected_epoch": int(sel.epoch),
            "selected_beta": float(sel.beta), "Active_Channels": active.astype(int),
            "n_active_channels": int(active.size),
            "n_validation_positions": len(getattr(est, "validation_index_", ())),
            "selected_val_recon_mse": float(sel.losses.get("val_recon_mse", np.nan)),
            "count_candidates": np.asarray(getattr(est, "count_candidates_", []), int),
            "count_held_out_mse": np.asarray(getattr(est, "count_held_out_mse_", []), float),
            "count_held_out_curves": _curves(getattr(est, "count_held_out_curves_", []))}


def _curves(curves: list[list[float]]) -> np.ndarray:
    """Per-candidate curves as one (candidates, rounds) array, NaN-padded."""
    width = max((len(c) for c in curves), default=0)
    out = np.full((len(curves), width), np.nan)
    for row, curve in zip(out, curves, strict=True):
        row[:len(curve)] = curve
    return out


# ---- training state --------------------------------------------------------------------
def relax_record(est) -> dict | None:
    """The relax phase of ``est`` as plain numbers (None before one began); read by
    :func:`set_relax`."""
    relax = getattr(est, "relax_", None)
    return None if relax is None else dict(vars(relax), from_snapshot=int(est.relax_from_))


def set_relax(est, record: Mapping | None) -> None:
    """Restore the relax phase written by :func:`relax_record`."""
    relax = dict(record or {})
    est.relax_ = None
    if relax:
        est.relax_from_ = int(relax.pop("from_snapshot"))
        est.relax_ = RelaxSchedule(**relax)


def training_state(est) -> dict:
    """Everything needed to continue training ``est``: epoch, weights, optimiser, seed
    state, history, snapshots, the resolved ``beta_start`` and the relax phase."""
    opt = est.model_.optimizer
    return {"epoch": len(est.history_["loss"]), "weights": est.model_.get_weight_arrays(),
            "optimizer": [np.asarray(v.numpy()) for v in opt.variables],
            "seed_state": np.asarray(est.model_.seed_gen.state.numpy()),
            "history": {k: list(v) for k, v in est.history_.items()},
            "snapshots": list(est.snapshots_), "beta_start": est.beta_start_,
            "relax": relax_record(est)}


def restore_state(est, state: Mapping) -> int:
    """Load :func:`training_state` into ``est`` (network built); returns the next epoch."""
    model = est.model_
    model.set_weight_arrays(state["weights"])
    opt = model.optimizer
    if not opt.built:  # (compiled_model builds it; LossScaleOptimizer.build is not idempotent)
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
    est.history_ = {k: list(v) for k, v in state["history"].items()}
    est.snapshots_ = list(state.get("snapshots") or [])
    if state.get("beta_start") is not None:
        est.beta_start_ = float(state["beta_start"])
    set_relax(est, state.get("relax"))
    return int(state["epoch"])
