"""Safety: nothing read from a file is executed, attributes written are plain types, and
nothing reaches the network.

Every payload below would create a marker file if it ran (the first test proves that each
one does run when deliberately unpickled, evaluated or deserialised unsafely); loading a
results group that carries it must raise a package error or ignore it, and never create
the marker.
"""

from __future__ import annotations

import ast
import json
import pathlib
import pickle
import shutil
import socket
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest

import pycroscopy_bevae
from pycroscopy_bevae import (
    BEPSFormatError,
    DictionaryLearningProcess,
    LoopProjector,
    ParameterError,
    load_beta_vae,
)
from pycroscopy_bevae.datasets import write_synthetic_beps
from pycroscopy_bevae.exceptions import DataQualityWarning
from pycroscopy_bevae.io.model_store import read_checkpoint
from tests.helpers import PROJ_GROUP


class _Touch:
    """Pickles to ``pathlib.Path(path).touch()``: unpickling it creates the file."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.path),))


def _pickle_payload(marker: Path) -> np.void:
    return np.void(pickle.dumps(_Touch(marker)))


def _expression(marker: Path) -> str:
    return f"__import__('pathlib').Path({str(marker)!r}).touch()"


def _keras_lambda_config(marker: Path) -> str:
    """The JSON of a Keras model whose Lambda layer creates ``marker`` when rebuilt."""
    import keras

    inp = keras.Input((3,))
    code = f"lambda x: (__import__('pathlib').Path({str(marker)!r}).touch(), x)[1]"
    out = keras.layers.Lambda(eval(code))(inp)  # the payload itself, built here
    cfg = keras.Model(inp, out).to_json()
    marker.unlink(missing_ok=True)  # building the model called the lambda once
    return cfg


def test_the_payloads_are_live(tmp_path):
    """Controls: each payload does run when read unsafely (so the tests below can fail)."""
    import keras

    for i, run in enumerate((lambda m: pickle.loads(_pickle_payload(m).tobytes()),
                             lambda m: eval(_expression(m)),
                             lambda m: keras.saving.deserialize_keras_object(
                                 json.loads(_keras_lambda_config(m)), safe_mode=False))):
        marker = tmp_path / f"control_{i}"
        run(marker)
        assert marker.exists(), i


@pytest.fixture()
def vae_group_copy(tiny_vae_run, tmp_path) -> Path:
    path = tmp_path / "results.h5"
    shutil.copy(tiny_vae_run["results"], path)
    return path


def _set_config(grp, value):
    grp["Model"].attrs["config"] = value


def _edit_config(edit):
    def apply(grp, marker):
        cfg = json.loads(grp["Model"].attrs["config"])
        edit(cfg, marker)
        grp["Model"].attrs["config"] = json.dumps(cfg)
    return apply


def _replace_dataset(path_in_group: str, payload):
    def apply(grp, marker):
        old = grp[path_in_group]
        parent, name = old.parent, old.name.rsplit("/", 1)[1]
        del parent[name]
        parent.create_dataset(name, data=payload(marker))
    return apply


def _first_weight(grp) -> str:
    names = []
    grp["Model/Weights"].visititems(lambda n, o: names.append(n)
                                    if isinstance(o, h5py.Dataset) else None)
    return "Model/Weights/" + sorted(names)[0]


PAYLOADS = {
    "config_is_a_pickle": (lambda g, m: _set_config(g, _pickle_payload(m)),
                           "model config is not valid JSON"),
    "config_is_python": (lambda g, m: _set_config(g, _expression(m)),
                         "model config is not valid JSON"),
    "config_is_a_keras_model_with_lambda": (lambda g, m: _set_config(g, _keras_lambda_config(m)),
                                            "model config lacks params/network/input_shape"),
    "network_holds_a_keras_lambda": (_edit_config(lambda c, m: c["network"].update(
        layers=json.loads(_keras_lambda_config(m)))),
        "model config 'network' must have the keys"),
    "parameter_is_python": (_edit_config(lambda c, m: c["params"].update(
        lambda_mode=_expression(m))), "stored parameters are invalid: lambda_mode must be one of"),
    "weights_are_a_pickle": (lambda g, m: _replace_dataset(_first_weight(g),
                                                           _pickle_payload)(g, m),
                             "non-numeric type"),
    "snapshot_latents_are_a_pickle": (
        _replace_dataset("Model/Snapshots/0000/mu", _pickle_payload),
        "stored snapshots are unreadable: .*mu' .* has non-numeric type"),
    "history_is_python_strings": (_replace_dataset(
        "Training_History", lambda m: np.array([_expression(m)], dtype=h5py.string_dtype())),
        "Training_History' .* has non-numeric type"),
    "scaler_is_a_pickle": (_replace_dataset("Scaler_Mean", _pickle_payload),
                           "Scaler_Mean' .* has non-numeric type"),
    "scaling_is_python": (lambda g, m: g.attrs.__setitem__("scaling", _expression(m)),
                          "scaling mode must be one of"),
}


@pytest.mark.parametrize("name", list(PAYLOADS))
def test_loading_a_crafted_model_never_runs_its_payload(name, vae_group_copy, tiny_vae_run,
                                                        tmp_path):
    craft, message = PAYLOADS[name]
    marker = tmp_path / "pwned"
    with h5py.File(vae_group_copy, "r+") as f:
        craft(f[tiny_vae_run["group"]], marker)
    assert not marker.exists()
    with h5py.File(vae_group_copy, "r") as f:
        with pytest.raises((BEPSFormatError, ParameterError), match=message):
            load_beta_vae(f[tiny_vae_run["group"]])
    assert not marker.exists()


def test_a_crafted_checkpoint_is_ignored_not_run(vae_group_copy, tiny_vae_run, tmp_path):
    """The resume path reads checkpoints: a pickled optimiser state is refused with a
    warning (training would restart), never unpickled."""
    marker = tmp_path / "pwned"
    with h5py.File(vae_group_copy, "r+") as f:
        grp = f[tiny_vae_run["group"]]
        ckpt = grp.create_group("Checkpoint")
        f.copy(grp["Model/Weights"], ckpt, name="Weights")
        ckpt.create_group("Optimizer").create_dataset("0000", data=_pickle_payload(marker))
        ckpt.create_dataset("seed_state", data=np.zeros(2, np.int64))
        ckpt.create_group("History").attrs["columns"] = np.array([], dtype=h5py.string_dtype())
        ckpt.attrs.update({"epoch": 0, "n_snapshots": 0, "beta_start": "None"})
        with pytest.warns(DataQualityWarning, match=r"Optimizer/0000' .* non-numeric type.*"
                          "restarts from epoch 0"):
            assert read_checkpoint(grp) is None
    assert not marker.exists()


# ---- attributes are plain types ----------------------------------------------------------
def _plain(value) -> bool:
    if isinstance(value, (str, bytes, bool, int, float, np.bool_, np.integer, np.floating,
                          h5py.Reference, h5py.RegionReference)):
        return True  # (object references are how USID links ancillary datasets)
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "biufSU":
            return True
        return value.dtype.kind == "O" and all(
            isinstance(v, (str, bytes, h5py.Reference, h5py.RegionReference))
            for v in value.ravel())
    return False


def _all_attrs(grp: h5py.Group) -> dict:
    out = {}

    def visit(name, obj):
        for key in obj.attrs:
            value = obj.attrs[key]
            out[f"{obj.name}@{key}"] = (value, obj.attrs.get_id(key).dtype)

    visit("", grp)
    grp.visititems(visit)
    return out


def test_every_attribute_written_is_a_plain_type(tiny_vae_run, tmp_path):
    path = write_synthetic_beps(tmp_path / "s.h5", shape=(6, 5), seed=3)
    attrs = {}
    with h5py.File(path, "r+") as f:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DataQualityWarning)
            proj = LoopProjector(f, progress=False, per="loop").compute()
        dl = DictionaryLearningProcess(proj, n_components=3, max_iter=5).compute()
        for grp in (proj, dl):
            attrs.update(_all_attrs(grp))
    with h5py.File(tiny_vae_run["results"], "r") as f:
        vae_attrs = _all_attrs(f[tiny_vae_run["group"]])
        assert any("/Model/Snapshots/" in k for k in vae_attrs)
        attrs.update(vae_attrs)
    assert len(attrs) > 150
    bad = {k: (type(v).__name__, dt) for k, (v, dt) in attrs.items()
           if not _plain(v) or dt.kind == "V"}
    assert not bad, bad
    # the model is described by JSON text, not by code or a serialised object
    config = json.loads(vae_attrs[f"{tiny_vae_run['group']}/Model@config"][0])
    assert set(config) == {"params", "network", "input_shape", "data_variance", "relax",
                           "rotation"}


# ---- no pickle, eval or unsafe deserialisation in the package; no network at run time ------
_FORBIDDEN_MODULES = {"pickle", "cPickle", "dill", "cloudpickle", "marshal", "shelve", "joblib",
                      "socket", "urllib", "http", "requests", "ftplib"}
_FORBIDDEN_BUILTINS = {"eval", "exec", "compile", "__import__"}
_FORBIDDEN_CALLS = {"load_model", "Lambda", "enable_unsafe_deserialization", "model_from_json",
                    "model_from_config", "from_pretrained"}


def test_package_source_has_no_code_loading_or_network_calls():
    root = Path(pycroscopy_bevae.__file__).parent
    found = []
    for py in sorted(root.rglob("*.py")):
        tree = ast.parse(py.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            where = f"{py.relative_to(root)}:{getattr(node, 'lineno', '?')}"
            if isinstance(node, ast.Import):
                found += [f"{where} import {a.name}" for a in node.names
                          if a.name.split(".")[0] in _FORBIDDEN_MODULES]
            elif isinstance(node, ast.ImportFrom) and node.module:
                if node.module.split(".")[0] in _FORBIDDEN_MODULES:
                    found.append(f"{where} from {node.module}")
            elif isinstance(node, ast.Call):
                func = node.func
                if isinstance(func, ast.Name) and func.id in _FORBIDDEN_BUILTINS | \
                        _FORBIDDEN_CALLS:
                    found.append(f"{where} {func.id}(...)")
                elif isinstance(func, ast.Attribute) and (func.attr in _FORBIDDEN_CALLS or (
                        func.attr in _FORBIDDEN_BUILTINS and isinstance(func.value, ast.Name)
                        and func.value.id == "builtins")):
                    found.append(f"{where} .{func.attr}(...)")
                for kw in node.keywords:
                    if (kw.arg, getattr(kw.value, "value", None)) in (("allow_pickle", True),
                                                                       ("safe_mode", False)):
                        found.append(f"{where} {kw.arg}={kw.value.value}")
    assert not found, found


def test_no_network_access_while_processing_and_loading(monkeypatch, tiny_vae_run, tmp_path):
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    path = write_synthetic_beps(tmp_path / "s.h5", shape=(6, 5), seed=3)
    with h5py.File(path, "r+") as f:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DataQualityWarning)
            proj = LoopProjector(f, progress=False).compute()
        DictionaryLearningProcess(proj, n_components=3, max_iter=5).compute()
    with h5py.File(tiny_vae_run["results"], "r") as f, \
            h5py.File(tiny_vae_run["source"], "r") as src:
        vae, scaler = load_beta_vae(f[tiny_vae_run["group"]])
        from pycroscopy_bevae.io.loop_sources import LoopSources

        loops = LoopSources.from_input(src[PROJ_GROUP]).read()
        assert vae.transform(np.stack(scaler.transform(loops), axis=-1)).shape == (30, 3)
    assert attempts == []


def _net(key, value):
    return _edit_config(lambda c, m: c["network"].update({key: value}))


def _huge_dataset(path_in_group: str):
    """A lazily allocated dataset of 10**10 float32 values (reading it needs 37 GiB)."""
    def apply(grp, marker):
        old = grp[path_in_group]
        parent, name = old.parent, old.name.rsplit("/", 1)[1]
        del parent[name]
        parent.create_dataset(name, shape=(10**10,), dtype="float32", chunks=(2**20,))
    return apply


def _nested_json(grp, marker):
    grp["Model"].attrs["config"] = "[" * 100_000 + "]" * 100_000


TAMPERED = {
    "latent_dim_1e8": (_net("latent_dim", 10**8), "network latent_dim=100000000"),
    "n_steps_1e9": (_net("n_steps", 10**9), "network n_steps=1000000000"),
    "units_1e9": (_net("units", 10**9), "network units=1000000000"),
    "n_blocks_3000": (_net("n_blocks", 3000), "network n_blocks=3000"),
    "n_steps_mismatch": (_net("n_steps", 95), "does not match Reconstruction"),
    "huge_weight": (lambda g, m: _huge_dataset(_first_weight(g))(g, m),
                    "holds 10000.* values; the stored network has at most"),
    "huge_snapshot_weight": (lambda g, m: _huge_dataset(
        "Model/Snapshots/0000/" + _first_weight(g).split("/", 1)[1])(g, m),
        "snapshots are unreadable: .*holds 10000"),
    "huge_snapshot_latents": (_huge_dataset("Model/Snapshots/0000/mu"),
                              "snapshot 0000 mu is not positions x latent"),
    "huge_history": (lambda g, m: (g.__delitem__("Training_History"), g.create_dataset(
        "Training_History", shape=(10**9, 10), dtype="float32", chunks=(2**16, 10)),
        g["Training_History"].attrs.__setitem__("columns", ["loss"] * 10)),
        "Training_History has shape"),
    "json_nested_1e5": (_nested_json, "model config is not valid JSON: RecursionError"),
    "selected_snapshot_1e6": (lambda g, m: g["Model"].attrs.__setitem__(
        "selected_snapshot", 10**6), "selected_snapshot 1000000 is not one of"),
}


@pytest.mark.parametrize("name", list(TAMPERED))
def test_a_tampered_model_group_is_refused_unbuilt_and_unread(name, vae_group_copy,
                                                              tiny_vae_run):
    """Hostile sizes are refused from the config and the datasets' shapes alone: in well
    under the time and memory a build or read would take (115 s / 9 GB for
    latent_dim=10**8 before)."""
    import resource
    import time

    tamper, message = TAMPERED[name]
    with h5py.File(vae_group_copy, "r+") as f:
        tamper(f[tiny_vae_run["group"]], None)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    with h5py.File(vae_group_copy, "r") as f:
        with pytest.raises(BEPSFormatError, match=message):
            load_beta_vae(f[tiny_vae_run["group"]])
    assert time.perf_counter() - t0 < 30  # loose: a shared machine; the build took minutes
    # peak memory grew by less than 500 MB (the reads would need 4-37 GB)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0 < 500 * 1024
