"""beta-VAE (fast preset by default) on the toy benchmark and the real PZT map.

Run by hand:  python benchmarks/bench_vae.py [--toy] [--pzt] [--preset fast] [--epochs N]
              [--set key=value ...]

Prints per snapshot (schedule step): epoch, beta, training MSE, active channels, and
for the toy the gamut validation MSE and how well R, G, B are predicted from the active
channels (cross-validated k-NN R^2); then the selected model's numbers and the wall
time, next to dictionary learning with the same number of components on the same
scaled data (toy: per-step scaling; PZT: global scaling, both modalities).
"""

from __future__ import annotations

import argparse
import ast
import os
import platform
import time
from pathlib import Path

import numpy as np
from sklearn.model_selection import cross_val_score
from sklearn.neighbors import KNeighborsRegressor

from pycroscopy_bevae.datasets import toy_gamut_set, toy_training_set
from pycroscopy_bevae.models import BetaVAE, DictionaryLearner
from pycroscopy_bevae.preprocessing import LoopScaler, stack_channels

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def knn_r2(z: np.ndarray, y: np.ndarray) -> float:
    """Mean over targets of the 5-fold cross-validated k-NN R^2 of y from z."""
    if z.shape[1] == 0:
        return float("nan")
    scores = [cross_val_score(KNeighborsRegressor(10), z, y[:, j], cv=5, scoring="r2").mean()
              for j in range(y.shape[1])]
    return float(np.mean(scores))


def report(vae: BetaVAE, X: np.ndarray, Xv: np.ndarray | None, truth: np.ndarray | None):
    thr = vae.resolved_params()["kl_threshold"]
    for i, s in enumerate(vae.snapshots_):
        kl = s.channel_kl()
        line = (f"  snap {i:2d} epoch {s.epoch:5d} beta {s.beta:.4f} train-MSE "
                f"{s.losses['mse']:.4f} active {s.n_active(thr):2d} KL top "
                f"{np.round(np.sort(kl)[::-1][:5], 2)}")
        if Xv is not None:
            vae.model_.set_weight_arrays(s.weights)
            line += f" val-MSE {vae.score_mse(Xv):.4f}"
        if truth is not None:
            line += f" R2(active) {knn_r2(s.mu[:, kl >= thr], truth):.3f}"
        print(line, flush=True)


def run_toy(args, params):
    train = toy_training_set(10_000, seed=0)
    gamut = toy_gamut_set(16)
    sc = LoopScaler("step").fit(train.spectra)
    X, Xg = sc.transform(train.spectra), sc.transform(gamut.spectra)
    vae = BetaVAE(preset=args.preset, **params)
    t0 = time.perf_counter()
    vae.fit(X, progress=True)
    dt = time.perf_counter() - t0
    print(f"toy: 10,000 spectra x 25 steps, preset {args.preset} {params}; training "
          f"{dt:.0f} s ({dt / vae.resolved_params()['epochs']:.1f} s/epoch)")
    report(vae, X, Xg, train.rgb)
    for k in (3, None):
        try:
            idx = vae.select(n_active=k)
        except Exception as exc:  # noqa: BLE001 - report and go on
            print(f"  select(n_active={k}): {exc}")
            continue
        s = vae.snapshots_[idx]
        act = s.channel_kl() >= vae.resolved_params()["kl_threshold"]
        print(f"  selected (n_active={k}): snapshot {idx}, epoch {s.epoch}, beta {s.beta:.4f}, "
              f"{act.sum()} active, gamut MSE {vae.score_mse(Xg):.4f} (paper beta-VAE 0.104), "
              f"RGB R2 from active channels {knn_r2(s.mu[:, act], train.rgb):.3f}")
    if not args.skip_dl:
        dl = DictionaryLearner(n_components=3, alpha=0.57, random_state=0).fit(X)
        print(f"  dictionary learning n=3 alpha=0.57 on the same scaled data: gamut MSE "
              f"{dl.score_mse(Xg):.4f} ({dl.fit_time_:.0f} s)")


def run_pzt(args, params):
    folder = DATA / "pzt_beps"
    if not folder.exists():
        print("PZT data absent; skipped")
        return
    p = np.load(folder / "pizoresponse.npy")[:, :, 0]
    r = np.load(folder / "resonance.npy")
    X = stack_channels([p, r])  # already globally z-scored per modality
    vae = BetaVAE(preset=args.preset, **params)
    t0 = time.perf_counter()
    vae.fit(X, progress=True)
    dt = time.perf_counter() - t0
    print(f"PZT: 3600 x 96 x 2, preset {args.preset} {params}; training {dt:.0f} s")
    report(vae, X, None, None)
    idx = vae.select()
    s = vae.snapshots_[idx]
    n_act = s.n_active(vae.resolved_params()["kl_threshold"])
    recon = vae.reconstruct(X)
    print(f"  selected (auto): snapshot {idx}, epoch {s.epoch}, {n_act} active, MSE "
          f"{np.mean((recon - X) ** 2):.4f} (piezo {np.mean((recon - X)[..., 0] ** 2):.4f}, "
          f"resonance {np.mean((recon - X)[..., 1] ** 2):.4f})")
    if args.skip_dl:
        return
    flat = np.hstack([p, r])
    dl = DictionaryLearner(n_components=max(n_act, 1), alpha=1.0, random_state=0).fit(flat)
    print(f"  dictionary learning with {max(n_act, 1)} components, same data: MSE "
          f"{dl.score_mse(flat):.4f} (OMP codes, {dl.fit_time_:.0f} s)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--toy", action="store_true")
    ap.add_argument("--pzt", action="store_true")
    ap.add_argument("--preset", default="fast")
    ap.add_argument("--skip-dl", action="store_true",
                    help="skip the dictionary-learning comparison (minutes on the toy)")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                    help="override BetaVAE parameters, e.g. epochs=40 beta_step=0.005")
    args = ap.parse_args()
    params = {}
    for item in args.set:
        key, value = item.split("=", 1)
        try:
            params[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            params[key] = value
    print(f"machine: {platform.machine()} {os.cpu_count()} cores, python "
          f"{platform.python_version()}")
    if args.toy or not args.pzt:
        run_toy(args, params)
    if args.pzt:
        run_pzt(args, params)


if __name__ == "__main__":
    main()
