"""Sphinx directive ``notice-config``: the configuration reference, generated from
``notice/config.py``.

The reference is read from the source rather than written by hand, so a key added to
``DEFAULTS`` appears in the docs with its default and its ``#:`` comment, and the docs
cannot drift from the code. ``# --- title ---`` comments start a section; keys that
follow one ``#:`` comment with none of their own share its row (``NOTICE_RETRY_BASE``,
``NOTICE_RETRY_CAP`` and ``NOTICE_RETRY_JITTER``). :func:`config_entries` is also used
by ``tests/test_readme.py`` to check that every key is documented.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def _config_py() -> Path:
    """The ``config.py`` of the installed ``notice`` (the docs may be built from a copy)."""
    import notice.config

    return Path(notice.config.__file__)


_SECTION = re.compile(r"^#\s*---\s*(.*?)\s*-*\s*$")


@dataclass
class Entry:
    """One row of the reference: keys sharing one ``#:`` comment."""

    section: str
    doc: str
    keys: list[str] = field(default_factory=list)


def config_entries(path: Path | None = None) -> list[Entry]:
    """Parse the ``DEFAULTS`` dict literal of *path* into rows, in source order.

    :param path: the ``config.py`` to read.
    :raises LookupError: when the file has no ``DEFAULTS = {...}`` literal.
    """
    path = path or _config_py()
    source = path.read_text(encoding="utf-8")
    lines = source.splitlines()
    node = _defaults_dict(ast.parse(source))
    entries: list[Entry] = []
    section, previous_end = "", node.lineno
    for key in node.keys:
        if not isinstance(key, ast.Constant) or not isinstance(key.value, str):
            # a **spread or a computed key: its keys and comments cannot be read here
            raise LookupError(
                f"{path}: DEFAULTS must spell out every key as a string literal after "
                f"line {previous_end}, each with its #: comment"
            )
        doc: list[str] = []
        # the comment lines between the previous entry and this key belong to this key
        for line in lines[previous_end : key.lineno - 1]:
            text = line.strip()
            heading = _SECTION.match(text)
            if heading:
                section = heading.group(1).strip()
            elif text.startswith("#:"):
                doc.append(text[2:].strip())
        if doc or not entries or entries[-1].section != section:
            entries.append(Entry(section=section, doc=" ".join(doc)))
        entries[-1].keys.append(key.value)
        value = node.values[node.keys.index(key)]
        previous_end = value.end_lineno or value.lineno
    return entries


def _defaults_dict(tree: ast.Module) -> ast.Dict:
    for stmt in tree.body:
        target = getattr(stmt, "target", None) or (getattr(stmt, "targets", None) or [None])[0]
        value = getattr(stmt, "value", None)
        if isinstance(target, ast.Name) and target.id == "DEFAULTS" and isinstance(value, ast.Dict):
            return value
    raise LookupError("notice/config.py has no DEFAULTS = {...} literal")


def anchor(key: str) -> str:
    """The HTML id of *key*'s row: ``NOTICE_SEND_TIMEOUT`` -> ``notice-send-timeout``."""
    return key.lower().replace("_", "-")


def _inline(text: str, keys: set[str]) -> list[Any]:
    """Text with ``code`` / `code` spans as literals and every key named in it linked
    to its own row (comments say "must be longer than NOTICE_SEND_TIMEOUT")."""
    from docutils import nodes

    parts: list[Any] = []
    pos = 0
    for match in re.finditer(r"``(.+?)``|`([^`]+?)`|\b(NOTICE_[A-Z0-9_]+)\b", text):
        if match.start() > pos:
            parts.append(nodes.Text(text[pos : match.start()]))
        key = match.group(3)
        if key and key in keys:
            link = nodes.reference("", "", refid=anchor(key), internal=True)
            link += nodes.literal(key, key)
            parts.append(link)
        else:
            code = match.group(1) or match.group(2) or key
            parts.append(nodes.literal(code, code))
        pos = match.end()
    if pos < len(text):
        parts.append(nodes.Text(text[pos:]))
    return parts


def setup(app: Any) -> dict[str, Any]:
    from docutils import nodes
    from sphinx.util.docutils import SphinxDirective

    class NoticeConfigDirective(SphinxDirective):
        """``{notice-config}``: one table per section of ``DEFAULTS``."""

        def run(self) -> list[nodes.Node]:
            from notice.config import DEFAULTS

            self.env.note_dependency(str(_config_py()))
            result: list[nodes.Node] = []
            by_section: dict[str, list[Entry]] = {}
            for entry in config_entries():
                by_section.setdefault(entry.section, []).append(entry)
            for section, entries in by_section.items():
                if section:
                    result.append(nodes.rubric(section, section[:1].upper() + section[1:]))
                result.append(_table(entries, DEFAULTS))
            return result

    def _table(entries: list[Entry], defaults: dict[str, Any]) -> nodes.table:
        table = nodes.table(classes=["notice-config"])
        group = nodes.tgroup(cols=3)
        table += group
        for width in (30, 20, 50):
            group += nodes.colspec(colwidth=width)
        head = nodes.thead()
        head += _row([[nodes.Text("key")], [nodes.Text("default")], [nodes.Text("meaning")]])
        group += head
        body = nodes.tbody()
        for entry in entries:
            keys: list[Any] = []
            values: list[Any] = []
            for i, key in enumerate(entry.keys):
                if i:
                    keys.append(nodes.Text(" / "))
                    values.append(nodes.Text(" / "))
                keys.append(nodes.literal(key, key, ids=[anchor(key)]))
                shown = repr(defaults[key])
                values.append(nodes.literal(shown, shown))
            body += _row([keys, values, _inline(entry.doc, set(defaults))])
        group += body
        return table

    def _row(cells: list[list[Any]]) -> nodes.row:
        row = nodes.row()
        for content in cells:
            entry = nodes.entry()
            paragraph = nodes.paragraph()
            paragraph.extend(content)
            entry += paragraph
            row += entry
        return row

    def link_keys(app: Any, doctree: nodes.document, docname: str) -> None:
        """Make every ``NOTICE_*`` key written as code on any page a link to its row in
        the configuration reference, so a reader is one click from its default."""
        from notice.config import DEFAULTS

        target = app.config.notice_config_page
        if not hasattr(app.builder, "get_relative_uri") or target not in app.env.all_docs:
            return
        for literal in list(doctree.findall(nodes.literal)):
            key = literal.astext()
            if key not in DEFAULTS or isinstance(literal.parent, nodes.reference):
                continue
            if literal.get("ids"):  # the key's own row
                continue
            uri = app.builder.get_relative_uri(docname, target) if docname != target else ""
            link = nodes.reference("", "", refuri=f"{uri}#{anchor(key)}", internal=True)
            literal.replace_self(link)
            link += literal

    app.add_config_value("notice_config_page", "configuration", "env")
    app.add_directive("notice-config", NoticeConfigDirective)
    app.connect("doctree-resolved", link_keys)
    return {"parallel_read_safe": True, "parallel_write_safe": True, "version": "1"}
