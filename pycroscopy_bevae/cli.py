"""Shell entry point: ``pycroscopy-bevae demo | run | info | fit-sho | project | fit-loops |
dictionary | train | report | convert-pzt``.

Errors from bad input print one line (no traceback) and exit with status 2. Started
under ``mpiexec -n N``, every subcommand spreads loop projection and beta-VAE inference
over the N ranks (rank 0 reads and writes; see :mod:`pycroscopy_bevae.parallel`).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
import warnings
from collections.abc import Callable, Mapping, Sequence

from . import __version__
from .exceptions import BevaeError
from .parallel import run_mpi

__all__ = ["main", "build_parser"]

logger = logging.getLogger("pycroscopy_bevae.cli")


_FMT = argparse.ArgumentDefaultsHelpFormatter


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``pycroscopy-bevae`` command.

    Examples
    --------
    >>> build_parser().parse_args(["project", "data.h5", "--override"]).override
    True
    """
    parser = argparse.ArgumentParser(
        prog="pycroscopy-bevae",
        description="BEPS hysteresis analysis: loop projection, dictionary learning and an "
                    "LSTM beta-VAE, with results written into the USID HDF5 file.",
        formatter_class=_FMT,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    shared = _shared_options()
    _add_demo(sub, shared)
    _add_report(sub, shared)
    sub.add_parser("info", formatter_class=_FMT,
                   help="describe the BEPS data and results in a file"
                   ).add_argument("file", help="USID HDF5 file")
    _add_fit_sho(sub, shared)
    _add_run(sub, shared)
    _add_project(sub, shared)
    _add_fit_loops(sub, shared)
    _add_dictionary(sub, shared)
    _add_train(sub, shared)
    _add_convert_pzt(sub)
    return parser


def _shared_options() -> dict[str, argparse.ArgumentParser]:
    """Options several subcommands take, each defined once (argparse parent parsers)."""
    override = argparse.ArgumentParser(add_help=False)
    override.add_argument("--override", action="store_true",
                          help="recompute even if identical results exist (writes a new group)")
    seed = argparse.ArgumentParser(add_help=False)
    seed.add_argument("--seed", type=int, default=0,
                      help="seed of every random step (data, models, k-means, folds)")
    vae = argparse.ArgumentParser(add_help=False)
    vae.add_argument("--preset", choices=("fast", "paper"), default="fast")
    vae.add_argument("--epochs", type=int, default=None,
                     help="beta-VAE epochs (default: the preset's)")
    vae.add_argument("--n-active", type=int, default=None,
                     help="select the beta-VAE model with this many active latent channels "
                          "(default: the automatic count on held-out positions, "
                          "--param count_tolerance=...)")
    vae.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                     help="any other BetaVAE parameter, e.g. --param beta_step=0.005")
    report = argparse.ArgumentParser(add_help=False)
    report.add_argument("--no-animations", action="store_true", help="skip the GIF animations")
    return {"override": override, "seed": seed, "vae": vae, "report": report}


def _add_demo(sub, shared: dict) -> None:
    demo = sub.add_parser("demo", formatter_class=_FMT, parents=[shared["seed"]],
                          help="the full analysis on built-in data (synthetic BEPS + toy)",
                          description="Write a synthetic BEPS map with known ground truth "
                                      "and its raw band-excitation response, run the whole "
                                      "chain on it (SHO fit, loop projection, loop fit, "
                                      "dictionary learning, beta-VAE with the fast preset, "
                                      "report; see 'run'), and run the toy benchmark.")
    demo.add_argument("--out", default="demo_output", help="output folder")
    demo.add_argument("--size", type=int, default=32, help="grid is SIZE x SIZE positions")
    demo.add_argument("--epochs", type=int, default=None,
                      help="beta-VAE epochs (default: the fast preset's)")
    demo.add_argument("--batch-size", type=int, default=64, help="beta-VAE mini-batch")
    demo.add_argument("--round-updates", type=int, default=40,
                      help="optimiser updates per schedule epoch of both beta-VAEs (the fast "
                           "preset's 100 trains 2.5x longer for a slightly lower MSE)")
    demo.add_argument("--n-components", type=int, default=5,
                      help="dictionary-learning components, and the beta-VAE's active "
                           "channels (equal terms)")
    demo.add_argument("--toy-spectra", type=int, default=2000,
                      help="training spectra of the toy benchmark (0: skip it)")
    demo.add_argument("--quick", action="store_true",
                      help="smoke test: 10 x 10 map, 3 epochs, tiny toy set (minutes -> "
                           "seconds; the numbers mean nothing)")


def _add_report(sub, shared: dict) -> None:
    rep = sub.add_parser("report", formatter_class=_FMT,
                         parents=[shared["seed"], shared["report"]],
                         help="figures and a summary page for the results in a file",
                         description="Find the loop projection, dictionary-learning and "
                                     "beta-VAE results in FILE (opened read-only) and write "
                                     "all validation figures, animations and report.html / "
                                     "report.md with the comparison table.")
    rep.add_argument("file", help="USID HDF5 file with results")
    rep.add_argument("--out", default=None, help="output folder (default: <file>_report)")


def _add_fit_sho(sub, shared: dict) -> None:
    sho = sub.add_parser("fit-sho", formatter_class=_FMT, parents=[shared["override"]],
                         help="fit the SHO model to the raw band-excitation response",
                         description="Run SHOFitProcess on the Raw_Data of FILE (or --source) "
                                     "and write Raw_Data-SHO_Fit_NNN/Guess and /Fit (BGlib's "
                                     "layout) into the same file.")
    sho.add_argument("file", help="USID HDF5 file with Raw_Data, as the translator writes it")
    sho.add_argument("--source", metavar="PATH", help="raw-response dataset in the file "
                                                      "(default: the Raw_Data found)")
    sho.add_argument("--max-iter", type=int, default=100,
                     help="Levenberg-Marquardt iterations at most")


def _add_run(sub, shared: dict) -> None:
    run = sub.add_parser("run", formatter_class=_FMT,
                         parents=[shared["vae"], shared["seed"], shared["report"]],
                         help="the whole chain: SHO fit -> loops -> loop fit -> dictionary "
                              "learning -> beta-VAE -> report",
                         description="Run every stage on FILE with the defaults of the "
                                     "stage-by-stage commands (fit-sho if the file has "
                                     "Raw_Data, project, fit-loops, dictionary, train, "
                                     "report); stages already done are found, an interrupted "
                                     "run resumes.")
    run.add_argument("file", help="USID HDF5 file with Raw_Data or an SHO fit")
    run.add_argument("--n-components", type=int, default=5, help="dictionary components")
    run.add_argument("--use-existing-sho-fit", action="store_true",
                     help="project the SHO fit in the file even when it has Raw_Data")
    run.add_argument("--out", default=None, help="report folder (default: <file>_report)")


def _add_project(sub, shared: dict) -> None:
    proj = sub.add_parser("project", formatter_class=_FMT, parents=[shared["override"]],
                          help="project SHO fits to piezoresponse and resonance loops",
                          description="Run LoopProjector on the SHO fit of FILE and write "
                                      "Fit-Loop_Projection_NNN into the same file.")
    proj.add_argument("file", help="USID HDF5 file with a BGlib SHO fit")
    proj.add_argument("--per", choices=("position", "loop"), default="position",
                      help="one rotation angle per position, or per loop (as BGlib)")
    proj.add_argument("--r2-threshold", type=float, default=0.5,
                      help="reject SHO fits with a lower R2 criterion")
    proj.add_argument("--sign", choices=("positive", "negative"), default="positive",
                      help="loops correlate positively / negatively with DC bias")


def _add_fit_loops(sub, shared: dict) -> None:
    fitl = sub.add_parser("fit-loops", formatter_class=_FMT, parents=[shared["override"]],
                          help="fit the 9-parameter loop model to projected loops",
                          description="Run LoopFitProcess on a loop dataset of FILE (by "
                                      "default the Piezoresponse of the latest loop "
                                      "projection) and write <source>-Loop_Fit_NNN next to "
                                      "it: coercive voltages, amplitude, offset, slope and "
                                      "branch widths of every loop, R2 and the fitted loops.")
    fitl.add_argument("file", help="USID HDF5 file with a loop projection")
    fitl.add_argument("--source", metavar="PATH",
                      help="loop dataset in the file (default: Piezoresponse of the latest "
                           "projection)")
    fitl.add_argument("--max-iter", type=int, default=200,
                      help="Levenberg-Marquardt iterations at most")


def _add_dictionary(sub, shared: dict) -> None:
    dic = sub.add_parser("dictionary", formatter_class=_FMT,
                         parents=[shared["seed"], shared["override"]],
                         help="dictionary learning of projected loops (linear baseline)",
                         description="Run DictionaryLearningProcess on the loops of FILE (by "
                                     "default Piezoresponse + Resonance of the latest "
                                     "loop projection) and write "
                                     "<source>-Dictionary_Learning_NNN into the same file.")
    _add_loop_arguments(dic, "modalities")
    dic.add_argument("--n-components", type=int, default=5)
    dic.add_argument("--alpha", type=float, default=1.0, help="sparsity (lambda)")
    dic.add_argument("--transform", default="omp",
                     choices=("omp", "lasso_lars", "lasso_cd", "lars", "threshold", "fit"),
                     help="sparse coding of the reconstruction")
    dic.add_argument("--method", choices=("batch", "minibatch"), default="batch")
    dic.add_argument("--max-iter", type=int, default=1000)
    dic.add_argument("--figures", metavar="DIR", help="also save coefficient maps, atoms and "
                                                      "the error map as PNG files here")


def _add_train(sub, shared: dict) -> None:
    train = sub.add_parser("train", formatter_class=_FMT,
                           parents=[shared["vae"], shared["seed"], shared["override"]],
                           help="train the LSTM beta-VAE on projected loops",
                           description="Run BetaVAEProcess on the loops of FILE (by default "
                                       "Piezoresponse + Resonance of the latest loop "
                                       "projection, as two channels) and write "
                                       "<source>-Beta_VAE_NNN into the same file. "
                                       "Interrupted runs resume from their last checkpoint.")
    _add_loop_arguments(train, "channels")


def _add_convert_pzt(sub) -> None:
    conv = sub.add_parser("convert-pzt", formatter_class=_FMT,
                          help="convert the PZT benchmark arrays into a USID file",
                          description="Write pizoresponse.npy / resonance.npy / voltage.npy "
                                      "of FOLDER as a USID file laid out like LoopProjector's "
                                      "output.")
    conv.add_argument("folder", help="folder with the benchmark arrays (../shared/data/pzt_beps)")
    conv.add_argument("out", help="file to write")
    conv.add_argument("--z-scores", action="store_true",
                      help="keep the z-scored values instead of approximate physical units")
    conv.add_argument("--overwrite", action="store_true")


def _add_loop_arguments(parser: argparse.ArgumentParser, what: str) -> None:
    """Input selection shared by the learning subcommands."""
    parser.add_argument("file", help="USID HDF5 file with projected loops")
    parser.add_argument("--source", action="append", metavar="DATASET",
                        help=f"HDF5 path of a loop dataset (repeat for several {what})")
    parser.add_argument("--cycle", type=int, default=None,
                        help="cycle, 0-based (default: last)")
    parser.add_argument("--field", choices=("off", "on", "both"), default="off")
    parser.add_argument("--scaling", choices=("global", "step", "balanced", "none"),
                        default="global")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status.

    Examples
    --------
    >>> main(["--version"])  # doctest: +SKIP
    pycroscopy-bevae 0.1.0
    """
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        commands = {"demo": _demo, "info": _info, "project": _project, "dictionary": _dictionary,
                    "train": _train, "report": _report, "convert-pzt": _convert_pzt,
                    "fit-loops": _fit_loops, "fit-sho": _fit_sho, "run": _run}
        with warnings.catch_warnings():
            warnings.showwarning = _one_line_warning(args.command)
            # under mpiexec: rank 0 runs the command, the other ranks compute for it
            status = run_mpi(commands[args.command], args)
        return 0 if status is None else status
    except KeyboardInterrupt:  # one line, the shell's status for SIGINT
        print(f"pycroscopy-bevae {args.command}: interrupted (what was written is kept: the "
              "same command resumes it or starts afresh)", file=sys.stderr)
        return 130
    except BevaeError as exc:
        print(f"pycroscopy-bevae {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"pycroscopy-bevae {args.command}: error: {exc}", file=sys.stderr)
        return 2


def _one_line_warning(command: str) -> Callable:
    """``warnings.showwarning`` for the shell: each warning as one line on stderr, without
    the source line that raised it (a user of the command cannot act on that); written
    above a running progress bar, not into it."""
    from tqdm import tqdm

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        text = " ".join(str(message).split())
        tqdm.write(f"pycroscopy-bevae {command}: {category.__name__}: {text}",
                   file=sys.stderr if file is None else file)
    return show


def _demo(args: argparse.Namespace) -> int:
    from .chain import run_chain
    from .datasets import write_synthetic_beps
    from .toy_benchmark import run_toy_benchmark

    size, epochs, toy = args.size, args.epochs, args.toy_spectra
    vae_kw: dict = {"batch_size": args.batch_size, "round_updates": args.round_updates}
    if args.quick:
        size, epochs, toy = 10, 3, min(toy, 300)
        vae_kw.update(prime_epochs=1, step_epochs=1, round_updates=5, relax_epochs=2)
    steps = 7 + bool(toy)
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "synthetic_beps.h5")
    t_all = time.perf_counter()
    t0 = time.perf_counter()
    write_synthetic_beps(path, shape=(size, size), seed=args.seed, overwrite=True, raw_data=True)
    print(f"[1/{steps}] synthetic BEPS map {size} x {size} with its raw response (seed "
          f"{args.seed}) -> {path} ({time.perf_counter() - t0:.1f} s)", flush=True)
    params = dict(vae_kw, **({"epochs": epochs} if epochs is not None else {}))
    # equal terms: as many active channels as dictionary-learning components
    res = run_chain(path, n_active=args.n_components, n_components=args.n_components,
                    seed=args.seed, vae_params=params, report_dir=os.path.join(args.out,
                                                                               "report"),
                    echo=lambda line: print(line, flush=True), steps=(2, steps))
    rep = res.report
    _print_table(rep.rows, ("model", "channels (active / total)", "MSE (scaled)",
                            "training (s)", "mechanism ARI", "loop-parameter R^2"))
    if toy:
        bench = run_toy_benchmark(os.path.join(args.out, "toy"), n_spectra=toy, epochs=epochs,
                                  n_gamut=4 if args.quick else 12, seed=args.seed, **vae_kw)
        print(f"[{steps}/{steps}] toy benchmark ({toy} spectra) -> {bench.markdown}", flush=True)
        _print_table(bench.rows, ("model", "active channels", "gamut MSE", "paper MSE",
                                  "RGB R^2", "training (s)"))
    print(f"Done in {time.perf_counter() - t_all:.0f} s. Report: {rep.html}  Results file: "
          f"{path}")
    return 0


def _print_table(rows: list, cols: Sequence[str]) -> None:
    def fmt(v):
        return "-" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v)

    cells = [[fmt(r[c]) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    print("      " + "  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)))
    for row in cells:
        print("      " + "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)))


def _report(args: argparse.Namespace) -> int:
    from .io import open_h5
    from .report import make_report

    with open_h5(args.file):  # existence and HDF5-ness, with clear errors
        pass
    rep = make_report(args.file, args.out, animations=not args.no_animations, seed=args.seed)
    _print_table(rep.rows, ("model", "results group", "channels (active / total)",
                            "MSE (scaled)", "training (s)"))
    print(f"report: {rep.html} ({len(rep.figures)} figures; also {rep.markdown})")
    return 0


def _info(args: argparse.Namespace) -> int:
    from .io import describe_loops, find_sho_fit, open_h5
    from .io.results import scan_results

    with open_h5(args.file) as f:
        fit = find_sho_fit(f)
        lay = describe_loops(fit)
        print(f"file: {args.file}")
        print(f"SHO fit: {fit.name}  shape {fit.shape}  dtype fields {list(fit.dtype.names)}")
        print(f"grid: {' x '.join(map(str, lay.grid_shape))} ({', '.join(lay.pos_labels)}); "
              f"{lay.n_steps} DC steps x {lay.n_cycles} cycle(s); fields: "
              f"{', '.join(lay.fields) or 'no Field dimension'}")
        print(f"DC bias: {lay.dc_values.min():.3g} .. {lay.dc_values.max():.3g} V")
        if lay.dc_units != "V":
            print(f"  (converted from the file's {lay.dc_units})")
        for grp in scan_results(f):
            if grp.tool is None:
                continue
            mark = "" if grp.status is None or grp.complete else \
                f" INCOMPLETE: {grp.status[0]} of {grp.status[1]} positions (interrupted; not " \
                "used)"
            print(f"results: {grp.path} ({grp.tool}){mark}")
    return 0


def _project(args: argparse.Namespace) -> int:
    from .io.h5file import open_writable
    from .process import LoopProjector

    with open_writable(args.file) as f:
        t0 = time.perf_counter()
        proj = LoopProjector(f, per=args.per, r2_threshold=args.r2_threshold, sign=args.sign)
        _compute_and_report(proj, args.override, t0, "{:.2f}", lambda a: (
            f", {int(a['n_rejected_fits'])} rejected fits interpolated"))
    return 0


def _fit_loops(args: argparse.Namespace) -> int:
    from .io.h5file import open_writable
    from .process import LoopFitProcess

    with open_writable(args.file) as f:
        t0 = time.perf_counter()
        dset = _loop_sources(f, [args.source])[0] if args.source else \
            f[_latest_projection(f)]["Piezoresponse"]
        proc = LoopFitProcess(dset, max_iter=args.max_iter)
        _compute_and_report(proc, args.override, t0, "{:.1f}", lambda a: (
            f"; median R2 {float(a['r2_median']):.4f}"))
    return 0


def _fit_sho(args: argparse.Namespace) -> int:
    from .io.h5file import open_writable
    from .process.sho_fit import SHOFitProcess, find_raw_data

    with open_writable(args.file) as f:
        t0 = time.perf_counter()
        raw = _loop_sources(f, [args.source])[0] if args.source else find_raw_data(f)
        proc = SHOFitProcess(raw, max_iter=args.max_iter)
        _compute_and_report(proc, args.override, t0, "{:.1f}", lambda a: (
            f"; median R2 {float(a['r2_median']):.4f}"))
    return 0


def _run(args: argparse.Namespace) -> int:
    from .chain import run_chain
    from .io import open_h5

    params = _parse_params(args.param)
    if args.epochs is not None:
        params["epochs"] = args.epochs
    with open_h5(args.file):  # existence and HDF5-ness, with clear errors
        pass
    res = run_chain(args.file, n_active=args.n_active, n_components=args.n_components,
                    seed=args.seed, preset=args.preset, vae_params=params,
                    use_existing_sho_fit=args.use_existing_sho_fit, report_dir=args.out,
                    animations=not args.no_animations, echo=lambda line: print(line, flush=True))
    _print_table(res.report.rows, ("model", "results group", "channels (active / total)",
                                   "MSE (scaled)", "training (s)"))
    return 0


def _latest_projection(f) -> str:
    """The latest complete loop projection of ``f``; unfinished ones are named, not used."""
    from .exceptions import BEPSFormatError
    from .io.results import scan_results

    groups = [g for g in scan_results(f) if g.kind == "projection"]
    found = [g.path for g in groups if g.complete]
    if not found:
        unfinished = [g.path for g in groups]
        what = (f"only unfinished ones ({', '.join(unfinished)}: interrupted "
                "runs; run 'pycroscopy-bevae project' again to finish)") if unfinished else \
            "none; run 'pycroscopy-bevae project' first"
        raise BEPSFormatError(f"no complete '*-Loop_Projection_NNN' group in '{f.filename}' "
                              f"({what}) or pass --source")
    return sorted(found)[-1]


def _dictionary(args: argparse.Namespace) -> int:
    from .io.h5file import open_writable
    from .process import DictionaryLearningProcess

    if args.figures and os.path.exists(args.figures) and not os.path.isdir(args.figures):
        from .exceptions import ParameterError

        raise ParameterError(f"--figures {args.figures!r} is an existing file; expected a "
                             "folder (created if missing)")
    with open_writable(args.file) as f:
        t0 = time.perf_counter()
        proc = DictionaryLearningProcess(
            _loop_sources(f, args.source), cycle=args.cycle, field=args.field, scaling=args.scaling,
            n_components=args.n_components, alpha=args.alpha, transform_algorithm=args.transform,
            method=args.method, max_iter=args.max_iter, random_state=args.seed)
        grp = _compute_and_report(proc, args.override, t0, "{:.1f}",
                                  lambda a: _mse(a, proc.sources.names))
        if args.figures:
            _dictionary_figures(grp, proc, args.figures)
    return 0


def _compute_and_report(proc, override: bool, t0: float, time_fmt: str,
                        details: Callable[[Mapping], str]):
    """Run a process's compute() and print, on one line, where its results are, whether
    they were written now or found with identical parameters, the time taken since
    ``t0`` and ``details(attrs)`` of the results group."""
    existed = bool(proc.duplicate_h5_groups) and not override
    grp = proc.compute(override=override)
    state = "existing results with identical parameters" if existed else "written"
    print(f"{grp.name}: {state} ({time_fmt.format(time.perf_counter() - t0)} s)"
          f"{details(grp.attrs)}")
    return grp


def _mse(attrs: Mapping, names: Sequence[str], extra: str = "") -> str:
    """``details`` of a learning process: overall and per-modality (``names``) MSE."""
    per_mod = ", ".join(f"{n} {attrs['mse_' + n]:.4f}" for n in names)
    return f"; MSE {attrs['mse']:.4f} ({per_mod}), scaled units{extra}"


def _dictionary_figures(grp, proc, folder: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .viz import plot_atoms, plot_map, plot_maps

    os.makedirs(folder, exist_ok=True)
    rows, cols = proc.sources.grid_shape if len(proc.sources.grid_shape) == 2 else \
        (proc.sources.grid_shape[0], 1)
    codes = grp["Coefficients"][()]
    fig, _ = plot_maps(codes.T.reshape(-1, rows, cols), cmap="RdBu_r",
                       suptitle="Dictionary-learning coefficients")
    fig.savefig(os.path.join(folder, "dl_coefficients.png"), dpi=100)
    fig, _ = plot_atoms(proc.sources.axis_values, grp["Dictionary"][()], proc.sources.names)
    fig.savefig(os.path.join(folder, "dl_atoms.png"), dpi=100)
    fig, _ = plot_map(grp["Reconstruction_Error"][:, 0].reshape(rows, cols), cmap="magma",
                      title="Reconstruction MSE (scaled)", vmin=0)
    fig.savefig(os.path.join(folder, "dl_error_map.png"), dpi=100)
    plt.close("all")
    print(f"figures: {folder}")


def _loop_sources(f, sources):
    from .exceptions import BEPSFormatError

    if not sources:
        return f[_latest_projection(f)]
    missing = [s for s in sources if s not in f]
    if missing:
        raise BEPSFormatError(f"'{f.filename}' has no dataset {missing[0]!r}")
    return [f[s] for s in sources]


#: Parameters that have their own option of ``train`` (given twice they would clash).
_OWN_OPTIONS = {"random_state": "--seed", "preset": "--preset", "n_active": "--n-active",
                "cycle": "--cycle", "field": "--field", "scaling": "--scaling",
                "epochs": "--epochs"}


#: BetaVAEProcess keywords that ``--param`` passes on besides the BetaVAE parameters.
_TRAIN_EXTRA = ("strategy", "stream", "checkpoint_every")


def _parse_params(items: Sequence[str]) -> dict:
    """``--param KEY=VALUE`` items of ``train``: BetaVAE parameters only."""
    import ast

    from .exceptions import ParameterError
    from .models.vae import BetaVAE

    out = {}
    for item in items:
        if "=" not in item:
            raise ParameterError(f"--param expects KEY=VALUE, got {item!r}")
        key, value = (part.strip() for part in item.split("=", 1))
        if key in _OWN_OPTIONS:
            raise ParameterError(f"--param {key}=... : use the option {_OWN_OPTIONS[key]} "
                                 "instead")
        allowed = [p for p in (*BetaVAE.parameter_names(), *_TRAIN_EXTRA)
                   if p not in _OWN_OPTIONS]
        if key not in allowed:
            raise ParameterError(f"--param {key}=... : not a BetaVAE parameter; --param takes "
                                 f"{', '.join(allowed)}")
        try:
            out[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[key] = value
    return out


def _train(args: argparse.Namespace) -> int:
    from .io.h5file import open_writable
    from .process import BetaVAEProcess

    params = _parse_params(args.param)
    if args.epochs is not None:
        params["epochs"] = args.epochs
    with open_writable(args.file) as f:
        t0 = time.perf_counter()
        proc = BetaVAEProcess(_loop_sources(f, args.source), cycle=args.cycle, field=args.field,
                              scaling=args.scaling, preset=args.preset, n_active=args.n_active,
                              random_state=args.seed, **params)
        _compute_and_report(proc, args.override, t0, "{:.0f}", lambda a: _mse(
            a, proc.sources.names, f"; {a['n_active_channels']} active latent channels "
            f"(snapshot {a['selected_snapshot']}, epoch {a['selected_epoch']}, beta "
            f"{a['selected_beta']:.4g})"))
    return 0


def _convert_pzt(args: argparse.Namespace) -> int:
    from .io.pzt import convert_pzt_benchmark

    path = convert_pzt_benchmark(args.folder, args.out, physical_units=not args.z_scores,
                                 overwrite=args.overwrite)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
