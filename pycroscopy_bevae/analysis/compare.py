"""Models compared on equal terms: the same scaled data, the same number of channels.

For an embedding with ``k`` channels (PCA scores, dictionary codes, the active latent
means of a beta-VAE) these functions measure what a microscopist needs from it:

* :func:`linear_baselines` -- PCA-k and dictionary learning with k atoms (OMP and lasso
  codes) fitted to the same matrix, with their reconstruction error overall and per
  modality, for several k and seeds;
* :func:`factor_scores` -- how well each known generating factor is recovered:
  cross-validated k-NN R^2 from the whole embedding, and a disentanglement score (the
  best *single* channel's R^2 and its gap to the second best channel);
* :func:`mechanism_accuracy` -- how well known mechanism classes are told apart by a
  cross-validated random-forest classifier (insensitive to the channels' scales, so a
  weak, nearly collapsed channel does not get the weight of a strong one, as it does
  when channels are z-scored for k-means).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

import numpy as np

from ..exceptions import ParameterError
from .validation import ground_truth_r2

__all__ = ["linear_baselines", "factor_scores", "mechanism_accuracy", "modality_mse"]


def modality_mse(X: np.ndarray, recon: np.ndarray, segments: Sequence[int] | None = None
                 ) -> list[float]:
    """Mean squared error of each modality of stacked features.

    Parameters
    ----------
    X, recon : numpy.ndarray
        (n, features) or (n, steps, modalities); the same shape.
    segments : sequence of int, optional
        Features per modality for 2-D input (default: one modality).

    Returns
    -------
    list of float

    Examples
    --------
    >>> modality_mse(np.zeros((2, 4)), np.ones((2, 4)) * [1, 1, 2, 2], [2, 2])
    [1.0, 4.0]
    """
    X, recon = np.asarray(X, float), np.asarray(recon, float)
    if X.shape != recon.shape:
        raise ParameterError(f"X {X.shape} and recon {recon.shape} must have the same shape")
    if X.ndim == 3:
        return [float(np.mean((X[..., c] - recon[..., c]) ** 2)) for c in range(X.shape[2])]
    segments = list(segments or [X.shape[1]])
    if sum(segments) != X.shape[1]:
        raise ParameterError(f"segments {segments} do not add up to the {X.shape[1]} features")
    edges = np.cumsum([0, *segments])
    return [float(np.mean((X[:, a:b] - recon[:, a:b]) ** 2))
            for a, b in zip(edges[:-1], edges[1:], strict=True)]


def linear_baselines(X: np.ndarray, ks: Sequence[int], seeds: Sequence[int] = (0,),
                     segments: Sequence[int] | None = None, alpha: float = 1.0,
                     methods: Sequence[str] = ("pca", "dl_omp", "dl_lasso"),
                     max_iter: int = 200, X_held_out: np.ndarray | None = None) -> list[dict]:
    """PCA and dictionary learning with ``k`` components on the same (scaled) matrix.

    Parameters
    ----------
    X : numpy.ndarray
        (n, features) or (n, steps, modalities) scaled data, as the beta-VAE sees it.
    ks : sequence of int
        Numbers of components.
    seeds : sequence of int
        Seeds of the dictionary learning (PCA is deterministic: one row per k).
    segments : sequence of int, optional
        Features per modality of 2-D input (for the per-modality errors).
    alpha : float
        Sparsity of the dictionary fit (the paper's BEPS value, 1).
    methods : sequence of {'pca', 'dl_omp', 'dl_lasso'}
        ``dl_omp``: dictionary learning, codes by orthogonal matching pursuit with ``k``
        non-zero coefficients; ``dl_lasso``: the same dictionary, the codes of its
        lasso fit.
    max_iter : int
        Iterations of the dictionary fit.
    X_held_out : numpy.ndarray, optional
        Positions the models were not fitted on, shaped as ``X``: encoded with the fitted
        model (PCA projection; the learned dictionary's OMP or lasso codes) and
        reconstructed, giving ``mse_held_out`` and ``mse_held_out_modality``.

    Returns
    -------
    list of dict
        One row per (method, k, seed): ``method``, ``k``, ``seed``, ``mse``,
        ``mse_modality`` (list), ``fit_time_s``, ``embedding`` (n, k); with
        ``X_held_out`` also ``mse_held_out`` and ``mse_held_out_modality``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(60, 3)) @ rng.normal(size=(3, 20))
    >>> rows = linear_baselines(X, ks=[3], methods=["pca"])
    >>> rows[0]["method"], rows[0]["k"], rows[0]["mse"] < 1e-20
    ('pca', 3, True)
    >>> rows = linear_baselines(X[:40], ks=[3], methods=["pca"], X_held_out=X[40:])
    >>> rows[0]["mse_held_out"] < 1e-20
    True
    """
    from sklearn.decomposition import PCA, DictionaryLearning, SparseCoder

    X = np.asarray(X, float)
    F, segments = _features(X, segments, "X")
    held = None
    if X_held_out is not None:
        X_held_out = np.asarray(X_held_out, float)
        if X_held_out.shape[1:] != X.shape[1:]:
            raise ParameterError(f"X_held_out has shape {X_held_out.shape}, expected "
                                 f"(n, {', '.join(map(str, X.shape[1:]))}) as X")
        held = _features(X_held_out, segments, "X_held_out")[0]
    unknown = set(methods) - {"pca", "dl_omp", "dl_lasso"}
    if unknown:
        raise ParameterError(f"unknown methods {sorted(unknown)}; choose from 'pca', "
                             "'dl_omp', 'dl_lasso'")
    rows = []
    for k in ks:
        if not 1 <= int(k) <= min(F.shape):
            raise ParameterError(f"k must be between 1 and {min(F.shape)}, got {k}")
        if "pca" in methods:
            t0 = time.perf_counter()
            pca = PCA(n_components=int(k)).fit(F)
            z = pca.transform(F)
            rows.append(_row("pca", k, None, F, pca.inverse_transform(z), z, segments,
                             time.perf_counter() - t0,
                             held, lambda H, m=pca: m.inverse_transform(m.transform(H))))
        if not {"dl_omp", "dl_lasso"} & set(methods):
            continue
        for seed in seeds:
            t0 = time.perf_counter()
            dl = DictionaryLearning(n_components=int(k), alpha=alpha, max_iter=max_iter,
                                    fit_algorithm="lars", transform_algorithm="lasso_lars",
                                    random_state=int(seed))
            codes = dl.fit_transform(F)
            fit_time = time.perf_counter() - t0
            if "dl_lasso" in methods:
                rows.append(_row("dl_lasso", k, seed, F, codes @ dl.components_, codes,
                                 segments, fit_time, held,
                                 lambda H, m=dl: m.transform(H) @ m.components_))
            if "dl_omp" in methods:
                coder = SparseCoder(dl.components_, transform_algorithm="omp",
                                    transform_n_nonzero_coefs=int(k))
                omp = coder.transform(F)
                rows.append(_row("dl_omp", k, seed, F, omp @ dl.components_, omp, segments,
                                 fit_time, held,
                                 lambda H, m=coder: m.transform(H) @ m.dictionary))
    return rows


def _features(X: np.ndarray, segments, name: str) -> tuple[np.ndarray, list[int] | None]:
    """(n, features) and the features per modality; 3-D input stacked modality-major, as
    dictionary learning stacks the modalities."""
    if X.ndim == 3:
        return np.moveaxis(X, 2, 1).reshape(len(X), -1), [X.shape[1]] * X.shape[2]
    if X.ndim == 2:
        return X, segments
    raise ParameterError(f"{name} must be (n, features) or (n, steps, modalities), got "
                         f"{X.shape}")


def _row(method, k, seed, F, recon, z, segments, fit_time, held=None, rebuild=None) -> dict:
    row = {"method": method, "k": int(k), "seed": seed,
           "mse": float(np.mean((F - recon) ** 2)),
           "mse_modality": modality_mse(F, recon, segments), "fit_time_s": float(fit_time),
           "embedding": np.asarray(z, float)}
    if held is not None:
        rec = rebuild(held)
        row["mse_held_out"] = float(np.mean((held - rec) ** 2))
        row["mse_held_out_modality"] = modality_mse(held, rec, segments)
    return row


def factor_scores(embedding: np.ndarray, factors: Mapping[str, np.ndarray],
                  n_neighbors: int = 10, cv: int = 5, seed: int = 0) -> dict[str, dict]:
    """Recovery of known generating factors from an embedding, and how disentangled it is.

    Positions where a factor is not defined (NaN) are left out for that factor.

    Parameters
    ----------
    embedding : numpy.ndarray
        (positions, channels).
    factors : mapping of str to numpy.ndarray
        Factor name -> (positions,) true values.
    n_neighbors, cv, seed : int
        As :func:`~pycroscopy_bevae.analysis.ground_truth_r2`.

    Returns
    -------
    dict
        Factor name -> ``r2`` (from all channels), ``best_channel``, ``best_r2`` (from
        that channel alone), ``gap`` (``best_r2`` minus the second-best single channel's
        R^2; 1 channel: ``best_r2``).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> a, b = rng.uniform(size=(2, 300))
    >>> s = factor_scores(np.c_[b, np.exp(2 * a)], {"a": a})
    >>> s["a"]["best_channel"], s["a"]["best_r2"] > 0.9, s["a"]["gap"] > 0.8
    (1, True, True)
    """
    z = np.asarray(embedding, float)
    if z.ndim != 2 or z.shape[1] == 0:
        raise ParameterError(f"embedding must be (positions, channels >= 1), got {z.shape}")
    out = {}
    for name, y in factors.items():
        y = np.asarray(y, float).ravel()
        if y.shape[0] != z.shape[0]:
            raise ParameterError(f"factor {name!r} has {y.shape[0]} positions, the embedding "
                                 f"{z.shape[0]}")
        ok = np.isfinite(y)
        zz, yy = z[ok], y[ok]
        single = np.array([ground_truth_r2(zz[:, [j]], yy, n_neighbors, cv, seed)[0]
                           for j in range(z.shape[1])])
        order = np.argsort(single)[::-1]
        best = float(single[order[0]])
        out[name] = {"r2": float(ground_truth_r2(zz, yy, n_neighbors, cv, seed)[0]),
                     "best_channel": int(order[0]), "best_r2": best,
                     "gap": best - (float(single[order[1]]) if len(order) > 1 else 0.0)}
    return out


def mechanism_accuracy(embedding: np.ndarray, labels: np.ndarray, cv: int = 5,
                       seed: int = 0) -> float:
    """Cross-validated accuracy of a random forest telling the mechanisms apart.

    Parameters
    ----------
    embedding : numpy.ndarray
        (positions, channels).
    labels : numpy.ndarray
        (positions,) true classes.
    cv, seed : int
        Stratified folds and the seed of folds and forest.

    Returns
    -------
    float
        Fraction of positions classified correctly on held-out folds.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> lab = rng.integers(0, 2, 200)
    >>> z = np.c_[lab + 0.1 * rng.normal(size=200), rng.normal(size=200)]
    >>> mechanism_accuracy(z, lab) > 0.95
    True
    """
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    z = np.asarray(embedding, float)
    labels = np.asarray(labels).ravel()
    if z.ndim != 2 or z.shape[1] == 0 or len(z) != len(labels):
        raise ParameterError(f"embedding {z.shape} and labels {labels.shape} must be "
                             "(positions, channels >= 1) and (positions,)")
    if np.bincount(np.unique(labels, return_inverse=True)[1]).min() < cv:
        raise ParameterError(f"every class needs at least {cv} positions for {cv}-fold "
                             "validation")
    forest = RandomForestClassifier(n_estimators=200, random_state=seed, n_jobs=1)
    folds = StratifiedKFold(n_splits=cv, shuffle=True, random_state=seed)
    pred = cross_val_predict(forest, z, labels, cv=folds)
    return float(np.mean(pred == labels))
