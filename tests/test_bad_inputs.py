"""A corpus of bad inputs (issue 7): each gives a package exception naming the object and
what was expected, or, where the data is usable, a warning plus correct handling; and
the file keeps every pre-existing byte (for errors) or every pre-existing dataset and
attribute (where results are written).

Cases already exercised elsewhere with ``select_loops`` or one process (test_io,
test_loop_projector, test_dictionary, test_vae_process) are repeated here through the
processes, with the unchanged-file check those tests do not make; the table says which.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import shutil
import subprocess
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
import pytest
from pyUSID.io.hdf_utils import check_if_main

from pycroscopy_bevae import (
    BEPSFormatError,
    BetaVAEProcess,
    DictionaryLearningProcess,
    LoopProjector,
    ParameterError,
    load_beta_vae,
)
from pycroscopy_bevae.datasets import write_synthetic_beps
from pycroscopy_bevae.exceptions import DataQualityWarning, FileInUseError
from pycroscopy_bevae.io import SHO_FIELDS, select_loops
from pycroscopy_bevae.io.usid import make_dims, write_main
from pycroscopy_bevae.models import project_loops
from tests.helpers import FIT, PROJ_GROUP, TINY_VAE, file_digest, fit_file

pytestmark = pytest.mark.filterwarnings(
    "ignore:This dataset does not have an N-dimensional form")  # pyUSID, on a 1 x 1 grid

PROJ = PROJ_GROUP
TINY = {k: v for k, v in TINY_VAE.items() if k != "checkpoint_every"} | {"epochs": 2}


def _project(path: Path, **kwargs) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataQualityWarning)
        with h5py.File(path, "r+") as f:
            LoopProjector(f, progress=False, **kwargs).compute()


@pytest.fixture(scope="module")
def masters(tmp_path_factory) -> dict[str, Path]:
    """A 6 x 5 synthetic BEPS file (96 steps, 2 cycles, 2 fields), and a copy projected."""
    d = tmp_path_factory.mktemp("corpus")
    raw = Path(write_synthetic_beps(d / "raw.h5", shape=(6, 5), seed=3))
    proj = d / "projected.h5"
    shutil.copy(raw, proj)
    _project(proj)
    return {"raw": raw, "projected": proj}


def _sha(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _assert_kept(before: dict, path: Path, ignore: tuple[str, ...] = ()) -> None:
    """Every dataset and attribute in ``before`` is still there, byte-identical."""
    after = file_digest(path)
    changed = [k for k, v in before.items() if after.get(k) != v and k not in ignore]
    assert not changed, f"pre-existing objects changed: {changed[:5]}"


# ---- builders: each returns the path of the bad file, made under tmp_path -----------------
def _copy_of(name: str) -> Callable:
    def build(tmp: Path, masters: dict) -> Path:
        dst = tmp / f"{name}_copy.h5"
        shutil.copy(masters[name], dst)
        return dst
    return build


def _edit_fit(edit: Callable[[np.ndarray], None]) -> Callable:
    """A copy of the raw file whose SHO fit values are changed in place by ``edit``."""
    def build(tmp: Path, masters: dict) -> Path:
        path = _copy_of("raw")(tmp, masters)
        with h5py.File(path, "r+") as f:
            data = f[FIT][()]
            edit(data)
            f[FIT][...] = data
        return path
    return build


def _not_hdf5(tmp, masters):
    path = tmp / "notes.h5"
    path.write_text("instrument log, not HDF5\n")
    return path


def _truncated(tmp, masters):
    raw = masters["raw"].read_bytes()
    path = tmp / "cut.h5"
    path.write_bytes(raw[: len(raw) // 3])
    return path


def _hdf5_without_usid(tmp, masters):
    path = tmp / "plain.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("Measurement_000/Channel_000/Raw_Data", data=np.zeros((4, 16)))
    return path


def _sho_fit_not_usid(tmp, masters):
    path = tmp / "fit_plain.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset(FIT, data=np.zeros((4, 8), np.dtype([(n, "f4") for n in SHO_FIELDS])))
    return path


def _usid_without_sho_fit(tmp, masters):
    path = tmp / "raw_only.h5"
    write_synthetic_beps(path, shape=(3, 2), seed=1, raw_data=True)
    with h5py.File(path, "r+") as f:
        del f["Measurement_000/Channel_000/Raw_Data-SHO_Fit_000"]
        assert check_if_main(f["Measurement_000/Channel_000/Raw_Data"])
    return path


def _spec_indices_wrong_shape(tmp, masters):
    path = _copy_of("raw")(tmp, masters)
    with h5py.File(path, "r+") as f:
        fit = f[FIT]
        old = f[fit.attrs["Spectroscopic_Indices"]]
        new = fit.parent.create_dataset("Spectroscopic_Indices_short", data=old[:, :100])
        for k, v in old.attrs.items():
            new.attrs[k] = v
        fit.attrs["Spectroscopic_Indices"] = new.ref
    return path


def _spec_indices_repeat(tmp, masters):
    path = fit_file(tmp / "repeat.h5")
    with h5py.File(path, "r+") as f:
        inds = f[f[FIT].attrs["Spectroscopic_Indices"]]
        data = inds[()]
        data[:, 1] = data[:, 0]
        inds[...] = data
    return path


def _zero_positions(tmp, masters):
    path = tmp / "empty.h5"
    with h5py.File(path, "w") as f:
        fit = f.create_dataset(FIT, shape=(0, 8),
                               dtype=np.dtype([(n, "f4") for n in SHO_FIELDS]))
        fit.attrs["quantity"], fit.attrs["units"] = "SHO", "compound"
    return path


def _all_nan(data):
    for name in SHO_FIELDS:
        data[name] = np.nan


def _r2_low(data):
    data["R2 Criterion"] = 0.3


def _one_position(tmp, masters):
    path = Path(write_synthetic_beps(tmp / "one.h5", shape=(1, 1), seed=3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pyUSID: a 1 x 1 grid has no N-dimensional form
        _project(path)
    return path


def _mismatched_positions(tmp, masters):
    path = _copy_of("projected")(tmp, masters)
    with h5py.File(path, "r+") as f:
        res = f[PROJ]["Resonance"]
        spec = {"inds": f[res.attrs["Spectroscopic_Indices"]],
                "vals": f[res.attrs["Spectroscopic_Values"]]}
        write_main(f["Measurement_000"], res[:10], "Resonance_10", "Resonance Frequency", "Hz",
                   make_dims([("X", "m", np.arange(10.0))]), spec)
    return path


def _infinite_resonance(tmp, masters):
    path = _copy_of("projected")(tmp, masters)
    with h5py.File(path, "r+") as f:
        f[PROJ]["Resonance"][3, 195] = np.inf  # last cycle, out-of-field (odd columns)
    return path


def _edit_ancillary(name: str, edit: Callable[[np.ndarray], None]) -> Callable:
    """A copy of the raw file whose Fit ancillary dataset ``name`` is changed by ``edit``."""
    def build(tmp: Path, masters: dict) -> Path:
        path = _copy_of("raw")(tmp, masters)
        with h5py.File(path, "r+") as f:
            anc = f[f[FIT].attrs[name]]
            data = anc[()]
            edit(data, [x.decode() if isinstance(x, bytes) else str(x)
                        for x in anc.attrs["labels"]])
            anc[...] = data
        return path
    return build


def _grid_too_big(data, labels):  # 30 rows, but one index says the grid is 6 x 9
    data[0, labels.index("X")] = 8


def _repeated_row(data, labels):
    data[7] = data[6]


def _swapped_rows(data, labels):
    data[[3, 4]] = data[[4, 3]]


def _nan_field(data, labels):
    data[labels.index("Field"), 5] = np.nan


def _dangling_position_values(tmp, masters):
    path = _copy_of("raw")(tmp, masters)
    with h5py.File(path, "r+") as f:
        fit = f[FIT]
        fake = f.create_dataset("Measurement_000/Orphan_Values", data=np.zeros((30, 2)))
        fit.attrs["Position_Values"] = fake.ref
        del f["Measurement_000/Orphan_Values"]
    return path


# ---- actions ------------------------------------------------------------------------------
def _on_file(call: Callable, mode: str = "r+", source: str | None = None) -> Callable:
    def act(path: Path) -> None:
        with h5py.File(path, mode) as f:
            call(f[source] if source else f)
    return act


def _projector(**kw) -> Callable:
    return _on_file(lambda f: LoopProjector(f, progress=False, **kw).compute())


def _dictionary(mode="r+", **kw) -> Callable:
    return _on_file(lambda g: DictionaryLearningProcess(g, **kw).compute(), mode, PROJ)


def _vae(mode="r+", **kw) -> Callable:
    return _on_file(lambda g: BetaVAEProcess(g, **{**TINY, **kw}).compute(), mode, PROJ)


@dataclass
class Case:
    id: str
    build: Callable[[Path, dict], Path]
    act: Callable[[Path], None]
    error: type
    patterns: list = field(default_factory=list)
    also_in: str = ""  # an existing test covering the same input another way


CASES = [
    Case("not_hdf5", _not_hdf5, select_loops, BEPSFormatError,
         [r"'[^']*notes\.h5'", "is not an HDF5 file", "expected a USID BEPS file"],
         "test_io::test_not_hdf5"),
    Case("truncated_hdf5", _truncated, select_loops, BEPSFormatError,
         [r"'[^']*cut\.h5'", "could not be opened as HDF5", "truncated"],
         "test_io::test_truncated_hdf5"),
    Case("hdf5_without_usid", _hdf5_without_usid, _projector(), BEPSFormatError,
         ["no SHO fit found under '/'", r"plain\.h5", r"expected a dataset '.*-SHO_Fit_NNN/Fit'"]),
    Case("sho_fit_not_usid_main", _sho_fit_not_usid, _projector(), BEPSFormatError,
         [r"dataset '/Measurement_000/.*/Fit'", "is not a USID main dataset",
          "Position_Indices not found", "expected Position_/Spectroscopic_ Indices"],
         "test_io::test_not_usid_main"),
    Case("usid_without_sho_fit", _usid_without_sho_fit, _projector(), BEPSFormatError,
         ["no SHO fit found", r"raw_only\.h5", "SHO_Fit_NNN/Fit"]),
    Case("sho_missing_field", lambda t, m: fit_file(
        t / "f.h5", fields=[f for f in SHO_FIELDS if f != "Phase [rad]"]), _projector(),
        BEPSFormatError, [r"Fit' in file '[^']*f\.h5'", r"lacks field\(s\) \['Phase \[rad\]'\]",
                          r"expected \['Amplitude \[V\]'"],
        "test_io::test_missing_and_wrongly_typed_fields"),
    Case("sho_renamed_field", lambda t, m: fit_file(
        t / "f.h5", fields=["Amplitude", *SHO_FIELDS[1:]]), _projector(), BEPSFormatError,
        [r"lacks field\(s\) \['Amplitude \[V\]'\]", r"found \['Amplitude', 'Frequency"]),
    Case("sho_integer_fields", lambda t, m: fit_file(t / "f.h5", dtype="i4"), _projector(),
         BEPSFormatError, [r"Fit' in file", "have types", "expected float32 or float64"],
         "test_io::test_missing_and_wrongly_typed_fields"),
    Case("missing_dc_offset", lambda t, m: fit_file(t / "f.h5", with_dc=False), _projector(),
         BEPSFormatError, [r"Fit' in file", r"spectroscopic dimensions \['Cycle', 'Field'\]",
                           "expected a DC-bias dimension"], "test_io::test_missing_dc_offset"),
    Case("spec_indices_shape_mismatch", _spec_indices_wrong_shape, _projector(), BEPSFormatError,
         [r"Fit' in file", "is not a USID main dataset",
          r"Spectroscopic indices:\(3, 100\).*main dataset: \(30, 384\)"]),
    Case("spec_indices_repeated_step", _spec_indices_repeat, _projector(), BEPSFormatError,
         [r"Fit' in file", "repeat a combination", "expected each step to appear once"],
         "test_io::test_inconsistent_spectroscopic_indices"),
    Case("zero_positions", _zero_positions, _projector(), BEPSFormatError,
         [r"Fit' in file '[^']*empty\.h5'", r"is empty \(shape \(0, 8\)\)",
          "expected positions x steps"], "test_io::test_empty_dataset (select_loops)"),
    Case("all_nan_fit", _edit_fit(_all_nan), _projector(), BEPSFormatError,
         [r"Fit' in file", "has no usable SHO fit", "all 11520 fits have non-finite",
          "expected finite Amplitude"]),
    Case("r2_all_below_threshold", _edit_fit(_r2_low), _projector(), ParameterError,
         ["r2_threshold=0.5 rejects every SHO fit", r"Fit' in file",
          r"highest 'R2 Criterion' of its \d+ finite fits is 0\.3", "expected a threshold"]),
    Case("mismatched_positions", _mismatched_positions, _on_file(
        lambda f: DictionaryLearningProcess([f[PROJ]["Piezoresponse"],
                                             f["Measurement_000/Resonance_10"]])),
        BEPSFormatError, [r"'/Measurement_000/Resonance_10'", "has 10 positions",
                          r"Piezoresponse' has 30", "must describe the same positions"]),
    Case("non_finite_loops_vae", _infinite_resonance, _vae(), BEPSFormatError,
         [r"dataset '.*/Resonance'", "1 non-finite values in 1 selected loops",
          "expected finite loops"],
         "test_dictionary::test_non_finite_loops_are_refused_before_writing (DL)"),
    Case("read_only_dictionary", _copy_of("projected"), _dictionary(mode="r"), ParameterError,
         [r"file '[^']*projected_copy\.h5' is open read-only", "mode 'r\\+'",
          "h5_target_group"], "test_loop_projector::test_read_only_file_refused (projector)"),
    Case("read_only_vae", _copy_of("projected"), _vae(mode="r"), ParameterError,
         ["is open read-only", "h5_target_group"]),
    Case("one_position_dictionary", _one_position, _dictionary(n_components=3), ParameterError,
         [r"n_components=3 exceeds the 1 position\(s\)", r"Piezoresponse' in file",
          "expected at most one atom per position"]),
    Case("one_position_vae", _one_position, _vae(), ParameterError,
         [r"Piezoresponse' in file '[^']*one\.h5' has 1 position", "at least 2 positions"]),
    Case("negative_epochs", _copy_of("projected"), _vae(epochs=-1), ParameterError,
         ["epochs must be a non-negative integer, got -1"], "test_vae_process"),
    Case("n_components_zero", _copy_of("projected"), _dictionary(n_components=0),
         ParameterError, ["n_components must be a positive integer, got 0"], "test_dictionary"),
    Case("unknown_preset", _copy_of("projected"), _vae(preset="gigantic"), ParameterError,
         ["unknown preset 'gigantic'", r"choose one of \['fast', 'paper'\]"], "test_vae_process"),
    Case("cycle_out_of_range", _copy_of("projected"), _dictionary(cycle=7), ParameterError,
         [r"cycle=7 is out of range for dataset '.*/Piezoresponse'", "has 2 cycle",
          r"valid: 0\.\.1"], "test_dictionary"),
    Case("r2_threshold_not_finite", _copy_of("raw"), _projector(r2_threshold=math.nan),
         ParameterError, ["r2_threshold must be a finite number, got nan"]),
    Case("invalid_field", _copy_of("projected"), _dictionary(field="remanent"),
         ParameterError, [r"field must be one of \('off', 'on', 'both'\)", "'remanent'"]),
    Case("position_indices_not_a_grid", _edit_ancillary("Position_Indices", _grid_too_big),
         _projector(), BEPSFormatError,
         [r"Fit' in file", "Position_Indices span a grid of", r"= 54 positions",
          "the dataset has 30 rows", "expected every grid point exactly once"]),
    Case("position_indices_repeated_row", _edit_ancillary("Position_Indices", _repeated_row),
         _projector(), BEPSFormatError,
         [r"Fit' in file", "Position_Indices repeat a position: rows 6 and 7",
          "expected each position once"]),
    Case("position_indices_shifted_rows", _edit_ancillary("Position_Indices", _swapped_rows),
         _projector(), BEPSFormatError,
         [r"Fit' in file", "out of grid order: row 3 has", "expected", "varying fastest"]),
    Case("nan_spectroscopic_values", _edit_ancillary("Spectroscopic_Values", _nan_field),
         _projector(), BEPSFormatError,
         [r"Fit' in file", "Spectroscopic_Values of 'Field' are not finite at 1 step",
          r"first: step 5, value nan", "expected a finite value at every step"]),
    Case("dangling_position_values", _dangling_position_values, _projector(), BEPSFormatError,
         [r"attribute 'Position_Values' of dataset '.*/Fit' in file", "no longer exists",
          "dangling reference", "expected a reference to its Position_Values dataset"]),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_raises_clearly_and_changes_nothing(case, masters, tmp_path):
    path = case.build(tmp_path, masters)
    before = _sha(path)
    with pytest.raises(case.error) as info:
        case.act(path)
    msg = str(info.value)
    for pattern in case.patterns:
        assert re.search(pattern, msg), f"{pattern!r} not in message: {msg}"
    assert _sha(path) == before, "the file changed"


def test_corpus_size():
    """The issue asks for at least 20 generated cases (plus the warning cases below)."""
    assert len(CASES) >= 20 and len({c.id for c in CASES}) == len(CASES)


# ---- usable data: a warning and the right result, or just the right result ----------------
def test_float32_and_float64_compounds_are_both_projected(tmp_path):
    out = {}
    for dt in ("float32", "float64"):
        path = write_synthetic_beps(tmp_path / f"{dt}.h5", shape=(4, 5), seed=2, dtype=dt)
        before = file_digest(path)
        with pytest.warns(DataQualityWarning):
            with h5py.File(path, "r+") as f:
                grp = LoopProjector(f, progress=False).compute()
                assert f[FIT].dtype["Phase [rad]"] == np.dtype(dt)
                out[dt] = grp["Piezoresponse"][()]
                assert out[dt].dtype == np.dtype(dt)
        _assert_kept(before, path)
    # the same fits, stored at two precisions, give the same loops (to float32 precision)
    scale = np.abs(out["float64"]).max()
    np.testing.assert_allclose(out["float32"], out["float64"], rtol=0, atol=1e-5 * scale)


def test_one_position_is_projected_like_any_other(tmp_path):
    path = Path(write_synthetic_beps(tmp_path / "one.h5", shape=(1, 1), seed=3))
    before = file_digest(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pyUSID: a 1 x 1 grid has no N-dimensional form
        with h5py.File(path, "r+") as f:
            grp = LoopProjector(f, progress=False, r2_threshold=0.0).compute()
            fit = f[FIT][()]
            piezo = grp["Piezoresponse"][()]
    assert piezo.shape == (1, 384) and np.isfinite(piezo).all()
    # same numbers as the model applied to that one position (loops = cycle x field)
    from pycroscopy_bevae.io import describe_loops
    from pycroscopy_bevae.io.layout import loop_columns

    with h5py.File(path, "r") as f:
        cols = loop_columns(describe_loops(f[FIT]))
        dc = describe_loops(f[FIT]).dc_values[cols]
    ref = project_loops(fit["Amplitude [V]"][:, cols], fit["Phase [rad]"][:, cols], dc,
                        frequency=fit["Frequency [Hz]"][:, cols], r2=fit["R2 Criterion"][:, cols])
    np.testing.assert_allclose(piezo[0, cols.ravel()], ref.piezoresponse.ravel(), rtol=1e-6)
    _assert_kept(before, path)


def _poison(path: Path, value: float) -> list[tuple[int, int]]:
    """Set a few fits of the raw copy at ``path`` to ``value``; return (row, column) pairs."""
    spots = [(2, 10), (3, 201), (7, 383)]
    with h5py.File(path, "r+") as f:
        data = f[FIT][()]
        data["R2 Criterion"] = 0.99  # only the poisoned fits are to be rejected
        for (r, c), name in zip(spots, ("Amplitude [V]", "Phase [rad]", "Frequency [Hz]"),
                                strict=True):
            data[name][r, c] = value
        f[FIT][...] = data
    return spots


def test_some_non_finite_fits_warn_and_are_interpolated(tmp_path):
    clean = write_synthetic_beps(tmp_path / "clean.h5", shape=(6, 5), seed=3,
                                 failed_fraction=0.0)
    results = {}
    for label, value in (("inf", np.inf), ("nan", np.nan)):
        path = tmp_path / f"{label}.h5"
        shutil.copy(clean, path)
        spots = _poison(path, value)
        before = file_digest(path)
        with pytest.warns(DataQualityWarning, match=r"3 of 11520 SHO fits .* rejected "
                          r"\(non-finite, or R2 Criterion < 0\.5\) and interpolated"):
            with h5py.File(path, "r+") as f:
                grp = LoopProjector(f, progress=False).compute()
                results[label] = {k: grp[k][()] for k in ("Piezoresponse", "Resonance",
                                                          "Rejected_Fits")}
                assert grp.attrs["n_rejected_fits"] == 3
                assert grp.attrs["n_positions_with_nan"] == 0
        _assert_kept(before, path)
    res = results["inf"]
    assert np.isfinite(res["Piezoresponse"]).all() and np.isfinite(res["Resonance"]).all()
    assert [int(res["Rejected_Fits"][r]) for r, _ in spots] == [1, 1, 1]
    # an infinite fit is rejected exactly like a missing (NaN) one
    for k in res:
        np.testing.assert_array_equal(res[k], results["nan"][k])
    # and replaced by the mean of its neighbours along the loop (linear interpolation):
    # column 201 is step 4 of the cycle-1 in-field loop, whose neighbours are 199 and 203
    p = res["Piezoresponse"][3]
    assert p[201] == pytest.approx(0.5 * (p[199] + p[203]), rel=1e-5)


def test_a_loop_without_any_usable_fit_stays_nan_with_a_warning(masters, tmp_path):
    path = tmp_path / "dead_loop.h5"
    shutil.copy(masters["raw"], path)
    with h5py.File(path, "r+") as f:
        data = f[FIT][()]
        data["Amplitude [V]"][4, 192::2] = np.nan  # position 4, cycle 1, in-field: all steps
        f[FIT][...] = data
    before = file_digest(path)
    with pytest.warns(DataQualityWarning, match=r"1 position\(s\) have a loop with no usable "
                      r"fit at all and keep NaN values in '/.*Fit-Loop_Projection_000'"):
        with h5py.File(path, "r+") as f:
            grp = LoopProjector(f, progress=False).compute()
            piezo = grp["Piezoresponse"][()]
            assert grp.attrs["n_positions_with_nan"] == 1
    assert np.isnan(piezo[4, 192::2]).all()
    assert np.isfinite(np.delete(piezo, 4, axis=0)).all()
    assert np.isfinite(piezo[4, 193::2]).all() and np.isfinite(piezo[4, :192]).all()
    _assert_kept(before, path)


def test_half_written_projection_group_is_not_resumed(masters, tmp_path):
    """A crash can leave a group whose datasets are not all there: it is left alone (pyUSID
    only rewrites its legacy 'last_pixel' attribute) and the projection is redone in a new
    group, identical to a clean run."""
    path = tmp_path / "half.h5"
    shutil.copy(masters["projected"], path)
    with h5py.File(path, "r+") as f:
        grp = f[PROJ]
        ref = grp["Piezoresponse"][()]
        grp["completed_positions"][10:] = 0
        del grp["Rotation_Angle"]
    before = file_digest(path)
    with pytest.warns(DataQualityWarning, match=r"results group '/.*Fit-Loop_Projection_000' "
                      r"in file '.*half\.h5' is incomplete \(no usable Rotation_Angle"):
        with h5py.File(path, "r+") as f:
            proj = LoopProjector(f, progress=False)
            assert proj.partial_h5_groups == []
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DataQualityWarning)
                grp = proj.compute()
            assert grp.name.endswith("Fit-Loop_Projection_001")
            np.testing.assert_array_equal(grp["Piezoresponse"][()], ref)
    _assert_kept(before, path, ignore=(f"{PROJ}@last_pixel",))


def test_file_open_for_writing_elsewhere(masters, tmp_path):
    if os.environ.get("HDF5_USE_FILE_LOCKING", "").upper() == "FALSE":
        pytest.skip("HDF5 file locking is disabled in this environment")
    path = tmp_path / "busy.h5"
    shutil.copy(masters["raw"], path)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time, h5py; f = h5py.File(sys.argv[1], 'r+'); "
         "print('open', flush=True); time.sleep(120)", str(path)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        before = _sha(path)  # (the holder has set the superblock's open-for-writing flag)
        with pytest.raises(FileInUseError, match=r"file '[^']*busy\.h5' is in use: another "
                           r"program has it open for writing .* expected it to be closed"):
            select_loops(path)
        assert _sha(path) == before
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
    assert select_loops(path, fields=("Amplitude [V]",)).data["Amplitude [V]"].shape == (30, 96)


def test_results_to_another_file_for_read_only_input(tiny_vae_run, tmp_path):
    """h5_target_group: a read-only input stays byte-identical, every learning process
    writes complete USID results to the other file (and no object reference across files).
    The beta-VAE part is the shared ``tiny_vae_run`` (conftest)."""
    path = tmp_path / "readonly.h5"
    shutil.copy(tiny_vae_run["source"], path)
    assert _sha(tiny_vae_run["source"]) == tiny_vae_run["source_sha"] == _sha(path)
    with h5py.File(path, "r") as src, h5py.File(tmp_path / "results.h5", "w") as out:
        dl = DictionaryLearningProcess(src[PROJ], n_components=3, max_iter=5,
                                       h5_target_group=out).compute()
        _check_results_elsewhere(dl, DictionaryLearningProcess.result_names, path)
    assert _sha(path) == tiny_vae_run["source_sha"]
    with h5py.File(tiny_vae_run["results"], "r") as out:
        vae = out[tiny_vae_run["group"]]
        _check_results_elsewhere(vae, BetaVAEProcess.result_names, tiny_vae_run["source"])
        again, _ = load_beta_vae(vae)
        assert again.input_shape_ == (96, 2)


def _check_results_elsewhere(grp: h5py.Group, names: tuple, source: Path) -> None:
    assert grp.parent.name == "/" and grp.attrs["source_file_path"] == str(source)
    assert grp["completed_positions"][()].all()
    for name in names:
        assert check_if_main(grp[name]), (grp.name, name)
    assert not any(isinstance(v, h5py.Reference) for v in grp.attrs.values())


def test_wrong_number_of_steps_for_trained_models(tiny_vae_run, tmp_path):
    """Models trained on 96-step loops (the shared ``tiny_vae_run``; a dictionary from
    ``DictionaryLearningProcess.test``), applied to the 64-step loops of another file."""
    trained = tiny_vae_run["results"]
    shutil.copy(tiny_vae_run["source"], tmp_path / "src.h5")
    with h5py.File(tmp_path / "src.h5", "r+") as f:
        learner = DictionaryLearningProcess(f[PROJ], n_components=3, max_iter=5).test(30)[
            "learner"]
    short = Path(write_synthetic_beps(tmp_path / "short.h5", shape=(4, 4), seed=1, n_steps=64))
    _project(short)
    before = {p: _sha(p) for p in (trained, short)}
    with h5py.File(short, "r") as f:
        loops = [select_loops(f[PROJ][n]).data for n in ("Piezoresponse", "Resonance")]
    assert loops[0].shape == (16, 64)
    with h5py.File(trained, "r") as f:
        vae, scaler = load_beta_vae(f[tiny_vae_run["group"]])
    with pytest.raises(ParameterError, match=r"expected 96 steps \(as fitted\), got 64"):
        scaler.transform(loops)
    with pytest.raises(ParameterError, match=r"X has \(steps, channels\) = \(64, 2\), the "
                       r"model was trained on \(96, 2\)"):
        vae.transform(np.stack(loops, axis=-1))
    with pytest.raises(ParameterError, match=r"X has 128 features .* the dictionary was fitted "
                       r"on 192 \(96 \+ 96\)"):
        learner.transform(np.hstack(loops))
    assert {p: _sha(p) for p in (trained, short)} == before


def test_a_dataset_squatting_on_a_results_name_is_refused_before_writing(masters, tmp_path):
    path = tmp_path / "squat.h5"
    shutil.copy(masters["raw"], path)
    with h5py.File(path, "r+") as f:
        f[PROJ] = np.zeros(3)
    before = file_digest(path)
    with h5py.File(path, "r+") as f:
        with pytest.raises(BEPSFormatError, match="Fit-Loop_Projection_000' in file .* is not "
                                                  "a group but has the name of a "
                                                  "Loop_Projection results group"):
            LoopProjector(f, progress=False)
    _assert_kept(before, path)
    assert file_digest(path) == before


def _rewritten_fit(masters: dict, path: Path, convert=lambda data: data, **storage) -> Path:
    """A copy of the raw file whose SHO Fit is stored again (``convert``-ed values,
    ``storage`` keywords of ``create_dataset``), with the same attributes."""
    shutil.copy(masters["raw"], path)
    with h5py.File(path, "r+") as f:
        data, attrs = f[FIT][()], dict(f[FIT].attrs)
        del f[FIT]
        new = f.create_dataset(FIT, data=convert(data), **storage)
        for k, v in attrs.items():
            new.attrs[k] = v
    return path


def test_big_endian_sho_fields_project_like_native_ones(masters, tmp_path):
    path = _rewritten_fit(masters, tmp_path / "big_endian.h5",
                          lambda data: data.astype([(n, ">f4") for n in SHO_FIELDS]))
    _project(path)
    with h5py.File(path, "r") as f, h5py.File(masters["projected"], "r") as ref:
        assert f[FIT].dtype[SHO_FIELDS[0]].byteorder == ">"
        for name in ("Piezoresponse", "Resonance", "Rotation_Angle"):
            np.testing.assert_array_equal(f[PROJ][name][()], ref[PROJ][name][()], err_msg=name)


def test_a_constant_dc_axis_is_refused_not_projected_with_an_arbitrary_sign(masters, tmp_path):
    path = tmp_path / "flat_dc.h5"
    shutil.copy(masters["raw"], path)
    with h5py.File(path, "r+") as f:
        vals = f[FIT].parent["Spectroscopic_Values"]
        labels = [x.decode() if isinstance(x, bytes) else str(x) for x in vals.attrs["labels"]]
        row = labels.index("DC_Offset")
        data = vals[()]
        data[row] = 2.5
        vals[...] = data
    before = file_digest(path)
    with h5py.File(path, "r+") as f:
        with pytest.raises(BEPSFormatError, match=r"single DC_Offset value \(2.5 V\).*needs a "
                                                  "bias sweep"):
            LoopProjector(f, progress=False)
    assert file_digest(path) == before


def test_projector_flags_and_strings_are_typed(masters, tmp_path):
    path = tmp_path / "typed.h5"
    shutil.copy(masters["raw"], path)
    with h5py.File(path, "r+") as f:
        for bad in (dict(fill_failed="no"), dict(fill_failed=1), dict(r2_threshold=True),
                    dict(r2_threshold="0.5")):
            with pytest.raises(ParameterError, match=next(iter(bad))):
                LoopProjector(f, progress=False, **bad)
        grp = LoopProjector(f, progress=False, sign=np.str_("negative"),
                            fill_failed=np.bool_(True)).compute()
        assert grp.attrs["sign"] == "negative" and grp.attrs["fill_failed"]


def test_processing_keywords_and_learner_numbers_are_package_errors(masters, tmp_path):
    path = tmp_path / "kw.h5"
    shutil.copy(masters["projected"], path)
    before = file_digest(path)
    with h5py.File(path, "r+") as f:
        proj = f[PROJ]
        cases = [(dict(tol=-1), "tol must be a finite number >= 0"),
                 (dict(batch_size=0), "batch_size must be a positive integer"),
                 (dict(cores="2"), "cores must be None or a positive integer"),
                 (dict(h5_target_group="string"), "h5_target_group must be an h5py Group"),
                 (dict(max_mem_mb="abc"), "max_mem_mb must be None or a finite positive number"),
                 (dict(verbose="yes"), "verbose must be True or False"),
                 (dict(bogus=1), r"unknown parameter\(s\) \['bogus'\]")]
        for kw, message in cases:
            with pytest.raises(ParameterError, match=message):
                DictionaryLearningProcess(proj, **kw)
        with pytest.raises(ParameterError, match="cores must be"):
            LoopProjector(f, progress=False, cores=0)
    assert file_digest(path) == before


_UNREGISTERED_FILTER = """
import sys, h5py
from pycroscopy_bevae import BEPSFormatError, LoopProjector
h5py.h5z.unregister_filter(h5py.h5z.FILTER_LZF)  # as on an installation without the filter
with h5py.File(sys.argv[1], "r+") as f:
    try:
        LoopProjector(f, progress=False)
    except BEPSFormatError as exc:
        print("REFUSED", exc)
"""


def test_a_fit_stored_with_an_unavailable_filter_is_refused_before_writing(masters, tmp_path):
    path = _rewritten_fit(masters, tmp_path / "lzf.h5", compression="lzf", chunks=(5, 96))
    before = _sha(path)
    out = subprocess.run([sys.executable, "-c", _UNREGISTERED_FILTER, str(path)],
                         capture_output=True, text=True, timeout=300, check=True).stdout
    assert re.search(r"REFUSED dataset '.*/Fit' in file '.*lzf\.h5' is stored with HDF5 filter "
                     r"'lzf' \(id 32000\), which this HDF5 installation cannot read", out), out
    assert "hdf5plugin" in out
    assert _sha(path) == before
    _project(path)  # where the filter is available the same file projects as usual
    with h5py.File(path, "r") as f, h5py.File(masters["projected"], "r") as ref:
        np.testing.assert_array_equal(f[PROJ]["Piezoresponse"][()],
                                      ref[PROJ]["Piezoresponse"][()])


def _linked_file(tmp_path: Path, masters: dict) -> tuple[Path, Path]:
    """``user.h5`` whose SHO ``Fit`` is an external link into a copy of the raw file."""
    data = tmp_path / "data.h5"
    shutil.copy(masters["raw"], data)
    user = tmp_path / "user.h5"
    with h5py.File(user, "w") as f:
        f.attrs["note"] = "the user's own file"
        f[FIT] = h5py.ExternalLink("data.h5", "/" + FIT)
    return user, data


@pytest.mark.parametrize("pass_dataset", [False, True], ids=["file", "linked_dataset"])
def test_results_of_an_externally_linked_fit_go_into_the_users_file(masters, tmp_path,
                                                                      pass_dataset):
    user, data = _linked_file(tmp_path, masters)
    data_before = file_digest(data)  # (opened 'r+' through the link, HDF5 rewrites metadata)
    with h5py.File(user, "r+") as f:
        grp = LoopProjector(f[FIT] if pass_dataset else f, progress=False).compute()
        assert grp.file.filename == str(user) and grp.name == "/" + PROJ
    assert file_digest(data) == data_before, "the linked file changed"
    with h5py.File(user, "r") as f, h5py.File(masters["projected"], "r") as ref:
        for name in ("Piezoresponse", "Resonance", "Rotation_Angle"):
            np.testing.assert_array_equal(f[PROJ][name][()], ref[PROJ][name][()], err_msg=name)
            assert check_if_main(f[PROJ][name])
    with h5py.File(user, "r+") as f:  # chained processes keep to the user's file as well
        dl = DictionaryLearningProcess(f[PROJ], n_components=2, random_state=0).compute()
        assert dl.file.filename == str(user)


def test_an_external_link_to_a_missing_file_is_named(masters, tmp_path):
    user, data = _linked_file(tmp_path, masters)
    data.unlink()
    before = _sha(user)
    with h5py.File(user, "r+") as f:
        with pytest.raises(BEPSFormatError, match=r"Fit' in file '.*user\.h5' is an external "
                                                  r"link to .* in file 'data\.h5', which "
                                                  "cannot be opened"):
            LoopProjector(f, progress=False)
    assert _sha(user) == before
