"""File formats: BEPS USID reading and validation, USID writing helpers, sidpy conversion."""

from .h5file import open_h5
from .layout import LoopLayout, describe_loops
from .names import SHO_FIELDS, bias_label
from .readable import check_readable
from .selection import LoopSelection, select_loops
from .sho_fit import check_fits_usable, find_sho_fit, validate_sho_fit
from .sidpy_conv import plottable_sidpy, usid_to_sidpy
from .sidpy_in import sho_fit_from_sidpy, sidpy_to_usid

__all__ = ["SHO_FIELDS", "LoopLayout", "LoopSelection", "bias_label", "check_fits_usable",
           "check_readable", "describe_loops", "find_sho_fit", "open_h5", "plottable_sidpy",
           "select_loops", "sho_fit_from_sidpy", "sidpy_to_usid", "usid_to_sidpy",
           "validate_sho_fit"]
