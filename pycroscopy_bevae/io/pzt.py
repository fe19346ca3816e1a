"""Already-projected loops (numpy / MATLAB) -> a USID file laid out like LoopProjector's output.

Used for the real PbZr0.2Ti0.8O3 benchmark of the paper (``../shared/data/pzt_beps``):
its loops were projected and cleaned by the reference pipeline and are
distributed as arrays. Converted, every later process runs on them unchanged.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._version import __version__
from ..exceptions import BEPSFormatError, MissingFileError, ParameterError
from ..preprocessing import clean_loops
from .usid import check_new_file, make_dims, new_h5_file, write_attrs, write_main

__all__ = ["PZTArrays", "load_pzt_arrays", "read_loopdata_mat", "reference_clean",
           "write_projected_loops", "convert_pzt_benchmark", "PZT_UNITS"]

#: Approximate physical units of the z-scored benchmark arrays (data README):
#: value = z * scale + offset.
PZT_UNITS = {
    "Piezoresponse": {"scale": 7.8599e-5, "offset": -1.0487e-5, "units": "a.u."},
    "Resonance": {"scale": 3.14542e3, "offset": 1324.80e3, "units": "Hz"},
}

PROJECTION_GROUP = "Measurement_000/Channel_000/Raw_Data-SHO_Fit_000/Fit-Loop_Projection_000"


@dataclass
class PZTArrays:
    """The benchmark arrays (globally z-scored, cleaned).

    Attributes
    ----------
    piezoresponse, resonance : numpy.ndarray
        (3600, 96) loops, row-major 60 x 60 grid.
    voltage : numpy.ndarray
        (96,) DC bias (V).
    grid_shape : tuple of int
        (60, 60).
    """

    piezoresponse: np.ndarray
    resonance: np.ndarray
    voltage: np.ndarray
    grid_shape: tuple[int, int]


def _need(path: Path) -> Path:
    if not path.exists():
        raise MissingFileError(f"file '{path}' does not exist")
    return path


def load_pzt_arrays(folder: str | os.PathLike) -> PZTArrays:
    """Load ``pizoresponse.npy``, ``resonance.npy`` and ``voltage.npy`` from ``folder``.

    Raises
    ------
    MissingFileError
        A file is missing.
    BEPSFormatError
        The arrays do not have the documented shapes.
    """
    folder = Path(folder)
    p = np.load(_need(folder / "pizoresponse.npy"))
    r = np.load(_need(folder / "resonance.npy"))
    v = np.load(_need(folder / "voltage.npy"))
    p = p.reshape(p.shape[0], -1)
    v = v.reshape(-1)
    if p.shape != r.shape or p.shape[1] != v.size:
        raise BEPSFormatError(
            f"arrays in '{folder}' disagree: piezoresponse {p.shape}, resonance {r.shape}, "
            f"voltage {v.shape}; expected (positions, steps), (positions, steps), (steps,)"
        )
    side = int(round(np.sqrt(p.shape[0])))
    grid = (side, side) if side * side == p.shape[0] else (p.shape[0], 1)
    return PZTArrays(p, r, v, grid)


def read_loopdata_mat(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Raw projected loops from ``Loopdata_mixed.mat``.

    Returns
    -------
    loops : numpy.ndarray
        (positions, steps) raw piezoresponse (a.u., with NaN where fits failed).
    voltage : numpy.ndarray
        (steps,) DC bias.
    """
    import scipy.io as sio

    mat = sio.loadmat(_need(Path(path)))
    for key in ("Loopdata_mixed", "Voltagedata_mixed"):
        if key not in mat:
            raise BEPSFormatError(f"'{path}' has no variable '{key}'; found "
                                  f"{sorted(k for k in mat if not k.startswith('__'))}")
    loops = np.asarray(mat["Loopdata_mixed"], dtype=float)
    return loops.reshape(-1, loops.shape[-1]), np.asarray(mat["Voltagedata_mixed"]).reshape(-1)


def reference_clean(loops: np.ndarray, value_range: tuple[float, float] | None = None
                    ) -> np.ndarray:
    """The reference pipeline: clean (NaN interpolation, Savitzky-Golay outliers), then
    z-score with one global mean and standard deviation.

    Examples
    --------
    >>> x = np.linspace(-1, 1, 20)[None, :] * np.ones((3, 1))
    >>> z = reference_clean(x)
    >>> bool(abs(z.mean()) < 1e-12), round(float(z.std()), 12)
    (True, 1.0)
    """
    x = clean_loops(loops, value_range=value_range)
    return (x - x.mean()) / x.std()


def write_projected_loops(
    path: str | os.PathLike,
    piezoresponse: np.ndarray,
    dc: np.ndarray,
    grid_shape: tuple[int, int],
    resonance: np.ndarray | None = None,
    units: tuple[str, str] = ("a.u.", "Hz"),
    cycle: int = 1,
    field: str = "off",
    attrs: dict | None = None,
    overwrite: bool = False,
) -> str:
    """Write projected loops as a USID file with LoopProjector's layout.

    The datasets go to ``/Measurement_000/Channel_000/Raw_Data-SHO_Fit_000/
    Fit-Loop_Projection_000/{Piezoresponse, Resonance}`` with position dimensions
    ``Y, X`` and spectroscopic dimensions ``Cycle`` (one value) x ``DC_Offset`` x
    ``Field`` (one value), so processes select them exactly as they would a
    projection of an instrument file.

    Parameters
    ----------
    path : str or os.PathLike
        File to create.
    piezoresponse : numpy.ndarray
        (positions, steps) loops, row-major grid.
    dc : numpy.ndarray
        (steps,) DC bias (V).
    grid_shape : (rows, cols)
        Map shape.
    resonance : numpy.ndarray, optional
        (positions, steps) resonance-frequency loops.
    units : (str, str)
        Units of piezoresponse and resonance.
    cycle : int
        Which cycle the loops are (recorded as the Cycle value).
    field : {'off', 'on'}
        Which field the loops are.
    attrs : dict, optional
        Extra attributes of the results group (provenance).
    overwrite : bool
        Replace an existing file.

    Returns
    -------
    str
        The path written.
    """
    path = os.fspath(path)
    check_new_file(path, overwrite)
    p = np.asarray(piezoresponse, dtype=float)
    dc = np.asarray(dc, dtype=float).reshape(-1)
    rows, cols = (int(s) for s in grid_shape)
    if p.ndim != 2 or p.shape != (rows * cols, dc.size):
        raise ParameterError(f"piezoresponse must be ({rows * cols}, {dc.size}) for grid "
                             f"{grid_shape} and {dc.size} DC steps, got {p.shape}")
    if resonance is not None and np.shape(resonance) != p.shape:
        raise ParameterError(f"resonance must have the shape of piezoresponse {p.shape}, got "
                             f"{np.shape(resonance)}")
    if field not in ("off", "on"):
        raise ParameterError(f"field must be 'off' or 'on', got {field!r}")
    pos = make_dims([("Y", "m", np.arange(rows)), ("X", "m", np.arange(cols))])
    spec = make_dims([("Cycle", "", [cycle]), ("DC_Offset", "V", dc),
                      ("Field", "", [0 if field == "off" else 1])])
    with new_h5_file(path) as f:
        write_attrs(f, {"data_type": "BEPSData", "translator": "pycroscopy_bevae.io.pzt",
                        "converter_version": __version__})
        meas = f.create_group("Measurement_000")
        write_attrs(meas, {"grid_num_rows": rows, "grid_num_cols": cols,
                           "VS_steps_per_full_cycle": int(dc.size)})
        grp = f.create_group(PROJECTION_GROUP)
        write_attrs(grp, {"tool": "converted", "per": "position", "sign": "positive",
                          **(attrs or {})})
        d = write_main(grp, p, "Piezoresponse", "Piezoresponse", units[0], pos, spec)
        if resonance is not None:
            anc = {"inds": f[d.attrs["Position_Indices"]], "vals": f[d.attrs["Position_Values"]]}
            spc = {"inds": f[d.attrs["Spectroscopic_Indices"]],
                   "vals": f[d.attrs["Spectroscopic_Values"]]}
            write_main(grp, np.asarray(resonance, dtype=float), "Resonance",
                       "Resonance Frequency", units[1], anc, spc)
    return path


def convert_pzt_benchmark(folder: str | os.PathLike, path: str | os.PathLike,
                          physical_units: bool = True, overwrite: bool = False) -> str:
    """Convert the PZT benchmark arrays of ``folder`` into a USID file.

    Parameters
    ----------
    folder : path
        Folder with ``pizoresponse.npy``, ``resonance.npy``, ``voltage.npy``
        (``../shared/data/pzt_beps``).
    path : path
        File to write.
    physical_units : bool
        Undo the global z-score with the documented approximate factors
        (piezoresponse in a.u., resonance in Hz); otherwise keep z-scores.
        Global scaling in the learning processes gives back the z-scores either way.
    overwrite : bool
        Replace an existing file.

    Returns
    -------
    str
        The path written.
    """
    arr = load_pzt_arrays(folder)
    p, r = arr.piezoresponse, arr.resonance
    units = ("z-score", "z-score")
    if physical_units:
        cp, cr = PZT_UNITS["Piezoresponse"], PZT_UNITS["Resonance"]
        p = p * cp["scale"] + cp["offset"]
        r = r * cr["scale"] + cr["offset"]
        units = (cp["units"], cr["units"])
    attrs = {
        "source": "PbZr0.2Ti0.8O3 BEPS benchmark (Agar et al., Adv. Mater. 2018; Nat. Commun. "
                  "2019), Zenodo 10.5281/zenodo.1482091, CC-BY 4.0",
        "preprocessing": "reference pipeline: NaN interpolation, Savitzky-Golay (7, 3) outlier "
                         "removal of 3 points per loop, global z-score; resonance limited to "
                         "1300-1340 kHz",
        "physical_units": bool(physical_units),
        "measurement": "second cycle, off-field (remanent)",
    }
    return write_projected_loops(path, p, arr.voltage, arr.grid_shape, resonance=r, units=units,
                                 cycle=1, field="off", attrs=attrs, overwrite=overwrite)
