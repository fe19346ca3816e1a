"""The vocabulary of BEPS files: SHO-fit fields, bias and field names, spectroscopic labels.

Shared names every reader and writer of BEPS files uses; nothing here opens a file.
"""

from __future__ import annotations

import h5py

__all__ = ["SHO_FIELDS", "BIAS_NAMES", "FIELD_NAMES", "FIELD_CHOICES", "bias_label",
           "spectroscopic_names", "dataset_where"]

#: Fields of the SHO-fit compound dataset that BGlib writes.
SHO_FIELDS: tuple[str, ...] = (
    "Amplitude [V]",
    "Frequency [Hz]",
    "Quality Factor",
    "Phase [rad]",
    "R2 Criterion",
)

#: Names (lower case, spaces and underscores ignored) a DC-bias dimension goes by.
BIAS_NAMES = ("dcoffset", "dc", "dcbias", "bias", "voltage", "vdc", "dcvoltage")


def spectroscopic_names(h5_inds: h5py.Dataset) -> tuple[list[str], list[str]]:
    """Names and units (``''`` where none are stored) of the dimensions of a USID
    ``Spectroscopic_Indices`` dataset, in stored order."""
    from pyUSID.io.hdf_utils import get_attr

    labels = [str(x) for x in get_attr(h5_inds, "labels")]
    units = [str(x) for x in get_attr(h5_inds, "units")] if "units" in h5_inds.attrs \
        else [""] * len(labels)
    return labels, units


def bias_label(labels, units) -> str | None:
    """The spectroscopic dimension that is the DC bias, whatever it is called.

    ``DC_Offset`` (BGlib's name) if present; else the one dimension whose name is a bias
    name (:data:`BIAS_NAMES`: ``DC Offset``, ``Voltage``, ``Bias`` ...) or, failing that,
    whose units are volts. None when there is no such dimension or it is ambiguous.

    Examples
    --------
    >>> bias_label(["Cycle", "DC Offset", "Field"], ["", "V", ""])
    'DC Offset'
    >>> bias_label(["Frequency"], ["Hz"]) is None
    True
    """
    labels = [str(x) for x in labels]
    units = [str(u) for u in units] if units is not None else [""] * len(labels)
    if "DC_Offset" in labels:
        return "DC_Offset"
    named = [lab for lab in labels if lab.lower().replace(" ", "").replace("_", "")
             in BIAS_NAMES]
    if len(named) == 1:
        return named[0]
    volts = [lab for lab, u in zip(labels, units, strict=False)
             if u.strip() in _VOLT_UNITS]
    return volts[0] if len(volts) == 1 else None


#: Units that mark a dimension as the bias when its name does not (converted to volts).
_VOLT_UNITS = ("V", "v", "volt", "volts", "Volt", "Volts", "mV", "kV", "uV", "\u00b5V")

#: Field value -> name.  BGlib's translator writes 0 for out-of-field and 1 for in-field.
FIELD_NAMES = {0: "off", 1: "on"}
FIELD_CHOICES = ("off", "on", "both")


def dataset_where(dset: h5py.Dataset) -> str:
    """Return ``'<dataset> in <file>'`` for error messages."""
    return f"dataset '{dset.name}' in file '{dset.file.filename}'"
