"""Refusing datasets HDF5 cannot read here (missing filters, dangling references)."""

from __future__ import annotations

import h5py

from ..exceptions import BEPSFormatError
from .names import dataset_where

__all__ = ["check_readable"]


def check_readable(dset: h5py.Dataset) -> None:
    """Refuse a dataset HDF5 cannot read here, before anything is read or written.

    Checks that every filter of the dataset's pipeline (compression) is available
    in this HDF5 installation, and that the USID ancillary references it carries
    (``Position_Indices``, ``Position_Values``, ``Spectroscopic_Indices``,
    ``Spectroscopic_Values``) point to existing objects.

    Parameters
    ----------
    dset : h5py.Dataset
        The dataset to check.

    Raises
    ------
    BEPSFormatError
        Naming the dataset, the file, the filter or the attribute.

    Examples
    --------
    >>> import tempfile, os, h5py
    >>> path = os.path.join(tempfile.mkdtemp(), "x.h5")
    >>> with h5py.File(path, "w") as f:
    ...     d = f.create_dataset("a", data=[[1.0, 2.0]], compression="gzip")
    ...     d.attrs["Position_Values"] = f.create_dataset("p", data=[0.0]).ref
    ...     del f["p"]
    ...     check_readable(d)
    Traceback (most recent call last):
    ...
    pycroscopy_bevae.exceptions.BEPSFormatError: attribute 'Position_Values' of dataset '/a' ...
    """
    where = dataset_where(dset)
    plist = dset.id.get_create_plist()
    for i in range(plist.get_nfilters()):
        code, _flags, _vals, name = plist.get_filter(i)
        if not h5py.h5z.filter_avail(code):
            label = name.decode(errors="replace") if isinstance(name, bytes) else str(name)
            raise BEPSFormatError(
                f"{where} is stored with HDF5 filter {label!r} (id {code}), which this HDF5 "
                "installation cannot read; expected a filter h5py provides (gzip, lzf, "
                "szip, shuffle, fletcher32) or its plugin installed (e.g. `pip install "
                "hdf5plugin` and `import hdf5plugin` first)")
    for attr in ("Position_Indices", "Position_Values", "Spectroscopic_Indices",
                 "Spectroscopic_Values"):
        ref = dset.attrs.get(attr)
        if not isinstance(ref, h5py.Reference):
            continue
        try:
            dset.file[ref]
        except (ValueError, KeyError, OSError) as exc:
            raise BEPSFormatError(
                f"attribute '{attr}' of {where} refers to an object that no longer exists "
                f"(a dangling reference: {exc}); expected a reference to its {attr} dataset"
            ) from None
