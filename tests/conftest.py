"""Shared fixtures: small real synthetic BEPS files written with h5py/pyUSID."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import h5py
import matplotlib
import pytest

matplotlib.use("Agg")

from tests.helpers import PROJ_GROUP, TINY_VAE, projected_map  # noqa: E402


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


@pytest.fixture(scope="session")
def tiny_vae_run(tmp_path_factory) -> dict:
    """One tiny beta-VAE run shared by the reliability tests (training is the slow part).

    A 6 x 5 synthetic file (seed 3) is projected, then opened read-only while
    :data:`TINY_VAE` is trained on its loops with the results written to another file
    (``h5_target_group``). Returns ``source`` (path), ``source_sha`` (SHA-256 of its bytes
    before the training), ``results`` (path) and ``group`` (results group name).
    """
    from pycroscopy_bevae import BetaVAEProcess

    d = tmp_path_factory.mktemp("tiny_vae")
    src = projected_map(d / "projected.h5", shape=(6, 5), seed=3)
    sha = hashlib.sha256(src.read_bytes()).hexdigest()
    out = d / "results.h5"
    with h5py.File(src, "r") as f, h5py.File(out, "w") as o:
        name = BetaVAEProcess(f[PROJ_GROUP], h5_target_group=o, **TINY_VAE).compute().name
    return {"source": src, "source_sha": sha, "results": out, "group": name}
