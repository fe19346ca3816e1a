"""BetaVAEProcess on real HDF5 files: results, duplicates, resume, safe loading."""

from __future__ import annotations

import json
import shutil

import h5py
import numpy as np
import pytest
from pyUSID.io.hdf_utils import check_if_main

from pycroscopy_bevae import (
    BEPSFormatError,
    BetaVAEProcess,
    ParameterError,
    TrainingDivergedError,
    load_beta_vae,
)
from tests.helpers import PROJ_GROUP, TINY_VAE, file_digest, projected_map

PROJ = PROJ_GROUP
TINY = dict(TINY_VAE, epochs=4, prime_epochs=2)


@pytest.fixture(scope="module")
def _projected_master(tmp_path_factory):
    return projected_map(tmp_path_factory.mktemp("vae") / "small.h5", shape=(8, 8), seed=5)


@pytest.fixture()
def projected(_projected_master, tmp_path):
    dst = tmp_path / "small.h5"
    shutil.copy(_projected_master, dst)
    return dst


@pytest.fixture(scope="module")
def reference_run(_projected_master, tmp_path_factory):
    """An uninterrupted run, kept for comparisons."""
    path = tmp_path_factory.mktemp("ref") / "ref.h5"
    shutil.copy(_projected_master, path)
    with h5py.File(path, "r+") as f:
        grp = BetaVAEProcess(f[PROJ], **TINY).compute()
        return {k: grp[k][()] for k in ("Embedding", "Log_Variance", "Reconstruction",
                                        "Training_History", "Embedding_Snapshots")} | {
            "path": path, "group": grp.name}


def test_results_layout(reference_run):
    with h5py.File(reference_run["path"], "r") as f:
        grp = f[reference_run["group"]]
        assert grp.name.endswith("Piezoresponse-Beta_VAE_000")
        for name in ("Embedding", "Log_Variance", "Reconstruction", "Reconstruction_Error"):
            assert check_if_main(grp[name]), name
        assert grp["Embedding"].shape == (64, 3)
        assert grp["Reconstruction"].shape == (64, 192)  # 2 modalities x 96 steps
        assert grp["Training_History"].shape[0] == 4
        cols = [c.decode() if isinstance(c, bytes) else c
                for c in grp["Training_History"].attrs["columns"]]
        assert cols[:6] == ["loss", "mse", "l1", "kl", "beta", "lambda"]
        snaps = grp["Embedding_Snapshots"]
        assert snaps.shape == (3, 64, 3) and list(snaps.attrs["epochs"]) == [1, 2, 3]
        a = grp.attrs
        assert a["epochs"] == 4 and a["units"] == 4 and a["preset"] == "fast"
        assert a["scaling"] == "global" and a["stacking"] == "channels"
        assert 0 <= a["selected_snapshot"] < 3
        assert a["n_active_channels"] == len(a["Active_Channels"])
        assert a["mse"] == pytest.approx(grp["Reconstruction_Error"][()].mean())
        assert "Checkpoint" not in grp  # removed once training is complete
        cfg = json.loads(grp["Model"].attrs["config"])
        assert cfg["network"]["n_channels"] == 2 and cfg["network"]["n_steps"] == 96
        assert len(grp["Model/Snapshots"]) == 3
        # loading rebuilds the selected model exactly
        vae, scaler = load_beta_vae(grp)
        piezo = f[PROJ]["Piezoresponse"][:, 193::2]  # last cycle, off-field
        assert piezo.shape == (64, 96)
        reso = f[PROJ]["Resonance"][:, 193::2]
        X = np.stack(scaler.transform([piezo, reso]), axis=-1)
        np.testing.assert_allclose(vae.transform(X), grp["Embedding"][()], atol=1e-5)


def test_a_reload_selects_as_the_process_did(reference_run):
    """``load_beta_vae(n_active=k)`` follows the process's policy: the latest snapshot with
    k active channels, the closest count when none has exactly k."""
    with h5py.File(reference_run["path"], "r") as f:
        grp = f[reference_run["group"]]
        counts = [int(c) for c in grp["Embedding_Snapshots"].attrs["n_active"]]
        vae, _ = load_beta_vae(grp, n_active=99)
        assert vae.selected_ == max(i for i, c in enumerate(counts) if c == max(counts))
        vae, _ = load_beta_vae(grp, n_active=counts[0])
        assert vae.selected_ == max(i for i, c in enumerate(counts) if c == counts[0])
        with pytest.raises(ParameterError, match="n_active must be None or a positive "
                                                 "integer, got 0"):
            load_beta_vae(grp, n_active=0)


@pytest.mark.slow
def test_duplicate_and_reselect(projected, reference_run):
    with h5py.File(projected, "r+") as f:
        first = BetaVAEProcess(f[PROJ], **TINY).compute().name
    before = file_digest(projected)
    with h5py.File(projected, "r+") as f:
        proc = BetaVAEProcess(f[PROJ], **TINY)
        assert proc.compute().name == first
        out = proc.reselect(snapshot=0)
        assert out["snapshot"] == 0 and out["embedding"].shape == (64, 3)
        # the snapshot's latent means, in the independent axes fitted for that snapshot
        snap0, _ = load_beta_vae(f[first], snapshot=0)
        np.testing.assert_allclose(out["embedding"],
                                   snap0.rotate(reference_run["Embedding_Snapshots"][0]),
                                   atol=1e-5)
    assert file_digest(projected) == before


class _Interrupt(BetaVAEProcess):
    def _after_epoch(self, epoch, est):
        if epoch == 2:
            raise KeyboardInterrupt


@pytest.mark.slow
def test_resume_after_interruption_matches_uninterrupted(projected, reference_run):
    with h5py.File(projected, "r+") as f:
        with pytest.raises(KeyboardInterrupt):
            _Interrupt(f[PROJ], **TINY).compute()
        grp = f[PROJ + "/Piezoresponse-Beta_VAE_000"]
        assert grp["Checkpoint"].attrs["epoch"] == 3 and not grp["completed_positions"][()].any()
    with h5py.File(projected, "r+") as f:
        proc = BetaVAEProcess(f[PROJ], **TINY)
        assert len(proc.partial_h5_groups) == 1
        grp = proc.compute()
        assert grp.name.endswith("Beta_VAE_000")
        for k in ("Embedding", "Log_Variance", "Reconstruction", "Training_History",
                  "Embedding_Snapshots"):
            np.testing.assert_array_equal(grp[k][()], reference_run[k], err_msg=k)


def test_bad_parameters_write_nothing(projected):
    before = file_digest(projected)
    with h5py.File(projected, "r+") as f:
        with pytest.raises(ParameterError, match="unknown parameter"):
            BetaVAEProcess(f[PROJ], epoch=3)
        with pytest.raises(ParameterError, match="epochs must be"):
            BetaVAEProcess(f[PROJ], epochs=-1)
        with pytest.raises(ParameterError, match="unknown preset"):
            BetaVAEProcess(f[PROJ], preset="gigantic")
        with pytest.raises(ParameterError, match="n_active must be"):
            BetaVAEProcess(f[PROJ], n_active=-2)
        with pytest.raises(ParameterError, match="n_active must be None or a positive "
                                                 "integer, got 0"):
            BetaVAEProcess(f[PROJ], n_active=0)  # refused, not taken for 'automatic'
        with pytest.raises(ParameterError, match="cycle=4 is out of range"):
            BetaVAEProcess(f[PROJ], cycle=4)
    assert file_digest(projected) == before


def test_crafted_model_cannot_execute_code(reference_run, tmp_path):
    path = tmp_path / "crafted.h5"
    shutil.copy(reference_run["path"], path)
    with h5py.File(path, "r+") as f:
        grp = f[reference_run["group"]]
        cfg = json.loads(grp["Model"].attrs["config"])
        cfg["network"]["activation"] = "__import__('os').system('touch pwned')"
        grp["Model"].attrs["config"] = json.dumps(cfg)
        with pytest.raises(BEPSFormatError, match="'network' must have the keys"):
            load_beta_vae(grp)
        grp["Model"].attrs["config"] = "cos(1) if True else {"
        with pytest.raises(BEPSFormatError, match="not valid JSON"):
            load_beta_vae(grp)
    assert not (tmp_path / "pwned").exists()


@pytest.mark.slow
def test_numpy_parameters_train_and_bad_ones_write_nothing(tmp_path, _projected_master):
    import json
    import shutil

    import h5py

    from pycroscopy_bevae import BetaVAEProcess, ParameterError

    path = tmp_path / "np.h5"
    shutil.copy(_projected_master, path)
    with h5py.File(path, "r+") as f:
        proj = f[PROJ]
        before = set(proj)
        for bad in (dict(random_state="abc"), dict(random_state=-1), dict(strategy=5),
                    dict(learning_rate=True), dict(beta_start=float("inf"))):
            with pytest.raises(ParameterError, match=next(iter(bad))):
                BetaVAEProcess(proj, progress=False, **bad)
        assert set(proj) == before  # refused before the first byte
        kw = {k: v for k, v in TINY.items() if k not in ("progress", "checkpoint_every")}
        grp = BetaVAEProcess(proj, progress=False, checkpoint_every=np.int64(1),
                             **{**kw, "epochs": np.int64(2), "batch_size": np.int32(16),
                                "learning_rate": np.float32(1e-3)}).compute()
        config = json.loads(grp["Model"].attrs["config"])
        assert config["params"]["epochs"] == 2 and grp.attrs["epochs"] == 2


class _Poison(BetaVAEProcess):
    """Turns the weights into NaN after epoch 2 (its snapshot and checkpoint are written):
    epoch 3's loss is then NaN, as after a blown-up optimiser step."""

    def _after_epoch(self, epoch, est):
        if epoch == 2:
            est.model_.set_weight_arrays({k: v * np.nan for k, v in
                                          est.model_.get_weight_arrays().items()})


@pytest.mark.slow
def test_a_diverged_training_stops_clearly_and_keeps_the_last_good_snapshot(projected):
    before = file_digest(projected)
    with h5py.File(projected, "r+") as f:
        proc = _Poison(f[PROJ], **TINY)
        with pytest.raises(TrainingDivergedError, match=r"the loss of epoch 3 is not finite "
                           r"\(loss nan.*beta 0\.01.*back at snapshot 1 \(epoch 2.*smaller "
                           "learning_rate") as info:
            proc.compute()
        assert info.value.epoch == 3 and info.value.snapshot == 1
        vae = proc.vae
        assert vae.selected_ == 1 and vae.snapshots_[1].epoch == 2
        good = vae.snapshots_[1].weights
        assert all(np.isfinite(w).all() for w in good.values())
        for k, w in vae.model_.get_weight_arrays().items():
            np.testing.assert_array_equal(w, good[k], err_msg=k)
        assert np.isfinite(vae.transform(np.zeros((2, 96, 2), "float32"))).all()
        grp = f[PROJ + "/Piezoresponse-Beta_VAE_000"]
        # nothing of the NaN epoch was stored: its snapshots and checkpoint end at epoch 2
        assert sorted(grp["Model/Snapshots"]) == ["0000", "0001"]
        assert grp["Checkpoint"].attrs["epoch"] == 3
        stored = []
        grp["Checkpoint/Weights"].visititems(
            lambda name, obj: stored.append(obj[()]) if isinstance(obj, h5py.Dataset) else None)
        assert len(stored) == len(good) and all(np.isfinite(w).all() for w in stored)
        assert not grp["completed_positions"][()].any()
    after = file_digest(projected)
    assert {k: after.get(k) for k in before} == before  # every earlier object unchanged
