"""LoopProjector as a pyUSID Process on real HDF5 files."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from pyUSID.io.hdf_utils import check_if_main

from pycroscopy_bevae import BEPSFormatError, LoopProjector, ParameterError
from pycroscopy_bevae.analysis import angle_difference, rowwise_correlation
from pycroscopy_bevae.io import describe_loops
from tests.helpers import FIT, file_digest

GROUP = "Measurement_000/Channel_000/Raw_Data-SHO_Fit_000/Fit-Loop_Projection_{:03d}"


def test_compute_writes_usid_results(beps_file):
    with h5py.File(beps_file, "r+") as f:
        grp = LoopProjector(f, progress=False).compute()
        assert grp.name == "/" + GROUP.format(0)
        fit = f[FIT]
        for name, units in (("Piezoresponse", "V"), ("Resonance", "Hz")):
            d = grp[name]
            assert check_if_main(d)
            assert d.shape == fit.shape and d.attrs["units"] == units
            # linked to the SHO fit's own ancillaries, not copies
            assert f[d.attrs["Spectroscopic_Indices"]] == f[fit.attrs["Spectroscopic_Indices"]]
            assert f[d.attrs["Position_Indices"]] == f[fit.attrs["Position_Indices"]]
        assert check_if_main(grp["Rotation_Angle"]) and grp["Rotation_Angle"].shape == (360, 1)
        attrs = grp.attrs
        assert attrs["per"] == "position" and attrs["r2_threshold"] == 0.5
        assert attrs["sign"] == "positive" and attrs["tool"] == "LoopProjector"
        assert attrs["version_numpy"] == np.__version__
        assert attrs["n_rejected_fits"] == int(grp["Rejected_Fits"][()].sum())
        assert f[attrs["source_000"]].name == "/" + FIT


def test_accuracy_against_ground_truth(beps_file):
    with h5py.File(beps_file, "r+") as f:
        grp = LoopProjector(f, progress=False).compute()
        truth = f["Ground_Truth/Piezoresponse"][()]
        corr = rowwise_correlation(_loops(grp["Piezoresponse"]), _loops_like(grp, truth))
        assert np.median(corr) > 0.999 and corr.min() > 0.99
        err = angle_difference(grp["Rotation_Angle"][:, 0], f["Ground_Truth/Rotation_Angle"][()])
        assert np.median(np.abs(err)) < 5e-3
        # amplitude is preserved (projection, not normalisation)
        proj = grp["Piezoresponse"][()]
        ratio = np.std(proj, axis=1) / np.std(truth, axis=1)
        assert np.median(ratio) == pytest.approx(1.0, abs=0.02)
        # rejected fits: all injected failures (NaN or low R2) were caught
        failed = f["Ground_Truth/Failed_Fit"][()]
        assert grp.attrs["n_rejected_fits"] >= failed.sum()


def _loops(dset):
    lay = describe_loops(dset)
    return dset[:, lay.columns(cycle=-1, field="off")]


def _loops_like(grp, arr):
    lay = describe_loops(grp["Piezoresponse"])
    return arr[:, lay.columns(cycle=-1, field="off")]


def test_duplicate_detection_and_new_group_for_new_parameters(beps_file):
    with h5py.File(beps_file, "r+") as f:
        g0 = LoopProjector(f, progress=False).compute()
        proj = LoopProjector(f, progress=False)
        assert [g.name for g in proj.duplicate_h5_groups] == [g0.name]
        assert proj.compute().name == g0.name
        g1 = LoopProjector(f, r2_threshold=0.9, progress=False).compute()
        assert g1.name == "/" + GROUP.format(1)
        g2 = LoopProjector(f, progress=False).compute(override=True)
        assert g2.name == "/" + GROUP.format(2)
        np.testing.assert_array_equal(g2["Piezoresponse"][()], g0["Piezoresponse"][()])


def test_duplicate_returns_without_modifying_file(beps_file):
    with h5py.File(beps_file, "r+") as f:
        LoopProjector(f, progress=False).compute()
    before = file_digest(beps_file)
    with h5py.File(beps_file, "r+") as f:
        LoopProjector(f, progress=False).compute()
    assert file_digest(beps_file) == before


class _Interrupted(LoopProjector):
    """Stops (like Ctrl+C) after writing ``n`` chunks."""

    n = 2  # pyUSID marks a chunk complete after the next one starts

    def _write_results_chunk(self):
        super()._write_results_chunk()
        self.n -= 1
        if self.n == 0:
            raise KeyboardInterrupt


def test_resume_after_interruption_gives_identical_results(beps_file, tmp_path):
    import shutil

    ref_file = tmp_path / "ref.h5"
    shutil.copy(beps_file, ref_file)
    with h5py.File(ref_file, "r+") as f:
        grp = LoopProjector(f, progress=False, max_mem_mb=1).compute()
        ref = {k: grp[k][()] for k in ("Piezoresponse", "Resonance", "Rotation_Angle",
                                      "Rejected_Fits")}
    with h5py.File(beps_file, "r+") as f:
        with pytest.raises(KeyboardInterrupt):
            _Interrupted(f, progress=False, max_mem_mb=1).compute()
        done = f[GROUP.format(0)]["completed_positions"][()]
        assert 0 < done.sum() < done.size  # genuinely partial
    with h5py.File(beps_file, "r+") as f:
        proj = LoopProjector(f, progress=False, max_mem_mb=1)
        assert len(proj.partial_h5_groups) == 1 and not proj.duplicate_h5_groups
        grp = proj.compute()
        assert grp.name == "/" + GROUP.format(0)  # resumed in place, no new group
        for k, v in ref.items():
            np.testing.assert_array_equal(grp[k][()], v)
        assert grp.attrs["n_rejected_fits"] == ref["Rejected_Fits"].sum()


def test_test_method_writes_nothing(beps_file):
    before = file_digest(beps_file)
    with h5py.File(beps_file, "r+") as f:
        out = LoopProjector(f, progress=False).test([7, 3, 3])
    assert out["piezoresponse"].shape == (3, 4, 96)
    np.testing.assert_array_equal(out["piezoresponse"][1], out["piezoresponse"][2])
    assert out["rotation_angle"].shape == (3, 1)
    assert file_digest(beps_file) == before
    with h5py.File(beps_file, "r+") as f:
        with pytest.raises(ParameterError, match="positions must be indices"):
            LoopProjector(f, progress=False).test([10_000])


def test_per_loop_angles_match_single_loop_projection(beps_file):
    from pycroscopy_bevae.models import project_loops

    with h5py.File(beps_file, "r+") as f:
        proj = LoopProjector(f, per="loop", progress=False)
        grp = proj.compute()
        angles = grp["Rotation_Angle"][()]
        assert angles.shape == (360, 4)
        fit = f[FIT]
        lay = describe_loops(fit)
        red_inds = f[grp["Rotation_Angle"].attrs["Spectroscopic_Indices"]]
        labels = [s.decode() if isinstance(s, bytes) else s for s in red_inds.attrs["labels"]]
        block = fit[()]
        for j in range(4):
            cyc = int(red_inds[labels.index("Cycle"), j])
            fval = f[grp["Rotation_Angle"].attrs["Spectroscopic_Values"]][
                labels.index("Field"), j]
            cols = lay.columns(cycle=cyc, field="off" if fval == 0 else "on")
            one = project_loops(block["Amplitude [V]"][:, None, cols],
                                block["Phase [rad]"][:, None, cols], lay.dc_values[cols],
                                r2=block["R2 Criterion"][:, None, cols], r2_threshold=0.5,
                                frequency=block["Frequency [Hz]"][:, None, cols], per="loop")
            np.testing.assert_allclose(angles[:, j], one.rotation_angle[:, 0], atol=1e-9)


def test_results_as_sidpy(beps_file):
    with h5py.File(beps_file, "r+") as f:
        proj = LoopProjector(f, progress=False)
        with pytest.raises(ParameterError, match="compute"):
            proj.results_as_sidpy()
        proj.compute()
        sd = proj.results_as_sidpy(plottable=False)
    piezo = sd["Piezoresponse"]
    assert piezo.shape == (20, 18, 2, 96, 2)
    assert [piezo._axes[i].name for i in range(5)] == ["Y", "X", "Cycle", "DC_Offset", "Field"]
    assert piezo.units == "V" and piezo.quantity == "Piezoresponse"
    assert piezo._axes[3].units == "V" and piezo._axes[0].dimension_type.name == "SPATIAL"
    assert sd["Resonance"].units == "Hz"
    assert sd["Rotation_Angle"].shape == (20, 18, 1)


def test_read_only_file_refused_before_any_write(beps_file):
    before = file_digest(beps_file)
    with h5py.File(beps_file, "r") as f:
        with pytest.raises(ParameterError, match="read-only.*h5_target_group"):
            LoopProjector(f, progress=False)
    assert file_digest(beps_file) == before


def test_results_in_separate_file(beps_file, tmp_path):
    before = file_digest(beps_file)
    with h5py.File(beps_file, "r") as src, h5py.File(tmp_path / "out.h5", "w") as dst:
        grp = LoopProjector(src, h5_target_group=dst, progress=False).compute()
        assert grp.file.filename == str(tmp_path / "out.h5")
        assert grp.attrs["source_file_path"] == str(beps_file)
        assert grp["Piezoresponse"].shape == (360, 384)
    assert file_digest(beps_file) == before


def test_bad_parameters_and_inputs_write_nothing(beps_file, tmp_path):
    before = file_digest(beps_file)
    with h5py.File(beps_file, "r+") as f:
        with pytest.raises(ParameterError, match="per must be"):
            LoopProjector(f, per="pixel")
        with pytest.raises(ParameterError, match="sign must be"):
            LoopProjector(f, sign="up")
        with pytest.raises(ParameterError, match="r2_threshold"):
            LoopProjector(f, r2_threshold="high")
        with pytest.raises(BEPSFormatError, match="no SHO fit"):
            LoopProjector(f["Ground_Truth"])
        with pytest.raises(BEPSFormatError, match="compound"):
            LoopProjector(f["Ground_Truth/Piezoresponse"])
    assert file_digest(beps_file) == before
