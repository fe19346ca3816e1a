"""MPI: spread the position-wise numerics of a process over several ranks.

Rank 0 opens the file, reads, writes and runs the ``pyUSID.Process`` as usual; the
other ranks only compute. Each chunk of positions the process reads is split among
all ranks (``scatter``), computed, and gathered back on rank 0, which writes it.
This needs mpi4py only — no parallel HDF5 (h5py built with MPI), so it works with the
ordinary h5py wheels and leaves the file's safety guarantees (one writer, resumable
groups) as they are. What is distributed: loop projection (:class:`LoopProjector`)
and beta-VAE inference (encode + decode of every position by
:class:`BetaVAEProcess`); training stays on rank 0 (use ``strategy=`` for several
GPUs).

Use it through :func:`run_mpi`, or from the shell, where every subcommand does it
by itself when started under ``mpiexec``::

    mpiexec -n 4 pycroscopy-bevae project big_map.h5

Examples
--------
A script run as ``mpiexec -n 4 python script.py`` (rank 0 runs ``main``; with one
process, ``run_mpi`` just calls it):

>>> import h5py
>>> from pycroscopy_bevae import LoopProjector
>>> from pycroscopy_bevae.parallel import run_mpi
>>> def main(path):
...     with h5py.File(path, "r+") as f:
...         return LoopProjector(f, progress=False).compute().name
>>> run_mpi(main, "big_map.h5")  # doctest: +SKIP
'/Measurement_000/Channel_000/Raw_Data-SHO_Fit_000/Fit-Loop_Projection_000'
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

__all__ = ["MPIPool", "active_pool", "mpi_world", "run_mpi", "vae_inferrer"]

logger = logging.getLogger(__name__)

_ACTIVE: MPIPool | None = None
_STOP = "stop"


def mpi_world():
    """``mpi4py.MPI.COMM_WORLD`` when this program runs on several MPI ranks, else None.

    Returns None without importing mpi4py unless the environment says the program was
    started by an MPI launcher (``OMPI_COMM_WORLD_SIZE``, ``PMI_SIZE``,
    ``MPI_LOCALNRANKS``...), so ordinary runs never load MPI.

    Examples
    --------
    >>> mpi_world() is None  # a plain python process
    True
    """
    import os

    launched = any(k in os.environ for k in ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE",
                                              "PMIX_RANK", "MPI_LOCALNRANKS"))
    if not launched:
        return None
    try:
        from mpi4py import MPI
    except ImportError:
        logger.warning("started by an MPI launcher but mpi4py is not installed: running "
                       "on one process (pip install mpi4py)")
        return None
    comm = MPI.COMM_WORLD
    return comm if comm.Get_size() > 1 else None


class MPIPool:
    """Rank 0 hands out blocks of positions; every rank computes its share.

    Parameters
    ----------
    comm : mpi4py.MPI.Comm
        The communicator (rank 0 is the one that reads and writes).

    Examples
    --------
    See :func:`run_mpi`; processes call :meth:`map` through :func:`active_pool`.
    """

    def __init__(self, comm):
        self.comm = comm
        self.rank = comm.Get_rank()
        self.size = comm.Get_size()

    def map(self, func: Callable, block: np.ndarray, **shared) -> list:
        """Apply ``func(part, **shared)`` to ``size`` consecutive parts of ``block`` (rows),
        one per rank; returns the results in order (rank 0 only).

        ``func`` must be a module-level function (it is sent by name) and ``shared``
        plain data; both go to every rank with each call.
        """
        if self.rank != 0:
            raise RuntimeError("MPIPool.map is called on rank 0; other ranks serve()")
        parts = np.array_split(np.arange(len(block)), self.size)
        self.comm.bcast((func, shared), root=0)
        part = self.comm.scatter([block[p] for p in parts], root=0)
        mine = _apply(func, part, shared)
        results = self.comm.gather(mine, root=0)  # also after a failure: nobody waits
        if isinstance(mine, _Failed):  # rank 0's own share: the original exception
            raise mine.error
        failed = [(r, res) for r, res in enumerate(results) if isinstance(res, _Failed)]
        if failed:
            rank, res = failed[0]
            raise RuntimeError(f"MPI rank {rank} failed in {func.__name__}: {res.message}")
        return results

    def serve(self) -> None:
        """Worker loop of ranks > 0: compute each share until rank 0 is done."""
        while True:
            task = self.comm.bcast(None, root=0)
            if isinstance(task, str):  # _STOP
                return
            func, shared = task
            part = self.comm.scatter(None, root=0)
            self.comm.gather(_apply(func, part, shared), root=0)

    def stop(self) -> None:
        """Release the workers (rank 0)."""
        self.comm.bcast(_STOP, root=0)


class _Failed:
    """A worker's exception, sent back to rank 0 (which raises)."""

    def __init__(self, error: Exception):
        self.message = f"{type(error).__name__}: {error}"
        self.error = error

    def __reduce__(self):  # sent without the exception object, which may not pickle
        return (_failed_message, (self.message,))


def _failed_message(message: str) -> _Failed:
    """A worker's :class:`_Failed` as rank 0 receives it (message only)."""
    out = _Failed.__new__(_Failed)
    out.message, out.error = message, None
    return out


def _apply(func: Callable, part: np.ndarray, shared: dict):
    """``func(part, **shared)``, or a :class:`_Failed` carrying its exception: every rank
    reaches the gather that follows, so a failure cannot leave the others waiting."""
    try:
        return func(part, **shared)
    except Exception as exc:  # noqa: BLE001 - rank 0 raises it after the gather
        return _Failed(exc)


def active_pool() -> MPIPool | None:
    """The pool of the running :func:`run_mpi` on rank 0, or None (serial)."""
    return _ACTIVE


@contextlib.contextmanager
def _activated(pool: MPIPool) -> Iterator[MPIPool]:
    global _ACTIVE
    _ACTIVE = pool
    try:
        yield pool
    finally:
        _ACTIVE = None
        pool.stop()


def run_mpi(main: Callable[..., Any], *args, comm=None, **kwargs) -> Any:
    """Run ``main(*args, **kwargs)`` on rank 0 with the other ranks computing for it.

    Parameters
    ----------
    main : callable
        What rank 0 does (open the file, run processes). The processes of this package
        split their position-wise numerics over all ranks while it runs.
    comm : mpi4py.MPI.Comm, optional
        Default :func:`mpi_world`; with no MPI (or one rank) ``main`` simply runs.

    Returns
    -------
    object
        ``main``'s return value on rank 0; None on the other ranks.

    Examples
    --------
    >>> run_mpi(lambda x: x + 1, 1)  # one process: a plain call
    2
    """
    comm = mpi_world() if comm is None else comm
    if comm is None or comm.Get_size() == 1:
        return main(*args, **kwargs)
    pool = MPIPool(comm)
    if pool.rank != 0:
        pool.serve()
        return None
    logger.info("MPI: rank 0 reads and writes, %d ranks compute", pool.size)
    with _activated(pool):
        return main(*args, **kwargs)


# ---- beta-VAE inference spread over the ranks ------------------------------------------
def vae_inferrer(vae) -> Callable[[np.ndarray], tuple]:
    """A function giving the latent means, log-variances and reconstructions of a block
    of spectra with a fitted :class:`~pycroscopy_bevae.models.BetaVAE`; under
    :func:`run_mpi` each block is split over the ranks. What the ranks need (config,
    weights and a token of the weights, so that each builds the model once per selected
    snapshot) is prepared once, not per block.

    Examples
    --------
    >>> import numpy as np
    >>> from pycroscopy_bevae.models import BetaVAE
    >>> X = np.sin(np.linspace(0, 6, 20))[None, :] * np.linspace(-1, 1, 32)[:, None]
    >>> vae = BetaVAE(units=4, embedding_dim=4, latent_dim=3, epochs=1, prime_epochs=1,
    ...               round_updates=0).fit(X, progress=False)
    >>> [a.shape for a in vae_inferrer(vae)(X[:, :, None])]
    [(32, 3), (32, 3), (32, 20, 1)]
    """
    import hashlib

    pool = active_pool()
    if pool is None:
        return lambda X: _infer_block(X, vae=vae)
    weights = vae.model_.get_weight_arrays()
    shared = {"config": vae.config_json(), "weights": weights,
              "token": hashlib.sha256(b"".join(np.ascontiguousarray(w).tobytes()
                                               for _, w in sorted(weights.items()))).hexdigest()}

    def infer(X: np.ndarray) -> tuple:
        parts = pool.map(_infer_block, X, **shared)
        return tuple(np.concatenate([p[i] for p in parts]) for i in range(3))

    return infer


#: Models built by worker ranks, by weight token (one at a time).
_WORKER_MODELS: dict = {}


def _infer_block(X: np.ndarray, vae=None, config: str | None = None,
                 weights: dict | None = None, token: str | None = None):
    """Encode and decode one block (one rank's share under MPI)."""
    if vae is None:
        if token not in _WORKER_MODELS:
            import json

            from .models.vae import BetaVAE

            _WORKER_MODELS.clear()
            _WORKER_MODELS[token] = BetaVAE.from_config(json.loads(config), weights)
        vae = _WORKER_MODELS[token]
    if len(X) == 0:
        n_lat = vae.config_.latent_dim
        return np.empty((0, n_lat)), np.empty((0, n_lat)), np.empty((0, *X.shape[1:]))
    mu, logvar = vae.encode(X)
    z = vae.rotate(mu)  # the embedding's axes (independent ones with rotation='ica')
    return z, logvar, vae.decode(z)
