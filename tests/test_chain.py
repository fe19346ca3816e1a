"""The whole chain from the raw response (``pycroscopy-bevae run``) and ``fit-sho``."""

from __future__ import annotations

import shutil

import h5py
import numpy as np
import pytest

from pycroscopy_bevae.analysis import find_results
from pycroscopy_bevae.cli import main
from pycroscopy_bevae.datasets import write_synthetic_beps

#: A beta-VAE schedule of seconds (the numbers mean nothing).
TINY_VAE = ["--epochs", "3", "--param", "prime_epochs=1", "--param", "step_epochs=1",
            "--param", "round_updates=5", "--param", "relax_epochs=2"]


def test_fit_sho_command(tmp_path, capsys):
    path = write_synthetic_beps(tmp_path / "raw.h5", shape=(3, 3), n_steps=8, raw_data=True)
    assert main(["fit-sho", path]) == 0
    out = capsys.readouterr().out
    assert "Raw_Data-SHO_Fit_001: written" in out and "median R2 0.9" in out
    assert main(["fit-sho", path]) == 0
    assert "existing results with identical parameters" in capsys.readouterr().out
    with h5py.File(path, "r") as f:
        assert f["Measurement_000/Channel_000/Raw_Data-SHO_Fit_001/Fit"].shape == (9, 32)
    bare = write_synthetic_beps(tmp_path / "bare.h5", shape=(2, 2), n_steps=8)
    assert main(["fit-sho", bare]) == 2
    err = capsys.readouterr().err
    assert "no 'Raw_Data' dataset" in err and "Traceback" not in err
    assert main(["fit-sho", str(tmp_path / "missing.h5")]) == 2


def _contents(path) -> dict:
    """Every results dataset of the package's groups (paths -> bytes) and the group list."""
    out = {}
    with h5py.File(path, "r") as f:
        groups = [g for kind in find_results(f).values() for g in kind]
        groups.append("/Measurement_000/Channel_000/Raw_Data-SHO_Fit_001")
        for g in groups:
            for name, obj in f[g].items():
                if isinstance(obj, h5py.Dataset) and "History" not in name:
                    out[f"{g}/{name}"] = obj[()].tobytes()
    return out


def _report_lines(folder, stem: str) -> list[str]:
    lines = (folder / "report.md").read_text().replace(stem + ".h5", "FILE").splitlines()
    # table rows: without the training and the inference time columns
    header = next(ln.split("|") for ln in lines if ln.startswith("| model |"))
    timed = {i for i, c in enumerate(header) if c.strip() in ("training (s)", "inference (s)")}
    assert len(timed) == 2
    return ["|".join(c for i, c in enumerate(ln.split("|")) if i not in timed)
            if ln.startswith("| ") and "_0" in ln else ln for ln in lines]


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::pycroscopy_bevae.exceptions.DataQualityWarning")
def test_run_equals_the_stage_by_stage_commands(tmp_path, capsys):
    one = write_synthetic_beps(tmp_path / "one.h5", shape=(4, 4), n_steps=24, raw_data=True)
    two = str(shutil.copy(one, tmp_path / "two.h5"))
    assert main(["run", one, "--n-active", "3", "--no-animations", *TINY_VAE]) == 0
    text = capsys.readouterr().out
    for k, stage in enumerate(("sho fit", "projection", "loop fit", "dictionary", "beta vae",
                               "report"), start=1):
        assert f"[{k}/6] {stage} -> " in text
    for argv in (["fit-sho", two], ["project", two], ["fit-loops", two], ["dictionary", two],
                 ["train", two, "--n-active", "3", *TINY_VAE],
                 ["report", two, "--no-animations"]):
        assert main(argv) == 0, argv
    capsys.readouterr()
    a, b = _contents(one), _contents(two)
    assert sorted(a) == sorted(b)
    assert any("Beta_VAE" in k for k in a) and any("Loop_Fit" in k for k in a)
    different = [k for k in a if a[k] != b[k]]
    assert not different, different
    # the same report, but for the file's name and the times taken
    assert _report_lines(tmp_path / "one_report", "one") == _report_lines(
        tmp_path / "two_report", "two")
    assert sorted(p.name for p in (tmp_path / "one_report").iterdir()) == sorted(
        p.name for p in (tmp_path / "two_report").iterdir())
    # a second run finds every stage done
    assert main(["run", one, "--n-active", "3", "--no-animations", *TINY_VAE]) == 0
    text = capsys.readouterr().out
    assert text.count("(existing results,") == 5
    with h5py.File(one, "r") as f:
        assert {k: len(v) for k, v in find_results(f).items()} == {
            "projection": 1, "dictionary": 1, "beta_vae": 1, "loop_fit": 1}
        np.testing.assert_array_equal(
            f["Measurement_000/Channel_000/Raw_Data-SHO_Fit_001"].attrs["max_iter"], 100)
