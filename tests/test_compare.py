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


def test_linear_baselines_refuse_bad_input():
    X, _ = _low_rank()
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
