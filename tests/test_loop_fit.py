"""The 9-parameter loop fit: the batched estimator and ``LoopFitProcess``."""

from __future__ import annotations

import warnings

import h5py
import numpy as np
import pytest

from pycroscopy_bevae import LoopFitProcess
from pycroscopy_bevae.exceptions import BEPSFormatError, ParameterError
from pycroscopy_bevae.io.usid import as_text
from pycroscopy_bevae.models import LOOP_PARAMETERS, fit_loops, loop_model
from pycroscopy_bevae.models.loop_fit import rising_steps
from tests.helpers import FIT, PROJ_GROUP, file_digest, projected_map


def _random_params(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    p = np.empty((n, 9))
    p[:, 0] = rng.uniform(-0.5, 0.5, n)        # offset
    p[:, 1] = rng.uniform(0.5, 3.0, n)         # amplitude
    p[:, 2] = rng.uniform(1.0, 6.0, n)         # coercive voltage, rising branch
    p[:, 3] = rng.uniform(-6.0, -1.0, n)       # coercive voltage, falling branch
    p[:, 4] = rng.uniform(-0.05, 0.05, n)      # slope
    p[:, 5:] = rng.uniform(0.4, 2.0, (n, 4))   # widths
    return p


def _triangle(n: int = 96, v: float = 10.0) -> np.ndarray:
    """0 -> +v -> -v -> 0, as BEPS waveforms run."""
    t = np.arange(n) / n
    return v * np.where(t < 0.25, 4 * t, np.where(t < 0.75, 2 - 4 * t, 4 * t - 4))


def test_fit_recovers_the_parameters_of_model_loops():
    dc = _triangle()
    true = _random_params(60)
    res = fit_loops(loop_model(true, dc), dc)
    assert np.nanmin(res.r2) > 0.99999
    np.testing.assert_allclose(res.parameters[:, :5], true[:, :5], atol=2e-3)
    # widths are only seen where the branch has steps near its coercive voltage
    assert np.median(np.abs(res.parameters[:, 5:] - true[:, 5:])) < 0.01


def test_fit_with_noise_follows_the_true_loops():
    dc = _triangle()
    true = _random_params(200, seed=1)
    clean = loop_model(true, dc)
    noisy = clean + 0.05 * np.random.default_rng(2).standard_normal(clean.shape)
    res = fit_loops(noisy, dc)
    r2_truth = 1 - np.sum((res.fitted - clean) ** 2, 1) / np.sum(
        (clean - clean.mean(1, keepdims=True)) ** 2, 1)
    assert np.median(r2_truth) > 0.999
    assert np.median(np.abs(res.parameters[:, 2:4] - true[:, 2:4])) < 0.05


@pytest.mark.parametrize("shift", [24, 48, 72])
@pytest.mark.parametrize("reverse", [False, True])
def test_any_acquisition_order_gives_the_same_fit(shift, reverse):
    """A waveform that starts elsewhere: the same parameters. Run the other way round,
    the branch measured with rising bias is the other one: 'Up' and 'Down' swap."""
    dc = _triangle()
    true = _random_params(20, seed=3)
    loops = loop_model(true, dc)
    order = np.roll(np.arange(dc.size), -shift)
    expected = true
    if reverse:
        order = order[::-1]
        expected = true[:, [0, 1, 3, 2, 4, 7, 8, 5, 6]]
    res = fit_loops(loops[:, order], dc[order])
    np.testing.assert_allclose(res.parameters[:, :5], expected[:, :5], atol=2e-3)


def test_rising_steps_of_a_waveform_starting_at_its_minimum():
    dc = np.array([-2.0, -1, 0, 1, 2, 1, 0, -1])
    assert rising_steps(dc).tolist() == [True, True, True, True, False, False, False, False]


def test_bad_loops_are_refused_or_left_nan():
    dc = _triangle(16)
    with pytest.raises(ParameterError, match=r"loops must be \(loops, 16\)"):
        fit_loops(np.zeros((3, 15)), dc)
    with pytest.raises(ParameterError, match="sweep up and down"):
        fit_loops(np.zeros((3, 16)), np.arange(16.0))
    loops = loop_model(_random_params(3), dc)
    loops[1] = np.nan
    loops[2] = 1.0  # constant: nothing to fit
    res = fit_loops(loops, dc)
    assert np.isfinite(res.parameters[0]).all() and res.r2[0] > 0.9999
    assert np.isnan(res.parameters[1:]).all() and np.isnan(res.r2[1:]).all()


@pytest.fixture(scope="module")
def fitted_map(tmp_path_factory):
    path = projected_map(tmp_path_factory.mktemp("loopfit") / "m.h5", shape=(8, 8), seed=4)
    with h5py.File(path, "r+") as f:
        grp = LoopFitProcess(f[PROJ_GROUP]["Piezoresponse"], progress=False).compute().name
    return path, grp


def test_process_writes_parameters_with_units_and_fits_the_true_loops(fitted_map):
    path, name = fitted_map
    with h5py.File(path, "r") as f:
        grp = f[name]
        assert name.endswith("Piezoresponse-Loop_Fit_000")
        for param, unit in LOOP_PARAMETERS.items():
            dset = grp[param]
            assert dset.shape == (64, 4) and dset.attrs["units"] == unit.format(u="V")
        assert grp["Slope"].attrs["units"] == "V/V"
        assert grp.attrs["tool"] == "LoopFitProcess" and 0.99 < grp.attrs["r2_median"] <= 1
        fitted = grp["Fitted_Loops"][()]
        truth = f["Ground_Truth/Piezoresponse"][()]
        r2_truth = 1 - np.sum((fitted - truth) ** 2, 1) / np.sum(
            (truth - truth.mean(1, keepdims=True)) ** 2, 1)
        assert np.median(r2_truth) > 0.99
        # the loop axis of the parameters: (Cycle, Field) as in the projection
        loop_vals = f[grp["R2"].attrs["Spectroscopic_Values"]][()]
        labels = [as_text(x) for x in
                  f[grp["R2"].attrs["Spectroscopic_Values"]].attrs["labels"]]
        cycle, field = loop_vals[labels.index("Cycle")], loop_vals[labels.index("Field")]
        last_off = int(np.flatnonzero((cycle == cycle.max()) & (field == 0))[0])
        up = grp["Coercive_Voltage_Up"][:, last_off]
        down = grp["Coercive_Voltage_Down"][:, last_off]
        mech = f["Ground_Truth/Mechanism"][()].ravel()
        true_up = f["Ground_Truth/Loop_Parameters/coercive_up"][()]
        true_down = f["Ground_Truth/Loop_Parameters/coercive_down"][()]
        one_step = mech != 2  # the ferroelastic positions switch in two steps
        assert np.median(np.abs(up - true_up)[one_step]) < 0.15
        assert np.median(np.abs(down - true_down)[one_step]) < 0.15
        # Fitted_Loops is the model at the stored parameters
        dc_vals = f[grp["Fitted_Loops"].attrs["Spectroscopic_Values"]]
        dc_labels = [as_text(x) for x in dc_vals.attrs["labels"]]
        sv = dc_vals[()]
        cols = np.flatnonzero((sv[dc_labels.index("Cycle")] == cycle[last_off])
                              & (sv[dc_labels.index("Field")] == 0))
        p = np.array([[grp[k][5, last_off] for k in LOOP_PARAMETERS]])
        np.testing.assert_allclose(loop_model(p, sv[dc_labels.index("DC_Offset")][cols])[0],
                                   fitted[5, cols], rtol=1e-10)


def test_process_duplicate_and_bad_inputs_leave_the_file_unchanged(fitted_map):
    path, name = fitted_map
    before = file_digest(path)
    with h5py.File(path, "r+") as f:
        again = LoopFitProcess(f[PROJ_GROUP]["Piezoresponse"], progress=False)
        assert again.compute().name == name
        with pytest.raises(BEPSFormatError, match="compound dtype.*LoopProjector"):
            LoopFitProcess(f[FIT])
        with pytest.raises(ParameterError, match="h5_main must be a loop dataset"):
            LoopFitProcess(f[PROJ_GROUP])
        with pytest.raises(ParameterError, match="max_iter"):
            LoopFitProcess(f[PROJ_GROUP]["Piezoresponse"], max_iter=0)
        with pytest.raises(ParameterError, match="max_iter"):
            LoopFitProcess(f[PROJ_GROUP]["Piezoresponse"], max_iter=2.5)
    assert file_digest(path) == before


def test_process_results_plot_as_sidpy(fitted_map):
    import matplotlib.pyplot as plt

    path, name = fitted_map
    with h5py.File(path, "r+") as f, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        proc = LoopFitProcess(f[PROJ_GROUP]["Piezoresponse"], progress=False)
        proc.compute()
        sd = proc.results_as_sidpy()
    assert sd["Coercive_Voltage_Up"].data_type.name == "SPECTRAL_IMAGE"
    assert sd["Fitted_Loops"].shape == (8, 8, 96, 4)
    for ds in sd.values():
        ds.plot()
        plt.close("all")
