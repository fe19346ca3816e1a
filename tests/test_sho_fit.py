"""The SHO fit of band-excitation spectra: the batched estimator and ``SHOFitProcess``."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from pycroscopy_bevae.datasets import write_synthetic_beps
from pycroscopy_bevae.datasets.synthetic_beps import _raw_frequencies
from pycroscopy_bevae.exceptions import ParameterError
from pycroscopy_bevae.models.sho_fit import fit_sho, sho_guess, sho_model
from tests.helpers import FIT

RAW = "Measurement_000/Channel_000/Raw_Data"


def _synthetic_spectra(tmp_path, raw_snr, seed=0):
    """Raw spectra of a small synthetic map, the stored Fit (their truth), failed flags."""
    path = write_synthetic_beps(tmp_path / f"raw_{raw_snr}.h5", shape=(5, 4), seed=seed,
                                n_steps=32, raw_data=True, raw_snr=raw_snr)
    with h5py.File(path, "r") as f:
        truth = f[FIT][()].ravel()
        raw = f[RAW][()].reshape(truth.size, -1)
        failed = f["Ground_Truth/Failed_Fit"][()].ravel()
    return raw, truth, failed


def _errors(params, truth, keep):
    p = params[keep].astype(float)
    t = truth[keep]
    return {"amplitude": np.abs(p[:, 0] / t["Amplitude [V]"] - 1),
            "frequency": np.abs(p[:, 1] / t["Frequency [Hz]"] - 1),
            "quality": np.abs(p[:, 2] / t["Quality Factor"] - 1),
            "phase": np.abs(np.angle(np.exp(1j * (p[:, 3] - t["Phase [rad]"]))))}


def test_noise_free_raw_data_gives_back_the_stored_fit(tmp_path):
    raw, truth, failed = _synthetic_spectra(tmp_path, None)
    res = fit_sho(raw, _raw_frequencies())
    assert res.parameters.dtype == np.float32  # complex64 in
    err = _errors(res.parameters, truth, ~failed)
    # every spectrum, not just the median (float32 data limit the precision)
    assert err["amplitude"].max() <= 1e-3 and err["quality"].max() <= 1e-3
    assert err["phase"].max() <= 1e-3 and err["frequency"].max() <= 1e-5
    assert np.nanmin(res.r2[~failed]) > 0.99999
    # failed fits became all-zero spectra: no parameters, no R2
    zero = ~np.abs(raw).any(axis=1)
    assert zero.any() and np.isnan(res.parameters[zero]).all() and np.isnan(res.r2[zero]).all()
    assert np.isfinite(res.parameters[~zero]).all()


def test_noisy_raw_data_at_snr_25(tmp_path):
    """At SNR 25 the median errors are those of a least-squares fit of this noise (BGlib's
    BESHOfitter on the same spectra: ~1.8 % amplitude, 2 % Q, 5e-5 frequency, 0.018 rad)."""
    raw, truth, failed = _synthetic_spectra(tmp_path, 25.0)
    res = fit_sho(raw.astype(np.complex128), _raw_frequencies())
    assert res.parameters.dtype == np.float64
    err = {k: np.median(v) for k, v in _errors(res.parameters, truth, ~failed).items()}
    assert err["amplitude"] < 0.025 and err["quality"] < 0.035
    assert err["frequency"] < 1e-4 and err["phase"] < 0.025
    assert 0.97 < np.median(res.r2[~failed]) < 1.0
    # the refinement improves on the guess
    assert np.median(res.r2[~failed]) > np.median(res.guess_r2[~failed])


def test_guess_and_fit_on_model_spectra_with_bounds():
    f = np.linspace(0.95e6, 1.05e6, 12)
    rng = np.random.default_rng(4)
    n = 300
    true = np.stack([rng.uniform(1e-5, 1e-3, n), rng.uniform(0.97e6, 1.03e6, n),
                     rng.uniform(40, 400, n), rng.uniform(-np.pi, np.pi, n)], axis=1)
    y = sho_model(true, f)
    g = sho_guess(y, f)
    assert np.median(np.abs(g[:, 1] / true[:, 1] - 1)) < 5e-3  # the guess is near
    res = fit_sho(y, f)
    np.testing.assert_allclose(res.parameters[:, :3], true[:, :3], rtol=1e-6)
    np.testing.assert_allclose(np.angle(np.exp(1j * (res.parameters[:, 3] - true[:, 3]))), 0,
                               atol=1e-6)
    # a resonance outside the band: the frequency stays at the band edge, A >= 0, Q > 0
    out = fit_sho(sho_model(np.array([[1e-4, 1.2e6, 100.0, 0.0]]), f), f)
    assert out.parameters[0, 1] == pytest.approx(f.max())
    assert out.parameters[0, 0] >= 0 and out.parameters[0, 2] > 0


def test_bad_input_refused():
    f = np.linspace(0.95e6, 1.05e6, 8)
    y = sho_model(np.array([[1e-4, 1e6, 100.0, 0.0]]), f)
    with pytest.raises(ParameterError, match="complex"):
        fit_sho(np.abs(y), f)
    with pytest.raises(ParameterError, match="at least 4 frequency bins"):
        fit_sho(y[:, :3], f[:3])
    with pytest.raises(ParameterError, match=r"\(spectra, 7\)"):
        fit_sho(y, f[:7])
    with pytest.raises(ParameterError, match="distinct"):
        fit_sho(y, np.r_[f[:7], f[6]])
    with pytest.raises(ParameterError, match="max_iter"):
        fit_sho(y, f, max_iter=0)
