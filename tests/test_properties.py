"""Property-based tests (hypothesis): loop projection, scalers, the toy generator.

Examples are few (25 per property) and derandomised, so CI is fast and repeatable; set
``BEVAE_HYPOTHESIS_EXPLORE=1`` to draw new examples on every run.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir
from hypothesis.extra.numpy import arrays

from pycroscopy_bevae import LoopProjector
from pycroscopy_bevae.datasets import toy_spectra, toy_training_set, write_synthetic_beps
from pycroscopy_bevae.exceptions import DataQualityWarning
from pycroscopy_bevae.models import project_loops
from pycroscopy_bevae.preprocessing import LoopScaler, MultiScaler

# hypothesis keeps caches in ./.hypothesis by default: not in the repository
set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "pycroscopy_bevae_hypothesis")
FEW = settings(max_examples=25, deadline=None, database=None,
               derandomize=not os.environ.get("BEVAE_HYPOTHESIS_EXPLORE"))


# ---- loop projection -----------------------------------------------------------------------
@st.composite
def complex_loops(draw):
    """(amplitude, phase, dc): hysteresis loops that clearly switch with the bias, with a
    perpendicular part, noise and an arbitrary instrument phase per position."""
    n_pos, n_loops = draw(st.integers(1, 3)), draw(st.integers(1, 2))
    n = draw(st.integers(4, 12))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    v = draw(st.floats(2.0, 20.0))
    dc = np.concatenate([np.linspace(0, v, n), np.linspace(v, -v, 2 * n)[1:],
                         np.linspace(-v, 0, n)[1:]])
    rising = np.gradient(dc) > 0
    coer = rng.uniform(0.1, 0.5, (n_pos, n_loops, 1)) * v
    width = rng.uniform(0.05, 0.3, (n_pos, n_loops, 1)) * v
    amp = 10.0 ** rng.uniform(-5, 0, (n_pos, 1, 1))
    loop = amp * np.tanh((dc - np.where(rising, coer, -coer)) / width)
    perp = amp * rng.uniform(-0.2, 0.2, (n_pos, 1, 1))
    noise = 0.02 * amp * (rng.standard_normal(loop.shape) + 1j * rng.standard_normal(loop.shape))
    phi0 = rng.uniform(-np.pi, np.pi, (n_pos, 1, 1))
    z = (loop + 1j * perp + noise) * np.exp(1j * phi0)
    return np.abs(z), np.angle(z), dc


def _wrap(angle):
    return np.angle(np.exp(1j * angle))


@FEW
@given(complex_loops(), st.floats(-np.pi, np.pi), st.sampled_from(["position", "loop"]))
def test_projection_is_invariant_to_a_phase_offset(loops, delta, per):
    """Adding one phase to every loop of a position (another instrument phase) changes the
    rotation angle by -delta and leaves the projected loops unchanged."""
    amp, phase, dc = loops
    a = project_loops(amp, phase, dc, per=per)
    pos = 0  # shift one position only: the others must not move either
    shifted = phase.copy()
    shifted[pos] = _wrap(phase[pos] + delta)
    b = project_loops(amp, shifted, dc, per=per)
    scale = amp.max()
    np.testing.assert_allclose(b.piezoresponse, a.piezoresponse, rtol=0, atol=1e-9 * scale)
    np.testing.assert_allclose(_wrap(b.rotation_angle[pos] - a.rotation_angle[pos] + delta), 0,
                               atol=1e-9)
    np.testing.assert_array_equal(b.rotation_angle[1:], a.rotation_angle[1:])


@FEW
@given(complex_loops(), st.sampled_from(["position", "loop"]))
def test_sign_convention(loops, per):
    """'positive': every loop (of a position, or each loop) rises with the DC bias;
    'negative' gives exactly the opposite loops."""
    amp, phase, dc = loops
    pos = project_loops(amp, phase, dc, per=per, sign="positive").piezoresponse
    neg = project_loops(amp, phase, dc, per=per, sign="negative").piezoresponse
    axes = (1, 2) if per == "position" else (2,)
    v = np.broadcast_to(dc, pos.shape)
    cov = ((pos - pos.mean(axis=axes, keepdims=True)) * (v - v.mean())).mean(axis=axes)
    assert (cov > 0).all()
    np.testing.assert_allclose(neg, -pos, rtol=0, atol=1e-12 * amp.max())


@pytest.fixture(scope="module")
def small_beps(tmp_path_factory):
    path = tmp_path_factory.mktemp("prop") / "small.h5"
    write_synthetic_beps(path, shape=(2, 2), seed=8, failed_fraction=0.0)
    return path


FIT = "Measurement_000/Channel_000/Raw_Data-SHO_Fit_000/Fit"


@settings(max_examples=8, deadline=None, database=None, derandomize=True)
@given(delta=st.floats(-np.pi, np.pi), position=st.integers(0, 3))
def test_projector_on_a_file_is_invariant_to_a_phase_offset(small_beps, tmp_path_factory,
                                                            delta, position):
    """The same property through LoopProjector and the HDF5 file (float32 phases, wrapped
    to (-pi, pi] as an SHO fitter reports them)."""
    out = {}
    work = tmp_path_factory.mktemp("prop_case")
    for label, d in (("ref", 0.0), ("shifted", delta)):
        path = work / f"{label}.h5"
        shutil.copy(small_beps, path)
        with h5py.File(path, "r+") as f:
            fit = f[FIT]
            row = fit[position]
            row["Phase [rad]"] = _wrap(row["Phase [rad]"].astype(float) + d)
            fit[position] = row
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DataQualityWarning)
                grp = LoopProjector(f, progress=False, r2_threshold=0.0).compute()
            out[label] = (grp["Piezoresponse"][()], grp["Rotation_Angle"][:, 0])
    (p0, t0), (p1, t1) = out["ref"], out["shifted"]
    np.testing.assert_allclose(p1, p0, rtol=0, atol=1e-5 * np.abs(p0).max())
    assert abs(_wrap(t1[position] - t0[position] + delta)) < 1e-5
    np.testing.assert_array_equal(np.delete(t1, position), np.delete(t0, position))


# ---- scalers -------------------------------------------------------------------------------
# (no subnormals: below 2.2e-308 a standard deviation is not representable in float64)
finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False, allow_subnormal=False)
loop_arrays = st.tuples(st.integers(1, 6), st.integers(1, 8)).flatmap(
    lambda shape: arrays(np.float64, shape, elements=finite))


@FEW
@given(loop_arrays, st.sampled_from(LoopScaler.MODES))
def test_scaler_inverse_undoes_forward(x, mode):
    s = LoopScaler(mode).fit(x)
    z = s.transform(x)
    assert np.isfinite(z).all()
    tol = 1e-9 * max(1.0, np.abs(x).max())
    np.testing.assert_allclose(s.inverse_transform(z), x, rtol=0, atol=tol)
    # the stored form (what goes into the HDF5 file) rebuilds the same scaler
    again = LoopScaler.from_dict(s.to_dict())
    np.testing.assert_array_equal(again.transform(x), z)
    if mode == "none":
        np.testing.assert_array_equal(z, x)
        return
    if mode == "balanced":
        # centred overall; unit spread about the mean loop where the loops vary beyond
        # rounding (else divided by 1: nothing but the centring happens)
        assert abs(z.mean()) < 1e-6 * max(1.0, np.abs(z).max())
        top = np.abs(x).max() or 1.0  # (measured on x / top: tiny values' squares underflow)
        if np.sqrt(np.mean((x / top - (x / top).mean(axis=0)) ** 2)) > 1e-9:
            assert abs(np.sqrt(np.mean((z - z.mean(axis=0)) ** 2)) - 1) < 1e-6
        else:
            np.testing.assert_allclose(z, x - x.mean(), rtol=0, atol=tol)
        return
    # standardised (over all values, or per step): mean 0 and standard deviation 1 where the
    # values vary beyond rounding; constant values stay constant
    blocks = [x] if mode == "global" else [x[:, [j]] for j in range(x.shape[1])]
    scaled = [z] if mode == "global" else [z[:, [j]] for j in range(z.shape[1])]
    for xb, zb in zip(blocks, scaled, strict=True):
        if np.ptp(xb) > 1e-9 * np.abs(xb).max():
            assert abs(zb.mean()) < 1e-6 and abs(zb.std() - 1) < 1e-6
        else:
            assert np.ptp(zb) == 0


@FEW
@given(st.integers(1, 5), st.integers(1, 3), st.data())
def test_multiscaler_inverse_undoes_forward(n, n_mod, data):
    mods = [data.draw(arrays(np.float64, (n, data.draw(st.integers(1, 6))), elements=finite))
            for _ in range(n_mod)]
    mode = data.draw(st.sampled_from(LoopScaler.MODES))
    ms = MultiScaler(mode).fit(mods)
    back = ms.inverse_transform(ms.transform(mods))
    for m, b in zip(mods, back, strict=True):
        np.testing.assert_allclose(b, m, rtol=0, atol=1e-9 * max(1.0, np.abs(m).max()))


# ---- the toy generator ---------------------------------------------------------------------
unit = st.floats(0.0, 1.0)
colours = st.tuples(unit, unit, unit)


@FEW
@given(colours, st.integers(2, 60))
def test_toy_spectrum_is_finite_bounded_and_vectorised(rgb, n_steps):
    one = toy_spectra(rgb, n_steps)
    assert one.shape == (n_steps,) and np.isfinite(one).all()
    # tanh in (-1, 1), sigmoid in (0, 1), SELU of t - 2 (G - 0.5), which lies in [-2, 2]
    selu_min = -1.0507009873554805 * 1.6732632423543772 * (1 - np.exp(-2.0))
    assert (one >= -1 + selu_min - 1e-12).all() and (one <= 2 + 2 * 1.0507009873554805).all()
    batch = toy_spectra(np.array([rgb, rgb[::-1], (0.5, 0.5, 0.5)]), n_steps)
    np.testing.assert_array_equal(batch[0], one)
    np.testing.assert_array_equal(batch[1], toy_spectra(rgb[::-1], n_steps))


@FEW
@given(colours, st.integers(0, 2), unit)
def test_each_colour_moves_its_feature_one_way(rgb, channel, other):
    """Raising R shifts the tanh step right and raising G the SELU kink right (the spectrum
    can only go down at every t); raising B shifts the sigmoid step right (only up)."""
    lo, hi = sorted((rgb[channel], other))
    a, b = list(rgb), list(rgb)
    a[channel], b[channel] = lo, hi
    fa, fb = toy_spectra(a, 41), toy_spectra(b, 41)
    if channel < 2:
        assert (fb <= fa + 1e-12).all()
    else:
        assert (fb >= fa - 1e-12).all()


@FEW
@given(st.integers(1, 50), st.integers(0, 2**31), st.integers(2, 30))
def test_toy_training_set_is_seeded_uniform_colours(n, seed, n_steps):
    s = toy_training_set(n, seed=seed, n_steps=n_steps)
    assert s.rgb.shape == (n, 3) and ((s.rgb >= 0) & (s.rgb < 1)).all()
    np.testing.assert_array_equal(s.spectra, toy_spectra(s.rgb, n_steps))
    np.testing.assert_array_equal(s.t, np.linspace(-1, 1, n_steps))
    np.testing.assert_array_equal(toy_training_set(n, seed=seed, n_steps=n_steps).rgb, s.rgb)
