"""The comparison report: every validation figure plus a one-page summary with the table.

``make_report(FILE)`` finds the loop projection, dictionary-learning and beta-VAE results
in a file (read-only), draws the figures and writes ``report.html`` and ``report.md``
with the paper's comparison filled with measured values.
"""

from __future__ import annotations

import html
import logging
import os
from dataclasses import dataclass, field

import h5py
import numpy as np

from .analysis import (
    cluster_agreement,
    factor_scores,
    find_results,
    ground_truth_r2,
    read_ground_truth,
    read_loop_fit,
    read_model_result,
    seed_agreement,
    two_step_positions,
    two_step_summary,
)
from .analysis.results import ModelResult
from .analysis.two_step import TwoStepSummary
from .exceptions import BEPSFormatError, MissingFileError

__all__ = ["Report", "make_report", "comparison_rows", "physics_lines", "two_step_lines"]

logger = logging.getLogger(__name__)

COLUMNS = ("model", "results group", "channels (active / total)", "MSE (scaled)",
           "MSE training positions", "MSE held-out positions", "MSE per modality",
           "training (s)", "inference (s)", "mechanism ARI", "loop-parameter R^2")


@dataclass
class Report:
    """What :func:`make_report` wrote.

    Attributes
    ----------
    html, markdown : str
        Paths of the summary pages.
    figures : dict
        Figure name -> PNG/GIF path.
    rows : list of dict
        The comparison table, one dict per model (keys as :data:`COLUMNS`).
    """

    html: str
    markdown: str
    figures: dict = field(default_factory=dict)
    rows: list = field(default_factory=list)


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return "-" if not np.isfinite(v) else f"{v:.4g}"
    return str(v)


def comparison_rows(results: list[ModelResult], truth: dict | None = None,
                    seed: int = 0) -> list[dict]:
    """The comparison table: one row per model with measured values.

    ``MSE (scaled)`` is over every position; ``MSE training positions`` and ``MSE
    held-out positions`` split it for a beta-VAE that held positions out of its training
    (:attr:`~pycroscopy_bevae.analysis.ModelResult.held_out`); dictionary learning fits
    every position (no held-out value). Ground-truth columns (synthetic files only):
    adjusted Rand index of a k-means clustering of the active channels against the true
    mechanism map, and the mean cross-validated k-NN R^2 of the true loop parameters
    predicted from the active channels.
    """
    rows = []
    for res in results:
        a = res.attrs
        held = res.held_out
        trained = np.setdiff1d(np.arange(len(res.errors)), held)
        per_mod = ", ".join(f"{n} {float(a[f'mse_{n}']):.4g}" for n in res.names
                            if f"mse_{n}" in a)
        ari = r2 = None
        z = res.embedding[:, res.active]  # agreement is judged on the active channels only
        if truth is not None and z.shape[1] and len(z) >= 20:
            if "mechanism" in truth and len(truth["mechanism"]) == len(z):
                ari = cluster_agreement(z, truth["mechanism"], seed=seed)
            params = truth.get("loop_parameters") or {}
            ys = [v for v in params.values() if len(v) == len(z) and np.std(v) > 0]
            if ys:
                r2 = float(np.nanmean(ground_truth_r2(z, np.column_stack(ys), seed=seed)))
        rows.append({
            "model": res.label,
            "results group": res.group.rsplit("/", 1)[-1],
            "channels (active / total)": f"{res.active.size} / {res.embedding.shape[1]}"
            + (" (independent axes)" if a.get("rotation") == "ica" else ""),
            "MSE (scaled)": float(np.mean(res.errors)),
            "MSE training positions": float(np.mean(res.errors[trained])),
            "MSE held-out positions": float(np.mean(res.errors[held])) if held.size else None,
            "MSE per modality": per_mod or None,
            "training (s)": float(a["fit_time_s"]) if "fit_time_s" in a else None,
            "inference (s)": float(a["inference_time_s"]) if "inference_time_s" in a else None,
            "mechanism ARI": ari,
            "loop-parameter R^2": r2,
        })
    return rows


def _savefig(fig, out_dir: str, name: str, figures: dict) -> None:
    import matplotlib.pyplot as plt

    path = os.path.join(out_dir, f"{name}.png")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    figures[name] = path


def _projection_figure(f: h5py.File, grp: h5py.Group, truth: dict | None, out_dir: str,
                       figures: dict) -> list[str]:
    """The projection summary figure and lines on agreement with the ground truth."""
    from .analysis import angle_difference, rowwise_correlation
    from .io import describe_loops
    from .viz import plot_projection_summary

    layout = describe_loops(grp["Piezoresponse"])
    cols = layout.columns(cycle=-1, field="off")
    piezo = grp["Piezoresponse"][:, cols]
    reso = grp["Resonance"][:, cols]
    angle = grp["Rotation_Angle"][:, 0]
    lines = [f"Loop projection `{grp.name}`: {piezo.shape[0]} positions, "
             f"{int(grp.attrs.get('n_rejected_fits', 0))} rejected SHO fits interpolated."]
    kw = {}
    mech = None
    if truth is not None and "Ground_Truth/Piezoresponse" in f:
        true_loops = f["Ground_Truth/Piezoresponse"][:, cols]
        corr = rowwise_correlation(piezo, true_loops)
        err = np.abs(angle_difference(angle, f["Ground_Truth/Rotation_Angle"][()]))
        lines.append(f"Against the ground truth: median loop correlation {np.median(corr):.4f} "
                     f"(min {np.min(corr):.4f}), median rotation-angle error "
                     f"{np.median(err) * 1e3:.2f} mrad.")
        mech = f["Ground_Truth/Mechanism"][()]
        kw = {"truth_piezoresponse": true_loops, "mechanism": mech,
              "mechanism_names": truth.get("mechanism_names")}
    flat = mech.ravel() if mech is not None else np.zeros(piezo.shape[0], int)
    picks = [int(np.flatnonzero(flat == k)[np.count_nonzero(flat == k) // 2])
             for k in np.unique(flat)][:4]
    if len(picks) < 2:
        picks = list(np.linspace(0, piezo.shape[0] - 1, 3).astype(int))
    fig, _ = plot_projection_summary(layout.dc_values[cols], piezo, reso, angle,
                                     layout.grid_shape, picks, **kw)
    _savefig(fig, out_dir, "projection", figures)
    return lines


def make_report(path: str, out_dir: str | None = None, animations: bool = True,
                seed: int = 0) -> Report:
    """Write all validation figures and the summary pages for the results in a file.

    The file is opened read-only; nothing in it changes.

    Parameters
    ----------
    path : str
        USID HDF5 file with results of :class:`LoopProjector`,
        :class:`DictionaryLearningProcess` and/or :class:`BetaVAEProcess`.
    out_dir : str, optional
        Output folder (default ``<file stem>_report`` next to the file).
    animations : bool
        Also write GIF animations (latent traversal, embedding through the schedule).
    seed : int
        Seed of the k-means / cross-validation folds of the ground-truth agreement.

    Returns
    -------
    Report

    Raises
    ------
    MissingFileError
        The file does not exist.
    BEPSFormatError
        The file holds no results of this package.

    Examples
    --------
    >>> import os, tempfile
    >>> from pycroscopy_bevae import (LoopProjector, DictionaryLearningProcess,
    ...                               write_synthetic_beps)
    >>> d = tempfile.mkdtemp()
    >>> path = write_synthetic_beps(os.path.join(d, "s.h5"), shape=(6, 6))
    >>> with h5py.File(path, "r+") as f:
    ...     proj = LoopProjector(f, progress=False).compute()
    ...     _ = DictionaryLearningProcess(proj, n_components=3).compute()
    >>> rep = make_report(path, os.path.join(d, "report"), animations=False)
    >>> sorted(rep.figures)[:3], rep.rows[0]["model"]
    (['dictionary_learning_embedding', 'dictionary_learning_traversals', 'error_maps'], \
'dictionary learning')
    """
    import matplotlib

    matplotlib.use("Agg")
    from .viz import (
        animate_snapshots,
        animate_traversal,
        plot_embedding_maps,
        plot_error_maps,
        plot_error_violins,
        plot_reconstructions,
        plot_training_history,
        plot_traversals,
    )

    if not os.path.isfile(path):
        raise MissingFileError(f"file '{path}' does not exist")
    out_dir = out_dir or os.path.splitext(path)[0] + "_report"
    os.makedirs(out_dir, exist_ok=True)
    figures: dict = {}
    text: list[str] = []
    with h5py.File(path, "r") as f:
        found = find_results(f)
        if not any(found.values()):
            raise BEPSFormatError(f"file '{path}' holds no complete loop projection, "
                                  "dictionary-learning or beta-VAE results")
        truth = read_ground_truth(f)
        if found["projection"]:
            text += _projection_figure(f, f[found["projection"][-1]], truth, out_dir, figures)
        by_path = {p: read_model_result(f[p]) for p in found["dictionary"] + found["beta_vae"]}
        results = list(by_path.values())
        latest = [by_path[found[k][-1]] for k in ("dictionary", "beta_vae") if found[k]]
        rows = comparison_rows(results, truth, seed=seed)
        if found["loop_fit"]:
            text += physics_lines(f[found["loop_fit"][-1]], latest, seed=seed)
        text += seed_lines([r for r in results if r.kind == "beta_vae"])
        text += _two_step_section(latest, two_step_positions(truth), out_dir, figures)
        for res in latest:
            stem = res.label.replace(" ", "_").replace("-", "_")
            fig, _ = plot_embedding_maps(res, suptitle=f"{res.label}: {res.group}")
            _savefig(fig, out_dir, f"{stem}_embedding", figures)
            fig, _ = plot_traversals(res, n_values=8, k=min(100, len(res.errors)))
            _savefig(fig, out_dir, f"{stem}_traversals", figures)
        if latest:
            fig, _ = plot_reconstructions(latest)
            _savefig(fig, out_dir, "reconstructions", figures)
            fig, _ = plot_error_maps(latest)
            _savefig(fig, out_dir, "error_maps", figures)
            fig, _ = plot_error_violins(latest)
            _savefig(fig, out_dir, "error_violins", figures)
        if found["beta_vae"]:
            vae_grp = f[found["beta_vae"][-1]]
            fig, _ = plot_training_history(vae_grp)
            _savefig(fig, out_dir, "training_history", figures)
            vae_res = latest[-1]
            if animations:
                figures["snapshots_animation"] = animate_snapshots(
                    vae_grp, os.path.join(out_dir, "embedding_schedule.gif"))
                if vae_res.active.size:
                    ch = int(vae_res.active[0])
                    figures["traversal_animation"] = animate_traversal(
                        vae_res, ch, os.path.join(out_dir, f"traversal_latent_{ch}.gif"),
                        k=min(100, len(vae_res.errors)))
    rep = Report(html=os.path.join(out_dir, "report.html"),
                 markdown=os.path.join(out_dir, "report.md"), figures=figures, rows=rows)
    _write_pages(rep, path, text, truth is not None)
    logger.info("report written to %s", rep.html)
    return rep


#: Loop-fit parameters the report reads the channels in.
PHYSICS = ("Coercive_Voltage_Up", "Coercive_Voltage_Down", "Amplitude", "Offset", "Slope")


def physics_lines(fit_grp: h5py.Group, results: list[ModelResult], seed: int = 0
                  ) -> list[str]:
    """Which channel of each model follows which loop-fit parameter ("known physics").

    For every model, the loop fit of the loop it was trained on (its cycle and field) is
    read with :func:`~pycroscopy_bevae.analysis.read_loop_fit` and scored against the
    active channels with :func:`~pycroscopy_bevae.analysis.factor_scores`: the R^2 of
    each parameter from all active channels, and the single channel that carries most of
    it.
    """
    lines = []
    for res in results:
        z = res.embedding[:, res.active]
        if not z.shape[1] or len(z) < 20:
            continue
        cycle = int(res.attrs.get("cycle", -1))
        fld = str(res.attrs.get("field", "off"))
        try:
            params = read_loop_fit(fit_grp, cycle=cycle, field="on" if fld == "on" else "off")
        except BEPSFormatError as exc:
            logger.info("no loop-fit comparison for %s: %s", res.label, exc)
            continue
        use = {k: params[k] for k in PHYSICS
               if len(params[k]) == len(z) and np.isfinite(params[k]).sum() >= 20
               and np.nanstd(params[k]) > 0}
        if not use:
            continue
        scores = factor_scores(z, use, seed=seed)
        parts = [f"{k.replace('_', ' ').lower()} R^2 {v['r2']:.2f} (channel "
                 f"{int(res.active[v['best_channel']])} alone {v['best_r2']:.2f})"
                 for k, v in scores.items()]
        lines.append(f"{res.label} vs the loop fit `{fit_grp.name.rsplit('/', 1)[-1]}` "
                     f"(cycle {cycle}, field {fld}): " + "; ".join(parts) + ".")
    return lines


def seed_lines(results: list[ModelResult]) -> list[str]:
    """Whether the beta-VAE's channels come back with another seed: for every set of
    beta-VAE results of the same source and parameters but different ``random_state``,
    the seed agreement (:func:`~pycroscopy_bevae.analysis.seed_agreement`: channels
    matched one to one on |correlation|, mean matched |correlation| = MCC) of their
    active channels."""
    from .models import BetaVAE

    same: dict = {}
    for res in results:
        if res.active.size and "random_state" in res.attrs:
            params = sorted((k, str(v)) for k, v in res.attrs.items()
                            if k in BetaVAE.parameter_names() + ("scaling", "preset", "cycle",
                                                                 "field", "n_active")
                            and k != "random_state")
            key = repr((res.group.rsplit("/", 1)[0], params))  # next to the same source
            same.setdefault(key, {}).setdefault(int(res.attrs["random_state"]), res)
    lines = []
    for runs in same.values():
        if len(runs) < 2:
            continue
        seeds = sorted(runs)
        agreement = seed_agreement([runs[k].embedding[:, runs[k].active] for k in seeds])
        lines.append(f"beta-VAE seed agreement (seeds {', '.join(map(str, seeds))}; active "
                     f"channels {', '.join(str(runs[k].active.size) for k in seeds)}): MCC "
                     f"{agreement.mcc:.2f} (lowest pair "
                     f"{agreement.pairwise[np.triu_indices(len(seeds), 1)].min():.2f}).")
    return lines


def two_step_lines(summaries: list[TwoStepSummary], is_two_step: np.ndarray) -> list[str]:
    """The two-step measure, one line per model (see
    :func:`~pycroscopy_bevae.analysis.two_step_summary`): the channel that best separates
    the true two-step positions and its ROC AUC, how many loops generated along it show
    the intermediate step and at how many traversal points that matches the mechanism of
    the nearest positions, and the accuracy of the step measure on the reconstructions
    (and on the input loops)."""
    two = np.asarray(is_two_step)
    lines = []
    for s in summaries:
        name = "atom" if s.label == "dictionary learning" else "channel"
        n = len(s.loops)
        lines.append(
            f"Two-step switching, {s.label}: {name} {s.separation.channel} separates the "
            f"{int(two.sum())} two-step positions (of {two.size}, ground truth) best (AUC "
            f"{s.separation.auc:.2f}); {s.n_with_step} of {n} loops generated along it show "
            f"the intermediate step, matching the mechanism of their nearest positions at "
            f"{s.n_agree} of {n} points; on its reconstructions the step measure agrees with "
            f"the truth at {100 * s.reconstructed:.1f} % of positions (input loops "
            f"{100 * s.measured:.1f} %).")
    return lines


def _two_step_section(results: list[ModelResult], is_two_step: np.ndarray | None,
                      out_dir: str, figures: dict) -> list[str]:
    """The two-step lines and figure for the models fitted on every position of a map
    with a two-step mechanism in its ground truth (nothing otherwise)."""
    if is_two_step is None or is_two_step.all():
        return []
    from .viz import plot_two_step

    usable = [r for r in results if len(r.errors) == is_two_step.size and r.embedding.shape[1]]
    if not usable:
        return []
    summaries = [two_step_summary(r, is_two_step, k=min(100, is_two_step.size))
                 for r in usable]
    grid = usable[0].grid_shape
    if int(np.prod(grid)) == is_two_step.size and len(grid) == 2:
        maps = [r.embedding[:, s.separation.channel].reshape(grid)
                for r, s in zip(usable, summaries, strict=True)]
        fig, _ = plot_two_step(summaries, maps, is_two_step.reshape(grid))
    else:
        fig, _ = plot_two_step(summaries)
    _savefig(fig, out_dir, "two_step", figures)
    return two_step_lines(summaries, is_two_step)


CAPTIONS = {
    "projection": "Loop projection: rotation angle, mechanism (ground truth when known), "
                  "piezoresponse and resonance loops at chosen positions.",
    "reconstructions": "Best, median and worst reconstructions (ranked by the first model), "
                       "both models over the data.",
    "error_maps": "Per-position reconstruction error of both models on one colour scale.",
    "error_violins": "Absolute error per spectral index (every 8th step), both models.",
    "training_history": "Training: loss terms, beta/lambda schedule, active latent channels; "
                        "dotted line: the selected epoch.",
    "snapshots_animation": "Embedding maps through the beta schedule.",
    "traversal_animation": "Latent traversal of the first active channel.",
    "two_step": "Two-step switching: each model's channel that best separates the true "
                "two-step positions (map, white outline), and the piezoresponse loops "
                "generated along it (normalised, offset in the order of the channel value; "
                "dots: detected jumps of each branch; red: the loop shows the intermediate "
                "step; dashed: disagrees with the mechanism of its nearest positions).",
}


def _caption(name: str) -> str:
    if name in CAPTIONS:
        return CAPTIONS[name]
    model = name.rsplit("_", 1)[0].replace("_", " ")
    if name.endswith("_embedding"):
        return f"{model}: maps of the active embedding channels."
    return (f"{model}: spectra generated along each active channel (mean of the k = 100 "
            "nearest positions, the channel swept over its range), next to its map.")


def _write_pages(rep: Report, path: str, text: list[str], has_truth: bool) -> None:
    cols = [c for c in COLUMNS if has_truth or c not in ("mechanism ARI",
                                                         "loop-parameter R^2")]
    title = f"pycroscopy-bevae report: {os.path.basename(path)}"
    md = [f"# {title}", "", f"File: `{os.path.abspath(path)}`", ""] + [f"{t}  " for t in text]
    md += ["", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    md += ["| " + " | ".join(_fmt(r[c]) for c in cols) + " |" for r in rep.rows]
    notes = ["Held-out positions: those the beta-VAE did not train on (its "
             "`validation_fraction`), encoded and decoded by the trained model; dictionary "
             "learning fits every position, so it has no held-out value."]
    if has_truth:
        notes.append("Ground-truth columns: adjusted Rand index of k-means on the active "
                     "channels vs the true mechanism map; mean cross-validated k-NN R^2 of the "
                     "true loop parameters from the active channels (1 = perfect).")
    for note in notes:
        md += ["", note]
    h = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
         "</title><style>body{font-family:sans-serif;max-width:1200px;margin:auto}"
         "table{border-collapse:collapse}td,th{border:1px solid #999;padding:4px 8px}"
         "img{max-width:100%}</style></head><body>", f"<h1>{html.escape(title)}</h1>",
         f"<p>File: <code>{html.escape(os.path.abspath(path))}</code></p>"]
    h += [f"<p>{html.escape(t).replace('`', '')}</p>" for t in text]
    h += ["<table><tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in cols) + "</tr>"]
    h += ["<tr>" + "".join(f"<td>{html.escape(_fmt(r[c]))}</td>" for c in cols) + "</tr>"
          for r in rep.rows]
    h += ["</table>"] + [f"<p>{html.escape(note).replace('`', '')}</p>" for note in notes]
    md.append("")
    for name, fig_path in rep.figures.items():
        rel = os.path.relpath(fig_path, os.path.dirname(rep.html))
        cap = _caption(name)
        md += [f"![{name}]({rel})", "", f"*{cap}*", ""]
        h += [f"<figure><img src='{html.escape(rel)}' alt='{html.escape(name)}'>"
              f"<figcaption>{html.escape(cap)}</figcaption></figure>"]
    h.append("</body></html>")
    with open(rep.markdown, "w", encoding="utf-8") as fh:
        fh.write("\n".join(md))
    with open(rep.html, "w", encoding="utf-8") as fh:
        fh.write("\n".join(h))
