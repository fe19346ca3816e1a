"""Schedule objects, the update-counted schedule, capacity control, prune-then-relax and
the one definition of an active channel (small real runs, seconds each)."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from pycroscopy_bevae import ParameterError
from pycroscopy_bevae.datasets import toy_training_set
from pycroscopy_bevae.models import BetaVAE, Snapshot, channel_kl, schedule_values
from pycroscopy_bevae.models.schedule import (
    CapacitySchedule,
    RelaxSchedule,
    StepSchedule,
    active_channels,
)
from pycroscopy_bevae.preprocessing import LoopScaler
from tests.helpers import TINY_NET

TINY = dict(TINY_NET, preset="fast", n_blocks=0, epochs=4, prime_epochs=2, beta_step=0.02,
            batch_size=50, random_state=1, lambda0=1e-5, linear_path=False, target_active=0)


@pytest.fixture(scope="module")
def toy_x():
    s = toy_training_set(200, seed=0, n_steps=12)
    return LoopScaler("step").fit_transform(s.spectra)


def _weights_equal(a: BetaVAE, b: BetaVAE) -> bool:
    wa, wb = a.model_.get_weight_arrays(), b.model_.get_weight_arrays()
    return wa.keys() == wb.keys() and all(np.array_equal(wa[k], wb[k]) for k in wa)


def test_step_schedule_is_the_papers_stairs():
    s = StepSchedule(prime_epochs=3, beta_start=0.1, beta_step=0.05, step_epochs=2,
                     lambda0=1e-4)
    vals = [s.values(e) for e in range(9)]
    assert [v.phase for v in vals[:4]] == ["prime"] * 3 + ["anneal"]
    np.testing.assert_allclose([v.beta for v in vals], [0, 0, 0, .1, .1, .15, .15, .2, .2])
    np.testing.assert_allclose([v.lam for v in vals[3:5]], [1e-4 * 10**0.1] * 2)
    assert all(v.capacity == 0.0 and v.lr_scale == 1.0 for v in vals)
    assert [e for e in range(9) if s.step_ends(e)] == [2, 4, 6, 8]
    for e in range(9):  # the functional form is the same schedule
        assert schedule_values(e, 3, 0.1, 0.05, 2, 1e-4) == (vals[e].beta, vals[e].lam)


def test_capacity_schedule_holds_beta_and_raises_the_target():
    s = CapacitySchedule(prime_epochs=1, beta=20.0, capacity_start=0.5, capacity_step=0.25,
                         step_epochs=3, lambda0=1e-5)
    assert s.values(0).beta == 0.0 and s.values(0).phase == "prime"
    np.testing.assert_allclose([s.values(e).capacity for e in range(1, 8)],
                               [0.5, 0.5, 0.5, 0.75, 0.75, 0.75, 1.0])
    assert {s.values(e).beta for e in range(1, 8)} == {20.0}
    assert [e for e in range(8) if s.step_ends(e)] == [0, 3, 6]


def test_relax_schedule_lowers_beta_and_decays_the_learning_rate():
    r = RelaxSchedule(start=5, epochs=5, beta=0.4, lam=2e-5, capacity=1.5, beta_factor=0.25,
                      lr_final=0.05, step_epochs=2)
    vals = [r.values(e) for e in range(5, 10)]
    assert [v.beta for v in vals] == pytest.approx([0.1] * 5)
    assert {v.phase for v in vals} == {"relax"}
    assert {v.lam for v in vals} == {2e-5} and {v.capacity for v in vals} == {1.5}
    scale = [v.lr_scale for v in vals]
    assert scale[0] == 1.0 and scale[-1] == pytest.approx(0.05)
    assert scale[2] == pytest.approx(0.05 + 0.95 * 0.5)  # half way of the cosine
    assert all(a > b for a, b in zip(scale, scale[1:], strict=False))
    assert [e for e in range(5, 10) if r.step_ends(e)] == [6, 8, 9] and r.end == 10


def test_active_channels_is_the_one_definition():
    rng = np.random.default_rng(0)
    mu = rng.normal(size=(50, 4)) * np.array([2.0, 0.3, 0.0, 1.0])
    logvar = np.log(np.array([0.1, 0.9, 1.0, 0.5]))[None, :].repeat(50, 0)
    kl = channel_kl(mu, logvar)
    for thr in (0.01, 0.1, 0.5, 2.0):
        want = np.flatnonzero(kl >= thr)
        np.testing.assert_array_equal(active_channels(mu, logvar, thr), want)
        snap = Snapshot(0, 0.0, 0.0, {}, mu, logvar, {})
        np.testing.assert_array_equal(snap.active(thr), want)
        assert snap.n_active(thr) == want.size
    assert active_channels(np.zeros((3, 2)), np.zeros((3, 2)), 0.0).tolist() == [0, 1]


@pytest.mark.slow
def test_one_round_per_pass_is_the_epoch_schedule(toy_x):
    """200 spectra in batches of 50: 4 updates per pass. round_updates=4 must train
    exactly as the epoch-counted schedule (same batches, same order)."""
    a = BetaVAE(**TINY).fit(toy_x, progress=False)
    b = BetaVAE(**{**TINY, "round_updates": 4}).fit(toy_x, progress=False)
    assert _weights_equal(a, b) and a.history_["loss"] == b.history_["loss"]
    assert a.updates_per_epoch_ == b.updates_per_epoch_ == 4


@pytest.mark.slow
def test_rounds_run_through_the_stream_of_passes(toy_x):
    """Rounds of 2 updates: 4 rounds are the 8 updates of 2 passes; with the regularisation
    off throughout, the weights equal 2 epoch-counted passes bit for bit."""
    flat = dict(TINY, prime_epochs=8, epochs=4)
    a = BetaVAE(**{**flat, "epochs": 2}).fit(toy_x, progress=False)
    b = BetaVAE(**{**flat, "round_updates": 2}).fit(toy_x, progress=False)
    assert _weights_equal(a, b)
    assert len(b.history_["loss"]) == 4 and b.updates_per_epoch_ == 2
    c = BetaVAE(**{**flat, "round_updates": 3}).fit(toy_x, progress=False)
    assert not _weights_equal(a, c)  # 12 updates: a different model


@pytest.mark.slow
def test_update_counted_schedule_is_independent_of_the_map_size(toy_x):
    big = np.concatenate([toy_x] * 4)  # 800 spectra: 16 updates per pass
    # every position trains (a held-out split would change the update counts asserted)
    kw = dict(TINY, round_updates=5, epochs=6, prime_epochs=2, validation_fraction=0)
    small_fit = BetaVAE(**kw).fit(toy_x, progress=False)
    big_fit = BetaVAE(**kw).fit(big, progress=False)
    # the same beta at the same update, whatever the number of positions
    assert small_fit.history_["beta"] == big_fit.history_["beta"]
    assert [s.epoch for s in small_fit.snapshots_] == [s.epoch for s in big_fit.snapshots_]
    counted = BetaVAE(**{**kw, "round_updates": 0}).fit(big, progress=False)
    assert counted.updates_per_epoch_ == 16 and big_fit.updates_per_epoch_ == 5


@pytest.mark.slow
def test_capacity_loss_is_the_distance_to_the_target(toy_x):
    vae = BetaVAE(**{**TINY, "schedule": "capacity", "beta_start": 3.0, "capacity_start": 0.2,
                     "capacity_step": 0.3}).fit(toy_x, progress=False)
    h = {k: np.array(v) for k, v in vae.history_.items()}
    np.testing.assert_allclose(h["capacity"], [0, 0, 0.2, 0.5])
    np.testing.assert_allclose(h["beta"], [0, 0, 3.0, 3.0])
    # the logged loss is the mean over batches of mse + lam l1 + beta |kl - C|; with one
    # beta and C per epoch, |mean kl - C| <= mean |kl - C|
    rest = h["loss"] - h["mse"] - h["lambda"] * h["l1"]
    assert np.all(rest[2:] >= h["beta"][2:] * np.abs(h["kl"][2:] - h["capacity"][2:]) - 1e-4)
    with pytest.raises(ParameterError, match="schedule must be one of"):
        BetaVAE(schedule="cosine").resolved_params()


def test_relax_phase_keeps_the_wanted_channels(toy_x):
    # the linear path and a learning rate at which the tiny network learns in 5 epochs (4
    # active channels when primed); without them nothing is learnt and no channel is left
    kw = dict(TINY, latent_dim=4, epochs=5, beta_start=0.05, beta_step=0.05, target_active=2,
              relax_epochs=3, relax_beta=0.2, relax_lr=0.1, linear_path=True,
              learning_rate=1e-2)
    vae = BetaVAE(**kw).fit(toy_x, progress=False)
    r = vae.relax_
    assert r is not None and r.epochs == 3 and len(vae.history_["loss"]) == r.end
    snap_from = vae.snapshots_[vae.relax_from_]
    kept = np.sort(np.argsort(snap_from.channel_kl())[::-1][:2])
    mu, logvar = vae.encode(toy_x)
    frozen = np.setdiff1d(np.arange(4), kept)
    assert np.all(mu[:, frozen] == 0.0) and np.all(logvar[:, frozen] == 0.0)
    assert vae.n_active(len(vae.snapshots_) - 1) == 2  # the requested count, exactly
    h = vae.history_
    relax = slice(r.start, r.end)
    np.testing.assert_allclose(h["beta"][relax], [r.beta * 0.2] * 3)
    np.testing.assert_allclose(h["lr_scale"][relax], [1.0, 0.55, 0.1])
    assert vae.select() == len(vae.snapshots_) - 1  # automatic choice: the relaxed model
    assert vae.resolved_params()["target_active"] == 2


@pytest.mark.slow
def test_relax_without_target_goes_back_within_the_tolerance(toy_x):
    # the linear path learns in a few updates; then a large beta wipes the channels out
    kw = dict(TINY, latent_dim=4, linear_path=True, learning_rate=0.01, round_updates=10,
              validation_fraction=0,  # the tolerance rule on every position, as it is stated
              prime_epochs=4, epochs=8, beta_start=0.001, beta_growth=100.0, beta_step=0.0,
              relax_epochs=2, mse_tolerance=1.5)
    vae = BetaVAE(**kw).fit(toy_x, progress=False)
    snaps = vae.snapshots_
    ref = snaps[0].losses["recon_mse"]
    assert ref < 0.5  # primed: the model reconstructs
    src, after = snaps[vae.relax_from_], snaps[vae.relax_from_ + 1]
    # the annealing stopped at the first step beyond the tolerance and went back
    assert src.losses["recon_mse"] <= 1.5 * ref < after.losses["recon_mse"]
    assert after.epoch == vae.relax_.start - 1 < kw["epochs"] - 1
    assert all(s.losses["recon_mse"] <= 1.5 * ref for s in snaps[:vae.relax_from_ + 1])
    kept = src.active(0.1)
    np.testing.assert_array_equal(vae.model_.channel_mask().numpy() > 0,
                                  np.isin(np.arange(4), kept))
    assert snaps[-1].losses["recon_mse"] <= 1.5 * ref


@pytest.mark.slow
def test_resume_inside_the_relax_phase_is_exact(toy_x, tmp_path):
    from pycroscopy_bevae.io.model_store import read_checkpoint, write_checkpoint, write_snapshot

    class Stop(Exception):
        pass

    kw = dict(TINY, latent_dim=4, epochs=5, beta_start=0.05, beta_step=0.05, target_active=2,
              relax_epochs=3)
    ref = BetaVAE(**kw).fit(toy_x, progress=False)
    path = tmp_path / "ckpt.h5"

    def stop_in_relax(epoch, est):
        if est.relax_ is not None and epoch == est.relax_.start:
            with h5py.File(path, "w") as f:  # through the file, as the process does
                grp = f.create_group("results")
                for i, s in enumerate(est.snapshots_):
                    write_snapshot(grp, i, s)
                write_checkpoint(grp, est)
            raise Stop

    with pytest.raises(Stop):
        BetaVAE(**kw).fit(toy_x, progress=False, on_epoch_end=stop_in_relax)
    with h5py.File(path, "r") as f:
        state = read_checkpoint(f["results"])
    assert state["relax"]["start"] == ref.relax_.start
    resumed = BetaVAE(**kw).fit(toy_x, progress=False, initial_state=state)
    assert _weights_equal(ref, resumed) and resumed.history_["loss"] == ref.history_["loss"]
    assert resumed.relax_ == ref.relax_ and resumed.relax_from_ == ref.relax_from_


@pytest.mark.slow
def test_linear_path_round_trips_and_old_configs_load(toy_x):
    vae = BetaVAE(**{**TINY, "linear_path": True}).fit(toy_x, progress=False)
    names = [w.path for w in vae.model_.decoder.weights]
    assert any("linear_reconstruction" in n for n in names)
    again = BetaVAE.from_config(vae.get_config(), vae.model_.get_weight_arrays())
    np.testing.assert_allclose(again.transform(toy_x), vae.transform(toy_x), atol=1e-6)
    plain = BetaVAE(**TINY).fit(toy_x, progress=False)
    # a model from before masking used every channel (the fit now masks inactive ones)
    plain.model_.set_channel_mask(np.arange(TINY["latent_dim"]))
    cfg = plain.get_config()
    del cfg["network"]["linear_path"]  # stored before the option existed
    cfg["squeeze"] = False  # stored while decode's shape still depended on the fit
    weights = {k: v for k, v in plain.model_.get_weight_arrays().items()
               if not k.endswith("channel_mask")}  # ... and before the mask existed
    old = BetaVAE.from_config(cfg, weights)
    np.testing.assert_allclose(old.transform(toy_x), plain.transform(toy_x), atol=1e-6)
    with pytest.raises(ParameterError, match="linear_path must be True or False"):
        BetaVAE(linear_path="yes").resolved_params()
    with pytest.raises(ParameterError, match="relax_beta must be a number in"):
        BetaVAE(relax_beta=2.0).resolved_params()
    with pytest.raises(ParameterError, match="target_active=17 exceeds latent_dim=16"):
        BetaVAE(target_active=17).resolved_params()
    with pytest.raises(ParameterError, match="beta_growth must be a number in"):
        BetaVAE(beta_growth=0.5).resolved_params()
    with pytest.raises(ParameterError, match="round_updates must be a non-negative"):
        BetaVAE(round_updates=-1).resolved_params()


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["fast", "paper"])
def test_storage_estimate_bounds_the_built_network(preset):
    """The estimate sizes the space check before any write: never below the real count
    (incl. normalisation statistics and the channel mask), and close to it."""
    from pycroscopy_bevae.models.vae_network import BetaVAEModel, NetworkConfig

    vae = BetaVAE(preset=preset)
    p = vae.resolved_params()
    cfg = NetworkConfig(n_steps=96, n_channels=2, units=p["units"], n_blocks=p["n_blocks"],
                        layers_per_block=p["layers_per_block"],
                        embedding_dim=p["embedding_dim"], latent_dim=p["latent_dim"],
                        linear_path=p["linear_path"])
    model = BetaVAEModel(cfg)
    model(np.zeros((1, 96, 2), "float32"))
    real = sum(int(np.prod(w.shape)) for w in model.get_weight_arrays().values())
    est = vae.storage_estimate(100, 96, 2)["weights"]
    assert real <= est <= 1.05 * real


@pytest.mark.slow
def test_process_trains_the_requested_channels_with_a_relax_phase(beps_file):
    """``n_active`` of the process is the relax phase's target; what ran is recorded."""
    from pycroscopy_bevae import BetaVAEProcess, LoopProjector

    with h5py.File(beps_file, "r+") as f:
        proj = LoopProjector(f, progress=False).compute()
        grp = BetaVAEProcess(proj, n_active=2, units=4, embedding_dim=4, latent_dim=4,
                             epochs=4, prime_epochs=1, step_epochs=1, beta_start=0.01,
                             beta_growth=3.0, round_updates=3, relax_epochs=2, batch_size=32,
                             random_state=0, progress=False).compute()
        a = grp.attrs
        assert a["target_active"] == 2 and a["relax_epochs"] == 2 and a["round_updates"] == 3
        assert a["updates_per_epoch"] == 3 and a["relax_start_epoch"] >= 2
        assert a["epochs_trained"] == a["relax_start_epoch"] + 2
        assert a["n_active_channels"] == len(a["Active_Channels"]) == 2  # as requested
        emb = grp["Embedding"][()]
        frozen = np.setdiff1d(np.arange(4), a["Active_Channels"])
        assert np.all(emb[:, frozen] == 0.0)  # the masked channels carry nothing
        hist = grp["Training_History"]
        assert {"capacity", "lr_scale"} <= set(hist.attrs["columns"])
