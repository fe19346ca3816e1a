"""sidpy in and out (the ecosystem issue): typed, plottable results."""

from __future__ import annotations

import h5py
import matplotlib.pyplot as plt
import numpy as np
import pytest
import sidpy

from pycroscopy_bevae import BetaVAEProcess, DictionaryLearningProcess
from pycroscopy_bevae.io import plottable_sidpy
from tests.helpers import PROJ_GROUP, TINY_VAE, projected_map


@pytest.fixture(scope="module")
def chained(tmp_path_factory):
    """A projected 6 x 5 map with dictionary learning on both modalities and a tiny
    beta-VAE on the piezoresponse."""
    path = projected_map(tmp_path_factory.mktemp("sidpy") / "m.h5", shape=(6, 5), seed=3)
    with h5py.File(path, "r+") as f:
        g = f[PROJ_GROUP]
        dl = DictionaryLearningProcess([g["Piezoresponse"], g["Resonance"]], n_components=3,
                                       max_iter=10)
        dl_grp = dl.compute().name
        vae_grp = BetaVAEProcess(g["Piezoresponse"], **TINY_VAE).compute().name
    return path, dl_grp, vae_grp


def _dims(ds) -> list[tuple[str, str]]:
    return [(ds._axes[i].name, ds._axes[i].dimension_type.name) for i in range(ds.ndim)]


def test_loops_are_spectral_images_with_one_curve_per_cycle_and_field(chained):
    path = chained[0]
    with h5py.File(path, "r") as f:
        stored = f[PROJ_GROUP]["Piezoresponse"][()]
        piezo = plottable_sidpy(f[PROJ_GROUP]["Piezoresponse"])
        angle = plottable_sidpy(f[PROJ_GROUP]["Rotation_Angle"])
    assert piezo.data_type.name == "SPECTRAL_IMAGE" and piezo.shape == (6, 5, 96, 4)
    assert _dims(piezo) == [("Y", "SPATIAL"), ("X", "SPATIAL"), ("DC_Offset", "SPECTRAL"),
                            ("Loop", "CHANNEL")]
    assert piezo.title == "Piezoresponse" and piezo.modality == "BEPS"
    assert piezo.units == "V" and piezo._axes[2].units == "V"
    # acquisition order in the file: Cycle slowest, then DC, Field fastest
    assert piezo.metadata["channels"] == ["Cycle 0, Field 1", "Cycle 0, Field 0",
                                          "Cycle 1, Field 1", "Cycle 1, Field 0"]
    assert piezo.metadata["usid_path"].endswith("Piezoresponse")
    # every value kept, in place: position 7, cycle 1, field index 0, all 96 DC steps
    by_step = stored.reshape(30, 2, 96, 2)
    np.testing.assert_array_equal(np.asarray(piezo)[1, 2, :, 2], by_step[7, 1, :, 0])
    assert angle.data_type.name == "IMAGE" and angle.shape == (6, 5)


def test_every_result_plots_with_sidpy(chained):
    path, dl_grp, vae_grp = chained
    expected = {
        "Piezoresponse": ("SPECTRAL_IMAGE", 4), "Resonance": ("SPECTRAL_IMAGE", 4),
        "Rotation_Angle": ("IMAGE", 2), "Coefficients": ("SPECTRAL_IMAGE", 3),
        "Dictionary": ("SPECTRUM", 2), "Reconstruction": ("SPECTRAL_IMAGE", 4),
        "Reconstruction_Error": ("IMAGE", 2), "Embedding": ("SPECTRAL_IMAGE", 3),
        "Log_Variance": ("SPECTRAL_IMAGE", 3),
    }
    seen = 0
    with h5py.File(path, "r") as f:
        for grp in (PROJ_GROUP, dl_grp, vae_grp):
            # a list: h5py holds its global lock while iterating items(), and the plot's dask
            # thread, collecting garbage that holds h5py objects, would wait on it forever
            for name, dset in list(f[grp].items()):
                if name not in expected:
                    continue
                ds = plottable_sidpy(dset)
                kind, ndim = expected[name]
                if grp == vae_grp and name == "Reconstruction":
                    kind, ndim = "SPECTRAL_IMAGE", 3  # one modality: no channel axis
                assert (ds.data_type.name, ds.ndim) == (kind, ndim), (grp, name)
                assert ds.title == name and len(ds.title) < 30
                fig = ds.plot()
                assert isinstance(fig, plt.Figure) and fig.axes
                plt.close("all")
                seen += 1
    assert seen == 11  # 3 projection + 4 dictionary + 4 beta-VAE results


def test_dictionary_is_a_family_of_atoms_not_a_spatial_axis(chained):
    path, dl_grp, _ = chained
    with h5py.File(path, "r") as f:
        atoms = f[dl_grp]["Dictionary"][()]  # components x (modality, DC)
        ds = plottable_sidpy(f[dl_grp]["Dictionary"])
    assert _dims(ds) == [("DC_Offset", "SPECTRAL"), ("Component", "CHANNEL")]
    assert ds.metadata["channels"][:3] == ["Component 0, Piezoresponse",
                                           "Component 0, Resonance",
                                           "Component 1, Piezoresponse"]
    np.testing.assert_array_equal(np.asarray(ds)[:, 1], atoms[0, 96:])


def test_results_as_sidpy_plottable_by_default_and_nd_on_request(chained):
    path = chained[0]
    with h5py.File(path, "r+") as f:
        proc = DictionaryLearningProcess([f[PROJ_GROUP]["Piezoresponse"],
                                          f[PROJ_GROUP]["Resonance"]], n_components=3,
                                         max_iter=10)
        proc.compute()  # a duplicate: the earlier group is reused
        typed = proc.results_as_sidpy()
        nd = proc.results_as_sidpy(plottable=False)
    assert typed["Reconstruction"].data_type.name == "SPECTRAL_IMAGE"
    assert typed["Reconstruction"].source == "DictionaryLearningProcess"
    assert nd["Reconstruction"].shape == (6, 5, 2, 96)
    assert isinstance(typed["Coefficients"], sidpy.Dataset)
    sliced = typed["Reconstruction"][:, :, :, 0]  # one modality: a 3-D spectral image
    assert sliced.data_type.name == "SPECTRAL_IMAGE" and sliced.ndim == 3
    sliced.plot()
    plt.close("all")


# ---- sidpy in ------------------------------------------------------------------------

def _loops_as_sidpy(path, bias_name: str = "DC Offset"):
    """The projected piezoresponse as a user would hold it: a 5-D sidpy dataset
    (Y, X, Cycle, bias, Field) whose bias dimension is spelled ``bias_name``."""
    from pycroscopy_bevae.io import usid_to_sidpy

    with h5py.File(path, "r") as f:
        ds = usid_to_sidpy(f[PROJ_GROUP]["Piezoresponse"], title="Piezoresponse")
    dc = ds._axes[3]
    ds.set_dimension(3, sidpy.Dimension(np.asarray(dc), name=bias_name, units="V",
                                        quantity="Voltage", dimension_type="spectral"))
    return ds


def _nsid_round_trip(ds, path):
    """Write a sidpy dataset to an NSID file with pyNSID and read it back."""
    pynsid = pytest.importorskip("pyNSID", reason="pyNSID (NSID files) is not installed")
    from pyNSID.io.hdf_utils import read_h5py_dataset

    with h5py.File(path, "w") as f:
        dset = pynsid.io.write_nsid_dataset(ds, f.create_group("Measurement_000"),
                                            main_data_name="Piezoresponse")
        back = read_h5py_dataset(dset)
        data = np.asarray(back)  # read before the file closes
    out = sidpy.Dataset.from_array(data, title=back.title)
    for i in range(data.ndim):
        out.set_dimension(i, back._axes[i])
    out.quantity, out.units = back.quantity, back.units
    return out


def test_sidpy_loops_from_an_nsid_file_give_the_same_dictionary_as_usid(chained, tmp_path):
    path = chained[0]
    ds = _nsid_round_trip(_loops_as_sidpy(path, "DC Offset"), tmp_path / "loops_nsid.h5")
    with h5py.File(path, "r") as f:
        ref = DictionaryLearningProcess(f[PROJ_GROUP]["Piezoresponse"], n_components=3,
                                        max_iter=10, h5_target_group=h5py.File(
                                            tmp_path / "ref.h5", "w")).compute()
        ref_codes, ref_mse = ref["Coefficients"][()], float(ref.attrs["mse"])
        ref.file.close()
    with h5py.File(tmp_path / "results.h5", "w") as out:
        proc = DictionaryLearningProcess(ds, n_components=3, max_iter=10,
                                         h5_target_group=out.create_group("Analysis"))
        grp = proc.compute()
        src = out[grp.attrs["source_000"]] if "source_000" in grp.attrs else proc.h5_main
        # the bias, spelled 'DC Offset' in sidpy, is the DC axis: one cycle and field chosen
        assert grp["Coefficients"].shape == (30, 3)
        assert grp.attrs["field"] == "off" and grp.attrs["cycle"] == 1
        np.testing.assert_allclose(grp["Coefficients"][()], ref_codes, rtol=1e-5, atol=1e-6)
        assert float(grp.attrs["mse"]) == pytest.approx(ref_mse, rel=1e-6)
        assert list(src.attrs["sidpy_dimension_names"]) == ["Y", "X", "Cycle", "DC Offset",
                                                             "Field"]
        sd = proc.results_as_sidpy()
        assert sd["Reconstruction"].data_type.name == "SPECTRAL_IMAGE"


def test_sidpy_loops_train_the_beta_vae(chained, tmp_path):
    ds = _loops_as_sidpy(chained[0], "Voltage")
    with h5py.File(tmp_path / "vae.h5", "w") as out:
        grp = BetaVAEProcess(ds, h5_target_group=out, **TINY_VAE).compute()
        assert grp["Embedding"].shape == (30, 3)
        assert grp.attrs["field"] == "off"
        again = BetaVAEProcess(ds, h5_target_group=out, **TINY_VAE)
        assert again.duplicate_h5_groups  # the same input is recognised, not copied twice
        assert [k for k in out if "Beta_VAE" in k] == ["Piezoresponse-Beta_VAE_000"]
        assert isinstance(out["Piezoresponse"], h5py.Dataset)  # the input, written once


def test_sho_fit_as_five_sidpy_datasets_projects_like_the_usid_fit(chained, tmp_path):
    from pycroscopy_bevae import LoopProjector
    from pycroscopy_bevae.io import describe_loops
    from tests.helpers import FIT

    path = chained[0]
    with h5py.File(path, "r") as f:
        fit = f[FIT][()]
        ref = f[PROJ_GROUP]["Piezoresponse"][()]
        dc = describe_loops(f[FIT]).dc_values[:192:2]  # cycle 0, one field: the 96 DC steps
    dims = (("Y", "spatial", np.arange(6)), ("X", "spatial", np.arange(5)),
            ("Cycle", "spectral", np.arange(2)), ("DC Offset", "spectral", dc),
            ("Field", "spectral", np.array([1, 0])))
    fields = {}  # SciFiReaders' form: five datasets, Y x X x Cycle x DC x Field
    for name, key in (("Amplitude", "Amplitude [V]"), ("Frequency", "Frequency [Hz]"),
                      ("Quality Factor", "Quality Factor"), ("Phase", "Phase [rad]"),
                      ("R2 Criterion", "R2 Criterion")):
        ds = sidpy.Dataset.from_array(fit[key].reshape(6, 5, 2, 96, 2).astype(float),
                                      title=name)
        for i, (dim, kind, vals) in enumerate(dims):
            ds.set_dimension(i, sidpy.Dimension(vals, name=dim, units="V" if dim ==
                                                "DC Offset" else "a.u.", dimension_type=kind))
        fields[name] = ds
    with h5py.File(tmp_path / "sho.h5", "w") as out:
        grp = LoopProjector(fields, h5_target_group=out, progress=False).compute()
        np.testing.assert_allclose(grp["Piezoresponse"][()], ref, rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("case, match", [
    ("no_bias", "no bias dimension"),
    ("unknown_type", "type UNKNOWN"),
    ("no_spatial", "no SPATIAL dimension"),
    ("text", "expected real numbers"),
    ("no_target", "needs h5_target_group"),
])
def test_bad_sidpy_inputs_are_refused_before_any_write(chained, tmp_path, case, match):
    from pycroscopy_bevae.exceptions import BevaeError

    ds = _loops_as_sidpy(chained[0])
    if case == "no_bias":
        ds.set_dimension(3, sidpy.Dimension(np.arange(96), name="Step", units="a.u.",
                                            dimension_type="spectral"))
    elif case == "unknown_type":
        ds.set_dimension(2, sidpy.Dimension(np.arange(2), name="Cycle",
                                            dimension_type="unknown"))
    elif case == "no_spatial":
        for i in (0, 1):
            ds.set_dimension(i, sidpy.Dimension(np.arange(ds.shape[i]), name=f"P{i}",
                                                dimension_type="spectral"))
    elif case == "text":
        ds = sidpy.Dataset.from_array(np.full((2, 2, 4), "a"))
    target = tmp_path / "t.h5"
    with h5py.File(target, "w") as out:
        out.create_group("Analysis")
    with h5py.File(target, "r+") as out:
        kwargs = {} if case == "no_target" else {"h5_target_group": out["Analysis"]}
        with pytest.raises(BevaeError, match=match):
            DictionaryLearningProcess(ds, n_components=3, **kwargs)
    with h5py.File(target, "r") as out:
        assert list(out["Analysis"].keys()) == []


def test_a_failing_process_removes_the_sidpy_copy_it_wrote(chained, tmp_path):
    from pycroscopy_bevae.exceptions import ParameterError

    ds = _loops_as_sidpy(chained[0])
    with h5py.File(tmp_path / "t.h5", "w") as out:
        with pytest.raises(ParameterError, match="n_components"):
            DictionaryLearningProcess(ds, n_components=100, h5_target_group=out)
        assert list(out.keys()) == []


def test_select_loops_reads_a_sidpy_dataset_like_the_usid_one(chained):
    from pycroscopy_bevae import select_loops

    path = chained[0]
    with h5py.File(path, "r") as f:
        ref = select_loops(f[PROJ_GROUP]["Piezoresponse"], cycle=0, field="on")
    got = select_loops(_loops_as_sidpy(path, "Bias"), cycle=0, field="on")
    np.testing.assert_array_equal(got.data, ref.data)
    np.testing.assert_array_equal(got.dc_values, ref.dc_values)
