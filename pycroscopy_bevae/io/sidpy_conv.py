"""USID main datasets -> ``sidpy.Dataset`` with named dimensions, units and data type."""

from __future__ import annotations

import h5py
import numpy as np

from ..exceptions import BEPSFormatError
from .names import bias_label

__all__ = ["plottable_sidpy", "usid_to_sidpy"]


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
    return _usid_sidpy(dset, title)[0]


def _usid_sidpy(dset: h5py.Dataset, title: str | None = None):
    """:func:`usid_to_sidpy` and the N-D numpy array it was made from."""
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
    # read in this thread: dask's thread pool would wait for h5py's global lock, which a
    # caller iterating over a group (``group.items()``) holds -> deadlock
    data = np.asarray(udset.get_n_dim_form(lazy=True).compute(scheduler="synchronous"))
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
    return ds, data


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


#: Component / latent channel axes (the spectral axis of a result without a bias).
_COMPONENT_DIMS = ("Component", "Latent", "Channel", "Factor")


def plottable_sidpy(dset: h5py.Dataset, source: str | None = None):
    """Load a USID main dataset as a ``sidpy.Dataset`` that ``dset.plot()`` can draw.

    sidpy plots up to four dimensions and needs a data type that matches them; a BEPS
    loop dataset is five-dimensional (``Y, X, Cycle, DC_Offset, Field``). This keeps
    every value and rearranges the dimensions:

    * singleton dimensions are dropped (``Modality`` of a one-modality result, ``Error``,
      the single step of ``Rotation_Angle``);
    * the spectral axis is the dimension in volts (the bias, whatever its name), else a
      component or latent axis (``Component``, ``Latent``);
    * the other dimensions (cycle, field, modality, or the dictionary's components) are
      flattened into one ``CHANNEL`` axis (``Component`` where components are among
      them, else ``Loop`` over a bias, else ``Channel``; one curve each, labelled in
      ``metadata['channels']``, first dimension slowest).

    Over a 2-D map the result is a ``SPECTRAL_IMAGE`` (3-D, or 4-D with channels: the
    map and, per position, its loops or code) or an ``IMAGE`` (one value per position);
    elsewhere (a dictionary, a line scan) a ``SPECTRUM``: one curve per channel over
    the spectral axis.

    The title is the dataset's name; ``metadata`` keeps the HDF5 path, the file, the
    original USID dimensions and ``source`` (the process that wrote it); ``modality`` is
    BEPS.

    Parameters
    ----------
    dset : h5py.Dataset
        A USID main dataset with a real (non-compound) dtype.
    source : str, optional
        What wrote the dataset (default: the ``tool`` attribute of its group).

    Returns
    -------
    sidpy.Dataset

    Notes
    -----
    The values are in memory, but ``plot()`` computes them on dask's thread pool: do not
    plot inside a loop over ``group.items()`` of an open h5py file (h5py holds its global
    lock while iterating, and a dask thread that frees an h5py object waits on it
    forever); iterate over ``list(group.items())`` instead.

    Examples
    --------
    >>> import tempfile, os, h5py
    >>> from pycroscopy_bevae.datasets import write_synthetic_beps
    >>> from pycroscopy_bevae import LoopProjector
    >>> path = write_synthetic_beps(os.path.join(tempfile.mkdtemp(), "s.h5"), shape=(4, 5))
    >>> with h5py.File(path, "r+") as f:
    ...     grp = LoopProjector(f, progress=False).compute()
    ...     sd = plottable_sidpy(grp["Piezoresponse"])
    >>> sd.shape, sd.data_type.name, sd.title
    ((4, 5, 96, 4), 'SPECTRAL_IMAGE', 'Piezoresponse')
    >>> sd.metadata["channels"]
    ['Cycle 0, Field 1', 'Cycle 0, Field 0', 'Cycle 1, Field 1', 'Cycle 1, Field 0']
    """
    import sidpy

    full, data = _usid_sidpy(dset)
    axes = [full._axes[i] for i in range(full.ndim)]
    kept = [i for i, a in enumerate(axes) if len(a) > 1]
    comp = [i for i in kept if axes[i].name in _COMPONENT_DIMS]
    spatial = [i for i in kept if axes[i].dimension_type == sidpy.DimensionType.SPATIAL
               and i not in comp]
    spectral = [i for i in kept if i not in spatial]
    label = bias_label([axes[i].name for i in spectral], [axes[i].units for i in spectral])
    bias = [i for i in spectral if axes[i].name == label]
    main = bias[:1] or comp[:1] or spectral[:1]
    image = len(spatial) == 2
    if not image:  # a line or a single point: curves over the main axis
        main = main or spatial[:1]
        spatial = [i for i in spatial if i not in main]
    rest = [i for i in kept if i not in main and not (image and i in spatial)]
    lead = spatial + main if image else main
    singletons = [i for i in range(full.ndim) if i not in lead + rest]
    shape = [data.shape[i] for i in lead]
    if rest:
        shape.append(int(np.prod([data.shape[i] for i in rest])))
    data = data.transpose(lead + rest + singletons).reshape(shape)
    ds = sidpy.Dataset.from_array(data, title=str(dset.name).rsplit("/", 1)[-1])
    ds.quantity, ds.units = full.quantity, full.units
    for new, old in enumerate(lead):
        a = axes[old]
        kind = "spatial" if old in spatial and image else "spectral"
        ds.set_dimension(new, sidpy.Dimension(np.asarray(a), name=a.name, units=a.units,
                                              quantity=a.quantity, dimension_type=kind))
    channels = []
    if rest:
        grids = np.meshgrid(*[np.asarray(axes[i]) for i in rest], indexing="ij")
        names = _modality_names(dset)
        channels = [", ".join(_label(axes[i].name, g.ravel()[j], names)
                              for i, g in zip(rest, grids, strict=True))
                    for j in range(data.shape[-1])]
        ds.set_dimension(data.ndim - 1, sidpy.Dimension(
            np.arange(data.shape[-1]), name=_channel_name(rest, comp, bias), units="a.u.",
            quantity=" x ".join(axes[i].name for i in rest), dimension_type="channel"))
    if image:
        ds.data_type = "SPECTRAL_IMAGE" if main else "IMAGE"
    else:
        ds.data_type = "SPECTRUM"  # sidpy draws a family of spectra from this type only
    grp = dset.parent
    ds.modality = "BEPS"
    ds.source = source or str(grp.attrs.get("tool", grp.name.rsplit("/", 1)[-1]))
    ds.metadata = {"usid_path": dset.name, "file": dset.file.filename,
                   "usid_dimensions": [a.name for a in axes], "channels": channels}
    return ds


def _channel_name(rest: list[int], comp: list[int], bias: list[int]) -> str:
    if any(i in comp for i in rest):
        return "Component"
    return "Loop" if bias else "Channel"


def _modality_names(dset: h5py.Dataset) -> list[str]:
    """Modality names recorded by the learning processes on the results group."""
    from .usid import as_text

    names = dset.parent.attrs.get("modality_names")
    return [] if names is None else [as_text(n) for n in np.atleast_1d(names)]


def _label(dim: str, value, modality_names: list[str]) -> str:
    """``'Cycle 1'``, or the modality's name for the ``Modality`` dimension."""
    if dim == "Modality" and float(value).is_integer() and 0 <= value < len(modality_names):
        return modality_names[int(value)]
    return f"{dim} {_short(value)}"


def _short(value) -> str:
    value = float(value)
    return str(int(value)) if value.is_integer() else f"{value:g}"
