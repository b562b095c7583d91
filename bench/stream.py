"""Live-stream latency: N concurrent SSE clients against gunicorn with gevent workers.

Run from the repository root::

    python bench/stream.py                                # 100 and 1,000 clients, both brokers
    python bench/stream.py --clients 1000 --broker redis

Setup, all on loopback: a private PostgreSQL database (created in the ``test`` cluster,
dropped afterwards) holds the notices; ``gunicorn -k gevent -w 2`` serves the inbox
app (tests/support/inboxapp.py) with ``NOTICE_BROKER_URL`` set to Redis or PostgreSQL
(LISTEN/NOTIFY), so a stream may be served by either worker; this process holds N
streams open (one user each, gevent sockets) and publishes with ``notice_event`` from
its own app on the same database and broker.

Measured, per broker and N:

* single: ``--notices`` notices one after another (every ``--interval`` s) to random
  connected users; latency = from just before ``notice_event()`` (insert, commit,
  publish) to the client having parsed the event; p50 / p99 / max;
* fan-out: one ``notice_event`` to all N users; latency to each client;
* reference, same run, same clock: the broker's own publish -> subscriber receive
  round trip (redis-py PUBLISH -> pubsub, or psycopg NOTIFY -> LISTEN), ``--notices``
  samples; the ratio single / reference.

Target (issue 13): single p99 <= 50 ms at 1,000 clients. The whole run takes about a minute.
"""

from gevent import monkey

monkey.patch_all()

# ruff: noqa: E402 - gevent must patch the standard library before anything imports it
import argparse
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import gevent

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import free_port, percentile, pg_database
from notice import notice_event
from tests.support.inboxapp import create_app

REDIS_URL = os.environ.get("NOTICE_BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")


@contextmanager
def gunicorn(db_url: str, broker_url: str, channel: str, workers: int):
    port = free_port()
    env = dict(
        os.environ,
        NOTICE_TEST_DB_URL=db_url,
        NOTICE_TEST_BROKER_URL=broker_url,
        NOTICE_TEST_CHANNEL=channel,
        PYTHONPATH=str(ROOT),
    )
    cmd = [
        sys.executable, "-m", "gunicorn", "-k", "gevent", "-w", str(workers),
        "--worker-connections", "4000", "-b", f"127.0.0.1:{port}",
        "--log-level", "warning", "tests.support.inboxapp:from_env()",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                    s.sendall(b"GET /favicon.ico HTTP/1.0\r\n\r\n")
                    if b" 204 " in s.recv(100):
                        break
            except OSError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("gunicorn did not start")
            gevent.sleep(0.2)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


class Clients:
    """N SSE streams (users 1..N); records when each notice (by its data.seq) arrives."""

    def __init__(self, port: int, n: int) -> None:
        self.port = port
        self.n = n
        self.connected = 0
        self.arrivals: dict[Any, list[float]] = {}
        self.socks: list[socket.socket] = []
        self.greenlets: list[Any] = []

    def start(self) -> None:
        for user_id in range(1, self.n + 1):
            self.greenlets.append(gevent.spawn(self._run, user_id))
            if user_id % 50 == 0:
                gevent.sleep(0.05)  # a gentle ramp, like users arriving

    def _run(self, user_id: int) -> None:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=120)
        self.socks.append(sock)
        sock.sendall(
            f"GET /notices/stream HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Test-User: {user_id}\r\n"
            "Accept: text/event-stream\r\n\r\n".encode()
        )
        buf = b""
        first = True
        while True:
            try:
                chunk = sock.recv(65536)
            except OSError:
                return
            if not chunk:
                return
            now = time.perf_counter()
            buf += chunk
            *lines, buf = buf.split(b"\n")
            for line in lines:
                if not line.startswith(b"data: "):
                    continue
                body = json.loads(line[6:])
                if "unread" in body and first:
                    first = False
                    self.connected += 1
                elif isinstance(body.get("data"), dict) and "seq" in body["data"]:
                    self.arrivals.setdefault(body["data"]["seq"], []).append(now)

    def wait(self, predicate, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                return False
            gevent.sleep(0.01)
        return True

    def close(self) -> None:
        for sock in self.socks:
            try:
                sock.close()
            except OSError:
                pass
        gevent.killall(self.greenlets, timeout=5)


def summary(samples: list[float]) -> str:
    ms = [s * 1e3 for s in samples]
    return (
        f"p50 {statistics.median(ms):7.2f} ms  p99 {percentile(ms, 99):7.2f} ms  "
        f"max {max(ms):7.2f} ms  (n={len(ms)})"
    )


def reference(broker: str, url: str, samples: int, interval: float) -> list[float]:
    """The broker's raw publish -> receive latency, measured like the notices."""
    got: dict[int, float] = {}
    sent: dict[int, float] = {}
    channel = f"ref{uuid.uuid4().hex[:8]}"
    if broker == "redis":
        import redis

        client = redis.Redis.from_url(url)
        pubsub = client.pubsub()
        pubsub.subscribe(channel)
        pubsub.get_message(timeout=1)

        def listen() -> None:
            while len(got) < samples:
                m = pubsub.get_message(timeout=1)
                if m and m["type"] == "message":
                    got[int(m["data"])] = time.perf_counter()

        def publish(k: int) -> None:
            client.publish(channel, str(k))
    else:
        import psycopg

        dsn = url.replace("postgresql+psycopg://", "postgresql://")
        listener = psycopg.connect(dsn, autocommit=True)
        listener.execute(f"LISTEN {channel}")
        sender = psycopg.connect(dsn, autocommit=True)

        def listen() -> None:
            while len(got) < samples:
                for n in listener.notifies(timeout=1, stop_after=1):
                    got[int(n.payload)] = time.perf_counter()

        def publish(k: int) -> None:
            sender.execute("SELECT pg_notify(%s, %s)", (channel, str(k)))

    reader = gevent.spawn(listen)
    for k in range(samples):
        sent[k] = time.perf_counter()
        publish(k)
        gevent.sleep(interval)
    reader.join(timeout=10)
    reader.kill()
    return [got[k] - sent[k] for k in sent if k in got]


def run(broker: str, n: int, args: argparse.Namespace, db_url: str) -> None:
    broker_url = REDIS_URL if broker == "redis" else db_url
    channel = f"bench{uuid.uuid4().hex[:8]}"
    app = create_app(
        db_url, NOTICE_BROKER_URL=broker_url, NOTICE_BROKER_CHANNEL=channel, NOTICE_SENDERS=[]
    )
    with gunicorn(db_url, broker_url, channel, args.workers) as port:
        clients = Clients(port, n)
        started = time.perf_counter()
        clients.start()
        if not clients.wait(lambda: clients.connected == n, 120):
            raise RuntimeError(f"only {clients.connected} of {n} streams connected")
        connect_s = time.perf_counter() - started
        rnd = random.Random(5)
        sent: dict[Any, float] = {}
        calls: list[float] = []
        with app.app_context():
            for k in range(args.notices):
                sent[k] = time.perf_counter()
                notice_event(
                    rnd.randrange(1, n + 1), subject=f"bench {k}", content="", data={"seq": k}
                )
                calls.append(time.perf_counter() - sent[k])
                gevent.sleep(args.interval)
            clients.wait(lambda: all(k in clients.arrivals for k in sent), 20)
            single = [clients.arrivals[k][0] - sent[k] for k in sent if k in clients.arrivals]
            # the stream's own share: from notice_event() returning to the client
            after = [
                clients.arrivals[k][0] - sent[k] - calls[k] for k in sent if k in clients.arrivals
            ]
            fan_t0 = time.perf_counter()
            notice_event(list(range(1, n + 1)), subject="to all", content="", data={"seq": "all"})
            fan_call = time.perf_counter() - fan_t0
            clients.wait(lambda: len(clients.arrivals.get("all", ())) == n, 30)
            fan = [t - fan_t0 for t in clients.arrivals.get("all", [])]
        clients.close()
    app.notices.state(app).broker.close()
    ref = reference(broker, broker_url, args.notices, args.interval)
    print(f"\n{broker} broker, {n} SSE clients ({connect_s:.1f} s to connect all)")
    print(f"  single notice  {summary(single)}")
    print(f"    (the notice_event() call itself: p50 {statistics.median(calls) * 1e3:.2f} ms, "
          f"p99 {percentile(calls, 99) * 1e3:.2f} ms; after it returned: "
          f"{summary(after)})")  # fmt: skip
    print(f"  fan-out to {n:<4}  {summary(fan)}")
    print(f"    (notice_event() to {n} users returned after {fan_call * 1e3:.1f} ms)")
    print(f"  reference: raw {broker} publish->receive  {summary(ref)}")
    ratio = statistics.median(single) / statistics.median(ref)
    p99_ratio = percentile(single, 99) / percentile(ref, 99)
    print(f"  ratio single / reference: p50 {ratio:.1f}x, p99 {p99_ratio:.1f}x")
    if len(single) < args.notices or len(fan) < n:
        print(f"  LOST: {args.notices - len(single)} single, {n - len(fan)} fan-out events")
    if n >= 1000:
        met = percentile(single, 99) <= 0.05
        print(f"  target single p99 <= 50 ms at {n} clients: {'met' if met else 'NOT met'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--broker", choices=("redis", "postgresql"), nargs="+",
                        default=["redis", "postgresql"])  # fmt: skip
    parser.add_argument("--notices", type=int, default=200)
    parser.add_argument("--interval", type=float, default=0.02)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with pg_database() as db_url:
        create_app(db_url, create=True, NOTICE_STREAM=False)
        for broker in args.broker:
            for n in args.clients:
                run(broker, n, args, db_url)


if __name__ == "__main__":
    main()
