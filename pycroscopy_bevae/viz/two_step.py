"""The two-step figure: loops generated along each model's best two-step channel, with
the detected jumps marked (:func:`~pycroscopy_bevae.analysis.two_step_summary`)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..analysis.two_step import TwoStepSummary, loop_branches
from ..exceptions import ParameterError

__all__ = ["plot_two_step"]


def plot_two_step(summaries: Sequence[TwoStepSummary], maps: Sequence[np.ndarray] | None = None,
                  is_two_step: np.ndarray | None = None):
    """Generated loops along each model's two-step channel, one row per model.

    Each loop of the traversal is drawn normalised to its range and offset upwards in the
    order of the channel value; dots mark the centres of the detected jumps of each
    branch; loops that show the intermediate step are red, the others blue; a dashed loop
    disagrees with the mechanism of the positions it was generated from.

    Parameters
    ----------
    summaries : sequence of TwoStepSummary
        One per model.
    maps : sequence of numpy.ndarray, optional
        (rows, cols) map of each model's channel, drawn to the left of its loops.
    is_two_step : numpy.ndarray, optional
        (rows, cols) bool, outlined on the maps.

    Returns
    -------
    (matplotlib.figure.Figure, numpy.ndarray of Axes)
        Axes shaped (models, 2) with maps, else (models, 1).

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from pycroscopy_bevae.analysis import latent_traversal, two_step_channel
    >>> from pycroscopy_bevae.analysis.two_step import TwoStepSummary, switching_steps
    >>> v = 16 * np.sin(np.linspace(0, 2 * np.pi, 96, endpoint=False))
    >>> up = np.cos(np.linspace(0, 2 * np.pi, 96, endpoint=False)) > 0
    >>> two = np.r_[np.zeros(20, bool), np.ones(20, bool)]
    >>> z = np.c_[two + 0.1 * np.arange(40) % 0.3]
    >>> def decode(w):  # a plateau appears when the channel is above 0.5
    ...     one = np.tanh((v - np.where(up, 4, -4)) / 0.8)
    ...     other = np.tanh((v - np.where(up, 11, -11)) / 0.8)
    ...     half = 0.5 * (w[:, :1] > 0.5)
    ...     return one * (1 - half) + other * half
    >>> t = latent_traversal(z, decode, 0, n_values=4, k=5)
    >>> s = TwoStepSummary("toy", two_step_channel(z, two), t, v, t.spectra,
    ...                    switching_steps(t.spectra, v), two[t.nearest].mean(axis=1) > 0.5,
    ...                    1.0, 1.0)
    >>> fig, axes = plot_two_step([s], [z[:, 0].reshape(5, 8)], two.reshape(5, 8))
    >>> axes.shape, s.n_with_step, s.n_agree
    ((1, 2), 2, 4)
    """
    import matplotlib.pyplot as plt

    if not len(summaries):
        raise ParameterError("summaries must hold at least one TwoStepSummary")
    if maps is not None and len(maps) != len(summaries):
        raise ParameterError(f"maps must hold one map per summary ({len(summaries)}), got "
                             f"{len(maps)}")
    n_cols = 1 if maps is None else 2
    fig, axes = plt.subplots(len(summaries), n_cols, figsize=(4.2 * n_cols + 1.5,
                                                              4.2 * len(summaries)),
                             squeeze=False, constrained_layout=True,
                             gridspec_kw={"width_ratios": [1, 1.4][-n_cols:]})
    for row, s in enumerate(summaries):
        sep = s.separation
        name = "atom" if "dictionary" in s.label else "channel"
        if maps is not None:
            ax = axes[row, 0]
            im = ax.imshow(np.asarray(maps[row]), cmap="viridis")
            if is_two_step is not None:
                ax.contour(np.asarray(is_two_step, dtype=float), levels=[0.5], colors="w",
                           linewidths=1.0)
            fig.colorbar(im, ax=ax, shrink=0.8)
            ax.set_title(f"{s.label}: {name} {sep.channel} (AUC {sep.auc:.2f})\n"
                         "white: two-step positions", fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
        _plot_loops(axes[row, -1], s)
        axes[row, -1].set_title(f"{s.label}: loops along {name} {sep.channel}: "
                                f"{s.n_with_step} of {len(s.loops)} show the step",
                                fontsize=9)
    return fig, axes


def _plot_loops(ax, s: TwoStepSummary) -> None:
    """Normalised, offset traversal loops with their jumps marked."""
    branches = loop_branches(s.voltage)
    for i, (loop, value) in enumerate(zip(s.loops, s.traversal.values, strict=True)):
        lo, hi = float(np.min(loop)), float(np.max(loop))
        y = (loop - lo) / (hi - lo if hi > lo else 1.0) + 1.3 * i
        color = "tab:red" if s.steps.two_step[i] else "tab:blue"
        style = "-" if s.steps.two_step[i] == s.expected[i] else "--"
        closed = np.r_[np.arange(len(loop)), 0]
        ax.plot(s.voltage[closed], y[closed], style, color=color, lw=1.2)
        for idx, jumps in zip(branches, (s.steps.rising[i], s.steps.falling[i]), strict=True):
            ax.plot(jumps, np.interp(jumps, s.voltage[idx], y[idx]), "o", color="k", ms=3.5)
        ax.text(s.voltage.max() * 1.05, 1.3 * i + 0.5, f"{value:.3g}", fontsize=7,
                va="center")
    ax.set_xlabel("DC bias (V)")
    ax.set_ylabel("piezoresponse (normalised, offset by channel value)")
    ax.set_yticks([])
