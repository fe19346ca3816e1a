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
            for name, dset in f[grp].items():
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
    assert ds.metadata["channels"][:3] == ["Component 0, Modality 0",
                                           "Component 0, Modality 1",
                                           "Component 1, Modality 0"]
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
