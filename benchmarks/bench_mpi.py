"""Loop projection over MPI ranks vs one process, on the same synthetic map.

Run by hand (needs ``pip install ".[mpi]"``)::

    python benchmarks/bench_mpi.py [--shape 256 256] [--ranks 2] [--reps 3]

Writes one synthetic map, then for each repetition copies it and times
``LoopProjector(...).compute()`` (the file-to-file projection, on rank 0) once in a
plain process and once under ``mpiexec -n RANKS`` through ``run_mpi``; prints the
medians, the ratio, and whether the results are identical.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

PROJ = "Measurement_000/Channel_000/Raw_Data-SHO_Fit_000/Fit-Loop_Projection_000"


def child(path: str) -> None:
    """Project ``path`` (run_mpi: rank 0 times it) and print the time as JSON."""
    import warnings

    from pycroscopy_bevae import LoopProjector
    from pycroscopy_bevae.parallel import active_pool, run_mpi

    def main() -> dict:
        warnings.simplefilter("ignore")
        # pyUSID initialises MPI when mpi4py is installed (~1 s once per process, also
        # serially): done before the clock starts, as it is for the MPI run
        from pyUSID.processing.comp_utils import get_MPI

        get_MPI()
        with h5py.File(path, "r+") as f:
            t0 = time.perf_counter()
            LoopProjector(f, progress=False).compute()
            dt = time.perf_counter() - t0
        pool = active_pool()
        return {"seconds": dt, "ranks": 1 if pool is None else pool.size}

    out = run_mpi(main)
    if out is not None:
        print(json.dumps(out), flush=True)


def run(path: Path, ranks: int) -> dict:
    cmd = [sys.executable, __file__, "--child", str(path)]
    if ranks > 1:
        mpiexec = shutil.which("mpiexec", path=f"{Path(sys.executable).parent}{os.pathsep}"
                                               f"{os.environ.get('PATH', '')}")
        version = subprocess.run([mpiexec, "--version"], capture_output=True, text=True).stdout
        extra = ["--oversubscribe"] if "open" in version.lower() else []
        cmd = [mpiexec, "-n", str(ranks), *extra, *cmd]
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", type=int, nargs=2, default=[256, 256])
    ap.add_argument("--ranks", type=int, default=2)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child)
        return
    from pycroscopy_bevae.datasets import write_synthetic_beps

    with tempfile.TemporaryDirectory() as d:
        src = Path(write_synthetic_beps(Path(d) / "map.h5", shape=tuple(args.shape), seed=0))
        times: dict[int, list[float]] = {1: [], args.ranks: []}
        results = {}
        for _ in range(args.reps):
            for ranks in times:
                path = Path(d) / f"run_{ranks}.h5"
                shutil.copy(src, path)
                out = run(path, ranks)
                assert out["ranks"] == ranks, out
                times[ranks].append(out["seconds"])
                with h5py.File(path, "r") as f:
                    results[ranks] = f[PROJ]["Piezoresponse"][()]
        t1, tn = (float(np.median(times[r])) for r in times)
        n = args.shape[0] * args.shape[1]
        print(f"map {args.shape[0]} x {args.shape[1]} ({n:,} positions, {os.cpu_count()} cores)")
        print(f"  LoopProjector.compute(): 1 process {t1:.2f} s, {args.ranks} MPI ranks "
              f"{tn:.2f} s (medians of {args.reps}); speed-up {t1 / tn:.2f}x; identical "
              f"results: {np.array_equal(results[1], results[args.ranks], equal_nan=True)}")


if __name__ == "__main__":
    main()
