"""Equal-terms comparison: linear baselines, factor recovery, disentanglement and
mechanism classification on small real computations with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from pycroscopy_bevae import ParameterError
from pycroscopy_bevae.analysis import (
    factor_scores,
    linear_baselines,
    mechanism_accuracy,
    modality_mse,
)


def _low_rank(n=120, steps=16, rank=3, seed=0):
    rng = np.random.default_rng(seed)
    codes = rng.normal(size=(n, rank))
    X = (codes @ rng.normal(size=(rank, steps * 2))).reshape(n, 2, steps)
    return np.moveaxis(X, 1, 2), codes  # (n, steps, modalities)


def test_pca_is_exact_at_the_true_rank_and_dictionary_rows_are_complete():
    X, _ = _low_rank()
    rows = linear_baselines(X, ks=[2, 3], seeds=[0, 1], max_iter=20)
    pca = {r["k"]: r for r in rows if r["method"] == "pca"}
    assert pca[3]["mse"] < 1e-20 < pca[2]["mse"]
    # per-modality errors of equal-sized modalities average to the overall error
    for r in rows:
        assert np.isclose(np.mean(r["mse_modality"]), r["mse"])
        assert r["embedding"].shape == (120, r["k"])
    dl = [(r["method"], r["k"], r["seed"]) for r in rows if r["method"] != "pca"]
    assert sorted(dl) == sorted((m, k, s) for m in ("dl_omp", "dl_lasso") for k in (2, 3)
                                for s in (0, 1))
    # more atoms never reconstruct worse by much; OMP codes are at most k non-zero
    omp3 = [r for r in rows if r["method"] == "dl_omp" and r["k"] == 3][0]
    assert (np.count_nonzero(omp3["embedding"], axis=1) <= 3).all()


def test_held_out_positions_are_encoded_with_the_fitted_models():
    X, _ = _low_rank(n=160)
    rng = np.random.default_rng(1)
    noisy = X + 0.05 * rng.normal(size=X.shape)
    train, held = noisy[:120], noisy[120:]
    rows = linear_baselines(train, ks=[3], seeds=[0], max_iter=20, X_held_out=held)
    by = {r["method"]: r for r in rows}
    # PCA-3 of rank-3 data plus noise: on held-out positions it leaves the noise outside
    # its subspace, (1 - 3 / 32) of the noise variance; fitted on them it leaves a bit less
    noise_left = 0.05**2 * (1 - 3 / 32)
    assert by["pca"]["mse_held_out"] == pytest.approx(noise_left, rel=0.15)
    assert by["pca"]["mse"] < by["pca"]["mse_held_out"]
    for r in rows:
        assert np.isclose(np.mean(r["mse_held_out_modality"]), r["mse_held_out"])
    # the training positions themselves, passed as held-out, give the training error
    # (PCA and OMP codes are recomputed the same way)
    same = linear_baselines(train, ks=[3], seeds=[0], max_iter=20, methods=["pca", "dl_omp"],
                            X_held_out=train)
    for r in same:
        assert r["mse_held_out"] == pytest.approx(r["mse"], rel=1e-9)


def test_linear_baselines_refuse_bad_input():
    X, _ = _low_rank()
    with pytest.raises(ParameterError, match=r"X_held_out has shape \(5, 16, 1\), expected "
                                             r"\(n, 16, 2\) as X"):
        linear_baselines(X, ks=[2], X_held_out=np.zeros((5, 16, 1)))
    with pytest.raises(ParameterError, match="k must be between"):
        linear_baselines(X, ks=[0])
    with pytest.raises(ParameterError, match="unknown methods"):
        linear_baselines(X, ks=[2], methods=["ica"])
    with pytest.raises(ParameterError, match="segments"):
        modality_mse(np.zeros((2, 4)), np.zeros((2, 4)), [3, 3])


def test_factor_scores_tell_disentangled_from_entangled():
    rng = np.random.default_rng(3)
    a, b = rng.uniform(-1, 1, size=(2, 500))
    nan_b = np.where(a > 0.8, np.nan, b)  # undefined at some positions: left out
    disentangled = np.c_[np.tanh(2 * a), b ** 3]
    rot = np.array([[np.cos(0.8), -np.sin(0.8)], [np.sin(0.8), np.cos(0.8)]])
    entangled = np.c_[a, b] @ rot
    d = factor_scores(disentangled, {"a": a, "b": nan_b})
    e = factor_scores(entangled, {"a": a, "b": b})
    for s in (d, e):
        assert s["a"]["r2"] > 0.9 and s["b"]["r2"] > 0.9  # both recover the factors
    assert d["a"]["best_channel"] == 0 and d["b"]["best_channel"] == 1
    assert d["a"]["gap"] > 0.8 and d["b"]["gap"] > 0.8  # one channel per factor
    assert e["a"]["gap"] < 0.4 and e["b"]["gap"] < 0.4  # spread over both channels
    with pytest.raises(ParameterError, match="positions"):
        factor_scores(disentangled, {"a": a[:10]})


def test_mechanism_accuracy_uses_weak_channels_by_their_information_not_scale():
    rng = np.random.default_rng(5)
    labels = rng.integers(0, 3, 600)
    # the class lives in a tiny-scale channel; a large channel is pure noise
    z = np.c_[1e-3 * (labels + 0.15 * rng.normal(size=600)), 50 * rng.normal(size=600)]
    assert mechanism_accuracy(z, labels) > 0.95
    noise = rng.normal(size=(600, 2))
    assert mechanism_accuracy(noise, labels) < 0.5  # chance is 1/3
    with pytest.raises(ParameterError, match="at least 5 positions"):
        mechanism_accuracy(z[:8], labels[:8])
