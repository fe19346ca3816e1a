"""The SHO fit of band-excitation spectra: the batched estimator and ``SHOFitProcess``."""

from __future__ import annotations

import shutil
from pathlib import Path

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


# ---- SHOFitProcess -------------------------------------------------------------------
def _raw_file(tmp_path, name="raw.h5", **kw):
    args = dict(shape=(5, 4), seed=2, n_steps=16, raw_data=True, raw_snr=None)
    args.update(kw)
    return write_synthetic_beps(tmp_path / name, **args)


@pytest.mark.filterwarnings("ignore::pycroscopy_bevae.exceptions.DataQualityWarning")
def test_process_writes_guess_and_fit_as_bglib_does(tmp_path):
    from pyUSID.io.hdf_utils import check_if_main, get_attr

    from pycroscopy_bevae import LoopProjector, SHOFitProcess
    from pycroscopy_bevae.analysis import rowwise_correlation
    from pycroscopy_bevae.io import find_sho_fit
    from pycroscopy_bevae.process.sho_fit import SHO_DTYPE

    path = _raw_file(tmp_path)
    with h5py.File(path, "r+") as f:
        raw = f[RAW]
        grp = SHOFitProcess(raw, progress=False).compute()
        assert grp.name == "/Measurement_000/Channel_000/Raw_Data-SHO_Fit_001"
        stored = f[FIT]
        for name in ("Guess", "Fit"):
            d = grp[name]
            assert check_if_main(d) and d.dtype == SHO_DTYPE and d.shape == stored.shape
            assert f[d.attrs["Position_Indices"]] == f[raw.attrs["Position_Indices"]]
            inds = f[d.attrs["Spectroscopic_Indices"]]
            assert [str(x) for x in get_attr(inds, "labels")] == ["Cycle", "DC_Offset", "Field"]
            np.testing.assert_array_equal(f[d.attrs["Spectroscopic_Values"]][()],
                                          f[stored.attrs["Spectroscopic_Values"]][()])
        assert grp.attrs["tool"] == "SHOFitProcess" and grp.attrs["max_iter"] == 100
        assert grp.attrs["version_numpy"] == np.__version__
        ours, truth = grp["Fit"][()], stored[()]
        ok = ~f["Ground_Truth/Failed_Fit"][()]
        for field in ("Amplitude [V]", "Frequency [Hz]", "Quality Factor"):
            np.testing.assert_allclose(ours[field][ok], truth[field][ok], rtol=1e-3,
                                       err_msg=field)
        assert np.abs(np.angle(np.exp(1j * (ours["Phase [rad]"][ok]
                                            - truth["Phase [rad]"][ok])))).max() < 1e-3
        assert grp.attrs["r2_median"] > 0.9999
        assert np.nanmedian(grp["Guess"]["R2 Criterion"]) < grp.attrs["r2_median"]
        # identical parameters: the existing group comes back, nothing new is written
        again = SHOFitProcess(raw, progress=False)
        assert again.duplicate_h5_groups and again.compute().name == grp.name
        # the loop projection picks our fit (the latest) and gives the loops it gives on
        # the stored (true) fit
        assert find_sho_fit(f).name == grp.name + "/Fit"
        gt = f["Ground_Truth/Piezoresponse"][()]
        corr = {}
        for src in (grp["Fit"], stored):
            proj = LoopProjector(src, progress=False).compute()
            corr[src.name] = np.median(rowwise_correlation(proj["Piezoresponse"][()], gt))
        assert abs(corr[grp.name + "/Fit"] - corr["/" + FIT]) < 1e-3


def test_frequency_anywhere_in_the_spectroscopic_order(tmp_path):
    """Frequency the slowest dimension (not the fastest, as translators write it): the
    same fit, columns matched by their indices."""
    from pycroscopy_bevae import SHOFitProcess
    from pycroscopy_bevae.io.usid import make_dims, write_main

    path = _raw_file(tmp_path, n_cycles=1)
    with h5py.File(path, "r+") as f:
        raw = f[RAW]
        ref = SHOFitProcess(raw, progress=False).compute()["Fit"][()]
        n = raw.shape[0]
        data = raw[()].reshape(n, 16, 2, 16)  # DC step, field, frequency (fastest)
        freq = f[raw.attrs["Spectroscopic_Values"]][-1, :16]
        dc = f[raw.attrs["Spectroscopic_Values"]][1, ::32]
        grp = f.create_group("Permuted")
        pos = {"inds": f[raw.attrs["Position_Indices"]], "vals": f[raw.attrs["Position_Values"]]}
        perm = write_main(grp, np.ascontiguousarray(data.transpose(0, 3, 1, 2)).reshape(n, -1),
                          "Raw_Data", "Piezoresponse", "V", pos,
                          make_dims([("Frequency", "Hz", freq), ("DC_Offset", "V", dc),
                                     ("Field", "", [1, 0])]))
        fit = SHOFitProcess(perm, progress=False).compute()["Fit"][()]
    for name in ref.dtype.names:
        np.testing.assert_array_equal(fit[name], ref[name], err_msg=name)


def _bad_raw(kind):
    def make(tmp_path):
        path = _raw_file(tmp_path, name=f"{kind}.h5", shape=(2, 2), n_steps=8, n_cycles=1)
        with h5py.File(path, "r+") as f:
            raw = f[RAW]
            if kind == "nan":
                row = raw[1]
                row[5] = np.nan
                raw[1] = row
                return path, raw.name, "non-finite values.*position 1, column 5"
            from pycroscopy_bevae.io.usid import make_dims, write_main

            pos = {"inds": f[raw.attrs["Position_Indices"]],
                   "vals": f[raw.attrs["Position_Values"]]}
            grp = f.create_group("Bad")
            if kind == "real":
                d = write_main(grp, np.abs(raw[()]), "Raw_Data", "x", "V", pos,
                               {"inds": f[raw.attrs["Spectroscopic_Indices"]],
                                "vals": f[raw.attrs["Spectroscopic_Values"]]})
                return path, d.name, "float32 values; expected the complex"
            if kind == "no_frequency":
                d = write_main(grp, raw[:, :16], "Raw_Data", "x", "V", pos,
                               make_dims([("DC_Offset", "V", np.arange(16.0))]))
                return path, d.name, "no frequency dimension"
            d = write_main(grp, raw[:, :6], "Raw_Data", "x", "V", pos,
                           make_dims([("DC_Offset", "V", [0.0, 1.0]),
                                      ("Frequency", "Hz", [1e6, 1.01e6, 1.02e6])]))
            return path, d.name, "a band of 3 frequency bin"
    return make


@pytest.mark.parametrize("kind", ["nan", "real", "no_frequency", "three_bins"])
def test_bad_raw_data_refused_before_any_write(tmp_path, kind):
    from pycroscopy_bevae import BEPSFormatError, SHOFitProcess
    from tests.helpers import file_digest

    path, name, message = _bad_raw(kind)(tmp_path)
    before = file_digest(path)
    with h5py.File(path, "r+") as f, pytest.raises(BEPSFormatError, match=message) as exc:
        SHOFitProcess(f[name], progress=False)
    assert name in str(exc.value) and str(path) in str(exc.value)
    assert file_digest(path) == before


def test_process_parameters_refused(tmp_path):
    from pycroscopy_bevae import SHOFitProcess

    path = _raw_file(tmp_path, shape=(2, 2), n_steps=8)
    with h5py.File(path, "r+") as f:
        with pytest.raises(ParameterError, match="max_iter"):
            SHOFitProcess(f[RAW], max_iter=0)
        with pytest.raises(ParameterError, match="h5_main must be the band-excitation"):
            SHOFitProcess(f["Measurement_000"])
    with h5py.File(path, "r") as f, pytest.raises(ParameterError, match="read-only"):
        SHOFitProcess(f[RAW])


def test_bglib_reads_our_fit(tmp_path):
    """BGlib's loop fitter accepts our Fit as an SHO results dataset (it checks the exact
    compound type) and its loop projection of our Fit is that of the true Fit."""
    be_loop = pytest.importorskip("BGlib.be.analysis.utils.be_loop",
                                  reason="BGlib (optional peer) is not installed")
    from BGlib.be.analysis.be_loop_fitter import BELoopFitter

    from pycroscopy_bevae import SHOFitProcess

    path = _raw_file(tmp_path, shape=(2, 2), n_cycles=1, failed_fraction=0.0)
    with h5py.File(path, "r+") as f:
        fit = SHOFitProcess(f[RAW], progress=False).compute()["Fit"]
        fitter = BELoopFitter(fit, "BEPSData", "DC modulation mode", "full", cores=1,
                              verbose=False)
        assert fitter.h5_main.name == fit.name
        ours, truth = fit[()], f[FIT][()]
        dc = f[fit.attrs["Spectroscopic_Values"]][1, ::2]  # DC of the in-field steps
    for pos in range(ours.shape[0]):
        proj = [be_loop.projectLoop(dc, d["Amplitude [V]"][::2], d["Phase [rad]"][::2])
                ["Projected Loop"] for d in (ours[pos], truth[pos])]
        np.testing.assert_allclose(proj[0], proj[1], rtol=1e-3, atol=1e-3 * np.ptp(proj[1]))


@pytest.mark.slow
def test_killed_twice_then_resumed_exactly(tmp_path):
    """SIGKILL in a child at a chunk write and after a completion flag; the next run
    resumes the partial group and gives exactly the uninterrupted results."""
    import random

    from pycroscopy_bevae import SHOFitProcess
    from tests.helpers import file_digest
    from tests.test_interrupt import _assert_survived, _flush, _kill_at

    kwargs = {"progress": False, "max_mem_mb": 2, "mem_multiplier": 24.0}  # 4 chunks
    path = Path(_raw_file(tmp_path, shape=(4, 5), n_cycles=1, raw_snr=25.0))
    ref_path = tmp_path / "ref.h5"
    shutil.copy(path, ref_path)
    with h5py.File(ref_path, "r+") as f:
        grp = SHOFitProcess(f[RAW], **kwargs).compute()
        ref = {k: grp[k][()] for k in ("Guess", "Fit")}
    before = file_digest(path)
    rng = random.Random(24)
    first = rng.choice([_flush(1), _flush(2), {"target": "status", "call": 1}])
    second = rng.choice([_flush(1), {"target": "status", "call": 1}])
    for stop in (first, second):
        _kill_at(path, "SHOFitProcess", RAW, kwargs, stop)
        _assert_survived(path, before, stop)
    with h5py.File(path, "r+") as f:
        proc = SHOFitProcess(f[RAW], **kwargs)
        assert proc.partial_h5_groups
        grp = proc.compute()
        assert grp.name.endswith("Raw_Data-SHO_Fit_001"), (first, second)
        assert sorted(k for k in grp.parent if "SHO_Fit" in k) == [
            "Raw_Data-SHO_Fit_000", "Raw_Data-SHO_Fit_001"]
        for k, v in ref.items():
            assert grp[k][()].tobytes() == v.tobytes(), (k, first, second)


def _sidpy_raw(raw: np.ndarray, freq, dc, kind="ok"):
    """(X, Y, DC, Field, Frequency) sidpy response of a 2 x 2 map."""
    import sidpy

    ds = sidpy.Dataset.from_array(raw, title="BE response")
    ds.data_type = "SPECTRAL_IMAGE"
    dims = [("X", "um", "spatial", np.arange(2.0)), ("Y", "um", "spatial", np.arange(2.0)),
            ("DC Offset", "V", "spectral", dc), ("Field", "a.u.", "spectral", [1.0, 0.0]),
            ("Frequency", "Hz", "spectral", freq)]
    if kind == "no_frequency":
        dims[4] = ("Bin", "a.u.", "spectral", np.arange(len(freq), dtype=float))
    for i, (n, u, t, v) in enumerate(dims):
        ds.set_dimension(i, sidpy.Dimension(np.asarray(v), n, units=u, dimension_type=t))
    return ds


def test_sidpy_complex_input(tmp_path):
    """The raw response as a complex sidpy SPECTRAL_IMAGE: written into h5_target_group,
    fit there, the same numbers as from the USID Raw_Data; bad ones refused first."""
    from pycroscopy_bevae import BEPSFormatError, SHOFitProcess
    from tests.helpers import file_digest

    path = _raw_file(tmp_path, shape=(2, 2), n_cycles=1, n_steps=8)
    with h5py.File(path, "r+") as f:
        raw = f[RAW]
        ref = SHOFitProcess(raw, progress=False).compute()["Fit"][()]
        freq = f[raw.attrs["Spectroscopic_Values"]][-1, :16]
        dc = f[raw.attrs["Spectroscopic_Values"]][1, ::32]
        cube = raw[()].reshape(2, 2, 8, 2, 16)
    ds = _sidpy_raw(cube, freq, dc)
    out = tmp_path / "out.h5"
    with h5py.File(out, "w") as f:
        grp = SHOFitProcess(ds, h5_target_group=f.create_group("Results"),
                            progress=False).compute()
        assert grp.name == "/Results/BE_response-SHO_Fit_000"
        assert f["Results/BE_response"].attrs["sidpy_title"] == "BE response"
        fit = grp["Fit"][()]
        for name in ref.dtype.names:
            np.testing.assert_array_equal(fit[name], ref[name], err_msg=name)
    before = file_digest(out)
    bad = {"no_frequency": (_sidpy_raw(cube, freq, dc, "no_frequency"), "no frequency"),
           "real": (_sidpy_raw(np.abs(cube), freq, dc), "expected the complex"),
           "nan": (_sidpy_raw(np.where(np.arange(16) == 3, np.nan, cube).astype(np.complex64),
                              freq, dc), "non-finite"),
           "bins": (_sidpy_raw(cube[..., :3], freq[:3], dc), "a band of 3")}
    with h5py.File(out, "r+") as f:
        for ds, message in bad.values():
            with pytest.raises(BEPSFormatError, match=message):
                SHOFitProcess(ds, h5_target_group=f["Results"], progress=False)
        with pytest.raises(ParameterError, match="h5_target_group"):
            SHOFitProcess(_sidpy_raw(cube, freq, dc))
    assert file_digest(out) == before
