"""pyUSID Process subclasses: HDF5 in, HDF5 out, resumable, duplicate-aware."""

from ..io.loop_sources import LoopSources
from .base import BevaeProcess, ChunkedProcess, GlobalFitProcess
from .dictionary import DictionaryLearningProcess
from .loop_fit import LoopFitProcess
from .loop_projection import LoopProjector
from .sho_fit import SHOFitProcess
from .vae import BetaVAEProcess, load_beta_vae

__all__ = ["BevaeProcess", "ChunkedProcess", "GlobalFitProcess", "DictionaryLearningProcess",
           "LoopFitProcess", "LoopProjector", "LoopSources", "SHOFitProcess", "BetaVAEProcess",
           "load_beta_vae"]
