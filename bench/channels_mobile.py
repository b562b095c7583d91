"""Sends per second of the fcm and apns senders against their loopback fakes, beside a
hand-written call of the same client libraries in the same run; run by
``bench/channels.py``, or alone::

    .venv/bin/python bench/channels_mobile.py [-n 300]

Ours is a delivery batch as the engine makes it: ``open``, ``prepare`` (the batch's
devices in one query, SQLite), ``send_to`` per device (owner check, rendering, the
cached access/provider token, the POST under the deadline, the answer's classification)
and ``close`` (``last_used_at`` written once). Hand-written: google-auth's own
``AuthorizedSession.post`` of the same message for FCM (it also caches the token), and
one ``httpx.Client(http2=True)`` posting the same payload with a PyJWT ES256 token
signed once for APNs.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import jwt  # noqa: E402
from flask import Flask  # noqa: E402
from flask_sqlalchemy import SQLAlchemy  # noqa: E402
from google.auth.transport.requests import AuthorizedSession  # noqa: E402
from google.oauth2 import service_account  # noqa: E402

from notice import Notices  # noqa: E402
from notice.senders.fcm import SCOPE  # noqa: E402
from tests.support.mobilefakes import APNsFake, FCMFake  # noqa: E402

Row = tuple[str, float, float]
APP_ID = "org.example.app"


def rate(n: int, call: Callable[[int], Any]) -> float:
    call(0)  # warm: connection, token
    start = time.perf_counter()
    for i in range(n):
        call(i)
    return n / (time.perf_counter() - start)


@contextmanager
def mobile_app(config: dict[str, Any]) -> Iterator[Flask]:
    with tempfile.TemporaryDirectory() as tmp:
        app = Flask("bench_mobile")
        app.config.update(SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp}/bench.db", **config)
        db = SQLAlchemy()
        notices = Notices(db=db)
        db.init_app(app)
        notices.init_app(app)
        with app.app_context():
            db.create_all()
            yield app
            notices.state(app).dispatcher.shutdown()  # type: ignore[union-attr]
            db.engine.dispose()


def ours(app: Flask, platform: str, tokens: list[str], n: int) -> float:
    """Sends/s of one batch of ``n`` deliveries through the sender (warmed first)."""
    state = app.extensions["notice"].state(app)
    Device = state.device_models.Device
    db = app.extensions["sqlalchemy"]
    rows = [Device(user_id=1, platform=platform, token=t, app_id=APP_ID) for t in tokens]
    db.session.add_all(rows)
    db.session.commit()
    targets = [str(r.id) for r in rows]
    sender = state.sender(platform)
    notice = SimpleNamespace(
        id=1,
        user_id=1,
        subject="New comment",
        content="Ann wrote something",
        notice_type="Comment",
        url="/c/1",
        data=None,
        expires_at=None,
    )

    def batch(items: list[str]) -> None:
        sender.open()
        try:
            sender.prepare([(notice, t) for t in items])
            for target in items:
                sender.send_to(notice, target)
        finally:
            sender.close()

    batch(targets[:1])
    start = time.perf_counter()
    batch(targets[:n])
    return n / (time.perf_counter() - start)


def fcm(n: int) -> Row:
    with FCMFake() as fake:
        config = {
            "NOTICE_SENDERS": ["fcm"],
            "NOTICE_FCM_CREDENTIALS": fake.service_account,
            "NOTICE_FCM_URL": fake.url + "/v1/",
            "NOTICE_FCM_HOSTS": ["127.0.0.1"],
        }
        tokens = [f"bench-token-{i}" for i in range(n)]
        with mobile_app(config) as app:
            mine = ours(app, "fcm", tokens, n)
        credentials = service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
            fake.service_account, scopes=[SCOPE]
        )
        session = AuthorizedSession(credentials)  # type: ignore[no-untyped-call]
        url = f"{fake.url}/v1/projects/{fake.project}/messages:send"

        def hand(i: int) -> None:
            message = {
                "token": tokens[i],
                "notification": {"title": "New comment", "body": "Ann wrote something"},
                "data": {"notice_id": "1", "type": "Comment", "url": "/c/1"},
            }
            session.post(url, json={"message": message}, timeout=10).raise_for_status()

        theirs = rate(n, hand)
        if fake.rejected or len(fake.received) != 2 * n + 2:
            raise SystemExit(f"the FCM fake refused messages: {fake.rejected[:3]}")
    return "fcm (HTTP v1)", mine, theirs


def apns(n: int) -> Row:
    with APNsFake() as fake:
        config = {
            "NOTICE_SENDERS": ["apns"],
            "NOTICE_APNS_KEY": fake.key_pem,
            "NOTICE_APNS_KEY_ID": fake.key_id,
            "NOTICE_APNS_TEAM_ID": fake.team_id,
            "NOTICE_APNS_URL": fake.url,
            "NOTICE_APNS_HOSTS": ["127.0.0.1"],
            "NOTICE_APNS_TOPICS": [APP_ID],
        }
        tokens = [f"{i:064x}" for i in range(n)]
        with mobile_app(config) as app:
            mine = ours(app, "apns", tokens, n)
        provider = jwt.encode(
            {"iss": fake.team_id, "iat": int(time.time())},
            fake.key,
            algorithm="ES256",
            headers={"kid": fake.key_id},
        )
        headers = {
            "authorization": f"bearer {provider}",
            "apns-topic": APP_ID,
            "apns-push-type": "alert",
            "apns-priority": "10",
        }
        payload = {
            "aps": {"alert": {"title": "New comment", "body": "Ann wrote something"}},
            "notice": {"notice_id": "1", "type": "Comment", "url": "/c/1"},
        }
        with httpx.Client(http1=False, http2=True, timeout=10) as client:

            def hand(i: int) -> None:
                url = f"{fake.url}/3/device/{tokens[i]}"
                client.post(url, json=payload, headers=headers).raise_for_status()

            theirs = rate(n, hand)
        if fake.rejected or len(fake.received) != 2 * n + 2:
            raise SystemExit(f"the APNs fake refused messages: {fake.rejected[:3]}")
    return "apns (HTTP/2)", mine, theirs


def run(n: int) -> list[Row]:
    return [fcm(n), apns(n)]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=300, help="sends per measurement")
    args = parser.parse_args()
    print(f"{'channel':<24} {'ours/s':>9} {'hand/s':>9} {'ratio':>6}")
    for channel, mine, theirs in run(args.n):
        print(f"{channel:<24} {mine:9.0f} {theirs:9.0f} {mine / theirs:6.2f}")
