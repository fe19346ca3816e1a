"""Loop fitting (9-parameter model): LoopFitProcess vs BGlib's per-loop fit and BELoopFitter.

Run by hand::

    python benchmarks/bench_loop_fit.py [--size 20] [--seed 0] [--reps 3] [--no-beloopfitter]

One synthetic map (``--size`` x ``--size`` positions x 96 steps x 2 fields x 2 cycles, no
failed fits) is projected by ``LoopProjector``; then, in this process:

1. ours: ``LoopFitProcess(Piezoresponse).compute()``, file to file (median of ``--reps``
   repetitions, each on a fresh copy of the file; the projection is timed too);
2. BGlib on the same projected loops, one loop at a time as ``BELoopFitter`` does it:
   ``generate_guess`` on the loop as acquired, then ``fit_loop`` on the DC vector and the
   loop rolled by BGlib's ``shift_vdc`` (a quarter cycle, so that the first half is the
   falling branch, fit with ``a[2]``, and the second the rising one, ``a[3]``); one run;
3. BGlib's end-to-end ``BELoopFitter`` (its own projection, cluster-tree guess and fit)
   on a copy of the file; it only takes float64 SHO fits, so when it refuses the default
   float32 file the same map is written again in float64 (same seed) for it; one run.

For each it prints the wall time (and, for the two that run in this process, the CPU
time, less sensitive to other jobs on a shared machine), loops per second, the R^2 of the
fitted loops against the ground-truth loops (median and 5th percentile, over all loops and
over the positions that switch in one step, i.e. not 'ferroelastic'), and the median
absolute error of the rising / falling coercive voltages of the last cycle's field-off loop
at those positions; then the ratios of BGlib's times to ours.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import platform
import shutil
import tempfile
import time
import warnings

import h5py
import numpy as np

from pycroscopy_bevae import LoopFitProcess, LoopProjector
from pycroscopy_bevae.datasets import write_synthetic_beps
from pycroscopy_bevae.io import describe_loops
from pycroscopy_bevae.io.usid import as_text
from pycroscopy_bevae.process.loop_projection import _loop_columns

FIT = "Measurement_000/Channel_000/Raw_Data-SHO_Fit_000/Fit"


def r2_rows(fitted: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Coefficient of determination of each row of ``fitted`` against ``truth``."""
    ss_res = np.sum((fitted - truth) ** 2, axis=-1)
    ss_tot = np.sum((truth - truth.mean(axis=-1, keepdims=True)) ** 2, axis=-1)
    return 1 - ss_res / ss_tot


def spec_rows(dset: h5py.Dataset) -> dict:
    """Spectroscopic values of a USID main dataset, by label."""
    vals = dset.file[dset.attrs["Spectroscopic_Values"]]
    return {as_text(lab): vals[i] for i, lab in enumerate(vals.attrs["labels"])}


def loop_keys(dset: h5py.Dataset, columns: np.ndarray) -> list[tuple[int, int]]:
    """(cycle, field) of the given spectroscopic columns of ``dset``."""
    sv = spec_rows(dset)
    return [(int(sv["Cycle"][c]), int(sv["Field"][c])) for c in columns]


def summary(label: str, seconds: float, r2: np.ndarray, one_step: np.ndarray,
            coercive: tuple[np.ndarray, np.ndarray], truth_vc: tuple, note: str = "") -> None:
    """Print one method's time, throughput, R^2 vs the truth and coercive-voltage errors.

    ``r2``: per loop, loops stacked loop by loop (all positions of the first loop, ...);
    ``one_step``: per position, True where the position switches in one step.
    """
    n_loops = r2.size
    ok = np.isfinite(r2)
    single = np.tile(one_step, n_loops // one_step.size)
    print(f"{label}: {seconds:.3f} s{note}, {n_loops} loops, {n_loops / seconds:,.0f} loops/s")
    for name, sel in (("all loops", ok), ("non-ferroelastic", ok & single)):
        print(f"    R^2 vs true loops, {name:16s} ({sel.sum():5d}): median {np.median(r2[sel]):.5f}"
              f", 5th percentile {np.percentile(r2[sel], 5):.5f}")
    if (~ok).any():
        print(f"    {(~ok).sum()} loops without a fit")
    err_up = np.abs(coercive[0] - truth_vc[0])[one_step]
    err_dn = np.abs(coercive[1] - truth_vc[1])[one_step]
    print(f"    coercive voltage, last cycle field-off, non-ferroelastic ({one_step.sum()} "
          f"positions): median |error| rising {np.nanmedian(err_up):.3f} V, falling "
          f"{np.nanmedian(err_dn):.3f} V")


def run_ours(src: str, tmp: str, reps: int, limits=contextlib.nullcontext):
    """Project and fit ``reps`` fresh copies (inside ``limits()``); return wall times, the
    fit's CPU times (this process, all threads) and the last copy's results."""
    t_proj, t_fit, cpu_fit = [], [], []
    for rep in range(reps):
        path = os.path.join(tmp, f"ours{rep}.h5")
        shutil.copy(src, path)
        with h5py.File(path, "r+") as f, limits():
            t0 = time.perf_counter()
            grp = LoopProjector(f, progress=False).compute()
            t1, c1 = time.perf_counter(), time.process_time()
            res = LoopFitProcess(grp["Piezoresponse"], progress=False).compute()
            t2, c2 = time.perf_counter(), time.process_time()
            cpu_fit.append(c2 - c1)
            t_proj.append(t1 - t0)
            t_fit.append(t2 - t1)
            piezo = grp["Piezoresponse"]
            layout = describe_loops(piezo)
            cols = _loop_columns(layout)
            out = {
                "loops": piezo[()], "dc": layout.dc_values, "cols": cols,
                "keys": loop_keys(piezo, cols[:, 0]),
                "fitted": res["Fitted_Loops"][()],
                "up": res["Coercive_Voltage_Up"][()], "down": res["Coercive_Voltage_Down"][()],
                "param_keys": loop_keys(res["R2"], range(res["R2"].shape[1])),
            }
        if rep < reps - 1:
            os.remove(path)
    return t_proj, t_fit, cpu_fit, out


def run_bglib_per_loop(ours: dict, be_loop, shift_vdc):
    """BGlib's guess + fit on every projected loop; fitted loops (columns as the source)
    and coefficient vectors (positions, loops, 9)."""
    loops, dc, cols = ours["loops"], ours["dc"], ours["cols"]
    fitted = np.full(loops.shape, np.nan)
    coefs = np.full((loops.shape[0], cols.shape[0], 9), np.nan)
    failures: dict[str, int] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for j, c in enumerate(cols):
            vdc = dc[c]
            shift, vdc_shifted = shift_vdc(vdc)
            for i in range(loops.shape[0]):
                pr = loops[i, c].astype(float)
                try:
                    guess = be_loop.generate_guess(vdc, pr)
                    res, _, pr_fit = be_loop.fit_loop(vdc_shifted, np.roll(pr, shift), guess)
                except Exception as exc:  # counted and reported
                    key = f"{type(exc).__name__}: {exc}"
                    failures[key] = failures.get(key, 0) + 1
                    continue
                fitted[i, c] = np.roll(pr_fit, -shift)
                coefs[i, j] = res.x
    return fitted, coefs, failures


def run_beloopfitter(src32: str, tmp: str, args, loop_fit_function, shift_vdc) -> float:
    """BELoopFitter end to end on a copy of the file (float64 when float32 is refused)."""
    from BGlib.be.analysis.be_loop_fitter import BELoopFitter

    def settings(f: h5py.File):
        meas = f["Measurement_000"]
        return (as_text(f.attrs.get("data_type", meas.attrs.get("data_type", "BEPSData"))),
                as_text(meas.attrs.get("VS_mode", "DC modulation mode")),
                as_text(meas.attrs.get("VS_cycle_fraction", "full")))

    copy32 = os.path.join(tmp, "beloop_float32.h5")
    shutil.copy(src32, copy32)
    with h5py.File(copy32, "r+") as f:
        kind, mode, frac = settings(f)
        print(f"BELoopFitter(h5_main={FIT!r}, be_data_type={kind!r}, vs_mode={mode!r}, "
              f"vs_cycle_frac={frac!r})")
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                BELoopFitter(f[FIT], kind, mode, frac)
            path = copy32
            print("    accepts the float32 file")
        except Exception as exc:  # the message is the result
            print(f"    refuses a copy of the default (float32 SHO fit) file: "
                  f"{type(exc).__name__}: {exc}")
            path = None
    if path is None:
        path = write_synthetic_beps(os.path.join(tmp, "beloop_float64.h5"),
                                    shape=(args.size, args.size), seed=args.seed,
                                    failed_fraction=0.0, dtype="float64")
        print("    running on the same map written with dtype='float64' (same seed: the same "
              "values without the float32 rounding)")
    log = io.StringIO()
    with h5py.File(path, "r+") as f, warnings.catch_warnings(), \
            contextlib.redirect_stdout(log):
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        fitter = BELoopFitter(f[FIT], kind, mode, frac)
        fitter.set_up_guess()
        h5_guess = fitter.do_guess()
        t1 = time.perf_counter()
        fitter.set_up_fit()
        h5_fit = fitter.do_fit()
        t2 = time.perf_counter()
        guess, fit = h5_guess[()], h5_fit[()]
        proj = h5_fit.parent["Projected_Loops"][()]
        keys = loop_keys(h5_fit, range(h5_fit.shape[1]))
        truth = f["Ground_Truth/Piezoresponse"][()]
        mech = f["Ground_Truth/Mechanism"][()].ravel()
        true_vc = (f["Ground_Truth/Loop_Parameters/coercive_up"][()],
                   f["Ground_Truth/Loop_Parameters/coercive_down"][()])
        cores = getattr(fitter, "_cores", "?")
        layout = describe_loops(f[FIT])
        cols = _loop_columns(layout)
        our_keys = loop_keys(f[FIT], cols[:, 0])
    names = [n for n in fit.dtype.names if n != "R2 Criterion"]
    coef = np.stack([fit[n] for n in names], axis=-1)  # positions x loops x 9
    same = np.all(coef == np.stack([guess[n] for n in names], axis=-1), axis=-1)
    fitted = np.full(truth.shape, np.nan)
    for k, key in enumerate(keys):
        c = cols[our_keys.index(key)]
        shift, vdc_shifted = shift_vdc(layout.dc_values[c])
        for i in range(coef.shape[0]):
            fitted[i, c] = np.roll(loop_fit_function(vdc_shifted, coef[i, k]), -shift)
    r2 = np.concatenate([r2_rows(fitted[:, c], truth[:, c]) for c in cols])
    r2_own = np.concatenate([r2_rows(fitted[:, c], proj[:, c]) for c in cols])
    last = keys.index((max(k[0] for k in keys), 0))
    summary(f"BGlib BELoopFitter, end to end (projection + guess + fit, cores={cores})",
            t2 - t0, r2, mech != 2, (coef[:, last, 3], coef[:, last, 2]), true_vc)
    print(f"    of which do_guess (projectLoop + cluster-tree guess) {t1 - t0:.2f} s, "
          f"do_fit {t2 - t1:.2f} s; Fit identical to Guess for {same.mean():.1%} of loops")
    print(f"    R^2 vs its own Projected_Loops: median {np.median(r2_own):.5f}, 5th percentile "
          f"{np.percentile(r2_own, 5):.5f}")
    return t2 - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=20, help="map of size x size positions")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--reps", type=int, default=3, help="repetitions of ours (median)")
    ap.add_argument("--no-beloopfitter", action="store_true",
                    help="skip BGlib's end-to-end BELoopFitter")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp()
    try:
        _run(args, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")


def _run(args, tmp: str) -> None:
    src = os.path.join(tmp, "bench.h5")
    write_synthetic_beps(src, shape=(args.size, args.size), seed=args.seed, failed_fraction=0.0)
    with h5py.File(src, "r") as f:
        truth = f["Ground_Truth/Piezoresponse"][()]
        mech = f["Ground_Truth/Mechanism"][()].ravel()
        true_vc = (f["Ground_Truth/Loop_Parameters/coercive_up"][()],
                   f["Ground_Truth/Loop_Parameters/coercive_down"][()])
    print(f"machine: {platform.machine()} {os.cpu_count()} cores, "
          f"python {platform.python_version()}, numpy {np.__version__}, load average "
          f"{os.getloadavg()[0]:.2f} (timings are noisy on a shared machine)")

    t_proj, t_fit, cpu_fit, ours = run_ours(src, tmp, args.reps)
    cols = ours["cols"]
    n_loops = truth.shape[0] * cols.shape[0]
    one_step = mech != 2  # positions that switch in one step
    print(f"data: {args.size} x {args.size} positions ({(mech == 2).sum()} ferroelastic) x "
          f"{cols.shape[0]} loops (cycle, field: {ours['keys']}) x {cols.shape[1]} steps = "
          f"{n_loops} loops, seed {args.seed}")
    last_key = (max(k[0] for k in ours["keys"]), 0)
    k_par = ours["param_keys"].index(last_key)
    r2_ours = np.concatenate([r2_rows(ours["fitted"][:, c], truth[:, c]) for c in cols])
    t_ours = float(np.median(t_fit))
    summary(f"ours  LoopFitProcess.compute(), file to file: median of {args.reps}", t_ours,
            r2_ours, one_step, (ours["up"][:, k_par], ours["down"][:, k_par]), true_vc,
            note=f" (min {min(t_fit):.3f}, max {max(t_fit):.3f}; CPU time median "
                 f"{np.median(cpu_fit):.3f} s)")
    t_pipe = float(np.median(np.add(t_proj, t_fit)))
    print(f"    LoopProjector.compute() before it: median {np.median(t_proj):.3f} s; projection "
          f"+ fit {t_pipe:.3f} s")
    t_ours1 = None  # ours with one BLAS / OpenMP thread
    try:
        from threadpoolctl import threadpool_info, threadpool_limits
    except ImportError:
        pass
    else:
        pools = ", ".join(sorted({f"{p['internal_api']} {p['num_threads']}"
                                  for p in threadpool_info()}))
        t1p, t1f, c1f, _ = run_ours(src, tmp, args.reps, lambda: threadpool_limits(1))
        t_ours1 = float(np.median(t1f))
        t_pipe1 = float(np.median(np.add(t1p, t1f)))
        print(f"    the same with threadpoolctl.threadpool_limits(1) (default thread pools: "
              f"{pools}): fit median {np.median(t1f):.3f} s (min {min(t1f):.3f}, max "
              f"{max(t1f):.3f}; CPU time median {np.median(c1f):.3f} s), "
              f"{n_loops / np.median(t1f):,.0f} loops/s")

    try:
        from BGlib.be.analysis import be_loop_fitter
        from BGlib.be.analysis.utils import be_loop
    except ImportError as exc:
        print(f"BGlib not importable ({exc}): only ours was run")
        return
    from importlib.metadata import version

    shift, vdc_shifted = be_loop_fitter.shift_vdc(ours["dc"][cols[0]])
    half = vdc_shifted.size // 2
    print(f"BGlib {version('BGlib')}: shift_vdc rolls the DC vector by {shift} steps: starts at "
          f"{vdc_shifted[0]:+.1f} V, first half falling "
          f"{bool(np.all(np.diff(vdc_shifted[:half]) < 0))}, second half rising "
          f"{bool(np.all(np.diff(vdc_shifted[half:]) > 0))}")
    t0, c0 = time.perf_counter(), time.process_time()
    fitted, coefs, failures = run_bglib_per_loop(ours, be_loop, be_loop_fitter.shift_vdc)
    t_bg, cpu_bg = time.perf_counter() - t0, time.process_time() - c0
    r2_bg = np.concatenate([r2_rows(fitted[:, c], truth[:, c]) for c in cols])
    j_last = ours["keys"].index(last_key)
    # BGlib's a[2] fits the first half of the shifted loop (falling bias), a[3] the second
    summary("BGlib generate_guess + fit_loop, one loop at a time, 1 run", t_bg,
            r2_bg, one_step, (coefs[:, j_last, 3], coefs[:, j_last, 2]), true_vc,
            note=f" (CPU time {cpu_bg:.3f} s)")
    for msg, count in failures.items():
        print(f"    {count} loops failed: {msg}")
    print(f"ratio BGlib per-loop / ours (fit only): {t_bg / t_ours:.1f}x wall, "
          f"{cpu_bg / np.median(cpu_fit):.1f}x CPU time"
          + ("" if t_ours1 is None else f"; vs ours with one thread {t_bg / t_ours1:.1f}x wall"))

    if args.no_beloopfitter:
        return
    try:
        t_be = run_beloopfitter(src, tmp, args, be_loop.loop_fit_function,
                                be_loop_fitter.shift_vdc)
    except Exception as exc:  # the message is the result
        print(f"BELoopFitter failed: {type(exc).__name__}: {exc}")
        return
    print(f"ratio BELoopFitter end to end / ours projection + fit: {t_be / t_pipe:.1f}x; "
          f"/ ours fit only: {t_be / t_ours:.1f}x"
          + ("" if t_ours1 is None else f"; / ours projection + fit with one thread "
             f"{t_be / t_pipe1:.1f}x"))


if __name__ == "__main__":
    main()
