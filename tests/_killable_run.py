"""Child program of ``test_interrupt.py``: run one process on a file and stop, for a
SIGKILL from the parent, at a chosen point.

Usage: ``python _killable_run.py '<json spec>'`` with keys ``file``, ``process`` (a class
of :mod:`pycroscopy_bevae.process`), ``source`` (path of the input inside the file; the
file itself when empty), ``kwargs`` and ``stop``. ``stop`` says where to stop:

* ``{"target": "module:Qual.name", "when": "before" | "after", "call": k}``: around the
  k-th call of that function or method;
* ``{"target": "status", "call": k}``: after the k-th write into a ``completed_positions``
  dataset (the flag that marks results as complete), at the next ``File.flush`` call,
  before it runs: the flag has left h5py (its dataset object is closed) but nothing has
  been flushed since.

At that point the program writes ``STOPPED`` on its standard output and sleeps: nothing is
flushed or closed after it, exactly as when a machine dies there. Without a stop it
writes ``DONE`` at the end.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time


def _stop() -> None:
    # os.write: pyUSID redirects sys.stdout while it runs
    os.write(1, b"STOPPED\n")
    time.sleep(600)


def _install(stop: dict) -> None:
    import h5py

    count = {"n": 0}
    if stop["target"] == "status":
        orig_set, orig_flush = h5py.Dataset.__setitem__, h5py.File.flush

        def setitem(self, key, value):
            orig_set(self, key, value)
            if self.name.endswith("/completed_positions"):
                count["n"] += 1

        def flush(self):
            if count["n"] >= stop["call"]:
                _stop()
            orig_flush(self)

        h5py.Dataset.__setitem__, h5py.File.flush = setitem, flush
        return
    mod_name, qual = stop["target"].split(":")
    owner = importlib.import_module(mod_name)
    parts = qual.split(".")
    for part in parts[:-1]:
        owner = getattr(owner, part)
    orig = getattr(owner, parts[-1])

    def wrapper(*args, **kwargs):
        count["n"] += 1
        if stop["when"] == "before" and count["n"] == stop["call"]:
            _stop()
        out = orig(*args, **kwargs)
        if stop["when"] == "after" and count["n"] == stop["call"]:
            _stop()
        return out

    setattr(owner, parts[-1], wrapper)


def main(spec: dict) -> None:
    import h5py

    import pycroscopy_bevae.process as process

    if spec.get("stop"):
        _install(spec["stop"])
    cls = getattr(process, spec["process"])
    with h5py.File(spec["file"], "r+") as f:
        src = f[spec["source"]] if spec.get("source") else f
        cls(src, **spec["kwargs"]).compute()
    print("DONE", flush=True)


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
