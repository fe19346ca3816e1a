"""Child process of tests/test_distribute.py: trains tiny beta-VAEs under tf.distribute.

The CPU is split into two logical devices before TensorFlow starts (impossible in the
test process, where TensorFlow is already initialised), so ``MirroredStrategy`` runs
two real replicas. Prints one JSON line with what the parent asserts.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import tensorflow as tf

tf.config.set_logical_device_configuration(
    tf.config.list_physical_devices("CPU")[0], [tf.config.LogicalDeviceConfiguration()] * 2)

import h5py  # noqa: E402

from pycroscopy_bevae import BetaVAEProcess  # noqa: E402
from pycroscopy_bevae.models import BetaVAE, resolve_strategy  # noqa: E402

TINY = dict(preset="fast", units=8, embedding_dim=4, latent_dim=3, epochs=5, prime_epochs=3,
            round_updates=0, relax_epochs=0, beta_growth=1.0, n_blocks=1, linear_path=False,
            step_epochs=1, beta_start=0.01, batch_size=64, random_state=0)


def main(h5_path: str, group: str) -> None:
    rng = np.random.default_rng(0)
    t = np.linspace(0, 6, 20)
    X = (np.sin(t)[None] * rng.uniform(-1, 1, (256, 1))
         + 0.05 * rng.normal(size=(256, 20))).astype("float32")
    out: dict = {"logical_cpus": len(tf.config.list_logical_devices("CPU"))}
    runs = {"none": None, "one": tf.distribute.MirroredStrategy(["/cpu:0"]),
            "two": tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])}
    # 'mirrored' by name: the default devices, i.e. both logical CPUs (no GPU here)
    by_name = resolve_strategy("mirrored")
    out["mirrored"] = {"replicas": int(by_name.num_replicas_in_sync),
                       "devices": sorted(by_name.extended.worker_devices),
                       "two_devices": sorted(runs["two"].extended.worker_devices)}
    weights = {}
    for name, strategy in runs.items():
        vae = BetaVAE(strategy=strategy, **TINY).fit(X, X_val=X, progress=False)
        weights[name] = vae.model_.get_weight_arrays()
        out[name] = {"replicas": vae.n_replicas_, "mse": vae.history_["mse"],
                     "val_mse": vae.history_["val_mse"], "score": vae.score_mse(X),
                     "snapshots": len(vae.snapshots_),
                     "steps": int(vae.model_.optimizer.iterations.numpy())}
        # the model at the end of the last epoch, every channel in use (what the last
        # val_mse measured; the fitted model is the selected snapshot, inactive channels masked)
        vae.model_.set_weight_arrays(vae.snapshots_[-1].weights)
        vae.model_.set_channel_mask(np.arange(TINY["latent_dim"]))
        out[name]["last_epoch_score"] = vae.score_mse(X)
        if name == "two":  # every replica holds the same (mirrored) weights
            kernel = vae.model_.encoder.get_layer("z_mean").kernel
            values = [np.asarray(v) for v in kernel.value.values]
            out["two"]["copies"] = len(values)
            out["two"]["copies_equal"] = all(np.array_equal(values[0], v) for v in values)
    out["one_equals_none"] = all(
        np.array_equal(weights["none"][k], weights["one"][k]) for k in weights["none"])
    out["two_changed"] = any(not np.array_equal(weights["none"][k], weights["two"][k])
                             for k in weights["none"])
    with h5py.File(h5_path, "r+") as f:
        grp = BetaVAEProcess(f[group], strategy=runs["two"], units=4, embedding_dim=4,
                             latent_dim=3, epochs=2, prime_epochs=1, step_epochs=1,
                             beta_start=0.01, batch_size=32, round_updates=0, relax_epochs=0,
                             beta_growth=1.0, progress=False).compute()
        out["process"] = {"group": grp.name, "strategy": str(grp.attrs["strategy"]),
                          "complete": bool(np.all(grp["completed_positions"][()] == 1)),
                          "finite": bool(np.isfinite(grp["Reconstruction"][()]).all())}
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
