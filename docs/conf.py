"""Sphinx configuration of the pycroscopy-bevae documentation.

Build (warnings are errors, as in the test suite)::

    sphinx-build -W --keep-going -b html docs docs/_build/html

At build time this file writes (all git-ignored):

* ``notebooks_rendered/``: copies of ``../notebooks/*.ipynb`` and the page that lists
  them, so every committed notebook is rendered (never executed) and an empty folder
  still builds;
* ``api/modules/``: one API page per public module of the package;
* ``_generated/``: the ``--help`` text of the ``pycroscopy-bevae`` command and of each
  subcommand, the table of top-level names and the API toctree.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import os
import pkgutil
import shutil
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))

import pycroscopy_bevae  # noqa: E402

# -- project ---------------------------------------------------------------------------
project = "pycroscopy-bevae"
author = "pycroscopy-bevae developers"
copyright = "pycroscopy-bevae developers, MIT license"
release = pycroscopy_bevae.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "myst_nb",
]

source_suffix = {".rst": "restructuredtext", ".ipynb": "myst-nb"}
root_doc = "index"
exclude_patterns = ["_build", "_generated", "**.ipynb_checkpoints"]
templates_path: list[str] = []

# -- HTML (the default theme: no extra dependency) ---------------------------------------
html_theme = "alabaster"
html_title = f"pycroscopy-bevae {release}"
html_static_path: list[str] = []
html_theme_options = {
    "description": "BEPS hysteresis analysis: loop projection, dictionary learning and an "
                   "LSTM beta-VAE, as pyUSID processes",
    "fixed_sidebar": True,
}

# -- API reference ---------------------------------------------------------------------
# Every public module or subpackage of pycroscopy_bevae (no leading underscore) gets a
# page api/modules/<name>.rst: ``automodule`` with ``:members:``, which follows the
# module's ``__all__``, so new modules and newly exported names appear without editing
# the docs. These come first, in this order; any others follow alphabetically.
API_ORDER = ("io", "datasets", "preprocessing", "models", "process", "analysis", "viz",
             "cli", "exceptions")

autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autosummary_generate = False
# TensorFlow is imported lazily by the package, and no documented module imports it at
# module level, so nothing is mocked. (If one ever does, add
# ``autodoc_mock_imports = ["tensorflow", "keras"]``.)

numpydoc_show_class_members = False  # autodoc's :members: lists them
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

# -- notebooks (myst-nb): render the committed outputs, never execute ----------------------
nb_execution_mode = "off"
nb_merge_streams = True
myst_enable_extensions = ["dollarmath"]  # $...$ and $$...$$ math in notebook markdown
# The only Markdown sources are the notebooks, written for Jupyter rather than for this
# site: a heading-level jump or a relative link to a file outside docs/ (../README.md)
# is shown as plain text instead of failing the build. Widget outputs (ipywidgets
# viewers) have no static rendering.
suppress_warnings = ["myst.header", "myst.xref_missing", "mystnb.unknown_mime_type"]

NOTEBOOKS_SRC = ROOT / "notebooks"
NOTEBOOKS_OUT = DOCS / "notebooks_rendered"
API_PAGES = DOCS / "api" / "modules"
GENERATED = DOCS / "_generated"


# -- generated sources -----------------------------------------------------------------
def _write_if_changed(path: Path, text: str) -> None:
    """Write ``text`` unless the file already holds it (keeps Sphinx from re-reading pages)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")


def _copy_notebooks() -> None:
    """Copy the notebooks into the source tree and write the page that lists them."""
    NOTEBOOKS_OUT.mkdir(exist_ok=True)
    sources = sorted(NOTEBOOKS_SRC.glob("*.ipynb"))  # none when the folder is absent
    keep = {"index.rst", *(nb.name for nb in sources)}
    for old in NOTEBOOKS_OUT.iterdir():
        if old.name in keep:
            continue
        if old.is_dir():
            shutil.rmtree(old)
        else:
            old.unlink()
    for nb in sources:
        shutil.copy2(nb, NOTEBOOKS_OUT / nb.name)  # keeps mtimes: unchanged pages not re-read
    lines = [
        "Notebooks",
        "=========",
        "",
        "Executed notebooks from the repository's ``notebooks/`` folder, shown with the",
        "outputs they were committed with (the documentation build does not run them).",
        "",
    ]
    if sources:
        lines += [".. toctree::", "   :maxdepth: 1", ""]
        lines += [f"   {nb.stem}" for nb in sources]
    else:
        lines.append("No notebooks have been committed yet.")
    _write_if_changed(NOTEBOOKS_OUT / "index.rst", "\n".join(lines) + "\n")


def _write_cli_help() -> None:
    """Write the help of ``pycroscopy-bevae`` and each subcommand as an rst fragment."""
    from pycroscopy_bevae.cli import build_parser

    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "90"  # argparse wraps to the terminal width
    try:
        parser = build_parser()
        blocks = [("pycroscopy-bevae", parser.format_help())]
        for action in parser._actions:  # argparse keeps the subcommands only here
            if isinstance(action, argparse._SubParsersAction):
                blocks += [(f"pycroscopy-bevae {name}", sub.format_help())
                           for name, sub in action.choices.items()]
    finally:
        if old is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = old
    out = []
    for title, text in blocks:
        out += [title, "-" * len(title), "", ".. code-block:: text", ""]
        out += [("   " + line).rstrip() for line in text.rstrip().splitlines()]
        out.append("")
    _write_if_changed(GENERATED / "cli_help.rst.inc", "\n".join(out) + "\n")


def _api_modules() -> list[str]:
    found = {m.name for m in pkgutil.iter_modules(pycroscopy_bevae.__path__)
             if not m.name.startswith("_")}
    return [m for m in API_ORDER if m in found] + sorted(found - set(API_ORDER))


def _reexported_constants(module) -> list[str]:
    """Exported constants that ``automodule`` would leave out.

    autodoc documents a module-level constant only when its ``#:`` comment is in the
    module being documented; a constant that a package re-exports from a submodule
    (``io.SHO_FIELDS``) gets an explicit ``autodata`` entry instead, and its text from
    :func:`_constant_doc`.
    """
    from sphinx.pycode import ModuleAnalyzer

    try:
        own_docs = ModuleAnalyzer.for_module(module.__name__).find_attr_docs()
    except Exception:  # noqa: BLE001 - no source: every constant needs an entry
        own_docs = {}
    return [name for name in getattr(module, "__all__", [])
            if ("", name) not in own_docs
            and not any(test(getattr(module, name)) for test in
                        (inspect.isclass, inspect.isroutine, inspect.ismodule))]


_REEXPORTED: set[str] = set()  # full names of the constants given autodata entries


def _key(obj, name: str) -> tuple[str, str]:
    """Identity of a class or function across the modules that export it."""
    return getattr(obj, "__module__", ""), getattr(obj, "__qualname__", name)


def _homes(modules: list[str]) -> dict[tuple[str, str], str]:
    """Where each exported class or function is documented when several public modules
    export it (documenting it twice would be a duplicate-object error): in the module
    that defines it if that one exports it, else in the first module that does."""
    exporters: dict[tuple[str, str], list[str]] = {}
    for mod in modules:
        module = importlib.import_module(f"pycroscopy_bevae.{mod}")
        for name in getattr(module, "__all__", []):
            obj = getattr(module, name)
            if inspect.isclass(obj) or inspect.isroutine(obj):
                exporters.setdefault(_key(obj, name), []).append(mod)
    homes = {}
    for key, mods in exporters.items():
        defining = [m for m in mods if key[0].startswith(f"pycroscopy_bevae.{m}")]
        homes[key] = (defining or mods)[0]
    return homes


def _write_api_pages(modules: list[str]) -> None:
    """One page per public module, and the toctree of api/index.rst."""
    homes = _homes(modules)
    API_PAGES.mkdir(parents=True, exist_ok=True)
    for old in API_PAGES.glob("*.rst"):
        if old.stem not in modules:
            old.unlink()
    for mod in modules:
        module = importlib.import_module(f"pycroscopy_bevae.{mod}")
        title = module.__name__
        elsewhere = {}
        for name in getattr(module, "__all__", []):
            home = homes.get(_key(getattr(module, name), name), mod)
            if home != mod:
                elsewhere[name] = f"pycroscopy_bevae.{home}.{name}"
        lines = [title, "=" * len(title), "", f".. automodule:: {title}", "   :members:"]
        if elsewhere:
            lines.append(f"   :exclude-members: {', '.join(elsewhere)}")
        lines.append("")
        for name in _reexported_constants(module):
            _REEXPORTED.add(f"{title}.{name}")
            lines.append(f".. autodata:: {title}.{name}")
            if len(repr(getattr(module, name))) > 100:
                lines.append("   :no-value:")
            lines.append("")
        if elsewhere:
            links = ", ".join(f":obj:`~{target}`" for target in elsewhere.values())
            lines += [f"Also exported here, and documented in the module that defines them: "
                      f"{links}.", ""]
        _write_if_changed(API_PAGES / f"{mod}.rst", "\n".join(lines))
    toc = [".. toctree::", "   :maxdepth: 1", "", "   package"]
    toc += [f"   modules/{mod}" for mod in modules]
    _write_if_changed(GENERATED / "api_toctree.rst.inc", "\n".join(toc) + "\n")


def _canonical_targets(modules: list[str]) -> dict[str, str]:
    """``pycroscopy_bevae.X`` -> the documented name of ``X`` in a public module."""
    homes = _homes(modules)
    out: dict[str, str] = {}
    for mod in modules:
        module = importlib.import_module(f"pycroscopy_bevae.{mod}")
        for name in getattr(module, "__all__", []):
            home = homes.get(_key(getattr(module, name), name), mod)
            out.setdefault(f"pycroscopy_bevae.{name}", f"pycroscopy_bevae.{home}.{name}")
    return out


def _write_top_level_table(canonical: dict[str, str]) -> None:
    """An autosummary table of ``pycroscopy_bevae.__all__``, linked to the defining pages."""
    lines = [".. autosummary::", ""]
    lines += [f"   ~{canonical.get(f'pycroscopy_bevae.{n}', f'pycroscopy_bevae.{n}')}"
              for n in pycroscopy_bevae.__all__ if not n.startswith("_")]
    _write_if_changed(GENERATED / "top_level.rst.inc", "\n".join(lines) + "\n")


API_MODULES = _api_modules()
_CANONICAL = _canonical_targets(API_MODULES)
_copy_notebooks()
_write_cli_help()
_write_api_pages(API_MODULES)
_write_top_level_table(_CANONICAL)


# -- event handlers --------------------------------------------------------------------
def _resolve_top_level(app, env, node, contnode):
    """Resolve ``pycroscopy_bevae.LoopProjector`` etc. to where the object is documented."""
    if node.get("refdomain") != "py":
        return None
    target = _CANONICAL.get(node.get("reftarget", ""))
    if target is None:
        return None
    return env.get_domain("py").resolve_xref(env, node["refdoc"], app.builder,
                                             node["reftype"], target, node, contnode)


def _skip_member(app, what, name, obj, skip, options):
    """Leave out the ``set_*_request`` methods scikit-learn generates for its estimators."""
    if name.startswith("set_") and name.endswith("_request"):
        return True
    return None


def _constant_doc(app, what, name, obj, options, lines):
    """Give a re-exported constant the ``#:`` comment of the submodule that defines it
    (instead of the docstring of its type, e.g. ``tuple``)."""
    if what != "data" or name not in _REEXPORTED:
        return
    from sphinx.pycode import ModuleAnalyzer

    package, attr = name.rsplit(".", 1)
    for modname, module in sorted(sys.modules.items()):
        if not modname.startswith(package + ".") or getattr(module, attr, None) is not obj:
            continue
        try:
            docs = ModuleAnalyzer.for_module(modname).find_attr_docs()
        except Exception:  # noqa: BLE001 - no source to read: try the next module
            continue
        if ("", attr) in docs:
            lines[:] = list(docs["", attr])
            return
    lines.clear()  # no comment found: what autodoc has is the docstring of the type


def setup(app):
    app.connect("missing-reference", _resolve_top_level)
    app.connect("autodoc-skip-member", _skip_member)
    app.connect("autodoc-process-docstring", _constant_doc)
