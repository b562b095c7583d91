"""The app of ``bench/faults.py``'s worker processes: ``flask --app bench.faults_app``.

Configured from the environment:

- ``FAULTS_DB_URL``: the PostgreSQL database (required);
- ``FAULTS_LOG``: file the sender appends ``"<delivery target> <notice id> <pid>"`` to,
  one ``write`` per successful send on an ``O_APPEND`` descriptor (lines from
  concurrent processes never interleave);
- ``FAULTS_HANG_EVERY``: every n-th notice id hangs (default 100: 1 % of sends);
- ``FAULTS_HANG_SECONDS``: how long such a send hangs before it fails;
- ``FAULTS_SEND_TIMEOUT``, ``FAULTS_CLAIM_TIMEOUT``, ``FAULTS_BATCH``: the settings.

The workers' connections carry ``application_name = notice-faults-worker`` so the bench
can terminate exactly those backends.
"""

from __future__ import annotations

import os
import time

from flask import Flask
from flask_sqlalchemy import SQLAlchemy

from notice import Notices, Sender
from notice.models import NoticeView

#: ``application_name`` of the worker processes' database connections
WORKER_APP_NAME = "notice-faults-worker"


class FaultySender(Sender):
    """Records each send; every ``FAULTS_HANG_EVERY``-th notice hangs, then fails (a
    hung endpoint that never delivers)."""

    name = "faulty"

    def send_to(self, notice: NoticeView, target: str) -> None:
        every = int(os.environ.get("FAULTS_HANG_EVERY", "100"))
        if every and notice.id % every == 0:
            time.sleep(float(os.environ.get("FAULTS_HANG_SECONDS", "5")))
            raise ConnectionError("the endpoint hung")
        fd = os.open(os.environ["FAULTS_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        try:
            os.write(fd, f"{target or '-'} {notice.id} {os.getpid()}\n".encode())
        finally:
            os.close(fd)

    def send(self, notice: NoticeView) -> None:
        self.send_to(notice, "")


def create_app(application_name: str = WORKER_APP_NAME) -> Flask:
    app = Flask("faults")
    app.config.update(
        SQLALCHEMY_DATABASE_URI=os.environ["FAULTS_DB_URL"],
        SQLALCHEMY_ENGINE_OPTIONS={"connect_args": {"application_name": application_name}},
        SECRET_KEY="faults",
        NOTICE_SENDERS=["bench.faults_app:FaultySender"],
        NOTICE_DISPATCH="none",
        NOTICE_WEB=False,
        NOTICE_STREAM=False,
        NOTICE_BATCH_SIZE=int(os.environ.get("FAULTS_BATCH", "20")),
        NOTICE_SEND_TIMEOUT=float(os.environ.get("FAULTS_SEND_TIMEOUT", "1")),
        NOTICE_CLAIM_TIMEOUT=float(os.environ.get("FAULTS_CLAIM_TIMEOUT", "4")),
        NOTICE_RETRY_BASE=0.2,
        NOTICE_RETRY_CAP=1.0,
        NOTICE_MAX_ATTEMPTS=3,
    )
    db = SQLAlchemy()
    notices = Notices(db=db)
    db.init_app(app)
    notices.init_app(app)
    return app
