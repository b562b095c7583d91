"""The email sender's STARTTLS and SMTPS modes against an aiosmtpd server with a
self-signed certificate for 127.0.0.1 (trusted by the test only)."""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
import types
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from notice import notice_event
from tests.support.emailapp import address, deliveries, email_app


def _certificate(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "notice test SMTP")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class _Recorder:
    def __init__(self) -> None:
        self.mails: list[tuple[list[str], bool]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        encrypted = server.transport.get_extra_info("ssl_object") is not None
        self.mails.append((list(envelope.rcpt_tos), encrypted))
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def certificate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    cert, key = _certificate(tmp_path)
    # the sender verifies certificates against the system's CAs; trust ours instead
    trusting = types.SimpleNamespace(
        create_default_context=lambda: ssl.create_default_context(cafile=str(cert))
    )
    monkeypatch.setattr("notice.senders.email.ssl", trusting)
    return cert, key


@contextmanager
def _tls_server(cert: Path, key: Path, mode: str) -> Iterator[tuple[Controller, _Recorder]]:
    """An aiosmtpd server on a free loopback port presenting ``cert``: ``"starttls"``
    refuses mail until STARTTLS, ``"smtps"`` speaks TLS from the first byte."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(cert), str(key))
    recorder = _Recorder()
    options: dict[str, Any] = (
        {"tls_context": context, "require_starttls": True}
        if mode == "starttls"
        else {"ssl_context": context}
    )
    controller = Controller(
        recorder,
        hostname="127.0.0.1",
        port=_free_port(),
        server_hostname="localhost",
        ready_timeout=5.0,
        **options,
    )
    controller.start()
    try:
        yield controller, recorder
    finally:
        controller.stop()


@pytest.fixture(params=["starttls", "smtps"])
def tls_server(request: pytest.FixtureRequest, certificate: Any) -> Iterator[Any]:
    with _tls_server(*certificate, request.param) as (controller, recorder):
        yield request.param, controller, recorder


def test_mail_goes_over_tls(app_factory, tls_server):
    mode, controller, recorder = tls_server
    smtp = types.SimpleNamespace(host="127.0.0.1", port=controller.port)
    app = email_app(
        app_factory,
        smtp,
        NOTICE_MAIL_USE_TLS=mode == "starttls",
        NOTICE_MAIL_USE_SSL=mode == "smtps",
    )
    with app.app_context():
        notice_event([1, 2], subject="over TLS", content="")
        assert [d.status for d in deliveries(app)] == ["Sent", "Sent"]
    assert sorted(recorder.mails) == [([address(1)], True), ([address(2)], True)]


def test_plain_connection_is_refused_by_a_starttls_only_server(app_factory, certificate):
    with _tls_server(*certificate, "starttls") as (controller, recorder):
        smtp = types.SimpleNamespace(host="127.0.0.1", port=controller.port)
        app = email_app(app_factory, smtp)  # NOTICE_MAIL_USE_TLS is off
        with app.app_context():
            notice_event(1, subject="in clear", content="")
            [d] = deliveries(app)
            assert d.status == "Dead" and "530" in d.last_error  # must STARTTLS first
    assert recorder.mails == []


def test_untrusted_certificate_is_not_accepted(app_factory, tmp_path):
    # not trusted: the system's CAs apply
    with _tls_server(*_certificate(tmp_path), "smtps") as (controller, recorder):
        smtp = types.SimpleNamespace(host="127.0.0.1", port=controller.port)
        app = email_app(app_factory, smtp, NOTICE_MAIL_USE_SSL=True)
        with app.app_context():
            notice_event(1, subject="x", content="")
            [d] = deliveries(app)
            assert d.status == "Error" and "CERTIFICATE_VERIFY_FAILED" in d.last_error
    assert recorder.mails == []
