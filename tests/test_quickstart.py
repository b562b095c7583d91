"""The README's first quickstart command, verbatim, from a fresh clone in a fresh
virtualenv: it must install the core and start the example app."""

from __future__ import annotations

import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: pip installs the core dependencies from the index: allow a slow network
START_TIMEOUT = 300


def quickstart_command() -> str:
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"## Quickstart.*?```console\n(.*?)```", readme, flags=re.S)
    assert block, "README has a Quickstart section with a console block"
    return block.group(1).strip().splitlines()[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pump(stream, lines: queue.Queue[str]) -> None:
    for line in stream:
        lines.put(line)
    lines.put("")  # end of output


@pytest.mark.slow
@pytest.mark.timeout(START_TIMEOUT + 60)
def test_quickstart_installs_and_starts_the_example_app(tmp_path):
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    command = quickstart_command()
    assert "python -m example_app" in command
    clone = tmp_path / "notice"
    subprocess.run(
        ["git", "clone", "--quiet", str(ROOT), str(clone)], check=True, timeout=60
    )
    port = free_port()
    env = {
        k: v for k, v in os.environ.items()
        if k not in ("VIRTUAL_ENV", "PYTHONPATH", "DATABASE_URL") and not k.startswith("NOTICE_")
    }
    env.update(PORT=str(port), PIP_DISABLE_PIP_VERSION_CHECK="1", PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        ["bash", "-c", command],
        cwd=clone,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # so the whole group (bash, python) is stopped below
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=_pump, args=(proc.stdout, lines), daemon=True).start()
    output: list[str] = []
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while f"Open {url}" not in "".join(output):
            remaining = deadline - time.monotonic()
            assert remaining > 0, "no URL printed in time:\n" + "".join(output[-40:])
            try:
                line = lines.get(timeout=remaining)
            except queue.Empty:
                continue
            assert line, "the command ended before serving:\n" + "".join(output[-40:])
            output.append(line)
        text = "".join(output)
        assert "ana@example.org / " in text and "ben@example.org / " in text
        page = _fetch(url + "login")
        assert '<input type="password" name="password"' in page
        assert (clone / "instance" / "example.db").exists()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=15)


def _fetch(url: str) -> str:
    # the app prints its URL just before the server binds: retry a refused connection
    for _ in range(100):
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                assert response.status == 200
                return str(response.read().decode())
        except urllib.error.URLError as exc:
            if not isinstance(exc.reason, ConnectionRefusedError):
                raise
            time.sleep(0.1)
    raise AssertionError(f"{url} refused every connection")
