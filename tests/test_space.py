"""Never lose the user's file when space runs out: real size-limited writes
(``RLIMIT_FSIZE`` in a child process), refusal before writing, clean failure after."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap

import h5py
import numpy as np
import pytest

from pycroscopy_bevae import InsufficientSpaceError, LoopProjector
from pycroscopy_bevae.io.space import reserved_space, room_for
from tests.helpers import file_digest

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="RLIMIT_FSIZE is POSIX")


def _limited(code: str, limit: int, cwd) -> subprocess.CompletedProcess:
    """Run ``code`` in a child whose file-size limit is ``limit`` bytes."""
    pre = textwrap.dedent(f"""
        import resource
        resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))
    """)
    return subprocess.run([sys.executable, "-c", pre + textwrap.dedent(code)], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def _cli_limited(args: list[str], limit: int, cwd) -> subprocess.CompletedProcess:
    code = f"import sys; from pycroscopy_bevae.cli import main; sys.exit(main({args!r}))"
    return _limited(code, limit, cwd)


def test_cli_refuses_before_writing_past_the_file_size_limit(beps_file, tmp_path):
    before = beps_file.read_bytes()
    limit = len(before) + 100_000  # the projection needs about 2 MB more
    out = _cli_limited(["project", str(beps_file)], limit, tmp_path)
    assert out.returncode == 2, out.stderr[-2000:]
    err = [line for line in out.stderr.splitlines() if "error:" in line]
    assert len(err) == 1 and "file-size limit" in err[0] and "nothing was written" in err[0]
    assert "Traceback" not in out.stderr
    assert beps_file.read_bytes() == before  # byte-identical


def test_training_is_refused_before_it_starts(beps_file, tmp_path):
    with h5py.File(beps_file, "r+") as f:
        LoopProjector(f, progress=False).compute()
    before = beps_file.read_bytes()
    out = _cli_limited(["train", str(beps_file), "--epochs", "400"], len(before) + 1000,
                       tmp_path)
    assert out.returncode == 2, out.stderr[-2000:]
    assert "file-size limit" in out.stderr and "beta-VAE:" not in out.stderr  # no epoch ran
    assert beps_file.read_bytes() == before


def test_a_write_that_fails_anyway_leaves_the_file_readable(beps_file, tmp_path):
    """The estimate and the slack are forced to zero, so nothing is reserved and the
    projection (about 1.1 MB) runs into the limit while writing: a WriteFailedError of
    one line, the partial group removed, and the file opens with every earlier object
    unchanged."""
    digest = file_digest(beps_file)
    size = beps_file.stat().st_size
    code = f"""
        import h5py
        from pycroscopy_bevae import LoopProjector, WriteFailedError
        import pycroscopy_bevae.io.space as space
        LoopProjector._result_bytes = lambda self: 0
        space._SLACK = 0
        f = h5py.File({str(beps_file)!r}, "r+")
        try:
            LoopProjector(f, progress=False).compute()
        except WriteFailedError as exc:
            print("FAILED:", exc)
        f.close()
    """
    out = _limited(code, size + 300_000, tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    line = [x for x in out.stdout.splitlines() if x.startswith("FAILED:")]
    assert len(line) == 1 and "file-size limit was reached" in line[0]
    assert "was removed" in line[0] and "run the same call again" in line[0]
    assert file_digest(beps_file) == digest  # opens; nothing earlier changed or lost
    with h5py.File(beps_file, "r+") as f:  # and the same call now works
        grp = LoopProjector(f, progress=False).compute()
        assert grp.name.endswith("Fit-Loop_Projection_000")


def test_reservation_is_released_after_a_successful_write(beps_file):
    with h5py.File(beps_file, "r+") as f:
        LoopProjector(f, progress=False).compute()
        hdf5_end = f.id.get_filesize()
    # no reserved bytes left at the end of the file
    assert beps_file.stat().st_size == hdf5_end


def test_room_for_refuses_more_than_the_disk_holds(tmp_path):
    path = tmp_path / "x.h5"
    path.write_bytes(b"")
    free = shutil.disk_usage(tmp_path).free
    with pytest.raises(InsufficientSpaceError, match="not enough disk space.*x.h5"):
        room_for(str(path), free)
    assert room_for(str(path), 1000) >= 1000


def test_reserved_space_in_a_plain_file(tmp_path):
    path = tmp_path / "y.h5"
    with h5py.File(path, "w") as f:
        with reserved_space(f, 10**6, "test"):
            f["a"] = np.arange(1000.0)
            # the room exists on disk while writing
            assert os.path.getsize(path) >= 10**6
        end = f.id.get_filesize()
    assert os.path.getsize(path) <= max(end, 10_000)
    with h5py.File(path, "r") as f:
        np.testing.assert_array_equal(f["a"][()], np.arange(1000.0))
