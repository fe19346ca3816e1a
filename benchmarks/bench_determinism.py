"""What bit-reproducible training costs: TensorFlow settings vs speed and repeatability.

Run by hand::

    python benchmarks/bench_determinism.py [--n 4000] [--epochs 4] [--reps 2] [--load]

Each configuration trains the fast preset on the toy set (``--n`` spectra x 25 steps,
per-step scaling, ``--epochs`` epochs) in a fresh Python process (TensorFlow's thread
pools can only be set before its runtime starts), ``--reps`` times. It prints the median
seconds per epoch after the first (tracing) epoch, the ratio against TensorFlow's
defaults, and whether every repetition ended with bit-identical weights. ``--load``
keeps both cores busy with a spinning process while it runs (as a loaded CI machine).

Configurations: ``default`` (TensorFlow's defaults: oneDNN on, thread pools sized by
TensorFlow), ``package`` (what ``pycroscopy_bevae`` sets by default: op determinism,
one intra-op thread, see :func:`pycroscopy_bevae.configure_tensorflow`), ``det-threads``
(op determinism with TensorFlow's thread pools), and ``no-onednn`` (Eigen kernels).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing as mp
import os
import platform
import statistics
import subprocess
import sys
import time

CONFIGS = {
    "default": dict(env={"PYCROSCOPY_BEVAE_DETERMINISTIC": "0"}),
    "package": dict(env={}),
    "det-threads": dict(env={"PYCROSCOPY_BEVAE_INTRA_OP_THREADS": "0"}),
    "no-onednn": dict(env={"PYCROSCOPY_BEVAE_DETERMINISTIC": "0", "TF_ENABLE_ONEDNN_OPTS": "0"}),
}


def child(n: int, epochs: int) -> None:
    import numpy as np

    from pycroscopy_bevae.datasets import toy_training_set
    from pycroscopy_bevae.models import BetaVAE
    from pycroscopy_bevae.models.runtime import runtime_info
    from pycroscopy_bevae.preprocessing import LoopScaler

    train = toy_training_set(n, seed=0)
    X = LoopScaler("step").fit_transform(train.spectra)
    stamps = []
    vae = BetaVAE(preset="fast", epochs=epochs, prime_epochs=epochs, random_state=0)
    vae.fit(X, progress=False, on_epoch_end=lambda e, est: stamps.append(time.perf_counter()))
    w = np.concatenate([v.ravel() for v in vae.model_.get_weight_arrays().values()])
    per_epoch = statistics.median(np.diff(stamps)) if len(stamps) > 2 else float("nan")
    print(json.dumps({"s_per_epoch": per_epoch, "hash": hashlib.sha1(w.tobytes()).hexdigest(),
                      "runtime": runtime_info()}))


def _spin(seconds: float) -> None:
    end = time.time() + seconds
    while time.time() < end:
        pass


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=4000)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--load", action="store_true", help="keep every core busy meanwhile")
    ap.add_argument("--configs", nargs="+", default=list(CONFIGS))
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.n, args.epochs)
        return
    print(f"machine: {platform.machine()} {os.cpu_count()} cores, python "
          f"{platform.python_version()}; toy {args.n} x 25, fast preset, {args.epochs} epochs, "
          f"{args.reps} reps per configuration{', both cores loaded' if args.load else ''}")
    spinners = []
    if args.load:
        spinners = [mp.Process(target=_spin, args=(10**6,), daemon=True)
                    for _ in range(os.cpu_count() or 2)]
        for p in spinners:
            p.start()
    results = {}
    try:
        for name in args.configs:
            env = {k: v for k, v in os.environ.items()
                   if not k.startswith(("PYCROSCOPY_BEVAE_", "TF_ENABLE_ONEDNN"))}
            env.update(CONFIGS[name]["env"])
            runs = []
            for _ in range(args.reps):
                out = subprocess.run([sys.executable, __file__, "--child", "--n", str(args.n),
                                      "--epochs", str(args.epochs)], env=env, check=True,
                                     capture_output=True, text=True).stdout
                runs.append(json.loads(out.strip().splitlines()[-1]))
            results[name] = runs
    finally:
        for p in spinners:
            p.terminate()
    ref = statistics.median(r["s_per_epoch"] for r in results.get("default", results[
        args.configs[0]]))
    for name, runs in results.items():
        med = statistics.median(r["s_per_epoch"] for r in runs)
        rt = runs[0]["runtime"]
        same = len({r["hash"] for r in runs}) == 1
        print(f"{name:12s} {med:6.2f} s/epoch  ratio {med / ref:5.2f}  identical weights over "
              f"{len(runs)} runs: {same}  (op determinism {rt['op_determinism']}, intra-op "
              f"{rt['intra_op_threads']}, inter-op {rt['inter_op_threads']}, oneDNN "
              f"{rt['onednn']}), weights {runs[0]['hash'][:10]}")


if __name__ == "__main__":
    main()
