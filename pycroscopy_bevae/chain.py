"""The whole analysis of a translated BEPS file in one call: raw band-excitation response
-> SHO fit -> loop projection -> loop fit -> dictionary learning -> beta-VAE -> report.

Every stage is a ``pyUSID.Process`` writing into the file, so a second call finds each
stage's results (identical parameters) instead of recomputing them, and an interrupted
call resumes where it stopped. The defaults are those of the stage-by-stage commands
(``fit-sho``, ``project``, ``fit-loops``, ``dictionary``, ``train``, ``report``), which
therefore write the same groups.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from .exceptions import BEPSFormatError

__all__ = ["STAGES", "ChainResult", "run_chain"]

logger = logging.getLogger(__name__)

#: The stages of :func:`run_chain`, in order.
STAGES = ("sho_fit", "projection", "loop_fit", "dictionary", "beta_vae", "report")


@dataclass
class ChainResult:
    """What :func:`run_chain` did.

    Attributes
    ----------
    groups : dict
        Stage -> HDF5 path of its results group (``sho_fit`` is the SHO ``Fit`` group
        used: ours, or the one found in the file).
    reused : dict
        Stage -> whether the results already existed with identical parameters.
    times : dict
        Stage -> seconds.
    report : pycroscopy_bevae.report.Report or None
        The report written (None with ``report=False``).
    """

    groups: dict = field(default_factory=dict)
    reused: dict = field(default_factory=dict)
    times: dict = field(default_factory=dict)
    report: object | None = None


def run_chain(path: str | os.PathLike, *, n_active: int | None = None, n_components: int = 5,
              seed: int = 0, preset: str = "fast", vae_params: Mapping | None = None,
              use_existing_sho_fit: bool = False, report: bool = True,
              report_dir: str | None = None, animations: bool = True,
              echo: Callable[[str], None] | None = None,
              steps: tuple[int, int] | None = None) -> ChainResult:
    """Run every stage of the analysis on a BEPS file, writing the results into it.

    Parameters
    ----------
    path : str or os.PathLike
        A USID BEPS file, as the translator writes it (``Raw_Data``), or with an SHO fit.
    n_active : int, optional
        Active latent channels of the selected beta-VAE model (default: the automatic
        rule).
    n_components : int
        Dictionary-learning components.
    seed : int
        Seed of dictionary learning, the beta-VAE and the report's folds.
    preset : {'fast', 'paper'}
        Beta-VAE preset.
    vae_params : mapping, optional
        Further :class:`~pycroscopy_bevae.BetaVAEProcess` parameters (``epochs`` ...).
    use_existing_sho_fit : bool
        Project the SHO fit already in the file (e.g. BGlib's) even when the file has
        ``Raw_Data``; by default ``Raw_Data`` is fit (:class:`SHOFitProcess`) when present,
        and an existing SHO fit is used only without it.
    report : bool
        Write the report (figures, report.html / report.md).
    report_dir : str, optional
        Report folder (default ``<file stem>_report`` beside the file).
    animations : bool
        GIF animations in the report.
    echo : callable, optional
        Called with one line per finished stage (e.g. ``print``), numbered ``[k/n]``.
    steps : (int, int), optional
        Number of the first stage and the total in those lines (default ``(1, stages)``),
        for a caller with steps of its own.

    Returns
    -------
    ChainResult

    Examples
    --------
    >>> import tempfile, os
    >>> from pycroscopy_bevae.datasets import write_synthetic_beps
    >>> path = write_synthetic_beps(os.path.join(tempfile.mkdtemp(), "s.h5"), shape=(4, 4),
    ...                             n_steps=16, raw_data=True)
    >>> res = run_chain(path, vae_params={"epochs": 2, "prime_epochs": 1, "step_epochs": 1,
    ...                 "relax_epochs": 1, "round_updates": 2}, report=False)
    ... # doctest: +SKIP
    >>> sorted(res.groups)  # doctest: +SKIP
    ['beta_vae', 'dictionary', 'loop_fit', 'projection', 'sho_fit']
    """
    import h5py

    from .io import find_sho_fit
    from .io.h5file import open_writable
    from .process import BetaVAEProcess, DictionaryLearningProcess, LoopFitProcess, LoopProjector
    from .process.sho_fit import SHOFitProcess, find_raw_data

    path = os.fspath(path)
    out = ChainResult()
    say = echo or (lambda line: logger.info("%s", line))
    first, n_stages = steps or (1, len(STAGES) - (not report))

    def stage(name: str, make: Callable, details: Callable[[h5py.Group], str] = lambda g: ""):
        t0 = time.perf_counter()
        proc = make()
        reused = bool(proc.duplicate_h5_groups)
        grp = proc.compute()
        out.times[name], out.groups[name], out.reused[name] = (time.perf_counter() - t0,
                                                               grp.name, reused)
        state = "existing results" if reused else "written"
        say(f"[{STAGES.index(name) + first}/{n_stages}] {name.replace('_', ' ')} -> {grp.name} "
            f"({state}, {out.times[name]:.1f} s){details(grp.attrs)}")
        return grp

    with open_writable(path) as f:
        raw = None
        if not use_existing_sho_fit:
            try:
                raw = find_raw_data(f)
            except BEPSFormatError:
                logger.info("no Raw_Data in '%s': using its SHO fit", path)
        if raw is not None:
            fit = stage("sho_fit", lambda: SHOFitProcess(raw), lambda a: (
                f"; median R2 {float(a['r2_median']):.4f}"))["Fit"]
        else:
            fit = find_sho_fit(f)
            out.groups["sho_fit"], out.reused["sho_fit"], out.times["sho_fit"] = (
                fit.parent.name, True, 0.0)
            say(f"[{first}/{n_stages}] sho fit -> {fit.parent.name} (found in the file)")
        proj = stage("projection", lambda: LoopProjector(fit), lambda a: (
            f"; {int(a['n_rejected_fits'])} rejected fits interpolated"))
        stage("loop_fit", lambda: LoopFitProcess(proj["Piezoresponse"]), lambda a: (
            f"; median R2 {float(a['r2_median']):.4f}"))
        stage("dictionary", lambda: DictionaryLearningProcess(
            proj, n_components=n_components, random_state=seed), lambda a: (
            f"; MSE {a['mse']:.4f}"))
        stage("beta_vae", lambda: BetaVAEProcess(
            proj, preset=preset, n_active=n_active, random_state=seed, **dict(vae_params or {})),
            lambda a: f"; MSE {a['mse']:.4f}, {a['n_active_channels']} active latent channels")
    if report:
        from .report import make_report

        t0 = time.perf_counter()
        out.report = make_report(path, report_dir, animations=animations, seed=seed)
        out.times["report"] = time.perf_counter() - t0
        say(f"[{first + STAGES.index('report')}/{n_stages}] report -> {out.report.html} "
            f"({len(out.report.figures)} figures, {out.times['report']:.0f} s)")
    return out
