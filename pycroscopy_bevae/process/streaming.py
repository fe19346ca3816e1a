"""The beta-VAE process's input: scaled, channel-stacked loops in memory, or read from the
file on demand (``stream=True``) as a :class:`~pycroscopy_bevae.models.vae.SpectraSource`
with the scaler fitted in blocks of rows."""

from __future__ import annotations

import logging

import numpy as np

from ..io.loop_sources import LoopSources
from ..models.vae_data import SpectraSource
from ..preprocessing import MultiScaler, stack_channels

__all__ = ["SCALER_ROWS", "ScaledLoops", "fit_scaler_in_chunks", "scaled_input",
           "training_input"]

logger = logging.getLogger(__name__)

#: Rows per read when the scaler is fitted from the file (streaming).
SCALER_ROWS = 64 * 1024


class ScaledLoops(SpectraSource):
    """The process's training input (scaled, channel-stacked loops) read from the file on
    demand: ``take(i)`` equals the in-memory input's rows ``i`` cast to float32 for the
    same scaler."""

    def __init__(self, sources: LoopSources, scaler: MultiScaler):
        self.sources, self.scaler = sources, scaler
        self.shape = (sources.datasets[0].shape[0], sources.steps[0], len(sources.datasets))

    def take(self, indices: np.ndarray, dtype=np.float32) -> np.ndarray:
        idx = np.asarray(indices, dtype=np.int64)
        order = np.argsort(idx, kind="stable")  # HDF5 reads rows in increasing order
        block = stack_channels(self.scaler.transform(self.sources.read(idx[order])))
        out = np.empty(block.shape, dtype=dtype)
        out[order] = block
        return out


def fit_scaler_in_chunks(sources: LoopSources, mode: str,
                         rows: int | None = None) -> MultiScaler:
    """``MultiScaler(mode).fit(sources.read())`` read in blocks of ``rows`` rows
    (default :data:`SCALER_ROWS`)."""
    n = sources.datasets[0].shape[0]
    step = rows or SCALER_ROWS
    return MultiScaler(mode).fit_blocks(
        lambda: (sources.read(np.arange(a, min(a + step, n))) for a in range(0, n, step)))


def scaled_input(sources: LoopSources, scaling: str,
                 positions: np.ndarray | None = None) -> tuple[np.ndarray, MultiScaler]:
    """The loops at ``positions`` (default all), scaled by a scaler fitted on them and
    stacked as channels (positions x steps x modalities), and that scaler."""
    mods = sources.read(positions)
    scaler = MultiScaler(scaling).fit(mods)
    return stack_channels(scaler.transform(mods)), scaler


def training_input(sources: LoopSources, scaling: str,
                   stream: bool) -> tuple[np.ndarray | ScaledLoops, MultiScaler]:
    """Every position's scaled loops in memory, or (``stream``) a source that reads them
    from the file, and the scaler."""
    if not stream:
        return scaled_input(sources, scaling)
    scaler = fit_scaler_in_chunks(sources, scaling)
    first = sources.datasets[0]
    logger.info("beta-VAE: streaming %d positions from '%s'", first.shape[0],
                first.file.filename)
    return ScaledLoops(sources, scaler), scaler
