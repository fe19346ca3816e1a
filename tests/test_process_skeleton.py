"""The one skeleton every process follows: the same ``test()`` (nothing written; positions
by index or drawn by count), parameters checked from the class's constraint table, and
provenance written through the one hook."""

from __future__ import annotations

import inspect
import re
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest

from pycroscopy_bevae import (
    BetaVAEProcess,
    DictionaryLearningProcess,
    LoopFitProcess,
    LoopProjector,
    SHOFitProcess,
)
from pycroscopy_bevae.datasets import write_synthetic_beps
from pycroscopy_bevae.exceptions import DataQualityWarning, ParameterError
from pycroscopy_bevae.process.base import BevaeProcess
from tests.helpers import FIT, PROJ_GROUP, file_digest, projected_map

PROCESSES = (LoopProjector, LoopFitProcess, SHOFitProcess, DictionaryLearningProcess,
             BetaVAEProcess)
RAW = "Measurement_000/Channel_000/Raw_Data"


def test_every_process_has_the_same_test_signature_and_no_own_test():
    base = inspect.signature(BevaeProcess.test)
    assert list(base.parameters) == ["self", "positions", "seed", "n_positions", "options"]
    for cls in PROCESSES:
        assert cls.test is BevaeProcess.test, cls.__name__
        assert "_test" in vars(cls), cls.__name__
        # the dictionary's parameters are all its estimator's (it checks them itself)
        assert bool(cls._parameter_constraints) is (cls is not DictionaryLearningProcess)


def test_loop_fit_test_matches_the_written_fit_and_writes_nothing(tmp_path):
    path = projected_map(tmp_path / "p.h5", shape=(4, 3))
    with h5py.File(path, "r+") as f:
        before = file_digest(path)
        proc = LoopFitProcess(f[PROJ_GROUP]["Piezoresponse"], max_iter=50, progress=False)
        out = proc.test([5, 2, 5])
        assert file_digest(path) == before
        assert out["parameters"].shape == (3, 4, 9)
        assert out["r2"].shape == (3, 4)  # 2 cycles, 2 fields
        np.testing.assert_array_equal(out["parameters"][0], out["parameters"][2])
        grp = proc.compute()
        # the written parameters (loops in the file's loop order) equal the trial's
        written = np.stack([grp[name][()] for name in grp.attrs["parameters"]], axis=-1)
        np.testing.assert_allclose(np.sort(written[2].ravel()),
                                   np.sort(out["parameters"][1].ravel()), rtol=1e-6)
        assert grp.attrs["source_dataset"] == f[PROJ_GROUP]["Piezoresponse"].name
        assert list(grp.attrs["parameter_units"])[0] == "V"
        with pytest.raises(ParameterError, match="positions must be indices in 0..11"):
            proc.test([12])
        with pytest.raises(ParameterError, match="n_positions must be >= 1, got 0"):
            proc.test(0)
        # the keyword the dictionary and beta-VAE tests had keeps working
        np.testing.assert_array_equal(proc.test(n_positions=3, seed=1)["positions"],
                                      proc.test(3, seed=1)["positions"])
        with pytest.raises(ParameterError, match="either positions= or n_positions="):
            proc.test([1], n_positions=3)


def test_sho_fit_test_by_count_is_seeded_and_matches_the_written_fit(tmp_path):
    path = write_synthetic_beps(tmp_path / "raw.h5", shape=(5, 4), seed=2, n_steps=16,
                                raw_data=True, raw_snr=None)
    with h5py.File(path, "r+") as f, warnings.catch_warnings():
        warnings.simplefilter("ignore", DataQualityWarning)
        before = file_digest(path)
        proc = SHOFitProcess(f[RAW], progress=False)
        a, b, c = proc.test(3, seed=1), proc.test(3, seed=1), proc.test(3, seed=2)
        assert file_digest(path) == before
        np.testing.assert_array_equal(a["positions"], b["positions"])
        assert a["positions"].size == 3 and np.all(np.diff(a["positions"]) > 0)
        assert not np.array_equal(a["positions"], c["positions"])
        assert proc.test(100)["positions"].tolist() == list(range(20))  # all, when fewer
        grp = proc.compute()
        for name, key in (("Fit", "fit"), ("Guess", "guess")):
            stored = grp[name][a["positions"].tolist()]
            for field in ("Amplitude [V]", "Frequency [Hz]", "R2 Criterion"):
                np.testing.assert_array_equal(stored[field], a[key][field])
        assert grp.attrs["tool"] == "SHOFitProcess"
        assert grp.attrs["source_dataset"] == "/" + RAW
        assert grp.attrs["frequency_dimension"] == "Frequency"


def test_loop_projector_default_test_positions_spread_over_the_map(beps_file):
    with h5py.File(beps_file, "r+") as f:
        out = LoopProjector(f, progress=False).test()
        n = f[FIT].shape[0]
    assert n > 4 and out["positions"].tolist() == np.unique(
        np.linspace(0, n - 1, 4).astype(int)).tolist()


@pytest.mark.parametrize("cls, bad", [(LoopFitProcess, {"max_iter": 0}),
                                      (LoopProjector, {"per": "row"}),
                                      (SHOFitProcess, {"tol": -1.0})])
def test_parameters_checked_from_the_class_table_before_any_write(tmp_path, cls, bad):
    path = projected_map(tmp_path / "p.h5", shape=(3, 3), raw_data=cls is SHOFitProcess)
    before = file_digest(path)
    name = next(iter(bad))
    with h5py.File(path, "r+") as f:
        src = {LoopFitProcess: lambda: f[PROJ_GROUP]["Piezoresponse"],
               LoopProjector: lambda: f, SHOFitProcess: lambda: f[RAW]}[cls]()
        with pytest.raises(ParameterError, match=name):
            cls(src, **bad)
    assert file_digest(path) == before


def test_the_skeleton_of_the_docs_page_runs_as_a_process(tmp_path):
    """docs/writing_a_process.rst: its example process computes, records its parameters
    and provenance, finds its own duplicate and runs a trial that writes nothing."""
    page = (Path(__file__).resolve().parents[1] / "docs" / "writing_a_process.rst").read_text()
    block = re.search(r"\.\. code-block:: python\n\n((?:   .*\n|\n)+)", page).group(1)
    namespace: dict = {}
    exec("\n".join(line[3:] for line in block.split("\n")), namespace)  # noqa: S102
    cls = namespace["LoopAreaProcess"]
    path = projected_map(tmp_path / "p.h5", shape=(3, 4))
    with h5py.File(path, "r+") as f:
        src = f[PROJ_GROUP]["Piezoresponse"]
        before = file_digest(path)
        trial = cls(src, progress=False).test([3, 1])
        assert file_digest(path) == before
        grp = cls(src, progress=False).compute()
        expected = np.abs(src[()]).sum(axis=1)
        np.testing.assert_allclose(grp["Area"][()].ravel(), expected)
        np.testing.assert_allclose(trial["area"].ravel(), expected[[1, 3]])
        assert grp.attrs["smooth"] == 0 and grp.attrs["tool"] == "LoopAreaProcess"
        assert grp.attrs["source_dataset"] == src.name
        assert cls(src, progress=False).compute().name == grp.name  # identical: found
        with pytest.raises(ParameterError, match="smooth"):
            cls(src, smooth=-1)
