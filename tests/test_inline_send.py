"""notice/sending.py: a sender that cannot block (``Sender.blocking = False``) is called
on the sending thread itself, in an app context of its own, with the same outcomes as
on a send thread. Every test runs on SQLite and
PostgreSQL."""

from __future__ import annotations

import threading

from flask import current_app

from notice import Sender, notice_event

CORE = {"NOTICE_STREAM": False}


class Recorder(Sender):
    """Records the thread and the app context's session of each send."""

    name = "recorder"

    def __init__(self, blocking: bool, fail: BaseException | None = None) -> None:
        self.blocking = blocking  # type: ignore[misc]
        self.fail = fail
        self.calls: list[tuple[str, object]] = []

    def send(self, notice):
        app = current_app._get_current_object()
        self.calls.append((threading.current_thread().name, app.db.session()))
        if self.fail is not None:
            raise self.fail


def _delivery(app, notice_id):
    app.db.session.rollback()
    return app.notices.Delivery.query.filter_by(notice_id=notice_id, channel="recorder").one()


def test_a_non_blocking_sender_is_called_inline_in_its_own_app_context(app_factory):
    app = app_factory(NOTICE_DISPATCH="sync", **CORE)
    inline = app.notices.register_sender(Recorder(blocking=False))
    with app.app_context():
        caller = threading.current_thread().name
        notice = notice_event(1, subject="s", content="")
        assert notice.send_status == "Sent"
        assert _delivery(app, notice.id).status == "Sent"
        # the memory sender, built in, cannot block either
        assert [n.id for n in app.notices.sender("memory").outbox] == [notice.id]
        [(thread, session)] = inline.calls
        assert thread == caller
        # a fresh app context, as a send thread gets: not the publisher's session
        assert session is not app.db.session()


def test_a_blocking_sender_still_gets_a_send_thread(app_factory):
    app = app_factory(NOTICE_DISPATCH="sync", **CORE)
    threaded = app.notices.register_sender(Recorder(blocking=True))
    with app.app_context():
        notice_event(1, subject="s", content="")
        [(thread, _)] = threaded.calls
        assert thread != threading.current_thread().name
        assert thread.endswith(":send-recorder")


def test_an_inline_failure_is_recorded_as_a_failed_send(app_factory):
    app = app_factory(NOTICE_DISPATCH="sync", **CORE)
    app.notices.register_sender(Recorder(blocking=False, fail=RuntimeError("boom")))
    with app.app_context():
        notice = notice_event(1, subject="s", content="")
        delivery = _delivery(app, notice.id)
        assert delivery.status in ("Error", "Dead")
        assert "boom" in (delivery.last_error or "")
        assert delivery.claim_token is None


def test_a_base_exception_from_an_inline_send_is_recorded_as_on_a_thread(app_factory):
    # a send thread records a sender's KeyboardInterrupt/SystemExit as that delivery's
    # failure (else the outcome was lost); inline, the delivery must not stay leased
    app = app_factory(NOTICE_DISPATCH="sync", **CORE)
    app.notices.register_sender(Recorder(blocking=False, fail=KeyboardInterrupt()))
    with app.app_context():
        notice = notice_event(1, subject="s", content="")
        delivery = _delivery(app, notice.id)
        assert delivery.status in ("Error", "Dead")
        assert delivery.claim_token is None
        assert [n.id for n in app.notices.sender("memory").outbox] == [notice.id]
