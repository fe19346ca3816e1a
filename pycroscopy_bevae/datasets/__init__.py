"""Generated data: the synthetic BEPS map with ground truth."""

from .synthetic_beps import (
    FACTOR_MECHANISMS,
    FACTORS,
    MECHANISMS,
    VARIANTS,
    SyntheticBEPS,
    make_synthetic_beps,
    triangle_waveform,
    write_synthetic_beps,
)

__all__ = ["FACTORS", "FACTOR_MECHANISMS", "MECHANISMS", "VARIANTS", "SyntheticBEPS",
           "make_synthetic_beps", "triangle_waveform", "write_synthetic_beps"]
from .toy import (  # noqa: E402
    ToySet,
    default_image,
    toy_gamut_set,
    toy_image_set,
    toy_spectra,
    toy_training_set,
)

__all__ += ["ToySet", "default_image", "toy_gamut_set", "toy_image_set", "toy_spectra",
            "toy_training_set"]
