"""The beta-VAE estimator: schedule arithmetic, loss terms, snapshots, selection, resume.

Networks here are tiny (4 LSTM units, a few epochs) so each fit takes seconds.
"""

from __future__ import annotations

import numpy as np
import pytest

from pycroscopy_bevae import ParameterError, TrainingDivergedError
from pycroscopy_bevae.datasets import toy_training_set
from pycroscopy_bevae.models import PRESETS, BetaVAE, Snapshot, channel_kl, schedule_values
from pycroscopy_bevae.preprocessing import LoopScaler
from tests.helpers import TINY_NET

TINY = dict(TINY_NET, preset="fast", epochs=4, prime_epochs=2, beta_step=0.02, batch_size=50,
            random_state=1, validation_fraction=0)  # held-out positions: test_held_out.py


@pytest.fixture(scope="module")
def toy_x():
    s = toy_training_set(200, seed=0, n_steps=12)
    return LoopScaler("step").fit_transform(s.spectra)


@pytest.fixture(scope="module")
def trained(toy_x):
    """The shared fitted model: tests only read it (:func:`own_copy` for changes)."""
    return BetaVAE(**TINY).fit(toy_x, progress=False)


@pytest.fixture
def own_copy(trained):
    """A copy of ``trained`` that a test may re-select or re-weight."""
    vae = BetaVAE.from_config(trained.get_config(), trained.model_.get_weight_arrays())
    vae.snapshots_, vae.selected_ = list(trained.snapshots_), trained.selected_
    vae.history_ = {k: list(v) for k, v in trained.history_.items()}
    return vae


def test_schedule_arithmetic():
    kw = dict(prime_epochs=10, beta_start=0.01, beta_step=0.005, step_epochs=4, lambda0=1e-5)
    assert schedule_values(9, **kw) == (0.0, 0.0)
    assert schedule_values(10, **kw)[0] == pytest.approx(0.01)
    assert schedule_values(13, **kw)[0] == pytest.approx(0.01)
    assert schedule_values(14, **kw)[0] == pytest.approx(0.015)
    b, lam = schedule_values(22, **kw)  # third step after priming: 0.01 + 3 * 0.005
    assert b == pytest.approx(0.025) and lam == pytest.approx(1e-5 * 10**0.025)
    b, lam = schedule_values(22, lambda_mode="step", lambda_step=1e-4, **kw)
    assert lam == pytest.approx(1e-5 + 3 * 1e-4)


def test_channel_kl_and_snapshot_activity():
    mu = np.array([[1.0, 0.0, 3.0], [-1.0, 0.0, -3.0]])
    logvar = np.zeros_like(mu)
    np.testing.assert_allclose(channel_kl(mu, logvar), [0.5, 0.0, 4.5])
    snap = Snapshot(epoch=0, beta=0.0, lam=0.0, losses={}, mu=mu, logvar=logvar, weights={})
    assert snap.n_active(0.1) == 2 and snap.n_active(1.0) == 1


def test_presets_and_parameter_validation():
    p = BetaVAE(preset="paper").resolved_params()
    assert (p["units"], p["n_blocks"], p["layers_per_block"], p["latent_dim"]) == (128, 3, 2, 16)
    assert (p["learning_rate"], p["batch_size"]) == (3e-5, 300)
    assert (p["prime_epochs"], p["beta_step"], p["step_epochs"], p["epochs"]) == \
        (6000, 0.0025, 1000, 20000)
    assert BetaVAE(preset="fast", units=7).resolved_params()["units"] == 7
    assert set(PRESETS) == {"paper", "fast"}
    with pytest.raises(ParameterError, match="unknown preset 'huge'"):
        BetaVAE(preset="huge").resolved_params()
    with pytest.raises(ParameterError, match="epochs must be a non-negative integer"):
        BetaVAE(epochs=-3).resolved_params()
    with pytest.raises(ParameterError, match="kl_reduction must be one of"):
        BetaVAE(kl_reduction="max").resolved_params()
    with pytest.raises(ParameterError, match="beta_start must be 'auto'"):
        BetaVAE(beta_start="soon").resolved_params()
    with pytest.raises(ParameterError, match="have no value"):
        BetaVAE(preset=None).resolved_params()
    with pytest.raises(ParameterError, match="not fitted"):
        BetaVAE().transform(np.zeros((2, 5)))
    with pytest.raises(ParameterError, match="non-finite"):
        BetaVAE(**TINY).fit(np.full((4, 6), np.nan), progress=False)


def test_one_parameter_table_and_the_channel_request():
    import inspect

    names = BetaVAE.parameter_names()
    assert set(inspect.signature(BetaVAE).parameters) == {*names, "preset", "strategy"}
    assert tuple(BetaVAE().resolved_params()) == names  # the stored order
    assert set(BetaVAE.parameter_defaults()) < set(names)
    s = BetaVAE(preset="fast", units=7).settings()
    assert s.units == 7 and s.to_dict() == BetaVAE(preset="fast", units=7).resolved_params()
    with pytest.raises(AttributeError):
        s.units = 8  # frozen
    # a relax phase trains the requested count; an explicit target or no relax phase wins
    assert BetaVAE(preset="fast").request_active(3).resolved_params()["target_active"] == 3
    assert BetaVAE(preset="fast", target_active=2).request_active(3).target_active == 2
    assert BetaVAE(preset="paper").request_active(3).resolved_params()["target_active"] == 0
    assert BetaVAE(preset="fast").request_active(None).target_active is None
    with pytest.raises(ParameterError, match="n_active must be None or a positive integer, "
                                             "got 0"):
        BetaVAE().request_active(0)
    with pytest.raises(ParameterError, match="target_active=17 exceeds latent_dim=16"):
        BetaVAE(preset="fast").request_active(17)


def test_shapes_history_and_loss_terms(trained, toy_x):
    vae = trained
    mu, logvar = vae.encode(toy_x)
    assert mu.shape == logvar.shape == (200, 3)
    # the embedding: the latent means, in independent axes (rotation='ica', the default)
    np.testing.assert_allclose(vae.transform(toy_x), vae.rotate(mu), rtol=0, atol=1e-12)
    assert vae.decode(mu).shape == (200, 12, 1)  # always (n, steps, channels)
    assert vae.reconstruct(toy_x).shape == toy_x.shape
    h = vae.history_
    assert all(len(h[k]) == 4 for k in ("loss", "mse", "l1", "kl", "beta", "lambda"))
    np.testing.assert_allclose(h["beta"], [0, 0, 0.01, 0.03], atol=1e-12)
    np.testing.assert_allclose(h["lambda"], [0, 0, 1e-5 * 10**0.01, 1e-5 * 10**0.03])
    # the logged loss is exactly its three terms (beta and lambda are constant in an epoch)
    total = np.array(h["mse"]) + np.array(h["lambda"]) * h["l1"] + np.array(h["beta"]) * h["kl"]
    np.testing.assert_allclose(h["loss"], total, rtol=1e-5)
    # snapshots: end of priming (epoch 1), end of each one-epoch step (2, 3)
    assert [s.epoch for s in vae.snapshots_] == [1, 2, 3]
    assert [s.beta for s in vae.snapshots_] == pytest.approx([0.0, 0.01, 0.03])
    assert vae.snapshots_[-1].mu.shape == (200, 3)
    with pytest.raises(ParameterError, match=r"\(steps, channels\)"):
        vae.transform(np.zeros((3, 10)))


def test_selection(own_copy, toy_x):
    vae = own_copy
    counts = [s.n_active(vae.resolved_params()["kl_threshold"]) for s in vae.snapshots_]
    k = counts[1]
    idx = vae.select(n_active=k)
    assert idx == max(i for i, c in enumerate(counts) if c == k)
    np.testing.assert_allclose(vae.transform(toy_x), vae.rotate(vae.snapshots_[idx].mu),
                               atol=1e-5)
    with pytest.raises(ParameterError, match="no snapshot has exactly 99"):
        vae.select(n_active=99)
    # closest: the latest snapshot with the count nearest to the one asked for
    most = max(counts)
    assert vae.select(n_active=99, closest=True) == max(
        i for i, c in enumerate(counts) if c == most)
    assert vae.select(n_active=k, closest=True) == idx
    auto = vae.select()
    ref = vae.snapshots_[0].losses["recon_mse"]  # last primed snapshot
    ok = [i for i, s in enumerate(vae.snapshots_) if s.losses["recon_mse"] <= 2.0 * ref]
    assert auto == ok[-1]
    # recon_mse is the deterministic error of the snapshot's weights on the training data
    vae.model_.set_weight_arrays(vae.snapshots_[1].weights)
    assert vae.snapshots_[1].losses["recon_mse"] == pytest.approx(vae.score_mse(toy_x),
                                                                  rel=1e-4)
    act = vae.channel_activity(0)
    assert act["kl"].shape == act["variance"].shape == (3,)


def test_config_round_trip(trained, toy_x):
    again = BetaVAE.from_config(trained.get_config(), trained.model_.get_weight_arrays())
    np.testing.assert_allclose(again.transform(toy_x), trained.transform(toy_x), atol=1e-6)
    import json

    assert json.loads(trained.config_json())["network"]["latent_dim"] == 3


@pytest.mark.slow
def test_resume_is_exact_and_runs_repeat(trained, toy_x):
    class Stop(Exception):
        pass

    state = {}

    def stop_after_2(epoch, est):
        if epoch == 2:
            state.update(est.training_state())
            raise Stop

    with pytest.raises(Stop):
        BetaVAE(**TINY).fit(toy_x, progress=False, on_epoch_end=stop_after_2)
    assert state["epoch"] == 3 and len(state["snapshots"]) == 2
    resumed = BetaVAE(**TINY).fit(toy_x, progress=False, initial_state=state)
    ref = trained  # not changed: its last snapshot holds the weights of its last epoch
    a, b = ref.snapshots_[-1].weights, resumed.model_.get_weight_arrays()
    assert max(float(np.abs(a[k] - b[k]).max()) for k in a) == 0.0
    assert resumed.history_["loss"] == ref.history_["loss"]


def test_auto_beta_makes_kl_the_requested_share(toy_x):
    vae = BetaVAE(**{**TINY, "beta_start": "auto", "kl_fraction": 0.6, "epochs": 3})
    vae.fit(toy_x, progress=False)
    h = vae.history_
    mse, kl = h["mse"][1], h["kl"][1]  # last primed epoch
    assert vae.beta_start_ == pytest.approx(0.6 * mse / (0.4 * kl))
    assert h["beta"][2] == pytest.approx(vae.beta_start_)


def test_numpy_scalars_are_plain_numbers_and_non_numbers_are_refused():
    import json

    vae = BetaVAE(epochs=np.int64(3), batch_size=np.int32(16), learning_rate=np.float32(1e-3),
                  random_state=np.uint8(7), lambda_mode=np.str_("follow"))
    p = vae.resolved_params()
    assert (p["epochs"], p["batch_size"], p["random_state"]) == (3, 16, 7)
    assert type(p["epochs"]) is int and type(p["learning_rate"]) is float
    assert p["learning_rate"] == pytest.approx(1e-3)
    json.dumps(p)  # stored as JSON with the model: plain types only
    for kw, name in ((dict(learning_rate=True), "learning_rate"),
                     (dict(epochs=2.0), "epochs"),
                     (dict(batch_size="16"), "batch_size"),
                     (dict(beta_start=float("inf")), "beta_start"),
                     (dict(beta_step=float("nan")), "beta_step"),
                     (dict(kl_fraction="half"), "kl_fraction"),
                     (dict(random_state="abc"), "random_state"),
                     (dict(random_state=-1), "random_state"),
                     (dict(strategy=5), "strategy")):
        with pytest.raises(ParameterError, match=name):
            BetaVAE(**kw).resolved_params()


def test_a_loss_that_overflows_stops_training_with_a_clear_error():
    """Input of 1e20 passes the finiteness check, but its squares overflow float32: the
    first epoch's loss is infinite and nothing was trained worth keeping."""
    vae = BetaVAE(**TINY)
    with pytest.raises(TrainingDivergedError, match=r"the loss of epoch 0 is not finite "
                       r"\(loss (inf|nan).*beta 0,.*no snapshot was taken before.*scaled "
                       "input") as info:
        vae.fit(np.full((32, 25, 1), 1e20), progress=False)
    assert info.value.epoch == 0 and info.value.snapshot is None
    assert isinstance(info.value, FloatingPointError) and not vae.snapshots_
