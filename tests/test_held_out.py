"""Held-out positions (``validation_fraction``) and the automatic count rule on held-out
reconstruction errors. Tiny real runs (4-unit LSTMs, a few epochs)."""

from __future__ import annotations

import numpy as np
import pytest

from pycroscopy_bevae import ParameterError
from pycroscopy_bevae.datasets import toy_training_set
from pycroscopy_bevae.models import BetaVAE
from pycroscopy_bevae.models.selection import count_by_held_out, recon_mse, search_count
from pycroscopy_bevae.models.vae_data import validation_split
from pycroscopy_bevae.preprocessing import LoopScaler
from tests.helpers import TINY_NET

TINY = dict(TINY_NET, preset="fast", epochs=3, prime_epochs=1, batch_size=50, random_state=1)


@pytest.fixture(scope="module")
def toy_x():
    return LoopScaler("step").fit_transform(toy_training_set(200, seed=0, n_steps=12).spectra)


def test_held_out_positions_are_logged_and_select_the_snapshot(toy_x):
    vae = BetaVAE(**TINY).fit(toy_x, progress=False)
    assert vae.resolved_params()["validation_fraction"] == 0.1  # the default
    train, held = validation_split(200, 0.1, seed=1)
    np.testing.assert_array_equal(vae.validation_index_, held)
    assert held.size == 20 and np.intersect1d(train, held).size == 0
    # per-epoch held-out losses; snapshots keep every position
    assert len(vae.history_["val_mse"]) == len(vae.history_["loss"]) == 3
    assert vae.snapshots_[-1].mu.shape == (200, 3)
    # each snapshot's deterministic error on the trained-on and the held-out positions
    for i, snap in enumerate(vae.snapshots_):
        vae.use_snapshot(i)
        err = np.mean((vae.reconstruct(toy_x) - toy_x) ** 2, axis=1)
        assert snap.losses["recon_mse"] == pytest.approx(err[train].mean(), rel=1e-4)
        assert snap.losses["val_recon_mse"] == pytest.approx(err[held].mean(), rel=1e-4)
        assert recon_mse(snap) == snap.losses["val_recon_mse"]  # what selection compares
    # the automatic rule compares held-out errors: the primed model's + the tolerance
    ref = vae.snapshots_[0].losses["val_recon_mse"]
    ok = [i for i, s in enumerate(vae.snapshots_) if s.losses["val_recon_mse"] <= 2.0 * ref]
    assert vae.select() == ok[-1]
    # the split is seeded: another seed holds out other positions
    assert not np.array_equal(validation_split(200, 0.1, seed=2)[1], held)


def test_validation_fraction_is_checked_and_zero_or_x_val_turn_the_split_off(toy_x):
    for bad in (0.5, -0.1, "a"):
        with pytest.raises(ParameterError, match="validation_fraction"):
            BetaVAE(validation_fraction=bad).settings()
    vae = BetaVAE(**dict(TINY, epochs=1, validation_fraction=0)).fit(toy_x, progress=False)
    assert vae.validation_index_.size == 0 and "val_mse" not in vae.history_
    assert "val_recon_mse" not in vae.snapshots_[-1].losses
    vae = BetaVAE(**dict(TINY, epochs=1)).fit(toy_x[:150], X_val=toy_x[150:], progress=False)
    assert vae.validation_index_.size == 0 and len(vae.history_["val_mse"]) == 1


def test_the_count_rule_takes_the_smallest_count_within_the_tolerance_of_the_best():
    # a held-out curve with an elbow at 3 (the toy's shape): 3 is within 1 % of the
    # variance of the best (5), 2 is not
    counts, mse = [1, 2, 3, 4, 5, 7], [0.40, 0.12, 0.031, 0.030, 0.0295, 0.0300]
    assert count_by_held_out(counts, mse, 0.2, 0.01) == 3
    assert count_by_held_out(counts, mse, 0.2, 0.0) == 5  # no tolerance: the best count
    assert count_by_held_out(counts, mse, 0.2, 0.5) == 2  # 0.12 <= 0.0295 + 0.1
    with pytest.raises(ParameterError, match="one finite number per candidate count"):
        count_by_held_out([1, 2], [0.1], 1.0)
    with pytest.raises(ParameterError, match="must be >= 0, got -1"):
        count_by_held_out([1], [0.1], -1.0)


def test_the_count_search_scores_fewer_counts_and_keeps_the_rule_on_what_it_scored():
    counts = [1, 2, 3, 4, 5, 7, 9, 12, 16]
    falling = dict(zip(counts, [0.40, 0.12, 0.031, 0.030, 0.0295, 0.029, 0.0288, 0.0287,
                                0.0286], strict=True))
    asked = []

    def score(k):
        asked.append(k)
        return falling[k]

    k, scored, mse = search_count(counts, score, 0.25, 0.01)
    # the largest first, then up from the smallest until one is within 0.0025 of the best
    assert (k, asked, scored) == (3, [16, 1, 2, 3], [1, 2, 3, 16])
    assert mse == [falling[c] for c in scored]
    assert k == count_by_held_out(counts, list(falling.values()), 0.25, 0.01)  # the full rule
    assert search_count(counts, falling.get, 0.25, 0.0)[0] == 16  # no tolerance: the best
    assert search_count([4], falling.get, 0.25, 0.01)[:2] == (4, [4])
    # a curve that rises again: the search stops at the first count within the tolerance
    # of what it scored; the full rule also sees the skipped dip at 9
    dip = {**falling, 9: 0.020}
    assert search_count(counts, dip.get, 0.25, 0.01)[0] == 3
    assert count_by_held_out(counts, [dip[c] for c in counts], 0.25, 0.01) == 9
    with pytest.raises(ParameterError, match="at least one candidate"):
        search_count([], dip.get, 0.25)


def test_the_automatic_count_relaxes_at_the_count_its_held_out_curve_implies(toy_x):
    # strong, rising beta: the annealing passes through 3 and 4 active channels
    params = dict(TINY, latent_dim=4, epochs=5, prime_epochs=2, round_updates=20,
                  learning_rate=1e-2, beta_start=2.0, beta_step=4.0, relax_epochs=2,
                  count_tolerance=0.02)
    vae = BetaVAE(**params).fit(toy_x, progress=False)
    counts, mse = vae.count_candidates_, vae.count_held_out_mse_
    passed = {s.n_active(0.1) for s in vae.snapshots_ if 0 < s.beta and s.epoch < 5} - {0}
    # the search scores the largest count, then from the smallest up to the count it keeps
    ordered = sorted(passed)
    assert len(ordered) >= 2 and len(counts) == len(mse) >= 2
    k = count_by_held_out(counts, mse, float(np.var(toy_x[vae.validation_index_], axis=0)
                                             .mean()), 0.02)
    assert counts == sorted(set(ordered[:ordered.index(k) + 1]) | {ordered[-1]})
    # the final relax phase keeps k channels and, being the candidate run again from the
    # restored state, ends where that candidate ended
    assert np.count_nonzero(vae.channel_mask()) == vae.n_active() == k
    assert vae.snapshots_[-1].losses["val_recon_mse"] == pytest.approx(mse[counts.index(k)],
                                                                       rel=1e-6)
    assert len(vae.history_["loss"]) == len(vae.history_["val_mse"]) == 5 + 2
    assert [s.epoch for s in vae.snapshots_][-2:] == [5, 6]
    # each candidate's held-out MSE after every relax round; the last is its score (Keras'
    # val_mse: batch means over the same held-out rows)
    curves = vae.count_held_out_curves_
    assert [len(c) for c in curves] == [2] * len(counts)
    assert [c[-1] for c in curves] == pytest.approx(mse, rel=1e-4)
    assert curves[counts.index(k)] == pytest.approx(vae.history_["val_mse"][-2:], rel=1e-6)
    with pytest.raises(ParameterError, match="count_tolerance=0.02 needs a relax phase"):
        BetaVAE(**dict(params, relax_epochs=0)).settings()
    with pytest.raises(ParameterError, match="count_tolerance=0.02 needs held-out positions"):
        BetaVAE(**params).fit(toy_x[:150], X_val=toy_x[150:], progress=False)


def test_the_fast_preset_counts_on_held_out_positions_unless_a_count_is_asked_for(toy_x):
    assert BetaVAE(preset="fast").resolved_params()["count_tolerance"] == 0.01
    # where the preset's rule cannot run, or a count is asked for, it is off (no error)
    assert BetaVAE(preset="fast", relax_epochs=0).resolved_params()["count_tolerance"] == 0
    assert BetaVAE(preset="fast", validation_fraction=0).resolved_params()[
        "count_tolerance"] == 0
    assert BetaVAE(preset="fast").request_active(3).resolved_params()["count_tolerance"] == 0
    assert BetaVAE(preset="paper").resolved_params()["count_tolerance"] == 0
    # asked for explicitly, it is refused where it cannot run
    with pytest.raises(ParameterError, match="count_tolerance=0.01 needs a relax phase"):
        BetaVAE(preset="fast", relax_epochs=0, count_tolerance=0.01).settings()
    params = dict(TINY, latent_dim=4, epochs=5, prime_epochs=2, round_updates=20,
                  learning_rate=1e-2, beta_start=2.0, beta_step=4.0, relax_epochs=2)
    counted = BetaVAE(**params).fit(toy_x, progress=False)  # the preset's count
    assert counted.settings_.count_tolerance == 0.01 and len(counted.count_candidates_) >= 2
    variance = float(np.var(toy_x[counted.validation_index_], axis=0).mean())
    assert counted.n_active() == count_by_held_out(
        counted.count_candidates_, counted.count_held_out_mse_, variance, 0.01)
    # X_val: no held-out positions of X, so the end of the annealing decides, and the
    # stored parameters say so
    val = BetaVAE(**params).fit(toy_x[:150], X_val=toy_x[150:], progress=False)
    assert val.count_candidates_ == [] and val.get_config()["params"]["count_tolerance"] == 0
    assert val.resolved_params()["count_tolerance"] == 0.01  # the setting itself is kept


def test_a_requested_count_takes_the_snapshot_with_the_lowest_held_out_error():
    from types import SimpleNamespace

    from pycroscopy_bevae.models import Snapshot
    from pycroscopy_bevae.models.selection import choose_snapshot

    s = SimpleNamespace(kl_threshold=0.1, mse_tolerance=2.0, r2_tolerance=0.0)

    def snap(k, val):
        mu = np.zeros((2, 3))
        mu[:, :k] = [[2.0], [-2.0]]
        losses = {"mse": 1.0} if val is None else {"mse": 1.0, "val_recon_mse": val}
        return Snapshot(0, 0.1, 0.0, losses, mu, np.zeros((2, 3)), {})

    snaps = [snap(3, 0.5), snap(2, 0.2), snap(2, 0.3), snap(1, 0.9)]
    assert choose_snapshot(snaps, s, None, 2) == 1  # not the latest (2): held out 0.2 < 0.3
    assert choose_snapshot(snaps, s, None, 1) == 3
    # without held-out errors: the latest, as before
    assert choose_snapshot([snap(2, None), snap(2, None)], s, None, 2) == 1


@pytest.mark.slow
def test_the_automatic_count_resumes_where_the_annealing_ended(toy_x):
    class Stop(Exception):
        pass

    params = dict(TINY, latent_dim=4, epochs=5, prime_epochs=2, round_updates=20,
                  learning_rate=1e-2, beta_start=2.0, beta_step=4.0, relax_epochs=2,
                  count_tolerance=0.02)
    state = {}

    def stop_at_the_end_of_the_annealing(epoch, est):
        if epoch == 4:
            state.update(est.training_state())
            raise Stop

    with pytest.raises(Stop):
        BetaVAE(**params).fit(toy_x, progress=False,
                              on_epoch_end=stop_at_the_end_of_the_annealing)
    assert state["relax"] is None
    resumed = BetaVAE(**params).fit(toy_x, progress=False, initial_state=state)
    ref = BetaVAE(**params).fit(toy_x, progress=False)
    assert resumed.count_candidates_ == ref.count_candidates_
    assert resumed.history_["loss"] == ref.history_["loss"]
    a, b = ref.model_.get_weight_arrays(), resumed.model_.get_weight_arrays()
    assert max(float(np.abs(a[k] - b[k]).max()) for k in a) == 0.0
