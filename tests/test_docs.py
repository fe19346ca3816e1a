"""The Sphinx documentation builds with warnings as errors and says what it should.

The build runs on a copy of ``docs/`` in a temporary folder, next to a copy of the
committed notebooks plus one small notebook written here, so the rendering of
notebooks is checked even while ``notebooks/`` is empty, and nothing is written into
the repository.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import pkgutil
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = [pytest.mark.docs, pytest.mark.skipif(
    importlib.util.find_spec("sphinx") is None,
    reason="Sphinx is not installed (pip install -e '.[test]' or '.[docs]')",
)]


def _public_modules() -> list[str]:
    import pycroscopy_bevae

    return sorted(m.name for m in pkgutil.iter_modules(pycroscopy_bevae.__path__)
                  if not m.name.startswith("_"))


DUMMY_OUTPUT = "output of the dummy notebook, 0.104"


def _write_dummy_notebook(path: Path) -> None:
    import nbformat
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

    nb = new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    nb.cells = [
        new_markdown_cell("# Dummy notebook\n\nMath in markdown: $\\beta = 0.01$."),
        new_code_cell("epochs = 3", metadata={"tags": ["parameters"]}),
        new_code_cell(f"print({DUMMY_OUTPUT!r})", execution_count=1, outputs=[
            new_output("stream", name="stdout", text=DUMMY_OUTPUT + "\n")]),
    ]
    nbformat.write(nb, path)


@pytest.fixture(scope="module")
def html(tmp_path_factory) -> Path:
    """Build the documentation once; return the HTML folder."""
    work = tmp_path_factory.mktemp("docs_build")
    shutil.copytree(ROOT / "docs", work / "docs",
                    ignore=shutil.ignore_patterns("_build", "_generated", "modules",
                                                  "notebooks_rendered"))
    notebooks = work / "notebooks"
    notebooks.mkdir()
    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
        shutil.copy2(nb, notebooks / nb.name)
    _write_dummy_notebook(notebooks / "zz_dummy_for_test.ipynb")

    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p))
    out = work / "html"
    cmd = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-b", "html",
           "-d", str(work / "doctrees"), str(work / "docs"), str(out)]
    res = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=600)
    if res.returncode != 0:
        pytest.fail(f"sphinx-build -W failed (exit {res.returncode}):\n{res.stderr[-6000:]}",
                    pytrace=False)
    return out


def _text(page: Path) -> str:
    """Visible text of an HTML page (tags removed)."""
    return re.sub(r"<[^>]+>", " ", page.read_text(encoding="utf-8"))


def test_main_pages_exist(html):
    for page in ("index", "install", "quickstart", "method", "hdf5_layout", "target_group",
                 "scaling", "cli", "notebooks_rendered/index", "api/index"):
        assert (html / f"{page}.html").is_file(), page
    assert (html / "_images" / "projection_demo.png").is_file()
    assert "projection_demo.png" in (html / "method.html").read_text(encoding="utf-8")


def test_api_documents_every_exported_name(html):
    process = _text(html / "api" / "modules" / "process.html")
    for name in ("LoopProjector", "DictionaryLearningProcess", "BetaVAEProcess",
                 "load_beta_vae"):
        assert name in process
    modules = _public_modules()
    assert {"io", "datasets", "preprocessing", "models", "process", "analysis", "viz", "cli",
            "exceptions"} <= set(modules)
    for mod in modules:
        page = (html / "api" / "modules" / f"{mod}.html").read_text(encoding="utf-8")
        module = importlib.import_module(f"pycroscopy_bevae.{mod}")
        # documented on the page, or linked to the page of the module that defines it
        missing = [n for n in getattr(module, "__all__", [])
                   if f'id="pycroscopy_bevae.{mod}.{n}"' not in page
                   and not re.search(rf'href="[^"]*#pycroscopy_bevae\.\w+\.{n}"', page)]
        assert not missing, f"api/modules/{mod}.html lacks {missing}"
    # re-exported constants get the text of their '#:' comment, not the type's docstring
    io_page = _text(html / "api" / "modules" / "io.html")
    assert "Fields of the SHO-fit compound dataset" in io_page
    assert "Built-in immutable sequence" not in io_page
    # the top-level names link to where they are documented
    package = (html / "api" / "package.html").read_text(encoding="utf-8")
    assert 'href="modules/process.html#pycroscopy_bevae.process.BetaVAEProcess"' in package


def test_layout_page_names_the_datasets(html):
    text = _text(html / "hdf5_layout.html")
    for name in ("Fit-Loop_Projection_NNN", "Piezoresponse", "Resonance", "Rotation_Angle",
                 "Rejected_Fits", "Dictionary_Learning_NNN", "Coefficients", "Beta_VAE_NNN",
                 "Embedding", "Log_Variance", "Reconstruction_Error", "Training_History",
                 "Embedding_Snapshots", "Model/"):
        assert name in text, name
    assert "h5_target_group" in _text(html / "target_group.html")


def test_scaling_page_documents_every_lever(html):
    text = _text(html / "scaling.html")
    for name in ("max_mem_mb", "stream=True", "lstm_implementation", "mixed_float16",
                 "MirroredStrategy", "MultiWorkerMirroredStrategy", "TF_CONFIG",
                 "mpiexec", "run_mpi"):
        assert name in text, name
    # the parallel module has its API page
    assert (html / "api" / "modules" / "parallel.html").is_file()


def test_cli_page_shows_the_help_of_every_subcommand(html):
    from pycroscopy_bevae.cli import build_parser

    text = _text(html / "cli.html")
    assert "usage: pycroscopy-bevae" in text
    subparsers = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    assert subparsers
    for name in subparsers[0].choices:
        assert f"usage: pycroscopy-bevae {name}" in text, name


def test_notebooks_are_rendered_with_their_outputs(html):
    index = _text(html / "notebooks_rendered" / "index.html")
    names = [nb.stem for nb in sorted((ROOT / "notebooks").glob("*.ipynb"))]
    for name in [*names, "zz_dummy_for_test"]:
        assert (html / "notebooks_rendered" / f"{name}.html").is_file(), name
    assert "Dummy notebook" in index
    assert DUMMY_OUTPUT in _text(html / "notebooks_rendered" / "zz_dummy_for_test.html")
