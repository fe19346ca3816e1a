"""Finding, validating and slicing BEPS datasets in USID HDF5 files (one import for all).

The jobs live in a module each; this module gathers their public names so that
``from pycroscopy_bevae.io.beps import ...`` keeps working:

- :mod:`~pycroscopy_bevae.io.names`: the vocabulary (SHO-fit fields, bias and field names);
- :mod:`~pycroscopy_bevae.io.h5file`: opening HDF5 sources, external links;
- :mod:`~pycroscopy_bevae.io.readable`: refusing datasets HDF5 cannot read here;
- :mod:`~pycroscopy_bevae.io.layout`: how the spectroscopic columns map to loops;
- :mod:`~pycroscopy_bevae.io.sho_fit`: finding and checking the SHO fit;
- :mod:`~pycroscopy_bevae.io.selection`: reading the loops of one cycle and field.
"""

from .h5file import H5Source, external_link_holder, open_h5
from .layout import LoopLayout, describe_loops
from .names import BIAS_NAMES, FIELD_NAMES, SHO_FIELDS, bias_label, spectroscopic_names
from .readable import check_readable
from .selection import LoopSelection, select_loops
from .sho_fit import check_fits_usable, find_sho_fit, validate_sho_fit

__all__ = [
    "SHO_FIELDS",
    "BIAS_NAMES",
    "FIELD_NAMES",
    "H5Source",
    "bias_label",
    "spectroscopic_names",
    "LoopLayout",
    "LoopSelection",
    "find_sho_fit",
    "describe_loops",
    "validate_sho_fit",
    "select_loops",
    "open_h5",
    "check_fits_usable",
    "check_readable",
    "external_link_holder",
]
