"""pyUSID Process subclasses: HDF5 in, HDF5 out, resumable, duplicate-aware."""

from .base import BevaeProcess, GlobalFitProcess
from .dictionary import DictionaryLearningProcess
from .loop_projection import LoopProjector
from .sources import LoopSources
from .vae import BetaVAEProcess, load_beta_vae

__all__ = ["BevaeProcess", "GlobalFitProcess", "DictionaryLearningProcess", "LoopProjector",
           "LoopSources", "BetaVAEProcess", "load_beta_vae"]
