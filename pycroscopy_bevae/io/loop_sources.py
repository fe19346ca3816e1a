"""Inputs of the learning processes: one or more loop datasets, one cycle and field."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import h5py
import numpy as np

from ..exceptions import BEPSFormatError, DataQualityWarning, ParameterError
from .layout import describe_loops, position_grid
from .names import bias_label, spectroscopic_names
from .provenance import require_complete
from .readable import check_readable
from .selection import read_columns
from .usid import make_dims

__all__ = ["LoopSources", "resolve_sources"]

#: Datasets taken, in this order, when a LoopProjector results group is given.
_GROUP_MODALITIES = ("Piezoresponse", "Resonance")


def resolve_sources(h5_main) -> list[h5py.Dataset]:
    """Turn a dataset, a sequence of datasets, or a ``Fit-Loop_Projection_NNN`` group into
    a list of datasets (the first is the process's main source)."""
    if isinstance(h5_main, h5py.Dataset):
        return [h5_main]
    if isinstance(h5_main, h5py.Group):
        found = [h5_main[n] for n in _GROUP_MODALITIES if n in h5_main]
        if not found:
            raise BEPSFormatError(
                f"group '{h5_main.name}' in file '{h5_main.file.filename}' has no "
                f"{' or '.join(_GROUP_MODALITIES)} dataset; pass the loop dataset(s) directly"
            )
        return found
    if isinstance(h5_main, Sequence) and not isinstance(h5_main, str) and len(h5_main) > 0 \
            and all(isinstance(d, h5py.Dataset) for d in h5_main):
        return list(h5_main)
    raise ParameterError(
        "h5_main must be an h5py.Dataset, a non-empty sequence of them, or a loop-projection "
        f"results group; got {type(h5_main).__name__}"
    )


@dataclass
class LoopSources:
    """Validated loop datasets and the columns selected from each.

    Attributes
    ----------
    datasets : list of h5py.Dataset
        The sources, first = main.
    names : list of str
        Modality names (dataset names, e.g. ``Piezoresponse``, ``Resonance``).
    columns : list of numpy.ndarray
        Selected column indices of each dataset (acquisition order).
    axis_name, axis_units : str
        Name and units of the step axis (``DC_Offset``, ``V``; or ``Step``).
    axis_values : numpy.ndarray
        Step values of the first modality.
    cycle : int or None
        Cycle selected (None for datasets without a DC_Offset dimension).
    field : str
        Field selected.
    grid_shape : tuple of int
        Position grid of the main dataset.
    dc_units : str or None
        Bias units recorded in the file (values are converted to volts); None without a bias.
    """

    datasets: list
    names: list
    columns: list
    axis_name: str
    axis_units: str
    axis_values: np.ndarray
    cycle: int | None
    field: str
    grid_shape: tuple
    dc_units: str | None = None

    @classmethod
    def from_input(cls, h5_main, cycle: int | None = None, field: str = "off") -> LoopSources:
        """Validate the inputs (nothing is read beyond metadata).

        Raises
        ------
        BEPSFormatError
            A source is not a 2-D USID main dataset, or the sources differ in positions.
        ParameterError
            Cycle/field out of range.
        """
        from pyUSID.io.hdf_utils import check_if_main

        dsets = resolve_sources(h5_main)
        names, columns = [], []
        axis = None
        dc_units = None
        generic = False
        chosen_cycle: int | None = None
        n_pos = dsets[0].shape[0] if dsets[0].ndim == 2 else None
        for d in dsets:
            where = f"dataset '{d.name}' in file '{d.file.filename}'"
            if d.dtype.names is not None:
                raise BEPSFormatError(f"{where} has a compound dtype; expected real-valued loops "
                                      "(project SHO fits with LoopProjector first)")
            if d.ndim != 2 or d.shape[0] == 0 or d.shape[1] == 0:
                raise BEPSFormatError(f"{where} has shape {d.shape}; expected non-empty "
                                      "(positions, steps)")
            check_readable(d)
            require_complete(d)  # never learn from an interrupted run's rows
            if not check_if_main(d):
                raise BEPSFormatError(f"{where} is not a USID main dataset")
            if d.file != dsets[0].file:
                raise BEPSFormatError(f"{where} is in another file than '{dsets[0].name}'; all "
                                      "sources must be in one file")
            if d.shape[0] != n_pos:
                raise BEPSFormatError(
                    f"{where} has {d.shape[0]} positions but '{dsets[0].name}' has {n_pos}; "
                    "all modalities must describe the same positions"
                )
            labels, units = spectroscopic_names(d.file[d.attrs["Spectroscopic_Indices"]])
            if bias_label(labels, units) is None:  # generic spectra: all steps
                cols = np.arange(d.shape[1])
                this_axis = ("Step", "", cols.astype(float))
                requested = cycle not in (None, -1) or field not in ("off", "all steps")
                if requested or len(labels) > 1:
                    warnings.warn(
                        f"{where} has no DC-bias dimension (spectroscopic dimensions "
                        f"{labels}): cycle/field selection is not applied, all {d.shape[1]} "
                        "steps are used as one spectrum", DataQualityWarning, stacklevel=3)
                generic = True
            else:
                lay = describe_loops(d)
                extra = {k: int(np.unique(v).size) for k, v in lay.other_index.items()
                         if np.unique(v).size > 1}
                if extra:
                    raise BEPSFormatError(
                        f"{where} has further spectroscopic dimension(s) "
                        f"{', '.join(f'{k} ({n} values)' for k, n in extra.items())} besides "
                        "the DC bias, Cycle and Field; expected one loop per cycle and field "
                        "(only one of them would be used): write the loops of one "
                        f"{next(iter(extra))} value as their own dataset and pass that")
                cols = lay.columns(cycle=cycle, field=field)
                chosen_cycle = lay.n_cycles - 1 if cycle is None else int(cycle) % lay.n_cycles
                this_axis = ("DC_Offset", "V", lay.dc_values[cols])
                dc_units = dc_units or lay.dc_units
            if axis is None:
                axis = this_axis
            names.append(d.name.rsplit("/", 1)[-1])
            columns.append(cols)
        if len(set(names)) != len(names):
            names = [f"{n}_{i}" for i, n in enumerate(names)]
        lay0 = _grid(dsets[0])
        # what was selected, as recorded with the results: no selection on generic spectra
        return cls(dsets, names, columns, axis[0], axis[1], axis[2], chosen_cycle,
                   "all steps" if generic else field, lay0, dc_units)

    def read(self, positions: np.ndarray | None = None) -> list[np.ndarray]:
        """Read the selected loops of every modality, (positions, steps) float arrays.

        Raises
        ------
        BEPSFormatError
            If a selected loop holds non-finite values.
        """
        out = []
        for d, cols in zip(self.datasets, self.columns, strict=True):
            block = np.asarray(read_columns(d, cols, positions), dtype=float)
            bad = ~np.isfinite(block)
            if bad.any():
                raise BEPSFormatError(
                    f"dataset '{d.name}' in file '{d.file.filename}' has {int(bad.sum())} "
                    f"non-finite values in {int(bad.any(axis=1).sum())} selected loops; "
                    "expected finite loops (LoopProjector interpolates failed fits; or clean "
                    "them with preprocessing.clean_loops)"
                )
            out.append(block)
        return out

    @property
    def steps(self) -> list[int]:
        """Number of steps of each modality."""
        return [len(c) for c in self.columns]

    def feature_dims(self) -> list:
        """Spectroscopic dimensions of stacked features: (Modality, step axis) when every
        modality has the same steps, else one flat ``Feature`` index."""
        if len(set(self.steps)) == 1:
            return make_dims([("Modality", "", np.arange(len(self.names))),
                              (self.axis_name, self.axis_units, self.axis_values)])
        return make_dims([("Feature", "", np.arange(sum(self.steps)))])

    def parms(self) -> dict:
        """Parameters that identify the input, for duplicate detection."""
        return {
            "sources": ";".join(d.name for d in self.datasets),
            "modalities": ";".join(self.names),
            "cycle": -1 if self.cycle is None else int(self.cycle),
            "field": self.field,
        }


def _grid(dset: h5py.Dataset) -> tuple:
    return position_grid(dset.file[dset.attrs["Position_Indices"]], dset.shape[0],
                          f"dataset '{dset.name}' in file '{dset.file.filename}'")[1]
