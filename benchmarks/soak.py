"""Soak test (not run in CI): many consecutive process runs on one HDF5 file.

A mix of ``LoopProjector`` runs (every combination of ``per``, ``sign``, ``r2_threshold``
and ``fill_failed``; some repeated, which must return the existing group, some with
``override=True``) and small ``DictionaryLearningProcess`` runs, each opening and closing
the file as a notebook cell would. After every run the file must read completely, every
dataset and attribute that existed before the run must be byte-identical, and the group
returned must be complete; the resident memory (RSS) of the process is recorded to see
whether it grows from run to run.

Usage::

    python benchmarks/soak.py [--runs 50] [--shape 32 32] [--keep FILE]
"""

from __future__ import annotations

import argparse
import gc
import itertools
import os
import platform
import sys
import tempfile
import time
import warnings
from pathlib import Path

import h5py
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pycroscopy_bevae import DictionaryLearningProcess, LoopProjector  # noqa: E402
from pycroscopy_bevae.datasets import write_synthetic_beps  # noqa: E402
from pycroscopy_bevae.exceptions import DataQualityWarning  # noqa: E402
from tests.conftest import file_digest  # noqa: E402

PROJ_0 = "Measurement_000/Channel_000/Raw_Data-SHO_Fit_000/Fit-Loop_Projection_000"


def rss_mb() -> float:
    """Resident set size of this process in MB (Linux ``/proc``; ``resource`` elsewhere)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # peak, not current


def plan(n_runs: int) -> list[tuple[str, dict, bool]]:
    """(process, parameters, override) for each run: 2 projections for every DL run."""
    lp = [dict(per=per, sign=sign, r2_threshold=r2, fill_failed=fill)
          for per, sign, r2, fill in itertools.product(("position", "loop"),
                                                       ("positive", "negative"),
                                                       (0.3, 0.5, 0.7), (True, False))]
    dl = [dict(n_components=k, alpha=a, max_iter=5, random_state=s)
          for s in (0, 1, 2) for k in (2, 3, 4) for a in (0.5, 1.0)]
    runs: list[tuple[str, dict, bool]] = []
    i_lp = i_dl = 0
    for i in range(n_runs):
        if i % 3 == 2:
            runs.append(("dictionary", dl[i_dl % len(dl)], False))
            i_dl += 1
        else:
            # every 5th projection repeats the first parameters (a duplicate, or an override)
            if i_lp % 5 == 4:
                runs.append(("projection", lp[0], i_lp % 10 == 9))
            else:
                runs.append(("projection", lp[i_lp % len(lp)], False))
            i_lp += 1
    return runs


def one_run(path: Path, kind: str, parms: dict, override: bool) -> tuple[str, int]:
    """Run one process on ``path``; return the results group name and warnings seen."""
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always", DataQualityWarning)
        with h5py.File(path, "r+") as f:
            if kind == "projection":
                grp = LoopProjector(f, progress=False, **parms).compute(override=override)
            else:
                grp = DictionaryLearningProcess(f[PROJ_0], **parms).compute(override=override)
            name = grp.name
            if not grp["completed_positions"][()].all():
                raise AssertionError(f"{name} returned incomplete")
    return name, sum(issubclass(w.category, DataQualityWarning) for w in seen)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--shape", type=int, nargs=2, default=(32, 32))
    ap.add_argument("--keep", type=Path, help="write the file here (default: a temp dir)")
    args = ap.parse_args(argv)

    workdir = Path(tempfile.mkdtemp(prefix="bevae_soak_"))
    path = args.keep or workdir / "soak.h5"
    if path.exists():
        path.unlink()
    write_synthetic_beps(path, shape=tuple(args.shape), seed=0)
    print(f"machine: {platform.machine()} {os.cpu_count()} cores, python "
          f"{platform.python_version()}, numpy {np.__version__}, h5py {h5py.__version__} "
          f"(HDF5 {h5py.version.hdf5_version})")
    print(f"file: {path}, {args.shape[0]} x {args.shape[1]} positions, {args.runs} runs")
    digest = file_digest(path)
    gc.collect()
    print(f"RSS before the first run (imports and the file written): {rss_mb():.1f} MB")
    rss, times, groups, problems = [], [], set(), []
    t_all = time.perf_counter()
    for i, (kind, parms, override) in enumerate(plan(args.runs)):
        t0 = time.perf_counter()
        name, n_warn = one_run(path, kind, parms, override)
        dt = time.perf_counter() - t0
        after = file_digest(path)  # reads every object: the file is intact
        changed = [k for k, v in digest.items() if after.get(k) != v]
        if changed:
            problems.append((i, changed[:5]))
        new = name not in groups
        groups.add(name)
        digest = after
        gc.collect()
        rss.append(rss_mb())
        times.append(dt)
        label = ", ".join(f"{k}={v}" for k, v in parms.items())
        print(f"run {i + 1:3d} {kind:10s} {'new ' if new else 'dup '}"
              f"{name.rsplit('/', 1)[-1]:40s} {dt:6.2f} s  RSS {rss[-1]:7.1f} MB  "
              f"changed {len(changed)}  warnings {n_warn}  ({label}"
              f"{', override' if override else ''})", flush=True)
    total = time.perf_counter() - t_all
    r = np.asarray(rss)
    half = len(r) // 2
    x = np.arange(len(r))
    slope_all = np.polyfit(x, r, 1)[0] if len(r) > 1 else 0.0
    slope_2nd = np.polyfit(x[half:], r[half:], 1)[0] if len(r) - half > 1 else 0.0
    size = path.stat().st_size / 2**20
    print(f"\n{args.runs} runs in {total:.0f} s ({np.median(times):.2f} s median per run); "
          f"{len(groups)} results groups; file {size:.0f} MB")
    print(f"RSS: first {r[0]:.1f} MB, median {np.median(r):.1f} MB, last {r[-1]:.1f} MB, "
          f"max {r.max():.1f} MB")
    print(f"RSS slope: {slope_all:+.3f} MB/run over all runs, {slope_2nd:+.3f} MB/run over the "
          f"second half (runs {half + 1}-{len(r)})")
    verdict = problems or "every run left every pre-existing object byte-identical"
    print(f"integrity: {verdict}")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
