"""pyUSID Process subclasses: HDF5 in, HDF5 out, resumable, duplicate-aware."""

from .base import BevaeProcess
from .loop_projection import LoopProjector

__all__ = ["BevaeProcess", "LoopProjector"]
