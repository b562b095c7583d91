"""``celery -A tests.support.celery_worker:celery_app worker``: the test app from env."""

from __future__ import annotations

import os

from tests.support.celery_app import build

flask_app = build(
    os.environ["NOTICE_TEST_DB_URL"],
    os.environ["NOTICE_TEST_BROKER_URL"],
    os.environ["NOTICE_TEST_QUEUE"],
)
celery_app = flask_app.celery_app  # type: ignore[attr-defined]
