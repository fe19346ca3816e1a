"""Loop projection: LoopProjector (end to end, HDF5 in and out) vs BGlib's projectLoop.

Run by hand:  python benchmarks/bench_projection.py [--size 60] [--reps 5] [--bglib-loops N]

Both run in this process on the same synthetic 60 x 60 x 96 x 2 fields x 2 cycles
SHO fits (no failed fits, since projectLoop cannot take NaN). Prints the median
time of ours over several repetitions, BGlib's time over all loops (or a subset,
scaled up and marked as such), their ratio, and the agreement of the loops
(median Pearson correlation, per loop) with each other and with the ground truth.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time

import h5py
import numpy as np

from pycroscopy_bevae import LoopProjector
from pycroscopy_bevae.analysis import rowwise_correlation
from pycroscopy_bevae.datasets import write_synthetic_beps
from pycroscopy_bevae.io import describe_loops
from pycroscopy_bevae.process.loop_projection import _loop_columns


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=60)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--bglib-loops", type=int, default=0,
                    help="project only this many loops with BGlib (0 = all) and scale up")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp()
    src = os.path.join(tmp, "bench.h5")
    write_synthetic_beps(src, shape=(args.size, args.size), seed=0, failed_fraction=0.0)

    times = []
    for rep in range(args.reps):
        path = os.path.join(tmp, f"rep{rep}.h5")
        shutil.copy(src, path)
        t0 = time.perf_counter()
        with h5py.File(path, "r+") as f:
            grp = LoopProjector(f, per="loop", progress=False).compute()
            ours = grp["Piezoresponse"][()]
        times.append(time.perf_counter() - t0)
    t_ours = float(np.median(times))

    with h5py.File(src, "r") as f:
        fit = f["Measurement_000/Channel_000/Raw_Data-SHO_Fit_000/Fit"]
        block = fit[()]
        cols = _loop_columns(describe_loops(fit))
        dc = describe_loops(fit).dc_values
        truth = f["Ground_Truth/Piezoresponse"][()]
    amp = block["Amplitude [V]"].astype(float)
    phase = block["Phase [rad]"].astype(float)
    loops = [(i, c) for i in range(amp.shape[0]) for c in cols]
    n_total = len(loops)
    print(f"machine: {platform.machine()} {os.cpu_count()} cores, "
          f"python {platform.python_version()}")
    print(f"data: {args.size} x {args.size} positions x {cols.shape[1]} steps x {cols.shape[0]} "
          f"loops = {n_total} loops")
    print(f"ours  LoopProjector(per='loop').compute(), file to file: median {t_ours:.3f} s "
          f"over {args.reps} reps (min {min(times):.3f}, max {max(times):.3f})")
    try:
        from BGlib.be.analysis.utils.be_loop import projectLoop
    except ImportError as exc:
        print(f"BGlib not importable ({exc}); see tests/test_bglib_peer.py for how CI installs it")
        return
    subset = loops if args.bglib_loops <= 0 else loops[:: max(1, n_total // args.bglib_loops)]
    theirs = np.full_like(ours, np.nan)
    t0 = time.perf_counter()
    for i, c in subset:
        theirs[i, c] = projectLoop(dc[c], amp[i, c], phase[i, c])["Projected Loop"]
    t_bg = time.perf_counter() - t0
    scaled = t_bg * n_total / len(subset)
    note = "" if len(subset) == n_total else f" (measured on {len(subset)} loops, scaled)"
    print(f"BGlib projectLoop, one loop at a time: {scaled:.1f} s{note}, "
          f"{1e3 * t_bg / len(subset):.2f} ms per loop")
    print(f"speed-up ours / BGlib: {scaled / t_ours:.0f}x")
    o = np.stack([ours[i, c] for i, c in subset])
    b = np.stack([theirs[i, c] for i, c in subset])
    t = np.stack([truth[i, c] for i, c in subset])
    c_ob, c_ot, c_bt = rowwise_correlation(o, b), rowwise_correlation(o, t), \
        rowwise_correlation(b, t)
    print(f"median correlation per loop: ours vs BGlib {np.median(c_ob):.5f} "
          f"(5th percentile {np.percentile(c_ob, 5):.4f})")
    print(f"vs ground truth: ours median {np.median(c_ot):.5f} (min {c_ot.min():.4f}); "
          f"BGlib median {np.median(c_bt):.5f} (min {c_bt.min():.4f})")
    scale_b = np.std(b, axis=1) / np.std(t, axis=1)
    scale_o = np.std(o, axis=1) / np.std(t, axis=1)
    print(f"loop size / true size: ours median {np.median(scale_o):.3f} "
          f"[{np.percentile(scale_o, 5):.3f}, {np.percentile(scale_o, 95):.3f}]; BGlib median "
          f"{np.median(scale_b):.3f} [{np.percentile(scale_b, 5):.3f}, "
          f"{np.percentile(scale_b, 95):.3f}] (5th, 95th percentile)")
    shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
