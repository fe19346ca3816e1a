"""The synthetic BEPS generator: determinism, layout, and the physics of its ground truth."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from pycroscopy_bevae import ParameterError
from pycroscopy_bevae.datasets import (
    FACTOR_MECHANISMS,
    FACTORS,
    MECHANISMS,
    make_synthetic_beps,
    triangle_waveform,
    write_synthetic_beps,
)
from pycroscopy_bevae.io import find_sho_fit, select_loops


@pytest.fixture(scope="module")
def synth():
    return make_synthetic_beps(shape=(40, 40), seed=11)


def test_waveform_is_triangle():
    v = triangle_waveform(96, 16.0)
    assert v.shape == (96,)
    assert v[0] == 0 and v.max() == 16.0 and v.min() == -16.0
    assert np.allclose(np.abs(np.diff(v)), 16.0 / 24)
    assert np.argmax(v) == 24 and np.argmin(v) == 72


def test_deterministic_for_seed():
    a = make_synthetic_beps(shape=(6, 5), seed=4)
    b = make_synthetic_beps(shape=(6, 5), seed=4)
    c = make_synthetic_beps(shape=(6, 5), seed=5)
    np.testing.assert_array_equal(a.amplitude, b.amplitude)
    np.testing.assert_array_equal(a.mechanism, b.mechanism)
    assert not np.allclose(np.nan_to_num(a.amplitude), np.nan_to_num(c.amplitude))


def test_all_four_mechanisms_present(synth):
    counts = np.bincount(synth.mechanism.ravel(), minlength=4)
    assert len(counts) == len(MECHANISMS) == 4
    assert (counts / counts.sum() > 0.03).all(), counts


def test_loop_physics(synth):
    m = synth.mechanism.ravel()
    p = synth.true_piezoresponse[:, 1, :, 1] / 1e-4  # second cycle, off-field, in units of amp
    dc = synth.dc
    params = synth.parameters
    # c-domain: square loops, saturating near +-amplitude
    c = m == 0
    span = p[c].max(axis=1) - p[c].min(axis=1)
    assert np.median(span) > 1.7
    # a-domain: reduced hysteresis (opening at 0 V, descending minus rising branch) and tilt
    a = m == 1
    opening = p[:, 48] - p[:, 0]
    assert np.median(opening[a]) < 0.5 * np.median(opening[c])
    assert np.median(params["slope"][a]) > 2 * np.median(params["slope"][c])
    # imprint: loop centre shifted by ~4.5 V
    imp = m == 3
    centre = 0.5 * (params["coercive_up"] + params["coercive_down"])
    assert np.median(centre[imp]) == pytest.approx(4.5, abs=0.5)
    assert np.median(np.abs(centre[c])) < 0.5
    # ferroelastic: intermediate plateau between the two coercive steps on the rising branch
    fe = np.flatnonzero(m == 2)
    rising = np.arange(96) < 24
    mid = [int(np.argmin(np.abs(dc[rising] - 0.5 * (params["coercive_up"][i]
                                                  + params["coercive_up_2"][i]))))
           for i in fe]
    mid_val = p[fe, mid]
    low, high = p[fe, 0], p[fe, 24]
    frac = (mid_val - low) / (high - low)
    assert np.median(frac) == pytest.approx(0.5, abs=0.15)
    # resonance hardening while the intermediate state lasts, softening elsewhere
    f = synth.true_resonance[:, 1, :, 1]
    assert np.median(f[fe, mid] - f[fe, 0]) > 5e3
    assert np.median(f[c].min(axis=1) - f[c, 0]) < -3e3


def test_phase_offsets_need_projection(synth):
    assert np.std(synth.true_rotation) > 0.5
    raw = synth.amplitude * np.cos(synth.phase)
    # without projection the loop magnitude depends on the instrument phase
    good = np.isfinite(raw).all(axis=(1, 2, 3))
    ratio = np.std(raw[good, 1, :, 1], axis=1) / np.std(
        synth.true_piezoresponse[good, 1, :, 1], axis=1)
    assert ratio.min() < 0.3 and ratio.max() > 0.9


def test_failed_fits(synth):
    frac = synth.failed.mean()
    assert 0.001 < frac < 0.006
    nan = ~np.isfinite(synth.amplitude)
    assert nan.any() and (nan <= synth.failed).all()
    junk = synth.failed & ~nan
    assert (synth.r2[junk] < 0.31).all()
    assert (synth.r2[~synth.failed] >= 0.55).all()


def test_file_layout(tmp_path):
    path = write_synthetic_beps(tmp_path / "s.h5", shape=(5, 4), seed=0, raw_data=True,
                                dtype="float64")
    with h5py.File(path, "r") as f:
        fit = find_sho_fit(f)
        assert fit.dtype["Amplitude [V]"] == np.float64
        meas = f["Measurement_000"]
        assert meas.attrs["VS_steps_per_full_cycle"] == 96
        assert meas.attrs["VS_number_of_cycles"] == 2
        assert meas.attrs["grid_num_rows"] == 5 and meas.attrs["grid_num_cols"] == 4
        raw = f["Measurement_000/Channel_000/Raw_Data"]
        assert raw.dtype == np.complex64 and raw.shape == (20, 384 * 16)
        gt = f["Ground_Truth"]
        assert [s.decode() if isinstance(s, bytes) else s
                for s in gt["Mechanism"].attrs["labels"]] == list(MECHANISMS)
        assert gt["Piezoresponse"].shape == fit.shape
        assert gt["Rotation_Angle"].shape == (20,)
    sel = select_loops(path, cycle=1, field="off", fields=("Amplitude [V]",))
    assert sel.data["Amplitude [V]"].shape == (20, 96)
    np.testing.assert_allclose(sel.dc_values, triangle_waveform(96, 16.0), atol=1e-6)


def test_generator_refuses_bad_parameters(tmp_path):
    for bad in (0, -1.0, float("inf"), "25"):
        with pytest.raises(ParameterError, match="raw_snr"):
            write_synthetic_beps(tmp_path / "noisy.h5", shape=(3, 3), raw_data=True,
                                 raw_snr=bad)
    assert not (tmp_path / "noisy.h5").exists()
    with pytest.raises(ParameterError, match="n_steps"):
        make_synthetic_beps(shape=(3, 3), n_steps=10)
    with pytest.raises(ParameterError, match="shape"):
        make_synthetic_beps(shape=(0, 3))
    path = write_synthetic_beps(tmp_path / "s.h5", shape=(2, 2))
    with pytest.raises(ParameterError, match="exists"):
        write_synthetic_beps(path, shape=(2, 2))


def test_new_files_appear_only_when_complete(tmp_path):
    from pycroscopy_bevae.io.usid import new_h5_file

    target = tmp_path / "out.h5"
    target.write_bytes(b"previous content")
    with pytest.raises(RuntimeError, match="interrupted"):
        with new_h5_file(str(target)) as f:
            f.create_dataset("x", data=[1, 2, 3])
            raise RuntimeError("interrupted")
    assert target.read_bytes() == b"previous content"  # untouched
    assert not (tmp_path / "out.h5.partial").exists()  # no debris
    with new_h5_file(str(target)) as f:
        f.create_dataset("x", data=[1, 2, 3])
    with h5py.File(target, "r") as f:
        assert f["x"][()].tolist() == [1, 2, 3]


# ---- variant='factors': a benchmark that linear models cannot solve ---------------------
@pytest.fixture(scope="module")
def factor_map(tmp_path_factory):
    path = tmp_path_factory.mktemp("factors") / "factors.h5"
    write_synthetic_beps(path, shape=(30, 30), seed=2, variant="factors")
    return path


def test_default_variant_is_the_original_map(tmp_path):
    a = write_synthetic_beps(tmp_path / "a.h5", shape=(5, 6), seed=9)
    b = write_synthetic_beps(tmp_path / "b.h5", shape=(5, 6), seed=9, variant="mechanisms")
    with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb:
        assert "variant" not in fa.attrs and "variant" not in fb.attrs
        for name in ("Measurement_000/Channel_000/Raw_Data-SHO_Fit_000/Fit",
                     "Ground_Truth/Piezoresponse", "Ground_Truth/Mechanism"):
            assert fa[name][()].tobytes() == fb[name][()].tobytes()
        assert sorted(fa["Ground_Truth/Loop_Parameters"]) == sorted(fb[
            "Ground_Truth/Loop_Parameters"])


def test_factor_ground_truth(factor_map):
    with h5py.File(factor_map, "r") as f:
        assert f.attrs["variant"] == "factors"
        params = f["Ground_Truth/Loop_Parameters"]
        assert [str(x) for x in params.attrs["factors"]] == list(FACTORS)
        truth = {k: params[k][()] for k in FACTORS}
        mech = f["Ground_Truth/Mechanism"]
        labels = mech[()].ravel()
        assert [str(x) for x in mech.attrs["labels"]] == list(FACTOR_MECHANISMS)
    assert set(np.unique(labels)) == {0, 1} and 0.25 < labels.mean() < 0.75
    for name, (lo, hi) in FACTORS.items():
        y = truth[name]
        ok = np.isfinite(y)
        # defined everywhere, except the second step where a position switches once
        np.testing.assert_array_equal(ok, labels == 1 if name.startswith("step_") else True)
        assert lo <= y[ok].min() and y[ok].max() <= hi
        assert y[ok].max() - y[ok].min() > 0.6 * (hi - lo), name  # spread over the range
    both = labels == 1
    corr = np.corrcoef(np.array([truth[k][both] for k in FACTORS]))
    assert np.abs(corr - np.eye(len(FACTORS))).max() < 0.35  # nearly independent factors


def test_factor_loops_follow_their_factors():
    s = make_synthetic_beps(shape=(12, 12), seed=3, variant="factors", noise=0.0,
                            failed_fraction=0.0)
    loops = s.true_piezoresponse[:, -1, :, 1] / 1e-4  # last cycle, remanent, loop units
    v = s.dc
    rising = (np.gradient(np.r_[v[-1:], v, v[:1]])[1:-1] > 0) & (v > -v.max())
    p = s.parameters
    one = np.flatnonzero(np.isnan(p["step_voltage"]))
    two = np.flatnonzero(np.isfinite(p["step_voltage"]))
    assert len(one) > 10 and len(two) > 10
    vv = v[rising]
    for i in one[:10]:  # the rising branch is half switched at imprint + coercive voltage
        branch = loops[i, rising]
        cross = vv[np.argmin(np.abs(branch - 0.5 * (branch.max() + branch.min())))]
        assert abs(cross - (p["imprint"][i] + p["coercive_voltage"][i])) < 0.8
    checked = 0
    for i in two:  # between the two steps the loop rests at 1 - 2 h (plus the slope)
        c1 = p["imprint"][i] + p["coercive_voltage"][i]
        c2 = p["imprint"][i] + p["step_voltage"][i]
        if c2 - c1 < 4 * p["switching_width"][i] + 1:
            continue
        k = np.argmin(np.abs(vv - 0.5 * (c1 + c2)))
        expect = 1 - 2 * p["step_height"][i] + 0.004 * vv[k]
        assert abs(loops[i, rising][k] - expect) < 0.1
        checked += 1
    assert checked >= 3


def test_linear_models_leave_structure_at_as_many_components_as_factors(factor_map):
    from sklearn.decomposition import PCA

    from pycroscopy_bevae import LoopProjector
    from pycroscopy_bevae.analysis import ground_truth_r2
    from pycroscopy_bevae.io.loop_sources import LoopSources
    from pycroscopy_bevae.preprocessing import MultiScaler, stack_channels

    with h5py.File(factor_map, "r+") as f:
        grp = LoopProjector(f, progress=False).compute()
        mods = LoopSources.from_input(grp, cycle=None, field="off").read()
        truth = {k: v[()] for k, v in f["Ground_Truth/Loop_Parameters"].items()}
    X = stack_channels(MultiScaler("global").fit(mods).transform(mods)).reshape(900, -1)
    pca = PCA(len(FACTORS)).fit(X)
    z = pca.transform(X)
    assert pca.explained_variance_ratio_.sum() < 0.9  # structured residual at k = 6
    r2 = {k: ground_truth_r2(z[np.isfinite(y)], y[np.isfinite(y)])[0]
          for k, y in truth.items()}
    assert min(r2.values()) < 0.7, r2  # some factors are not linear functions of the loops
    assert r2["coercive_voltage"] > 0.9  # but the projection itself is sound


def test_factor_variant_refuses_bad_settings(tmp_path):
    with pytest.raises(ParameterError, match="variant must be one of"):
        write_synthetic_beps(tmp_path / "x.h5", shape=(3, 3), variant="nonlinear")
    with pytest.raises(ParameterError, match="v_max >= 16"):
        make_synthetic_beps(shape=(3, 3), variant="factors", v_max=10.0)
    assert not (tmp_path / "x.h5").exists()


def test_raw_data_noise_at_the_stated_snr_and_nothing_else_changes(tmp_path):
    """``raw_snr``: complex noise of std A Q / snr on every bin of Raw_Data; the Fit and
    the ground truth are the same bytes with or without raw data (and noise)."""
    from pycroscopy_bevae.datasets.synthetic_beps import _raw_frequencies

    kw = dict(shape=(6, 5), seed=3, n_steps=16, failed_fraction=0.0)
    plain = write_synthetic_beps(tmp_path / "plain.h5", **kw)
    exact = write_synthetic_beps(tmp_path / "exact.h5", raw_data=True, raw_snr=None, **kw)
    noisy = write_synthetic_beps(tmp_path / "noisy.h5", raw_data=True, **kw)  # snr 25
    raw_name = "Measurement_000/Channel_000/Raw_Data"
    with h5py.File(plain, "r") as a, h5py.File(exact, "r") as b, h5py.File(noisy, "r") as c:
        for name in ("Measurement_000/Channel_000/Raw_Data-SHO_Fit_000/Fit",
                     "Ground_Truth/Piezoresponse", "Ground_Truth/Resonance"):
            assert a[name][()].tobytes() == b[name][()].tobytes() == c[name][()].tobytes()
        assert c[raw_name].attrs["snr_at_peak"] == 25.0
        assert np.isinf(b[raw_name].attrs["snr_at_peak"])
        fit = c["Measurement_000/Channel_000/Raw_Data-SHO_Fit_000/Fit"][()]
        clean = b[raw_name][()].reshape(*fit.shape, -1)
        noise = c[raw_name][()].reshape(*fit.shape, -1) - clean
    # the exact response peaks at A Q (within the bin spacing of the band)
    peak = np.abs(clean).max(axis=-1)
    aq = fit["Amplitude [V]"] * fit["Quality Factor"]
    assert np.median(peak / aq) > 0.9 and (peak <= aq * 1.0001).all()
    # noise: zero-mean, std A Q / 25 relative to each spectrum's peak, equal in re and im
    rel = noise / aq[..., None]
    assert abs(np.std(rel) - 1 / 25) < 0.002
    assert abs(np.std(rel.real) - np.std(rel.imag)) < 0.002
    assert abs(np.mean(rel)) < 0.002
    assert _raw_frequencies().size == clean.shape[-1]
