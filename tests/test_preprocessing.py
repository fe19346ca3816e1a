"""Cleaning, scaling and stacking of loops."""

from __future__ import annotations

import numpy as np
import pytest

from pycroscopy_bevae import ParameterError
from pycroscopy_bevae.preprocessing import (
    LoopScaler,
    MultiScaler,
    clean_loops,
    stack_channels,
    stack_features,
    unstack_channels,
    unstack_features,
)


def test_clean_loops_removes_glitches_and_fills_gaps():
    t = np.linspace(0, 2 * np.pi, 80)  # sampled finely enough for linear interpolation
    clean = np.vstack([np.sin(t), np.cos(t)])
    x = clean.copy()
    x[0, 10] += 5.0
    x[1, 30] -= 4.0
    x[1, 5] = np.nan
    out = clean_loops(x, n_outliers=2)
    assert np.isfinite(out).all()
    # the glitches are dropped and re-interpolated from their (clean) surroundings
    assert out[0, 10] == pytest.approx(clean[0, 10], abs=0.02)
    assert out[1, 30] == pytest.approx(clean[1, 30], abs=0.02)
    assert out[1, 5] == pytest.approx(clean[1, 5], abs=0.02)
    assert np.abs(out - clean).max() < 0.02


def test_value_range_filter():
    x = np.array([[1.0, 2.0, 100.0, 4.0, 5.0, 6.0, 7.0, 8.0]])
    out = clean_loops(x, value_range=(0, 10), n_outliers=0)
    np.testing.assert_allclose(out, [[1, 2, 3, 4, 5, 6, 7, 8]])


def test_clean_loops_validates():
    with pytest.raises(ParameterError, match="window must be odd"):
        clean_loops(np.zeros((2, 10)), window=6)
    with pytest.raises(ParameterError, match="2-D"):
        clean_loops(np.zeros(10))
    with pytest.raises(ParameterError, match="n_outliers"):
        clean_loops(np.zeros((2, 10)), n_outliers=10)


@pytest.mark.parametrize("mode", ["global", "step", "balanced", "none"])
def test_scaler_roundtrip_and_statistics(mode):
    rng = np.random.default_rng(0)
    x = rng.normal(3.0, 2.0, (200, 7)) * np.arange(1, 8)
    s = LoopScaler(mode).fit(x)
    z = s.transform(x)
    # (float rounding: relative to the data scale, entries near 0 have no relative digits)
    np.testing.assert_allclose(s.inverse_transform(z), x, rtol=1e-12, atol=1e-12 * np.abs(x).max())
    if mode == "global":
        assert z.mean() == pytest.approx(0, abs=1e-12) and z.std() == pytest.approx(1)
    elif mode == "step":
        np.testing.assert_allclose(z.mean(axis=0), 0, atol=1e-12)
        np.testing.assert_allclose(z.std(axis=0), 1)
    elif mode == "balanced":  # centred globally; unit spread about the mean loop
        assert z.mean() == pytest.approx(0, abs=1e-12)
        assert np.sqrt(np.mean((z - z.mean(axis=0)) ** 2)) == pytest.approx(1)
        assert np.ptp(s.std_) == 0 and z.std() > 1  # the mean loop's shape is kept on top
    else:
        np.testing.assert_array_equal(z, x)
    s2 = LoopScaler.from_dict(s.to_dict())
    np.testing.assert_array_equal(s2.transform(x), z)


def test_scaler_errors():
    with pytest.raises(ParameterError, match="scaling mode"):
        LoopScaler("minmax")
    with pytest.raises(ParameterError, match="not fitted"):
        LoopScaler().transform(np.zeros((2, 3)))
    s = LoopScaler("step").fit(np.ones((4, 3)))
    assert (s.std_ == 1).all()  # constant steps do not divide by zero
    with pytest.raises(ParameterError, match="expected 3 steps"):
        s.transform(np.zeros((2, 4)))


def test_multiscaler_is_per_modality():
    rng = np.random.default_rng(1)
    a = rng.normal(0, 1e-4, (50, 6))
    b = rng.normal(1.3e6, 3e3, (50, 6))
    ms = MultiScaler("global").fit([a, b])
    za, zb = ms.transform([a, b])
    assert za.std() == pytest.approx(1) and zb.std() == pytest.approx(1)
    assert ms.mean_.shape == (2, 6)
    back = MultiScaler.from_arrays("global", ms.mean_, ms.std_).inverse_transform([za, zb])
    np.testing.assert_allclose(back[1], b)
    with pytest.raises(ParameterError, match="expected 2 modalities"):
        ms.transform([a])


def test_stacking():
    a, b = np.arange(6.0).reshape(2, 3), 10 + np.arange(6.0).reshape(2, 3)
    s = stack_features([a, b])
    np.testing.assert_array_equal(s[0], [0, 1, 2, 10, 11, 12])
    back = unstack_features(s, [3, 3])
    np.testing.assert_array_equal(back[1], b)
    c = stack_channels([a, b])
    assert c.shape == (2, 3, 2) and c[1, 2, 1] == 15
    np.testing.assert_array_equal(unstack_channels(c)[0], a)
    with pytest.raises(ParameterError, match="same number of positions"):
        stack_features([a, np.zeros((3, 3))])
    with pytest.raises(ParameterError, match="equal lengths"):
        stack_channels([a, np.zeros((2, 4))])
    with pytest.raises(ParameterError, match="do not add up"):
        unstack_features(s, [2, 3])


def test_balanced_scaling_gives_each_modality_unit_variation():
    """A modality that is mostly its mean loop (the PZT piezoresponse: 8 % variation)
    weighs as much as one that is all variation, unlike under global scaling."""
    rng = np.random.default_rng(1)
    loop = np.sin(np.linspace(0, 2 * np.pi, 40))
    mostly_loop = 10 * loop + rng.normal(0, 1, (300, 40))
    all_variation = rng.normal(5, 3, (300, 40))
    glob = MultiScaler("global").fit_transform([mostly_loop, all_variation])
    bal = MultiScaler("balanced").fit_transform([mostly_loop, all_variation])

    def spread(z):
        return float(np.sqrt(np.mean((z - z.mean(axis=0)) ** 2)))

    assert spread(glob[0]) < 0.2 and spread(glob[1]) == pytest.approx(1, abs=0.01)
    assert spread(bal[0]) == pytest.approx(1) and spread(bal[1]) == pytest.approx(1)


def test_streamed_scaler_fit_equals_in_memory_for_every_mode(tmp_path):
    import h5py

    from pycroscopy_bevae import LoopProjector, write_synthetic_beps
    from pycroscopy_bevae.io.loop_sources import LoopSources
    from pycroscopy_bevae.process.streaming import fit_scaler_in_chunks

    path = write_synthetic_beps(tmp_path / "s.h5", shape=(7, 6), seed=2)
    with h5py.File(path, "r+") as f:
        src = LoopSources.from_input(LoopProjector(f, progress=False).compute())
        mods = src.read()
        for mode in LoopScaler.MODES:
            ref = MultiScaler(mode).fit(mods)
            streamed = fit_scaler_in_chunks(src, mode, rows=10)  # 42 positions in 5 blocks
            np.testing.assert_allclose(streamed.mean_, ref.mean_, rtol=1e-12, atol=1e-12,
                                       err_msg=mode)
            np.testing.assert_allclose(streamed.std_, ref.std_, rtol=1e-12, err_msg=mode)


def test_not_fitted_is_a_package_error_and_scikit_learns():
    from sklearn.exceptions import NotFittedError as SklearnNotFittedError

    from pycroscopy_bevae import BevaeError
    from pycroscopy_bevae.exceptions import NotFittedError
    from pycroscopy_bevae.models import BetaVAE, DictionaryLearner

    calls = {"LoopScaler": lambda: LoopScaler().transform(np.zeros((2, 3))),
             "MultiScaler": lambda: MultiScaler().transform([np.zeros((2, 3))]),
             "DictionaryLearner": lambda: DictionaryLearner().transform(np.zeros((2, 3))),
             "BetaVAE": lambda: BetaVAE().transform(np.zeros((2, 3)))}
    for name, call in calls.items():
        with pytest.raises(NotFittedError, match=f"this {name} is not fitted yet") as info:
            call()
        for cls in (SklearnNotFittedError, ParameterError, BevaeError):
            assert isinstance(info.value, cls), (name, cls)


@pytest.mark.parametrize("mode", ["global", "step", "balanced"])
def test_values_whose_squares_underflow_are_still_standardised(mode):
    """(1e-293)**2 is 0 in float64: the spread is measured on a rescaled copy (found by
    the property test on subnormal inputs)."""
    x = np.array([[1.79614093e-293, 0.0], [0.0, 3e-294], [5e-294, 1e-293]])
    z = LoopScaler(mode).fit(x).transform(x)
    if mode == "global":
        assert z.std() == pytest.approx(1)
    elif mode == "step":
        np.testing.assert_allclose(z.std(axis=0), 1)
    else:
        assert np.sqrt(np.mean((z - z.mean(axis=0)) ** 2)) == pytest.approx(1)
