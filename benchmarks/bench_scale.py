"""Large maps in bounded memory: time and peak resident memory of every stage.

Run by hand:  python benchmarks/bench_scale.py [--sizes 60 256] [--stages gen project dl vae]
              [--vae-epochs 2] [--dl-iter 10] [--workdir DIR] [--keep]

For each map size (n x n positions, 96 steps x 2 fields x 2 cycles), each stage runs in a
fresh Python subprocess, so the peak resident set size (``ru_maxrss``) is that stage's own:

- ``gen``: ``write_synthetic_beps`` (chunked generation and writing);
- ``project``: ``LoopProjector().compute()`` (pyUSID chunks; chunk size printed);
- ``dl``: ``DictionaryLearningProcess(method='minibatch')`` on the projected loops
  (piezoresponse + resonance, off-field, last cycle: positions x 192);
- ``vae``: ``BetaVAEProcess(preset='fast')`` for a few epochs on the same loops
  (positions x 96 x 2): training throughput per epoch (spectra/s; the first epoch
  includes tracing) and inference (encode + decode of every position, batched);
- ``vae_stream``: the same with ``stream=True`` (training batches, snapshots and results
  read from the file), ``--stream-epochs`` epochs.

The ``import`` column is the peak after importing the stage's modules (the interpreter,
numpy/h5py/pyUSID/sidpy, and TensorFlow for the beta-VAE): what the data add is the
difference. Prints one table at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time

GROUP = "Measurement_000/Channel_000/Raw_Data-SHO_Fit_000/Fit-Loop_Projection_000"


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


# ---- stages (run in a child process) ------------------------------------------------------
def stage_gen(path: str, n: int, args) -> dict:
    from pycroscopy_bevae.datasets import write_synthetic_beps

    rss0 = _peak_mb()
    t0 = time.perf_counter()
    write_synthetic_beps(path, shape=(n, n), seed=0, overwrite=True)
    return {"time_s": time.perf_counter() - t0, "import_mb": rss0,
            "file_mb": os.path.getsize(path) / 2**20}


def stage_project(path: str, n: int, args) -> dict:
    import h5py

    from pycroscopy_bevae import LoopProjector

    rss0 = _peak_mb()
    with h5py.File(path, "r+") as f:
        t0 = time.perf_counter()
        proj = LoopProjector(f, progress=False)
        proj.compute()
        dt = time.perf_counter() - t0
        chunk = proj._max_pos_per_read
    return {"time_s": dt, "import_mb": rss0, "chunk_positions": int(chunk),
            "n_chunks": -(-n * n // chunk)}


def stage_dl(path: str, n: int, args) -> dict:
    import h5py

    from pycroscopy_bevae import DictionaryLearningProcess

    rss0 = _peak_mb()
    with h5py.File(path, "r+") as f:
        t0 = time.perf_counter()
        grp = DictionaryLearningProcess(f[GROUP], method="minibatch", max_iter=args.dl_iter,
                                        n_components=5).compute(override=True)
        dt = time.perf_counter() - t0
        a = dict(grp.attrs)
    return {"time_s": dt, "import_mb": rss0, "fit_s": float(a["fit_time_s"]),
            "inference_s": float(a["inference_time_s"]), "n_iter": int(a["n_iter"]),
            "mse": float(a["mse"])}


def stage_vae(path: str, n: int, args, stream: bool = False) -> dict:
    import h5py

    from pycroscopy_bevae import BetaVAEProcess
    from pycroscopy_bevae.models.vae_network import BetaVAEModel

    epoch_s: list[float] = []
    orig_fit = BetaVAEModel.fit

    def timed_fit(self, *a, **k):  # one call per epoch (BetaVAE.fit drives the epochs)
        t = time.perf_counter()
        out = orig_fit(self, *a, **k)
        epoch_s.append(time.perf_counter() - t)
        return out

    BetaVAEModel.fit = timed_fit
    import tensorflow  # noqa: F401  (count TensorFlow in the import baseline)

    rss0 = _peak_mb()
    with h5py.File(path, "r+") as f:
        t0 = time.perf_counter()
        grp = BetaVAEProcess(f[GROUP], preset="fast", progress=False, stream=stream,
                             epochs=args.stream_epochs if stream else args.vae_epochs
                             ).compute(override=True)
        dt = time.perf_counter() - t0
        a = dict(grp.attrs)
    n_spec = n * n
    return {"time_s": dt, "import_mb": rss0, "epoch_s": epoch_s,
            "train_spectra_per_s": [n_spec / s for s in epoch_s],
            "inference_s": float(a["inference_time_s"]),
            "inference_spectra_per_s": n_spec / float(a["inference_time_s"]),
            "mse": float(a["mse"])}


def stage_vae_stream(path: str, n: int, args) -> dict:
    return stage_vae(path, n, args, stream=True)


STAGES = {"gen": stage_gen, "project": stage_project, "dl": stage_dl, "vae": stage_vae,
          "vae_stream": stage_vae_stream}


def child(args) -> None:
    import logging

    logging.basicConfig(level=logging.WARNING)
    out = STAGES[args.stage](args.path, args.n, args)
    out["peak_mb"] = _peak_mb()
    print("RESULT " + json.dumps(out), flush=True)


# ---- driver --------------------------------------------------------------------------
def run_stage(stage: str, path: str, n: int, args) -> dict:
    cmd = [sys.executable, __file__, "--child", stage, "--path", path, "--n", str(n),
           "--vae-epochs", str(args.vae_epochs), "--stream-epochs", str(args.stream_epochs),
           "--dl-iter", str(args.dl_iter)]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        print(proc.stdout[-3000:], proc.stderr[-3000:], file=sys.stderr)
        raise SystemExit(f"stage {stage} ({n} x {n}) failed with code {proc.returncode}")
    res = json.loads(lines[-1][7:])
    res["wall_s"] = wall
    return res


def fmt_row(n: int, stage: str, r: dict) -> str:
    extra = ""
    if stage == "gen":
        extra = f"file {r['file_mb']:.0f} MB"
    elif stage == "project":
        extra = f"chunks of {r['chunk_positions']} positions ({r['n_chunks']})"
    elif stage == "dl":
        extra = (f"fit {r['fit_s']:.1f} s ({r['n_iter']} epochs), inference "
                 f"{r['inference_s']:.1f} s, MSE {r['mse']:.4f}")
    elif stage.startswith("vae"):
        ep = ", ".join(f"{s:.1f}" for s in r["epoch_s"])
        tput = ", ".join(f"{v:,.0f}" for v in r["train_spectra_per_s"])
        extra = (f"epochs [{ep}] s = [{tput}] spectra/s; inference {r['inference_s']:.2f} s "
                 f"= {r['inference_spectra_per_s']:,.0f} spectra/s")
    return (f"{n:>3d} x {n:<3d} {stage:<10s} {r['time_s']:8.1f} {r['peak_mb']:9.0f} "
            f"{r['import_mb']:8.0f}   {extra}")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[60, 256])
    ap.add_argument("--stages", nargs="+", default=["gen", "project", "dl", "vae"],
                    choices=list(STAGES))
    ap.add_argument("--vae-epochs", type=int, default=2)
    ap.add_argument("--stream-epochs", type=int, default=1)
    ap.add_argument("--dl-iter", type=int, default=10)
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--keep", action="store_true", help="keep the generated files")
    ap.add_argument("--child", choices=list(STAGES), dest="stage", help=argparse.SUPPRESS)
    ap.add_argument("--path", help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.stage:
        child(args)
        return
    work = args.workdir or tempfile.mkdtemp(prefix="bench_scale_")
    os.makedirs(work, exist_ok=True)
    print(f"machine: {platform.machine()} {os.cpu_count()} cores, python "
          f"{platform.python_version()}, load average {os.getloadavg()[0]:.1f}", flush=True)
    rows = []
    try:
        for n in args.sizes:
            path = os.path.join(work, f"synthetic_{n}x{n}.h5")
            stages = list(args.stages)
            if "gen" not in stages and not os.path.exists(path):  # the later stages need it
                stages += ["gen", "project"]
            for stage in [s for s in STAGES if s in stages]:
                r = run_stage(stage, path, n, args)
                rows.append(fmt_row(n, stage, r))
                print(rows[-1], flush=True)
    finally:
        if not args.keep and args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    print(f"\nload average after: {os.getloadavg()[0]:.1f}")
    print(f"{'map':<9s} {'stage':<10s} {'time s':>8s} {'peak MB':>9s} {'import':>8s}   details")
    for row in rows:
        print(row)


if __name__ == "__main__":
    main()
