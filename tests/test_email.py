"""The email sender, end to end through a real SMTP server on loopback (aiosmtpd)."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from datetime import timedelta
from urllib.parse import urlsplit

import pytest

from notice import ConfigurationError, NoticeType, notice_event
from notice.delivery import deliver
from notice.senders.email import EmailSender
from tests.support.emailapp import BASE_URL, FROM, address, deliveries, email_app
from tests.support.smtpserver import SMTPServer


@pytest.fixture
def smtp() -> Iterator[SMTPServer]:
    with SMTPServer() as server:
        yield server


def _parts(mail):
    msg = mail.message
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    return msg, text, html


def test_email_has_both_parts_headers_escaping_and_unsubscribe(app_factory, smtp):
    app = email_app(app_factory, smtp)
    with app.app_context():
        n = notice_event(
            7,
            NoticeType.COMMENT,
            subject='<b>Ana</b> & "Bo" commented',
            content="<script>alert(1)</script>\nsecond line",
            url="/graphs/7?tab=1&x=2",
        )
        [d] = deliveries(app)
        assert (d.channel, d.status, d.attempts) == ("email", "Sent", 1)
        app.db.session.refresh(n)
        assert n.emailed_at is not None  # the digest will not list it again

    [mail] = smtp.messages
    msg, text, html = _parts(mail)
    assert mail.rcpt_tos == [address(7)] and mail.mail_from == "noreply@example.com"
    assert msg["To"] == address(7) and msg["From"] == FROM
    assert msg["Subject"] == '<b>Ana</b> & "Bo" commented'
    assert msg["Message-ID"].endswith("@example.com>") and msg["Date"]
    # text part: as written; HTML part: escaped, never markup
    assert "<script>alert(1)</script>\nsecond line" in text
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;b&gt;Ana&lt;/b&gt; &amp; &#34;Bo&#34; commented" in html
    assert f'href="{BASE_URL}/graphs/7?tab=1&amp;x=2"' in html
    assert f"{BASE_URL}/graphs/7?tab=1&x=2" in text
    # one-click unsubscribe (RFC 8058), the same link in both parts
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    link = msg["List-Unsubscribe"].strip("<>")
    assert link.startswith(f"{BASE_URL}/notices/unsubscribe/")
    assert link in text and link in html

    client = app.test_client()
    path = urlsplit(link).path
    assert b"Stop receiving Comment notices by email?" in client.get(path).data
    with app.app_context():
        assert app.notices.preferences.enabled(7, "Comment", "email")
    # what a mail client sends for one-click: no cookie, no CSRF token
    response = client.post(path, data={"List-Unsubscribe": "One-Click"})
    assert response.status_code == 200 and b"You are unsubscribed" in response.data
    with app.app_context():
        assert not app.notices.preferences.enabled(7, "Comment", "email")
        assert app.notices.preferences.enabled(7, "Like", "email")
        notice_event(7, NoticeType.COMMENT, subject="again", content="")
        notice_event(7, NoticeType.LIKE, subject="a like", content="")
        assert len(deliveries(app)) == 2  # the first Comment and the Like; not the new Comment
    assert [m.message["Subject"] for m in smtp.messages] == [msg["Subject"], "a like"]


def test_javascript_url_never_becomes_a_link(app_factory, smtp):
    app = email_app(app_factory, smtp)
    with app.app_context():
        notice_event(1, subject="x", content="", url="javascript:alert(1)")
    _, text, html = _parts(smtp.messages[0])
    assert "javascript:" not in html and "javascript:" not in text


def test_only_same_site_paths_and_allowed_origins_are_links_in_emails(app_factory, smtp):
    app = email_app(app_factory, smtp, NOTICE_LINK_ORIGINS=["https://docs.example.org"])
    links = {
        "/posts/1": f"{BASE_URL}/posts/1",
        "https://docs.example.org/a": "https://docs.example.org/a",
        f"{BASE_URL}/own": f"{BASE_URL}/own",  # NOTICE_BASE_URL's origin is allowed
    }
    not_links = (
        "//evil.example/x",
        "/\\evil.example",
        "javascript:alert(1)",
        "https://other.example/x",
    )
    with app.app_context():
        for url in (*links, *not_links):
            notice_event(1, subject=url, content="", url=url)
    for mail in smtp.messages:
        url = mail.message["Subject"]
        _, text, html = _parts(mail)
        if url in links:
            assert f'href="{links[url]}"' in html and links[url] in text
        else:  # shown as the subject only; every link is one of ours
            assert all(h.startswith(BASE_URL) for h in re.findall(r'href="([^"]*)"', html))
            assert "Open</a>" not in html and text.count(url) == 1
    assert len(smtp.messages) == len(links) + len(not_links)


def test_get_actions_are_links_and_references_are_named_in_emails(app_factory, smtp):
    app = email_app(app_factory, smtp, NOTICE_LINK_ORIGINS=["https://docs.example.org"])
    calls = []

    @app.notices.reference_resolver
    def names(kind, ids):
        calls.append(kind)
        return {i: (f"<i>{kind}</i> {i}", f"/{kind}s/{i}") for i in ids}

    with app.app_context():
        notice_event(
            1,
            subject="commented",
            content="",
            actor=("user", 7),
            target=("post", 3),
            actions=[
                {"label": "Reply & <more>", "url": "/posts/3#reply"},
                {"label": "Approve", "url": "/posts/3/approve", "method": "POST"},
                {"label": "Docs", "url": "https://docs.example.org/help"},
            ],
        )
    _, text, html = _parts(smtp.messages[0])
    assert sorted(calls) == ["post", "user"]
    # GET actions are links (absolute, escaped); a POST one needs the app's form: left out
    buttons = re.findall(r'<a href="([^"]*)" style="[^"]*">([^<]*)</a>', html)
    assert buttons == [
        (f"{BASE_URL}/posts/3#reply", "Reply &amp; &lt;more&gt;"),
        ("https://docs.example.org/help", "Docs"),
    ]
    assert "Approve" not in html and "Approve" not in text
    assert f"Reply & <more>: {BASE_URL}/posts/3#reply" in text
    # the resolver's names, escaped, with absolute links
    assert f'<a href="{BASE_URL}/users/7">&lt;i&gt;user&lt;/i&gt; 7</a>' in html
    assert f'<a href="{BASE_URL}/posts/3">&lt;i&gt;post&lt;/i&gt; 3</a>' in html
    assert "<i>user</i> 7 → <i>post</i> 3" in text


def test_a_fan_out_names_references_once_per_type_for_its_batch(app_factory, smtp):
    app = email_app(app_factory, smtp)
    calls = []

    @app.notices.reference_resolver
    def names(kind, ids):
        calls.append((kind, ids))
        return {i: f"{kind} {i}" for i in ids}

    with app.app_context():
        notice_event(
            [1, 2, 3, 4, 5], subject="s", content="", actor=("user", 7), target=("post", 3)
        )
    assert len(smtp.messages) == 5
    assert sorted(calls) == [("post", ["3"]), ("user", ["7"])]
    assert all("user 7 → post 3" in _parts(m)[1] for m in smtp.messages)


def test_451_is_retried_then_sent(app_factory, smtp):
    smtp.script_data(["451 4.3.0 Try again later"])
    app = email_app(app_factory, smtp)
    with app.app_context():
        notice_event(1, subject="hello", content="")
        [d] = deliveries(app)
        assert (d.status, d.attempts) == ("Error", 1)
        assert "451" in d.last_error and "Try again later" in d.last_error
        state = app.notices.state()
        # not due yet: nothing happens
        assert deliver(state, now=d.next_attempt_at - timedelta(seconds=1)).claimed == 0
        report = deliver(state, now=d.next_attempt_at + timedelta(seconds=1))
        assert (report.claimed, report.sent) == (1, 1)
        [d] = deliveries(app)
        assert (d.status, d.attempts) == ("Sent", 2)
    assert len(smtp.messages) == 1


def test_550_is_final(app_factory, smtp):
    smtp.script_data(["550 5.7.1 Message rejected"])
    app = email_app(app_factory, smtp)
    with app.app_context():
        notice_event(1, subject="hello", content="")
        [d] = deliveries(app)
        assert d.status == "Dead" and "550" in d.last_error
        assert deliver(app.notices.state(), now=d.next_attempt_at + timedelta(days=1)).claimed == 0
    assert smtp.messages == []


def test_refused_recipient_is_final_for_that_delivery_only(app_factory, smtp):
    smtp.refuse_rcpt(address(2), "550 5.1.1 No such user")
    app = email_app(app_factory, smtp)
    with app.app_context():
        notice_event([1, 2, 3], subject="hello", content="")
        by_user = {d.notice.user_id: d for d in deliveries(app)}
        assert {u: d.status for u, d in by_user.items()} == {1: "Sent", 2: "Dead", 3: "Sent"}
        assert "recipient refused: 550" in by_user[2].last_error
    assert sorted(m.rcpt_tos[0] for m in smtp.messages) == [address(1), address(3)]
    assert smtp.connections == 1  # the refusal did not cost the batch its connection


def test_a_batch_reuses_one_connection(app_factory, smtp):
    app = email_app(app_factory, smtp)
    with app.app_context():
        notice_event(list(range(1, 31)), subject="fan-out", content="")
        assert {d.status for d in deliveries(app)} == {"Sent"}
    assert len(smtp.messages) == 30
    assert smtp.connections == 1


def test_user_without_address_is_skipped_with_a_reason(app_factory, smtp):
    app = email_app(app_factory, smtp)
    app.notices.email_loader(lambda user_id: None if user_id == 2 else address(user_id))
    with app.app_context():
        notice_event([1, 2], subject="hello", content="")
        by_user = {d.notice.user_id: d for d in deliveries(app)}
        assert by_user[1].status == "Sent"
        assert by_user[2].status == "Skipped" and "no email address" in by_user[2].last_error
        assert by_user[2].attempts == 1
    assert len(smtp.messages) == 1


def test_dropped_batch_connection_is_reopened(app_factory):
    # the server closes idle sessions after 0.3 s; the batch waits longer between sends
    with SMTPServer(session_timeout=0.3) as smtp:
        app = email_app(app_factory, smtp, NOTICE_DISPATCH="none")
        with app.app_context():
            first = notice_event(1, subject="one", content="")
            second = notice_event(2, subject="two", content="")
            sender = app.notices.sender("email")
            sender.open()
            try:
                sender.send(first)
                time.sleep(0.8)
                sender.send(second)
            finally:
                sender.close()
        assert [m.message["Subject"] for m in smtp.messages] == ["one", "two"]
        assert smtp.connections == 2


def test_server_down_is_transient(app_factory, smtp):
    app = email_app(app_factory, smtp)
    smtp.stop()  # nothing listens on that port any more
    with app.app_context():
        notice_event([1, 2], subject="hello", content="")
        ds = deliveries(app)
        assert [d.status for d in ds] == ["Error", "Error"]
        assert all("cannot connect to SMTP server" in d.last_error for d in ds)


def test_login_and_credentials_never_logged(app_factory, smtp, caplog):
    smtp.require_auth("mailer", "s3cret-pw")
    app = email_app(
        app_factory, smtp, NOTICE_MAIL_USERNAME="mailer", NOTICE_MAIL_PASSWORD="s3cret-pw"
    )
    with app.app_context():
        notice_event(1, subject="hello", content="")
    assert smtp.messages[0].auth_login == "mailer"

    caplog.set_level(logging.DEBUG)
    bad = email_app(
        app_factory, smtp, NOTICE_MAIL_USERNAME="mailer", NOTICE_MAIL_PASSWORD="wrong-pw-123"
    )
    with bad.app_context():
        notice_event(1, subject="hello", content="")
        d = deliveries(bad)[-1]  # the same database as the first app's
        assert d.status == "Error" and "SMTP login as 'mailer' refused" in d.last_error
        assert "wrong-pw-123" not in d.last_error
        assert "wrong-pw-123" not in repr(bad.notices.sender("email").config)
    assert "wrong-pw-123" not in caplog.text
    assert len(smtp.messages) == 1


def test_templates_are_overridable_per_type(app_factory, smtp, tmp_path):
    folder = tmp_path / "templates" / "notice" / "email"
    folder.mkdir(parents=True)
    (folder / "Like.html").write_text("<p>LIKE {{ subject }} {{ unsubscribe_url }}</p>")
    (folder / "Like.txt").write_text("LIKE {{ subject }}")
    app = email_app(app_factory, smtp)
    app.root_path = str(tmp_path)  # the app's own templates folder comes first
    with app.app_context():
        notice_event(1, NoticeType.LIKE, subject="<3", content="")
        notice_event(1, NoticeType.COMMENT, subject="c", content="")
    like, comment = smtp.messages
    _, text, html = _parts(like)
    assert text.strip() == "LIKE <3" and html.startswith("<p>LIKE &lt;3 https://")
    assert "Unsubscribe from Comment emails" in _parts(comment)[2]


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"NOTICE_MAIL_SENDER": None}, "NOTICE_MAIL_SENDER"),
        ({"NOTICE_MAIL_SENDER": "not an address"}, "NOTICE_MAIL_SENDER"),
        ({"NOTICE_MAIL_USE_TLS": True, "NOTICE_MAIL_USE_SSL": True}, "only one of"),
        ({"NOTICE_MAIL_PORT": "25"}, "NOTICE_MAIL_PORT"),
        ({"NOTICE_BASE_URL": None}, "NOTICE_BASE_URL"),
        ({"NOTICE_BASE_URL": "ftp://x"}, r"absolute http\(s\)"),
        ({"NOTICE_MAIL_PASSWORD": "pw"}, "without NOTICE_MAIL_USERNAME"),
    ],
)
def test_bad_config_fails_at_startup(app_factory, smtp, config, message):
    with pytest.raises(ConfigurationError, match=message):
        email_app(app_factory, smtp, **config)


def test_server_name_makes_links_absolute(app_factory, smtp):
    app = email_app(
        app_factory,
        smtp,
        NOTICE_BASE_URL=None,
        SERVER_NAME="mail.example:8443",
        PREFERRED_URL_SCHEME="https",
    )
    with app.app_context():
        notice_event(1, subject="x", content="")
    link = smtp.messages[0].message["List-Unsubscribe"]
    assert link.startswith("<https://mail.example:8443/notices/unsubscribe/")


def test_sender_is_registered_by_name(app_factory, smtp):
    app = email_app(app_factory, smtp)
    assert isinstance(app.notices.state(app).sender("email"), EmailSender)
