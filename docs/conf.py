"""Sphinx configuration: the API reference is built from the docstrings (autodoc + napoleon for the
Google-style ``Args:`` / ``Returns:`` sections); pages are MyST Markdown, so the README's quick tour and
conventions are included from the README itself rather than copied.

Build (warnings are errors, as in CI): ``sphinx-build -W --keep-going -b html docs docs/_build``.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.abspath(".."))  # document this checkout, not an installed copy

import steerable

project = "steerable"
author = "steerable contributors"
copyright = "steerable contributors"
release = version = steerable.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "myst_parser",
]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
exclude_patterns = ["_build"]
root_doc = "index"

autodoc_member_order = "bysource"
autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_typehints = "signature"
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False

myst_heading_anchors = 3

html_theme = "alabaster"
html_title = f"steerable {release}"
