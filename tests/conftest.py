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
