"""Animations (GIF through Pillow, MP4 when ffmpeg exists) and optional Jupyter viewers."""

from __future__ import annotations

import logging
import os

import h5py
import numpy as np

from ..analysis.validation import latent_traversal
from ..exceptions import ParameterError
from .validation import as_result, plot_embedding_maps, plot_traversal

__all__ = ["animate_traversal", "animate_snapshots", "jupyter_traversal", "jupyter_snapshots"]

logger = logging.getLogger(__name__)


def _save(anim, path: str, fps: int) -> str:
    """Write an animation: MP4 through ffmpeg when asked and available, else GIF (Pillow)."""
    from matplotlib import animation

    root, ext = os.path.splitext(path)
    if ext.lower() == ".mp4":
        if animation.writers.is_available("ffmpeg"):
            anim.save(path, writer=animation.FFMpegWriter(fps=fps))
            return path
        logger.warning("ffmpeg is not available: writing %s.gif instead of %s", root, path)
        path = root + ".gif"
    elif ext.lower() != ".gif":
        raise ParameterError(f"animation path must end in .gif or .mp4, got '{path}'")
    anim.save(path, writer=animation.PillowWriter(fps=fps))
    return path


def animate_traversal(model, channel: int, path: str, n_frames: int = 24, k: int = 100,
                      fps: int = 8) -> str:
    """Animate one channel's latent traversal: a marker sweeps the channel map while the
    generated spectrum changes (the paper's movies of the latent space).

    Parameters
    ----------
    model : results group or ModelResult
        Beta-VAE or dictionary-learning result.
    channel : int
        Channel to sweep.
    path : str
        Output ``.gif`` (Pillow) or ``.mp4`` (ffmpeg; falls back to GIF without it).
    n_frames, k, fps : int
        Values along the sweep, nearest positions averaged, frames per second.

    Returns
    -------
    str
        The path written.
    """
    import matplotlib.pyplot as plt
    from matplotlib import animation

    res = as_result(model)
    t = latent_traversal(res.embedding, res.decode_flat, channel, n_values=n_frames, k=k)
    fig, axes = plot_traversal(t, res.embedding[:, channel].reshape(res.grid_shape),
                               res.axis_values, res.names, res.steps,
                               title=f"{res.label}: channel {channel}")
    parts = np.split(t.spectra.reshape(n_frames, -1), np.cumsum(res.steps)[:-1], axis=1)
    for ax in axes[1:]:
        for line in ax.lines:
            line.set_alpha(0.15)
    moving = [ax.plot(res.axis_values, part[0], "r-", lw=2.2)[0]
              for ax, part in zip(axes[1:], parts, strict=True)]
    # where on the map the current value occurs: positions within half a step of it
    col = res.embedding[:, channel]
    half = (t.values[-1] - t.values[0]) / max(2 * (n_frames - 1), 1)
    rows, cols = res.grid_shape
    marks = axes[0].plot([], [], "r.", ms=3)[0]

    def frame(i):
        for line, part in zip(moving, parts, strict=True):
            line.set_ydata(part[i])
        hit = np.flatnonzero(np.abs(col - t.values[i]) <= half)
        marks.set_data(hit % cols, hit // cols)
        return [*moving, marks]

    anim = animation.FuncAnimation(fig, frame, frames=n_frames, blit=False)
    out = _save(anim, path, fps)
    plt.close(fig)
    return out


def animate_snapshots(group: h5py.Group, path: str, channels=None, fps: int = 3) -> str:
    """Animate the embedding maps through the beta schedule: how channels switch off.

    Parameters
    ----------
    group : h5py.Group
        A ``*-Beta_VAE_NNN`` results group (uses ``Embedding_Snapshots``).
    path : str
        ``.gif`` or ``.mp4``.
    channels : sequence of int, optional
        Channels shown (default all latent channels).
    fps : int
        Frames per second (one frame per snapshot).

    Returns
    -------
    str
        The path written.
    """
    import matplotlib.pyplot as plt
    from matplotlib import animation

    if not isinstance(group, h5py.Group) or "Embedding_Snapshots" not in group:
        raise ParameterError("expected a beta-VAE results group with Embedding_Snapshots")
    res = as_result(group)
    snaps = group["Embedding_Snapshots"]
    attrs = snaps.attrs
    channels = list(range(snaps.shape[2]) if channels is None else channels)
    first = snaps[0]
    fig, axes = plot_embedding_maps(first, res.grid_shape, channels=channels, ncols=8)
    images = [ax.images[0] for ax in axes.ravel()[: len(channels)]]
    title = fig.suptitle("")

    def frame(i):
        z = snaps[i]
        for im, c in zip(images, channels, strict=True):
            img = z[:, c].reshape(res.grid_shape)
            im.set_data(img)
            im.set_clim(float(img.min()), float(img.max()) + 1e-12)
        title.set_text(f"epoch {int(attrs['epochs'][i])}, beta {float(attrs['betas'][i]):.4g}, "
                       f"{int(attrs['n_active'][i])} active channels")
        return images

    anim = animation.FuncAnimation(fig, frame, frames=snaps.shape[0], blit=False)
    out = _save(anim, path, fps)
    plt.close(fig)
    return out


def _widgets():
    try:
        import ipywidgets
    except ImportError:
        return None
    return ipywidgets


def jupyter_traversal(model, channel: int | None = None, n_values: int = 8, k: int = 100):
    """Interactive latent traversal in Jupyter: pick a channel, see its generated family.

    Without ipywidgets, the static figure of :func:`plot_traversal` for ``channel``
    (default: the first active channel) is returned instead.

    Returns
    -------
    ipywidgets.Widget or (matplotlib.figure.Figure, numpy.ndarray of Axes)
    """
    res = as_result(model)
    active = list(res.active if res.active.size else range(res.embedding.shape[1]))
    channel = active[0] if channel is None else channel

    def show(ch: int):
        t = latent_traversal(res.embedding, res.decode_flat, ch, n_values=n_values, k=k)
        return plot_traversal(t, res.embedding[:, ch].reshape(res.grid_shape),
                              res.axis_values, res.names, res.steps,
                              title=f"{res.label}: channel {ch}")

    w = _widgets()
    if w is None:
        logger.info("ipywidgets not installed: returning a static figure")
        return show(channel)
    import matplotlib.pyplot as plt

    def update(ch):
        fig, _ = show(ch)
        plt.show()
        plt.close(fig)

    return w.interactive(update, ch=w.Dropdown(options=active, value=channel,
                                               description="channel"))


def jupyter_snapshots(group: h5py.Group, channels=None):
    """Interactive embedding maps through the beta schedule (a slider over snapshots).

    Without ipywidgets, the maps of the selected snapshot are returned as a static figure.

    Returns
    -------
    ipywidgets.Widget or (matplotlib.figure.Figure, numpy.ndarray of Axes)
    """
    res = as_result(group)
    snaps = group["Embedding_Snapshots"]
    selected = int(group.attrs.get("selected_snapshot", snaps.shape[0] - 1))
    channels = list(range(snaps.shape[2]) if channels is None else channels)

    def show(i: int):
        a = snaps.attrs
        return plot_embedding_maps(snaps[i], res.grid_shape, channels=channels, ncols=8,
                                   suptitle=f"epoch {int(a['epochs'][i])}, beta "
                                            f"{float(a['betas'][i]):.4g}")

    w = _widgets()
    if w is None:
        return show(selected)
    import matplotlib.pyplot as plt

    def update(snapshot):
        fig, _ = show(snapshot)
        plt.show()
        plt.close(fig)

    return w.interactive(update, snapshot=w.IntSlider(min=0, max=snaps.shape[0] - 1,
                                                      value=selected))
