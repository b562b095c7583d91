"""An app for sweeper subprocesses: ``flask --app tests.support.sweepapp notice ...``.

Configured from the environment, so a test can start many workers on one database:

- ``NOTICE_TEST_DB_URL``: the database (required);
- ``NOTICE_TEST_LOG``: file the recording senders append one line per send to;
- ``NOTICE_TEST_SEND_DELAY``: seconds each send sleeps (a slow sender, for crash tests);
- ``NOTICE_TEST_BATCH``: ``NOTICE_BATCH_SIZE``;
- ``NOTICE_TEST_START``: a path; the app announces itself with ``<path>.<pid>`` and
  waits (at most 30 s) until ``<path>`` exists, so many workers start together;
- ``NOTICE_TEST_HANG``: a subject; ``rec_a`` sends of notices with it append
  ``"<notice id> <pid>"`` to ``<log>.hung`` and hang for 60 s (and record nothing);
- ``NOTICE_TEST_SEND_TIMEOUT``, ``NOTICE_TEST_CLAIM_TIMEOUT``, ``NOTICE_TEST_RETRY_BASE``:
  ``NOTICE_SEND_TIMEOUT``, ``NOTICE_CLAIM_TIMEOUT``, ``NOTICE_RETRY_BASE`` (and
  ``NOTICE_RETRY_CAP`` twice the base).

The recording senders write ``"<channel> <notice id> <pid>\\n"`` with one ``write`` on
an ``O_APPEND`` descriptor: lines from concurrent processes never interleave.
"""

from __future__ import annotations

import os
import time
from typing import Any

from flask import Flask
from flask_sqlalchemy import SQLAlchemy

from notice import Notices, Sender

#: the recording senders, as NOTICE_SENDERS entries
RECORDING_SENDERS = ["tests.support.sweepapp:RecordA", "tests.support.sweepapp:RecordB"]


class RecordA(Sender):
    """Appends a line per send to ``$NOTICE_TEST_LOG``."""

    name = "rec_a"

    def send_to(self, notice: Any, target: str) -> None:
        if self.name == "rec_a" and notice.subject == os.environ.get("NOTICE_TEST_HANG"):
            fd = os.open(
                os.environ["NOTICE_TEST_LOG"] + ".hung", os.O_WRONLY | os.O_APPEND | os.O_CREAT
            )
            try:
                os.write(fd, f"{notice.id} {os.getpid()}\n".encode())
            finally:
                os.close(fd)
            time.sleep(60)
            return
        delay = float(os.environ.get("NOTICE_TEST_SEND_DELAY", "0"))
        if delay:
            time.sleep(delay)
        fd = os.open(os.environ["NOTICE_TEST_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        try:
            os.write(fd, f"{self.name} {notice.id} {os.getpid()}\n".encode())
        finally:
            os.close(fd)

    def send(self, notice: Any) -> None:
        self.send_to(notice, "")


class RecordB(RecordA):
    name = "rec_b"


class NoopSender(Sender):
    """Does nothing; for benchmarks."""

    name = "noop"

    def send(self, notice: Any) -> None:
        return None


def read_log(path: str) -> list[tuple[str, int]]:
    """The ``(channel, notice id)`` of every recorded send, in file order."""
    try:
        with open(path) as fh:
            return [(p[0], int(p[1])) for p in (line.split() for line in fh) if len(p) == 3]
    except FileNotFoundError:
        return []


def _wait_for_start(path: str) -> None:
    with open(f"{path}.{os.getpid()}", "w"):
        pass
    deadline = time.monotonic() + 30
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.01)


def create_app() -> Flask:
    app = Flask("sweepapp")
    app.config.update(
        SQLALCHEMY_DATABASE_URI=os.environ["NOTICE_TEST_DB_URL"],
        SECRET_KEY="sweepapp",
        NOTICE_SENDERS=os.environ.get("NOTICE_TEST_SENDERS", ",".join(RECORDING_SENDERS)).split(
            ","
        ),
        NOTICE_DISPATCH="none",
        NOTICE_BATCH_SIZE=int(os.environ.get("NOTICE_TEST_BATCH", "200")),
    )
    for key in ("SEND_TIMEOUT", "CLAIM_TIMEOUT", "RETRY_BASE"):
        if os.environ.get(f"NOTICE_TEST_{key}"):
            app.config[f"NOTICE_{key}"] = float(os.environ[f"NOTICE_TEST_{key}"])
    if os.environ.get("NOTICE_TEST_RETRY_BASE"):
        app.config["NOTICE_RETRY_CAP"] = 2 * app.config["NOTICE_RETRY_BASE"]
    db = SQLAlchemy()
    notices = Notices(db=db)
    db.init_app(app)
    notices.init_app(app)
    if os.environ.get("NOTICE_TEST_START"):
        _wait_for_start(os.environ["NOTICE_TEST_START"])
    return app
