"""The README's commands and the code must not drift apart."""

from __future__ import annotations

import re
from pathlib import Path

import notice

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def _console_commands() -> list[str]:
    blocks = re.findall(r"```console\n(.*?)```", README, flags=re.S)
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip()]


def test_ci_runs_the_readme_test_command():
    test_command = next(c for c in _console_commands() if "pytest" in c)
    ci = (ROOT / ".ci" / "run").read_text()
    assert f"({test_command})" in ci


def test_quickstart_starts_the_example_app():
    assert "python -m example_app" in _console_commands()[0]


def test_public_names_are_sorted_and_exported():
    assert notice.__all__ == sorted(notice.__all__)
    for name in notice.__all__:
        assert hasattr(notice, name), name


def test_every_config_key_is_documented():
    """The configuration reference (docs/configuration.md) is generated from the
    ``#:`` comments of notice/config.py: every key must be covered, with a comment."""
    import sys

    from notice.config import DEFAULTS

    sys.path.insert(0, str(ROOT / "docs" / "_ext"))
    try:
        from notice_config import config_entries
    finally:
        sys.path.remove(str(ROOT / "docs" / "_ext"))

    documented = {key: entry.doc for entry in config_entries() for key in entry.keys}
    assert list(documented) == list(DEFAULTS), "the generator reads another key list"
    undocumented = [key for key, doc in documented.items() if not doc.strip()]
    assert not undocumented, f"no #: comment in notice/config.py for {undocumented}"
    assert "{notice-config}" in (ROOT / "docs" / "configuration.md").read_text()


def test_links_to_the_docs_resolve():
    """The README's guides moved to docs/: every relative link must name a file there."""
    targets = re.findall(r"\]\(((?!https?:|#)[^)#\s]+)(?:#[^)]*)?\)", README)
    assert any(t.startswith("docs/") for t in targets)
    missing = [t for t in targets if not (ROOT / t).exists()]
    assert not missing, f"README links to missing files: {missing}"
