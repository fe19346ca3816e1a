"""The beta-VAE process's training input read from the file on demand (``stream=True``):
scaled, channel-stacked loops as a :class:`~pycroscopy_bevae.models.vae.SpectraSource`,
and the scaler fitted in blocks of rows."""

from __future__ import annotations

import numpy as np

from ..io.loop_sources import LoopSources
from ..models.vae_data import SpectraSource
from ..preprocessing import MultiScaler, stack_channels

__all__ = ["SCALER_ROWS", "ScaledLoops", "fit_scaler_in_chunks"]

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
