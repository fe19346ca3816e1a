"""Shared behaviour of this package's ``pyUSID.Process`` subclasses."""

from __future__ import annotations

import contextlib
import functools
import logging
import warnings
from collections.abc import Callable, Sequence

import h5py
import numpy as np
from pyUSID.io.hdf_utils import create_results_group
from pyUSID.processing import Process
from tqdm.auto import tqdm

from ..exceptions import BEPSFormatError, DataQualityWarning, ParameterError
from ..io.h5file import external_link_holder
from ..io.provenance import source_identity
from ..io.sidpy_conv import plottable_sidpy, usid_to_sidpy
from ..io.sidpy_in import usid_inputs
from ..io.space import WriteFailedError, reserved_space, room_for
from ..io.usid import package_versions, quiet_pyusid, write_attrs
from ..params import Either, Flag, Integer, Literal, Real, check_params

__all__ = ["BevaeProcess", "ChunkedProcess", "GlobalFitProcess", "clear_group", "accepts_sidpy"]

logger = logging.getLogger(__name__)


def accepts_sidpy(init: Callable) -> Callable:
    """Let a process's ``__init__`` take ``sidpy.Dataset`` input (see
    :func:`pycroscopy_bevae.io.sidpy_in.usid_inputs`): it is written into
    ``h5_target_group`` as USID first, and removed again if ``__init__`` then fails."""

    @functools.wraps(init)
    def wrapper(self, h5_main, *args, **kwargs):
        target = kwargs.get("h5_target_group")
        with usid_inputs(h5_main, target) as h5:
            init(self, h5, *args, **kwargs)
            if h5 is not h5_main and not self.duplicate_h5_groups:
                # room for the results too, while a refusal still removes the copy
                room_for(target.file.filename, self._result_bytes())

    return wrapper


class BevaeProcess(Process):
    """A ``pyUSID.processing.Process`` that is quiet, checks writability first and
    records provenance.

    Every process follows one skeleton (see the docs page "Writing a new process"):

    1. ``__init__`` checks its own parameters with :meth:`_check_parameters` (against
       :attr:`_parameter_constraints`; an estimator it wraps checks its own), before
       anything is read or written;
    2. it builds the parameter record (every value that changes the result) and calls
       :meth:`_init_process` instead of ``Process.__init__``;
    3. the results group gets the record, package versions and :meth:`_provenance`
       through :meth:`_write_provenance`, called once where the group is created
       (:meth:`ChunkedProcess._new_results_group`,
       :meth:`GlobalFitProcess._open_results_group`);
    4. :meth:`test` runs on a few positions without writing (subclasses implement
       :meth:`_test`);
    5. results are written by pyUSID's chunk hooks (:class:`ChunkedProcess`) or by
       ``_fit_and_write`` (:class:`GlobalFitProcess`); :meth:`_finalize` adds summaries.
    """

    #: Names of the main datasets this process writes (for :meth:`results_as_sidpy`).
    result_names: tuple[str, ...] = ()
    #: Datasets (one row per position) a partial results group must hold to be resumed.
    _resume_requires: tuple[str, ...] = ()
    #: The process's own parameters and what each accepts (:mod:`pycroscopy_bevae.params`).
    _parameter_constraints: dict = {}
    #: How many positions :meth:`test` draws at random when none are given.
    _test_positions: int | None = 200

    @classmethod
    def _check_parameters(cls, values: dict) -> dict:
        """``values`` checked against :attr:`_parameter_constraints` (a specific
        ``ParameterError`` naming the parameter), numpy scalars made plain values."""
        return check_params(values, cls._parameter_constraints)

    def _init_process(self, h5_main: h5py.Dataset, process_name: str, parms: dict,
                      **kwargs) -> None:
        _check_process_kwargs(kwargs)
        target = kwargs.get("h5_target_group")
        if target is None:
            # reached through an external link: results go to the file that holds the link
            target = external_link_holder(h5_main)
            if target is not None:
                logger.info("'%s' is an external link in file '%s'; results go there",
                            h5_main.name, target.file.filename)
                kwargs["h5_target_group"] = target
        dest = target if target is not None else h5_main.parent
        if dest.file.mode == "r":
            raise ParameterError(
                f"file '{dest.file.filename}' is open read-only; open it with mode 'r+' or pass "
                "h5_target_group= a group in a writable file to hold the results"
            )
        base = f"{h5_main.name.rsplit('/', 1)[-1]}-{process_name}_"
        squatters = [k for k, v in dest.items() if k.startswith(base)
                     and not isinstance(v, h5py.Group)]
        if squatters:
            raise BEPSFormatError(
                f"'{dest[squatters[0]].name}' in file '{dest.file.filename}' is not a group but "
                f"has the name of a {process_name} results group; expected only results "
                "groups there: rename or delete it, or pass h5_target_group= another group")
        # results belong to this exact input: its file, path and a digest of its values
        # and dimensions are compared by the duplicate and the resume checks
        sources = getattr(getattr(self, "sources", None), "datasets", None) or [h5_main]
        parms = {**parms, "source_identity": source_identity(sources, dest)}
        with quiet_pyusid():
            super().__init__(h5_main, process_name, parms_dict=parms, **kwargs)
        if isinstance(self, ChunkedProcess) and (self._max_pos_per_read or 0) < 1:
            raise ParameterError(
                f"max_mem_mb={kwargs.get('max_mem_mb')} and mem_multiplier="
                f"{kwargs.get('mem_multiplier')} leave room for no position of dataset "
                f"'{h5_main.name}' ({h5_main.dtype.itemsize * h5_main.shape[1]} bytes each) "
                "per chunk; expected a larger max_mem_mb or a smaller mem_multiplier")
        self.partial_h5_groups = [g for g in self.partial_h5_groups if self._resumable(g)]
        if self.duplicate_h5_groups:
            logger.info("%s with identical parameters exists: %s", process_name,
                        self.duplicate_h5_groups[-1].name)
        if self.partial_h5_groups:
            logger.info("%s partially computed in %s; compute() resumes it", process_name,
                        self.partial_h5_groups[-1].name)

    def _resumable(self, grp: h5py.Group) -> bool:
        """Whether a partial results group holds what resuming needs; warns if not."""
        n = self.h5_main.shape[0]
        bad = [name for name in self._resume_requires if not isinstance(grp.get(name), h5py.Dataset)
               or grp[name].ndim < 1 or grp[name].shape[0] != n]
        if bad:
            warnings.warn(
                f"results group '{grp.name}' in file '{grp.file.filename}' is incomplete (no "
                f"usable {', '.join(bad)}; left by a crash?): its data are not resumed nor "
                "modified, a new group is written", DataQualityWarning, stacklevel=2)
        return not bad

    def _provenance(self) -> dict:
        """Attributes of the results group besides the parameter record (hook)."""
        return {}

    def _write_provenance(self) -> None:
        """Write parameters, package versions and :meth:`_provenance` to the results group."""
        attrs = dict(self.parms_dict)
        attrs.update(package_versions())
        attrs["tool"] = type(self).__name__
        units = getattr(getattr(self, "layout", None) or getattr(self, "sources", None),
                        "dc_units", None)
        if units is not None:  # the bias was converted to volts from this unit
            attrs["bias_units_in_source"] = units
            attrs["bias_units"] = "V"
        attrs.update(self._provenance())
        write_attrs(self.h5_results_grp, attrs)

    def test(self, positions: int | Sequence[int] | None = None, seed: int = 0, *,
             n_positions: int | None = None, **options) -> dict:
        """Run on a few positions without writing anything.

        Parameters
        ----------
        positions : int, sequence of int or None
            A number of positions drawn at random (seeded by ``seed``), the position
            indices themselves, or None for the process's default.
        seed : int
            Seed of the random draw.
        n_positions : int, optional
            The earlier keyword for a number of positions (same as ``positions=``).
        **options
            Process-specific settings of the trial (e.g. ``epochs`` of the beta-VAE).

        Returns
        -------
        dict
            ``positions`` and the process's results for them (see the process).
        """
        if n_positions is not None:
            if positions is not None:
                raise ParameterError("pass either positions= or n_positions=, not both")
            positions = n_positions
        return self._test(self._test_selection(positions, seed), **options)

    def _test_selection(self, positions, seed: int) -> np.ndarray:
        """The position indices :meth:`test` runs on."""
        n = self.h5_main.shape[0]
        if positions is None:
            positions = self._test_positions
        if positions is None:  # a handful spread over the map
            return np.unique(np.linspace(0, n - 1, min(4, n)).astype(int))
        if isinstance(positions, (int, np.integer)) and not isinstance(positions, bool):
            if positions < 1:
                raise ParameterError(f"n_positions must be >= 1, got {positions}")
            rng = np.random.default_rng(seed)
            return np.sort(rng.choice(n, size=min(n, int(positions)), replace=False))
        positions = np.asarray(positions, dtype=int).ravel()
        if positions.size == 0 or positions.min() < 0 or positions.max() >= n:
            raise ParameterError(f"positions must be indices in 0..{n - 1}, got {positions}")
        return positions

    def _test(self, positions: np.ndarray, **options) -> dict:  # pragma: no cover
        raise NotImplementedError(f"{type(self).__name__} has no trial run")

    def compute(self, override: bool = False, *args, **kwargs) -> h5py.Group:
        """Compute on the whole dataset and write the results group.

        Parameters
        ----------
        override : bool
            Recompute even when a results group with identical parameters exists
            (a new ``_NNN`` group is written; existing groups are never modified).

        Returns
        -------
        h5py.Group
            The results group (existing one for identical parameters).
        """
        writes = override or not self.duplicate_h5_groups
        with self._room() if writes else contextlib.nullcontext():
            with quiet_pyusid():
                grp = super().compute(override, *args, **kwargs)
            self._finalize()
        return grp

    def _result_bytes(self) -> int:
        """Estimated size of the results' raw data (bytes), for :meth:`_room`."""
        return 0

    @contextlib.contextmanager
    def _room(self):
        """Context in which results are written: room for :meth:`_result_bytes` checked
        and reserved in the results' file first
        (:func:`~pycroscopy_bevae.io.space.reserved_space`). If a write fails for lack of
        space anyway, a results group created by this call is removed again, so the file
        keeps only what it held before (HDF5 could otherwise not open it any more)."""
        target = self._h5_target_group
        f = target.file if target is not None else self.h5_main.file
        before = {g.name for g in self.partial_h5_groups}
        try:
            with reserved_space(f, self._result_bytes(), type(self).__name__):
                yield
        except WriteFailedError as exc:
            grp = self.h5_results_grp
            if grp is not None and grp.name not in before:
                name = grp.name
                with contextlib.suppress(Exception):
                    del grp.file[name]
                with contextlib.suppress(Exception):
                    f.flush()
                msg = f"the partial results group '{name}' was removed"
            else:
                msg = "the partial results group is kept for resuming"
            raise WriteFailedError(
                f"{exc}; {msg} and the file's earlier contents are intact. Free space (or "
                "raise the file-size limit) and run the same call again") from exc.__cause__

    def _finalize(self) -> None:
        """Hook run after a successful compute (subclasses write summary attributes)."""

    def results_as_sidpy(self, plottable: bool = True) -> dict:
        """The results of the last :meth:`compute` as ``sidpy.Dataset`` objects, by name.

        Parameters
        ----------
        plottable : bool
            True (default): each result typed and arranged so that ``dset.plot()`` draws
            it (see :func:`pycroscopy_bevae.io.plottable_sidpy`: loops and
            reconstructions as spectral images with one curve per cycle / field, maps as
            images, the dictionary as a family of spectra). False: the USID N-D form,
            one sidpy dimension per USID dimension (see
            :func:`pycroscopy_bevae.io.usid_to_sidpy`).
        """
        if self.h5_results_grp is None:
            raise ParameterError("no results yet: call compute() first")
        if plottable:
            source = type(self).__name__
            return {name: plottable_sidpy(self.h5_results_grp[name], source=source)
                    for name in self.result_names if name in self.h5_results_grp}
        return {name: usid_to_sidpy(self.h5_results_grp[name]) for name in self.result_names
                if name in self.h5_results_grp}


class ChunkedProcess(BevaeProcess):
    """A process that pyUSID runs a chunk of positions at a time, with a tqdm bar over
    the positions (shown when ``self.progress``; labelled :attr:`_progress_label`)."""

    def _new_results_group(self) -> h5py.Group:
        """Create the results group (in ``h5_target_group`` if given) with its provenance;
        the first step of ``_create_results_datasets``."""
        grp = create_results_group(self.h5_main, self.process_name,
                                   h5_parent_group=self._h5_target_group)
        self.h5_results_grp = grp
        self._write_provenance()
        return grp

    _progress_label = "positions"
    progress = True
    _bar = None

    def _advance(self, n: int) -> None:
        """Count ``n`` more positions done (the bar opens with the first chunk)."""
        if self._bar is None:
            self._bar = tqdm(total=self.h5_main.shape[0], desc=self._progress_label,
                             unit="pos", disable=not self.progress, leave=False)
        self._bar.update(n)

    def _read_data_chunk(self) -> None:
        # pyUSID flushes the source's file after each chunk; results in another file
        # (h5_target_group) are flushed here too, so a hard kill keeps their progress
        grp = self.h5_results_grp
        if grp is not None and grp.file.id.fileno != self.h5_main.file.id.fileno:
            grp.file.flush()
        super()._read_data_chunk()

    def compute(self, override: bool = False, *args, **kwargs) -> h5py.Group:  # noqa: D102
        try:
            return super().compute(override, *args, **kwargs)
        finally:
            if self._bar is not None:
                self._bar.close()
                self._bar = None

    compute.__doc__ = BevaeProcess.compute.__doc__


class GlobalFitProcess(BevaeProcess):
    """A process that fits one model to all positions at once.

    pyUSID's per-chunk ``compute`` does not apply: these processes read the
    selected loops, fit, and write every result in one go. Book-keeping follows
    pyUSID so duplicate detection works: the group's ``completed_positions``
    dataset is written as zeros first and set to ones only after every result
    is written, so an interrupted run leaves a *partial* group that the next run
    with the same parameters reuses (its contents are replaced).
    """

    def _open_results_group(self, clear: bool = True) -> h5py.Group:
        """Create the results group, or reuse the last partial one with identical parameters."""
        n = self.h5_main.shape[0]
        if self.partial_h5_groups:
            grp = self.partial_h5_groups[-1]
            logger.info("reusing partially written results group %s", grp.name)
            if clear:
                clear_group(grp, keep=(self._status_dset_name,))
        else:
            with quiet_pyusid():
                grp = create_results_group(self.h5_main, self.process_name,
                                           h5_parent_group=self._h5_target_group)
        if self._status_dset_name not in grp:
            grp.create_dataset(self._status_dset_name, data=np.zeros(n, dtype=np.uint8))
        self.h5_results_grp = grp
        self._write_provenance()
        with quiet_pyusid():
            self._write_source_dset_provenance()
        grp.file.flush()  # the (partial) group is on disk before any result is written
        return grp

    def _write_shared_results(self, grp: h5py.Group, pos: dict, err, scalers) -> None:
        """What every learning process writes: per-position error, the scaler values
        (modality x step, NaN-padded), and object references to every source."""
        import numpy as np

        from ..io.usid import make_dims, write_main

        write_main(grp, np.asarray(err)[:, None], "Reconstruction_Error", "Mean squared error",
                   "scaled^2", pos, make_dims([("Error", "", [0])]), aux_spec_prefix="Error_")
        width = max(s.mean_.size for s in scalers)
        for name, attr in (("Scaler_Mean", "mean_"), ("Scaler_Std", "std_")):
            values = np.full((len(scalers), width), np.nan)
            for i, s in enumerate(scalers):
                values[i, : getattr(s, attr).size] = getattr(s, attr)
            d = grp.create_dataset(name, data=values)
            write_attrs(d, {"modalities": self.sources.names, "description":
                            "x_scaled = (x - Scaler_Mean) / Scaler_Std per modality and step "
                            "(NaN-padded when modalities differ in length)"})
        for i, d in enumerate(self.sources.datasets):
            if d.file == grp.file:  # object references cannot point into another file
                grp.attrs[f"source_{i:03d}"] = d.ref
        grp.attrs["num_source_dsets"] = len(self.sources.datasets)

    def _mark_complete(self) -> None:
        """Mark every position done, only once every result is on disk.

        The results are flushed first: the status flags are raw data that can reach the
        file before metadata does, so flagging first could leave, after a hard kill, a
        group marked complete whose datasets were never written.
        """
        grp = self.h5_results_grp
        grp.file.flush()
        grp[self._status_dset_name][...] = 1
        grp.attrs["last_pixel"] = self.h5_main.shape[0]
        grp.file.flush()

    def compute(self, override: bool = False, *args, **kwargs) -> h5py.Group:
        """Fit on all positions and write the results group.

        Parameters
        ----------
        override : bool
            Recompute even when a complete group with identical parameters exists
            (a new ``_NNN`` group is written; existing groups are never modified).

        Returns
        -------
        h5py.Group
        """
        if not override and self.duplicate_h5_groups:
            self.h5_results_grp = self.duplicate_h5_groups[-1]
            logger.info("returning existing results %s", self.h5_results_grp.name)
            return self.h5_results_grp
        if override:
            self.partial_h5_groups = []
        with self._room():
            self._fit_and_write()
            self._mark_complete()
        return self.h5_results_grp

    def _fit_and_write(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    # pyUSID hooks that do not apply to a global fit
    def _create_results_datasets(self) -> None:  # pragma: no cover
        raise NotImplementedError("global-fit processes write results in _fit_and_write")

    def _write_results_chunk(self) -> None:  # pragma: no cover
        raise NotImplementedError("global-fit processes write results in _fit_and_write")


#: pyUSID's processing keywords and what each accepts (``h5_target_group`` is checked apart;
#: pyUSID wants whole megabytes and a float multiplier of at least 1).
_PROCESS_CONSTRAINTS = {
    "cores": Either((Literal(None), Integer(low=1))),
    "max_mem_mb": Either((Literal(None), Real(low=0, low_open=True))),
    "mem_multiplier": Either((Literal(None), Real(low=0, low_open=True))),
    "verbose": Flag(),
    "lazy": Flag(),
}
#: Every keyword a process passes on to ``pyUSID.Process``.
PROCESS_KEYWORDS = ("h5_target_group", *_PROCESS_CONSTRAINTS)


def _check_process_kwargs(kwargs: dict) -> None:
    """pyUSID's ``Process`` keywords, checked before pyUSID sees them (its own errors are
    raw TypeErrors and AttributeErrors); numpy scalars become plain values in place."""
    unknown = sorted(set(kwargs) - set(PROCESS_KEYWORDS))
    if unknown:
        raise ParameterError(f"unknown parameter(s) {unknown}; the processing keywords are "
                             f"{list(PROCESS_KEYWORDS)}")
    target = kwargs.get("h5_target_group")
    if target is not None and (not isinstance(target, h5py.Group) or not target.id.valid):
        raise ParameterError(f"h5_target_group must be an h5py Group (or File) in a writable "
                             f"file that is open, got {type(target).__name__} {target!r}")
    kwargs.update(check_params({k: v for k, v in kwargs.items() if k != "h5_target_group"},
                               _PROCESS_CONSTRAINTS))
    mem, mult = kwargs.get("max_mem_mb"), kwargs.get("mem_multiplier")
    if mem is not None:
        if float(mem) != int(mem):
            raise ParameterError(f"max_mem_mb must be a whole number of megabytes, got {mem!r}")
        kwargs["max_mem_mb"] = int(mem)
    if mult is not None:
        if mult < 1:
            raise ParameterError(f"mem_multiplier must be at least 1 (the source's own bytes "
                                 f"per position), got {mult!r}")
        kwargs["mem_multiplier"] = float(mult)


def clear_group(grp: h5py.Group, keep: tuple[str, ...] = ()) -> None:
    """Delete every member of ``grp`` except ``keep``, then flush the file.

    The flush matters after a hard kill (SIGKILL, power loss): HDF5 reuses freed file
    space at once, so without it, new data could overwrite objects that the metadata
    last written to disk still points to, leaving a group that reads back garbage.
    """
    removed = False
    for key in list(grp.keys()):
        if key not in keep:
            del grp[key]
            removed = True
    if removed:
        grp.file.flush()
