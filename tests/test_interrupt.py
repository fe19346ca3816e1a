"""Hard kills (SIGKILL) of the three processes, in a child process, and the runs after them.

The child (``_killable_run.py``) stops at a point chosen by a seeded random choice among
the points where a kill is most likely to do harm (just before a flush, with results
written but not yet on disk; just after the "complete" flag is written), and the parent
kills it there. After every kill the file must still open and read completely, every
pre-existing dataset and attribute must be byte-identical, and a run with the same
parameters must finish in the same group with exactly the result of an uninterrupted run.

The default seed gives the points CI tests; ``BEVAE_KILL_SEED=<n>`` explores others.
(A killed writer leaves the superblock's "open for writing" byte set, so the raw bytes of
the file differ; HDF5 ignores that flag for the superblock versions these files use.)
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest

from pycroscopy_bevae import BetaVAEProcess, DictionaryLearningProcess, LoopProjector
from pycroscopy_bevae.exceptions import DataQualityWarning
from tests.helpers import PROJ_GROUP, TINY_VAE, file_digest

SEED = int(os.environ.get("BEVAE_KILL_SEED", "0"))
CHILD = Path(__file__).with_name("_killable_run.py")
PROJ = PROJ_GROUP
VAE_RESULTS = ("Embedding", "Log_Variance", "Reconstruction", "Reconstruction_Error",
               "Training_History", "Embedding_Snapshots", "Scaler_Mean", "Scaler_Std")

pytestmark = [pytest.mark.slow,
              pytest.mark.filterwarnings("ignore::pycroscopy_bevae.exceptions.DataQualityWarning")]


def _flush(k: int) -> dict:
    return {"target": "h5py:File.flush", "when": "before", "call": k}


def _kill_at(path: Path, process: str, source: str, kwargs: dict, stop: dict,
             timeout: float = 240) -> None:
    """Run ``process`` on ``path`` in a child Python, SIGKILL it at ``stop``."""
    spec = {"file": str(path), "process": process, "source": source, "kwargs": kwargs,
            "stop": stop}
    # the child imports the package the parent imported
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3",
               PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    err_path = path.with_suffix(".stderr.txt")
    with open(err_path, "w") as err:
        child = subprocess.Popen([sys.executable, str(CHILD), json.dumps(spec)],
                                 stdout=subprocess.PIPE, stderr=err, text=True, env=env)
        watchdog = threading.Timer(timeout, child.kill)
        watchdog.start()
        seen = []
        try:
            for line in child.stdout:
                seen.append(line.strip())
                if seen[-1] == "STOPPED":
                    os.kill(child.pid, signal.SIGKILL)
                    break
                if seen[-1] == "DONE":
                    break
        finally:
            watchdog.cancel()
            child.wait()
            child.stdout.close()
    assert seen[-1:] == ["STOPPED"], (
        f"the child never reached {stop} (stdout {seen}); stderr:\n"
        f"{err_path.read_text()[-3000:]}")
    assert child.returncode == -signal.SIGKILL


def _assert_survived(path: Path, before: dict, stop: dict) -> None:
    """The file opens, every object reads (file_digest reads them all), nothing that
    existed before the run changed."""
    try:
        after = file_digest(path)
    except Exception as exc:  # any failure to read is the finding
        pytest.fail(f"after a kill at {stop} the file no longer reads: {exc!r}")
    changed = [k for k, v in before.items() if after.get(k) != v]
    assert not changed, f"after a kill at {stop}, pre-existing objects changed: {changed[:5]}"


def _tool_groups(h5: h5py.Group, suffix: str) -> list[str]:
    return sorted(k for k in h5 if suffix in k)


def test_projection_killed_twice_then_resumed_exactly(beps_file, tmp_path):
    rng = random.Random(SEED)
    kwargs = {"progress": False, "max_mem_mb": 1, "mem_multiplier": 1.0}  # 3 chunks
    ref_file = tmp_path / "ref.h5"
    shutil.copy(beps_file, ref_file)
    with h5py.File(ref_file, "r+") as f:
        grp = LoopProjector(f, **kwargs).compute()
        ref = {k: grp[k][()] for k in ("Piezoresponse", "Resonance", "Rotation_Angle",
                                      "Rejected_Fits")}
    before = file_digest(beps_file)
    first = rng.choice([
        {"target": "pycroscopy_bevae.process.loop_projection:LoopProjector."
                   "_create_results_datasets", "when": "after", "call": 1},
        _flush(1), _flush(2), _flush(3),  # a chunk written, not flushed
        {"target": "status", "call": 1}, {"target": "status", "call": 2},  # flagged, unflushed
    ])
    second = rng.choice([_flush(1), {"target": "status", "call": 1}])  # in the resumed run
    for stop in (first, second):
        _kill_at(beps_file, "LoopProjector", "", kwargs, stop)
        _assert_survived(beps_file, before, stop)
    with h5py.File(beps_file, "r+") as f:
        grp = LoopProjector(f, **kwargs).compute()
        assert grp.name.endswith("Fit-Loop_Projection_000"), (first, second)
        assert _tool_groups(grp.parent, "Loop_Projection") == ["Fit-Loop_Projection_000"]
        for k, v in ref.items():
            np.testing.assert_array_equal(grp[k][()], v, err_msg=f"{k} after {first}, {second}")


class _CtrlCBeforeSharedResults(DictionaryLearningProcess):
    """Interrupted (cleanly) once Coefficients, Dictionary and Reconstruction are written."""

    def _write_shared_results(self, *args, **kwargs):
        raise KeyboardInterrupt


def test_dictionary_learning_killed_while_redoing_a_partial_group(beps_file, tmp_path):
    """A Ctrl+C leaves a partial group holding datasets; the next run deletes them and
    writes new ones, and is killed at a random point; the run after that is killed just
    after flagging its results complete. Without a flush between deleting the old datasets
    and reusing their space, and another before the flag, that last kill used to leave a
    group flagged complete over stale, overwritten data, which the next run returned."""
    rng = random.Random(SEED + 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataQualityWarning)
        with h5py.File(beps_file, "r+") as f:
            LoopProjector(f, progress=False).compute()
    kwargs = {"n_components": 3, "max_iter": 10}
    ref_file = tmp_path / "ref.h5"
    shutil.copy(beps_file, ref_file)
    with h5py.File(ref_file, "r+") as f:
        grp = DictionaryLearningProcess(f[PROJ], **kwargs).compute()
        ref = {k: grp[k][()] for k in DictionaryLearningProcess.result_names}
    before = file_digest(beps_file)
    with h5py.File(beps_file, "r+") as f:
        with pytest.raises(KeyboardInterrupt):
            _CtrlCBeforeSharedResults(f[PROJ], **kwargs).compute()
        partial = f[PROJ + "/Piezoresponse-Dictionary_Learning_000"]
        assert "Dictionary" in partial and not partial["completed_positions"][()].any()
    first = rng.choice(
        [{"target": "pycroscopy_bevae.process.dictionary:write_main", "when": "after",
          "call": k} for k in (1, 2, 3)] + [_flush(k) for k in (1, 2, 3)])
    for stop in (first, {"target": "status", "call": 1}):
        _kill_at(beps_file, "DictionaryLearningProcess", PROJ, kwargs, stop)
        _assert_survived(beps_file, before, stop)
    with h5py.File(beps_file, "r+") as f:
        grp = DictionaryLearningProcess(f[PROJ], **kwargs).compute()
        assert grp.name.endswith("Dictionary_Learning_000")
        assert _tool_groups(f[PROJ], "Dictionary_Learning") == [
            "Piezoresponse-Dictionary_Learning_000"]
        for k, v in ref.items():
            np.testing.assert_array_equal(grp[k][()], v, err_msg=f"{k} after {first}")


class _CtrlCWhileWritingResults(BetaVAEProcess):
    """Interrupted (cleanly) once Embedding, Log_Variance and Reconstruction are written."""

    def _write_shared_results(self, *args, **kwargs):
        raise KeyboardInterrupt


def _vae_reference(run: dict) -> dict:
    with h5py.File(run["results"], "r") as f:
        return {k: f[run["group"]][k][()] for k in VAE_RESULTS}


def test_beta_vae_killed_then_interrupted_while_writing_resumes_exactly(tiny_vae_run,
                                                                        tmp_path):
    """Kill during training (seeded point), resume from the checkpoint and stop with
    Ctrl+C half-way through writing the results, resume again: the final state is that of
    the uninterrupted run (the shared ``tiny_vae_run``), bit for bit on CPU."""
    rng = random.Random(SEED + 2)
    ref = _vae_reference(tiny_vae_run)
    path = tmp_path / "vae.h5"
    shutil.copy(tiny_vae_run["source"], path)
    before = file_digest(path)
    # flush 1 ends the group's creation; flushes 2-4 end the checkpoints of epochs 0-2
    stop = rng.choice(
        [{"target": "pycroscopy_bevae.process.vae:write_snapshot", "when": "after",
          "call": k} for k in (1, 2, 3)]  # a snapshot written, its checkpoint not
        + [_flush(k) for k in (2, 3, 4)]  # a checkpoint written, not flushed
        + [{"target": "pycroscopy_bevae.process.vae:BetaVAEProcess._after_epoch",
            "when": "after", "call": k} for k in (1, 2)])  # a checkpoint on disk
    _kill_at(path, "BetaVAEProcess", PROJ, TINY_VAE, stop)
    _assert_survived(path, before, stop)
    with h5py.File(path, "r+") as f:
        with pytest.raises(KeyboardInterrupt):
            _CtrlCWhileWritingResults(f[PROJ], **TINY_VAE).compute()
        grp = f[PROJ + "/Piezoresponse-Beta_VAE_000"]
        assert "Embedding" in grp and "Checkpoint" in grp  # half-written results
    _assert_survived(path, before, stop)
    with h5py.File(path, "r+") as f:
        proc = BetaVAEProcess(f[PROJ], **TINY_VAE)
        assert len(proc.partial_h5_groups) == 1
        grp = proc.compute()
        assert grp.name.endswith("Beta_VAE_000") and "Checkpoint" not in grp
        for k, v in ref.items():
            np.testing.assert_array_equal(grp[k][()], v, err_msg=f"{k} after a kill at {stop}")


def test_beta_vae_with_an_unreadable_checkpoint_restarts_cleanly(tiny_vae_run, tmp_path):
    """A partial group whose checkpoint lost members (a crash mid-write) is not trusted:
    a warning, training from epoch 0, and the result of an uninterrupted run. Results go
    to another file here (the source is opened read-only), as ``tiny_vae_run`` did."""
    ref = _vae_reference(tiny_vae_run)
    results = tmp_path / "results.h5"
    shutil.copy(tiny_vae_run["results"], results)
    with h5py.File(results, "r+") as f:
        grp = f[tiny_vae_run["group"]]
        grp["completed_positions"][...] = 0
        ckpt = grp.create_group("Checkpoint")  # epoch and counts, but no weights
        ckpt.attrs["epoch"], ckpt.attrs["n_snapshots"], ckpt.attrs["beta_start"] = 2, 2, 0.01
    with h5py.File(tiny_vae_run["source"], "r") as src, h5py.File(results, "r+") as out:
        proc = BetaVAEProcess(src[PROJ], h5_target_group=out, **TINY_VAE)
        assert len(proc.partial_h5_groups) == 1
        with pytest.warns(DataQualityWarning, match=r"checkpoint in results group "
                          r"'/Piezoresponse-Beta_VAE_000' in file '.*results\.h5' is "
                          r"unreadable .*Weights.*; training restarts from epoch 0"):
            grp = proc.compute()
        assert grp.name == tiny_vae_run["group"] and "Checkpoint" not in grp
        for k, v in ref.items():
            np.testing.assert_array_equal(grp[k][()], v, err_msg=k)
