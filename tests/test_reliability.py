"""Never a silent wrong answer (issue 25): results tied to their exact input, units
honoured, unfinished results never used, refusals that leave nothing behind.

Each case builds real files (h5py/pyUSID, sidpy) at tiny sizes and checks what the
user gets, and that the user's file is unchanged where that is promised.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest
import sidpy

from pycroscopy_bevae import DictionaryLearningProcess, LoopProjector
from pycroscopy_bevae.cli import main
from pycroscopy_bevae.datasets import write_synthetic_beps
from pycroscopy_bevae.exceptions import BEPSFormatError, DataQualityWarning, ParameterError
from pycroscopy_bevae.io import describe_loops, usid_to_sidpy
from pycroscopy_bevae.process import LoopFitProcess
from tests.helpers import FIT, PROJ_GROUP, TINY_VAE, copy_to, file_digest, fit_file

PIEZO = PROJ_GROUP + "/Piezoresponse"


def _project(path: Path) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataQualityWarning)
        with h5py.File(path, "r+") as f:
            LoopProjector(f, progress=False).compute()
    return path


@pytest.fixture(scope="module")
def maps(tmp_path_factory) -> dict[str, Path]:
    """Two measurements of the same layout (4 x 5, seeds 3 and 4), raw and projected."""
    d = tmp_path_factory.mktemp("reliability")
    out = {}
    for name, seed in (("m1", 3), ("m2", 4)):
        raw = Path(write_synthetic_beps(d / f"{name}.h5", shape=(4, 5), seed=seed))
        out[name] = raw
        proj = d / f"{name}_projected.h5"
        shutil.copy(raw, proj)
        out[name + "_projected"] = _project(proj)
    return out


def _copy(maps, name: str, tmp_path: Path) -> Path:
    dst = tmp_path / f"{name}.h5"
    shutil.copy(maps[name], dst)
    return dst


# ---- 1. results tied to their exact input ---------------------------------------------

def _projector(f, out):
    return LoopProjector(f, h5_target_group=out, progress=False)


def _loop_fit(f, out):
    return LoopFitProcess(f[PIEZO], h5_target_group=out, progress=False, max_iter=5)


def _dictionary(f, out):
    return DictionaryLearningProcess(f[PROJ_GROUP], h5_target_group=out, n_components=2,
                                     max_iter=5)


@pytest.mark.parametrize("make, source", [(_projector, ""), (_loop_fit, "_projected"),
                                          (_dictionary, "_projected")])
def test_a_shared_target_group_never_returns_another_measurements_results(
        maps, tmp_path, make, source):
    m1, m2 = _copy(maps, "m1" + source, tmp_path), _copy(maps, "m2" + source, tmp_path)
    before = file_digest(m2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataQualityWarning)
        with h5py.File(tmp_path / "results.h5", "w") as out:
            with h5py.File(m1, "r") as f:
                g1 = make(f, out).compute().name
            with h5py.File(m2, "r") as f:
                proc = make(f, out)
                assert proc.duplicate_h5_groups == [] and proc.partial_h5_groups == []
                g2 = proc.compute().name
            with h5py.File(m1, "r") as f:  # the same input again: its own group, found
                again = make(f, out)
                assert [g.name for g in again.duplicate_h5_groups] == [g1]
            assert g1 != g2
            ident1, ident2 = (out[g].attrs["source_identity"] for g in (g1, g2))
            assert ident1 != ident2 and str(m2) in ident2 and str(m1) in ident1
    assert file_digest(m2) == before  # read only


def test_a_partial_run_of_one_measurement_is_not_resumed_by_another(maps, tmp_path):
    m1, m2 = _copy(maps, "m1", tmp_path), _copy(maps, "m2", tmp_path)
    with h5py.File(tmp_path / "results.h5", "w") as out:
        with h5py.File(m1, "r") as f, warnings.catch_warnings():
            warnings.simplefilter("ignore", DataQualityWarning)
            grp = _projector(f, out).compute()
            grp["completed_positions"][8:] = 0  # as after a Ctrl-C at row 8
            kept = grp["Piezoresponse"][()]
        with h5py.File(m2, "r") as f:
            assert _projector(f, out).partial_h5_groups == []
        with h5py.File(m1, "r") as f:
            assert [g.name for g in _projector(f, out).partial_h5_groups] == [grp.name]
        np.testing.assert_array_equal(out[grp.name]["Piezoresponse"][()], kept)


def test_the_same_file_edited_is_a_new_input(maps, tmp_path):
    """A recalibrated bias in the file itself (values only) is not the earlier input."""
    path = _copy(maps, "m1_projected", tmp_path)
    with h5py.File(path, "r+") as f:
        LoopFitProcess(f[PIEZO], progress=False, max_iter=5).compute()
    _bias_units(path, "V", 2.0)
    with h5py.File(path, "r+") as f:
        proc = LoopFitProcess(f[PIEZO], progress=False, max_iter=5)
        assert proc.duplicate_h5_groups == [] and proc.partial_h5_groups == []


def test_n_active_is_in_the_beta_vae_duplicate_check_and_bounded(tiny_vae_run):
    from pycroscopy_bevae import BetaVAEProcess

    before = file_digest(tiny_vae_run["results"])
    with h5py.File(tiny_vae_run["source"], "r") as f, \
            h5py.File(tiny_vae_run["results"], "r+") as o:
        same = BetaVAEProcess(f[PROJ_GROUP], h5_target_group=o, **TINY_VAE)
        assert [g.name for g in same.duplicate_h5_groups] == [tiny_vae_run["group"]]
        one = BetaVAEProcess(f[PROJ_GROUP], h5_target_group=o, n_active=1, **TINY_VAE)
        assert one.duplicate_h5_groups == [] and one.parms_dict["n_active"] == 1
        with pytest.raises(ParameterError, match="n_active=4 exceeds latent_dim=3"):
            BetaVAEProcess(f[PROJ_GROUP], h5_target_group=o, n_active=4, **TINY_VAE)
    assert file_digest(tiny_vae_run["results"]) == before


def test_a_count_from_the_first_exhaustive_version_is_no_duplicate(tiny_vae_run, tmp_path):
    """``count_tolerance`` results record how the count searched its candidates: a group
    written by the first version (every candidate scored, no marker) is not reused."""
    from pycroscopy_bevae import BetaVAEProcess
    from pycroscopy_bevae.models.selection import COUNT_SEARCH

    counted = dict(TINY_VAE, relax_epochs=1, validation_fraction=0.2, count_tolerance=0.02)
    results = copy_to(tiny_vae_run["results"], tmp_path / "results.h5")
    with h5py.File(tiny_vae_run["source"], "r") as f, h5py.File(results, "r+") as o:
        proc = BetaVAEProcess(f[PROJ_GROUP], h5_target_group=o, **counted)
        assert proc.parms_dict["count_search"] == COUNT_SEARCH
        assert "count_search" not in BetaVAEProcess(f[PROJ_GROUP], h5_target_group=o,
                                                    **TINY_VAE).parms_dict
        # a finished group carrying this run's parameters is its duplicate ...
        grp = o[tiny_vae_run["group"]]
        for key, value in proc.parms_dict.items():
            grp.attrs[key] = value
        assert [g.name for g in BetaVAEProcess(f[PROJ_GROUP], h5_target_group=o, **counted)
                .duplicate_h5_groups] == [grp.name]
        # ... but not without the marker (the exhaustive version's group)
        del grp.attrs["count_search"]
        assert BetaVAEProcess(f[PROJ_GROUP], h5_target_group=o,
                              **counted).duplicate_h5_groups == []


# ---- 2. unfinished results are never used ---------------------------------------------

def _interrupted(path: Path) -> Path:
    with h5py.File(path, "r+") as f:
        f[PROJ_GROUP]["completed_positions"][5:] = 0
    return path


def test_the_cli_refuses_an_unfinished_projection_and_info_marks_it(maps, tmp_path, capsys):
    path = _interrupted(_copy(maps, "m1_projected", tmp_path))
    before = file_digest(path)
    for command in ("fit-loops", "dictionary"):
        assert main([command, str(path)]) == 2
        err = capsys.readouterr().err
        assert "only unfinished ones" in err and "Loop_Projection_000" in err
    assert file_digest(path) == before
    assert main(["info", str(path)]) == 0
    assert "INCOMPLETE: 5 of 20 positions" in capsys.readouterr().out


def test_the_cli_takes_the_latest_complete_projection(maps, tmp_path, capsys):
    path = _copy(maps, "m1_projected", tmp_path)
    with h5py.File(path, "r+") as f, warnings.catch_warnings():
        warnings.simplefilter("ignore", DataQualityWarning)
        newer = LoopProjector(f, progress=False, sign="negative").compute()
        newer["completed_positions"][3:] = 0
    assert main(["fit-loops", str(path), "--max-iter", "5"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"/{PROJ_GROUP}/Piezoresponse-Loop_Fit_000")


@pytest.mark.parametrize("make", [
    lambda f: LoopFitProcess(f[PIEZO], progress=False),
    lambda f: DictionaryLearningProcess(f[PROJ_GROUP], n_components=2),
    lambda f: DictionaryLearningProcess([f[PIEZO]], n_components=2),
], ids=["loop_fit", "dictionary_on_group", "dictionary_on_dataset"])
def test_chained_processes_refuse_an_unfinished_group(maps, tmp_path, make):
    path = _interrupted(_copy(maps, "m1_projected", tmp_path))
    before = file_digest(path)
    with h5py.File(path, "r+") as f:
        with pytest.raises(BEPSFormatError, match="unfinished results group .5 of 20"):
            make(f)
    assert file_digest(path) == before


# ---- 3. units ---------------------------------------------------------------------------

def _bias_units(path: Path, units: str, scale: float) -> Path:
    """Rewrite the DC_Offset of every spectroscopic dimension set in ``units``."""
    with h5py.File(path, "r+") as f:
        def _visit(name, obj):
            if isinstance(obj, h5py.Dataset) and "Spectroscopic_Values" in name and \
                    "labels" in obj.attrs:
                labels = [x.decode() if isinstance(x, bytes) else str(x)
                          for x in obj.attrs["labels"]]
                if "DC_Offset" in labels:
                    row = labels.index("DC_Offset")
                    vals = obj[()]
                    vals[row] *= scale
                    obj[...] = vals
                    units_all = [u.decode() if isinstance(u, bytes) else str(u)
                                 for u in obj.attrs["units"]]
                    units_all[row] = units
                    for dset in (obj, f[name.replace("Values", "Indices")]):
                        dset.attrs["units"] = np.array([u.encode() for u in units_all])
        f.visititems(_visit)
    return path


@pytest.mark.parametrize("units, scale", [("mV", 1e3), ("kV", 1e-3), ("V", 1.0)])
def test_a_usid_bias_is_converted_to_volts_and_recorded(maps, tmp_path, units, scale, capsys):
    ref = _copy(maps, "m1_projected", tmp_path)
    path = _bias_units(shutil.copy(ref, tmp_path / "units.h5"), units, scale)
    with h5py.File(ref, "r") as f:
        want = describe_loops(f[PIEZO]).dc_values
    with h5py.File(path, "r+") as f:
        lay = describe_loops(f[PIEZO])
        np.testing.assert_allclose(lay.dc_values, want, rtol=1e-6)  # float32 in the file
        assert lay.dc_units == units
        grp = LoopFitProcess(f[PIEZO], progress=False, max_iter=20).compute()
        assert grp.attrs["bias_units_in_source"] == units and grp.attrs["bias_units"] == "V"
        vc = grp["Coercive_Voltage_Up"][()]
    with h5py.File(ref, "r+") as f:
        ref_vc = LoopFitProcess(f[PIEZO], progress=False, max_iter=20).compute()[
            "Coercive_Voltage_Up"][()]
    np.testing.assert_allclose(vc, ref_vc, rtol=1e-4, atol=1e-6)
    assert main(["info", str(path)]) == 0
    assert "DC bias: -" in capsys.readouterr().out  # volts, not 1000x


def test_a_bias_in_an_unknown_unit_is_refused_before_writing(maps, tmp_path):
    path = _bias_units(_copy(maps, "m1", tmp_path), "Hz", 1.0)
    before = file_digest(path)
    with h5py.File(path, "r+") as f:
        with pytest.raises(BEPSFormatError, match="units 'Hz'; expected a voltage unit"):
            LoopProjector(f, progress=False)
    assert file_digest(path) == before


def _sidpy_loops(path: Path):
    with h5py.File(path, "r") as f:
        ds = usid_to_sidpy(f[PIEZO], title="Piezoresponse")
    dc = ds._axes[3]
    ds.set_dimension(3, sidpy.Dimension(np.asarray(dc), name="DC Offset", units="V",
                                        quantity="Voltage", dimension_type="spectral"))
    return ds


def _with_dim(ds, i: int, values=None, name=None, units=None, kind=None):
    a = ds._axes[i]
    new = ds.copy()
    new.set_dimension(i, sidpy.Dimension(
        np.asarray(a) if values is None else values, name=name or a.name,
        units=a.units if units is None else units, quantity=a.quantity,
        dimension_type=kind or a.dimension_type))
    return new


def test_a_sidpy_bias_in_millivolts_is_written_in_volts(maps, tmp_path):
    ds = _sidpy_loops(maps["m1_projected"])
    mv = _with_dim(ds, 3, values=np.asarray(ds._axes[3]) * 1000, units="mV")
    with h5py.File(tmp_path / "t.h5", "w") as out:
        grp = LoopFitProcess(mv, h5_target_group=out, progress=False, max_iter=5).compute()
        lay = describe_loops(out["Piezoresponse"])
        np.testing.assert_allclose(np.unique(lay.dc_values), np.unique(np.asarray(ds._axes[3])))
        assert list(out["Piezoresponse"].attrs["sidpy_dimension_units"])[3] == "mV"
        assert grp.attrs["bias_units"] == "V"
        with pytest.raises(BEPSFormatError, match="units 'Hz'"):
            LoopFitProcess(_with_dim(ds, 3, units="Hz"), h5_target_group=out.create_group("x"))
        assert list(out["x"].keys()) == []


# ---- 1 (sidpy): a changed input gets its own copy ---------------------------------------

_CHANGES = {
    "bias values x2": lambda ds: _with_dim(ds, 3, values=np.asarray(ds._axes[3]) * 2),
    "bias units": lambda ds: _with_dim(ds, 3, values=np.asarray(ds._axes[3]) * 1000,
                                       units="mV"),
    "field labels": lambda ds: _with_dim(ds, 4, values=np.asarray(ds._axes[4])[::-1].copy()),
    "spatial axis": lambda ds: _with_dim(ds, 1, values=np.asarray(ds._axes[1]) * 2.0),
    "spatial units": lambda ds: _with_dim(ds, 0, units="nm"),
    "dimension type": lambda ds: _with_dim(ds, 2, kind="temporal"),
}


@pytest.mark.parametrize("change", sorted(_CHANGES))
def test_a_changed_sidpy_input_never_reuses_the_old_copy(maps, tmp_path, change):
    ds = _sidpy_loops(maps["m1_projected"])
    with h5py.File(tmp_path / "t.h5", "w") as out:
        first = LoopFitProcess(ds, h5_target_group=out, progress=False, max_iter=5)
        g1 = first.compute().name
        copy1 = first.h5_main.name
        kept = out[copy1][()].copy()
        again = LoopFitProcess(ds, h5_target_group=out, progress=False, max_iter=5)
        assert again.h5_main.name == copy1
        assert [g.name for g in again.duplicate_h5_groups] == [g1]
        changed = LoopFitProcess(_CHANGES[change](ds), h5_target_group=out, progress=False,
                                 max_iter=5)
        assert changed.h5_main.name == copy1 + "_001"
        assert changed.duplicate_h5_groups == [] and changed.partial_h5_groups == []
        np.testing.assert_array_equal(out[copy1][()], kept)


def test_the_bias_change_changes_the_coercive_voltage(maps, tmp_path):
    ds = _sidpy_loops(maps["m1_projected"])
    with h5py.File(tmp_path / "t.h5", "w") as out:
        v1 = LoopFitProcess(ds, h5_target_group=out, progress=False).compute()[
            "Coercive_Voltage_Up"][()]
        v2 = LoopFitProcess(_CHANGES["bias values x2"](ds), h5_target_group=out,
                            progress=False).compute()["Coercive_Voltage_Up"][()]
    np.testing.assert_allclose(np.nanmedian(v2), 2 * np.nanmedian(v1), rtol=0.05)


# ---- 4. SHO sidpy datasets: cross-checked, one key per field, reruns are duplicates ----

_SHO_NAMES = (("Amplitude", "Amplitude [V]"), ("Frequency", "Frequency [Hz]"),
              ("Quality Factor", "Quality Factor"), ("Phase", "Phase [rad]"),
              ("R2 Criterion", "R2 Criterion"))


def _sho_fields(path: Path) -> dict:
    with h5py.File(path, "r") as f:
        fit = f[FIT][()]
        dc = describe_loops(f[FIT]).dc_values[:192:2]
    dims = (("Y", "spatial", np.arange(4)), ("X", "spatial", np.arange(5)),
            ("Cycle", "spectral", np.arange(2)), ("DC Offset", "spectral", dc),
            ("Field", "spectral", np.array([1, 0])))
    fields = {}
    for name, key in _SHO_NAMES:
        ds = sidpy.Dataset.from_array(fit[key].reshape(4, 5, 2, 96, 2).astype(float),
                                      title=name)
        for i, (dim, kind, vals) in enumerate(dims):
            ds.set_dimension(i, sidpy.Dimension(vals, name=dim, units="V" if dim ==
                                                "DC Offset" else "a.u.", dimension_type=kind))
        fields[name] = ds
    return fields


def _negated_phase_bias(fields):
    fields["Phase"] = _with_dim(fields["Phase"], 3, values=-np.asarray(fields["Phase"]._axes[3]))
    return fields


def _two_keys_for_amplitude(fields):
    fields["amplitude [V]"] = fields["Amplitude"]
    return fields


def _numpy_array(fields):
    fields["Phase"] = np.asarray(fields["Phase"])
    return fields


def _other_grid(fields):
    fields["Frequency"] = _with_dim(fields["Frequency"], 0, values=np.arange(4) + 1.0)
    return fields


def _beyond_float32_is_kept(fields):
    return fields


@pytest.mark.parametrize("edit, error, match", [
    (_negated_phase_bias, BEPSFormatError, "expected the grid and bias of 'Amplitude"),
    (_other_grid, BEPSFormatError, "expected the grid and bias of 'Amplitude"),
    (_two_keys_for_amplitude, ParameterError, "'Amplitude \\[V\\]' given twice"),
    (_numpy_array, ParameterError, "must be a sidpy.Dataset, got ndarray"),
])
def test_inconsistent_sho_datasets_are_refused_before_writing(maps, tmp_path, edit, error,
                                                               match):
    fields = edit(_sho_fields(maps["m1"]))
    with h5py.File(tmp_path / "t.h5", "w") as out:
        with pytest.raises(error, match=match):
            LoopProjector(fields, h5_target_group=out, progress=False)
        assert list(out.keys()) == []


def test_the_same_sho_datasets_again_are_a_duplicate(maps, tmp_path):
    fields = _sho_fields(maps["m1"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataQualityWarning)
        with h5py.File(tmp_path / "t.h5", "w") as out:
            g1 = LoopProjector(fields, h5_target_group=out, progress=False).compute().name
            again = LoopProjector(fields, h5_target_group=out, progress=False)
            assert [g.name for g in again.duplicate_h5_groups] == [g1]
            big = dict(fields)
            amp = np.asarray(fields["Quality Factor"]).copy()
            amp[0, 0, 0, 0, 0] = 1e300  # finite in float64, inf in float32
            big["Quality Factor"] = fields["Quality Factor"].like_data(amp)
            for i in range(5):
                big["Quality Factor"].set_dimension(i, fields["Quality Factor"]._axes[i])
            proc = LoopProjector(big, h5_target_group=out, progress=False)
            assert proc.h5_main.name == "/Fit_001"
            assert proc.h5_main.dtype["Quality Factor"] == np.float64
            assert proc.h5_main[0, 0]["Quality Factor"] == 1e300


# ---- 4. extra dimensions, LoopFit's refusals --------------------------------------------

def _loop_dataset(path: Path, steps: int, extra: int = 1) -> h5py.Dataset:
    from pycroscopy_bevae.io.usid import make_dims, write_main

    dc = np.concatenate([np.linspace(0, 2, steps // 4, endpoint=False),
                         np.linspace(2, -2, steps // 2, endpoint=False),
                         np.linspace(-2, 0, steps - steps // 4 - steps // 2, endpoint=False)])
    loops = np.tanh(3 * dc)[None, :] + np.linspace(0, 0.1, 6)[:, None]
    dims = [("DC_Offset", "V", dc)] + ([("Repeat", "", np.arange(extra))] if extra > 1 else [])
    with h5py.File(path, "w") as f:
        write_main(f, np.tile(loops, (1, extra)), "Loops", "Piezoresponse", "a.u.",
                   make_dims([("Y", "m", np.arange(2.0)), ("X", "m", np.arange(3.0))]),
                   make_dims(dims[::-1]))
    return path


@pytest.mark.parametrize("steps, edit, match", [
    (16, None, "needs at least 18"),
    (8, None, "needs at least 18"),
    (32, lambda d: d.fill(np.nan), "none of its 6 loops can be fitted"),
    (32, lambda d: d.fill(0.5), "none of its 6 loops can be fitted"),
], ids=["16_steps", "8_steps", "all_nan", "flat"])
def test_loop_fit_refuses_what_it_cannot_fit(tmp_path, steps, edit, match):
    path = _loop_dataset(tmp_path / "l.h5", steps)
    if edit is not None:
        with h5py.File(path, "r+") as f:
            data = f["Loops"][()]
            edit(data)
            f["Loops"][...] = data
    before = file_digest(path)
    with h5py.File(path, "r+") as f:
        with pytest.raises(BEPSFormatError, match=match):
            LoopFitProcess(f["Loops"], progress=False)
    assert file_digest(path) == before


def test_loop_fit_counts_and_warns_about_unfittable_loops(tmp_path):
    path = _loop_dataset(tmp_path / "l.h5", 32)
    with h5py.File(path, "r+") as f:
        f["Loops"][2, 3] = np.nan
        with pytest.warns(DataQualityWarning, match="1 loop.s. hold NaN/inf"):
            grp = LoopFitProcess(f["Loops"], progress=False, max_iter=5).compute()
        assert grp.attrs["n_unusable_loops"] == 1 and np.isnan(grp["R2"][2, 0])
        assert np.isfinite(np.delete(grp["R2"][:, 0], 2)).all()


def test_extra_spectroscopic_dimensions_are_refused_not_dropped(tmp_path):
    path = _loop_dataset(tmp_path / "l.h5", 32, extra=3)
    before = file_digest(path)
    with h5py.File(path, "r+") as f:
        with pytest.raises(BEPSFormatError, match=r"Repeat \(3 values\)"):
            DictionaryLearningProcess(f["Loops"], n_components=2)
    assert file_digest(path) == before


# ---- 5./6. refusals leave nothing behind; package errors ---------------------------------

def test_non_finite_sidpy_loops_are_refused_before_the_copy(maps, tmp_path):
    ds = _sidpy_loops(maps["m1_projected"])
    data = np.asarray(ds).copy()
    data[0, 0, 0, 3, 0] = np.inf
    bad = ds.like_data(data)
    for i in range(ds.ndim):
        bad.set_dimension(i, ds._axes[i])
    with h5py.File(tmp_path / "t.h5", "w") as out:
        with pytest.raises(BEPSFormatError, match="1 non-finite values"):
            DictionaryLearningProcess(bad, h5_target_group=out, n_components=2)
        assert list(out.keys()) == []


@pytest.mark.parametrize("kwargs, match", [
    (dict(max_mem_mb=2.5), "max_mem_mb must be a whole number of megabytes, got 2.5"),
    (dict(mem_multiplier=0.5), "mem_multiplier must be at least 1"),
    (dict(max_mem_mb=1, mem_multiplier=1e6), "leave room for no position"),
])
def test_chunk_settings_are_refused_before_any_group_exists(maps, tmp_path, kwargs, match):
    path = _copy(maps, "m1", tmp_path)
    before = file_digest(path)
    with h5py.File(path, "r+") as f:
        with pytest.raises(ParameterError, match=match):
            LoopProjector(f, progress=False, **kwargs)
    assert file_digest(path) == before


def test_a_whole_number_max_mem_mb_as_float_and_an_int_multiplier_work(maps, tmp_path):
    path = _copy(maps, "m1", tmp_path)
    with h5py.File(path, "r+") as f, warnings.catch_warnings():
        warnings.simplefilter("ignore", DataQualityWarning)
        assert LoopProjector(f, progress=False, max_mem_mb=64.0, mem_multiplier=2).compute()


def test_a_target_group_of_a_closed_file_is_a_package_error(maps, tmp_path):
    with h5py.File(tmp_path / "t.h5", "w") as out:
        grp = out.create_group("R")
    with h5py.File(maps["m1"], "r") as f:
        with pytest.raises(ParameterError, match="that is open"):
            LoopProjector(f, h5_target_group=grp, progress=False)


def test_a_family_driver_target_file_is_written(maps, tmp_path):
    with h5py.File(maps["m1"], "r") as f, warnings.catch_warnings(), \
            h5py.File(str(tmp_path / "fam%d.h5"), "w", driver="family") as out:
        warnings.simplefilter("ignore", DataQualityWarning)
        grp = LoopProjector(f, h5_target_group=out, progress=False).compute()
        assert grp["Piezoresponse"].shape == (20, 384)


@pytest.mark.parametrize("kwargs, match", [
    (dict(n_active="2"), "n_active must be None or a non-negative integer, got '2'"),
    (dict(snapshot=1.5), "snapshot must be None or a non-negative integer, got 1.5"),
])
def test_load_beta_vae_checks_its_arguments(tiny_vae_run, kwargs, match):
    from pycroscopy_bevae.io.model_store import load_beta_vae

    with h5py.File(tiny_vae_run["results"], "r") as o:
        with pytest.raises(ParameterError, match=match):
            load_beta_vae(o[tiny_vae_run["group"]], **kwargs)


_HUGE = """
import sys, time, h5py, numpy as np
from pycroscopy_bevae import LoopProjector, BEPSFormatError
t0 = time.perf_counter()
with h5py.File(sys.argv[1], "r+") as f:
    try:
        LoopProjector(f, progress=False)
    except BEPSFormatError as exc:
        print("REFUSED", round(time.perf_counter() - t0, 2), exc)
"""


def test_a_declared_size_beyond_memory_is_refused_from_the_shape(tmp_path):
    """A small file that declares 2e9 positions is refused before anything is read."""
    from pycroscopy_bevae.io.beps import SHO_FIELDS

    path = fit_file(tmp_path / "huge.h5", n_pos=4)
    n = 2_000_000_000
    with h5py.File(path, "r+") as f:  # declared, never written: the file stays small
        grp = f["Measurement_000/Channel_000/Raw_Data-SHO_Fit_000"]
        attrs = dict(f[FIT].attrs)
        del grp["Fit"]
        fit = grp.create_dataset("Fit", shape=(n, 32), chunks=(4096, 32),
                                 dtype=np.dtype([(k, "f4") for k in SHO_FIELDS]))
        for name, dtype in (("Huge_Position_Indices", "u4"), ("Huge_Position_Values", "f4")):
            anc = grp.create_dataset(name, shape=(n, 1), chunks=(65536, 1), dtype=dtype)
            anc.attrs["labels"] = np.array([b"X"])
            anc.attrs["units"] = np.array([b"m"])
            attrs[name.replace("Huge_", "")] = anc.ref
        for key, value in attrs.items():
            fit.attrs[key] = value
    if Path(path).stat().st_size > 50 * 2**20:
        pytest.skip("this HDF5 writes the declared position indices out in full")
    before = Path(path).read_bytes()
    out = subprocess.run([sys.executable, "-c", _HUGE, str(path)], capture_output=True,
                         text=True, timeout=120, check=True).stdout
    assert out.startswith("REFUSED"), out
    assert "Position_Indices declares shape (2000000000, 1)" in out
    assert Path(path).read_bytes() == before


# ---- 6. Ctrl-C in the command line ------------------------------------------------------

# Ctrl-C arrives as the first block of positions is projected (a timer raced the
# projection, which can finish in under a second on an idle machine)
_CTRL_C = """
import signal, sys
# a terminal's Ctrl-C: the default handler (a child of a pytest-xdist worker inherits
# SIGINT ignored, and Python keeps it so)
signal.signal(signal.SIGINT, signal.default_int_handler)
from pycroscopy_bevae.cli import main
from pycroscopy_bevae.process.loop_projection import LoopProjector
unit, calls = LoopProjector._unit_computation, []
def unit_then_ctrl_c(self, *args, **kwargs):
    calls.append(1)
    if len(calls) == 1:
        signal.raise_signal(signal.SIGINT)
    return unit(self, *args, **kwargs)
LoopProjector._unit_computation = unit_then_ctrl_c
sys.exit(main(["project", sys.argv[1], "--override"]))
"""


@pytest.mark.slow
def test_ctrl_c_in_the_cli_is_one_line_and_exit_130(tmp_path):
    path = write_synthetic_beps(tmp_path / "map.h5", shape=(8, 8), seed=0)
    run = subprocess.run([sys.executable, "-c", _CTRL_C, str(path)],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 130, run.stderr[-2000:]
    lines = [ln for ln in run.stderr.splitlines() if ln.strip() and "%|" not in ln]
    assert lines == ["pycroscopy-bevae project: interrupted (what was written is kept: the "
                     "same command resumes it or starts afresh)"], run.stderr[-2000:]


def test_a_user_dataset_with_the_copys_ancillary_name_is_left_alone(maps, tmp_path):
    ds = _sidpy_loops(maps["m1_projected"])
    with h5py.File(tmp_path / "t.h5", "w") as out:
        out["Piezoresponse_Position_Indices"] = np.arange(3)
        proc = LoopFitProcess(ds, h5_target_group=out, progress=False, max_iter=5)
        assert proc.h5_main.name == "/Piezoresponse_001"
        np.testing.assert_array_equal(out["Piezoresponse_Position_Indices"][()], np.arange(3))


_NO_ROOM = """
import resource, sys, h5py
from pycroscopy_bevae import InsufficientSpaceError
from pycroscopy_bevae.io import usid_to_sidpy
from pycroscopy_bevae.process import LoopFitProcess
with h5py.File(sys.argv[1], "r") as f:
    ds = usid_to_sidpy(f[sys.argv[2]], title="Piezoresponse")
limit = int(sys.argv[4])
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
with h5py.File(sys.argv[3], "r+") as out:
    try:
        LoopFitProcess(ds, h5_target_group=out, progress=False)
    except InsufficientSpaceError as exc:
        print("REFUSED", exc)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="RLIMIT_FSIZE is POSIX")
def test_no_room_for_the_sidpy_copy_is_refused_before_it_is_written(maps, tmp_path):
    target = tmp_path / "t.h5"
    with h5py.File(target, "w") as out:
        out.attrs["kept"] = 1
    before = target.read_bytes()
    run = subprocess.run([sys.executable, "-c", _NO_ROOM, str(maps["m1_projected"]), PIEZO,
                          str(target), str(len(before) + 500_000)],
                         capture_output=True, text=True, timeout=300)
    assert run.stdout.startswith("REFUSED") and "file-size limit" in run.stdout, \
        run.stdout + run.stderr[-2000:]
    assert target.read_bytes() == before


def test_a_lazy_sidpy_input_beyond_memory_is_refused_before_it_is_read(tmp_path):
    import dask.array as da

    n = 200_000
    ds = sidpy.Dataset.from_array(da.zeros((n, n, 96), chunks=(1000, 1000, 96)), title="Big")
    ds.set_dimension(0, sidpy.Dimension(np.arange(n), "Y", dimension_type="spatial"))
    ds.set_dimension(1, sidpy.Dimension(np.arange(n), "X", dimension_type="spatial"))
    ds.set_dimension(2, sidpy.Dimension(np.linspace(-1, 1, 96), "DC Offset", units="V",
                                        dimension_type="spectral"))
    with h5py.File(tmp_path / "t.h5", "w") as out:
        with pytest.raises(BEPSFormatError, match=r"declares shape \(200000, 200000, 96\)"):
            DictionaryLearningProcess(ds, h5_target_group=out)
        assert list(out.keys()) == []
