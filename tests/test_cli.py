"""The command line, run in-process and as a real subprocess."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from pycroscopy_bevae import __version__
from pycroscopy_bevae.cli import main


def test_project_and_info(beps_file, capsys):
    assert main(["project", str(beps_file), "--r2-threshold", "0.6"]) == 0
    assert "Fit-Loop_Projection_000: written" in capsys.readouterr().out
    assert main(["project", str(beps_file), "--r2-threshold", "0.6"]) == 0
    assert "existing results with identical parameters" in capsys.readouterr().out
    assert main(["info", str(beps_file)]) == 0
    text = capsys.readouterr().out
    assert "grid: 20 x 18 (Y, X); 96 DC steps x 2 cycle(s); fields: off, on" in text
    assert "Fit-Loop_Projection_000 (LoopProjector)" in text


def test_fit_loops_command(beps_file, capsys):
    import h5py

    assert main(["fit-loops", str(beps_file)]) == 2  # no projection yet
    assert "run 'pycroscopy-bevae project' first" in capsys.readouterr().err
    assert main(["project", str(beps_file)]) == 0
    capsys.readouterr()
    assert main(["fit-loops", str(beps_file), "--max-iter", "50"]) == 0
    out = capsys.readouterr().out
    assert "Piezoresponse-Loop_Fit_000: written" in out and "median R2 0.99" in out
    with h5py.File(beps_file, "r") as f:
        grp = f["Measurement_000/Channel_000/Raw_Data-SHO_Fit_000/Fit-Loop_Projection_000/"
                "Piezoresponse-Loop_Fit_000"]
        assert grp.attrs["max_iter"] == 50 and grp["R2"].shape == (360, 4)
    assert main(["fit-loops", str(beps_file), "--source", "/nowhere"]) == 2
    assert "has no dataset '/nowhere'" in capsys.readouterr().err


def test_errors_are_one_line_with_status_2(tmp_path, capsys):
    bad = tmp_path / "bad.h5"
    bad.write_text("not hdf5")
    assert main(["project", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "not an HDF5 file" in err and "bad.h5" in err
    assert main(["info", str(tmp_path / "missing.h5")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_module_entry_point():
    res = subprocess.run([sys.executable, "-m", "pycroscopy_bevae", "--version"],
                         capture_output=True, text=True, check=True)
    assert res.stdout.strip() == f"pycroscopy-bevae {__version__}"
    res = subprocess.run([sys.executable, "-m", "pycroscopy_bevae", "project", "--help"],
                         capture_output=True, text=True, check=True)
    text = " ".join(res.stdout.split())  # argparse wraps to the terminal width
    assert "--r2-threshold" in text and "default: 0.5" in text


def test_dictionary_command(beps_file, tmp_path, capsys):
    assert main(["dictionary", str(beps_file)]) == 2  # no projection yet
    assert "run 'pycroscopy-bevae project' first" in capsys.readouterr().err
    assert main(["project", str(beps_file)]) == 0
    figs = tmp_path / "figs"
    assert main(["dictionary", str(beps_file), "--n-components", "3", "--max-iter", "5",
                 "--figures", str(figs)]) == 0
    out = capsys.readouterr().out
    assert "Piezoresponse-Dictionary_Learning_000: written" in out and "Resonance" in out
    assert sorted(p.name for p in figs.iterdir()) == ["dl_atoms.png", "dl_coefficients.png",
                                                      "dl_error_map.png"]
    src = "/Measurement_000/Channel_000/Raw_Data-SHO_Fit_000/Fit-Loop_Projection_000/Resonance"
    assert main(["dictionary", str(beps_file), "--source", src, "--n-components", "2",
                 "--max-iter", "5"]) == 0
    assert "Resonance-Dictionary_Learning_000: written" in capsys.readouterr().out
    assert main(["dictionary", str(beps_file), "--source", "/nope"]) == 2
    assert "no dataset '/nope'" in capsys.readouterr().err


def test_train_command(beps_file, capsys):
    assert main(["project", str(beps_file)]) == 0
    capsys.readouterr()
    tiny = ["--param", "units=4", "--param", "embedding_dim=4", "--param", "latent_dim=3",
            "--param", "prime_epochs=1", "--param", "step_epochs=1", "--param",
            "beta_start=0.01", "--param", "round_updates=0", "--param", "relax_epochs=0",
            "--param", "beta_growth=1.0",
            "--epochs", "2"]
    assert main(["train", str(beps_file), *tiny]) == 0
    out = capsys.readouterr().out
    assert "Piezoresponse-Beta_VAE_000: written" in out and "active latent channels" in out
    assert main(["train", str(beps_file), "--param", "bogus=1"]) == 2
    assert "--param bogus=... : not a BetaVAE parameter" in capsys.readouterr().err
    assert main(["train", str(beps_file), "--param", "units"]) == 2
    assert "KEY=VALUE" in capsys.readouterr().err


def test_param_clashes_and_bad_options_are_one_line_before_any_write(beps_file, tmp_path,
                                                                     capsys):
    assert main(["project", str(beps_file)]) == 0
    before = beps_file.read_bytes()
    capsys.readouterr()
    cases = [
        (["train", str(beps_file), "--param", "random_state=5"], "use the option --seed"),
        (["train", str(beps_file), "--param", "preset=paper"], "use the option --preset"),
        (["train", str(beps_file), "--param", "n_active=3"], "use the option --n-active"),
        (["train", str(beps_file), "--param", "h5_target_group=/x"], "not a BetaVAE parameter"),
        (["train", str(beps_file), "--param", "max_mem_mb=abc"], "not a BetaVAE parameter"),
        (["train", str(beps_file), "--param", "epochs=1.5"], "use the option --epochs"),
        (["train", str(beps_file), "--param", "learning_rate=True"], "learning_rate"),
        (["dictionary", str(beps_file), "--figures", str(beps_file)], "is an existing file"),
    ]
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], (argv, err)
    assert beps_file.read_bytes() == before  # nothing was written
    # the process keywords documented for --param still pass (validated by the process)
    assert main(["train", str(beps_file), "--param", "strategy=5"]) == 2
    assert "strategy must be None" in capsys.readouterr().err


def test_a_file_another_program_holds_is_one_line_naming_it(beps_file):
    """A file another program holds open: one line naming it, not HDF5's raw message."""
    import h5py

    with h5py.File(beps_file, "r"):
        probe = subprocess.run([sys.executable, "-c", "import sys, h5py; h5py.File(sys.argv[1], "
                                "'r+').close()", str(beps_file)], capture_output=True,
                               text=True, timeout=120)
        if probe.returncode == 0:
            pytest.skip("HDF5 file locking is not in force here (HDF5_USE_FILE_LOCKING="
                        f"{os.environ.get('HDF5_USE_FILE_LOCKING', '<unset>')} or a file "
                        "system without locks): a second writer opens the file")
        code = (f"import sys; from pycroscopy_bevae.cli import main; "
                f"sys.exit(main(['train', {str(beps_file)!r}]))")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             timeout=300)
    assert out.returncode == 2, out.stderr[-2000:]
    err = [x for x in out.stderr.splitlines() if "error:" in x]
    assert len(err) == 1 and "is in use" in err[0] and str(beps_file) in err[0]
    assert "errno" not in err[0] and "Traceback" not in out.stderr


def test_warnings_are_one_readable_line(beps_file):
    """The shell shows a warning as one line, not with the library line that raised it."""
    run = subprocess.run([sys.executable, "-m", "pycroscopy_bevae", "project", str(beps_file)],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    lines = [ln for ln in run.stderr.splitlines() if "DataQualityWarning" in ln]
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith("pycroscopy-bevae project: DataQualityWarning: loop projection "
                               "of dataset '/Measurement_000/")
    assert "SHO fits" in lines[0] and "rejected" in lines[0]
    assert "_warn_rejected" not in run.stderr and "warnings.warn" not in run.stderr
