"""Validation figures comparing dictionary learning and the beta-VAE (the paper's Figs. 3-5).

Every function returns ``(fig, axes)`` and accepts arrays, ``sidpy.Dataset`` objects,
results groups (``*-Dictionary_Learning_NNN``, ``*-Beta_VAE_NNN``) or
:class:`~pycroscopy_bevae.analysis.ModelResult` objects.
"""

from __future__ import annotations

from collections.abc import Sequence

import h5py
import numpy as np

from ..analysis.results import ModelResult, read_model_result
from ..analysis.validation import Traversal, best_median_worst, latent_traversal
from ..exceptions import ParameterError
from ..io.usid import as_text
from .loops import plot_map, plot_maps

__all__ = [
    "plot_embedding_maps",
    "plot_reconstructions",
    "plot_error_maps",
    "plot_error_violins",
    "plot_traversal",
    "plot_traversals",
    "plot_training_history",
]

MODEL_COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:red")


def as_result(obj) -> ModelResult:
    """A :class:`ModelResult` from a results group or a ModelResult."""
    if isinstance(obj, ModelResult):
        return obj
    if isinstance(obj, h5py.Group):
        return read_model_result(obj)
    raise ParameterError(f"expected a results group or ModelResult, got {type(obj).__name__}")


def _embedding(obj, grid_shape):
    """(positions x channels array, grid shape, default channels, title prefix)."""
    if isinstance(obj, (ModelResult, h5py.Group)):
        res = as_result(obj)
        prefix = "coefficient" if res.kind == "dictionary" else "latent"
        active = res.active if res.active.size else np.arange(res.embedding.shape[1])
        return res.embedding, res.grid_shape, active, prefix
    z = np.asarray(obj, dtype=float)
    if z.ndim == 3:  # sidpy / numpy (rows, cols, channels)
        grid_shape = grid_shape or z.shape[:2]
        z = z.reshape(-1, z.shape[2])
    if z.ndim != 2:
        raise ParameterError(f"embedding must be (positions, channels) or (rows, cols, "
                             f"channels), got shape {z.shape}")
    if grid_shape is None:
        raise ParameterError("grid_shape (rows, cols) is needed for a (positions, channels) "
                             "embedding array")
    return z, tuple(grid_shape), np.arange(z.shape[1]), "channel"


def plot_embedding_maps(embedding, grid_shape: tuple[int, int] | None = None,
                        channels: Sequence[int] | None = None, ncols: int = 5,
                        cmap: str = "viridis", suptitle: str | None = None):
    """Maps of embedding channels (beta-VAE latent means or dictionary coefficients).

    Parameters
    ----------
    embedding : array, sidpy.Dataset, results group or ModelResult
        (positions, channels) with ``grid_shape``, or (rows, cols, channels).
    grid_shape : (rows, cols), optional
        Needed for a 2-D array.
    channels : sequence of int, optional
        Channels to show (default: the active ones of a result, else all).
    ncols, cmap, suptitle
        Layout, colour map, figure title.

    Returns
    -------
    (matplotlib.figure.Figure, numpy.ndarray of Axes)

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> fig, axes = plot_embedding_maps(np.arange(24.0).reshape(12, 2), (3, 4))
    >>> [ax.get_title() for ax in axes.ravel()]
    ['channel 0', 'channel 1']
    """
    z, grid, default, prefix = _embedding(embedding, grid_shape)
    channels = list(default if channels is None else channels)
    if not channels:
        raise ParameterError("no channels to show")
    images = z[:, channels].T.reshape(len(channels), *grid)
    return plot_maps(images, titles=[f"{prefix} {c}" for c in channels], ncols=ncols,
                     cmap=cmap, suptitle=suptitle)


def _modalities(x) -> list[np.ndarray]:
    if isinstance(x, (list, tuple)):
        return [np.asarray(m, dtype=float) for m in x]
    x = np.asarray(x, dtype=float)
    if x.ndim == 2:
        return [x]
    if x.ndim == 3:
        return [x[..., i] for i in range(x.shape[2])]
    raise ParameterError(f"expected (positions, steps[, channels]) data, got shape {x.shape}")


def _models_and_data(models, data, labels):
    """Normalise to (data modalities, [recon modalities per model], labels, axis, names)."""
    items = list(models) if isinstance(models, (list, tuple)) else [models]
    if all(isinstance(m, (ModelResult, h5py.Group)) for m in items):
        results = [as_result(m) for m in items]
        data_mods = _modalities(data) if data is not None else results[0].data
        recons = [r.reconstruction for r in results]
        return (data_mods, recons, list(labels or [r.label for r in results]),
                results[0].axis_values, results[0].names)
    if data is None:
        raise ParameterError("data is needed when models are given as arrays")
    recons = [_modalities(m) for m in items]
    labels = list(labels or [f"model {i}" for i in range(len(items))])
    return _modalities(data), recons, labels, None, None


def plot_reconstructions(models, data=None, labels: Sequence[str] | None = None,
                         axis_values: np.ndarray | None = None,
                         names: Sequence[str] | None = None, ranking: int = 0):
    """Best, median and worst reconstructions of one or more models over the data.

    Rows: the positions with the lowest, median and highest error of the model
    ``ranking``; columns: modalities (piezoresponse and resonance for BEPS). Every
    model's reconstruction of the same position is overlaid on the data.

    Parameters
    ----------
    models : results group / ModelResult, array, or a list of them
        Reconstructions (arrays shaped like ``data``) or fitted results.
    data : array or list of arrays, optional
        (positions, steps[, channels]) data; default the data of the first result.
    labels : sequence of str, optional
        Legend names of the models.
    axis_values : numpy.ndarray, optional
        x values (DC bias); default the results' step axis or the step index.
    names : sequence of str, optional
        Modality names (column titles).
    ranking : int
        Which model's errors pick the best/median/worst positions.

    Returns
    -------
    (matplotlib.figure.Figure, numpy.ndarray of Axes)
        Axes shaped (3, modalities).

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> x = np.sin(np.linspace(0, 3, 20))[None] * np.arange(1, 6)[:, None]
    >>> fig, axes = plot_reconstructions([x * 0.9, x + 0.1], data=x, labels=["a", "b"])
    >>> axes.shape, [ax.get_ylabel() for ax in axes[:, 0]]
    ((3, 1), ['best', 'median', 'worst'])
    """
    import matplotlib.pyplot as plt

    data_mods, recons, labels, axis, mod_names = _models_and_data(models, data, labels)
    names = list(names or mod_names or [f"channel {i}" for i in range(len(data_mods))])
    x = np.asarray(axis_values if axis_values is not None else
                   axis if axis is not None else np.arange(data_mods[0].shape[1]))
    errs = [np.mean([((r - d) ** 2).mean(axis=1) for r, d in zip(rec, data_mods, strict=True)],
                    axis=0) for rec in recons]
    picks = best_median_worst(errs[ranking])
    n_mod = len(data_mods)
    fig, axes = plt.subplots(3, n_mod, figsize=(3.6 * n_mod, 6.6), squeeze=False,
                             constrained_layout=True)
    for row, (which, p) in enumerate(picks.items()):
        for c in range(n_mod):
            ax = axes[row, c]
            ax.plot(x, data_mods[c][p], "k.", ms=3, label="data")
            closed = _closing(x)
            for m, rec in enumerate(recons):
                ax.plot(x[closed], rec[c][p][closed], lw=1.4,
                        color=MODEL_COLORS[m % len(MODEL_COLORS)],
                        label=f"{labels[m]} (MSE {errs[m][p]:.3g})")
            if row == 0:
                ax.set_title(names[c])
            if c == 0:
                ax.set_ylabel(which)
            if row == 2:
                ax.set_xlabel("DC bias (V)" if axis is not None or axis_values is not None
                              else "step")
        axes[row, -1].legend(fontsize=7, frameon=False, title=f"position {p}",
                             title_fontsize=7)
    return fig, axes


def _closing(x: np.ndarray) -> np.ndarray:
    """Index order that closes a hysteresis loop (back to the first point) when the axis
    returns to where it started, as a bias waveform does; plain order otherwise."""
    n = len(x)
    if n > 2 and abs(x[-1] - x[0]) <= 2.5 * np.ptp(x) / n:
        return np.r_[np.arange(n), 0]
    return np.arange(n)


def _errors_of(obj) -> tuple[np.ndarray, str, tuple | None]:
    if isinstance(obj, (ModelResult, h5py.Group)):
        res = as_result(obj)
        return res.errors, res.label, res.grid_shape
    return np.asarray(obj, dtype=float).ravel(), None, None


def plot_error_maps(errors, grid_shape: tuple[int, int] | None = None,
                    labels: Sequence[str] | None = None, log: bool = False):
    """Per-position reconstruction error of several models on one colour scale.

    Parameters
    ----------
    errors : list of arrays (positions,), results groups or ModelResults
    grid_shape : (rows, cols), optional
        Needed for arrays.
    labels : sequence of str, optional
        Titles.
    log : bool
        Show log10 of the error.

    Returns
    -------
    (matplotlib.figure.Figure, numpy.ndarray of Axes)

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> fig, axes = plot_error_maps([np.ones(6), 2 * np.ones(6)], (2, 3), labels=["a", "b"])
    >>> axes[0].images[0].get_clim() == axes[1].images[0].get_clim()
    True
    """
    items = list(errors) if isinstance(errors, (list, tuple)) else [errors]
    vals, names = [], []
    for i, obj in enumerate(items):
        e, lab, grid = _errors_of(obj)
        grid_shape = grid_shape or grid
        vals.append(np.log10(e) if log else e)
        names.append((labels[i] if labels else lab) or f"model {i}")
    if grid_shape is None:
        raise ParameterError("grid_shape (rows, cols) is needed for error arrays")
    images = np.stack([v.reshape(grid_shape) for v in vals])
    fig, axes = plot_maps(images, titles=[f"{n}: mean {np.mean(v):.3g}" if not log else n
                                          for n, v in zip(names, vals, strict=True)],
                          ncols=len(images), cmap="magma", shared_scale=True,
                          cbar_label="log10 MSE" if log else "MSE")
    return fig, axes.ravel()


def plot_error_violins(models, data=None, labels: Sequence[str] | None = None,
                       axis_values: np.ndarray | None = None,
                       names: Sequence[str] | None = None, every: int = 8):
    """Violins of the absolute error at each spectral index, models side by side.

    Parameters
    ----------
    models, data, labels, axis_values, names
        As :func:`plot_reconstructions`.
    every : int
        Show every ``every``-th spectral index (96 violins per model are unreadable).

    Returns
    -------
    (matplotlib.figure.Figure, numpy.ndarray of Axes)
        One axes per modality.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(50, 16))
    >>> fig, axes = plot_error_violins([x + 0.1, x * 0.5], data=x, every=4)
    >>> len(axes), len(axes[0].collections)  # 4 indices x 2 models (+ extrema lines)
    (1, 10)
    """
    import matplotlib.pyplot as plt

    data_mods, recons, labels, axis, mod_names = _models_and_data(models, data, labels)
    names = list(names or mod_names or [f"channel {i}" for i in range(len(data_mods))])
    n_mod = len(data_mods)
    fig, axes = plt.subplots(1, n_mod, figsize=(max(4.0, 5.5 * n_mod), 3.2), squeeze=False,
                             constrained_layout=True)
    width = 0.8 / len(recons)
    for c in range(n_mod):
        ax = axes[0, c]
        idx = np.arange(0, data_mods[c].shape[1], max(1, int(every)))
        for m, rec in enumerate(recons):
            err = np.abs(rec[c] - data_mods[c])[:, idx]
            pos = np.arange(idx.size) + (m - (len(recons) - 1) / 2) * width
            parts = ax.violinplot(err, positions=pos, widths=width * 0.95, showextrema=False,
                                  showmedians=True)
            for body in parts["bodies"]:
                body.set_facecolor(MODEL_COLORS[m % len(MODEL_COLORS)])
                body.set_alpha(0.6)
            ax.plot([], [], color=MODEL_COLORS[m % len(MODEL_COLORS)], lw=6, alpha=0.6,
                    label=labels[m])
        xv = axis_values if axis_values is not None else axis
        ax.set_xticks(np.arange(idx.size))
        ax.set_xticklabels([f"{xv[i]:.0f}" if xv is not None else str(i) for i in idx],
                           fontsize=7)
        ax.set_xlabel("DC bias (V) at step" if xv is not None else "spectral index")
        ax.set_ylabel("|error| (scaled)")
        ax.set_title(names[c])
        ax.legend(fontsize=7, frameon=False)
    return fig, axes.ravel()


def plot_traversal(traversal: Traversal, channel_map: np.ndarray | None = None,
                   axis_values: np.ndarray | None = None,
                   names: Sequence[str] | None = None, steps: Sequence[int] | None = None,
                   axes=None, title: str | None = None):
    """Spectra generated along one channel, coloured by the channel value, next to its map.

    Parameters
    ----------
    traversal : Traversal
        From :func:`~pycroscopy_bevae.analysis.latent_traversal`.
    channel_map : numpy.ndarray, optional
        (rows, cols) map of the channel, drawn first with the same colour scale.
    axis_values : numpy.ndarray, optional
        x values of the spectra.
    names : sequence of str, optional
        Modality names; the spectra are split into modalities of ``steps`` each.
    steps : sequence of int, optional
        Steps per modality of the flat generated spectra (default: one modality).
    axes : sequence of Axes, optional
        ``1 + modalities`` (with a map) or ``modalities`` axes to draw into.
    title : str, optional
        Title of the map panel.

    Returns
    -------
    (matplotlib.figure.Figure, numpy.ndarray of Axes)

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> z = np.random.default_rng(0).normal(size=(100, 2))
    >>> t = latent_traversal(z, lambda v: v @ np.ones((2, 5)), channel=1, n_values=4)
    >>> fig, axes = plot_traversal(t, channel_map=z[:, 1].reshape(10, 10))
    >>> len(axes), len(axes[1].lines)
    (2, 4)
    """
    import matplotlib.pyplot as plt
    from matplotlib.colors import Normalize

    spectra = np.asarray(traversal.spectra, dtype=float).reshape(len(traversal.values), -1)
    steps = list(steps or [spectra.shape[1]])
    parts = np.split(spectra, np.cumsum(steps)[:-1], axis=1)
    names = list(names or [f"channel {traversal.channel}" if len(parts) == 1 else
                           f"modality {i}" for i in range(len(parts))])
    n_ax = len(parts) + (channel_map is not None)
    if axes is None:
        fig, axes = plt.subplots(1, n_ax, figsize=(3.4 * n_ax, 2.9), squeeze=False,
                                 constrained_layout=True)
        axes = axes.ravel()
    else:
        axes = np.asarray(axes).ravel()
        fig = axes[0].figure
    norm = Normalize(float(traversal.values.min()), float(traversal.values.max()))
    cmap = plt.get_cmap("viridis")
    k = 0
    if channel_map is not None:
        plot_map(channel_map, ax=axes[0], cmap=cmap, vmin=norm.vmin, vmax=norm.vmax,
                 title=title or f"channel {traversal.channel}")
        k = 1
    for i, part in enumerate(parts):
        ax = axes[k + i]
        x = np.asarray(axis_values) if axis_values is not None else np.arange(part.shape[1])
        closed = _closing(x)
        for v, spec in zip(traversal.values, part, strict=True):
            ax.plot(x[closed], spec[closed], color=cmap(norm(v)), lw=1.2)
        ax.set_title(f"{names[i]}: generated")
        ax.set_xlabel("DC bias (V)" if axis_values is not None else "step")
    return fig, axes


def plot_traversals(model, channels: Sequence[int] | None = None, n_values: int = 8,
                    k: int = 100, max_channels: int = 8):
    """Generated-spectra families of each active channel of a model (one row per channel).

    Parameters
    ----------
    model : results group or ModelResult
        A dictionary-learning or beta-VAE result (the decoder or atoms generate).
    channels : sequence of int, optional
        Default: the model's active channels (at most ``max_channels``).
    n_values, k : int
        Values per sweep and nearest positions averaged, see
        :func:`~pycroscopy_bevae.analysis.latent_traversal`.
    max_channels : int
        Upper bound on rows when ``channels`` is not given.

    Returns
    -------
    (matplotlib.figure.Figure, numpy.ndarray of Axes)
        Axes shaped (channels, 1 + modalities).
    """
    import matplotlib.pyplot as plt

    res = as_result(model)
    if channels is None:
        channels = list(res.active if res.active.size else range(res.embedding.shape[1]))
        channels = channels[:max_channels]
    if not len(channels):
        raise ParameterError("no channels to traverse")
    n_cols = 1 + len(res.data)
    fig, axes = plt.subplots(len(channels), n_cols, figsize=(3.4 * n_cols,
                                                             2.6 * len(channels)),
                             squeeze=False, constrained_layout=True)
    prefix = "coefficient" if res.kind == "dictionary" else "latent"
    for row, ch in enumerate(channels):
        t = latent_traversal(res.embedding, res.decode_flat, int(ch), n_values=n_values, k=k)
        plot_traversal(t, res.embedding[:, ch].reshape(res.grid_shape), res.axis_values,
                       res.names, res.steps, axes=axes[row], title=f"{res.label}: {prefix} {ch}")
    return fig, axes


def _history_of(obj):
    """(history dict, snapshot epochs, snapshot active counts) from a group or estimator."""
    if isinstance(obj, ModelResult):
        raise ParameterError("pass the Beta_VAE results group (h5py.Group) or a fitted "
                             "BetaVAE for the training history")
    if isinstance(obj, h5py.Group):
        if "Training_History" not in obj:
            raise ParameterError(f"group '{obj.name}' has no Training_History (not a "
                                 "beta-VAE result)")
        h = obj["Training_History"]
        cols = [as_text(c) for c in h.attrs["columns"]]
        hist = {c: h[:, i] for i, c in enumerate(cols)}
        es = obj["Embedding_Snapshots"].attrs
        return hist, np.asarray(es["epochs"]), np.asarray(es["n_active"])
    if hasattr(obj, "history_") and hasattr(obj, "snapshots_"):
        thr = obj.resolved_params()["kl_threshold"]
        return ({k: np.asarray(v) for k, v in obj.history_.items()},
                np.array([s.epoch for s in obj.snapshots_]),
                np.array([s.n_active(thr) for s in obj.snapshots_]))
    if isinstance(obj, dict):
        return {k: np.asarray(v) for k, v in obj.items()}, None, None
    raise ParameterError(f"cannot read a training history from {type(obj).__name__}")


def plot_training_history(history, selected_epoch: int | None = None):
    """Loss terms, the beta/lambda schedule and active channels against epoch.

    Parameters
    ----------
    history : Beta_VAE results group, fitted BetaVAE, or dict of per-epoch lists
        With keys ``loss``, ``mse``, ``l1``, ``kl``, ``beta``, ``lambda``.
    selected_epoch : int, optional
        Marked with a vertical line (default: the group's selected epoch).

    Returns
    -------
    (matplotlib.figure.Figure, numpy.ndarray of Axes)
        Three axes: losses, schedule, active channels (empty without snapshots).

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> h = {"loss": [1.0, 0.5, 0.4], "mse": [1.0, 0.5, 0.3], "kl": [0.0, 0.0, 9.0],
    ...      "l1": [0.0, 0.0, 1.0], "beta": [0.0, 0.0, 0.01], "lambda": [0, 0, 1e-5]}
    >>> fig, axes = plot_training_history(h)
    >>> [line.get_label() for line in axes[0].lines]
    ['loss', 'mse', 'kl', 'l1']
    """
    import matplotlib.pyplot as plt

    hist, snap_epochs, snap_active = _history_of(history)
    if selected_epoch is None and isinstance(history, h5py.Group):
        selected_epoch = int(history.attrs.get("selected_epoch", -1))
    epochs = np.arange(len(hist["loss"]))
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.2), constrained_layout=True)
    for key in ("loss", "mse", "kl", "l1"):
        if key in hist:
            y = np.asarray(hist[key], dtype=float)
            axes[0].plot(epochs, np.where(y > 0, y, np.nan), label=key)
    if "val_mse" in hist:
        axes[0].plot(epochs, hist["val_mse"], "--", label="val_mse")
    axes[0].set_yscale("log")
    axes[0].set_title("loss terms")
    axes[0].legend(fontsize=7, frameon=False)
    axes[1].plot(epochs, hist["beta"], color="tab:red", label="beta")
    axes[1].set_ylabel("beta", color="tab:red")
    tw = axes[1].twinx()
    tw.plot(epochs, hist["lambda"], color="tab:purple", label="lambda")
    tw.set_ylabel("lambda", color="tab:purple")
    axes[1].set_title("regularisation schedule")
    if snap_epochs is not None and len(snap_epochs):
        axes[2].step(snap_epochs, snap_active, where="post", color="k")
        axes[2].plot(snap_epochs, snap_active, "k.")
    axes[2].set_ylabel("active channels")
    axes[2].set_title("active latent channels")
    for ax in axes:
        ax.set_xlabel("epoch")
        if selected_epoch is not None and selected_epoch >= 0:
            ax.axvline(selected_epoch, color="0.5", ls=":", lw=1)
    return fig, axes
