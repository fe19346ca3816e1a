"""Reproducible TensorFlow set-up: what is in force, what is recorded, and bit-identical
training while both cores are busy with another process."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from pycroscopy_bevae import ParameterError
from pycroscopy_bevae.models import BetaVAE, configure_tensorflow, runtime_info

SMALL = dict(preset="fast", units=8, embedding_dim=4, latent_dim=3, epochs=3, prime_epochs=1,
             round_updates=0, relax_epochs=0, beta_growth=1.0,
             step_epochs=1, beta_start=0.01, batch_size=16, random_state=4)


def _data() -> np.ndarray:
    rng = np.random.default_rng(1)
    t = np.linspace(0, 6, 40)
    return np.stack([np.sin(a * t + b) for a, b in rng.uniform(0.5, 2, (150, 2))])


def _child(code: str, **env) -> dict:
    full = {k: v for k, v in os.environ.items() if not k.startswith("PYCROSCOPY_BEVAE_")}
    full.update(env)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=full, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1]) | {"stderr": out.stderr}


def test_defaults_in_force_in_this_process():
    info = runtime_info()
    assert info["op_determinism"] is True
    assert info["intra_op_threads"] == 1
    assert info["tensorflow"] and info["keras"] and info["cpu_count"] >= 1


@pytest.mark.slow
def test_environment_turns_it_off_and_sizes_pools():
    code = ("import json; from pycroscopy_bevae.models import runtime_info; "
            "print(json.dumps(runtime_info()))")
    off = _child(code, PYCROSCOPY_BEVAE_DETERMINISTIC="0")
    assert off["op_determinism"] is False and off["intra_op_threads"] == 0
    two = _child(code, PYCROSCOPY_BEVAE_INTRA_OP_THREADS="2")
    assert two["op_determinism"] is True and two["intra_op_threads"] == 2


def test_runtime_started_elsewhere_is_reported_not_hidden():
    # TensorFlow used before the package: its pools cannot be resized any more
    code = ("import json, warnings; import tensorflow as tf; tf.constant(1.0) + 1; "
            "from pycroscopy_bevae.models import runtime_info\n"
            "with warnings.catch_warnings(record=True) as w:\n"
            "    warnings.simplefilter('always'); info = runtime_info()\n"
            "print(json.dumps(info | {'warned': [str(x.message) for x in w]}))")
    out = _child(code)
    assert out["op_determinism"] is True and out["intra_op_threads"] == 0
    assert any("intra-op thread pool" in m and "configure_tensorflow" in m
               for m in out["warned"])


def test_configure_validates():
    for bad in ("yes", 1, None):
        with pytest.raises(ParameterError, match="deterministic"):
            configure_tensorflow(deterministic=bad)
    for bad in (-1, 1.5, True, "2"):
        with pytest.raises(ParameterError, match="intra_op_threads"):
            configure_tensorflow(intra_op_threads=bad)
    configure_tensorflow()  # the defaults, as this process already runs with
    assert runtime_info()["intra_op_threads"] == 1


@pytest.mark.slow
def test_same_seed_same_bits_while_the_cores_are_busy():
    """Two trainings of one seed, the second while every core runs a busy loop in other
    processes: weights, history and latent means are bit-identical."""
    X = _data()

    def run():
        vae = BetaVAE(**SMALL).fit(X, progress=False)
        w = vae.model_.get_weight_arrays()
        return w, vae.history_, vae.transform(X)

    ref = run()
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
                for _ in range(os.cpu_count() or 2)]
    try:
        loaded = run()
    finally:
        for p in spinners:
            p.kill()
            p.wait()
    assert ref[1] == loaded[1]
    np.testing.assert_array_equal(ref[2], loaded[2])
    for k in ref[0]:
        np.testing.assert_array_equal(ref[0][k], loaded[0][k], err_msg=k)


def test_inference_traces_once_per_model_and_part_without_retracing_warnings():
    import logging

    from pycroscopy_bevae.models.runtime import run_network

    records = []
    handler = logging.Handler()
    handler.emit = records.append
    tf_logger = logging.getLogger("tensorflow")
    tf_logger.addHandler(handler)
    X = _data()[:, :, None].astype("float32")
    try:
        vae = BetaVAE(**SMALL).fit(X, progress=False)
        for n in (150, 7, 1030):  # any number of rows, batches of any length
            rows = np.resize(X, (n, *X.shape[1:]))
            mu, _ = vae.encode(rows, batch_size=64)
            assert mu.shape == (n, 3)
            assert vae.decode(vae.transform(rows)).shape == rows.shape
        compiled = vae.__dict__["_compiled"]
        assert sorted(k[0] for k in compiled) == ["decoder", "encoder"]
        assert [f.experimental_get_tracing_count() for f in compiled.values()] == [1, 1]
        # run_network itself: one function per part and input shape
        cache: dict = {}
        run_network(vae.model_, "encoder", X[:5], cache)
        run_network(vae.model_, "encoder", np.resize(X, (1500, *X.shape[1:])), cache,
                    batch_size=1024)  # batches of 1024 and 476 rows
        assert [f.experimental_get_tracing_count() for f in cache.values()] == [1]
        # models loaded again and again (a fresh function each time): TensorFlow would
        # call that frequent retracing of run_network's function
        for _ in range(8):
            run_network(vae.model_, "encoder", X[:5], {})
    finally:
        tf_logger.removeHandler(handler)
    assert not [r for r in records if "retracing" in r.getMessage()]
