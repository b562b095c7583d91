"""Self-tests for the loopback SMTP and webhook harnesses in tests/support."""

from __future__ import annotations

import smtplib
import time
from email.message import EmailMessage

import pytest
import requests

from tests.support.smtpserver import SMTPServer
from tests.support.waiting import wait_for
from tests.support.webhookserver import WebhookServer

TIMEOUT = 3  # seconds, for every client operation


@pytest.fixture
def smtp_server():
    with SMTPServer() as server:
        yield server


@pytest.fixture
def webhook():
    with WebhookServer() as server:
        yield server


def _message(subject: str = "Hello", to: str = "bob@example.com") -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "alice@example.com"
    msg["To"] = to
    msg["Subject"] = subject
    msg.set_content("plain body\n")
    msg.add_alternative("<p>html body</p>\n", subtype="html")
    return msg


def _client(server: SMTPServer) -> smtplib.SMTP:
    return smtplib.SMTP(server.host, server.port, timeout=TIMEOUT)


# -- SMTP -------------------------------------------------------------------


def test_smtp_records_multipart_message(smtp_server):
    assert smtp_server.host == "127.0.0.1" and smtp_server.port > 0
    with _client(smtp_server) as client:
        client.send_message(_message(), to_addrs=["bob@example.com", "carol@example.com"])

    assert wait_for(lambda: len(smtp_server.messages) == 1, timeout=TIMEOUT)
    mail = smtp_server.messages[0]
    assert mail.mail_from == "alice@example.com"
    assert mail.rcpt_tos == ["bob@example.com", "carol@example.com"]
    msg = mail.message
    assert isinstance(msg, EmailMessage)
    assert msg["Subject"] == "Hello"
    assert msg["To"] == "bob@example.com"
    assert msg.get_content_type() == "multipart/alternative"
    assert msg.get_body(("plain",)).get_content() == "plain body\n"
    assert msg.get_body(("html",)).get_content() == "<p>html body</p>\n"


def test_smtp_scripted_data_replies(smtp_server):
    smtp_server.script_data(["451 4.3.0 Try again later", "250 OK"])
    with _client(smtp_server) as client:
        with pytest.raises(smtplib.SMTPDataError) as excinfo:
            client.send_message(_message("first"))
        assert excinfo.value.smtp_code == 451
        assert b"Try again later" in excinfo.value.smtp_error
        client.send_message(_message("second"))  # scripted 250
        client.send_message(_message("third"))  # queue empty -> default 250

    assert wait_for(lambda: len(smtp_server.messages) == 2, timeout=TIMEOUT)
    assert [m.message["Subject"] for m in smtp_server.messages] == ["second", "third"]


def test_smtp_refused_recipient(smtp_server):
    smtp_server.refuse_rcpt("ghost@example.com")
    with _client(smtp_server) as client:
        with pytest.raises(smtplib.SMTPRecipientsRefused) as excinfo:
            client.send_message(_message(to="ghost@example.com"))
        assert excinfo.value.recipients["ghost@example.com"][0] == 550
        # Partial refusal: the message still goes to the accepted recipient.
        refused = client.send_message(_message(), to_addrs=["GHOST@example.com", "bob@example.com"])
        assert refused == {"GHOST@example.com": (550, b"5.1.1 No such user")}

    assert wait_for(lambda: len(smtp_server.messages) == 1, timeout=TIMEOUT)
    assert smtp_server.messages[0].rcpt_tos == ["bob@example.com"]


def test_smtp_counts_connections(smtp_server):
    assert smtp_server.connections == 0  # aiosmtpd's startup probe is not counted
    with _client(smtp_server) as client:
        client.send_message(_message("one"))
        client.send_message(_message("two"))
    assert wait_for(lambda: len(smtp_server.messages) == 2, timeout=TIMEOUT)
    assert smtp_server.connections == 1

    with _client(smtp_server) as client:
        client.noop()
    assert wait_for(lambda: smtp_server.connections == 2, timeout=TIMEOUT)


def test_smtp_require_auth(smtp_server):
    smtp_server.require_auth("user", "secret")
    with _client(smtp_server) as client:
        with pytest.raises(smtplib.SMTPSenderRefused) as excinfo:
            client.send_message(_message())
        assert excinfo.value.smtp_code == 530
    with _client(smtp_server) as client:
        with pytest.raises(smtplib.SMTPAuthenticationError):
            client.login("user", "wrong")
    with _client(smtp_server) as client:
        client.login("user", "secret")  # smtplib picks AUTH PLAIN
        client.send_message(_message("plain"))
    with _client(smtp_server) as client:
        client.ehlo()
        client.user, client.password = "user", "secret"
        client.auth("LOGIN", client.auth_login, initial_response_ok=False)
        client.send_message(_message("login"))

    assert wait_for(lambda: len(smtp_server.messages) == 2, timeout=TIMEOUT)
    assert [m.auth_login for m in smtp_server.messages] == ["user", "user"]


def test_smtp_script_rejects_malformed_reply(smtp_server):
    with pytest.raises(ValueError):
        smtp_server.script_data(["try again"])


# -- webhook -------------------------------------------------------------------


def test_webhook_records_body_and_headers(webhook):
    assert webhook.url == f"http://127.0.0.1:{webhook.port}/hook"
    resp = requests.post(
        webhook.url,
        json={"event": "sent", "id": 7},
        headers={"X-Signature": "abc123"},
        timeout=TIMEOUT,
    )
    assert resp.status_code == 200 and resp.text == "ok"

    (req,) = webhook.requests
    assert req.path == "/hook"
    assert req.method == "POST"
    assert req.headers["X-Signature"] == "abc123"
    assert req.header("content-type") == "application/json"
    assert req.json() == {"event": "sent", "id": 7}
    assert req.body == b'{"event": "sent", "id": 7}'


def test_webhook_chunked_body(webhook):
    resp = requests.post(webhook.url, data=iter([b"ab", b"cd"]), timeout=TIMEOUT)
    assert resp.status_code == 200
    assert webhook.requests[0].body == b"abcd"


def test_webhook_scripted_statuses_in_order(webhook):
    webhook.script([500, (429, {"Retry-After": "1"}), 410, 400])
    with requests.Session() as session:  # also exercises keep-alive
        results = [session.post(webhook.url, data=b"x", timeout=TIMEOUT) for _ in range(5)]
    assert [r.status_code for r in results] == [500, 429, 410, 400, 200]
    assert results[1].headers["Retry-After"] == "1"
    assert results[4].text == "ok"
    assert len(webhook.requests) == 5


def test_webhook_timeout(webhook):
    webhook.timeout_sleep = 0.5
    webhook.script(["timeout"])
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.post(webhook.url, data=b"slow", timeout=0.2)
    assert webhook.requests[0].body == b"slow"
    # After the sleep the server is healthy again and the queue is empty.
    time.sleep(0.4)
    assert requests.post(webhook.url, data=b"x", timeout=TIMEOUT).status_code == 200


def test_webhook_stop_does_not_wait_for_timeout_sleep():
    server = WebhookServer().start()
    server.script(["timeout"])  # default timeout_sleep: 3 s
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.post(server.url, data=b"x", timeout=0.1)
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 1.0


def test_webhook_rejects_bad_script_item(webhook):
    with pytest.raises(ValueError):
        webhook.script(["slow"])
