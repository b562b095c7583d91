"""Every README/docs snippet runs as written, and the docs site builds without a warning.

The house convention (docs/development.md): the ``python`` blocks of one markdown file
run in order in one namespace, in a fresh temporary working directory; a block preceded
by the line ``<!-- fragment -->`` is only compiled.
"""

from __future__ import annotations

import contextvars
import shutil
import subprocess
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
FRAGMENT = "<!-- fragment -->"


def _markdown_files() -> list[Path]:
    pages = [p for p in DOCS.rglob("*.md") if "_build" not in p.relative_to(DOCS).parts]
    return [ROOT / "README.md", *sorted(pages)]


@dataclass(frozen=True)
class Snippet:
    path: Path
    line: int  # 1-based line of the opening fence
    code: str
    fragment: bool


def snippets(path: Path) -> list[Snippet]:
    """The ``python`` fenced blocks of *path*, parsed as CommonMark (so a fence shown
    inside a longer fence is not taken for a block of its own)."""
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    found = []
    for token in MarkdownIt("commonmark").parse(text):
        if token.type != "fence" or token.info.split()[:1] != ["python"] or not token.map:
            continue
        start = token.map[0]
        before = lines[start - 1].strip() if start else ""
        found.append(Snippet(path, start + 1, token.content, before == FRAGMENT))
    return found


def _compile(snippet: Snippet) -> object:
    # leading newlines make tracebacks point at the markdown file's own line numbers
    name = str(snippet.path.relative_to(ROOT))
    return compile("\n" * snippet.line + snippet.code, name, "exec")


def test_snippet_parser_finds_blocks_and_fragments(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "# T\n\n```python\nx = 1\n```\n\n<!-- fragment -->\n```python\nundefined()\n```\n\n"
        "````markdown\n```python\nnot_a_block()\n```\n````\n\n"
        "- item\n\n  ```python\n  y = x\n  ```\n"
    )
    found = snippets(page)
    assert [(s.line, s.code, s.fragment) for s in found] == [
        (3, "x = 1\n", False),
        (8, "undefined()\n", True),
        (20, "y = x\n", False),
    ]


@pytest.mark.parametrize(
    "path", _markdown_files(), ids=lambda p: str(p.relative_to(ROOT)).replace("/", ".")
)
def test_snippets_run_as_written(
    path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CI", "true")
    # a module name that is not importable: Flask(__name__) then roots the app (and its
    # instance folder, where a relative sqlite:/// URL lands) in the temporary directory
    namespace: dict[str, object] = {"__name__": f"snippet_{path.stem.replace('-', '_')}"}
    # a copied context: an app context a snippet pushes (and never pops, as a script
    # would) stays in this file's run instead of leaking into the next test
    contextvars.copy_context().run(_run_all, snippets(path), namespace)


def _run_all(found: list[Snippet], namespace: dict[str, object]) -> None:
    for snippet in found:
        where = f"{snippet.path.relative_to(ROOT)}:{snippet.line}"
        try:
            code = _compile(snippet)
        except SyntaxError as exc:
            pytest.fail(f"{where}: the python block does not compile: {exc}")
        if snippet.fragment:
            continue
        try:
            exec(code, namespace)  # running the docs is the point
        except Exception as exc:
            pytest.fail(
                f"{where}: the python block fails as written ({type(exc).__name__}: {exc}); "
                f"fix it, or mark it {FRAGMENT!r} if it cannot run on its own\n"
                + "".join(traceback.format_exception(exc)[-4:])
            )


@pytest.mark.slow
def test_docs_build_without_warnings(tmp_path: Path) -> None:
    """Build a copy of docs/ with a new page dropped into guide/: no warning (broken
    markup, a bad docstring, a duplicate toctree entry), the new page is in the table of
    contents with no edit of index.md, the configuration reference lists every key and
    the API reference every public name."""
    from notice.config import DEFAULTS

    source = tmp_path / "docs"
    shutil.copytree(DOCS, source, ignore=shutil.ignore_patterns("_build"))
    shutil.copy(ROOT / "README.md", tmp_path)  # docs/quickstart.md includes part of it
    (source / "guide").mkdir(exist_ok=True)
    (source / "guide" / "zz-probe.md").write_text("# Probe page\n\nDropped in by a test.\n")
    out = tmp_path / "html"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "sphinx",
            "-W",
            "--keep-going",
            "-q",
            "-b",
            "html",
            str(source),
            str(out),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=600,
    )
    assert run.returncode == 0, f"sphinx-build failed:\n{run.stdout}\n{run.stderr}"
    index = (out / "index.html").read_text(encoding="utf-8")
    assert 'href="guide/zz-probe.html"' in index
    reference = (out / "configuration.html").read_text(encoding="utf-8")
    missing = [key for key in DEFAULTS if f">{key}<" not in reference]
    assert not missing, f"configuration reference lacks {missing}"
    # a key written as code on any page links to its row in the reference
    senders = (out / "senders.html").read_text(encoding="utf-8")
    assert 'href="configuration.html#notice-send-timeout"' in senders
    api = (out / "api.html").read_text(encoding="utf-8")
    import notice

    undocumented = [name for name in notice.__all__ if f'id="notice.{name}"' not in api]
    assert not undocumented, f"API reference lacks {undocumented}"


def test_config_reader_groups_keys_under_their_comments(tmp_path: Path) -> None:
    sys.path.insert(0, str(DOCS / "_ext"))
    try:
        from notice_config import config_entries
    finally:
        sys.path.remove(str(DOCS / "_ext"))
    config = tmp_path / "config.py"
    config.write_text(
        "DEFAULTS: dict = {\n"
        "    # --- core: delivery ---\n"
        "    #: first line\n"
        "    #: second line\n"
        '    "NOTICE_A": [\n        "x",\n    ],\n'
        "    #: shared by B and C\n"
        '    "NOTICE_B": 1,\n    "NOTICE_C": 2,\n'
        "    # --- web ---\n"
        '    "NOTICE_D": None,\n'
        "}\n"
    )
    rows = [(e.section, e.keys, e.doc) for e in config_entries(config)]
    assert rows == [
        ("core: delivery", ["NOTICE_A"], "first line second line"),
        ("core: delivery", ["NOTICE_B", "NOTICE_C"], "shared by B and C"),
        ("web", ["NOTICE_D"], ""),  # no comment: tests/test_readme.py fails on it
    ]
    config.write_text('OTHER = {}\nDEFAULTS = {"NOTICE_A": 1, **OTHER}\n')
    with pytest.raises(LookupError, match="string literal"):
        config_entries(config)
