"""What the tests share: paths, file checksums, small real input files, one tiny beta-VAE.

Import from here (``from tests.helpers import ...``), not from other test modules; the
fixtures built on these live in ``conftest.py``.
"""

from __future__ import annotations

import hashlib
import shutil
import warnings
from pathlib import Path

import h5py
import numpy as np

from pycroscopy_bevae.io.beps import SHO_FIELDS
from pycroscopy_bevae.io.usid import make_dims, write_main

#: ``../shared/data`` beside the repository (tests that need it skip when it is absent).
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
#: Where the synthetic files keep their SHO fit and its loop projection.
FIT = "Measurement_000/Channel_000/Raw_Data-SHO_Fit_000/Fit"
PROJ_GROUP = FIT + "-Loop_Projection_000"
#: The DC steps of :func:`fit_file`'s loops.
DC = np.array([0.0, 1.0, 2.0, 1.0, 0.0, -1.0, -2.0, -1.0])


def file_digest(path: Path) -> dict:
    """Checksums of every dataset and attribute in an HDF5 file (for 'unchanged' checks)."""
    out = {}

    def _attrs(name, obj):
        for k, v in obj.attrs.items():
            arr = np.asarray(v)
            raw = repr(arr.tolist()).encode() if arr.dtype == object else arr.tobytes()
            out[f"{name}@{k}"] = hashlib.sha1(raw).hexdigest()

    with h5py.File(path, "r") as f:
        _attrs("/", f)

        def _visit(name, obj):
            _attrs(name, obj)
            if isinstance(obj, h5py.Dataset):
                arr = np.asarray(obj[()])
                raw = repr(arr.tolist()).encode() if arr.dtype == object else arr.tobytes()
                out[name] = hashlib.sha1(raw).hexdigest()
            else:
                out[name] = "group"

        f.visititems(_visit)
    return out


#: A beta-VAE small enough to train in seconds on a 2-core CPU (3 epochs, 3 snapshots).
#: Its network and schedule (what the estimator tests start from): one epoch per schedule
#: step, no relax phase, beta in even stairs from 0.01.
TINY_NET = dict(units=4, embedding_dim=4, latent_dim=3, round_updates=0, relax_epochs=0,
                beta_growth=1.0, step_epochs=1, beta_start=0.01)
TINY_VAE = dict(TINY_NET, epochs=3, prime_epochs=1, batch_size=32, random_state=0,
                progress=False, checkpoint_every=1)




def projected_map(path: Path, shape: tuple[int, int] = (6, 5), seed: int = 3,
                  **kwargs) -> Path:
    """Write a synthetic BEPS map (``write_synthetic_beps`` keywords) and project its
    loops (rejected-fit warnings silenced); returns ``path``."""
    from pycroscopy_bevae import LoopProjector
    from pycroscopy_bevae.datasets import write_synthetic_beps
    from pycroscopy_bevae.exceptions import DataQualityWarning

    write_synthetic_beps(path, shape=shape, seed=seed, **kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataQualityWarning)
        with h5py.File(path, "r+") as f:
            LoopProjector(f, progress=False).compute()
    return Path(path)


def copy_to(src: Path, dst: Path) -> Path:
    """A copy of ``src`` at ``dst`` (each test gets its own file)."""
    shutil.copy(src, dst)
    return Path(dst)


def fit_file(path, order=("Cycle", "DC_Offset", "Field"), fields=SHO_FIELDS, dtype="f4",
             n_pos=6, cycles=2, field_vals=(1, 0), with_dc=True, group="Raw_Data-SHO_Fit_000"):
    """A small USID SHO-fit file whose spectroscopic dims are stored in ``order``
    (slowest first).  Amplitude encodes (cycle, step, field) so selection can be checked:
    amplitude = 100 * cycle + 10 * field + step_index, + 1000 * position."""
    values = {"Cycle": np.arange(cycles), "DC_Offset": DC, "Field": np.array(field_vals)}
    units = {"Cycle": "", "DC_Offset": "V", "Field": ""}
    names = [n for n in order if with_dc or n != "DC_Offset"]
    dims = make_dims([(n, units[n], values[n]) for n in names])
    sizes = [len(values[n]) for n in names]
    grids = np.meshgrid(*[np.arange(s) for s in sizes], indexing="ij")
    idx = {n: g.ravel() for n, g in zip(names, grids, strict=True)}
    n_spec = int(np.prod(sizes))
    cyc = idx.get("Cycle", np.zeros(n_spec, int))
    fld = np.array(field_vals)[idx["Field"]] if "Field" in idx else np.zeros(n_spec, int)
    step = idx.get("DC_Offset", np.zeros(n_spec, int))
    code = 100 * cyc + 10 * fld + step
    dt = np.dtype([(f, dtype) for f in fields])
    data = np.zeros((n_pos, n_spec), dtype=dt)
    for f in fields:
        data[f] = 1.0
    if "Amplitude [V]" in fields:
        data["Amplitude [V]"] = code[None, :] + 1000 * np.arange(n_pos)[:, None]
    with h5py.File(path, "w") as h5:
        grp = h5.create_group(f"Measurement_000/Channel_000/{group}")
        pos = make_dims([("Y", "m", np.arange(2.0)), ("X", "m", np.arange(n_pos // 2))])
        write_main(grp, data, "Fit", "SHO", "compound", pos, dims)
    return path
