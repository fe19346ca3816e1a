"""File formats: BEPS USID reading and validation, USID writing helpers, sidpy conversion."""

from .beps import (
    SHO_FIELDS,
    LoopLayout,
    LoopSelection,
    bias_label,
    check_fits_usable,
    check_readable,
    describe_loops,
    find_sho_fit,
    open_h5,
    select_loops,
    validate_sho_fit,
)
from .sidpy_conv import plottable_sidpy, usid_to_sidpy
from .sidpy_in import sho_fit_from_sidpy, sidpy_to_usid

__all__ = ["SHO_FIELDS", "LoopLayout", "LoopSelection", "bias_label", "check_fits_usable",
           "check_readable", "describe_loops", "find_sho_fit", "open_h5", "plottable_sidpy",
           "select_loops", "sho_fit_from_sidpy", "sidpy_to_usid", "usid_to_sidpy",
           "validate_sho_fit"]
