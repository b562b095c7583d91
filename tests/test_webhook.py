"""The webhook sender against a real HTTP server on loopback."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from werkzeug.datastructures import Headers

from notice import ConfigurationError, NoticeType, notice_event
from notice.delivery import deliver
from notice.senders.http import TimedOut, deadline_session, post_with_deadline
from notice.senders.webhook import sign
from tests.support.emailapp import deliveries
from tests.support.waiting import wait_for
from tests.support.webhookserver import WebhookServer

SECRET = "test-webhook-secret-0123456789"
#: the receiver-side verification snippet lives in the email/webhooks guide
README = (Path(__file__).resolve().parent.parent / "docs" / "email.md").read_text()


@pytest.fixture
def hook() -> Iterator[WebhookServer]:
    with WebhookServer() as server:
        yield server


def _app(app_factory: Any, urls: list[str], **config: Any) -> Any:
    settings = {
        "NOTICE_SENDERS": ["webhook"],
        "NOTICE_WEBHOOK_URLS": urls,
        "NOTICE_WEBHOOK_SECRET": SECRET,
        "NOTICE_WEBHOOK_TIMEOUT": 2.0,
    }
    settings.update(config)
    return app_factory(**settings)


def _readme_verifier() -> Any:
    """The verification snippet exactly as docs/email.md shows it."""
    blocks = re.findall(r"```python\n(.*?)```", README, flags=re.S)
    [code] = [b for b in blocks if "def verify_notice_webhook" in b]
    namespace: dict[str, Any] = {}
    exec(code, namespace)  # noqa: S102 - our own README
    return namespace["verify_notice_webhook"]


def test_signed_json_post_per_url(app_factory, hook):
    other = hook.origin + "/other"
    app = _app(app_factory, [hook.url, other])
    with app.app_context():
        n = notice_event(
            5, NoticeType.COMMENT, subject="Ana commented", content="<hi>", url="/p/1"
        ).id
        assert sorted(d.target for d in deliveries(app)) == sorted([hook.url, other])
        assert {d.status for d in deliveries(app)} == {"Sent"}
    received = hook.requests
    assert sorted(r.path for r in received) == ["/hook", "/other"]
    verify = _readme_verifier()
    for r in received:
        assert r.method == "POST" and r.header("Content-Type") == "application/json"
        body = r.json()
        assert body["event"] == "notice"
        assert body["notice"]["id"] == n and body["notice"]["content"] == "<hi>"
        assert body["notice"]["notice_type"] == "Comment" and body["notice"]["user_id"] == 5
        assert r.header("X-Notice-Id") == str(n)
        timestamp = r.header("X-Notice-Timestamp")
        assert abs(int(timestamp) - time.time()) < 60
        assert r.header("X-Notice-Signature") == sign(SECRET, timestamp, r.body)
        # the README's snippet accepts the genuine request...
        assert verify(SECRET, r.body, Headers(r.headers)) is True
        # ...and refuses a changed body, a wrong secret, a re-dated or a stale request
        assert verify(SECRET, r.body.replace(b"<hi>", b"<ho>"), Headers(r.headers)) is False
        assert verify("another-secret-xxxxxxxx", r.body, Headers(r.headers)) is False
        redated = Headers(r.headers)
        redated["X-Notice-Timestamp"] = str(int(timestamp) + 1)
        assert verify(SECRET, r.body, redated) is False
        stale = Headers(r.headers)
        stale["X-Notice-Timestamp"] = str(int(timestamp) - 3600)
        stale["X-Notice-Signature"] = sign(SECRET, stale["X-Notice-Timestamp"], r.body)
        assert verify(SECRET, r.body, stale) is False


@pytest.mark.parametrize(
    ("reply", "status", "error"),
    [
        (204, "Sent", None),
        (410, "Dead", "webhook answered 410"),
        (400, "Dead", "webhook answered 400"),
        ((302, {"Location": "http://127.0.0.1:1/"}), "Dead", "webhook answered 302"),
        (503, "Error", "webhook answered 503"),
        ((429, {"Retry-After": "600"}), "Error", "webhook answered 429"),
        ("timeout", "Error", "timed out"),
    ],
)
def test_each_status_class(app_factory, hook, reply, status, error):
    hook.timeout_sleep = 2.0
    hook.script([reply])
    app = _app(app_factory, [hook.url], NOTICE_WEBHOOK_TIMEOUT=0.5)
    with app.app_context():
        notice_event(1, subject="s", content="")
        [d] = deliveries(app)
        assert d.status == status
        assert (d.last_error is None) if error is None else (error in d.last_error)
    assert len(hook.requests) == 1  # no redirect followed


def test_retry_after_is_honoured_and_the_retry_is_sent(app_factory, hook):
    hook.script([(429, {"Retry-After": "600"})])
    app = _app(app_factory, [hook.url])
    with app.app_context():
        notice_event(1, subject="s", content="")
        [d] = deliveries(app)
        delay = d.next_attempt_at - d.update_at
        assert timedelta(seconds=590) <= delay <= timedelta(seconds=660)
        report = deliver(app.notices.state(), now=d.next_attempt_at + timedelta(seconds=1))
        assert report.sent == 1
        [d] = deliveries(app)
        assert (d.status, d.attempts) == ("Sent", 2)
    first, second = hook.requests
    assert first.header("X-Notice-Id") == second.header("X-Notice-Id")
    assert first.body == second.body


def test_connection_refused_is_retried(app_factory):
    app = _app(app_factory, ["http://127.0.0.1:9/hook"])  # discard port: nothing listens
    with app.app_context():
        notice_event(1, subject="s", content="")
        [d] = deliveries(app)
        assert d.status == "Error" and "webhook request failed" in d.last_error


def test_removed_url_is_skipped(app_factory, hook):
    app = _app(app_factory, [hook.url], NOTICE_DISPATCH="none")
    with app.app_context():
        notice_event(1, subject="s", content="")
        app.notices.sender("webhook").urls = (hook.origin + "/new",)
        deliver(app.notices.state())
        [d] = deliveries(app)
        assert d.status == "Skipped" and "no longer" in d.last_error
    assert hook.requests == []


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"NOTICE_WEBHOOK_URLS": []}, "needs NOTICE_WEBHOOK_URLS"),
        ({"NOTICE_WEBHOOK_URLS": "http://x/"}, "must be a list"),
        ({"NOTICE_WEBHOOK_URLS": ["ftp://x/"]}, "not an http"),
        ({"NOTICE_WEBHOOK_SECRET": None}, "NOTICE_WEBHOOK_SECRET"),
        ({"NOTICE_WEBHOOK_SECRET": "short"}, "NOTICE_WEBHOOK_SECRET"),
        ({"NOTICE_WEBHOOK_TIMEOUT": 0}, "NOTICE_WEBHOOK_TIMEOUT"),
    ],
)
def test_bad_config_fails_at_startup(app_factory, hook, config, message):
    settings = {"NOTICE_WEBHOOK_URLS": [hook.url], **config}
    urls = settings.pop("NOTICE_WEBHOOK_URLS")
    with pytest.raises(ConfigurationError, match=message):
        _app(app_factory, urls, **settings)


def test_payload_is_the_notice_dict(app_factory, hook):
    app = _app(app_factory, [hook.url])
    with app.app_context():
        n = notice_event(3, subject="s", content="c", data={"k": [1, 2]})
        expected = json.loads(json.dumps(n.to_dict()))
    sent = hook.requests[0].json()["notice"]
    del expected["send_status"], expected["update_at"]  # bookkeeping, left out
    assert sent == expected


# --- a whole-request deadline and a bounded body ---------------------------------------

#: the HTTP-only tests need one database, not both
sqlite_only = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


@sqlite_only
def test_a_drip_fed_answer_times_out_at_the_deadline(app_factory, hook):
    # a byte every 0.5 s never trips a 1.5 s per-read timeout: the send used to wait out
    # the whole drip (until this receiver gives up after 6 s); 1.5 s is now the total
    hook.script(["drip"])
    app = _app(app_factory, [hook.url], NOTICE_WEBHOOK_TIMEOUT=1.5)
    with app.app_context():
        notice_event(1, subject="s", content="")
        [d] = deliveries(app)
    assert d.status == "Error"
    assert d.last_error == "TransientError: webhook timed out after 1.5 s"


@sqlite_only
@pytest.mark.parametrize(("status", "outcome"), [(200, "Sent"), (503, "Error")])
def test_the_status_decides_when_the_body_drips(app_factory, hook, status, outcome):
    # the status line and headers came in time: the answer is known, the slow body is
    # only detail (marking an accepted webhook failed would send it twice)
    hook.script([("drip-body", status)])
    app = _app(app_factory, [hook.url], NOTICE_WEBHOOK_TIMEOUT=1.5)
    with app.app_context():
        notice_event(1, subject="s", content="")
        [d] = deliveries(app)
    assert d.status == outcome
    assert d.last_error == (None if status == 200 else "TransientError: webhook answered 503")


@sqlite_only
def test_an_endless_body_is_cut_at_the_cap(app_factory, hook):
    hook.script([("endless", 503)])
    app = _app(app_factory, [hook.url])
    with app.app_context():
        notice_event(1, subject="s", content="")
        [d] = deliveries(app)
    assert (d.status, d.last_error) == ("Error", "TransientError: webhook answered 503")
    # the client hung up after its 4 KB: the receiver got out no more than the socket
    # buffers hold, not the 256 MB it was ready to stream (532 MB went into memory before)
    assert wait_for(lambda: hook.streamed, timeout=10)
    assert hook.streamed[0] < 32 * 1024 * 1024


def test_post_with_deadline_returns_at_most_max_body_bytes(hook):
    hook.script([("endless", 503), ("drip-body", 200), (500, {}, b"short")])
    session = deadline_session()
    endless = post_with_deadline(session, hook.url, data=b"{}", headers={}, timeout=5, max_body=100)
    assert (endless.status, endless.body) == (503, b"x" * 100)
    dripped = post_with_deadline(session, hook.url, data=b"{}", headers={}, timeout=1.2)
    # what arrived before the deadline, not the 1000 bytes announced
    assert dripped.status == 200 and len(dripped.body) < 1000
    short = post_with_deadline(session, hook.url, data=b"{}", headers={}, timeout=5)
    assert (short.status, short.body, short.text) == (500, b"short", "short")
    [request] = hook.requests[-1:]
    assert request.header("Accept-Encoding") == "identity"


def test_post_with_deadline_raises_timed_out_for_a_drip(hook):
    hook.script(["drip"])
    with pytest.raises(TimedOut, match=r"^timed out after 1 s$"):
        post_with_deadline(deadline_session(), hook.url, data=b"", headers={}, timeout=1)


def test_a_fully_read_answer_keeps_its_connection(hook):
    session = deadline_session()
    for _ in range(2):
        answer = post_with_deadline(session, hook.url, data=b"{}", headers={}, timeout=5)
        assert (answer.status, answer.body) == (200, b"ok")
    first, second = hook.requests
    assert first.peer == second.peer  # one keep-alive connection
