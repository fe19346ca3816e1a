"""Seed agreement: channels of several runs matched one to one, on embeddings whose
relation is known (permuted, sign-flipped, rescaled, noisy copies; independent runs)."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from pycroscopy_bevae import ParameterError
from pycroscopy_bevae.analysis import match_channels, seed_agreement


def _sources(n=2000, k=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, k)), rng


def test_permuted_sign_flipped_rescaled_copies_agree_and_the_matching_is_the_permutation():
    z, rng = _sources()
    perm = np.array([2, 0, 3, 1])
    signs = np.array([1.0, -1.0, -1.0, 1.0])
    scales = np.array([0.1, 3.0, 1.0, 20.0])
    copy = z[:, perm] * signs * scales + 5.0
    agreement = seed_agreement([z, copy])
    assert agreement.mcc == pytest.approx(1.0, abs=1e-12)
    m = agreement.matches[0]
    # channel perm[j] of the first run is channel j of the second
    assert dict(zip(m.channels_a.tolist(), m.channels_b.tolist(), strict=True)) == {
        int(p): j for j, p in enumerate(perm)}
    # the sign of each matched correlation says which channels came back flipped
    flipped = {int(perm[j]) for j in np.flatnonzero(signs < 0)}
    assert {int(a) for a, c in zip(m.channels_a, m.correlation, strict=True) if c < 0} == flipped
    assert agreement.equal_counts and agreement.n_channels == (4, 4)
    assert m.unmatched_a.size == m.unmatched_b.size == 0


def test_noisy_copies_agree_to_the_noise_level_and_independent_runs_do_not():
    z, rng = _sources(n=5000)
    noise = 0.1  # correlation of a channel with its noisy copy: 1 / sqrt(1 + 0.1^2)
    runs = [z] + [z[:, rng.permutation(4)] + noise * rng.normal(size=z.shape)
                  for _ in range(2)]
    agreement = seed_agreement(runs)
    expected = 1 / np.sqrt(1 + noise**2)  # z vs copy
    assert agreement.pairwise.shape == (3, 3)
    assert agreement.pairwise[0, 1] == pytest.approx(expected, abs=0.005)
    assert agreement.pairwise[1, 2] == pytest.approx(1 / (1 + noise**2), abs=0.005)
    assert np.allclose(np.diag(agreement.pairwise), 1.0)
    assert agreement.mcc == pytest.approx(np.mean([expected, expected, 1 / (1 + noise**2)]),
                                          abs=0.005)
    independent = seed_agreement([z, rng.normal(size=z.shape), rng.normal(size=z.shape)])
    # the best of 4! assignments of independent channels: a few times 1/sqrt(n)
    assert independent.mcc < 0.05


def test_a_mixed_copy_agrees_less_than_a_permuted_one():
    z, rng = _sources(n=4000, k=2)
    angle = np.pi / 4  # a 45 degree rotation: each channel half of each source
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    agreement = seed_agreement([z, z @ rot])
    assert agreement.mcc == pytest.approx(np.cos(angle), abs=0.03)


def test_unequal_channel_counts_match_the_smaller_run_and_say_so(caplog):
    z, rng = _sources(n=3000, k=3)
    bigger = np.c_[z[:, [1, 0, 2]], rng.normal(size=(3000, 2))]  # 2 extra noise channels
    with caplog.at_level(logging.WARNING, logger="pycroscopy_bevae.analysis.agreement"):
        agreement = seed_agreement([z, bigger])
    assert "unequal channel counts [3, 5]" in caplog.text
    assert not agreement.equal_counts and agreement.n_channels == (3, 5)
    m = agreement.matches[0]
    assert m.channels_b.tolist() == [1, 0, 2]
    assert m.unmatched_a.size == 0 and m.unmatched_b.tolist() == [3, 4]
    assert agreement.mcc == pytest.approx(1.0, abs=1e-12)
    assert agreement.mcc_all == pytest.approx(3 / 5, abs=1e-12)
    assert "unequal channel counts" in agreement.summary()
    assert "MCC 1.000" in agreement.summary()


def test_a_constant_channel_matches_with_correlation_zero():
    z, _ = _sources(n=500, k=2)
    m = match_channels(z, np.c_[z[:, 0], np.ones(500)])
    assert np.all(np.isfinite(m.correlation))
    assert sorted(np.abs(m.correlation).round(12).tolist()) == [0.0, 1.0]


@pytest.mark.parametrize("runs, message", [
    ([np.zeros((10, 2))], "at least 2 embeddings, got 1"),
    ([np.zeros((10, 2)), np.zeros(10)], r"embeddings\[1\] must be \(positions, channels >= 1\)"),
    ([np.zeros((10, 2)), np.zeros((10, 0))], r"embeddings\[1\] must be"),
    ([np.zeros((10, 2)), np.full((10, 2), np.nan)], r"embeddings\[1\] contains NaN"),
    ([np.zeros((10, 2)), np.zeros((10, 2)), np.zeros((9, 2))],
     r"embeddings\[0\] has 10 positions, embeddings\[2\] 9"),
])
def test_bad_embeddings_are_refused_with_the_run_named(runs, message):
    with pytest.raises(ParameterError, match=message):
        seed_agreement(runs)
