"""DictionaryLearner (estimator) and DictionaryLearningProcess (HDF5)."""

from __future__ import annotations

import shutil

import h5py
import numpy as np
import pytest
from pyUSID.io.hdf_utils import check_if_main
from sklearn.base import clone
from sklearn.decomposition import DictionaryLearning

from pycroscopy_bevae import (
    BEPSFormatError,
    DictionaryLearningProcess,
    LoopProjector,
    ParameterError,
)
from pycroscopy_bevae.exceptions import DataQualityWarning
from pycroscopy_bevae.models import DictionaryLearner, alpha_grid_search
from pycroscopy_bevae.preprocessing import LoopScaler
from tests.helpers import PROJ_GROUP, file_digest

PROJ = PROJ_GROUP


def _sparse_data(n=300, seed=0):
    """X = codes @ atoms with 2 active atoms of 4 per sample: exactly learnable."""
    rng = np.random.default_rng(seed)
    t = np.linspace(-1, 1, 30)
    atoms = np.stack([np.tanh(5 * t), np.exp(-t**2 / 0.1), t, np.sin(3 * t)])
    atoms /= np.linalg.norm(atoms, axis=1, keepdims=True)
    codes = np.zeros((n, 4))
    for i in range(n):
        codes[i, rng.choice(4, 2, replace=False)] = rng.normal(0, 3, 2)
    return codes @ atoms


def test_identical_to_plain_sklearn():
    X = _sparse_data()
    ours = DictionaryLearner(n_components=4, alpha=0.1, max_iter=30, random_state=0,
                             transform_algorithm="fit")
    ours_codes = ours.fit_transform(X)
    sk = DictionaryLearning(n_components=4, alpha=0.1, max_iter=30, random_state=0,
                            transform_algorithm="lasso_lars")
    codes = sk.fit_transform(X)
    np.testing.assert_allclose(ours.components_, sk.components_)
    np.testing.assert_allclose(ours_codes, codes)  # the fit's own codes
    # transform is a function of the dictionary and X: new lasso codes, not the fit's
    np.testing.assert_allclose(ours.transform(X), sk.transform(X))
    np.testing.assert_array_equal(ours.transform(X), ours.transform(X.copy()))
    ours.set_params(transform_algorithm="omp")
    np.testing.assert_allclose(ours.transform(X),
                               sk.set_params(transform_algorithm="omp").transform(X))


def test_learns_sparse_structure_and_reconstructs():
    X = _sparse_data()
    dl = DictionaryLearner(n_components=4, alpha=0.05, max_iter=60, random_state=0,
                           transform_algorithm="lasso_lars", transform_alpha=1e-4).fit(X)
    rel = np.mean((dl.reconstruct(X) - X) ** 2) / np.mean(X**2)
    assert rel < 1e-3
    np.testing.assert_allclose(dl.inverse_transform(dl.transform(X)),
                               dl.transform(X) @ dl.components_)


def test_scaling_is_undone_in_reconstruction():
    rng = np.random.default_rng(2)
    X = 1e-4 * _sparse_data() + 3e-5  # tiny physical units with an offset
    dl = DictionaryLearner(n_components=4, alpha=0.05, scaling="global", max_iter=100,
                           random_state=0, transform_algorithm="lasso_lars",
                           transform_alpha=1e-4).fit(X)
    scaled = dl.reconstruct(X, scaled=True)
    np.testing.assert_allclose(dl.reconstruct(X), scaled * dl.scaler_.std_[0] +
                               dl.scaler_.mean_[0])
    assert np.mean((dl.reconstruct(X) - X) ** 2) < 1e-3 * np.var(X)
    s = LoopScaler("global").fit(X)
    assert dl.score_mse(X) == pytest.approx(np.mean((scaled - s.transform(X)) ** 2))
    del rng


def test_segments_scale_modalities_separately():
    rng = np.random.default_rng(3)
    a, b = rng.normal(0, 1e-4, (100, 5)), rng.normal(1.3e6, 1e3, (100, 5))
    dl = DictionaryLearner(n_components=2, scaling="global", segments=(5, 5), max_iter=5,
                           random_state=0).fit(np.hstack([a, b]))
    assert dl.scaler_.mean_[1, 0] == pytest.approx(b.mean())
    with pytest.raises(ParameterError, match="segments"):
        DictionaryLearner(segments=(4, 5)).fit(np.hstack([a, b]))


def test_estimator_conventions_and_errors():
    dl = DictionaryLearner(n_components=3, alpha=0.3)
    assert clone(dl).get_params()["alpha"] == 0.3
    with pytest.raises(ParameterError, match="not fitted"):
        dl.transform(np.zeros((2, 5)))
    with pytest.raises(ParameterError, match="n_components must be a positive integer"):
        DictionaryLearner(n_components=0).fit(np.ones((5, 4)))
    with pytest.raises(ParameterError, match="non-finite"):
        DictionaryLearner().fit(np.array([[1.0, np.nan], [2.0, 3.0]]))
    with pytest.raises(ParameterError, match="transform_algorithm"):
        DictionaryLearner(transform_algorithm="magic").fit(np.ones((5, 4)))
    with pytest.raises(ParameterError, match="alpha"):
        DictionaryLearner(alpha=-1).fit(np.ones((5, 4)))


def test_minibatch_and_alpha_search():
    X = _sparse_data(200)
    mb = DictionaryLearner(n_components=4, alpha=0.1, method="minibatch", max_iter=5,
                           batch_size=32, random_state=0).fit(X)
    assert mb.components_.shape == (4, 30) and mb.fit_codes_.shape == (200, 4)
    # the training data's codes were computed once, in fit, exactly as transform does
    np.testing.assert_array_equal(mb.transform(X), mb._est.transform(mb._scale(X)))
    np.testing.assert_array_equal(mb.fit_transform(X), mb.transform(X))
    assert mb.transform(X) is not mb.fit_codes_
    X2 = X[::-1].copy()
    np.testing.assert_array_equal(mb.transform(X2), mb.transform(X)[::-1])
    omp = mb.transform(X)
    mb.set_params(transform_algorithm="lasso_lars", transform_alpha=0.5)
    lasso = mb.transform(X)
    assert not np.allclose(lasso, omp)
    sk = mb._est.set_params(transform_algorithm="lasso_lars", transform_alpha=0.5)
    np.testing.assert_array_equal(lasso, sk.transform(mb._scale(X)))
    res = alpha_grid_search(X, [0.01, 0.5, 5.0], n_components=4, max_iter=30, random_state=0,
                            transform_algorithm="lasso_lars", progress=False)
    assert res.losses.shape == (3,) and res.best_alpha == res.alphas[np.argmin(res.losses)]
    # a much sparser fit cannot reconstruct as well
    assert res.losses[2] > res.losses[0]


@pytest.fixture()
def projected(beps_file):
    with h5py.File(beps_file, "r+") as f:
        LoopProjector(f, progress=False).compute()
    return beps_file


def test_process_writes_results(projected):
    with h5py.File(projected, "r+") as f:
        proc = DictionaryLearningProcess(f[PROJ], n_components=4, alpha=1.0, max_iter=40)
        grp = proc.compute()
        assert grp.name == f"/{PROJ}/Piezoresponse-Dictionary_Learning_000"
        for name in ("Coefficients", "Dictionary", "Reconstruction", "Reconstruction_Error"):
            assert check_if_main(grp[name]), name
        codes, atoms = grp["Coefficients"][()], grp["Dictionary"][()]
        assert codes.shape == (360, 4) and atoms.shape == (4, 192)
        recon = grp["Reconstruction"][()]
        np.testing.assert_allclose(recon, codes @ atoms, atol=1e-10)
        # the stored scaler takes the source loops to the scaled units of the reconstruction
        piezo, reso = (f[PROJ][n] for n in ("Piezoresponse", "Resonance"))
        lay_cols = proc.sources.columns
        X = np.hstack([piezo[:, lay_cols[0]], reso[:, lay_cols[1]]])
        mean, std = grp["Scaler_Mean"][()].ravel(), grp["Scaler_Std"][()].ravel()
        Xs = (X - mean) / std
        err = np.mean((recon - Xs) ** 2, axis=1)
        np.testing.assert_allclose(grp["Reconstruction_Error"][:, 0], err, rtol=1e-6)
        a = grp.attrs
        assert a["mse"] == pytest.approx(err.mean())
        assert a["mse_Piezoresponse"] == pytest.approx(np.mean((recon - Xs)[:, :96] ** 2))
        assert a["n_components"] == 4 and a["scaling"] == "global" and a["cycle"] == 1
        assert a["field"] == "off" and a["transform_algorithm"] == "omp"
        assert f[a["source_001"]].name.endswith("Resonance")
        assert a["num_source_dsets"] == 2 and a["version_scikit-learn"]
        sd = proc.results_as_sidpy()
        assert sd["Reconstruction"].shape == (20, 18, 96, 2)  # Y, X, DC, modality


def test_process_duplicates_and_new_parameters(projected):
    with h5py.File(projected, "r+") as f:
        g0 = DictionaryLearningProcess(f[PROJ], n_components=3, max_iter=10).compute().name
    before = file_digest(projected)
    with h5py.File(projected, "r+") as f:
        again = DictionaryLearningProcess(f[PROJ], n_components=3, max_iter=10, cycle=-1)
        assert again.compute().name == g0  # cycle=-1 is the default (last) cycle
    assert file_digest(projected) == before
    with h5py.File(projected, "r+") as f:
        g1 = DictionaryLearningProcess(f[PROJ], n_components=3, max_iter=10,
                                       scaling="step").compute()
        assert g1.name.endswith("_001")
        g2 = DictionaryLearningProcess(f[PROJ + "/Piezoresponse"], n_components=3,
                                       max_iter=10).compute()
        assert g2.name.endswith("_002") and g2["Dictionary"].shape == (3, 96)


class _CrashBeforeDone(DictionaryLearningProcess):
    def _mark_complete(self):
        raise KeyboardInterrupt


def test_interrupted_run_is_redone_in_the_same_group(projected, tmp_path):
    ref = tmp_path / "ref.h5"
    shutil.copy(projected, ref)
    with h5py.File(ref, "r+") as f:
        expect = DictionaryLearningProcess(f[PROJ], n_components=3, max_iter=10).compute()[
            "Coefficients"][()]
    with h5py.File(projected, "r+") as f:
        with pytest.raises(KeyboardInterrupt):
            _CrashBeforeDone(f[PROJ], n_components=3, max_iter=10).compute()
    with h5py.File(projected, "r+") as f:
        proc = DictionaryLearningProcess(f[PROJ], n_components=3, max_iter=10)
        assert len(proc.partial_h5_groups) == 1 and not proc.duplicate_h5_groups
        grp = proc.compute()
        assert grp.name.endswith("Dictionary_Learning_000")
        np.testing.assert_array_equal(grp["Coefficients"][()], expect)
        assert grp["completed_positions"][()].all()


def test_test_writes_nothing(projected):
    before = file_digest(projected)
    with h5py.File(projected, "r+") as f:
        out = DictionaryLearningProcess(f[PROJ], n_components=3, max_iter=10).test(100)
    assert out["coefficients"].shape == (100, 3) and out["dictionary"].shape == (3, 192)
    assert out["mse"].shape == (100,)
    assert file_digest(projected) == before


def test_bad_inputs_write_nothing(projected, tmp_path):
    with h5py.File(projected, "r+") as f:
        piezo = f[PROJ + "/Piezoresponse"]
        f.create_dataset("short", data=np.zeros((10, 384)))
    before = file_digest(projected)
    with h5py.File(projected, "r+") as f:
        with pytest.raises(ParameterError, match="n_components must be a positive integer"):
            DictionaryLearningProcess(f[PROJ], n_components=0)
        with pytest.raises(ParameterError, match=r"scaling must be one of \(.global., .step., "
                                                 r".balanced., .none.\), got .minmax."):
            DictionaryLearningProcess(f[PROJ], scaling="minmax")
        with pytest.raises(ParameterError, match="cycle=7 is out of range"):
            DictionaryLearningProcess(f[PROJ], cycle=7)
        with pytest.raises(BEPSFormatError, match="compound"):
            DictionaryLearningProcess(f["Measurement_000/Channel_000/Raw_Data-SHO_Fit_000/Fit"])
        with pytest.raises(BEPSFormatError, match="not a USID main"):
            DictionaryLearningProcess([f[PROJ + "/Piezoresponse"], f["short"]])
        with pytest.raises(ParameterError, match="h5_main must be"):
            DictionaryLearningProcess("Piezoresponse")
    assert file_digest(projected) == before
    del piezo


def test_non_finite_loops_are_refused_before_writing(projected):
    with h5py.File(projected, "r+") as f:
        d = f[PROJ + "/Piezoresponse"]
        row = d[5]
        row[301] = np.nan  # last cycle (from column 192), off-field (odd columns: in-field first)
        d[5] = row
    before = file_digest(projected)
    with h5py.File(projected, "r+") as f:
        proc = DictionaryLearningProcess(f[PROJ], n_components=3, max_iter=5)
        with pytest.raises(BEPSFormatError, match=r"Piezoresponse.*1 non-finite values"):
            proc.compute()
    assert file_digest(projected) == before


def test_spectra_without_a_bias_axis_are_learned_over_all_steps(tmp_path):
    """A USID main dataset whose spectroscopic dimension is not DC_Offset (here a
    frequency sweep) is taken whole, on a 'Step' axis."""
    from pycroscopy_bevae.io.loop_sources import LoopSources
    from pycroscopy_bevae.io.usid import make_dims, write_main

    rng = np.random.default_rng(0)
    data = rng.normal(size=(12, 2)) @ rng.normal(size=(2, 20))
    with h5py.File(tmp_path / "spectra.h5", "w") as f:
        dset = write_main(f, data, "Spectra", "Amplitude", "V",
                          make_dims([("Y", "m", np.arange(3.0)), ("X", "m", np.arange(4.0))]),
                          make_dims([("Frequency", "Hz", np.linspace(3e5, 4e5, 20))]))
        src = LoopSources.from_input(dset)
        assert src.axis_name == "Step" and src.columns[0].tolist() == list(range(20))
        assert src.grid_shape == (3, 4) and src.cycle is None
        grp = DictionaryLearningProcess(dset, n_components=2, random_state=0).compute()
        assert grp["Coefficients"].shape == (12, 2) and float(grp.attrs["mse"]) < 1e-3


def _renamed_copy(f, name: str, bias_name: str, bias_units: str):
    """The projected Piezoresponse again, its DC dimension called ``bias_name``."""
    from pycroscopy_bevae.io.usid import make_dims, write_main

    src = f[PROJ]["Piezoresponse"]
    spec = f[src.attrs["Spectroscopic_Values"]]
    labels = [str(x.decode() if isinstance(x, bytes) else x) for x in spec.attrs["labels"]]
    assert labels == ["Cycle", "DC_Offset", "Field"]  # Field fastest, then DC, then Cycle
    dc_steps = spec[labels.index("DC_Offset")][:192:2]  # cycle 0, one field: the 96 steps
    pos = {"inds": f[src.attrs["Position_Indices"]], "vals": f[src.attrs["Position_Values"]]}
    dims = make_dims([("Cycle", "", [0, 1]), (bias_name, bias_units, dc_steps),
                      ("Field", "", [1, 0])])
    return write_main(f.create_group(name), src[()], "Loops", "Piezoresponse", "V", pos, dims)


def test_a_bias_named_otherwise_is_found_and_spectra_without_one_are_said(projected):
    with h5py.File(projected, "r+") as f:
        ref = DictionaryLearningProcess(f[PROJ]["Piezoresponse"], n_components=3, max_iter=10,
                                        cycle=0, field="on")
        ref_cols = ref.sources.columns[0]
        volt = _renamed_copy(f, "Volt", "Voltage", "V")
        proc = DictionaryLearningProcess(volt, n_components=3, max_iter=10, cycle=0,
                                         field="on")
        np.testing.assert_array_equal(proc.sources.columns[0], ref_cols)
        assert proc.sources.axis_name == "DC_Offset" and proc.sources.field == "on"
        plain = _renamed_copy(f, "Plain", "Sweep", "a.u.")
        with pytest.warns(DataQualityWarning, match=r"no DC-bias dimension.*cycle/field "
                                                    r"selection is not applied, all 384 steps"):
            generic = DictionaryLearningProcess(plain, n_components=3, max_iter=10, cycle=0)
        assert generic.sources.field == "all steps" and generic.sources.steps == [384]
        assert generic.parms_dict["field"] == "all steps"
