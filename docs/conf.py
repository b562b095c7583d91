"""Sphinx configuration of the ``notice`` documentation (MyST markdown, furo theme).

Build it with warnings as errors, as ``.ci/run`` and ``tests/test_docs.py`` do::

    sphinx-build -W --keep-going -b html docs docs/_build/html
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_ext"))

project = "notice"
copyright = "the notice authors"
author = "the notice authors"

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "notice_config",
]

source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "_ext", "Thumbs.db", ".DS_Store"]

# MyST: ``{directive}`` fences, anchors on headings for [links](page.md#anchor)
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

autodoc_member_order = "bysource"
autodoc_typehints = "description"
# types only for parameters the docstring describes (dataclass fields stay readable)
autodoc_typehints_description_target = "documented"
autodoc_default_options = {"members": True, "show-inheritance": True}
# annotations name types of other libraries autodoc cannot always resolve
nitpicky = False

# keep "sync" and 'thread' as typed: config values are copied from these pages
smartquotes = False

html_theme = "furo"
html_title = "notice"
