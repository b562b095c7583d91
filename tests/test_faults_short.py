"""``bench/faults.py --short``: delivery under hung sends, terminated connections, a
"mark all read" loop and a ``kill -9`` of a worker loses nothing, and sends twice no
more than the killed worker's batch (see the script's docstring)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.postgres
def test_short_fault_drill_loses_nothing(pg_database_url):
    # pg_database_url: skips (or fails under CI) when PostgreSQL is down; the script
    # makes a database of its own in the same cluster
    proc = subprocess.run(
        [sys.executable, "bench/faults.py", "--short", "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert proc.stdout.strip(), proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    print(result)
    assert result["lost"] == 0, result
    # a SIGKILLed worker's batch may be sent again after its lease: at most that batch
    assert result["duplicates"] <= max(20, result["killed_in_flight"]), result
    assert result["deadlocks"].get("reader", 0) == 0, result
    assert result["statuses"].get("Wait", 0) == result["statuses"].get("Error", 0) == 0
    assert proc.returncode == 0, proc.stderr[-3000:]
