"""The real PZT benchmark as USID (needs ../shared/data/pzt_beps; skipped without it)."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from pycroscopy_bevae import DictionaryLearningProcess, MissingFileError, ParameterError
from pycroscopy_bevae.io import describe_loops, select_loops
from pycroscopy_bevae.io.pzt import (
    PROJECTION_GROUP,
    convert_pzt_benchmark,
    load_pzt_arrays,
    read_loopdata_mat,
    reference_clean,
    write_projected_loops,
)
from tests.helpers import SHARED_DATA

PZT = SHARED_DATA / "pzt_beps"
needs_data = pytest.mark.skipif(not PZT.exists(), reason=f"PZT benchmark data absent ({PZT})")


@needs_data
def test_cleaning_pipeline_reproduces_reference_array():
    loops, volts = read_loopdata_mat(PZT / "Loopdata_mixed.mat")
    assert loops.shape == (3600, 96) and np.isnan(loops).sum() == 3
    ref = np.load(PZT / "pizoresponse.npy")[:, :, 0]
    np.testing.assert_allclose(reference_clean(loops), ref, rtol=0, atol=1e-12)
    np.testing.assert_allclose(volts, np.load(PZT / "voltage.npy").ravel())


@needs_data
def test_converted_file_has_projection_layout(tmp_path):
    path = convert_pzt_benchmark(PZT, tmp_path / "pzt.h5")
    arr = load_pzt_arrays(PZT)
    with h5py.File(path, "r") as f:
        grp = f[PROJECTION_GROUP]
        lay = describe_loops(grp["Piezoresponse"])
        assert lay.grid_shape == (60, 60) and lay.n_steps == 96
        assert lay.fields == ("off",) and lay.n_cycles == 1
        assert grp["Resonance"].attrs["units"] == "Hz"
        assert 1.29e6 < grp["Resonance"][()].mean() < 1.35e6
    with h5py.File(path, "r") as f:
        sel = select_loops(f[PROJECTION_GROUP + "/Piezoresponse"])
    np.testing.assert_allclose(sel.dc_values, arr.voltage, atol=1e-5)
    # a global z-score of the converted loops gives back the benchmark arrays
    x = sel.data
    np.testing.assert_allclose((x - x.mean()) / x.std(), arr.piezoresponse, atol=1e-10)


@needs_data
@pytest.mark.slow
def test_dictionary_learning_on_real_pzt(tmp_path):
    path = convert_pzt_benchmark(PZT, tmp_path / "pzt.h5")
    with h5py.File(path, "r+") as f:
        proc = DictionaryLearningProcess(f[PROJECTION_GROUP], n_components=5, alpha=1.0,
                                         max_iter=10, random_state=0)
        grp = proc.compute()
        assert grp["Coefficients"].shape == (3600, 5)
        # global scaling stored = the benchmark's own z-score of each modality
        std = grp["Scaler_Std"][()]
        assert std[0, 0] == pytest.approx(7.8599e-5, rel=1e-3)
        assert std[1, 0] == pytest.approx(3.14542e3, rel=1e-3)
        # even a short fit reconstructs the real loops far better than the 0.36 the paper
        # reports; the full fit reaches 0.012 (benchmarks/bench_dictionary.py)
        assert grp.attrs["mse"] < 0.05


def test_writer_validates(tmp_path):
    with pytest.raises(ParameterError, match=r"piezoresponse must be \(4, 8\)"):
        write_projected_loops(tmp_path / "x.h5", np.zeros((5, 8)), np.arange(8), (2, 2))
    with pytest.raises(ParameterError, match="resonance must have the shape"):
        write_projected_loops(tmp_path / "x.h5", np.zeros((4, 8)), np.arange(8), (2, 2),
                              resonance=np.zeros((4, 7)))
    with pytest.raises(MissingFileError, match="pizoresponse.npy"):
        load_pzt_arrays(tmp_path)
    path = write_projected_loops(tmp_path / "ok.h5", np.random.default_rng(0).random((4, 8)),
                                 np.arange(8.0), (2, 2), field="on")
    with h5py.File(path, "r") as f:
        assert describe_loops(f[PROJECTION_GROUP + "/Piezoresponse"]).fields == ("on",)
