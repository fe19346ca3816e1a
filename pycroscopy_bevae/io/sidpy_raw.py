"""``sidpy.Dataset`` in for the SHO fit: a complex band-excitation response held as a
sidpy SPECTRAL_IMAGE (SciFiReaders, pyNSID) becomes a USID ``Raw_Data`` that
:class:`~pycroscopy_bevae.process.sho_fit.SHOFitProcess` fits.

As for the other processes' sidpy inputs (:mod:`pycroscopy_bevae.io.sidpy_in`), the input
is validated completely, then written as a USID main dataset into the group the user
names (``h5_target_group``), where the results go too.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import h5py
import numpy as np

from ..exceptions import BEPSFormatError, ParameterError
from .names import bias_label
from .sidpy_in import clean_name, is_sidpy
from .usid import make_dims, write_main

__all__ = ["raw_from_sidpy", "raw_input"]

_MIN_BINS = 4


def _raw_layout(ds) -> tuple[list, list, int, list, np.ndarray]:
    """Axes, spatial axes, the frequency axis, the other axes (dataset order) and the
    values of a sidpy band-excitation response, validated (nothing is written)."""
    import sidpy

    if not is_sidpy(ds):
        raise ParameterError(f"expected a sidpy.Dataset, got {type(ds).__name__}")
    where = f"sidpy dataset '{ds.title or 'untitled'}'"
    if not np.issubdtype(ds.dtype, np.complexfloating):
        raise BEPSFormatError(f"{where} holds {ds.dtype} values; expected the complex "
                              "band-excitation response")
    axes = [ds._axes[i] for i in range(ds.ndim)]
    types = [a.dimension_type for a in axes]
    spatial = [i for i, t in enumerate(types) if t in (sidpy.DimensionType.SPATIAL,
                                                        sidpy.DimensionType.RECIPROCAL)]
    if not spatial:
        raise BEPSFormatError(f"{where} has no SPATIAL dimension (dimension types "
                              f"{[t.name for t in types]}); expected the positions as SPATIAL "
                              "dimensions")
    rest = [i for i in range(ds.ndim) if i not in spatial]
    spectral = [i for i in rest if types[i] == sidpy.DimensionType.SPECTRAL]
    freq = [i for i in spectral if str(axes[i].name).strip().lower() == "frequency"] or \
        [i for i in spectral if str(axes[i].units).strip().lower() == "hz"]
    if len(freq) != 1:
        found = ", ".join(f"{axes[i].name} ({types[i].name}, '{axes[i].units}')"
                          for i in rest) or "none"
        raise BEPSFormatError(f"{where}: no frequency dimension (or no single one) among "
                              f"[{found}]; expected one SPECTRAL dimension named Frequency or "
                              "in Hz")
    unknown = [str(axes[i].name) for i in rest if types[i] == sidpy.DimensionType.UNKNOWN
               and len(axes[i]) > 1]
    if unknown:
        raise BEPSFormatError(f"{where}: dimension(s) {unknown} have type UNKNOWN; expected "
                              "SPATIAL, or SPECTRAL / TEMPORAL / CHANNEL types")
    if len(axes[freq[0]]) < _MIN_BINS:
        raise BEPSFormatError(f"{where}: a band of {len(axes[freq[0]])} frequency bin(s); an "
                              f"SHO fit needs at least {_MIN_BINS}")
    data = np.asarray(ds)
    if not np.isfinite(data).all():
        raise BEPSFormatError(f"{where} has {int((~np.isfinite(data)).sum())} non-finite "
                              "values; expected a finite response in every bin")
    return axes, spatial, freq[0], [i for i in rest if i != freq[0]], data


def raw_from_sidpy(ds, group: h5py.Group, name: str | None = None) -> h5py.Dataset:
    """Write a complex sidpy band-excitation response as a USID main dataset.

    The SPATIAL dimensions become the positions (first slowest); every other dimension a
    spectroscopic one, in the dataset's order, the frequency named ``Frequency`` (Hz) and
    the bias (a SPECTRAL dimension in volts or with a bias name) ``DC_Offset``.

    Parameters
    ----------
    ds : sidpy.Dataset
        Complex, e.g. ``(X, Y, DC Offset, Frequency)``.
    group : h5py.Group
        A group in a file open for writing.
    name : str, optional
        Dataset name (default from the title, else ``Raw_Data``).

    Returns
    -------
    h5py.Dataset

    Raises
    ------
    BEPSFormatError
        Not complex, no SPATIAL or no single frequency dimension, fewer than 4 bins,
        non-finite values (nothing is written), or a dataset of that name exists.

    Examples
    --------
    >>> import numpy as np, sidpy, h5py, tempfile, os
    >>> z = np.ones((2, 3, 4, 8), dtype=np.complex64)
    >>> ds = sidpy.Dataset.from_array(z, title="Raw_Data")
    >>> for i, (n, u, t, v) in enumerate([("X", "um", "spatial", np.arange(2.)),
    ...                                   ("Y", "um", "spatial", np.arange(3.)),
    ...                                   ("DC Offset", "V", "spectral", [0., 1, 0, -1]),
    ...                                   ("Frequency", "Hz", "spectral",
    ...                                    np.linspace(1e6, 1.1e6, 8))]):
    ...     ds.set_dimension(i, sidpy.Dimension(v, n, units=u, dimension_type=t))
    >>> with h5py.File(os.path.join(tempfile.mkdtemp(), "r.h5"), "w") as f:
    ...     d = raw_from_sidpy(ds, f.create_group("In"))
    ...     print(d.name, d.shape)
    /In/Raw_Data (6, 32)
    """
    return _write_raw(ds, _raw_layout(ds), group, name)


def _write_raw(ds, layout: tuple, group: h5py.Group, name: str | None) -> h5py.Dataset:
    axes, spatial, freq, others, data = layout
    if group.file.mode == "r":
        raise ParameterError(f"file '{group.file.filename}' is open read-only; the sidpy input "
                             "must be written next to its results: open it with mode 'r+'")
    spec = sorted(others + [freq])
    n_pos = int(np.prod([data.shape[i] for i in spatial]))
    rows = data.transpose(spatial + spec).reshape(n_pos, -1)
    spec_names = [str(axes[i].name) for i in spec]
    bias = bias_label([n for i, n in zip(spec, spec_names, strict=True) if i != freq],
                      [str(axes[i].units) for i in spec if i != freq])

    def dim(i: int) -> tuple[str, str, np.ndarray]:
        a = axes[i]
        label, units = str(a.name), str(a.units)
        if i == freq:
            label, units = "Frequency", "Hz"
        elif label == bias:
            label, units = "DC_Offset", "V"
        elif units in ("a.u.", "generic"):
            units = ""
        return label, units, np.asarray(a.values, dtype=float)

    name = clean_name(name or str(ds.title or "Raw_Data").rsplit("/", 1)[-1])
    if name in group:
        raise BEPSFormatError(f"'{group[name].name}' in file '{group.file.filename}' exists; "
                              "pass another name or target group")
    attrs = {"sidpy_title": str(ds.title), "sidpy_dimension_names": [str(a.name) for a in axes],
             "description": "written from a sidpy.Dataset by pycroscopy_bevae"}
    return write_main(group, rows, name, str(ds.quantity or "Response"),
                      str(ds.units or "V"), make_dims([dim(i) for i in spatial]),
                      make_dims([dim(i) for i in spec]), attrs=attrs,
                      aux_pos_prefix=f"{name}_Position_", aux_spec_prefix=f"{name}_Spectroscopic_")


@contextlib.contextmanager
def raw_input(h5_main, target: h5py.Group | None) -> Iterator:
    """``h5_main`` as an h5py dataset: a sidpy response is validated, then written into
    ``target`` (required then); on an error inside the block, what was written is
    removed. Anything else passes through."""
    if not is_sidpy(h5_main):
        yield h5_main
        return
    if target is None or not isinstance(target, h5py.Group):
        raise ParameterError("a sidpy.Dataset input needs h5_target_group= a group in an HDF5 "
                             "file open for writing (the input is stored there beside the "
                             "results)")
    layout = _raw_layout(h5_main)
    before = set(target.keys())
    try:
        yield _write_raw(h5_main, layout, target, None)
    except BaseException:
        for key in set(target.keys()) - before:
            del target[key]
        raise
