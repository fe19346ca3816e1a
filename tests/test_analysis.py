"""Validation numbers against hand-computed cases."""

import numpy as np
import pytest

from pycroscopy_bevae.analysis import (
    active_channels,
    active_components,
    best_median_worst,
    cluster_agreement,
    error_per_index,
    ground_truth_r2,
    latent_traversal,
    spectrum_mse,
)
from pycroscopy_bevae.exceptions import ParameterError


def test_spectrum_mse_by_hand_2d_and_3d():
    data = np.array([[0.0, 0.0, 0.0, 0.0], [1.0, 2.0, 3.0, 4.0]])
    recon = np.array([[1.0, -1.0, 0.0, 2.0], [1.0, 2.0, 3.0, 2.0]])
    # (1 + 1 + 0 + 4) / 4 = 1.5 ; (0 + 0 + 0 + 4) / 4 = 1
    np.testing.assert_allclose(spectrum_mse(data, recon), [1.5, 1.0])
    three = np.stack([data, 2 * data], axis=2)  # channels: MSE averages over both
    rec3 = np.stack([recon, 2 * data], axis=2)
    np.testing.assert_allclose(spectrum_mse(three, rec3), [0.75, 0.5])


def test_error_per_index_is_absolute_difference():
    d = np.array([[1.0, -2.0, 3.0]])
    r = np.array([[0.0, 1.0, 3.5]])
    np.testing.assert_allclose(error_per_index(d, r), [[1.0, 3.0, 0.5]])


def test_shape_mismatch_is_a_parameter_error():
    with pytest.raises(ParameterError, match="same shape"):
        spectrum_mse(np.zeros((3, 4)), np.zeros((3, 5)))


def test_best_median_worst_picks_real_spectra_and_ignores_nan():
    e = np.array([0.5, 0.1, np.nan, 0.9, 0.3, 0.7])
    # finite sorted: 0.1(1) 0.3(4) 0.5(0) 0.7(5) 0.9(3); median rank 5 // 2 = 2 -> index 0
    assert best_median_worst(e) == {"best": 1, "median": 0, "worst": 3}
    with pytest.raises(ParameterError, match="no finite"):
        best_median_worst([np.nan, np.inf])


def test_active_channels_relative_spread():
    z = np.c_[np.linspace(0, 10, 50), np.full(50, 4.0), np.linspace(0, 0.05, 50),
              np.linspace(0, 0.2, 50)]
    assert active_channels(z, rel_threshold=0.01).tolist() == [0, 3]
    assert active_channels(np.ones((5, 3))).size == 0
    assert active_channels is active_components  # the earlier name of the same rule


def test_latent_traversal_linear_decoder_by_hand():
    # channel 0 takes values 0..9; channel 1 = 10 * channel 0 (they co-vary)
    z = np.c_[np.arange(10.0), 10 * np.arange(10.0)]
    atoms = np.array([[1.0, 0.0], [0.0, 1.0]])
    t = latent_traversal(z, lambda v: v @ atoms, channel=0, n_values=3, k=2)
    np.testing.assert_allclose(t.values, [0.0, 4.5, 9.0])
    # nearest 2 positions: value 0 -> {0, 1}; 4.5 -> {4, 5}; 9 -> {9, 8}
    np.testing.assert_allclose(t.latents[:, 1], [5.0, 45.0, 85.0])
    np.testing.assert_allclose(t.latents[:, 0], t.values)
    np.testing.assert_allclose(t.spectra, t.latents)
    with pytest.raises(ParameterError, match="channel must be in 0..1"):
        latent_traversal(z, lambda v: v, channel=2)


def test_latent_traversal_custom_range_and_k_clipped():
    z = np.random.default_rng(0).normal(size=(20, 3))
    t = latent_traversal(z, lambda v: v.sum(axis=1, keepdims=True), 2, n_values=5, k=1000,
                         value_range=(-1.0, 1.0))
    np.testing.assert_allclose(t.values, np.linspace(-1, 1, 5))
    # k clipped to all 20 positions: the other channels are the overall mean
    np.testing.assert_allclose(t.latents[:, :2], np.tile(z[:, :2].mean(axis=0), (5, 1)))


def test_ground_truth_r2_known_function_and_noise():
    rng = np.random.default_rng(3)
    z = rng.uniform(-1, 1, size=(600, 3))
    truth = np.c_[np.sin(2 * z[:, 0]) + z[:, 1] ** 2, rng.normal(size=600)]
    r2 = ground_truth_r2(z, truth, n_neighbors=8)
    assert r2[0] > 0.9
    assert r2[1] < 0.1
    # the truth in a channel the embedding lacks cannot be predicted
    assert ground_truth_r2(z[:, 2:], truth[:, 0])[0] < 0.1


def test_cluster_agreement_perfect_and_chance():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 50)
    centres = np.array([[0.0, 0.0], [5.0, 0.0], [0.0, 5.0]])
    z = centres[labels] + rng.normal(scale=0.3, size=(150, 2))
    assert cluster_agreement(z, labels) == pytest.approx(1.0)
    assert abs(cluster_agreement(rng.normal(size=(150, 2)), labels)) < 0.1
