"""Sends per second of the "sms" sender (Twilio provider) against the loopback Twilio
fake, beside a hand-written ``twilio`` client call to the same fake in the same run.

    .venv/bin/python bench/channels.py          # every channel, this one included
    .venv/bin/python bench/channels_sms.py [-n 300]

Ours goes through ``SmsSender.send_to``: E.164 check, rendering and segment-aware
truncation, ``twilio``'s ``messages.create`` over our total-deadline POST, the status
mapping. The reference is ``twilio.rest.Client(...).messages.create`` with twilio's own
HTTP client (a ``requests`` session), its base URL set the same way.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from flask import Flask  # noqa: E402
from twilio.rest import Client  # noqa: E402

from bench.channels import Row, rate  # noqa: E402
from notice.config import DEFAULTS  # noqa: E402
from notice.senders.sms import SmsSender  # noqa: E402
from tests.support.twiliofake import TwilioFake  # noqa: E402

TOKEN = "bench-twilio-token"
FROM = "+15005550006"
TO = "+14155550123"


def run(n: int) -> list[Row]:
    notice = SimpleNamespace(
        user_id=1,
        subject="New comment",
        content="Ann wrote something",
        notice_type="Comment",
        url="/c/1",
    )
    with TwilioFake(token=TOKEN) as fake:
        app = Flask("bench_sms", root_path=str(ROOT))
        app.config.update(DEFAULTS)
        app.config.update(
            NOTICE_BASE_URL="https://example.com",
            NOTICE_SMS_HOSTS=["127.0.0.1"],
            NOTICE_TWILIO_API_URL=fake.url,
            NOTICE_TWILIO_ACCOUNT_SID=fake.sid,
            NOTICE_TWILIO_AUTH_TOKEN=TOKEN,
            NOTICE_TWILIO_FROM=FROM,
        )
        sms = SmsSender()
        sms.init_app(app)
        sms.target_loader(lambda ids: {u: TO for u in ids})
        # as the engine does: one loader call per batch, each send checked against it
        sms.prepare([(notice, TO)])
        body = sms.text(notice)
        client = Client(fake.sid, TOKEN)
        client.api.base_url = fake.url
        rows = [
            (
                "sms (twilio)",
                rate(n, lambda: sms.send_to(notice, TO)),
                rate(n, lambda: client.messages.create(to=TO, from_=FROM, body=body)),
            )
        ]
        if fake.rejected or len(fake.messages) != 2 * (n + 1):
            raise SystemExit(f"the fake refused messages: {fake.rejected[:3]}")
        if {m["Body"] for m in fake.messages} != {body}:
            raise SystemExit("ours and the reference sent different texts")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=300, help="sends per measurement")
    args = parser.parse_args()
    print(f"{'channel':<24} {'ours/s':>9} {'hand/s':>9} {'ratio':>6}")
    for channel, ours, hand in run(args.n):
        print(f"{channel:<24} {ours:9.0f} {hand:9.0f} {ours / hand:6.2f}")


if __name__ == "__main__":
    main()
