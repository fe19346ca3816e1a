"""Finding the results groups the processes wrote into a file, finished or not.

The one place that knows how a results group is recognised (its name,
``<source>-<Tool>_NNN``, or its ``tool`` attribute) and whether it is finished
(issue 25's rule: every ``completed_positions`` flag set, see
:func:`~pycroscopy_bevae.io.provenance.group_status`). ``info``, the command
line's defaults and the report all ask it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import h5py

from .provenance import group_status

__all__ = ["KINDS", "ResultsGroup", "scan_results", "find_results", "result_kind"]

#: Tool name in a results group's name -> the kind of result it holds.
KINDS = {"Loop_Projection": "projection", "Dictionary_Learning": "dictionary",
         "Beta_VAE": "beta_vae", "Loop_Fit": "loop_fit"}

_KIND_NAME = {kind: re.compile(rf"(^|-){tool}_\d+$") for tool, kind in KINDS.items()}


def result_kind(name: str) -> str | None:
    """The kind (a value of :data:`KINDS`) of a results group from its name, else None.

    Examples
    --------
    >>> result_kind("/Measurement_000/Fit-Loop_Projection_000")
    'projection'
    >>> result_kind("Piezoresponse-Beta_VAE_001"), result_kind("Raw_Data-SHO_Fit_000")
    ('beta_vae', None)
    """
    leaf = name.rsplit("/", 1)[-1]
    for kind, pattern in _KIND_NAME.items():
        if pattern.search(leaf):
            return kind
    return None


@dataclass(frozen=True)
class ResultsGroup:
    """One results group of a file.

    Attributes
    ----------
    path : str
        HDF5 path of the group.
    kind : str or None
        What it holds (a value of :data:`KINDS`), None for other tools (an SHO fit).
    tool : str or None
        Its ``tool`` attribute, None where it has none.
    status : tuple of int or None
        ``(done, total)`` positions (:func:`~pycroscopy_bevae.io.provenance.group_status`);
        None for a group without ``completed_positions``.
    """

    path: str
    kind: str | None
    tool: str | None
    status: tuple[int, int] | None

    @property
    def complete(self) -> bool:
        """Whether every position was computed (a group without flags is not complete)."""
        return self.status is not None and self.status[0] == self.status[1]


def scan_results(h5: h5py.File | h5py.Group) -> list[ResultsGroup]:
    """Every results group under ``h5`` (recursively, in file order), finished or not.

    A group counts when its name marks a known kind or it has a ``tool`` attribute.

    Examples
    --------
    >>> import numpy as np
    >>> with h5py.File("r.h5", "w", driver="core", backing_store=False) as f:
    ...     grp = f.create_group("Fit-Loop_Projection_000")  # an interrupted run
    ...     grp["completed_positions"] = np.array([1, 1, 0], dtype=np.uint8)
    ...     [(g.path, g.kind, g.status, g.complete) for g in scan_results(f)]
    [('/Fit-Loop_Projection_000', 'projection', (2, 3), False)]
    """
    found: list[ResultsGroup] = []

    def _visit(name: str, obj) -> None:
        if not isinstance(obj, h5py.Group):
            return
        kind, tool = result_kind(name), obj.attrs.get("tool")
        if kind is None and tool is None:
            return
        found.append(ResultsGroup(obj.name, kind, None if tool is None else str(tool),
                                  group_status(obj)))

    h5.visititems(_visit)
    return found


def find_results(h5: h5py.File | h5py.Group, complete_only: bool = True) -> dict[str, list[str]]:
    """Find the results groups of this package in a file, by kind.

    Parameters
    ----------
    h5 : h5py.File or h5py.Group
        Where to search (recursively).
    complete_only : bool
        Skip groups whose ``completed_positions`` are not all set (interrupted runs).

    Returns
    -------
    dict
        ``{'projection': [...], 'dictionary': [...], 'beta_vae': [...], 'loop_fit': [...]}``:
        HDF5 paths in sorted order (the last one of each kind is the latest).

    Examples
    --------
    >>> import os, tempfile
    >>> from pycroscopy_bevae import LoopProjector, write_synthetic_beps
    >>> path = write_synthetic_beps(os.path.join(tempfile.mkdtemp(), "s.h5"), shape=(4, 4))
    >>> with h5py.File(path, "r+") as f:
    ...     _ = LoopProjector(f, progress=False).compute()
    ...     found = find_results(f)
    >>> [p.rsplit("/", 1)[-1] for p in found["projection"]], found["beta_vae"]
    (['Fit-Loop_Projection_000'], [])
    """
    found: dict[str, list[str]] = {k: [] for k in KINDS.values()}
    for grp in scan_results(h5):
        if grp.kind is not None and (grp.complete or not complete_only):
            found[grp.kind].append(grp.path)
    for paths in found.values():
        paths.sort()
    return found
