"""The LSTM beta-VAE network (Keras 3 on TensorFlow).

Import this module only when a network is built: it imports TensorFlow/Keras.

Architecture (paper + reference implementation, every size configurable)::

    encoder: (T, C) -> n_blocks x [layers_per_block x (BiLSTM(units) -> ReLU)
                                   + skip (Dense projection when widths differ)
                                   -> LayerNorm -> ReLU]
             -> BiLSTM(units) final states (2 units) -> BatchNorm -> ReLU
             -> Dense(embedding_dim) + ReLU            (L1 on these activations)
             -> Dense(latent_dim) mean, Dense(latent_dim) log-variance
    decoder: z -> Dense(embedding_dim) + ReLU        (L1 on these activations)
             -> RepeatVector(T) -> BiLSTM(units) -> ReLU -> n_blocks residual blocks
             -> Dense(C) linear, per time step

The LSTMs keep the defaults (tanh / sigmoid, no recurrent dropout, no unroll) so
TensorFlow can use the fused cuDNN kernel on a GPU.

Loss = MSE + lambda * L1(embedding activations) + beta * KL(N(mu, sigma) || N(0, 1));
``beta`` and ``lambda`` are non-trainable variables that a callback changes
during training without rebuilding or recompiling the model.
"""

from __future__ import annotations

import contextlib

import keras
import numpy as np
import tensorflow as tf
from keras import layers, ops

from .network_config import NetworkConfig
from .runtime import tensorflow

tensorflow()  # the package's TensorFlow set-up before any model is built

__all__ = ["NetworkConfig", "build_encoder", "build_decoder", "BetaVAEModel", "ChannelMask",
           "ScheduleCallback", "compiled_model"]

#: Name of the encoder's channel-mask weight (absent from models stored before it existed).
MASK_WEIGHT = "channel_mask"


class ChannelMask(layers.Layer):
    """Multiplies the latent means and log-variances by a fixed 0/1 mask per channel.

    All ones while the channels are free; the relax phase sets the pruned channels to 0,
    so their means are exactly 0 and their log-variances 0 (the prior): they carry
    nothing and count as inactive.
    """

    def build(self, input_shape):
        self.mask = self.add_weight(shape=(int(input_shape[0][-1]),), initializer="ones",
                                    trainable=False, name=MASK_WEIGHT, dtype="float32")

    def call(self, inputs):
        mu, logvar = inputs
        return mu * self.mask, logvar * self.mask


def _residual_blocks(h, cfg: NetworkConfig, prefix: str, dtype: str):
    axis = 1 if cfg.layer_norm_axis == "time" else -1
    for b in range(cfg.n_blocks):
        skip = h
        for j in range(cfg.layers_per_block):
            h = layers.Bidirectional(
                layers.LSTM(cfg.units, return_sequences=True, name=f"{prefix}_b{b}_lstm{j}",
                            dtype=dtype),
                name=f"{prefix}_block{b}_bilstm{j}", dtype=dtype)(h)
            h = layers.ReLU(name=f"{prefix}_block{b}_relu{j}", dtype=dtype)(h)
        if skip.shape[-1] != h.shape[-1]:
            skip = layers.Dense(h.shape[-1], name=f"{prefix}_block{b}_skip", dtype=dtype)(skip)
        h = layers.Add(name=f"{prefix}_block{b}_add", dtype=dtype)([h, skip])
        h = layers.LayerNormalization(axis=axis, name=f"{prefix}_block{b}_norm",
                                      dtype=dtype)(h)
        h = layers.ReLU(name=f"{prefix}_block{b}_out", dtype=dtype)(h)
    return h


def build_encoder(cfg: NetworkConfig, precision: str = "float32") -> keras.Model:
    """Encoder: (T, C) -> (z_mean, z_log_var, embedding activations).

    ``precision`` is the dtype policy of the hidden layers; the outputs are float32.
    """
    x = keras.Input((cfg.n_steps, cfg.n_channels), name="spectra")
    h = _residual_blocks(x, cfg, "enc", precision)
    h = layers.Bidirectional(layers.LSTM(cfg.units, name="enc_last_lstm", dtype=precision),
                             name="enc_last", dtype=precision)(h)
    h = layers.BatchNormalization(name="enc_bn", dtype=precision)(h)
    h = layers.ReLU(name="enc_bn_relu", dtype=precision)(h)
    emb = layers.Dense(cfg.embedding_dim, activation="relu", name="enc_embedding",
                       dtype="float32")(h)
    mu = layers.Dense(cfg.latent_dim, name="z_mean", dtype="float32")(emb)
    if cfg.linear_path:
        flat = layers.Flatten(name="enc_flat", dtype="float32")(x)
        lin = layers.Dense(cfg.latent_dim, use_bias=False, name="z_mean_linear",
                           dtype="float32")(flat)
        mu = layers.Add(name="z_mean_sum", dtype="float32")([mu, lin])
    logvar = layers.Dense(cfg.latent_dim, name="z_log_var", dtype="float32")(emb)
    mu, logvar = ChannelMask(name="latent_mask", dtype="float32")([mu, logvar])
    return keras.Model(x, [mu, logvar, emb], name="encoder")


def build_decoder(cfg: NetworkConfig, precision: str = "float32") -> keras.Model:
    """Decoder: z -> (reconstruction (T, C), embedding activations).

    ``precision`` is the dtype policy of the hidden layers; the outputs are float32.
    """
    z = keras.Input((cfg.latent_dim,), name="z")
    emb = layers.Dense(cfg.embedding_dim, activation="relu", name="dec_embedding",
                       dtype="float32")(z)
    h = layers.RepeatVector(cfg.n_steps, name="dec_repeat", dtype=precision)(emb)
    h = layers.Bidirectional(layers.LSTM(cfg.units, return_sequences=True,
                                         name="dec_first_lstm", dtype=precision),
                             name="dec_first", dtype=precision)(h)
    h = layers.ReLU(name="dec_first_relu", dtype=precision)(h)
    h = _residual_blocks(h, cfg, "dec", precision)
    out = layers.Dense(cfg.n_channels, name="reconstruction", dtype="float32")(h)
    if cfg.linear_path:
        lin = layers.Dense(cfg.n_steps * cfg.n_channels, name="linear_reconstruction",
                           dtype="float32")(z)
        lin = layers.Reshape((cfg.n_steps, cfg.n_channels), name="linear_reshape",
                             dtype="float32")(lin)
        out = layers.Add(name="reconstruction_sum", dtype="float32")([out, lin])
    return keras.Model(z, [out, emb], name="decoder")


class BetaVAEModel(keras.Model):
    """Encoder + decoder trained with MSE + lambda L1 + beta KL (beta, lambda variable).

    ``precision`` ('float32', 'mixed_float16', 'mixed_bfloat16') is the Keras dtype
    policy of the hidden layers. Under a ``tf.distribute`` strategy each replica's loss
    is divided by the number of replicas before the gradients are summed across them,
    so a step equals one on the whole (global) batch.
    """

    def __init__(self, cfg: NetworkConfig, seed: int = 0, precision: str = "float32",
                 **kwargs):
        super().__init__(**kwargs)
        self.cfg = cfg
        self.encoder = build_encoder(cfg, precision)
        self.decoder = build_decoder(cfg, precision)
        self.beta = tf.Variable(0.0, trainable=False, dtype="float32", name="beta")
        self.lam = tf.Variable(0.0, trainable=False, dtype="float32", name="lambda")
        self.capacity = tf.Variable(0.0, trainable=False, dtype="float32", name="capacity")
        self.seed_gen = keras.random.SeedGenerator(seed)
        self.trackers = {k: keras.metrics.Mean(name=k) for k in ("loss", "mse", "l1", "kl")}

    @property
    def metrics(self):
        return list(self.trackers.values())

    def call(self, x, training=False):
        mu, _, _ = self.encoder(x, training=training)
        recon, _ = self.decoder(mu, training=training)
        return recon

    def _terms(self, x, training: bool, sample: bool):
        mu, logvar, a_enc = self.encoder(x, training=training)
        if sample:
            eps = self._noise(ops.shape(mu))
            # masked (frozen) channels stay exactly 0: no noise reaches the decoder
            z = mu + ops.exp(0.5 * logvar) * eps * self.channel_mask()
        else:
            z = mu
        recon, a_dec = self.decoder(z, training=training)
        mse = ops.mean(ops.square(x - recon))
        l1 = ops.mean(ops.sum(ops.abs(a_enc), axis=-1)) + ops.mean(ops.sum(ops.abs(a_dec),
                                                                             axis=-1))
        kl_el = -0.5 * (1.0 + logvar - ops.square(mu) - ops.exp(logvar))
        kl = ops.mean(kl_el) if self.cfg.kl_reduction == "mean" else \
            ops.mean(ops.sum(kl_el, axis=-1))
        loss = mse + self.lam * l1 + self.beta * ops.abs(kl - self.capacity)
        return loss, mse, l1, kl

    def channel_mask(self):
        """The encoder's 0/1 mask of the latent channels (a variable)."""
        return self.encoder.get_layer("latent_mask").mask

    def set_channel_mask(self, keep) -> None:
        """Freeze every channel not in ``keep`` (indices or a boolean array)."""
        mask = np.zeros(self.cfg.latent_dim, "float32")
        mask[np.asarray(keep)] = 1.0
        self.channel_mask().assign(mask)

    def _noise(self, shape):
        """Standard normal noise; under several replicas each draws its own (the replica
        id enters the seed), without a strategy the seed generator's stream as before."""
        ctx = tf.distribute.get_replica_context()
        if ctx is None or ctx.num_replicas_in_sync == 1:
            return keras.random.normal(shape, seed=self.seed_gen)
        seed = tf.cast(self.seed_gen.next(), tf.int64)
        seed = seed + tf.stack([tf.constant(0, tf.int64),
                                tf.cast(ctx.replica_id_in_sync_group, tf.int64) + 1])
        return tf.random.stateless_normal(shape, seed=seed, dtype=tf.float32)

    def _record(self, loss, mse, l1, kl) -> dict:
        for name, val in zip(("loss", "mse", "l1", "kl"), (loss, mse, l1, kl), strict=True):
            self.trackers[name].update_state(val)
        return {k: m.result() for k, m in self.trackers.items()}

    def train_step(self, data):
        x = data[0] if isinstance(data, tuple) else data
        with tf.GradientTape() as tape:
            loss, mse, l1, kl = self._terms(x, training=True, sample=True)
            # gradients are summed over replicas: scale each replica's share (no-op for 1);
            # then the loss scaling of mixed_float16 (no-op otherwise)
            scaled = loss / tf.distribute.get_strategy().num_replicas_in_sync
            scaled = self.optimizer.scale_loss(scaled)
        grads = tape.gradient(scaled, self.trainable_variables)
        self.optimizer.apply_gradients(zip(grads, self.trainable_variables, strict=True))
        return self._record(loss, mse, l1, kl)

    def test_step(self, data):
        x = data[0] if isinstance(data, tuple) else data
        return self._record(*self._terms(x, training=False, sample=False))

    # ---- weights as plain arrays (no pickle, no code) ------------------------------------
    def get_weight_arrays(self) -> dict[str, np.ndarray]:
        """All weights by unique path name (encoder and decoder, incl. BatchNorm statistics)."""
        return {w.path: np.asarray(w.numpy()) for w in self._weights_list()}

    def set_weight_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        """Assign weights saved by :meth:`get_weight_arrays`; names and shapes must match."""
        weights = self._weights_list()
        arrays = dict(arrays)
        for w in weights:  # stored before the mask existed: every channel free
            if w.path.endswith(MASK_WEIGHT) and w.path not in arrays:
                arrays[w.path] = np.ones(tuple(w.shape), "float32")
        missing = [w.path for w in weights if w.path not in arrays]
        if missing:
            raise KeyError(f"stored weights lack {missing[:3]} ({len(missing)} in all)")
        for w in weights:
            value = np.asarray(arrays[w.path])
            if tuple(value.shape) != tuple(w.shape):
                raise ValueError(f"weight {w.path} has shape {value.shape}, expected "
                                 f"{tuple(w.shape)}")
            w.assign(value)

    def _weights_list(self) -> list:
        return list(self.encoder.weights) + list(self.decoder.weights)


def compiled_model(cfg: NetworkConfig, seed: int, precision: str, learning_rate: float,
                   first: np.ndarray, strategy=None) -> BetaVAEModel:
    """A new model, its Adam optimiser (with loss scaling for ``mixed_float16``) compiled
    and its weights built on the batch ``first``; under ``strategy`` when one is given."""
    with strategy.scope() if strategy is not None else contextlib.nullcontext():
        # variables (weights, optimiser slots, beta, lambda) are mirrored on every replica
        model = BetaVAEModel(cfg, seed=seed, precision=precision)
        opt = keras.optimizers.Adam(learning_rate)
        if precision == "mixed_float16":
            opt = keras.optimizers.LossScaleOptimizer(opt)
        model.compile(optimizer=opt)
        model(first)  # build the weights
        # and the optimiser's slots now: created inside the first training step instead,
        # they make TensorFlow trace that step twice (a second, variable-free trace)
        model.optimizer.build(model.trainable_variables)
    return model


class ScheduleCallback(keras.callbacks.Callback):
    """Applies a regularisation schedule at the start of every epoch.

    ``schedule`` is a callable ``epoch -> ScheduleValues`` (see
    :mod:`pycroscopy_bevae.models.schedule`); beta, lambda and the capacity are the
    model's variables, the learning rate is ``base_lr * lr_scale``. ``on_values`` is
    called with ``(epoch, values)`` after they are applied (book-keeping).
    """

    def __init__(self, schedule, base_lr: float, on_values=None):
        super().__init__()
        self.schedule, self.base_lr, self.on_values = schedule, float(base_lr), on_values

    def on_epoch_begin(self, epoch, logs=None):
        v = self.schedule(epoch)
        m = self.model
        m.beta.assign(v.beta)
        m.lam.assign(v.lam)
        m.capacity.assign(v.capacity)
        opt = getattr(m.optimizer, "inner_optimizer", m.optimizer)
        opt.learning_rate.assign(self.base_lr * v.lr_scale)
        if self.on_values is not None:
            self.on_values(epoch, v)
