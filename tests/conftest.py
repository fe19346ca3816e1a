"""Shared fixtures: small real synthetic BEPS files written with h5py/pyUSID."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import h5py
import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def _synthetic_master(tmp_path_factory) -> Path:
    from pycroscopy_bevae.datasets import write_synthetic_beps

    path = tmp_path_factory.mktemp("master") / "synthetic.h5"
    write_synthetic_beps(path, shape=(20, 18), seed=3)
    return path


@pytest.fixture()
def beps_file(_synthetic_master, tmp_path) -> Path:
    """A fresh copy of a 20 x 18 synthetic BEPS file (seed 3) for each test."""
    dst = tmp_path / "beps.h5"
    shutil.copy(_synthetic_master, dst)
    return dst


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
TINY_VAE = dict(units=4, embedding_dim=4, latent_dim=3, epochs=3, prime_epochs=1,
                round_updates=0, relax_epochs=0, beta_growth=1.0,
                step_epochs=1, beta_start=0.01, batch_size=32, random_state=0, progress=False,
                checkpoint_every=1)
PROJ_GROUP = "Measurement_000/Channel_000/Raw_Data-SHO_Fit_000/Fit-Loop_Projection_000"


@pytest.fixture(scope="session")
def tiny_vae_run(tmp_path_factory) -> dict:
    """One tiny beta-VAE run shared by the reliability tests (training is the slow part).

    A 6 x 5 synthetic file (seed 3) is projected, then opened read-only while
    :data:`TINY_VAE` is trained on its loops with the results written to another file
    (``h5_target_group``). Returns ``source`` (path), ``source_sha`` (SHA-256 of its bytes
    before the training), ``results`` (path) and ``group`` (results group name).
    """
    import warnings

    from pycroscopy_bevae import BetaVAEProcess, LoopProjector
    from pycroscopy_bevae.datasets import write_synthetic_beps
    from pycroscopy_bevae.exceptions import DataQualityWarning

    d = tmp_path_factory.mktemp("tiny_vae")
    src = Path(write_synthetic_beps(d / "projected.h5", shape=(6, 5), seed=3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataQualityWarning)
        with h5py.File(src, "r+") as f:
            LoopProjector(f, progress=False).compute()
    sha = hashlib.sha256(src.read_bytes()).hexdigest()
    out = d / "results.h5"
    with h5py.File(src, "r") as f, h5py.File(out, "w") as o:
        name = BetaVAEProcess(f[PROJ_GROUP], h5_target_group=o, **TINY_VAE).compute().name
    return {"source": src, "source_sha": sha, "results": out, "group": name}
