"""SHO fit of the raw band-excitation response: SHOFitProcess vs BGlib's BESHOfitter.

Run by hand::

    python benchmarks/bench_sho_fit.py [--size 60] [--seed 0] [--bglib-positions 30]
                                       [--reps 1] [--no-bglib]
    python benchmarks/bench_sho_fit.py --scale [--scale-size 256]

For each of two synthetic maps (``--size`` x ``--size`` positions x 96 steps x 2 fields x 2
cycles, 16 frequency bins): the raw response at SNR 25 at the resonance peak, and the
exact (noise-free) response, the same map (same seed, same stored Fit = the truth):

1. ours: ``SHOFitProcess(Raw_Data).compute()`` on the whole map, file to file (median of
   ``--reps``); errors against the stored Fit (the parameters the raw response was made
   from) over the spectra that are not injected failures: median relative error of the
   amplitude, Q and resonance frequency, median absolute phase error, and the median
   R^2 of the fit against the data;
2. BGlib's ``BESHOfitter`` (guess + fit, ``cores=2``) on the first ``--bglib-positions``
   positions of the same map (a file holding those rows of the same Raw_Data: BGlib
   fits some 100 spectra a second, so the whole map would take hours), and ours on the
   same file in the same run: the same error columns, and the time ratio per spectrum;
3. ``LoopProjector`` on our Fit and on the stored Fit: median correlation of the loops
   with the ground-truth loops.

``--scale`` instead writes a ``--scale-size`` squared map (96 steps x 2 fields, one
cycle, SNR 25) and fits it in a child process with the default memory budget, printing
the wall time, spectra per second and the child's peak resident memory.

Prints medians and ratios; nothing is asserted (no timed tests).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import warnings

import h5py
import numpy as np

from pycroscopy_bevae import LoopProjector, SHOFitProcess
from pycroscopy_bevae.analysis import rowwise_correlation
from pycroscopy_bevae.datasets import write_synthetic_beps
from pycroscopy_bevae.io.usid import make_dims, write_attrs, write_main

FIT = "Measurement_000/Channel_000/Raw_Data-SHO_Fit_000/Fit"
RAW = "Measurement_000/Channel_000/Raw_Data"


def errors(fit: np.ndarray, truth: np.ndarray, keep: np.ndarray) -> dict:
    """Median errors of an SHO compound against the truth over the spectra ``keep``."""
    f, t = fit[keep], truth[keep]
    rel = {name: np.abs(f[field].astype(float) / t[field] - 1)
           for name, field in (("amplitude", "Amplitude [V]"), ("Q", "Quality Factor"),
                               ("frequency", "Frequency [Hz]"))}
    phase = np.abs(np.angle(np.exp(1j * (f["Phase [rad]"] - t["Phase [rad]"]))))
    out = {k: float(np.nanmedian(v)) for k, v in rel.items()}
    out["phase_rad"] = float(np.nanmedian(phase))
    out["r2_median"] = float(np.nanmedian(f["R2 Criterion"]))
    out["not_finite"] = int((~np.isfinite(f["Amplitude [V]"])).sum())
    return out


def show(label: str, seconds: float, n_spectra: int, err: dict) -> None:
    print(f"  {label:<34} {seconds:8.2f} s  {n_spectra / seconds:10.0f} spectra/s  "
          f"amp {err['amplitude']:.2e}  Q {err['Q']:.2e}  "
          f"f0 {err['frequency']:.2e}  phase {err['phase_rad']:.2e} rad  "
          f"R2 {err['r2_median']:.5f}  non-finite {err['not_finite']}")


def subset_file(src: str, dst: str, n_pos: int) -> None:
    """A file holding the first ``n_pos`` positions of ``src``'s Raw_Data (same spectra)."""
    with h5py.File(src, "r") as s, h5py.File(dst, "w") as d:
        write_attrs(d, dict(s.attrs))
        meas = d.create_group("Measurement_000")
        write_attrs(meas, dict(s["Measurement_000"].attrs))
        raw = s[RAW]
        vals = s[raw.attrs["Spectroscopic_Values"]]
        labels = [x.decode() if isinstance(x, bytes) else str(x) for x in vals.attrs["labels"]]
        units = [x.decode() if isinstance(x, bytes) else str(x) for x in vals.attrs["units"]]
        inds = s[raw.attrs["Spectroscopic_Indices"]][()]
        dims = []
        for i, (lab, unit) in enumerate(zip(labels, units, strict=True)):
            n = int(inds[i].max()) + 1
            dims.append((lab, unit, [vals[i][np.flatnonzero(inds[i] == k)[0]] for k in range(n)]))
        write_main(meas.create_group("Channel_000"), raw[:n_pos], "Raw_Data", "Piezoresponse",
                   "V", make_dims([("Y", "m", [0.0]), ("X", "m", np.arange(n_pos) * 1e-8)]),
                   make_dims(dims))


def time_ours(path: str, reps: int) -> tuple[float, np.ndarray]:
    times, fit = [], None
    for _ in range(reps):
        with h5py.File(path, "r+") as f:
            t0 = time.perf_counter()
            grp = SHOFitProcess(f[RAW], progress=False).compute(override=True)
            times.append(time.perf_counter() - t0)
            fit = grp["Fit"][()]
    return float(np.median(times)), fit


def time_bglib(path: str) -> tuple[float, np.ndarray]:
    from BGlib.be.analysis.be_sho_fitter import BESHOfitter

    with h5py.File(path, "r+") as f, contextlib.redirect_stdout(io.StringIO()):
        t0 = time.perf_counter()
        sho = BESHOfitter(f[RAW], cores=2, verbose=False)
        sho.set_up_guess()
        sho.do_guess()
        sho.set_up_fit()
        fit = sho.do_fit()
        return time.perf_counter() - t0, fit[()]


def compare(args, tmp: str, snr: float | None, bglib: bool) -> None:
    label = "noise-free" if snr is None else f"SNR {snr:g}"
    path = os.path.join(tmp, f"map_{label.replace(' ', '')}.h5")
    write_synthetic_beps(path, shape=(args.size, args.size), seed=args.seed, raw_data=True,
                         raw_snr=snr, overwrite=True)
    with h5py.File(path, "r") as f:
        truth = f[FIT][()]
        keep = ~f["Ground_Truth/Failed_Fit"][()]
    print(f"\n{label}: {args.size} x {args.size} positions, {truth.size} spectra "
          f"({int((~keep).sum())} injected failures left out of the errors)")
    seconds, ours = time_ours(path, args.reps)
    show("ours, whole map", seconds, truth.size, errors(ours, truth, keep))
    with h5py.File(path, "r+") as f:
        gt = f["Ground_Truth/Piezoresponse"][()]
        corr = {}
        for name, src in (("ours", f[RAW + "-SHO_Fit_001/Fit"]), ("stored", f[FIT])):
            proj = LoopProjector(src, progress=False).compute()
            corr[name] = float(np.median(rowwise_correlation(proj["Piezoresponse"][()], gt)))
    print(f"  loop projection vs ground-truth loops, median correlation: on our fit "
          f"{corr['ours']:.5f}, on the stored (true) fit {corr['stored']:.5f} "
          f"(difference {corr['ours'] - corr['stored']:+.5f})")
    if not bglib:
        return
    n_pos = min(args.bglib_positions, args.size ** 2)
    sub = os.path.join(tmp, f"sub_{label.replace(' ', '')}.h5")
    subset_file(path, sub, n_pos)
    n_spec = n_pos * truth.shape[1]
    t_ours, ours_sub = time_ours(sub, args.reps)
    t_bg, theirs = time_bglib(sub)
    print(f"  same file, first {n_pos} positions ({n_spec} spectra):")
    show("ours", t_ours, n_spec, errors(ours_sub, truth[:n_pos], keep[:n_pos]))
    show("BGlib BESHOfitter (cores=2)", t_bg, n_spec, errors(theirs, truth[:n_pos],
                                                             keep[:n_pos]))
    print(f"  ratio BGlib / ours, same spectra: {t_bg / t_ours:.0f}x; BGlib per spectrum "
          f"{1e3 * t_bg / n_spec:.2f} ms -> the whole map ~{t_bg / n_spec * truth.size / 60:.0f}"
          f" min vs ours {seconds:.0f} s measured ({t_bg / n_spec * truth.size / seconds:.0f}x)")


def scale(args, tmp: str) -> None:
    path = os.path.join(tmp, "scale.h5")
    t0 = time.perf_counter()
    write_synthetic_beps(path, shape=(args.scale_size, args.scale_size), seed=args.seed,
                         n_cycles=1, raw_data=True, overwrite=True)
    t_write = time.perf_counter() - t0
    size = os.path.getsize(path) / 2**30
    child = ("import json, resource, sys, time, h5py\n"
             "from pycroscopy_bevae import SHOFitProcess\n"
             "t0 = time.perf_counter()\n"
             "with h5py.File(sys.argv[1], 'r+') as f:\n"
             "    g = SHOFitProcess(f['" + RAW + "'], progress=False).compute()\n"
             "    n = g['Fit'].size; r2 = float(g.attrs['r2_median'])\n"
             "print(json.dumps({'s': time.perf_counter() - t0, 'n': n, 'r2': r2, 'rss_mb': "
             "resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))\n")
    out = subprocess.run([sys.executable, "-c", child, path], capture_output=True, text=True,
                         check=True)
    res = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"\nscale: {args.scale_size} x {args.scale_size} positions x 192 spectra x 16 bins "
          f"(file {size:.2f} GiB, written in {t_write:.0f} s): SHO fit {res['s']:.0f} s, "
          f"{res['n'] / res['s']:.0f} spectra/s, median R2 {res['r2']:.4f}, peak RSS of the "
          f"fitting process {res['rss_mb']:.0f} MB")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--size", type=int, default=60)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--reps", type=int, default=1)
    p.add_argument("--bglib-positions", type=int, default=30)
    p.add_argument("--no-bglib", action="store_true")
    p.add_argument("--scale", action="store_true")
    p.add_argument("--scale-size", type=int, default=256)
    p.add_argument("--tmp", default=None, help="folder for the files (default: a temp dir)")
    args = p.parse_args()
    warnings.simplefilter("ignore")
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"numpy {np.__version__}")
    bglib = not args.no_bglib
    if bglib:
        try:
            import BGlib.be.analysis.be_sho_fitter  # noqa: F401
        except Exception as exc:  # noqa: BLE001 - any import failure skips the peer
            print(f"BGlib not importable ({exc!r}): the peer is skipped")
            bglib = False
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        if args.scale:
            scale(args, tmp)
            return
        for snr in (25.0, None):
            compare(args, tmp, snr, bglib)


if __name__ == "__main__":
    main()
