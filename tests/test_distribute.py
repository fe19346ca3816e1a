"""Training under tf.distribute (issue 6): real MirroredStrategy replicas on two logical
CPU devices, the one-replica path equal to no strategy, the GPU fast-path check, mixed
precision, and clear errors for bad settings."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest

from pycroscopy_bevae import BetaVAEProcess, LoopProjector
from pycroscopy_bevae.datasets import write_synthetic_beps
from pycroscopy_bevae.exceptions import DataQualityWarning, ParameterError
from pycroscopy_bevae.models import BetaVAE, resolve_strategy
from tests.helpers import PROJ_GROUP

pytestmark = pytest.mark.slow  # child processes with several virtual devices
CHILD = Path(__file__).with_name("_distributed_run.py")
PROJ = PROJ_GROUP


def _sine_set(n: int = 128) -> np.ndarray:
    rng = np.random.default_rng(0)
    t = np.linspace(0, 6, 20)
    return (np.sin(t)[None] * rng.uniform(-1, 1, (n, 1))
            + 0.05 * rng.normal(size=(n, 20))).astype("float32")


@pytest.fixture(scope="module")
def distributed(tmp_path_factory) -> dict:
    d = tmp_path_factory.mktemp("distribute")
    path = write_synthetic_beps(d / "s.h5", shape=(5, 4), seed=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataQualityWarning)
        with h5py.File(path, "r+") as f:
            LoopProjector(f, progress=False).compute()
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3",
               PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    proc = subprocess.run([sys.executable, str(CHILD), str(path), PROJ], capture_output=True,
                          text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_two_replicas_train_one_mirrored_model(distributed):
    two = distributed["two"]
    assert distributed["logical_cpus"] == 2
    assert two["replicas"] == 2
    assert two["copies"] == 2 and two["copies_equal"]  # one model, kept in sync
    assert distributed["two_changed"]  # the replicas drew their own noise: another run
    # the validation metrics are aggregated over the replicas correctly: the last one is
    # the deterministic MSE of the final model on the same data (not half or twice it)
    assert two["val_mse"][-1] == pytest.approx(two["last_epoch_score"], rel=1e-4)
    assert two["mse"][-1] < 0.75 * two["mse"][0]  # it learns (single device: 0.53x)
    # and as well as a single device on the same schedule
    assert two["score"] == pytest.approx(distributed["none"]["score"], rel=0.25)
    assert two["snapshots"] == distributed["none"]["snapshots"] == 3
    # every batch of every epoch was a training step: 5 epochs x 256 / 64 (Keras peeks at
    # a batch of the dataset under a strategy; the pipeline restarts for the training)
    assert two["steps"] == distributed["none"]["steps"] == 5 * 4
    assert distributed["one"]["steps"] == 20


def test_one_replica_is_the_plain_run(distributed):
    # the per-replica loss scaling and noise are no-ops for one replica: exactly the run
    # without a strategy
    assert distributed["one"]["replicas"] == 1
    assert distributed["one_equals_none"]
    assert distributed["one"]["mse"] == distributed["none"]["mse"]


def test_mirrored_by_name_uses_every_device(distributed):
    # 'mirrored' = MirroredStrategy over every visible device: here the two logical CPUs,
    # the devices of the two-replica run trained above
    by_name = distributed["mirrored"]
    assert by_name["replicas"] == 2
    assert by_name["devices"] == by_name["two_devices"]
    assert len(set(by_name["devices"])) == 2


def test_process_records_the_strategy(distributed):
    proc = distributed["process"]
    assert proc["strategy"] == "MirroredStrategy"
    assert proc["complete"] and proc["finite"]
    assert proc["group"].endswith("Beta_VAE_000")


def test_bad_strategy_is_refused_before_any_write(tmp_path):
    path = Path(write_synthetic_beps(tmp_path / "s.h5", shape=(4, 3), seed=1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataQualityWarning)
        with h5py.File(path, "r+") as f:
            LoopProjector(f, progress=False).compute()
    before = path.read_bytes()
    with h5py.File(path, "r+") as f, pytest.raises(ParameterError, match="strategy must be"):
        BetaVAEProcess(f[PROJ], strategy="horovod", epochs=1)
    assert path.read_bytes() == before
    with pytest.raises(ParameterError, match="got int"):
        resolve_strategy(3)
    assert resolve_strategy(None) is None


MIXED_KW = dict(units=8, embedding_dim=4, latent_dim=3, epochs=4, prime_epochs=3,
                round_updates=0, relax_epochs=0, beta_growth=1.0, n_blocks=1,
                step_epochs=1, beta_start=0.01, batch_size=32, random_state=0,
                validation_fraction=0)  # every position: one selection rule, one data


@pytest.fixture(scope="module")
def float32_run() -> BetaVAE:
    """The float32 reference of the mixed-precision runs (trained once for both)."""
    return BetaVAE(**MIXED_KW).fit(_sine_set(), progress=False)


@pytest.mark.parametrize("precision", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_trains_like_float32(precision, float32_run):
    X, kw, ref = _sine_set(), MIXED_KW, float32_run
    mixed = BetaVAE(precision=precision, **kw).fit(X, progress=False)
    lstm = mixed.model_.encoder.get_layer("enc_block0_bilstm0")
    assert lstm.compute_dtype == precision.split("_")[1]
    assert mixed.model_.encoder.get_layer("z_mean").compute_dtype == "float32"
    assert mixed.model_.decoder.get_layer("reconstruction").compute_dtype == "float32"
    assert (type(mixed.model_.optimizer).__name__ == "LossScaleOptimizer") == \
        (precision == "mixed_float16")
    # the loss is not hurt beyond the rounding of the lower precision
    assert mixed.score_mse(X) == pytest.approx(ref.score_mse(X), rel=0.05)
    assert mixed.get_config()["params"]["precision"] == precision
    # reloaded (float32 inference) it gives the same reconstruction to bf16/fp16 rounding
    again = BetaVAE.from_config(mixed.get_config(), mixed.model_.get_weight_arrays())
    assert again.score_mse(X) == pytest.approx(mixed.score_mse(X), rel=0.02)


def test_bad_precision_is_refused():
    with pytest.raises(ParameterError, match="precision must be one of"):
        BetaVAE(precision="float16").resolved_params()


def test_lstm_kernel_is_read_from_the_graph():
    vae = BetaVAE(units=4, embedding_dim=4, latent_dim=3, epochs=1, prime_epochs=1,
                  batch_size=32, round_updates=0, relax_epochs=0,
                  beta_growth=1.0).fit(_sine_set(64), progress=False)
    import tensorflow as tf

    expected = "cudnn" if tf.config.list_logical_devices("GPU") else "generic"
    assert vae.lstm_implementation() == expected
