"""pycroscopy-bevae: BEPS hysteresis analysis with loop projection, dictionary
learning and an LSTM beta-VAE, as pyUSID processes writing into the measurement file.

Heavy modules (pyUSID, TensorFlow) are imported on first use.

Examples
--------
>>> import pycroscopy_bevae as pb
>>> pb.__version__ == pb._version.__version__
True
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

from ._version import __version__
from .exceptions import (
    BEPSFormatError,
    BevaeError,
    InsufficientSpaceError,
    MissingFileError,
    ParameterError,
    TrainingDivergedError,
    WriteFailedError,
)

logging.getLogger(__name__).addHandler(logging.NullHandler())

_LAZY = {
    "LoopProjector": "pycroscopy_bevae.process.loop_projection",
    "LoopFitProcess": "pycroscopy_bevae.process.loop_fit",
    "SHOFitProcess": "pycroscopy_bevae.process.sho_fit",
    "DictionaryLearningProcess": "pycroscopy_bevae.process.dictionary",
    "BetaVAEProcess": "pycroscopy_bevae.process.vae",
    "load_beta_vae": "pycroscopy_bevae.store",
    "write_beta_vae": "pycroscopy_bevae.store",
    "write_synthetic_beps": "pycroscopy_bevae.datasets.synthetic_beps",
    "find_sho_fit": "pycroscopy_bevae.io.sho_fit",
    "select_loops": "pycroscopy_bevae.io.selection",
    "usid_to_sidpy": "pycroscopy_bevae.io.sidpy_conv",
    "plottable_sidpy": "pycroscopy_bevae.io.sidpy_conv",
    "configure_tensorflow": "pycroscopy_bevae.models.runtime",
    "active_channels": "pycroscopy_bevae.models.schedule",
}

__all__ = ["__version__", "BevaeError", "BEPSFormatError", "ParameterError", "MissingFileError",
           "InsufficientSpaceError", "WriteFailedError", "TrainingDivergedError", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'pycroscopy_bevae' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
