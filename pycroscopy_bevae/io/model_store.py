"""Former home of the trained-model store, now :mod:`pycroscopy_bevae.store` (it builds
models, which ``io`` may not import). The names resolve there on first use, so
``from pycroscopy_bevae.io.model_store import load_beta_vae`` keeps working.
"""

from __future__ import annotations

import importlib
from typing import Any

#: The names that moved to :mod:`pycroscopy_bevae.store`.
_MOVED = ("load_beta_vae", "numeric", "read_arrays", "read_checkpoint", "read_scaler",
          "read_snapshots", "write_arrays", "write_checkpoint", "write_snapshot")
__all__ = list(_MOVED)


def __getattr__(name: str) -> Any:
    if name in _MOVED:
        return getattr(importlib.import_module("pycroscopy_bevae.store"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
