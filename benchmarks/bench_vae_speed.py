"""beta-VAE speed: training throughput, time-to-quality and inference throughput.

Run by hand::

    python benchmarks/bench_vae_speed.py --quality [--presets fast paper] [--cap-min 15]
    python benchmarks/bench_vae_speed.py --inference [--n 20000] [--reps 3]
    python benchmarks/bench_vae_speed.py --overhead [--reps 2]
    python benchmarks/bench_vae_speed.py --tracing [--reps 3]

``--quality`` trains each preset with its own schedule and, after every epoch,
measures the deterministic reconstruction MSE (latent means) on the target set: the
toy gamut (4,096 colours, target 0.104 = the paper's beta-VAE) and the real PZT map
(3600 x 96 x 2, targets 0.0326 = the fast preset's selected model and 0.0124 =
five-atom dictionary learning on the same scaled data, issue on the beta-VAE). It
prints the training wall time (evaluation excluded) until each target is first met,
or the best MSE reached when the time cap ends the run first.

``--inference`` compares encode + decode through ``BetaVAE.encode`` / ``decode``
(one compiled function per part, batches of 1024) with the Keras peer
``model.encoder.predict`` + ``model.decoder.predict`` (same batch size), as medians
of ``--reps`` runs after a warm-up, for both presets and both data shapes.

``--overhead`` compares ``BetaVAE.fit`` (one ``model.fit`` call per epoch over a
``tf.data`` pipeline with a seeded permutation, schedule variables, snapshots) with the
plain Keras peer: the same network compiled the same way, trained by one
``model.fit(X, epochs=N, batch_size, shuffle=True)`` call (fast preset, toy set,
10 epochs without regularisation, medians of ``--reps``).

``--tracing`` measures the fixed cost of a fit that dominates small maps and the test
suite: how often TensorFlow traces the training step and the wall time of a tiny fit
(5 epochs of 256 short spectra), with the optimiser's slots built with the model (ours)
against the Keras default of creating them inside the first training step (which makes
TensorFlow trace that step a second time), medians of ``--reps``.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np

from pycroscopy_bevae.datasets import toy_gamut_set, toy_training_set
from pycroscopy_bevae.models import BetaVAE
from pycroscopy_bevae.preprocessing import LoopScaler, stack_channels

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


class _Stop(Exception):
    """Raised from the epoch callback to end a run (target met or time cap)."""


def toy_data():
    train = toy_training_set(10_000, seed=0)
    gamut = toy_gamut_set(16)
    sc = LoopScaler("step").fit(train.spectra)
    return "toy (10,000 x 25)", sc.transform(train.spectra), sc.transform(gamut.spectra), \
        [0.104]


def pzt_data():
    folder = DATA / "pzt_beps"
    if not folder.exists():
        return None
    p = np.load(folder / "pizoresponse.npy")[:, :, 0]
    r = np.load(folder / "resonance.npy")
    X = stack_channels([p, r])  # globally z-scored per modality
    return "PZT (3600 x 96 x 2)", X, X, [0.0326, 0.0124]


def time_to_quality(name, X, Xeval, targets, preset, cap_s, batch_size=None):
    """Train ``preset`` until every target is met or ``cap_s`` of training time passed."""
    vae = BetaVAE(preset=preset, batch_size=batch_size)
    reached: dict[float, tuple[int, float, float]] = {}
    clock = {"train": 0.0, "since": time.perf_counter(), "best": (np.inf, -1)}

    def on_epoch_end(epoch: int, est: BetaVAE) -> None:
        clock["train"] += time.perf_counter() - clock["since"]
        mse = est.score_mse(Xeval)
        if mse < clock["best"][0]:
            clock["best"] = (mse, epoch)
        for t in targets:
            if t not in reached and mse <= t:
                reached[t] = (epoch, clock["train"], mse)
        if (epoch + 1) % 5 == 0 or len(reached) == len(targets):
            print(f"    epoch {epoch:5d}  train {clock['train']:7.1f} s  eval MSE {mse:.4f}  "
                  f"beta {est.history_['beta'][-1]:.4f}", flush=True)
        if len(reached) == len(targets) or clock["train"] >= cap_s:
            raise _Stop
        clock["since"] = time.perf_counter()

    try:
        vae.fit(X, progress=False, on_epoch_end=on_epoch_end)
    except _Stop:
        pass
    epochs = len(vae.history_["loss"])
    rate = len(X) * epochs / clock["train"]
    batch = vae.resolved_params()["batch_size"]
    print(f"  {name}, preset {preset}, batch {batch}: {epochs} epochs in "
          f"{clock['train']:.0f} s of training "
          f"({clock['train'] / epochs:.2f} s/epoch, {rate:.0f} spectra/s); best eval MSE "
          f"{clock['best'][0]:.4f} at epoch {clock['best'][1]}")
    for t in targets:
        if t in reached:
            ep, s, mse = reached[t]
            print(f"    MSE <= {t}: reached at epoch {ep} after {s:.1f} s of training "
                  f"(MSE {mse:.4f})")
        else:
            print(f"    MSE <= {t}: not reached within {clock['train']:.0f} s "
                  f"({epochs} of {vae.resolved_params()['epochs']} epochs)")


def inference(n, reps):
    import keras

    rng = np.random.default_rng(0)
    for preset in ("fast", "paper"):
        for steps, channels in ((25, 1), (96, 2)):
            X = rng.normal(size=(n, steps, channels)).astype("float32")
            vae = BetaVAE(preset=preset, epochs=1, prime_epochs=1).fit(X[:300], progress=False)
            model = vae.model_

            def ours(vae=vae, X=X):
                mu, _ = vae.encode(X)
                return vae.decode(mu)

            def peer(model=model, X=X):
                mu = model.encoder.predict(X, batch_size=1024, verbose=0)[0]
                return model.decoder.predict(mu, batch_size=1024, verbose=0)[0]

            times = {}
            for label, fn in (("ours", ours), ("keras predict", peer)):
                out = fn()  # warm-up (tracing)
                ts = []
                for _ in range(reps):
                    t0 = time.perf_counter()
                    out = fn()
                    ts.append(time.perf_counter() - t0)
                times[label] = (float(np.median(ts)), out)
            agree = np.max(np.abs(np.asarray(times["ours"][1]).reshape(X.shape)
                                  - np.asarray(times["keras predict"][1]).reshape(X.shape)))
            t_ours, t_peer = times["ours"][0], times["keras predict"][0]
            print(f"  {preset:5s} {n} x {steps} x {channels}: ours {t_ours:.2f} s "
                  f"({n / t_ours:,.0f} spectra/s), keras predict {t_peer:.2f} s "
                  f"({n / t_peer:,.0f} spectra/s), ratio {t_peer / t_ours:.2f}x; "
                  f"max |difference| {agree:.1e}", flush=True)
            keras.backend.clear_session()


def overhead(reps: int, epochs: int = 10) -> None:
    import keras

    from pycroscopy_bevae.models.vae_network import BetaVAEModel

    _, X, _, _ = toy_data()
    X3 = X[..., None].astype("float32")
    p = BetaVAE(preset="fast").resolved_params()
    times: dict[str, list[float]] = {"ours": [], "keras": []}
    for _ in range(reps):
        vae = BetaVAE(preset="fast", epochs=epochs, prime_epochs=epochs)
        t0 = time.perf_counter()
        vae.fit(X, progress=False)
        times["ours"].append(time.perf_counter() - t0)
        keras.utils.set_random_seed(0)
        model = BetaVAEModel(vae.config_, seed=0)
        model.compile(optimizer=keras.optimizers.Adam(p["learning_rate"]))
        model(X3[:1])
        t0 = time.perf_counter()
        model.fit(X3, epochs=epochs, batch_size=p["batch_size"], shuffle=True, verbose=0)
        times["keras"].append(time.perf_counter() - t0)
        keras.backend.clear_session()
    t_ours, t_peer = (float(np.median(times[k])) for k in ("ours", "keras"))
    print(f"  training overhead, fast preset, {len(X):,} x 25, {epochs} epochs: ours "
          f"{t_ours:.1f} s (incl. 1 snapshot), keras fit {t_peer:.1f} s; ratio ours / keras "
          f"{t_ours / t_peer:.2f} (medians of {reps}); {len(X) * epochs / t_ours:,.0f} vs "
          f"{len(X) * epochs / t_peer:,.0f} spectra/s", flush=True)


def tracing(reps: int) -> None:
    import keras

    from pycroscopy_bevae.models import vae_network

    rng = np.random.default_rng(0)
    t = np.linspace(0, 6, 20)
    X = (np.sin(t)[None] * rng.uniform(-1, 1, (256, 1))
         + 0.05 * rng.normal(size=(256, 20))).astype("float32")
    kw = dict(preset="fast", units=8, embedding_dim=4, latent_dim=3, epochs=5,
              prime_epochs=3, round_updates=0, relax_epochs=0, beta_growth=1.0,
              step_epochs=1, beta_start=0.01, batch_size=64, random_state=0)
    ours = vae_network.compiled_model
    traces = {"n": 0}
    step = vae_network.BetaVAEModel.train_step

    def counted(self, data):  # Python side effect: runs once per trace
        traces["n"] += 1
        return step(self, data)

    def keras_default(cfg, seed, precision, learning_rate, first, strategy=None):
        model = vae_network.BetaVAEModel(cfg, seed=seed, precision=precision)
        model.compile(optimizer=keras.optimizers.Adam(learning_rate))
        model(first)
        return model

    vae_network.BetaVAEModel.train_step = counted
    times: dict[str, list[float]] = {"ours": [], "keras default": []}
    counts: dict[str, int] = {}
    try:
        for _ in range(reps):
            for name, build in (("ours", ours), ("keras default", keras_default)):
                vae_network.compiled_model = build
                traces["n"] = 0
                t0 = time.perf_counter()
                BetaVAE(**kw).fit(X, progress=False)
                times[name].append(time.perf_counter() - t0)
                counts[name] = traces["n"]
                keras.backend.clear_session()
    finally:
        vae_network.compiled_model = ours
        vae_network.BetaVAEModel.train_step = step
    t_ours, t_ref = (float(np.median(times[k])) for k in ("ours", "keras default"))
    print(f"  tiny fit (256 x 20, 5 epochs): ours {t_ours:.1f} s, {counts['ours']} trace(s) "
          f"of the training step; slots built in the first step {t_ref:.1f} s, "
          f"{counts['keras default']} traces; ratio {t_ref / t_ours:.2f}x "
          f"(medians of {reps})", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quality", action="store_true")
    ap.add_argument("--inference", action="store_true")
    ap.add_argument("--overhead", action="store_true")
    ap.add_argument("--tracing", action="store_true")
    ap.add_argument("--batch-size", type=int, default=None,
                    help="--quality: override the presets' batch size")
    ap.add_argument("--presets", nargs="*", default=["fast", "paper"])
    ap.add_argument("--data", nargs="*", default=["toy", "pzt"])
    ap.add_argument("--cap-min", type=float, default=15.0,
                    help="training-time cap per run, minutes")
    ap.add_argument("--n", type=int, default=20_000)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    print(f"machine: {platform.machine()} {os.cpu_count()} cores, python "
          f"{platform.python_version()}, tensorflow {tf.__version__}, GPUs {len(gpus)}")
    if args.quality:
        loaders = {"toy": toy_data, "pzt": pzt_data}
        for key in args.data:
            data = loaders[key]()
            if data is None:
                print(f"{key}: data absent; skipped")
                continue
            for preset in args.presets:
                time_to_quality(*data, preset=preset, cap_s=60 * args.cap_min,
                                batch_size=args.batch_size)
    if args.inference:
        inference(args.n, args.reps)
    if args.overhead:
        overhead(args.reps)
    if args.tracing:
        tracing(args.reps)


if __name__ == "__main__":
    main()
