"""The toy benchmark with known ground truth (METHOD.md section 5): DL vs beta-VAE.

Spectra generated from RGB colours are decomposed by dictionary learning (3 components)
and the beta-VAE; both are scored on the full colour gamut (reconstruction MSE, the
paper's 0.186 / 0.104) and on how well R, G, B are predicted from the active channels
(cross-validated k-NN R^2).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field

import numpy as np

from .analysis import ground_truth_r2, latent_traversal
from .datasets import toy_gamut_set, toy_training_set
from .exceptions import ParameterError
from .preprocessing import LoopScaler

__all__ = ["ToyBenchmark", "run_toy_benchmark", "PAPER_TOY"]

logger = logging.getLogger(__name__)

#: The paper's toy numbers (reconstruction MSE): DL on an image, DL on the gamut, beta-VAE.
PAPER_TOY = {"dictionary learning (image)": 0.184, "dictionary learning (gamut)": 0.186,
             "beta-VAE": 0.104}


@dataclass
class ToyBenchmark:
    """Results of :func:`run_toy_benchmark`.

    Attributes
    ----------
    rows : list of dict
        One per model: ``model``, ``active channels``, ``gamut MSE``, ``train MSE``,
        ``RGB R^2``, ``training (s)``, ``paper MSE``.
    figures : dict
        Figure name -> path (when ``out_dir`` was given).
    markdown : str or None
        Path of ``toy_benchmark.md``.
    """

    rows: list = field(default_factory=list)
    figures: dict = field(default_factory=dict)
    markdown: str | None = None


def run_toy_benchmark(out_dir: str | None = None, n_spectra: int = 3000,
                      epochs: int | None = None, n_gamut: int = 12, seed: int = 0,
                      progress: bool = True, **vae_params) -> ToyBenchmark:
    """Fit dictionary learning and the beta-VAE (fast preset) on toy spectra and score both.

    Parameters
    ----------
    out_dir : str, optional
        Where to write ``toy_benchmark.md`` and figures (nothing written when None).
    n_spectra : int
        Training spectra (random colours).
    epochs : int, optional
        beta-VAE epochs (default: the fast preset's).
    n_gamut : int
        Colour levels per channel of the validation gamut (``n_gamut ** 3`` spectra).
    seed : int
        Seed of the data and of both models.
    progress : bool
        Show the training progress bar.
    **vae_params
        Other :class:`~pycroscopy_bevae.models.BetaVAE` parameters (default
        ``target_active=3``: as many channels as dictionary-learning components).

    Returns
    -------
    ToyBenchmark

    Examples
    --------
    >>> bench = run_toy_benchmark(n_spectra=200, epochs=2, n_gamut=3, progress=False,
    ...                           units=4, embedding_dim=4, latent_dim=3, prime_epochs=1,
    ...                           step_epochs=1)  # doctest: +SKIP
    >>> [r["model"] for r in bench.rows]  # doctest: +SKIP
    ['dictionary learning', 'beta-VAE']
    """
    from .models import BetaVAE, DictionaryLearner

    if n_spectra < 20 or n_gamut < 2:
        raise ParameterError(f"n_spectra must be >= 20 and n_gamut >= 2, got {n_spectra} and "
                             f"{n_gamut}")
    train = toy_training_set(n_spectra, seed=seed)
    gamut = toy_gamut_set(n_gamut)
    scaler = LoopScaler("step").fit(train.spectra)
    X, Xg = scaler.transform(train.spectra), scaler.transform(gamut.spectra)

    dl = DictionaryLearner(n_components=3, alpha=1.0, random_state=seed).fit(X)
    codes = dl.transform(X)
    dl_rec = dl.reconstruct(Xg)
    rows = [{
        "model": "dictionary learning", "active channels": "3 / 3",
        "gamut MSE": float(np.mean((dl_rec - Xg) ** 2)), "train MSE": dl.score_mse(X),
        "RGB R^2": float(np.mean(ground_truth_r2(codes, train.rgb, seed=seed))),
        "training (s)": float(dl.fit_time_), "paper MSE": PAPER_TOY["dictionary learning "
                                                                   "(gamut)"],
    }]
    params = {"target_active": 3, **vae_params}  # equal terms: 3 channels as 3 atoms
    if epochs is not None:
        params["epochs"] = epochs
    vae = BetaVAE(preset="fast", random_state=seed, **params)
    t0 = time.perf_counter()
    vae.fit(X, progress=progress)
    t_fit = time.perf_counter() - t0
    sel = vae.snapshots_[vae.select()]
    act = sel.active(vae.resolved_params()["kl_threshold"])
    vae_rec = vae.reconstruct(Xg)
    rows.append({
        "model": "beta-VAE", "active channels": f"{act.size} / {sel.mu.shape[1]}",
        "gamut MSE": float(np.mean((vae_rec - Xg) ** 2)), "train MSE": vae.score_mse(X),
        "RGB R^2": float(np.mean(ground_truth_r2(sel.mu[:, act], train.rgb, seed=seed)))
        if act.size else float("nan"),
        "training (s)": t_fit, "paper MSE": PAPER_TOY["beta-VAE"],
    })
    bench = ToyBenchmark(rows=rows)
    if out_dir is not None:
        _write_outputs(bench, out_dir, Xg, dl_rec, vae_rec, vae, sel.mu, act, n_spectra)
    return bench


def _write_outputs(bench: ToyBenchmark, out_dir: str, Xg, dl_rec, vae_rec, vae, mu, act,
                   n_spectra: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .viz import plot_reconstructions, plot_traversal

    os.makedirs(out_dir, exist_ok=True)
    fig, _ = plot_reconstructions([dl_rec, vae_rec], data=Xg,
                                  labels=["dictionary learning", "beta-VAE"],
                                  names=["toy spectrum (scaled), full gamut"])
    path = os.path.join(out_dir, "toy_reconstructions.png")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    bench.figures["toy_reconstructions"] = path
    if act.size:
        fig, axes = plt.subplots(1, act.size, figsize=(3.4 * act.size, 2.9), squeeze=False,
                                 constrained_layout=True)
        for ax, ch in zip(axes[0], act, strict=True):
            t = latent_traversal(mu, vae.decode, int(ch), n_values=8, k=100)
            plot_traversal(t, axes=[ax], names=[f"latent {ch}"])
        path = os.path.join(out_dir, "toy_traversals.png")
        fig.savefig(path, dpi=100)
        plt.close(fig)
        bench.figures["toy_traversals"] = path
    cols = ["model", "active channels", "gamut MSE", "paper MSE", "train MSE", "RGB R^2",
            "training (s)"]
    lines = ["# Toy benchmark", "",
             f"{n_spectra} training spectra (random colours), validation on the full colour "
             f"gamut ({len(Xg)} spectra), per-step scaling. RGB R^2: cross-validated k-NN "
             "prediction of R, G, B from the active channels (mean of the three).", "",
             "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in bench.rows:
        lines.append("| " + " | ".join(f"{r[c]:.4g}" if isinstance(r[c], float) else str(r[c])
                                       for c in cols) + " |")
    lines.append("")
    for name, p in bench.figures.items():
        lines += [f"![{name}]({os.path.basename(p)})", ""]
    bench.markdown = os.path.join(out_dir, "toy_benchmark.md")
    with open(bench.markdown, "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines))
