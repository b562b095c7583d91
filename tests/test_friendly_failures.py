"""Friendly failures: a misspelt ``NOTICE_*`` key warns naming the closest setting, and
missing tables (migrations not run) raise :class:`TablesMissing` saying what to run,
answered by the pages and the JSON APIs with a 503 instead of a bare 500, on SQLite
and PostgreSQL."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask, request
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.exc import SQLAlchemyError

from notice import NoticeConfigWarning, Notices, TablesMissing, notice_event
from notice.config import DEFAULTS
from notice.migrations import TABLES

HINT = 'run "flask notice db upgrade"'


def _app(db_url: str, **config: Any) -> Flask:
    app = Flask("friendly")
    app.config.update(
        {
            "SQLALCHEMY_DATABASE_URI": db_url,
            "SECRET_KEY": "test",
            "NOTICE_SENDERS": ["memory"],
            "NOTICE_API_TOKENS": ["service-token-0123456789"],
            **config,
        }
    )
    db = SQLAlchemy()
    notices = Notices(db=db)

    @notices.user_loader
    def current_user() -> Any:
        return int(request.headers.get("X-User", 0)) or None

    db.init_app(app)
    notices.init_app(app)
    app.db = db  # type: ignore[attr-defined]
    app.notices = notices  # type: ignore[attr-defined]
    return app


# --- unknown keys ---------------------------------------------------------------------


def test_a_misspelt_key_warns_naming_the_closest_setting() -> None:
    with pytest.warns(NoticeConfigWarning) as caught:
        _app("sqlite://", NOTICE_DISPATH="thread", NOTICE_PAGE_SIZ=5, NOTICE_QQQXYZ=1)
    messages = sorted(str(w.message) for w in caught)
    assert messages == [
        "NOTICE_DISPATH: unknown setting; did you mean NOTICE_DISPATCH?",
        "NOTICE_PAGE_SIZ: unknown setting; did you mean NOTICE_PAGE_SIZE?",
        "NOTICE_QQQXYZ: unknown setting",
    ]
    # the warning points at the app's init_app call, not into the library
    assert {w.filename for w in caught} == {__file__}
    assert issubclass(NoticeConfigWarning, UserWarning)


def test_every_known_key_and_other_prefixes_pass_in_silence() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        known = {**DEFAULTS, "NOTICE_SENDERS": ["memory"], "NOTICE_API_TOKENS": []}
        _app("sqlite://", **known, NOTICEBOARD=1)


# --- missing tables -------------------------------------------------------------------


@pytest.fixture
def bare_app(db_url: str) -> Iterator[Flask]:
    """An app whose database has none of the library's tables (no create_all)."""
    app = _app(db_url)
    yield app
    app.notices.state(app).dispatcher.shutdown()  # type: ignore[attr-defined]
    with app.app_context():
        app.db.session.remove()  # type: ignore[attr-defined]
        app.db.engine.dispose()  # type: ignore[attr-defined]


def test_publishing_without_tables_says_to_run_the_migrations(bare_app: Flask) -> None:
    with bare_app.app_context():
        with pytest.raises(TablesMissing) as caught:
            notice_event(user_id=1, subject="hi", content="", notice_type="Comment")
        # the first table publishing reads (the preference gate's) is the one named
        table = caught.value.table
        assert table in TABLES
        assert f"'{table}'" in str(caught.value) and HINT in str(caught.value)
        assert isinstance(caught.value, RuntimeError)
        # the database's own error stays attached for the log
        assert table in str(caught.value.__cause__)
        with pytest.raises(TablesMissing):
            bare_app.notices.unread_count(1)  # type: ignore[attr-defined]


def test_other_tables_keep_their_database_error(bare_app: Flask) -> None:
    """Only the library's tables are translated: the app's own errors are its own."""
    with bare_app.app_context():
        session = bare_app.db.session  # type: ignore[attr-defined]
        with pytest.raises(SQLAlchemyError) as caught:
            session.execute(sa.text("SELECT * FROM app_not_there"))
        assert not isinstance(caught.value, TablesMissing)
        assert "app_not_there" in str(caught.value)
        session.rollback()


def test_pages_and_json_answer_503_with_the_hint(bare_app: Flask) -> None:
    client = bare_app.test_client()
    me = {"X-User": "1"}

    page = client.get("/notices/", headers=me)
    assert page.status_code == 503 and page.mimetype == "text/html"
    # the message is escaped into the page: its quotes become entities
    assert "run &#34;flask notice db upgrade&#34;" in page.text
    assert "&#39;notice&#39;" in page.text

    api = client.get("/notices/api/notices", headers=me)
    assert api.status_code == 503
    assert api.json["error"] == "tables_missing" and api.json["table"] == "notice"
    assert HINT in api.json["message"]

    service = client.get(
        "/api/v1/topics/list", headers={"Authorization": "Bearer service-token-0123456789"}
    )
    assert service.status_code == 503
    assert service.json["error"] == "tables_missing"
    assert service.json["table"].startswith("notice")

    # once the tables exist the same requests work: nothing stayed broken
    with bare_app.app_context():
        bare_app.db.create_all()  # type: ignore[attr-defined]
    assert client.get("/notices/", headers=me).status_code == 200
    assert client.get("/notices/api/notices", headers=me).json["notices"] == []


def test_cli_commands_name_the_missing_table(bare_app: Flask) -> None:
    result = bare_app.test_cli_runner().invoke(args=["notice", "stats"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    (line,) = result.output.strip().splitlines()
    assert line.startswith("Error: database error: the table 'notice")
    assert HINT in line
