"""One prepared GPU check: LSTM kernel, epochs per second of both presets, mixed precision.

Run on a GPU machine (a few minutes)::

    python benchmarks/gpu_check.py [--epochs-fast 10] [--epochs-paper 5]

For each preset on the toy set (10,000 x 25) and, when ``../shared/data`` is present,
the PZT map (3600 x 96 x 2): which LSTM kernel the training pass uses
(``BetaVAE.lstm_implementation``: 'cudnn' expected on a GPU), seconds per epoch after
the first (tracing) epoch, spectra per second, the time the preset's whole schedule
would take at that rate, and, for the paper preset, the same with
``precision='mixed_float16'`` and the training MSE reached by both (does mixed
precision help without hurting the loss?). With several GPUs it also times
``strategy='mirrored'``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from pycroscopy_bevae.datasets import toy_training_set
from pycroscopy_bevae.models import BetaVAE
from pycroscopy_bevae.preprocessing import LoopScaler, stack_channels

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "pzt_beps"


def datasets() -> dict:
    toy = toy_training_set(10_000, seed=0).spectra
    out = {"toy 10000x25": LoopScaler("step").fit_transform(toy)}
    if DATA.exists():
        p = np.load(DATA / "pizoresponse.npy")[:, :, 0]
        r = np.load(DATA / "resonance.npy")
        out["PZT 3600x96x2"] = stack_channels([p, r])
    return out


def timed(X, preset: str, epochs: int, **kw) -> dict:
    stamps = []
    vae = BetaVAE(preset=preset, epochs=epochs, prime_epochs=epochs, **kw)
    vae.fit(X, progress=False, on_epoch_end=lambda e, est: stamps.append(time.perf_counter()))
    per_epoch = float(np.median(np.diff(stamps))) if len(stamps) > 1 else float("nan")
    return {"s_epoch": per_epoch, "mse": vae.history_["mse"][-1],
            "kernel": vae.lstm_implementation(), "replicas": vae.n_replicas_}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs-fast", type=int, default=10)
    ap.add_argument("--epochs-paper", type=int, default=5)
    args = ap.parse_args()
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    print(f"tensorflow {tf.__version__}, GPUs: {[g.name for g in gpus]}", flush=True)
    for name, X in datasets().items():
        for preset, n_ep in (("fast", args.epochs_fast), ("paper", args.epochs_paper)):
            full = BetaVAE(preset=preset).resolved_params()["epochs"]
            runs = {"float32": {}, "mixed_float16": {"precision": "mixed_float16"}}
            if preset == "fast":
                runs.pop("mixed_float16")
            if len(gpus) > 1:
                runs["mirrored"] = {"strategy": "mirrored"}
            for label, kw in runs.items():
                r = timed(X, preset, n_ep, **kw)
                print(f"{name:14s} {preset:5s} {label:13s} kernel {r['kernel']:7s} "
                      f"replicas {r['replicas']}  {r['s_epoch']:.2f} s/epoch "
                      f"({1 / r['s_epoch']:.2f} epochs/s, {len(X) / r['s_epoch']:,.0f} "
                      f"spectra/s); whole schedule ({full} epochs) "
                      f"{full * r['s_epoch'] / 60:.1f} min; train MSE after {n_ep} epochs "
                      f"{r['mse']:.4f}", flush=True)


if __name__ == "__main__":
    main()
