"""Sphinx configuration of zse's documentation site.

Build (offline; ``pip install ".[docs]"`` first):

    sphinx-build -W --keep-going -b html docs docs/_build/html

Sphinx with numpydoc renders the docstrings as they are written (numpydoc), sphinx-gallery runs
the examples in ``docs/examples`` at every build and makes the gallery from what they show, and
MyST reads the Markdown pages (the tutorials, docs/ALGORITHM.md, bench/RESULTS.md). The command
reference and the parameter tables are generated from the code (``_ext/zse_docs.py``). Nothing
is fetched from the network: no intersphinx, no remote images, the theme's assets are local.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_ext"))

import zse  # noqa: E402

project = "zse"
author = "the zse developers"
copyright = "2026, the zse developers"  # noqa: A001
version = release = zse.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.doctest",
    "numpydoc",
    "myst_parser",
    "sphinx_gallery.gen_gallery",
    "zse_docs",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = [
    "_build",
    "examples/README.rst",
    "**/GALLERY_HEADER.rst",
    "napari_screenshot.py",
]
# Every cross-reference must resolve: a broken internal link is a warning, and the build runs
# with warnings as errors.
nitpicky = True
nitpick_ignore_regex = [
    # numpydoc turns type descriptions into references; these are plain words or NumPy/Python
    # types without intersphinx (no network at build time).
    ("py:class", r"(array_like|ndarray|optional|callable|path-like|numpy\..*|default.*|.*shape.*)"),
    ("py:class", r"(int|float|str|bool|dict|list|tuple|None|object|iterable|sequence|Path)\b.*"),
    ("py:class", r"(mpi4py\..*|MPI\..*|Generator|RandomState|.*Communicator.*)"),
    ("py:class", r"\{.*|.*\}|'.*'|\".*\"|or|of|and|the|a|an|\d.*"),
    ("py:class", r"zse\..*\._.*"),
]

myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

autosummary_generate = True
autodoc_default_options = {"members": True, "inherited-members": False}
autodoc_typehints = "none"  # numpydoc's sections carry the types
numpydoc_show_class_members = False
numpydoc_validation_checks = set()
numpydoc_xref_param_type = False

doctest_global_setup = "import numpy as np\nimport zse"

sphinx_gallery_conf = {
    "examples_dirs": ["examples"],
    "gallery_dirs": ["gallery"],
    "filename_pattern": r"/plot_",
    "ignore_pattern": r"(__init__|_gallery_data)\.py",
    "download_all_examples": False,
    "remove_config_comments": True,
    "matplotlib_animations": False,
    "abort_on_example_error": True,
    "within_subsection_order": "FileNameSortKey",
    "show_memory": False,
    "min_reported_time": 1,
}

html_theme = "furo"
html_title = f"zse {release}"
html_static_path: list[str] = []
templates_path = ["_templates"]
html_show_sourcelink = False
