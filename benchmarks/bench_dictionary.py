"""Dictionary learning: our DictionaryLearner vs plain scikit-learn, toy and real PZT numbers.

Run by hand:  python benchmarks/bench_dictionary.py [--reps 3] [--grid] [--quick]

Prints, for the toy benchmark (10,000 random colours, per-step scaling, n = 3,
alpha = 0.57) the validation MSE on the image set and the full-gamut set with
OMP codes and with the fit's own (lasso) codes, next to the paper's 0.184 /
0.186; our overhead against plain scikit-learn on the same matrix (median of
--reps fits, ratio); the MiniBatch variant; optionally (--grid) an alpha grid
search; and for the real PZT map (../shared/data/pzt_beps, 3600 x 192 stacked,
n = 5, alpha = 1) the MSE under global and per-step scaling with both codings.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np
from sklearn.decomposition import DictionaryLearning

from pycroscopy_bevae.datasets import toy_gamut_set, toy_image_set, toy_training_set
from pycroscopy_bevae.models import DictionaryLearner, alpha_grid_search
from pycroscopy_bevae.preprocessing import LoopScaler

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def mse(a, b):
    return float(np.mean((a - b) ** 2))


def toy(args):
    n = 2000 if args.quick else 10_000
    train = toy_training_set(n, seed=0)
    gamut = toy_gamut_set(16)
    images = {"grace_hopper (default)": toy_image_set(stride=8)}
    nala = DATA / "toy" / "nala.jpg"
    if nala.exists():
        images["nala.jpg"] = toy_image_set(nala, stride=20)
    print(f"toy: {n} training spectra, gamut {gamut.spectra.shape[0]}, "
          + ", ".join(f"{k} {v.spectra.shape[0]}" for k, v in images.items()))
    params = dict(n_components=3, alpha=0.57, scaling="step", random_state=0)
    ours_t, theirs_t = [], []
    for _ in range(args.reps):
        dl = DictionaryLearner(**params).fit(train.spectra)
        ours_t.append(dl.fit_time_)
        scaler = LoopScaler("step").fit(train.spectra)
        t0 = time.perf_counter()
        sk = DictionaryLearning(n_components=3, alpha=0.57, random_state=0)
        sk_codes = sk.fit_transform(scaler.transform(train.spectra))
        theirs_t.append(time.perf_counter() - t0)
    same = np.allclose(sk.components_, dl.components_) and np.allclose(sk_codes, dl.fit_codes_)
    print(f"  fit time: ours median {np.median(ours_t):.1f} s, plain sklearn "
          f"{np.median(theirs_t):.1f} s, ratio {np.median(ours_t) / np.median(theirs_t):.3f} "
          f"({args.reps} reps, {dl.n_iter_} iterations); identical result: {same}")
    for algo in ("omp", "fit"):
        dl.set_params(transform_algorithm=algo)
        row = [f"gamut {dl.score_mse(gamut.spectra):.3f}"]
        row += [f"{k} {dl.score_mse(v.spectra):.3f}" for k, v in images.items()]
        row.append(f"train {dl.score_mse(train.spectra):.3f}")
        label = "OMP codes" if algo == "omp" else "fit (lasso) codes"
        print(f"  MSE, {label}: " + ", ".join(row) + "   (paper: image 0.184, gamut 0.186)")
    mb = DictionaryLearner(method="minibatch", max_iter=30, **params).fit(train.spectra)
    print(f"  MiniBatch (30 epochs, batch 256): {mb.fit_time_:.1f} s, gamut MSE "
          f"{mb.score_mse(gamut.spectra):.3f} (OMP codes)")
    if args.grid:
        alphas = [0.1, 0.3, 0.57, 1.0, 2.0]
        res = alpha_grid_search(train.spectra, alphas, X_val=gamut.spectra, n_components=3,
                                scaling="step", random_state=0)
        for a, loss, obj in zip(res.alphas, res.losses, res.objectives, strict=True):
            print(f"  alpha {a:<5} gamut MSE {loss:.4f}  objective {obj:.4f}")
        print(f"  grid search picks alpha = {res.best_alpha}")


def pzt(args):
    folder = DATA / "pzt_beps"
    if not folder.exists():
        print("real PZT data not found; skipped")
        return
    p = np.load(folder / "pizoresponse.npy")[:, :, 0]
    r = np.load(folder / "resonance.npy")
    X = np.concatenate([p, r], axis=1)
    print(f"real PZT: {X.shape[0]} x {X.shape[1]} (piezoresponse + resonance stacked), n = 5, "
          "alpha = 1")
    for scaling in ("global", "step"):
        dl = DictionaryLearner(n_components=5, alpha=1.0, scaling=scaling, segments=(96, 96),
                               random_state=0).fit(X)
        omp = dl.score_mse(X)
        dl.set_params(transform_algorithm="fit")
        fit = dl.score_mse(X)
        print(f"  {scaling:6s} scaling: MSE {omp:.4f} (OMP codes), {fit:.4f} (fit lasso codes); "
              f"fit {dl.fit_time_:.1f} s, {dl.n_iter_} iterations   (paper: 0.36)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--grid", action="store_true")
    ap.add_argument("--quick", action="store_true", help="2,000 toy spectra")
    args = ap.parse_args()
    print(f"machine: {platform.machine()} {os.cpu_count()} cores, python "
          f"{platform.python_version()}")
    toy(args)
    pzt(args)


if __name__ == "__main__":
    main()
