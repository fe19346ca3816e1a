"""The beta-VAE against the linear baselines on equal terms (the beta-VAE issue, item 1).

Run by hand::

    python benchmarks/bench_equal_terms.py [--data toy pzt factors] [--ks 3 5 6]
        [--seeds 0 1 2] [--vae] [--preset fast] [--set k=v ...]
        [--splits 3 | --paired] [--only-splits] [--held-out 0.2] [--save DIR]

For each data set, on the same scaled matrix the beta-VAE trains on:

* PCA-k and dictionary learning with k atoms (OMP codes with k non-zeros, and the lasso
  codes of the fit), for every k and seed: reconstruction MSE overall and per modality;
* with ``--vae``, the beta-VAE (preset + ``--set`` overrides) trained once per seed; for
  every k the latest snapshot with exactly k active channels (KL >= ``kl_threshold``)
  gives its deterministic reconstruction MSE and its embedding (the active channels);
* where the truth is known: recovery of each factor (cross-validated k-NN R^2 from the
  embedding), disentanglement (best single channel's R^2 and its gap to the second), and
  mechanism classification (cross-validated random forest accuracy);
* with ``--vae``, the seed agreement of the beta-VAE's channels at each k (channels of
  the seeds matched one to one, mean matched |correlation|:
  :func:`~pycroscopy_bevae.analysis.seed_agreement`);
* with ``--splits N`` (> 0), the same models again on N seeded position splits
  (``--held-out`` of the positions held out, the same splits for every model): fitted on
  the training positions only, then the held-out positions encoded with the fitted model
  (PCA projection, the learned dictionary, the trained encoder) and decoded; train and
  held-out MSE, mean and standard deviation over splits (and seeds), and the beta-VAE's
  seed agreement on every position per split. ``--paired``: one split per seed (seed i
  trained on split i), the seed agreement over the splits; ``--only-splits`` skips the
  beta-VAE fits on every position. ``+ICA`` rows: the same models' channels in
  independent axes (the beta-VAE's ``rotation='ica'``, and the same FastICA on PCA's
  scores), scored for the factors and the seed agreement. ``--save DIR`` keeps every
  row of the splits (numbers, the beta-VAE's embedding) in ``DIR`` and adds the rows saved
  there by earlier invocations (other seeds of a ``--first-split`` continuation) to the
  held-out table and the seed agreement; a ``DIR`` of other settings is refused.

Data: ``toy`` (10,000 RGB spectra x 25 steps, per-step scaling; factors R, G, B),
``pzt`` (the real 3600 x 96 x 2 map, global or ``--scaling balanced``, from ``../shared/data``; no
ground truth), ``factors`` (a 40 x 40 synthetic map with ``variant='factors'``,
projected, remanent loops of the last cycle, global scaling; six known factors and
one- vs two-step mechanism). Prints one table per data set: the median over seeds and
the worst seed, and for data with known factors the supervised ceiling (how much of each
factor a regressor that is shown the true values recovers from the whole map).
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from pycroscopy_bevae.analysis import (
    factor_scores,
    linear_baselines,
    mechanism_accuracy,
    modality_mse,
    seed_agreement,
)
from pycroscopy_bevae.models.rotation import fit_rotation

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def toy_data(n: int = 10_000):
    from pycroscopy_bevae.datasets import toy_training_set
    from pycroscopy_bevae.preprocessing import LoopScaler

    tr = toy_training_set(n, seed=0)
    X = LoopScaler("step").fit_transform(tr.spectra)[..., None]
    return X, {"R": tr.rgb[:, 0], "G": tr.rgb[:, 1], "B": tr.rgb[:, 2]}, None


def pzt_data(scaling: str = "global"):
    folder = DATA / "pzt_beps"
    if not folder.exists():
        return None
    from pycroscopy_bevae.preprocessing import MultiScaler, stack_channels

    p = np.load(folder / "pizoresponse.npy")[:, :, 0]
    r = np.load(folder / "resonance.npy")  # both stored globally standardised already
    return stack_channels(MultiScaler(scaling).fit_transform([p, r])), None, None


def factor_data(size: int = 40, seed: int = 0, scaling: str = "global"):
    import h5py

    from pycroscopy_bevae import LoopProjector, write_synthetic_beps
    from pycroscopy_bevae.io.loop_sources import LoopSources
    from pycroscopy_bevae.preprocessing import MultiScaler, stack_channels

    path = os.path.join(tempfile.mkdtemp(), "factors.h5")
    write_synthetic_beps(path, shape=(size, size), seed=seed, variant="factors")
    with h5py.File(path, "r+") as f:
        grp = LoopProjector(f, progress=False).compute()
        mods = LoopSources.from_input(grp, cycle=None, field="off").read()
        truth = {k: v[()] for k, v in f["Ground_Truth/Loop_Parameters"].items()}
        labels = f["Ground_Truth/Mechanism"][()].ravel()
    return stack_channels(MultiScaler(scaling).fit(mods).transform(mods)), truth, labels


def vae_rows(X, ks, seeds, preset, overrides, auto=False, X_held_out=None, X_all=None):
    """One beta-VAE per seed and k: with a relax phase (``relax_epochs`` > 0) trained to
    k channels (``target_active=k``); without, one run per seed and the latest snapshot
    with exactly k active channels. ``auto``: also one run per seed with the automatic
    channel count (reported as k = the count it chose). ``X_held_out``: positions not
    trained on, encoded and decoded by the trained model (``mse_held_out``); ``X_all``:
    the embedding of these positions (every position of a split) instead of ``X``'s."""
    from pycroscopy_bevae.models import BetaVAE

    relax = BetaVAE(preset=preset, **overrides).resolved_params()["relax_epochs"] > 0
    runs = [(seed, k) for seed in seeds for k in ks] if relax else [(s, None) for s in seeds]
    if auto:
        runs += [(seed, "auto") for seed in seeds]
    rows = []
    for seed, k in runs:
        extra = {"target_active": k} if isinstance(k, int) else {}
        vae = BetaVAE(preset=preset, random_state=seed, **{**overrides, **extra})
        t0 = time.perf_counter()
        vae.fit(X, progress=True)
        fit_time = time.perf_counter() - t0
        thr = vae.resolved_params()["kl_threshold"]
        counts = [s.n_active(thr) for s in vae.snapshots_]
        print(f"  beta-VAE seed {seed}, k {k}: {fit_time:.0f} s, active channels per snapshot "
              f"{counts}", flush=True)
        wanted = ks if k is None else [k]
        if k == "auto":
            vae.select()
            wanted = [counts[vae.selected_]]
            print(f"    automatic count: {wanted[0]}", flush=True)
            count_curve(vae, X)
        for kk in wanted:
            if kk not in counts:
                rows.append({"method": "beta-VAE", "k": kk, "seed": seed, "mse": np.nan,
                             "mse_modality": [np.nan] * X.shape[2], "fit_time_s": fit_time,
                             "embedding": None, "mse_held_out": np.nan,
                             "mse_held_out_modality": [np.nan] * X.shape[2]})
                continue
            if k != "auto":
                vae.select(n_active=kk)
            active = vae.snapshots_[vae.selected_].active(thr)
            mu = vae.transform(X)
            recon = vae.decode(mu).reshape(X.shape)
            row = {"method": "beta-VAE" if k != "auto" else "VAE-auto", "k": kk,
                   "seed": seed, "mse": float(np.mean((recon - X) ** 2)),
                   "mse_modality": modality_mse(X, recon), "fit_time_s": fit_time,
                   "embedding": mu[:, active]}
            if k == "auto":  # the automatic count's curve, kept with saved rows
                row["count_curve"] = {"counts": list(vae.count_candidates_),
                                      "held_out_mse": list(vae.count_held_out_mse_),
                                      "per_round": list(vae.count_held_out_curves_)}
            if X_held_out is not None:
                held = vae.decode(vae.transform(X_held_out)).reshape(X_held_out.shape)
                row["mse_held_out"] = float(np.mean((held - X_held_out) ** 2))
                row["mse_held_out_modality"] = modality_mse(X_held_out, held)
            if X_all is not None:
                mu_all = vae.encode(X_all)[0]
                row["embedding"] = vae.rotate(mu_all)[:, active]  # = transform(X_all)
            rows.append(row)
            # the same model in the other axes: with rotation='ica' (the default) the
            # embedding above is already in independent axes, so the extra row is the
            # network's own latent means; with rotation='none' it is the ICA of them,
            # fitted on the training positions (the same reconstruction either way)
            if getattr(vae, "rotation_", None) is not None:
                if X_all is not None:
                    rows.append({**row, "method": row["method"] + " own axes",
                                 "embedding": mu_all[:, active]})
            else:
                rot = fit_rotation(vae.encode(X)[0][:, active], np.arange(active.size), seed)
                if rot is not None:
                    rows.append({**row, "method": row["method"] + "+ICA",
                                 "embedding": rot.forward(row["embedding"])})
    return rows


def count_curve(vae, X) -> None:
    """The held-out curve behind an automatic count (``count_tolerance``): the counts the
    search scored, the held-out MSE after relax at each, and the count other tolerances
    would give over those (other tolerances may need counts the search skipped)."""
    from pycroscopy_bevae.models.selection import count_by_held_out

    counts = getattr(vae, "count_candidates_", None)
    if not counts:
        return
    scores = vae.count_held_out_mse_
    variance = float(np.mean(np.var(X[vae.validation_index_], axis=0)))
    print("    held-out MSE after relax per candidate count: " + ", ".join(
        f"{k}: {m:.5f}" for k, m in zip(counts, scores, strict=True))
        + f" (held-out variance {variance:.4f})", flush=True)
    print("    count per tolerance (over the scored counts only): " + ", ".join(
        f"{t:g}: {count_by_held_out(counts, scores, variance, t)}"
        for t in (0.002, 0.005, 0.01, 0.02, 0.05)), flush=True)
    curves = [np.asarray(c, float) for c in getattr(vae, "count_held_out_curves_", [])]
    rounds = min((c.size for c in curves), default=0)
    if rounds:  # what shorter relax phases would have scored (the first rounds of these)
        tol = float(vae.resolved_params()["count_tolerance"])
        for r in sorted({x for x in (2, 5, 10) if x < rounds} | {rounds}):
            at = [float(c[r - 1]) for c in curves]
            print(f"    after {r} relax rounds: " + ", ".join(
                f"{k}: {m:.5f}" for k, m in zip(counts, at, strict=True))
                + f"; count at t = {tol:g}: {count_by_held_out(counts, at, variance, tol)}",
                flush=True)


def pca_ica_rows(rows):
    """PCA's embeddings in independent axes (the same FastICA rotation the beta-VAE's
    ``rotation='ica'`` applies): whether the rotation, not the network, does the work."""
    out = []
    for r in rows:
        if r["method"] == "pca" and r.get("embedding") is not None:
            z = r["embedding"]
            rot = fit_rotation(z, np.arange(z.shape[1]), r["seed"])
            if rot is not None:
                out.append({**r, "method": "pca+ICA", "embedding": rot.forward(z)})
    return out


def splits(n: int, n_splits: int, held_out: float, seed: int = 0):
    """``n_splits`` seeded (train, held-out) splits of ``n`` positions, the held-out sets
    drawn independently (each ``held_out`` of the positions)."""
    from sklearn.model_selection import ShuffleSplit

    return list(ShuffleSplit(n_splits, test_size=held_out, random_state=seed).split(
        np.arange(n)))


def agreement_lines(rows, across_splits: bool = False):
    """Seed agreement of the beta-VAE's embeddings at every k (the automatic count: over
    the seeds whatever their counts) and split, where given; ``across_splits``: the
    embeddings (of every position) of all splits together."""
    groups = {}
    for r in rows:
        if _is_vae(r) and r.get("embedding") is not None:
            k = "auto" if r["method"].startswith("VAE-auto") else r["k"]
            split = None if across_splits else r.get("split")
            groups.setdefault((r["method"], k, split), []).append(r["embedding"])
    for (method, k, split), embs in sorted(groups.items(),
                                           key=lambda t: (t[0][0], str(t[0][1]), t[0][2] or 0)):
        if len(embs) > 1:
            where = "" if split is None else f", split {split}"
            print(f"  {method} k {k}{where}: {seed_agreement(embs).summary()}", flush=True)


def held_out_rows(X, ks, seeds, args, overrides):
    """Every model on the same seeded position splits, fitted on the training positions;
    rows carry ``split``, ``mse`` (train) and ``mse_held_out``."""
    rows = []
    first = args.first_split if args.paired else 0
    n_splits = first + len(seeds) if args.paired else args.splits
    for i, (tr, ho) in enumerate(splits(len(X), n_splits, args.held_out)):
        if i < first:
            continue
        print(f"  split {i}: {len(tr)} train / {len(ho)} held-out positions", flush=True)
        on = [seeds[i - first]] if args.paired else seeds
        got = [] if args.no_linear else linear_baselines(X[tr], ks, seeds=on,
                                                         X_held_out=X[ho])
        if args.vae or args.auto:
            got += vae_rows(X[tr], ks if args.vae else [], on, args.preset, overrides,
                            auto=args.auto, X_held_out=X[ho], X_all=X)
        for r in got:
            r["split"] = i
            if not _is_vae(r):
                r["embedding"] = None  # of the training positions only: not comparable
        rows += got
    return rows


def _is_vae(row) -> bool:
    return row["method"].startswith(("beta-VAE", "VAE-auto"))


def claim_save_dir(directory, settings) -> None:
    """Before any fit: keep ``settings`` (preset, overrides, held-out share, scaling, toy
    size) in ``directory/settings.json``, and refuse a directory whose rows were made with
    other settings, so that rows of different runs are never pooled into one table."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    kept = directory / "settings.json"
    settings = json.loads(json.dumps(settings))  # as it reads back (tuples -> lists)
    if kept.exists() and json.loads(kept.read_text()) != settings:
        raise SystemExit(f"--save {directory}: its rows were made with other settings "
                         f"{kept.read_text()}, not {settings}; use another directory")
    kept.write_text(json.dumps(settings))


def save_and_load(rows, directory, name):
    """Keep the rows of the splits in ``directory`` (one ``.npz`` per model and split:
    numbers, and the beta-VAE's embedding) and return ``rows`` plus the rows saved there
    earlier for the same data (other seeds and splits of a continued ``--paired`` run;
    :func:`claim_save_dir` has checked that they share this run's settings)."""
    directory = Path(directory)

    def stem(r) -> str:
        return f"{name}_{r['method']}_k{r['k']}_seed{r['seed']}_split{r['split']}"

    have = {stem(r) for r in rows}
    for r in rows:
        meta = {k: v for k, v in r.items() if k != "embedding"}
        emb = r.get("embedding")
        np.savez(directory / f"{stem(r)}.npz", embedding=np.empty(0) if emb is None else emb,
                 meta=json.dumps(meta, default=lambda o: np.asarray(o).tolist()))
    loaded = []
    for path in sorted(directory.glob(f"{name}_*.npz")):
        if path.stem not in have:
            with np.load(path) as z:
                emb = z["embedding"] if z["embedding"].size else None
                loaded.append({**json.loads(str(z["meta"])), "embedding": emb})
    if loaded:
        print(f"  with {len(loaded)} rows saved earlier in {directory}: "
              + ", ".join(sorted({f"seed {r['seed']} split {r['split']}" for r in loaded})),
              flush=True)
    return rows + loaded


def held_out_table(name, rows):
    """Train and held-out MSE per method and k: mean +- standard deviation over the
    splits (and seeds), and the mean gap held-out - train."""
    print(f"\n{name}: train and held-out MSE on the same position splits, mean +- sd "
          "over splits (and seeds)")
    print(f"  {'method':10s} {'k':>2s}  {'train':>17s}  {'held-out':>17s}  {'gap':>8s}  "
          "runs  held-out per modality")
    keys = sorted({(r["method"], r["k"]) for r in rows if not r["method"].endswith("+ICA")},
                  key=lambda t: (t[1], t[0]))  # a rotation leaves the reconstruction as is
    for method, k in keys:
        rs = [r for r in rows if r["method"] == method and r["k"] == k
              and np.isfinite(r["mse"])]
        if not rs:
            continue
        tr = np.array([r["mse"] for r in rs])
        ho = np.array([r["mse_held_out"] for r in rs])
        mods = np.mean([r["mse_held_out_modality"] for r in rs], axis=0)
        print(f"  {method:10s} {k:2d}  {tr.mean():8.4f} +- {tr.std():6.4f}  "
              f"{ho.mean():8.4f} +- {ho.std():6.4f}  {np.mean(ho - tr):+8.4f}  {len(rs):4d}  "
              + " ".join(f"{m:.4f}" for m in mods))
        print("      held-out per run (split, seed): " + ", ".join(
            f"({r['split']}, {r['seed']}) {r['mse_held_out']:.5f}" for r in rs))


def score(rows, truth, labels):
    for r in rows:
        z = r["embedding"]
        if z is None:
            continue
        if truth is not None:
            s = factor_scores(z, truth)
            r["factor_r2"] = statistics.median(v["r2"] for v in s.values())
            r["best_r2"] = statistics.median(v["best_r2"] for v in s.values())
            r["gap"] = statistics.median(v["gap"] for v in s.values())
            r["per_factor"] = {k: round(v["r2"], 3) for k, v in s.items()}
        if labels is not None:
            r["accuracy"] = mechanism_accuracy(z, labels)


def supervised_ceiling(X, truth, seed: int = 0) -> dict[str, float]:
    """How much of each factor the data hold at all: cross-validated R^2 of regressors
    that see the whole scaled map and the true values (ridge on every step; extremely
    randomised trees on 30 principal components), the better of the two per factor.
    No unsupervised embedding can be expected to beat it."""
    from sklearn.decomposition import PCA
    from sklearn.ensemble import ExtraTreesRegressor
    from sklearn.linear_model import RidgeCV
    from sklearn.metrics import r2_score
    from sklearn.model_selection import KFold, cross_val_predict

    flat = X.reshape(len(X), -1)
    z = PCA(min(30, flat.shape[1]), random_state=seed).fit_transform(flat)
    cv = KFold(5, shuffle=True, random_state=seed)
    out = {}
    for name, y in truth.items():
        y = np.asarray(y, float).ravel()
        ok = np.isfinite(y)
        scores = [r2_score(y[ok], cross_val_predict(model, feats[ok], y[ok], cv=cv))
                  for model, feats in ((RidgeCV(alphas=np.logspace(-3, 3, 13)), flat),
                                       (ExtraTreesRegressor(200, random_state=seed), z))]
        out[name] = round(float(max(scores)), 3)
    return out


def table(name, rows):
    cols = ("mse", "factor_r2", "best_r2", "gap", "accuracy", "fit_time_s")
    print(f"\n{name}: median over seeds [worst seed]")
    print(f"  {'method':10s} {'k':>2s}  " + "  ".join(f"{c:>17s}" for c in cols)
          + "  per-modality MSE")
    keys = sorted({(r["method"], r["k"]) for r in rows}, key=lambda t: (t[1], t[0]))
    for method, k in keys:
        rs = [r for r in rows if r["method"] == method and r["k"] == k]
        cells = []
        for c in cols:
            vals = [r[c] for r in rs if c in r and np.isfinite(r[c])]
            if not vals:
                cells.append(f"{'-':>17s}")
                continue
            worst = max(vals) if c in ("mse", "fit_time_s") else min(vals)
            cells.append(f"{statistics.median(vals):8.4f} [{worst:6.4f}]")
        mods = np.nanmedian(np.array([r["mse_modality"] for r in rs], float), axis=0)
        print(f"  {method:10s} {k:2d}  " + "  ".join(cells) + "  "
              + " ".join(f"{m:.4f}" for m in np.atleast_1d(mods)))
        for r in rs:
            if "per_factor" in r:
                print(f"      seed {r['seed']}: factor R^2 {r['per_factor']}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", nargs="+", default=["toy", "pzt", "factors"])
    ap.add_argument("--ks", nargs="+", type=int, default=[3, 5, 6])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--vae", action="store_true", help="also train the beta-VAE per seed")
    ap.add_argument("--auto", action="store_true",
                    help="also train one beta-VAE per seed with the automatic channel count")
    ap.add_argument("--no-linear", action="store_true", help="skip the linear baselines")
    ap.add_argument("--preset", default="fast")
    ap.add_argument("--set", nargs="*", default=[], metavar="K=V",
                    help="beta-VAE parameter overrides, e.g. epochs=60 batch_size=64")
    ap.add_argument("--toy-n", type=int, default=10_000)
    ap.add_argument("--splits", type=int, default=0,
                    help="also fit every model on N seeded position splits and report train "
                         "and held-out MSE (0: off)")
    ap.add_argument("--paired", action="store_true",
                    help="one split per seed: seed i is trained on split i (3 seeds = 3 splits "
                         "at the cost of 3 fits); implies the held-out comparison")
    ap.add_argument("--first-split", type=int, default=0,
                    help="with --paired: the first seed is trained on this split, the next "
                         "on the one after (to continue a paired run)")
    ap.add_argument("--only-splits", action="store_true",
                    help="no beta-VAE fit on every position (only those of the splits; on "
                         "data with known factors the linear baselines still fit every "
                         "position, for their factor scores)")
    ap.add_argument("--held-out", type=float, default=0.2,
                    help="fraction of the positions held out in each split")
    ap.add_argument("--scaling", default="global", choices=("global", "balanced"),
                    help="scaling of the two-modality maps (pzt, factors); the toy keeps "
                         "per-step scaling")
    ap.add_argument("--save", metavar="DIR",
                    help="keep the rows of the splits in DIR and add those saved "
                         "there earlier (a continued --paired run) to the table and the "
                         "seed agreement")
    args = ap.parse_args()
    overrides = {}
    for kv in args.set:
        k, v = kv.split("=", 1)
        try:
            overrides[k] = ast.literal_eval(v)
        except (ValueError, SyntaxError):
            overrides[k] = v
    if args.save:
        claim_save_dir(args.save, {"preset": args.preset, "set": overrides,
                                   "held_out": args.held_out, "scaling": args.scaling,
                                   "toy_n": args.toy_n})
    print(f"machine: {platform.machine()} {os.cpu_count()} cores, python "
          f"{platform.python_version()}; ks {args.ks}, seeds {args.seeds}")
    print(f"scaling of pzt / factors: {args.scaling}")
    loaders = {"toy": lambda: toy_data(args.toy_n), "pzt": lambda: pzt_data(args.scaling),
               "factors": lambda: factor_data(scaling=args.scaling)}
    for name in args.data:
        got = loaders[name]()
        if got is None:
            print(f"\n{name}: data not found, skipped")
            continue
        X, truth, labels = got
        print(f"\n{name}: X {X.shape}", flush=True)
        if args.splits or args.paired:
            t0 = time.perf_counter()
            held = held_out_rows(X, args.ks, args.seeds, args, overrides)
            print(f"  held-out splits: {time.perf_counter() - t0:.0f} s", flush=True)
            if args.save:
                held = save_and_load(held, args.save, name)
            held_out_table(name, held)
            if truth is not None:
                score(held, truth, labels)
                table(f"{name} (models of the splits, embedding of every position)", held)
            agreement_lines(held, across_splits=args.paired)
        if args.only_splits and truth is None:
            continue  # nothing more to learn from fits on every position
        t0 = time.perf_counter()
        rows = [] if args.no_linear else linear_baselines(X, args.ks, seeds=args.seeds)
        rows += pca_ica_rows(rows)
        print(f"  linear baselines: {time.perf_counter() - t0:.0f} s", flush=True)
        if (args.vae or args.auto) and not args.only_splits:
            rows += vae_rows(X, args.ks if args.vae else [], args.seeds, args.preset,
                             overrides, auto=args.auto)
        score(rows, truth, labels)
        table(name, rows)
        agreement_lines(rows)
        if truth is not None:
            ceiling = supervised_ceiling(X, truth)
            print(f"  supervised ceiling (factor R^2 from the whole map and the true values): "
                  f"median {statistics.median(ceiling.values()):.3f}, {ceiling}", flush=True)


if __name__ == "__main__":
    main()
