"""Figures of projected hysteresis loops and position maps."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["plot_loops", "plot_map", "plot_maps", "plot_atoms", "plot_projection_summary"]


def _fig_axes(ax, **fig_kw):
    import matplotlib.pyplot as plt

    if ax is None:
        fig, ax = plt.subplots(**fig_kw)
        return fig, ax
    return ax.figure, ax


def plot_loops(
    dc: np.ndarray,
    loops: np.ndarray,
    truth: np.ndarray | None = None,
    labels: Sequence[str] | None = None,
    ax=None,
    title: str | None = None,
    ylabel: str = "Piezoresponse (a.u.)",
):
    """Plot hysteresis loops against DC bias, optionally over their ground truth.

    Parameters
    ----------
    dc : numpy.ndarray
        (steps,) DC bias in volts.
    loops : numpy.ndarray
        (n, steps) or (steps,) loops.
    truth : numpy.ndarray, optional
        Same shape as ``loops``: drawn as dashed black lines.
    labels : sequence of str, optional
        Legend label per loop.
    ax : matplotlib.axes.Axes, optional
        Axes to draw into (a new figure otherwise).
    title, ylabel : str
        Axes title and y label.

    Returns
    -------
    (matplotlib.figure.Figure, matplotlib.axes.Axes)

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> v = np.linspace(-1, 1, 10)
    >>> fig, ax = plot_loops(v, np.tanh(3 * v))
    >>> len(ax.lines)
    1
    """
    fig, ax = _fig_axes(ax, figsize=(4, 3))
    loops = np.atleast_2d(loops)
    dc = np.asarray(dc)
    closed = np.r_[np.arange(dc.size), 0]  # close the loop
    for i, loop in enumerate(loops):
        lab = labels[i] if labels is not None else None
        ax.plot(dc[closed], loop[closed], lw=1.5, label=lab)
    if truth is not None:
        for k, t in enumerate(np.atleast_2d(truth)):
            ax.plot(dc[closed], t[closed], "k--", lw=0.8, label="truth" if k == 0 else None)
    ax.set_xlabel("DC bias (V)")
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    if labels is not None or truth is not None:
        ax.legend(fontsize=7, frameon=False)
    return fig, ax


def plot_map(
    image: np.ndarray,
    ax=None,
    title: str | None = None,
    cmap: str = "viridis",
    cbar_label: str | None = None,
    vmin: float | None = None,
    vmax: float | None = None,
):
    """Show a position map (rows x cols) with a colour bar.

    Returns
    -------
    (matplotlib.figure.Figure, matplotlib.axes.Axes)

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> fig, ax = plot_map(np.arange(6.0).reshape(2, 3), title="demo")
    >>> ax.get_title()
    'demo'
    """
    fig, ax = _fig_axes(ax, figsize=(3.5, 3))
    im = ax.imshow(np.asarray(image), cmap=cmap, origin="upper", vmin=vmin, vmax=vmax,
                   interpolation="nearest")
    cb = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    if cbar_label:
        cb.set_label(cbar_label)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title)
    return fig, ax


def plot_projection_summary(
    dc: np.ndarray,
    piezoresponse: np.ndarray,
    resonance: np.ndarray,
    rotation_angle: np.ndarray,
    grid_shape: tuple[int, int],
    positions: Sequence[int],
    truth_piezoresponse: np.ndarray | None = None,
    mechanism: np.ndarray | None = None,
    mechanism_names: Sequence[str] | None = None,
):
    """One figure summarising a loop projection.

    Panels: rotation-angle map (and the ground-truth mechanism map when given),
    projected piezoresponse loops and resonance loops at selected positions.

    Parameters
    ----------
    dc : numpy.ndarray
        (steps,) DC bias of the loops shown.
    piezoresponse, resonance : numpy.ndarray
        (positions, steps) loops of one cycle and field.
    rotation_angle : numpy.ndarray
        (positions,) rotation angle (rad).
    grid_shape : (rows, cols)
        Map shape.
    positions : sequence of int
        Positions whose loops are drawn (marked on the maps).
    truth_piezoresponse : numpy.ndarray, optional
        (positions, steps) true loops in the same units.
    mechanism : numpy.ndarray, optional
        (rows, cols) integer mechanism labels.
    mechanism_names : sequence of str, optional
        Name of each label.

    Returns
    -------
    (matplotlib.figure.Figure, numpy.ndarray of Axes)
    """
    import matplotlib.pyplot as plt

    n_maps = 2 if mechanism is not None else 1
    fig, axes = plt.subplots(1, n_maps + 2, figsize=(4.2 * (n_maps + 2), 3.6),
                             constrained_layout=True)
    rows, cols = grid_shape
    plot_map(np.asarray(rotation_angle).reshape(rows, cols), ax=axes[0], cmap="twilight",
             title="Rotation angle", cbar_label="rad", vmin=-np.pi, vmax=np.pi)
    if mechanism is not None:
        n_lab = int(mechanism.max()) + 1
        cmap = plt.get_cmap("tab10", n_lab)
        _, ax_m = plot_map(mechanism, ax=axes[1], cmap=cmap, title="True mechanism",
                           vmin=-0.5, vmax=n_lab - 0.5)
        cbar = ax_m.images[0].colorbar
        cbar.set_ticks(range(n_lab))
        if mechanism_names is not None:
            cbar.set_ticklabels(list(mechanism_names)[:n_lab])
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, p in enumerate(positions):
        r, c = divmod(int(p), cols)
        for ax in axes[:n_maps]:
            ax.plot(c, r, "o", mfc="none", mec=colors[k % len(colors)], ms=9, mew=2)
    scale = np.nanmax(np.abs(piezoresponse[list(positions)])) or 1.0
    exponent = int(np.floor(np.log10(scale)))
    factor = 10.0 ** -exponent
    labels = [f"pos {p}" for p in positions]
    truth = None if truth_piezoresponse is None else truth_piezoresponse[list(positions)] * factor
    plot_loops(dc, piezoresponse[list(positions)] * factor, truth=truth, labels=labels,
               ax=axes[n_maps], title="Projected piezoresponse",
               ylabel=f"A cos(phi + theta) (1e{exponent} V)")
    plot_loops(dc, resonance[list(positions)] / 1e3, ax=axes[n_maps + 1],
               title="Resonance frequency", ylabel="kHz")
    return fig, axes


def plot_maps(
    images: np.ndarray,
    titles: Sequence[str] | None = None,
    ncols: int = 5,
    cmap: str = "viridis",
    shared_scale: bool = False,
    cbar_label: str | None = None,
    suptitle: str | None = None,
):
    """A grid of position maps (embedding channels, DL coefficients, error maps).

    Parameters
    ----------
    images : numpy.ndarray
        (n, rows, cols) maps.
    titles : sequence of str, optional
        One title per map (default ``'#0'``, ``'#1'``...).
    ncols : int
        Maps per row.
    cmap : str
        Colour map.
    shared_scale : bool
        One colour scale for all maps (for comparing magnitudes).
    cbar_label, suptitle : str, optional
        Colour-bar label and figure title.

    Returns
    -------
    (matplotlib.figure.Figure, numpy.ndarray of Axes)

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> fig, axes = plot_maps(np.random.default_rng(0).random((3, 4, 4)))
    >>> [ax.get_title() for ax in axes.ravel()[:3]]
    ['#0', '#1', '#2']
    """
    import matplotlib.pyplot as plt

    images = np.asarray(images)
    n = images.shape[0]
    ncols = max(1, min(ncols, n))
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.8 * ncols, 2.5 * nrows), squeeze=False,
                             constrained_layout=True)
    vmin = vmax = None
    if shared_scale:
        vmin, vmax = float(np.nanmin(images)), float(np.nanmax(images))
    for i, ax in enumerate(axes.ravel()):
        if i >= n:
            ax.axis("off")
            continue
        plot_map(images[i], ax=ax, cmap=cmap, vmin=vmin, vmax=vmax, cbar_label=cbar_label,
                 title=titles[i] if titles is not None else f"#{i}")
    if suptitle:
        fig.suptitle(suptitle)
    return fig, axes


def plot_atoms(
    dc: np.ndarray,
    atoms: np.ndarray,
    modality_names: Sequence[str] = ("Piezoresponse",),
):
    """Dictionary atoms (or any per-component spectra), one panel per modality.

    Parameters
    ----------
    dc : numpy.ndarray
        (steps,) DC bias.
    atoms : numpy.ndarray
        (components, modalities * steps) dimensionally stacked atoms.
    modality_names : sequence of str
        Names of the stacked modalities.

    Returns
    -------
    (matplotlib.figure.Figure, numpy.ndarray of Axes)

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> fig, axes = plot_atoms(np.arange(4.0), np.ones((3, 8)), ("P", "R"))
    >>> len(axes), len(axes[0].lines)
    (2, 3)
    """
    import matplotlib.pyplot as plt

    m = len(modality_names)
    steps = np.asarray(dc).size
    atoms = np.asarray(atoms).reshape(atoms.shape[0], m, steps)
    fig, axes = plt.subplots(1, m, figsize=(4.2 * m, 3.2), squeeze=False,
                             constrained_layout=True)
    axes = axes[0]
    for j, ax in enumerate(axes):
        plot_loops(dc, atoms[:, j], labels=[f"#{k}" for k in range(atoms.shape[0])], ax=ax,
                   title=modality_names[j], ylabel="scaled units")
    return fig, axes
