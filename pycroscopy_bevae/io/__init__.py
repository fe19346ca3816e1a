"""File formats: BEPS USID reading and validation, USID writing helpers, sidpy conversion."""

from .beps import (
    SHO_FIELDS,
    LoopLayout,
    LoopSelection,
    check_fits_usable,
    check_readable,
    describe_loops,
    find_sho_fit,
    open_h5,
    select_loops,
    validate_sho_fit,
)
from .sidpy_conv import plottable_sidpy, usid_to_sidpy

__all__ = ["SHO_FIELDS", "LoopLayout", "LoopSelection", "check_fits_usable", "check_readable",
           "describe_loops", "find_sho_fit", "open_h5", "select_loops", "validate_sho_fit",
           "plottable_sidpy", "usid_to_sidpy"]
