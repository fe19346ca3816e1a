"""Loop projection numerics against exact, hand-built cases."""

from __future__ import annotations

import numpy as np
import pytest

from pycroscopy_bevae import ParameterError
from pycroscopy_bevae.datasets import make_synthetic_beps
from pycroscopy_bevae.models import project_loops, rotation_angles
from pycroscopy_bevae.preprocessing import interp_nan


def _loops(n_pos=5, seed=0):
    """Clean complex loops with known projection: z = (P + i q) exp(i phi0)."""
    rng = np.random.default_rng(seed)
    dc = np.concatenate([np.linspace(0, 10, 6), np.linspace(8, -10, 10), np.linspace(-8, -2, 4)])
    rising = np.gradient(dc) > 0
    coer = rng.uniform(2, 4, (n_pos, 1, 1))
    p = np.tanh((dc - np.where(rising, coer, -coer)) / 1.5) + 0.01 * dc
    p = np.broadcast_to(p, (n_pos, 2, dc.size)).copy()
    p[:, 1] *= 0.9  # a second loop of each position
    phi0 = rng.uniform(-np.pi, np.pi, (n_pos, 1, 1))
    q = rng.uniform(-0.1, 0.1, (n_pos, 1, 1))
    z = (p + 1j * q) * np.exp(1j * phi0)
    return dc, p, z, phi0[:, 0, 0]


def test_exact_recovery_of_loops_and_angles():
    dc, p, z, phi0 = _loops()
    res = project_loops(np.abs(z), np.angle(z), dc)
    np.testing.assert_allclose(res.piezoresponse, p, atol=1e-12)
    err = np.angle(np.exp(1j * (res.rotation_angle[:, 0] + phi0)))
    np.testing.assert_allclose(err, 0, atol=1e-12)
    assert res.rotation_angle.shape == (5, 1) and res.n_failed == 0


def test_per_loop_agrees_on_clean_data():
    dc, p, z, phi0 = _loops()
    res = project_loops(np.abs(z), np.angle(z), dc, per="loop")
    assert res.rotation_angle.shape == (5, 2)
    np.testing.assert_allclose(res.piezoresponse, p, atol=1e-12)


def test_constant_phase_shift_does_not_change_loop():
    dc, p, z, _ = _loops()
    ref = project_loops(np.abs(z), np.angle(z), dc).piezoresponse
    for shift in (0.3, np.pi / 2, np.pi, -2.5):
        z2 = z * np.exp(1j * shift)
        out = project_loops(np.abs(z2), np.angle(z2), dc).piezoresponse
        np.testing.assert_allclose(out, ref, atol=1e-12)


def test_sign_convention():
    dc, p, z, _ = _loops()
    pos = project_loops(np.abs(z), np.angle(z), dc).piezoresponse
    neg = project_loops(np.abs(z), np.angle(z), dc, sign="negative").piezoresponse
    np.testing.assert_allclose(neg, -pos, atol=1e-12)
    cov = ((pos - pos.mean(-1, keepdims=True)) * (dc - dc.mean())).sum(-1)
    assert (cov > 0).all()


def test_rejected_fits_are_interpolated_and_counted():
    dc, p, z, _ = _loops(n_pos=2)
    amp, ph = np.abs(z), np.angle(z)
    r2 = np.ones_like(amp)
    amp[0, 0, 7] = np.nan
    r2[1, 1, 3] = 0.1
    amp[1, 1, 3] = 50.0  # garbage value with low R2
    res = project_loops(amp, ph, dc, r2=r2, r2_threshold=0.5)
    assert res.n_failed == 2
    assert not res.valid[0, 0, 7] and not res.valid[1, 1, 3]
    for (i, j, k) in ((0, 0, 7), (1, 1, 3)):
        expect = 0.5 * (res.piezoresponse[i, j, k - 1] + res.piezoresponse[i, j, k + 1])
        assert res.piezoresponse[i, j, k] == pytest.approx(expect)
    kept = project_loops(amp, ph, dc, r2=r2, r2_threshold=0.5, fill_failed=False)
    assert np.isnan(kept.piezoresponse[0, 0, 7]) and np.isnan(kept.piezoresponse[1, 1, 3])


def test_noisy_synthetic_accuracy():
    s = make_synthetic_beps(shape=(12, 12), seed=2)
    n = s.amplitude.shape[0]
    shape = (n, -1, s.dc.size)
    # (pos, cycle, step, field) -> (pos, loops, steps)
    amp, ph, fr, r2 = (np.moveaxis(a, 3, 2).reshape(shape) for a in
                       (s.amplitude, s.phase, s.frequency, s.r2))
    truth = np.moveaxis(s.true_piezoresponse, 3, 2).reshape(shape)
    res = project_loops(amp, ph, s.dc, frequency=fr, r2=r2, r2_threshold=0.5)
    d = res.piezoresponse - res.piezoresponse.mean(-1, keepdims=True)
    t = truth - truth.mean(-1, keepdims=True)
    corr = (d * t).sum(-1) / np.sqrt((d**2).sum(-1) * (t**2).sum(-1))
    assert np.median(corr) > 0.999
    assert np.isfinite(res.piezoresponse).all() and np.isfinite(res.resonance).all()
    err = np.angle(np.exp(1j * (res.rotation_angle[:, 0] - s.true_rotation)))
    assert np.median(np.abs(err)) < 5e-3


def test_rotation_angles_validates():
    z = np.ones((1, 1, 4), complex)
    with pytest.raises(ParameterError, match="per must be one of"):
        rotation_angles(z, np.arange(4), per="pixel")
    with pytest.raises(ParameterError, match="sign must be one of"):
        rotation_angles(z, np.arange(4), sign="up")
    with pytest.raises(ParameterError, match="same shape"):
        project_loops(np.ones((2, 4)), np.ones((2, 4)), np.arange(4))


def test_interp_nan_edges_and_empty_rows():
    x = np.array([[np.nan, 2.0, np.nan, np.nan, 8.0, np.nan],
                  [np.nan] * 6,
                  [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]])
    out = interp_nan(x)
    np.testing.assert_allclose(out[0], [2, 2, 4, 6, 8, 8])
    assert np.isnan(out[1]).all()
    np.testing.assert_array_equal(out[2], x[2])
    # along another axis, with an explicit validity mask
    y = interp_nan(x[[0, 2]].T, axis=0, valid=np.array([True, True, False, True, True, True]
                                                        )[:, None])
    np.testing.assert_allclose(y[:, 1], [1, 2, 3, 4, 5, 6])
