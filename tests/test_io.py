"""Reading and validating BEPS USID files: layouts, selection, and clear errors."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from pycroscopy_bevae import BEPSFormatError, MissingFileError, ParameterError
from pycroscopy_bevae.io import SHO_FIELDS, describe_loops, find_sho_fit, select_loops
from tests.helpers import DC, FIT, fit_file

N_STEPS = 8


@pytest.mark.parametrize("order", [("Cycle", "DC_Offset", "Field"),
                                   ("Field", "Cycle", "DC_Offset"),
                                   ("DC_Offset", "Field", "Cycle")])
def test_selection_independent_of_storage_order(tmp_path, order):
    path = fit_file(tmp_path / "f.h5", order=order)
    for cycle in (0, 1):
        for field, fval in (("off", 0), ("on", 1)):
            sel = select_loops(path, cycle=cycle, field=field, fields=("Amplitude [V]",))
            amp = sel.data["Amplitude [V]"]
            assert amp.shape == (6, N_STEPS)
            # steps come out in DC-step order (acquisition order within a loop)
            expect = 100 * cycle + 10 * fval + np.arange(N_STEPS)
            np.testing.assert_array_equal(amp[2], expect + 2000)
            np.testing.assert_allclose(sel.dc_values, DC)


def test_default_cycle_is_last_and_negative_index(tmp_path):
    path = fit_file(tmp_path / "f.h5")
    a = select_loops(path, fields=("Amplitude [V]",))
    b = select_loops(path, cycle=-1, fields=("Amplitude [V]",))
    assert a.cycle == 1 == b.cycle
    np.testing.assert_array_equal(a.data["Amplitude [V]"], b.data["Amplitude [V]"])


def test_field_both_interleaves_in_acquisition_order(tmp_path):
    path = fit_file(tmp_path / "f.h5", order=("Cycle", "DC_Offset", "Field"))
    sel = select_loops(path, cycle=0, field="both", fields=("Amplitude [V]",))
    amp = sel.data["Amplitude [V]"][0]
    assert amp.shape == (2 * N_STEPS,)
    # in-field (value 1) first, then out-of-field, step by step
    np.testing.assert_array_equal(amp[:4], [10, 0, 11, 1])
    np.testing.assert_array_equal(sel.field_values[:4], [1, 0, 1, 0])


def test_layout_of_synthetic_file(beps_file):
    with h5py.File(beps_file, "r") as f:
        for obj in (f, f["Measurement_000"], f["Measurement_000/Channel_000/"
                                                 "Raw_Data-SHO_Fit_000/Fit"]):
            fit = find_sho_fit(obj)
            assert fit.name.endswith("Raw_Data-SHO_Fit_000/Fit")
        lay = describe_loops(fit)
    assert lay.grid_shape == (20, 18)
    assert lay.pos_labels == ("Y", "X")
    assert (lay.n_steps, lay.n_cycles, lay.fields) == (96, 2, ("off", "on"))


def test_float64_and_float32_compounds_are_valid(tmp_path):
    for dt in ("f4", "f8"):
        path = fit_file(tmp_path / f"{dt}.h5", dtype=dt)
        with h5py.File(path, "r") as f:
            assert find_sho_fit(f).dtype["Phase [rad]"] == np.dtype(dt)


def test_file_without_field_or_cycle(tmp_path):
    path = fit_file(tmp_path / "f.h5", order=("DC_Offset",))
    sel = select_loops(path, fields=("Amplitude [V]",))
    assert sel.data["Amplitude [V]"].shape == (6, N_STEPS)
    assert sel.layout.fields == () and sel.layout.n_cycles == 1
    with pytest.raises(ParameterError, match=r"cycle=1 is out of range.*1 cycle"):
        select_loops(path, cycle=1)


def test_not_hdf5(tmp_path):
    bad = tmp_path / "notes.h5"
    bad.write_text("this is not HDF5")
    with pytest.raises(BEPSFormatError, match=r"notes\.h5.*not an HDF5 file"):
        select_loops(bad)


def test_truncated_hdf5(tmp_path, beps_file):
    raw = beps_file.read_bytes()
    cut = tmp_path / "cut.h5"
    cut.write_bytes(raw[: len(raw) // 3])
    with pytest.raises(BEPSFormatError, match="cut.h5"):
        select_loops(cut)


def test_missing_file(tmp_path):
    with pytest.raises(MissingFileError, match="nope.h5"):
        select_loops(tmp_path / "nope.h5")


def test_no_sho_fit(tmp_path):
    path = tmp_path / "empty.h5"
    with h5py.File(path, "w") as f:
        f.create_group("Measurement_000/Channel_000")
    with pytest.raises(BEPSFormatError, match=r"no SHO fit found.*empty\.h5"):
        select_loops(path)


def test_not_usid_main(tmp_path):
    path = tmp_path / "plain.h5"
    with h5py.File(path, "w") as f:
        dt = np.dtype([(n, "f4") for n in SHO_FIELDS])
        f.create_dataset("Measurement_000/Channel_000/Raw_Data-SHO_Fit_000/Fit",
                         data=np.zeros((4, 8), dt))
    with pytest.raises(BEPSFormatError, match=r"'/Measurement_000.*Fit'.*not a USID main"):
        select_loops(path)


def test_missing_and_wrongly_typed_fields(tmp_path):
    path = fit_file(tmp_path / "a.h5", fields=[f for f in SHO_FIELDS if f != "Phase [rad]"])
    with pytest.raises(BEPSFormatError, match=r"lacks field\(s\) \['Phase \[rad\]'\]"):
        select_loops(path)
    path = fit_file(tmp_path / "b.h5", dtype="i4")
    with pytest.raises(BEPSFormatError, match="expected float32 or float64"):
        select_loops(path)


def test_missing_dc_offset(tmp_path):
    path = fit_file(tmp_path / "f.h5", with_dc=False)
    with pytest.raises(BEPSFormatError, match="expected a DC-bias dimension"):
        select_loops(path)


def test_empty_dataset(tmp_path):
    path = tmp_path / "e.h5"
    with h5py.File(path, "w") as f:
        dt = np.dtype([(n, "f4") for n in SHO_FIELDS])
        f.create_dataset("M/Raw_Data-SHO_Fit_000/Fit", shape=(0, 8), dtype=dt)
    with pytest.raises(BEPSFormatError, match=r"is empty \(shape \(0, 8\)\)"):
        select_loops(path)


def test_inconsistent_spectroscopic_indices(tmp_path):
    path = fit_file(tmp_path / "f.h5")
    with h5py.File(path, "r+") as f:
        fit = f[FIT]
        inds = f[fit.attrs["Spectroscopic_Indices"]]
        data = inds[()]
        data[:, 1] = data[:, 0]  # the same step twice
        inds[...] = data
    with pytest.raises(BEPSFormatError, match="repeat"):
        select_loops(path)


def test_bad_selection_parameters(tmp_path):
    path = fit_file(tmp_path / "f.h5", field_vals=(0,))
    with pytest.raises(ParameterError, match=r"field='on'.*only has off-field"):
        select_loops(path, field="on")
    with pytest.raises(ParameterError, match="field must be one of"):
        select_loops(path, field="remanent")
    with pytest.raises(ParameterError, match=r"cycle=5 is out of range.*valid: 0\.\.1"):
        select_loops(path, cycle=5)
    with pytest.raises(ParameterError, match="cycle must be an integer"):
        select_loops(path, cycle=1.5)
    with pytest.raises(ParameterError, match="expected a file path"):
        select_loops(42)
