"""MPI (issue 6): projection and beta-VAE inference spread over real MPI ranks with
``mpiexec`` give exactly the serial results; rank 0 alone touches the file.

Skipped where mpi4py or an MPI launcher is not installed (``pip install
pycroscopy-bevae[mpi]`` brings both on Linux).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest

from pycroscopy_bevae.datasets import write_synthetic_beps
from pycroscopy_bevae.exceptions import DataQualityWarning
from pycroscopy_bevae.parallel import MPIPool, mpi_world, run_mpi
from tests.helpers import FIT, PROJ_GROUP

pytest.importorskip("mpi4py", reason="mpi4py is not installed (pip install "
                                      "pycroscopy-bevae[mpi])")
MPIEXEC = shutil.which("mpiexec", path=os.pathsep.join(
    [str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
pytestmark = [
    pytest.mark.mpi,
    pytest.mark.skipif(MPIEXEC is None, reason="no mpiexec launcher found"),
    pytest.mark.filterwarnings("ignore::pycroscopy_bevae.exceptions.DataQualityWarning"),
]


def _launcher(ranks: int) -> list[str]:
    """mpiexec -n ranks, allowing more ranks than cores (Open MPI needs a flag for it)."""
    version = subprocess.run([MPIEXEC, "--version"], capture_output=True, text=True).stdout
    extra = ["--oversubscribe"] if "open" in version.lower() else []
    return [MPIEXEC, "-n", str(ranks), *extra]


PROJ = PROJ_GROUP
VAE = PROJ + "/Piezoresponse-Beta_VAE_000"
TRAIN = ["--epochs", "3", "--param", "units=4", "--param", "embedding_dim=4", "--param",
         "latent_dim=3", "--param", "prime_epochs=1", "--param", "step_epochs=1", "--param",
         "beta_start=0.01", "--param", "batch_size=16", "--param", "round_updates=0", "--param",
         "relax_epochs=0", "--param", "beta_growth=1.0"]


def _cli(args: list[str], ranks: int | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", OMPI_ALLOW_RUN_AS_ROOT="1",
               OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    cmd = [sys.executable, "-m", "pycroscopy_bevae", *args]
    if ranks:
        cmd = [*_launcher(ranks), *cmd]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def _datasets(path: Path, group: str) -> dict:
    with h5py.File(path, "r") as f:
        return {k: v[()] for k, v in f[group].items() if isinstance(v, h5py.Dataset)}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    d = tmp_path_factory.mktemp("mpi")
    files = {}
    for name, ranks in (("serial", None), ("two", 2), ("three", 3)):
        # 7 x 5 = 35 positions: 3 ranks get unequal shares
        path = Path(write_synthetic_beps(d / f"{name}.h5", shape=(7, 5), seed=1))
        with h5py.File(path, "r") as f:
            raw = f[FIT][()]
        _cli(["project", str(path)], ranks)
        files[name] = {"path": path, "raw": raw}
    for name, ranks in (("serial", None), ("two", 2)):
        _cli(["train", str(files[name]["path"]), *TRAIN], ranks)
    return files


@pytest.mark.parametrize("name", ["two", "three"])
def test_projection_over_ranks_equals_serial(runs, name):
    ref = _datasets(runs["serial"]["path"], PROJ)
    got = _datasets(runs[name]["path"], PROJ)
    assert set(got) == set(ref) and "Piezoresponse" in got
    for k in ref:
        np.testing.assert_array_equal(got[k], ref[k], err_msg=k)
    with h5py.File(runs[name]["path"], "r") as f:
        # the SHO fit is untouched and exactly one results group was written
        assert f[FIT][()].tobytes() == runs[name]["raw"].tobytes()
        groups = [k for k in f["Measurement_000/Channel_000/Raw_Data-SHO_Fit_000"]
                  if k.startswith("Fit-Loop_Projection")]
        assert groups == ["Fit-Loop_Projection_000"]
        assert np.all(f[PROJ]["completed_positions"][()] == 1)
        assert f[PROJ].attrs["mpi_ranks"] == {"two": 2, "three": 3}[name]
    with h5py.File(runs["serial"]["path"], "r") as f:
        assert f[PROJ].attrs["mpi_ranks"] == 1


def test_vae_inference_over_ranks_equals_serial(runs):
    ref = _datasets(runs["serial"]["path"], VAE)
    got = _datasets(runs["two"]["path"], VAE)
    for k in ("Embedding", "Log_Variance", "Reconstruction", "Reconstruction_Error"):
        # training runs on rank 0 exactly as serially; inference is split over the ranks
        np.testing.assert_allclose(got[k], ref[k], rtol=1e-6, atol=1e-7, err_msg=k)
    assert got["Embedding"].shape == (35, 3)
    with h5py.File(runs["two"]["path"], "r") as f2, h5py.File(runs["serial"]["path"]) as f1:
        assert (f2[VAE].attrs["inference_ranks"], f1[VAE].attrs["inference_ranks"]) == (2, 1)


def test_without_a_launcher_everything_is_serial():
    assert mpi_world() is None
    assert run_mpi(lambda a, b=0: a * 10 + b, 4, b=2) == 42


def test_pool_needs_rank_zero():
    class Comm:  # a stand-in communicator that only answers rank/size
        def Get_rank(self):
            return 1

        def Get_size(self):
            return 2

    with pytest.raises(RuntimeError, match="rank 0"):
        MPIPool(Comm()).map(np.sum, np.arange(4))


def test_worker_error_reaches_rank_zero(tmp_path):
    script = tmp_path / "fail.py"
    script.write_text(
        "import numpy as np\n"
        "from pycroscopy_bevae.parallel import active_pool, run_mpi\n"
        "def boom(part):\n"
        "    if len(part) and part[0] >= 5:\n"
        "        raise ValueError('bad share')\n"
        "    return part * 2\n"
        "def main():\n"
        "    try:\n"
        "        active_pool().map(boom, np.arange(10))\n"
        "    except RuntimeError as exc:\n"
        "        print('CAUGHT', exc)\n"
        "    try:\n"
        "        active_pool().map(boom, np.arange(10)[::-1].copy())\n"
        "    except ValueError as exc:\n"
        "        print('ROOT', exc)\n"
        "    print('OK', np.concatenate(active_pool().map(np.negative, np.arange(4))).tolist())\n"
        "run_mpi(main)\n")
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataQualityWarning)
        proc = subprocess.run([*_launcher(2), sys.executable, str(script)],
                              capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "CAUGHT MPI rank 1 failed in boom: ValueError: bad share" in proc.stdout
    # a failure on rank 0's own share: its own exception, as in a serial run, and
    # nobody is left waiting
    assert "ROOT bad share" in proc.stdout
    assert "OK [0, -1, -2, -3]" in proc.stdout  # the workers still serve afterwards
