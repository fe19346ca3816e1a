"""USID main datasets -> ``sidpy.Dataset`` with named dimensions, units and data type."""

from __future__ import annotations

import h5py
import numpy as np

from ..exceptions import BEPSFormatError

__all__ = ["usid_to_sidpy"]


def usid_to_sidpy(dset: h5py.Dataset, title: str | None = None):
    """Load a USID main dataset as an N-dimensional ``sidpy.Dataset``.

    Positions become spatial dimensions (slowest first, e.g. ``Y, X``) and each
    spectroscopic dimension a spectral one, in the order stored in the file;
    quantity, units and data type are set from the USID attributes.

    Parameters
    ----------
    dset : h5py.Dataset
        A USID main dataset with a real (non-compound) dtype.
    title : str, optional
        Title of the sidpy dataset; default the HDF5 path.

    Returns
    -------
    sidpy.Dataset

    Examples
    --------
    >>> import tempfile, os, h5py
    >>> from pycroscopy_bevae.datasets import write_synthetic_beps
    >>> from pycroscopy_bevae import LoopProjector
    >>> path = write_synthetic_beps(os.path.join(tempfile.mkdtemp(), "s.h5"), shape=(4, 5))
    >>> with h5py.File(path, "r+") as f:
    ...     grp = LoopProjector(f).compute()
    ...     sd = usid_to_sidpy(grp["Piezoresponse"])
    >>> sd.shape, [sd._axes[i].name for i in range(sd.ndim)]
    ((4, 5, 2, 96, 2), ['Y', 'X', 'Cycle', 'DC_Offset', 'Field'])
    """
    import sidpy
    from pyUSID import USIDataset

    if dset.dtype.names is not None:
        raise BEPSFormatError(
            f"dataset '{dset.name}' has a compound dtype; convert one field at a time"
        )
    try:
        udset = USIDataset(dset)
    except (TypeError, ValueError, KeyError) as exc:
        raise BEPSFormatError(f"dataset '{dset.name}' is not a USID main dataset: {exc}") from exc
    data = np.asarray(udset.get_n_dim_form())
    ds = sidpy.Dataset.from_array(data, title=title or dset.name)
    ds.quantity = str(udset.data_descriptor.split(" (")[0])
    ds.units = str(udset.attrs.get("units", ""))
    if isinstance(ds.units, bytes):
        ds.units = ds.units.decode()
    axis = 0
    for name, units in zip(udset.pos_dim_labels, _units(udset.h5_pos_inds), strict=True):
        ds.set_dimension(axis, sidpy.Dimension(np.asarray(udset.get_pos_values(name)), name=name,
                                               units=units, quantity="Length" if units == "m"
                                               else name, dimension_type="spatial"))
        axis += 1
    for name, units in zip(udset.spec_dim_labels, _units(udset.h5_spec_inds), strict=True):
        ds.set_dimension(axis, sidpy.Dimension(np.asarray(udset.get_spec_values(name)), name=name,
                                               units=units, quantity=name,
                                               dimension_type="spectral"))
        axis += 1
    n_pos = sum(s > 1 for s in udset.pos_dim_sizes)
    n_spec = sum(s > 1 for s in udset.spec_dim_sizes)
    ds.data_type = _data_type(n_pos, n_spec)
    ds.metadata = {"usid_path": dset.name, "file": dset.file.filename}
    return ds


def _units(h5_inds: h5py.Dataset) -> list[str]:
    from pyUSID.io.hdf_utils import get_attr

    # sidpy refuses empty units; dimensionless axes (Cycle, Field) get "a.u."
    return [str(u) or "a.u." for u in get_attr(h5_inds, "units")]


def _data_type(n_pos: int, n_spec: int) -> str:
    """sidpy data type from the number of non-singleton position / spectroscopic dimensions."""
    if n_pos >= 2:
        return {0: "IMAGE", 1: "SPECTRAL_IMAGE", 2: "IMAGE_4D"}.get(n_spec, "UNKNOWN")
    if n_spec == 1:
        return "SPECTRUM" if n_pos == 0 else "LINE_PLOT_FAMILY"
    if n_spec == 0 and n_pos == 1:
        return "LINE_PLOT"
    return "UNKNOWN"
