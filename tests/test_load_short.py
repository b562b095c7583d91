"""``bench/load.py --short``: the whole deployment under load loses and duplicates nothing.

2 gunicorn app processes, 2 Celery workers on Redis, 2 sweepers and PostgreSQL, with a
sender failing 10 % of calls (see the script's docstring); the script exits non-zero
when a committed notice did not end Sent or a delivery was sent twice.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN_URL = os.environ.get(
    "NOTICE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


@pytest.mark.redis
@pytest.mark.postgres
def test_short_load_run_loses_and_duplicates_nothing(redis_url, pg_database_url):
    # pg_database_url: skips (or fails under CI) when PostgreSQL is down; the script
    # makes databases of its own in the same cluster
    proc = subprocess.run(
        [sys.executable, "bench/load.py", "--short", "--redis-url", redis_url,
         "--pg-admin-url", PG_ADMIN_URL],
        cwd=ROOT, capture_output=True, text=True, timeout=150,
    )  # fmt: skip
    print(proc.stdout)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    assert "lost deliveries 0, duplicated sends 0" in proc.stdout
