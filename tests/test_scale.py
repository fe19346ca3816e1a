"""Large maps in bounded memory: the chunked / streamed / batched paths give the results of
the in-memory ones (on small maps)."""

from __future__ import annotations

import shutil

import h5py
import numpy as np
import pytest

from pycroscopy_bevae import BetaVAEProcess, LoopProjector, ParameterError
from pycroscopy_bevae.datasets import make_synthetic_beps, write_synthetic_beps
from pycroscopy_bevae.io.beps import SHO_FIELDS
from tests.helpers import FIT, PROJ_GROUP, TINY_VAE, projected_map

PROJ = PROJ_GROUP
TINY = dict(TINY_VAE, batch_size=16)  # 7 of 72 positions held out, streamed or not
RESULTS = ("Embedding", "Log_Variance", "Reconstruction", "Reconstruction_Error",
           "Training_History", "Embedding_Snapshots")


def _datasets(path) -> dict:
    out = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: out.__setitem__(name, obj[()].tobytes())
                     if isinstance(obj, h5py.Dataset) else None)
    return out


# ---- generator ------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs", [dict(shape=(7, 9), seed=2),
                                    dict(shape=(4, 5), seed=1, raw_data=True, n_steps=16,
                                         n_cycles=3, failed_fraction=0.05)])
def test_chunked_generation_equals_all_at_once(tmp_path, kwargs):
    whole = write_synthetic_beps(tmp_path / "whole.h5", chunk_positions=10**6, **kwargs)
    ref = _datasets(whole)
    for chunk in (1, 6):
        path = write_synthetic_beps(tmp_path / f"c{chunk}.h5", chunk_positions=chunk, **kwargs)
        assert _datasets(path) == ref, chunk
    # and the values are those of the in-memory generator
    mk = {k: v for k, v in kwargs.items() if k != "raw_data"}
    s = make_synthetic_beps(**mk)
    n = s.amplitude.shape[0]
    with h5py.File(whole, "r") as f:
        fit = f[FIT][()]
        for name, arr in zip(SHO_FIELDS, (s.amplitude, s.frequency, s.quality, s.phase, s.r2),
                             strict=True):
            np.testing.assert_array_equal(fit[name], arr.reshape(n, -1).astype(np.float32))
        np.testing.assert_array_equal(f["Ground_Truth/Piezoresponse"][()],
                                      s.true_piezoresponse.reshape(n, -1))
        np.testing.assert_array_equal(f["Ground_Truth/Failed_Fit"][()], s.failed.reshape(n, -1))


def test_chunk_positions_validated(tmp_path):
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ParameterError, match="chunk_positions"):
            write_synthetic_beps(tmp_path / "x.h5", shape=(3, 3), chunk_positions=bad)
    assert not (tmp_path / "x.h5").exists()


# ---- loop projection in chunks ----------------------------------------------------------
def test_projection_chunk_size_and_equality(beps_file, tmp_path):
    other = tmp_path / "other.h5"
    shutil.copy(beps_file, other)
    with h5py.File(beps_file, "r+") as f:
        proj = LoopProjector(f, progress=False)
        per_pos = f[FIT].dtype.itemsize * f[FIT].shape[1]
        # defaults: 512 MB for the source and ~8x its size of working arrays
        assert proj._max_pos_per_read == int(512 * 2**20 // (9 * per_pos))
        one = proj.compute()
        ref = {k: one[k][()] for k in ("Piezoresponse", "Resonance", "Rotation_Angle",
                                       "Rejected_Fits")}
    with h5py.File(other, "r+") as f:
        proj = LoopProjector(f, progress=False, max_mem_mb=1)  # the user's budget is kept
        assert proj._max_pos_per_read == int(2**20 // (9 * per_pos))
        assert proj._max_pos_per_read < f[FIT].shape[0] / 3  # several chunks
        many = proj.compute()
        for k, v in ref.items():
            np.testing.assert_array_equal(many[k][()], v, err_msg=k)


# ---- beta-VAE: streamed training, batched inference ----------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("fraction", [0.0, 0.2])
def test_estimator_streams_the_same_batches(fraction):
    from pycroscopy_bevae.models import BetaVAE
    from pycroscopy_bevae.models.vae import SpectraSource

    class Source(SpectraSource):
        def __init__(self, x):
            self.x, self.shape = x, x.shape

        def take(self, indices):
            return self.x[indices]

    rng = np.random.default_rng(0)
    X = (np.sin(np.linspace(0, 6, 20))[None, :, None] * rng.normal(size=(70, 1, 2))
         ).astype("float32")
    kw = {k: v for k, v in TINY.items() if k not in ("progress", "checkpoint_every")}
    kw["validation_fraction"] = fraction
    a = BetaVAE(**kw).fit(X, progress=False)
    b = BetaVAE(**kw).fit(Source(X), progress=False)
    # the same positions held out of both (14 of 70 with a split), validated per epoch
    np.testing.assert_array_equal(a.validation_index_, b.validation_index_)
    assert b.validation_index_.size == round(70 * fraction)
    assert len(b.history_.get("val_mse", [])) == (len(b.history_["loss"]) if fraction else 0)
    assert a.history_ == b.history_
    wa, wb = a.model_.get_weight_arrays(), b.model_.get_weight_arrays()
    for k in wa:
        np.testing.assert_array_equal(wa[k], wb[k], err_msg=k)
    for sa, sb in zip(a.snapshots_, b.snapshots_, strict=True):
        np.testing.assert_array_equal(sa.mu, sb.mu)
        assert sa.losses.keys() == sb.losses.keys()
        assert ("val_recon_mse" in sb.losses) == bool(fraction)
        for key in sa.losses:
            assert sa.losses[key] == pytest.approx(sb.losses[key], rel=1e-6), key


@pytest.fixture(scope="module")
def _vae_master(tmp_path_factory):
    return projected_map(tmp_path_factory.mktemp("scale") / "small.h5", shape=(8, 9), seed=5)


@pytest.fixture(scope="module")
def in_memory_run(_vae_master, tmp_path_factory):
    path = tmp_path_factory.mktemp("mem") / "mem.h5"
    shutil.copy(_vae_master, path)
    with h5py.File(path, "r+") as f:
        grp = BetaVAEProcess(f[PROJ], stream=False, **TINY).compute()
        assert "stream" not in grp.attrs  # in-memory parameters are unchanged
        return {k: grp[k][()] for k in RESULTS} | {"attrs": dict(grp.attrs)}


@pytest.fixture(scope="module")
def streamed_run(_vae_master, tmp_path_factory):
    import pycroscopy_bevae.process.vae as pv

    path = tmp_path_factory.mktemp("stream") / "stream.h5"
    shutil.copy(_vae_master, path)
    block = pv._RESULT_BLOCK
    pv._RESULT_BLOCK = 10  # results in several blocks
    try:
        with h5py.File(path, "r+") as f:
            grp = BetaVAEProcess(f[PROJ], stream=True, **TINY).compute()
            out = {k: grp[k][()] for k in RESULTS} | {"attrs": dict(grp.attrs)}
    finally:
        pv._RESULT_BLOCK = block
    return out | {"path": path}


@pytest.mark.slow
def test_streamed_process_matches_in_memory(in_memory_run, streamed_run):
    assert bool(streamed_run["attrs"]["stream"]) is True
    # the scaler differs in the last bits only; training sees the same float32 batches
    np.testing.assert_array_equal(streamed_run["Training_History"],
                                  in_memory_run["Training_History"])
    for k in ("Embedding", "Log_Variance", "Reconstruction", "Embedding_Snapshots"):
        np.testing.assert_allclose(streamed_run[k], in_memory_run[k], rtol=1e-5, atol=1e-6,
                                   err_msg=k)
    np.testing.assert_allclose(streamed_run["Reconstruction_Error"],
                               in_memory_run["Reconstruction_Error"], rtol=1e-6)
    for key in ("mse", "mse_Piezoresponse", "mse_Resonance"):
        assert streamed_run["attrs"][key] == pytest.approx(in_memory_run["attrs"][key],
                                                           rel=1e-6)


class _Interrupt(BetaVAEProcess):
    def _after_epoch(self, epoch, est):
        if epoch == 1:
            raise KeyboardInterrupt


@pytest.mark.slow
def test_streamed_run_resumes_exactly(_vae_master, streamed_run, tmp_path, monkeypatch):
    import pycroscopy_bevae.process.vae as pv

    # results in the same blocks as the uninterrupted run: a block's length is the row
    # count of the encoder's matrix products, and oneDNN rounds some rows differently for
    # other row counts (an ulp); the same computation gives the same bits
    monkeypatch.setattr(pv, "_RESULT_BLOCK", 10)
    path = tmp_path / "resume.h5"
    shutil.copy(_vae_master, path)
    with h5py.File(path, "r+") as f:
        with pytest.raises(KeyboardInterrupt):
            _Interrupt(f[PROJ], stream=True, **TINY).compute()
    with h5py.File(path, "r+") as f:
        proc = BetaVAEProcess(f[PROJ], stream=True, **TINY)
        assert len(proc.partial_h5_groups) == 1
        grp = proc.compute()
        for k in ("Embedding", "Log_Variance", "Training_History", "Embedding_Snapshots"):
            np.testing.assert_array_equal(grp[k][()], streamed_run[k], err_msg=k)
        # an in-memory run is a different computation: not taken as a duplicate
        assert BetaVAEProcess(f[PROJ], stream=False, **TINY).duplicate_h5_groups == []


@pytest.mark.slow
def test_streamed_run_holds_positions_out_and_is_no_duplicate_of_one_that_did_not(
        in_memory_run, streamed_run):
    attrs = streamed_run["attrs"]
    assert attrs["n_validation_positions"] == in_memory_run["attrs"][
        "n_validation_positions"] == 7
    assert attrs["stream_held_out"] and "stream_held_out" not in in_memory_run["attrs"]
    assert np.isfinite(attrs["selected_val_recon_mse"])
    with h5py.File(streamed_run["path"], "r+") as f:
        grp = BetaVAEProcess(f[PROJ], stream=True, **TINY).duplicate_h5_groups[0]
        # a streamed group of an earlier version, which trained on every position
        del grp.attrs["stream_held_out"]
        assert BetaVAEProcess(f[PROJ], stream=True, **TINY).duplicate_h5_groups == []
        grp.attrs["stream_held_out"] = True


def test_stream_auto_and_validation(_vae_master, monkeypatch, tmp_path):
    import pycroscopy_bevae.process.vae as pv

    path = tmp_path / "auto.h5"
    shutil.copy(_vae_master, path)
    with h5py.File(path, "r+") as f:
        assert BetaVAEProcess(f[PROJ], **TINY).stream is False  # 72 positions: in memory
        monkeypatch.setattr(pv, "_STREAM_ABOVE_MB", 0)
        assert BetaVAEProcess(f[PROJ], **TINY).stream is True
        with pytest.raises(ParameterError, match="stream must be"):
            BetaVAEProcess(f[PROJ], stream="yes", **TINY)
