"""The two-step measure: jumps per loop branch, the separating channel, the report's line."""

from __future__ import annotations

import os

import h5py
import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

from pycroscopy_bevae import BetaVAEProcess, DictionaryLearningProcess  # noqa: E402
from pycroscopy_bevae.analysis import (  # noqa: E402
    loop_branches,
    read_ground_truth,
    read_model_result,
    switching_steps,
    two_step_channel,
    two_step_positions,
    two_step_summary,
)
from pycroscopy_bevae.datasets import triangle_waveform  # noqa: E402
from pycroscopy_bevae.exceptions import ParameterError  # noqa: E402
from pycroscopy_bevae.io import describe_loops  # noqa: E402
from pycroscopy_bevae.report import make_report, two_step_lines  # noqa: E402
from tests.helpers import PROJ_GROUP, TINY_NET, copy_to, projected_map  # noqa: E402

V = triangle_waveform(96, 16.0)
UP = np.roll(V, -1) > V


def _loop(*steps: tuple[float, float], width: float = 0.8) -> np.ndarray:
    """A loop switching by ``fraction`` at +/- ``voltage`` for each (voltage, fraction)."""
    return sum(frac * np.tanh((V - np.where(UP, vc, -vc)) / width) for vc, frac in steps)


@pytest.fixture(scope="module")
def mechanism_map(tmp_path_factory):
    """A projected 16 x 16 map of the default variant (91 ferroelastic two-step positions)."""
    return projected_map(tmp_path_factory.mktemp("two_step") / "m.h5", shape=(16, 16), seed=0)


@pytest.fixture(scope="module")
def factor_map(tmp_path_factory):
    """A projected 24 x 24 map of ``variant='factors'``."""
    return projected_map(tmp_path_factory.mktemp("two_step") / "f.h5", shape=(24, 24), seed=1,
                         variant="factors")


@pytest.fixture(scope="module")
def dl_map(mechanism_map, tmp_path_factory) -> tuple:
    """(path, group name) of the mechanism map with a 4-atom dictionary learning result;
    tests that write copy the file first."""
    path = copy_to(mechanism_map, tmp_path_factory.mktemp("two_step_dl") / "m.h5")
    with h5py.File(path, "r+") as f:
        grp = DictionaryLearningProcess(f[PROJ_GROUP], n_components=4, max_iter=40).compute()
        return path, grp.name


def _dl_result(path, name):
    """The dictionary learning result and the true two-step positions of a map."""
    with h5py.File(path, "r") as f:
        return read_model_result(f[name]), two_step_positions(read_ground_truth(f))


def _true_and_measured(path):
    """(voltage, clean loops, projected loops, is_two_step, truth) of the last cycle, off field."""
    with h5py.File(path, "r") as f:
        layout = describe_loops(f[PROJ_GROUP]["Piezoresponse"])
        cols = layout.columns(cycle=-1, field="off")
        truth = read_ground_truth(f)
        return (layout.dc_values[cols], f["Ground_Truth/Piezoresponse"][:, cols],
                f[PROJ_GROUP]["Piezoresponse"][:, cols], two_step_positions(truth), truth)


def test_branches_of_the_synthetic_waveform_cover_the_bias_range_once_each():
    up, down = loop_branches(V)
    assert np.all(np.diff(V[up]) > 0) and np.all(np.diff(V[down]) > 0)
    assert sorted(np.r_[up, down].tolist()) == list(range(96))
    assert np.all(np.roll(V, -1)[up] > V[up]) and np.all(np.roll(V, -1)[down] < V[down])


def test_jumps_are_counted_and_located_on_known_loops():
    loops = np.stack([_loop((4.0, 1.0)), _loop((3.0, 0.5), (10.5, 0.5)),
                      _loop((2.0, 0.35), (7.0, 0.35), (12.0, 0.3)), _loop((5.0, 1.0), width=3.2),
                      _loop((9.0, 0.6), (11.0, 0.4), width=1.5)])  # last: steps overlap
    steps = switching_steps(loops, V)
    assert steps.counts.tolist() == [[1, 1], [2, 2], [3, 3], [1, 1], [1, 1]]
    assert steps.two_step.tolist() == [False, True, True, False, False]
    np.testing.assert_allclose(steps.rising[1], [3.0, 10.5], atol=0.35)
    np.testing.assert_allclose(steps.falling[1], [-10.5, -3.0], atol=0.35)
    np.testing.assert_allclose(steps.rising[2], [2.0, 7.0, 12.0], atol=0.35)
    # an affine change of units (sign included) changes nothing
    again = switching_steps(-3e-4 * loops + 1e-5, V)
    assert again.counts.tolist() == steps.counts.tolist()
    np.testing.assert_allclose(np.concatenate(again.rising), np.concatenate(steps.rising))


def test_noise_of_the_synthetic_maps_size_does_not_add_jumps():
    rng = np.random.default_rng(5)
    clean = np.stack([_loop((4.0, 1.0)), _loop((3.0, 0.5), (10.5, 0.5))] * 50)
    noisy = clean + 0.04 * rng.standard_normal(clean.shape)
    assert switching_steps(noisy, V).two_step.tolist() == [False, True] * 50


def test_the_measure_recovers_the_mechanism_of_the_synthetic_map(mechanism_map):
    v, clean, measured, two, _ = _true_and_measured(mechanism_map)
    assert two.sum() == 91
    # exact on the true loops and on the loops projected from the noisy SHO fits
    assert np.array_equal(switching_steps(clean, v).two_step, two)
    assert np.array_equal(switching_steps(measured, v).two_step, two)


def test_the_measure_on_the_factor_map_finds_the_plateaus_that_exist(factor_map):
    v, clean, measured, two, truth = _true_and_measured(factor_map)
    p = truth["loop_parameters"]
    apart = (p["step_voltage"] - p["coercive_voltage"]) / p["switching_width"]
    inside = p["step_voltage"] + np.abs(p["imprint"]) < 15  # the second step is swept through
    plateau = two & (apart >= 6) & inside
    merged = two & (apart < 3)  # the two steps overlap: no plateau between them
    assert plateau.sum() > 50 and merged.sum() > 20
    for loops in (clean, measured):
        found = switching_steps(loops, v).two_step
        assert not found[~two].any()  # never a step on a one-step loop
        assert found[plateau].mean() >= 0.95
        assert not found[merged].any()


def test_the_separating_channel_is_found_with_its_auc():
    rng = np.random.default_rng(0)
    two = rng.random(400) < 0.25
    z = rng.normal(size=(400, 4))
    z[:, 2] += 4.0 * two  # channel 2 separates; channel 0 a little, inverted
    z[:, 0] -= 0.8 * two
    sep = two_step_channel(z, two)
    assert sep.channel == 2 and sep.sign == 1 and sep.auc > 0.99
    assert sep.aucs.shape == (4,) and 0.65 < sep.aucs[0] < 0.85
    assert np.all(np.abs(sep.aucs[[1, 3]] - 0.5) < 0.1)
    assert two_step_channel(-z, two).sign == -1 and two_step_channel(-z, two).channel == 2


def test_two_step_positions_come_from_the_mechanism_names():
    truth = {"mechanism": np.array([[0, 1], [1, 0]]), "mechanism_names": ["one_step",
                                                                          "two_step"]}
    assert two_step_positions(truth).tolist() == [False, True, True, False]
    assert two_step_positions(None) is None
    assert two_step_positions({"loop_parameters": {}}) is None
    assert two_step_positions({"mechanism": np.zeros(4, int),
                               "mechanism_names": ["one_step", "two_step"]}) is None


@pytest.mark.parametrize("call, message", [
    (lambda: switching_steps(np.zeros((2, 95)), V), r"loops must be \(loops, steps\) with "
                                                    r"steps = len\(voltage\) \(96\)"),
    (lambda: switching_steps(np.full(96, np.nan), V), "loops must be finite"),
    (lambda: switching_steps(np.zeros(96), V, min_fraction=0.6),
     r"min_fraction must be a number in \(0, 0.5\], got 0.6"),
    (lambda: switching_steps(np.zeros(96), V, level=1), r"level must be a number in \(0, 1\)"),
    (lambda: switching_steps(np.zeros(8), np.arange(8.0)),
     "voltage must sweep up and down with at least 4 steps each way"),
    (lambda: two_step_channel(np.zeros((5, 2)), np.ones(5, bool)),
     "is_two_step must mark some positions, not all"),
    (lambda: two_step_channel(np.zeros((5, 2)), np.arange(5)), "is_two_step must be boolean"),
    (lambda: two_step_channel(np.zeros((5, 0)), np.ones(5, bool)),
     r"embedding \(5, 0\) and is_two_step \(5,\) must be"),
])
def test_bad_input_is_refused_with_what_was_expected(call, message):
    with pytest.raises(ParameterError, match=message):
        call()


def test_a_dictionary_learning_summary_and_its_line(dl_map):
    res, two = _dl_result(*dl_map)
    s = two_step_summary(res, two, n_values=7, k=40)
    # the best atom is the one with the largest AUC among the atoms in use
    assert s.separation.auc == pytest.approx(two_step_channel(res.embedding, two).auc)
    assert s.separation.auc > 0.8
    # the loops are the decoded traversal in physical units
    decoded = res.scaler.inverse_transform(res.decode(s.traversal.latents))[0]
    np.testing.assert_allclose(s.loops, decoded)
    # each point's expectation is the mechanism of its 40 nearest positions in that channel
    col = res.embedding[:, s.separation.channel]
    assert s.traversal.nearest.shape == (7, 40)
    for value, near in zip(s.traversal.values, s.traversal.nearest, strict=True):
        far = np.setdiff1d(np.arange(len(col)), near)
        assert np.abs(col[near] - value).max() <= np.abs(col[far] - value).min()
    assert np.array_equal(s.expected, two[s.traversal.nearest].mean(axis=1) > 0.5)
    assert s.n_with_step == switching_steps(decoded, s.voltage).two_step.sum()
    assert s.measured == 1.0 and s.reconstructed > 0.9
    [line] = two_step_lines([s], two)
    assert line == (
        f"Two-step switching, dictionary learning: atom {s.separation.channel} separates the "
        f"91 two-step positions (of 256, ground truth) best (AUC {s.separation.auc:.2f}); "
        f"{s.n_with_step} of 7 loops generated along it show the intermediate step, matching "
        f"the mechanism of their nearest positions at {s.n_agree} of 7 points; on its "
        f"reconstructions the step measure agrees with the truth at "
        f"{100 * s.reconstructed:.1f} % of positions (input loops 100.0 %).")


@pytest.mark.slow
def test_the_report_shows_the_two_step_line_and_figure(dl_map, tmp_path):
    path = copy_to(dl_map[0], tmp_path / "m.h5")
    res, two = _dl_result(path, dl_map[1])
    rep = make_report(str(path), str(tmp_path / "report"), animations=False)
    [line] = two_step_lines([two_step_summary(res, two, k=100)], two)  # as the report does
    with open(rep.markdown) as fh:
        assert line in fh.read()
    assert os.path.getsize(rep.figures["two_step"]) > 10_000


@pytest.mark.slow
def test_no_two_step_line_without_a_two_step_mechanism(mechanism_map, tmp_path):
    path = copy_to(mechanism_map, tmp_path / "m.h5")
    with h5py.File(path, "r+") as f:
        DictionaryLearningProcess(f[PROJ_GROUP], n_components=3, max_iter=40).compute()
        labels = f["Ground_Truth/Mechanism"]
        labels[...] = np.where(labels[()] == 2, 0, labels[()])  # no ferroelastic position
    rep = make_report(str(path), str(tmp_path / "report"), animations=False)
    assert "two_step" not in rep.figures
    with open(rep.markdown) as fh:
        assert "Two-step switching" not in fh.read()


@pytest.mark.slow
def test_the_report_measures_both_models(tmp_path):
    path = projected_map(tmp_path / "s.h5", shape=(10, 10), seed=1)
    tiny = dict(TINY_NET, units=8, embedding_dim=8, latent_dim=4, epochs=5, prime_epochs=2,
                batch_size=32, progress=False)
    with h5py.File(path, "r+") as f:
        dl = read_model_result(DictionaryLearningProcess(f[PROJ_GROUP], n_components=3,
                                                         max_iter=40).compute())
        vae = read_model_result(BetaVAEProcess(f[PROJ_GROUP], **tiny).compute())
        two = two_step_positions(read_ground_truth(f))
    summaries = [two_step_summary(r, two, k=100) for r in (dl, vae)]
    lines = two_step_lines(summaries, two)
    s = summaries[1]
    assert s.separation.channel in vae.active
    assert lines[0].startswith(f"Two-step switching, dictionary learning: atom "
                               f"{summaries[0].separation.channel} separates the 35 two-step "
                               f"positions (of 100, ground truth) best")
    assert lines[1].startswith(f"Two-step switching, beta-VAE: channel {s.separation.channel} "
                               f"separates the 35 two-step positions (of 100, ground truth) "
                               f"best (AUC {s.separation.auc:.2f}); {s.n_with_step} of 9")
    rep = make_report(str(path), str(tmp_path / "report"), animations=False)
    with open(rep.markdown) as fh:
        text = fh.read()
    assert lines[0] in text and lines[1] in text
    assert "two_step" in rep.figures
