"""TensorFlow set-up for reproducible runs, and a record of what was in force.

Every place of this package that needs TensorFlow gets it through :func:`tensorflow`,
which imports it and, once per process, applies the settings of
:func:`configure_tensorflow` (by default: op determinism on, one intra-op thread).

Why one intra-op thread: on a CPU, TensorFlow's oneDNN kernels split a matrix product
over the threads of the intra-op pool, but run it on one thread when the calling thread
is itself a worker of that pool, which depends on how the scheduler happened to run
the previous operations. The two splits round differently, so a run on a busy machine
can end one float32 unit in the last place (ulp) away from the same run on an idle one,
and the beta-VAE schedule's pruning amplifies such differences into different selected
models. With one intra-op thread every product is computed in one order whatever the
load; the inter-op pool (TensorFlow's default size) still runs independent operations,
such as the two directions of each bidirectional LSTM, side by side. Measured cost on
2 cores: ``benchmarks/README.md`` (``bench_determinism.py``).

Thread pools can only be sized before TensorFlow's runtime starts. When it has already
started (TensorFlow used before this package in the same process) the pools stay as
they are, a warning says so, and :func:`runtime_info` records the sizes in force.

Environment variables (read when TensorFlow is first set up, unless
:func:`configure_tensorflow` was called): ``PYCROSCOPY_BEVAE_DETERMINISTIC=0`` turns the
reproducible set-up off; ``PYCROSCOPY_BEVAE_INTRA_OP_THREADS=N`` sets the intra-op pool
(0: TensorFlow's default).
"""

from __future__ import annotations

import logging
import os
import platform
import sys
import warnings

import numpy as np

from ..exceptions import ParameterError
from ..params import Either, Flag, Integer, Literal, check

__all__ = ["STRATEGIES", "check_strategy", "configure_tensorflow", "lstm_kernel",
           "resolve_strategy", "run_network", "runtime_info", "tensorflow"]

logger = logging.getLogger(__name__)

#: Accepted ``strategy`` names (or pass a ``tf.distribute.Strategy`` instance).
STRATEGIES = ("mirrored", "multiworker")

_ENV_DETERMINISTIC = "PYCROSCOPY_BEVAE_DETERMINISTIC"
_ENV_INTRA = "PYCROSCOPY_BEVAE_INTRA_OP_THREADS"

#: Requested settings (None: from the environment) and whether they have been applied.
_state: dict = {"deterministic": None, "intra_op_threads": None, "applied": False}


def configure_tensorflow(deterministic: bool = True, intra_op_threads: int | None = 1) -> None:
    """Choose how TensorFlow runs for this package (reproducibility vs speed).

    Call it before the first training or inference of the session; settings that
    TensorFlow can still take are applied at once if TensorFlow is already set up.

    Parameters
    ----------
    deterministic : bool
        Bit-reproducible training and inference for a seed on one machine, whatever the
        load: TensorFlow op determinism, and ``intra_op_threads`` threads per operation.
        ``False`` leaves TensorFlow's defaults (faster on many-core CPUs; results may
        then differ in the last float32 bits from run to run).
    intra_op_threads : int or None
        Intra-op pool size when ``deterministic``: 1 (default) guarantees one order of
        summation; ``None`` or 0 keeps TensorFlow's default.

    Raises
    ------
    ParameterError
        For a non-boolean ``deterministic`` or a negative ``intra_op_threads``.

    Examples
    --------
    >>> configure_tensorflow(deterministic=True, intra_op_threads=1)
    """
    deterministic = check("deterministic", deterministic, Flag())
    intra_op_threads = check("intra_op_threads", intra_op_threads,
                             Either((Literal(None), Integer(low=0))))
    _state.update(deterministic=deterministic, intra_op_threads=intra_op_threads or 0,
                  applied=False)
    if "tensorflow" in sys.modules:
        tensorflow()


def _requested() -> tuple[bool, int]:
    det = _state["deterministic"]
    if det is None:
        det = os.environ.get(_ENV_DETERMINISTIC, "1").strip().lower() not in ("0", "false",
                                                                              "no", "off")
    intra = _state["intra_op_threads"]
    if intra is None:
        raw = os.environ.get(_ENV_INTRA, "1").strip()
        try:
            intra = int(raw)
        except ValueError:
            raise ParameterError(f"environment variable {_ENV_INTRA} must be an integer >= 0, "
                                 f"got {raw!r}") from None
        if intra < 0:
            raise ParameterError(f"environment variable {_ENV_INTRA} must be >= 0, got {intra}")
    return det, intra


def tensorflow():
    """TensorFlow, imported and set up once per process as :func:`configure_tensorflow` says.

    Returns
    -------
    module
        ``tensorflow``.
    """
    import tensorflow as tf

    if _state["applied"]:
        return tf
    from tensorflow.python.framework import config as tf_config

    det, intra = _requested()
    if det:
        tf.config.experimental.enable_op_determinism()
        if intra and tf.config.threading.get_intra_op_parallelism_threads() != intra:
            try:
                tf.config.threading.set_intra_op_parallelism_threads(intra)
            except RuntimeError:
                warnings.warn(
                    f"TensorFlow's runtime was started before pycroscopy_bevae could size its "
                    f"intra-op thread pool to {intra}: results may differ in the last float32 "
                    f"bits between runs on a loaded machine. Call "
                    f"pycroscopy_bevae.configure_tensorflow() (or import pycroscopy_bevae's "
                    f"models) before any other TensorFlow work for bit-reproducible runs",
                    RuntimeWarning, stacklevel=2)
    elif tf_config.is_op_determinism_enabled():
        tf_config.disable_op_determinism()
    logging.getLogger("tensorflow").addFilter(_one_trace_per_model)
    _state["applied"] = True
    return tf


def _one_trace_per_model(record: logging.LogRecord) -> bool:
    """Drop TensorFlow's "frequent retracing" warning about :func:`run_network`: it
    counts traces per source line, and each model and part is traced there once by design
    (the warning appears as soon as a session has fitted or loaded a few models)."""
    msg = record.getMessage()
    return not ("triggered tf.function retracing" in msg and "run_network" in msg)


def runtime_info() -> dict:
    """What was in force for TensorFlow work in this process (for provenance attributes).

    Returns
    -------
    dict
        ``op_determinism`` (bool), ``intra_op_threads`` and ``inter_op_threads`` (the
        configured pool sizes; 0 means TensorFlow's default, one per core),
        ``onednn`` (TensorFlow's oneDNN kernels, ``TF_ENABLE_ONEDNN_OPTS``),
        ``tensorflow`` and ``keras`` versions, ``cpu`` (processor model) and
        ``cpu_count``.

    Examples
    --------
    >>> info = runtime_info()
    >>> sorted(info)[:3]
    ['cpu', 'cpu_count', 'inter_op_threads']
    """
    tf = tensorflow()
    import keras
    from tensorflow.python.framework import config as tf_config

    onednn = os.environ.get("TF_ENABLE_ONEDNN_OPTS")
    return {"op_determinism": bool(tf_config.is_op_determinism_enabled()),
            "intra_op_threads": int(tf.config.threading.get_intra_op_parallelism_threads()),
            "inter_op_threads": int(tf.config.threading.get_inter_op_parallelism_threads()),
            "onednn": "default (on for x86 Linux)" if onednn is None else
            ("off" if onednn.strip() == "0" else "on"),
            "tensorflow": tf.__version__, "keras": keras.__version__,
            "cpu": _cpu_model(), "cpu_count": int(os.cpu_count() or 0)}


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def resolve_strategy(strategy):
    """The ``tf.distribute.Strategy`` for a :class:`BetaVAE` ``strategy`` setting.

    Parameters
    ----------
    strategy : None, {'mirrored', 'multiworker'} or tf.distribute.Strategy
        ``None``: no strategy (returns None). ``'mirrored'``: ``MirroredStrategy`` over
        the GPUs of this host (the CPU when there is none). ``'multiworker'``:
        ``MultiWorkerMirroredStrategy`` (reads ``TF_CONFIG``). An instance is returned
        as is.

    Returns
    -------
    tf.distribute.Strategy or None

    Raises
    ------
    ParameterError
        For any other value.

    Examples
    --------
    >>> resolve_strategy(None) is None
    True
    >>> resolve_strategy("mirrored").num_replicas_in_sync >= 1  # doctest: +SKIP
    True
    """
    if strategy is None:
        return None
    if isinstance(strategy, str) and strategy not in STRATEGIES:
        raise ParameterError(f"strategy must be None, one of {STRATEGIES} or a "
                             f"tf.distribute.Strategy, got {strategy!r}")
    tf = tensorflow()

    if strategy == "mirrored":
        return tf.distribute.MirroredStrategy()
    if strategy == "multiworker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    if isinstance(strategy, tf.distribute.Strategy):
        return strategy
    raise ParameterError(f"strategy must be None, one of {STRATEGIES} or a "
                         f"tf.distribute.Strategy, got {type(strategy).__name__}")


def check_strategy(strategy) -> None:
    """Refuse a ``strategy`` setting :func:`resolve_strategy` would refuse (a name is
    checked without importing TensorFlow)."""
    if isinstance(strategy, str) and strategy not in STRATEGIES:
        raise ParameterError(f"strategy must be None, one of {STRATEGIES} or a "
                             f"tf.distribute.Strategy, got {strategy!r}")
    if strategy is not None and not isinstance(strategy, str):
        resolve_strategy(strategy)  # an instance: refused here if it is not one


def run_network(model, part: str, X, cache: dict, batch_size: int = 1024) -> list:
    """Apply ``model``'s encoder or decoder (``part``) to ``X`` in batches, through one
    compiled function per part and input shape kept in ``cache`` (traced once, for any
    batch length, unlike repeated ``predict``). Returns the outputs as numpy arrays."""
    tf = tensorflow()

    shape = tuple(int(d) for d in np.shape(X)[1:])
    key = (part, id(model), shape)
    if key not in cache:
        net = getattr(model, part)
        # the batch dimension left open: one trace serves every batch length
        cache[key] = tf.function(lambda x: net(x, training=False), autograph=False,
                                 input_signature=[tf.TensorSpec((None, *shape), tf.float32)])
    fn = cache[key]
    # cast batch by batch: no float32 copy of the whole input
    outs = [fn(tf.constant(np.asarray(X[i:i + batch_size], dtype="float32")))
            for i in range(0, len(X), batch_size)]
    return [np.concatenate([np.asarray(o[j]) for o in outs]) for j in range(len(outs[0]))]


def lstm_kernel(model, cfg) -> str:
    """Which LSTM kernel ``model``'s training pass runs on this machine, read from the graph.

    Traces the encoder and decoder (sizes from ``cfg``) in training mode and inspects the
    operations: ``'cudnn'`` when every LSTM runs as the fused cuDNN kernel (``CudnnRNN*``
    ops, a GPU), ``'generic'`` when they run as a step-by-step ``While`` loop (CPU, or a
    setting cuDNN does not support), ``'mixed'`` for both. Verifies rather than assumes
    the GPU fast path (Keras silently falls back to the loop).

    Examples
    --------
    >>> from pycroscopy_bevae.models import BetaVAE
    >>> X = np.sin(np.linspace(0, 6, 20))[None, :] * np.linspace(-1, 1, 32)[:, None]
    >>> vae = BetaVAE(units=4, embedding_dim=4, latent_dim=3, epochs=1, prime_epochs=1,
    ...               round_updates=0).fit(X, progress=False)
    >>> lstm_kernel(vae.model_, vae.config_)  # on a CPU-only machine
    'generic'
    """
    tf = tensorflow()

    ops: set[str] = set()
    for part, spec in (("encoder", (None, cfg.n_steps, cfg.n_channels)),
                       ("decoder", (None, cfg.latent_dim))):
        net = getattr(model, part)
        graph = tf.function(lambda x, net=net: net(x, training=True), autograph=False
                            ).get_concrete_function(tf.TensorSpec(spec, tf.float32)
                                                    ).graph.as_graph_def()
        ops.update(n.op for n in graph.node)
        for fn in graph.library.function:
            ops.update(n.op for n in fn.node_def)
    cudnn = any(op.startswith("CudnnRNN") for op in ops)
    loop = "While" in ops or "StatelessWhile" in ops
    return "mixed" if cudnn and loop else "cudnn" if cudnn else "generic"
