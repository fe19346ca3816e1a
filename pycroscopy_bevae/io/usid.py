"""Small helpers for writing USID structures with pyUSID.

pyUSID prints progress and warns about argument-order defaults; these helpers
keep that noise out of a user's notebook and give one place to write main
datasets and plain attributes.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import warnings
from collections.abc import Iterator, Mapping, Sequence

import h5py
import numpy as np

from ..parallel import active_pool

__all__ = ["as_text", "quiet_pyusid", "write_main", "write_attrs", "make_dims", "package_versions",
           "linked_ancillaries", "check_new_file", "new_h5_file"]

logger = logging.getLogger(__name__)


def check_new_file(path: str, overwrite: bool) -> None:
    """Refuse to replace an existing file unless ``overwrite`` (call before any work)."""
    from ..exceptions import ParameterError

    if os.path.exists(path) and not overwrite:
        raise ParameterError(f"file '{path}' exists; pass overwrite=True to replace it")


@contextlib.contextmanager
def new_h5_file(path: str) -> Iterator[h5py.File]:
    """Write a new HDF5 file next to ``path`` and move it into place only when complete.

    An interrupted or failed write never leaves a half-written file at ``path``
    (nor replaces an existing one); the temporary ``<path>.partial`` is removed on error.
    """
    tmp = path + ".partial"
    try:
        with h5py.File(tmp, "w") as f:
            yield f
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    os.replace(tmp, path)


@contextlib.contextmanager
def quiet_pyusid() -> Iterator[None]:
    """Route pyUSID's ``print`` output to ``logging`` (DEBUG) and silence its API warnings."""
    buf = io.StringIO()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="In the future write_ind_val_dsets")
        warnings.filterwarnings("ignore", message=".*no longer creates")
        warnings.filterwarnings("ignore", category=FutureWarning, module="pyUSID")
        warnings.filterwarnings("ignore", message="`product` is deprecated",
                                category=DeprecationWarning)
        if active_pool() is not None:  # run_mpi spreads the work: pyUSID's own MPI is off
            warnings.filterwarnings("ignore", message="Code was called in MPI context")
        try:
            with contextlib.redirect_stdout(buf):
                yield
        finally:
            for line in buf.getvalue().splitlines():
                if line.strip():
                    logger.debug("pyUSID: %s", line.strip())


def make_dims(specs: Sequence[tuple[str, str, Sequence[float]]]) -> list:
    """Build pyUSID ``Dimension`` objects from ``(name, units, values)`` tuples."""
    from pyUSID import Dimension

    return [Dimension(name, units, np.asarray(values)) for name, units, values in specs]


def write_main(
    group: h5py.Group,
    data: np.ndarray | tuple[int, ...],
    name: str,
    quantity: str,
    units: str,
    pos: list | Mapping[str, h5py.Dataset],
    spec: list | Mapping[str, h5py.Dataset],
    dtype: np.dtype | None = None,
    attrs: Mapping | None = None,
    aux_spec_prefix: str = "Spectroscopic_",
    aux_pos_prefix: str = "Position_",
) -> h5py.Dataset:
    """Write a USID main dataset.

    Parameters
    ----------
    group : h5py.Group
        Where to write.
    data : numpy.ndarray or tuple
        The data, or a shape to create an empty dataset (then ``dtype`` is required).
    name, quantity, units : str
        Dataset name, physical quantity and units.
    pos, spec : list of Dimension (slowest first) or mapping
        New dimensions, or ``{'inds': h5_inds, 'vals': h5_vals}`` to link existing
        ancillary datasets.
    dtype : numpy.dtype, optional
        Data type for an empty dataset.
    attrs : mapping, optional
        Extra attributes.
    aux_spec_prefix, aux_pos_prefix : str
        Name prefixes of new spectroscopic / position ancillary datasets.

    Returns
    -------
    h5py.Dataset
    """
    from pyUSID.io.hdf_utils import write_main_dataset

    kwargs: dict = {}
    if isinstance(pos, Mapping):
        kwargs.update(h5_pos_inds=pos["inds"], h5_pos_vals=pos["vals"])
        pos = None
    if isinstance(spec, Mapping):
        kwargs.update(h5_spec_inds=spec["inds"], h5_spec_vals=spec["vals"])
        spec = None
    if isinstance(data, tuple):
        kwargs["dtype"] = dtype
    with quiet_pyusid():
        dset = write_main_dataset(
            group, data, name, quantity, units, pos, spec, slow_to_fast=True,
            aux_spec_prefix=aux_spec_prefix, aux_pos_prefix=aux_pos_prefix, **kwargs
        )
    if attrs:
        write_attrs(dset, attrs)
    return dset


def as_text(value) -> str:
    """An HDF5 string attribute (bytes or str) as str.

    Examples
    --------
    >>> as_text(b"global"), as_text("step")
    ('global', 'step')
    """
    return value.decode() if isinstance(value, bytes) else str(value)


def write_attrs(obj: h5py.HLObject, attrs: Mapping) -> None:
    """Write attributes as plain HDF5 types (numbers, strings, arrays of them).

    ``None`` is stored as the string ``'None'``; booleans as numpy bools;
    sequences of strings as arrays of variable-length strings.
    """
    for key, value in attrs.items():
        if value is None:
            value = "None"
        elif isinstance(value, (list, tuple)) and value and all(isinstance(v, str) for v in value):
            value = np.array(value, dtype=h5py.string_dtype())
        obj.attrs[key] = value


def package_versions() -> dict[str, str]:
    """Versions of the packages that shape results, for provenance attributes."""
    import importlib.metadata as md

    out = {}
    for dist in ("pycroscopy-bevae", "numpy", "scipy", "h5py", "pyUSID", "sidpy",
                 "scikit-learn"):
        try:
            out[f"version_{dist}"] = md.version(dist)
        except md.PackageNotFoundError:
            out[f"version_{dist}"] = "not installed"
    return out


def linked_ancillaries(grp: h5py.Group, src: h5py.Dataset,
                       spec: bool = True) -> tuple[dict, dict | None]:
    """Position and spectroscopic ancillaries of ``src`` usable from ``grp``.

    In the same file they are linked; when results go to another file
    (``h5_target_group``) they are copied next to the results first, since HDF5
    object references cannot cross files. With ``spec=False`` only the position
    ancillaries are resolved (and copied), leaving the names ``Spectroscopic_*`` free
    for results with their own spectroscopic dimensions; the second item is then None.
    """
    f = src.file
    anc = {"pos": (f[src.attrs["Position_Indices"]], f[src.attrs["Position_Values"]]),
           "spec": (f[src.attrs["Spectroscopic_Indices"]], f[src.attrs["Spectroscopic_Values"]])}
    if not spec:
        del anc["spec"]
    if grp.file != src.file:
        for key, prefix in (("pos", "Position_"), ("spec", "Spectroscopic_")):
            if key not in anc:
                continue
            inds, vals = anc[key]
            if prefix + "Indices" not in grp:
                f.copy(inds, grp, name=prefix + "Indices")
                f.copy(vals, grp, name=prefix + "Values")
            anc[key] = (grp[prefix + "Indices"], grp[prefix + "Values"])
    return ({"inds": anc["pos"][0], "vals": anc["pos"][1]},
            {"inds": anc["spec"][0], "vals": anc["spec"][1]} if spec else None)
