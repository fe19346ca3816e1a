"""Generated data: the synthetic BEPS map with ground truth."""

from .synthetic_beps import (
    MECHANISMS,
    SyntheticBEPS,
    make_synthetic_beps,
    triangle_waveform,
    write_synthetic_beps,
)

__all__ = ["MECHANISMS", "SyntheticBEPS", "make_synthetic_beps", "triangle_waveform",
           "write_synthetic_beps"]
