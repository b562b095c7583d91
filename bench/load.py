"""End to end under load: gunicorn, Celery workers, sweepers, PostgreSQL and Redis.

Run from the repository root (loopback only; PostgreSQL on 127.0.0.1:5432, Redis on
127.0.0.1:6379)::

    python bench/load.py            # full: 60 s of load, prints the numbers
    python bench/load.py --short    # <= 60 s in all; exits non-zero on any lost or
                                    # duplicated delivery (tests/test_load_short.py)
    python bench/load.py --rate 40  # open loop: 40 requests/s offered, not back to back
    python bench/load.py --celery-broker amqp://guest:guest@127.0.0.1:5672//  # RabbitMQ
    python bench/load.py --celery-cpu   # only the Celery CPU per delivery (below)

It starts, all on loopback: 2 gunicorn app processes (gevent workers, one port each),
2 Celery workers (threads) on Redis, 2 sweepers (``flask notice worker``, or a
``deliver_due`` loop where that command does not exist), all on a private PostgreSQL
database, with the app of ``bench/load_app.py``. Its sender fails 10 % of calls
transiently and records every successful send. Client threads then drive, for a fixed
time, a mix of single and fan-out ``notice_event`` calls and reads (the JSON API's
unread count and list when the inbox is installed), while SSE clients hold
``<prefix>/stream`` open (when it exists). After the load it waits until nothing is
pending, stops every process and checks that every committed notice ended Sent and
that each delivery was sent exactly once.

Printed: notices and deliveries per second, end-to-end latency (notice ``create_at`` to
the recorded send) p50/p99/max, request latency, SSE events, lost and duplicated
deliveries, and the reference measured in the same run: one process, one thread,
``NOTICE_DISPATCH = "sync"``, no failures (ratio = system / reference).

The full run (and ``--celery-cpu`` alone) then prints the CPU milliseconds per
delivery, Celery worker plus database, of one worker running a 2,000-delivery fan-out
with a no-op sender: one task per delivery beside ``NOTICE_CELERY_BATCH`` ids per task,
measured in the same run. Target: <= 1 ms per delivery.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import PG_ADMIN_URL, free_port, percentile, pg_database  # noqa: E402
from bench.load_app import SEND_LOG, create_app  # noqa: E402
from notice import notice_event  # noqa: E402


@dataclass(frozen=True)
class Mode:
    seconds: float  # of load
    clients: int  # request threads
    sse: int  # stream clients
    drain: float  # most seconds to wait for quiescence
    deadline: float  # the whole run, startup to cleanup
    ref_seconds: float


SHORT = Mode(seconds=12, clients=6, sse=6, drain=20, deadline=58, ref_seconds=2)
FULL = Mode(seconds=60, clients=12, sse=20, drain=120, deadline=400, ref_seconds=5)
USERS = 200
FAN_OUT = 10
SINGLE, FAN, READ = 0.45, 0.10, 0.45


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- processes -----------------------------------------------------------------------


class Processes:
    """Children in their own process groups, so cleanup takes their children too."""

    def __init__(self, logdir: Path, env: dict[str, str]) -> None:
        self.logdir = logdir
        self.env = env
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, cmd: list[str]) -> subprocess.Popen[bytes]:
        out = open(self.logdir / f"{name}.log", "wb")  # noqa: SIM115 - the child owns it
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        out.close()
        self.procs.append((name, proc))
        return proc

    def check_alive(self) -> None:
        for name, proc in self.procs:
            if proc.poll() is not None:
                tail = (self.logdir / f"{name}.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{name} exited with {proc.returncode}:\n{tail}")

    def stop(self, timeout: float = 10) -> None:
        for _, proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        end = time.monotonic() + timeout
        for _, proc in self.procs:
            try:
                proc.wait(timeout=max(0.1, end - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)

    def kill(self) -> None:
        for _, proc in self.procs:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass


def has_sweeper_cli() -> bool:
    from notice.cli import load_commands

    return "worker" in load_commands().commands


# --- databases -----------------------------------------------------------------------


def create_tables(**overrides: Any) -> Any:
    app = create_app(**overrides)
    with app.app_context():
        app.db.create_all()  # type: ignore[attr-defined]
        SEND_LOG.create(app.db.engine, checkfirst=True)  # type: ignore[attr-defined]
    return app


def reference(db_url: str, seconds: float) -> float:
    """Notices/s of one thread in one process, sync dispatch, the sender never failing."""
    os.environ["LOAD_DB_URL"] = db_url
    app = create_tables(NOTICE_DISPATCH="sync", NOTICE_BROKER_URL=None)
    count = 0
    with app.app_context():
        app.notices.sender("flaky").fail_rate = 0.0  # type: ignore[attr-defined]
        end = time.perf_counter() + seconds
        start = time.perf_counter()
        while time.perf_counter() < end:
            notice_event(random.randint(1, USERS), subject="reference", content="")
            count += 1
        elapsed = time.perf_counter() - start
        app.db.session.remove()  # type: ignore[attr-defined]
        app.db.engine.dispose()  # type: ignore[attr-defined]
    return count / elapsed


# --- load ----------------------------------------------------------------------------


@dataclass
class Stats:
    acked: list[int] = field(default_factory=list)
    event_latency: list[float] = field(default_factory=list)
    read_latency: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    events: int = 0
    fan_outs: int = 0
    reads: int = 0
    sse_received: dict[int, float] = field(default_factory=dict)
    sse_connects: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def error(self, kind: str) -> None:
        with self.lock:
            self.errors[kind] = self.errors.get(kind, 0) + 1


def client(
    bases: list[str],
    features: dict[str, Any],
    stop: threading.Event,
    stats: Stats,
    interval: float = 0.0,
) -> None:
    """Requests back to back, or one every ``interval`` seconds (open loop)."""
    session = requests.Session()
    next_at = time.monotonic() + random.random() * interval
    prefix = features["prefix"]
    unread_path = f"{prefix}/api/unread-count" if features["api_unread"] else "/load/unread"
    list_path = f"{prefix}/api/notices?limit=20" if features["api_list"] else "/load/list"
    rnd = random.Random()
    while not stop.is_set():
        if interval:
            # a late request is not made up for: the offered rate stays the same
            next_at = max(next_at + interval, time.monotonic())
            if stop.wait(max(0.0, next_at - time.monotonic())):
                return
        base = rnd.choice(bases)
        r = rnd.random()
        started = time.perf_counter()
        try:
            if r < SINGLE + FAN:
                fan = r >= SINGLE
                users = rnd.sample(range(1, USERS + 1), FAN_OUT) if fan else [rnd.randint(1, USERS)]
                resp = session.post(f"{base}/load/event", json={"users": users}, timeout=30)
                if resp.status_code != 200:
                    stats.error(f"event HTTP {resp.status_code}")
                    continue
                ids = resp.json()["ids"]
                with stats.lock:
                    stats.acked.extend(ids)
                    stats.event_latency.append(time.perf_counter() - started)
                    stats.events += 1
                    stats.fan_outs += fan
            else:
                path = unread_path if r < SINGLE + FAN + READ / 2 else list_path
                headers = {"X-Load-User": str(rnd.randint(1, USERS)), "Accept": "application/json"}
                resp = session.get(f"{base}{path}", headers=headers, timeout=30)
                if resp.status_code != 200:
                    stats.error(f"read HTTP {resp.status_code}")
                    continue
                with stats.lock:
                    stats.read_latency.append(time.perf_counter() - started)
                    stats.reads += 1
        except requests.RequestException as exc:
            stats.error(type(exc).__name__)


def sse_client(url: str, user_id: int, stop: threading.Event, stats: Stats) -> None:
    """Holds the stream open, reconnecting until stopped; records each notice event."""
    headers = {"X-Load-User": str(user_id), "Accept": "text/event-stream"}
    while not stop.is_set():
        try:
            with requests.get(url, headers=headers, stream=True, timeout=(5, 5)) as resp:
                if resp.status_code != 200:
                    stats.error(f"stream HTTP {resp.status_code}")
                    stop.wait(1)
                    continue
                with stats.lock:
                    stats.sse_connects += 1
                event = None
                for line in resp.iter_lines(decode_unicode=True):
                    if stop.is_set():
                        return
                    if line.startswith("event:"):
                        event = line[6:].strip()
                    elif line.startswith("data:") and event == "notice":
                        notice_id = json.loads(line[5:])["id"]
                        with stats.lock:
                            stats.sse_received.setdefault(notice_id, time.time())
                    elif not line:
                        event = None
        except requests.RequestException:
            if not stop.is_set():
                stats.error("stream reconnect")


def wait_ready(procs: Processes, bases: list[str], celery_app: Any, timeout: float) -> None:
    end = time.monotonic() + timeout
    pending = set(bases)
    while pending:
        procs.check_alive()
        if time.monotonic() > end:
            raise RuntimeError(f"app processes not ready: {sorted(pending)}")
        for base in list(pending):
            try:
                if requests.get(f"{base}/load/features", timeout=2).status_code == 200:
                    pending.discard(base)
            except requests.RequestException:
                pass
        time.sleep(0.2)
    while True:
        procs.check_alive()
        replies = celery_app.control.ping(timeout=0.5)
        if len(replies) >= 2:
            return
        if time.monotonic() > end:
            raise RuntimeError(f"Celery workers not ready ({len(replies)} answered)")


def pending_count(engine: sa.Engine, delivery: sa.Table) -> int:
    with engine.connect() as conn:
        stmt = sa.select(sa.func.count()).where(delivery.c.status.in_(("Wait", "Error")))
        return int(conn.execute(stmt).scalar_one())


# --- checks --------------------------------------------------------------------------


def check(app: Any, acked: list[int]) -> dict[str, Any]:
    notice, delivery = app.notices.Notice.__table__, app.notices.Delivery.__table__
    send = SEND_LOG
    with app.app_context(), app.db.engine.connect() as conn:
        notices = conn.execute(
            sa.select(notice.c.id, notice.c.send_status, notice.c.create_at)
        ).all()
        by_status = dict(
            conn.execute(
                sa.select(delivery.c.status, sa.func.count()).group_by(delivery.c.status)
            ).all()
        )
        sends = (
            sa.select(
                send.c.notice_id,
                send.c.target,
                sa.func.count().label("n"),
                sa.func.min(send.c.sent_at).label("first"),
            )
            .group_by(send.c.notice_id, send.c.target)
            .subquery()
        )
        rows = conn.execute(
            sa.select(delivery.c.id, delivery.c.notice_id, delivery.c.attempts, sends.c.n,
                      sends.c.first)
            .select_from(delivery.outerjoin(
                sends,
                sa.and_(sends.c.notice_id == delivery.c.notice_id,
                        sends.c.target == delivery.c.target),
            ))
            .where(delivery.c.channel == "flaky")
        ).all()  # fmt: skip
    created = {n.id: n.create_at.timestamp() for n in notices}
    lost = [r.id for r in rows if not r.n]
    latencies = [r.first - created[r.notice_id] for r in rows if r.n]
    first_try = [r.first - created[r.notice_id] for r in rows if r.n and r.attempts == 1]
    return {
        "notices": len(notices),
        "acked_missing": len(set(acked) - set(created)),
        "not_sent": sum(1 for n in notices if n.send_status != "Sent"),
        "deliveries": dict(by_status),
        "flaky_deliveries": len(rows),
        "retried": sum(1 for r in rows if r.attempts > 1),
        "lost": len(lost),
        "duplicates": sum(r.n - 1 for r in rows if r.n and r.n > 1),
        "latency": latencies,
        "latency_first_try": first_try,
        "created": created,
    }


# --- Celery: CPU per delivery -------------------------------------------------------


def _cpu(pid: int) -> float:
    """CPU seconds (user + system, all threads) ``pid`` has used; 0 once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    # fields after "(comm)": state is field 3, utime and stime fields 14 and 15
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _backends(conn: sa.Connection) -> dict[int, float]:
    """CPU seconds of every server process of this database but ``conn``'s own."""
    pids = conn.exec_driver_sql(
        "SELECT pid FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
    ).scalars()
    return {pid: _cpu(pid) for pid in pids}


def celery_cpu(args: argparse.Namespace, batch: int | None, n: int) -> tuple[float, float]:
    """Worker and database CPU ms per delivery for ``n`` deliveries (one fan-out, a no-op
    sender) run by one Celery worker, ``batch`` ids per task (None: the library's
    one-task-per-delivery, before ``NOTICE_CELERY_BATCH`` existed).

    The rows are written with dispatch "none", the worker is started and answers a ping,
    then the ids are published through the app's own dispatcher; CPU is read from
    ``/proc`` (worker process; the PostgreSQL backends of this database, which run on
    this machine) from just before the publish to the last delivery Sent.
    """
    tag = f"{os.getpid()}_{uuid.uuid4().hex[:6]}"
    logdir = Path(tempfile.mkdtemp(prefix="notice-cpu-"))
    queue = f"notice-cpu-{tag}"
    with pg_database(args.pg_admin_url, f"notice_cpu_{tag}") as db_url:
        env = dict(
            os.environ,
            PYTHONPATH=str(ROOT),
            LOAD_DB_URL=db_url,
            LOAD_QUEUE=queue,
            LOAD_REDIS_URL=args.redis_url,
            LOAD_CELERY_BROKER=args.celery_broker or args.redis_url,
            LOAD_CHANNEL=f"cpu{uuid.uuid4().hex[:8]}",
            LOAD_SENDER="NoopSender",
        )
        env.pop("LOAD_CELERY_BATCH", None)
        if batch is not None:
            env["LOAD_CELERY_BATCH"] = str(batch)
        os.environ.pop("LOAD_CELERY_BATCH", None)
        os.environ.update(env)
        procs = Processes(logdir, env)
        writer = create_tables(NOTICE_DISPATCH="none")
        publisher = create_app()
        try:
            with writer.app_context():
                notice_event(list(range(1, n + 1)), subject="cpu", content="bench/load.py")
                delivery = writer.notices.Delivery.__table__
                with writer.db.engine.connect() as conn:
                    ids = list(conn.execute(sa.select(delivery.c.id)).scalars())
                writer.db.engine.dispose()
            proc = procs.start("celery", [
                sys.executable, "-m", "celery", "-A", "bench.load_app:celery_app", "worker",
                "--pool=threads", "-c", "4", "-Q", queue, "-n", f"cpu-{queue}@%h",
                "--loglevel=WARNING", "--without-gossip", "--without-mingle",
                "--without-heartbeat",
            ])  # fmt: skip
            celery_app = publisher.extensions["celery"]
            end = time.monotonic() + 40
            while not celery_app.control.ping(timeout=0.5):
                procs.check_alive()
                if time.monotonic() > end:
                    raise RuntimeError("the Celery worker did not answer")
            monitor = sa.create_engine(db_url, poolclass=sa.pool.StaticPool)
            with monitor.connect() as conn:
                conn = conn.execution_options(isolation_level="AUTOCOMMIT")
                db_before, worker_before = _backends(conn), _cpu(proc.pid)
                dispatcher = publisher.notices.state(publisher).dispatcher
                dispatcher.submit(ids)
                end = time.monotonic() + 300
                while pending_count(monitor, delivery):
                    procs.check_alive()
                    if time.monotonic() > end:
                        raise RuntimeError("the Celery worker did not drain its queue")
                    time.sleep(0.1)
                worker_cpu = _cpu(proc.pid) - worker_before
                db_after = _backends(conn)
            monitor.dispose()
            db_cpu = sum(cpu - db_before.get(pid, 0.0) for pid, cpu in db_after.items())
            dispatcher.shutdown()
        finally:
            procs.stop()
            with publisher.app_context():
                publisher.db.engine.dispose()
            shutil.rmtree(logdir, ignore_errors=True)
    return worker_cpu * 1000 / n, db_cpu * 1000 / n


def report_celery_cpu(args: argparse.Namespace) -> None:
    """Print CPU ms per delivery, one task per delivery beside batched tasks."""
    n = args.cpu_deliveries
    from notice.config import DEFAULTS

    batched = "NOTICE_CELERY_BATCH" in DEFAULTS
    log(f"Celery CPU: {n} deliveries, one task each")
    one = celery_cpu(args, 1 if batched else None, n)
    print(f"Celery CPU per delivery (worker + database), {n} deliveries, no-op sender:")
    print(f"  one task per delivery: {sum(one):.2f} ms (worker {one[0]:.2f} + database "
          f"{one[1]:.2f})")  # fmt: skip
    if not batched:
        print("  (this notice has no NOTICE_CELERY_BATCH: one task per delivery only)")
        return
    size = DEFAULTS["NOTICE_CELERY_BATCH"]
    log(f"Celery CPU: {n} deliveries, {size} per task")
    many = celery_cpu(args, size, n)
    print(f"  {size} deliveries per task (NOTICE_CELERY_BATCH default): {sum(many):.2f} ms "
          f"(worker {many[0]:.2f} + database {many[1]:.2f}); "
          f"{sum(many) / sum(one):.3f}x one task per delivery; target <= 1 ms")  # fmt: skip


# --- main ----------------------------------------------------------------------------


def run(mode: Mode, args: argparse.Namespace) -> int:
    tag = f"{os.getpid()}_{uuid.uuid4().hex[:6]}"
    logdir = Path(tempfile.mkdtemp(prefix="notice-load-"))
    queue = f"notice-load-{tag}"
    env = dict(
        os.environ,
        PYTHONPATH=str(ROOT),
        LOAD_REDIS_URL=args.redis_url,
        LOAD_CELERY_BROKER=args.celery_broker or args.redis_url,
        LOAD_QUEUE=queue,
        LOAD_CHANNEL=f"load{uuid.uuid4().hex[:8]}",
        LOAD_FAIL_RATE=str(args.fail_rate),
    )
    procs = Processes(logdir, env)
    status = 2  # anything that escapes below
    # the whole run is bounded: past the deadline every child is killed and we exit 3
    watchdog = threading.Timer(mode.deadline, _give_up, args=(procs, mode.deadline))
    watchdog.daemon = True
    watchdog.start()
    try:
        with pg_database(args.pg_admin_url, f"notice_load_{tag}_ref") as ref_url:
            ref_rate = reference(ref_url, mode.ref_seconds)
        log(f"reference: {ref_rate:.0f} notices/s (one process, one thread, sync dispatch)")
        with pg_database(args.pg_admin_url, f"notice_load_{tag}") as db_url:
            env["LOAD_DB_URL"] = os.environ["LOAD_DB_URL"] = db_url
            for key in ("LOAD_QUEUE", "LOAD_CHANNEL", "LOAD_REDIS_URL", "LOAD_CELERY_BROKER"):
                os.environ[key] = env[key]
            # a publisher-less handle on the same database, for setup and checks
            app = create_tables(NOTICE_DISPATCH="none")
            try:
                status = _run_system(mode, args, app, procs, queue, ref_rate)
                return status
            finally:
                procs.kill()
                with app.app_context():
                    app.db.engine.dispose()
    finally:
        watchdog.cancel()
        if status == 0:
            shutil.rmtree(logdir, ignore_errors=True)
        else:
            log(f"process logs kept: {logdir}")


def _give_up(procs: Processes, deadline: float) -> None:
    log(f"deadline of {deadline:.0f} s passed: killing everything")
    procs.kill()
    os._exit(3)


def _run_system(
    mode: Mode, args: argparse.Namespace, app: Any, procs: Processes, queue: str, ref_rate: float
) -> int:
    py = sys.executable
    ports = [free_port(), free_port()]
    bases = [f"http://127.0.0.1:{p}" for p in ports]
    started = time.monotonic()
    for i, port in enumerate(ports):
        procs.start(f"gunicorn{i}", [
            py, "-m", "gunicorn", "-k", "gevent", "-w", "1", "--worker-connections", "500",
            "-b", f"127.0.0.1:{port}", "--graceful-timeout", "3", "--log-level", "warning",
            "bench.load_app:app",
        ])  # fmt: skip
    for i in range(2):
        procs.start(f"celery{i}", [
            py, "-m", "celery", "-A", "bench.load_app:celery_app", "worker", "--pool=threads",
            "-c", "4", "-Q", queue, "-n", f"load{i}-{queue}@%h", "--loglevel=WARNING",
            "--without-gossip", "--without-mingle", "--without-heartbeat",
        ])  # fmt: skip
    cli = has_sweeper_cli()
    for i in range(2):
        cmd = (
            [py, "-m", "flask", "--app", "bench.load_app:app", "notice", "worker",
             "--interval", "0.2"]
            if cli else [py, "-m", "bench.load_app", "sweep", "0.2"]
        )  # fmt: skip
        procs.start(f"sweeper{i}", cmd)
    from celery import Celery

    broker = args.celery_broker or args.redis_url
    pinger = Celery("load-ping", broker=broker, set_as_current=False)
    wait_ready(procs, bases, pinger, timeout=40)
    features = requests.get(f"{bases[0]}/load/features", timeout=5).json()
    features["prefix"] = app.config["NOTICE_URL_PREFIX"]
    sweepers = "flask notice worker" if cli else "deliver_due loop"
    log(
        f"started in {time.monotonic() - started:.1f} s: 2 gunicorn (gevent), 2 Celery "
        f"workers on {urlsplit(broker).scheme}, 2 sweepers ({sweepers}); "
        f"stream: {features['stream']}, JSON API: {features['api_unread']}"
    )

    interval = mode.clients / args.rate if args.rate else 0.0
    stats = Stats()
    stop, sse_stop = threading.Event(), threading.Event()
    threads = [
        threading.Thread(
            target=client, args=(bases, features, stop, stats, interval), daemon=True
        )
        for _ in range(mode.clients)
    ]
    sse_threads = []
    if features["stream"]:
        for i in range(mode.sse):
            url = f"{bases[i % 2]}{features['prefix']}/stream"
            sse_threads.append(threading.Thread(
                target=sse_client, args=(url, i + 1, sse_stop, stats), daemon=True
            ))  # fmt: skip
    for t in sse_threads + threads:
        t.start()
    load_start = time.time()
    stop.wait(mode.seconds)
    stop.set()
    for t in threads:
        t.join(timeout=35)
    load_end = time.time()
    procs.check_alive()
    log(f"load done: {stats.events} events ({stats.fan_outs} fan-out), {stats.reads} reads")

    delivery = app.notices.Delivery.__table__
    with app.app_context():
        engine = app.db.engine
        drain_end = time.monotonic() + mode.drain
        while (left := pending_count(engine, delivery)) and time.monotonic() < drain_end:
            time.sleep(0.25)
    quiet_at = time.time()
    log(f"quiescent after {quiet_at - load_end:.1f} s ({left} pending)")
    sse_stop.set()
    procs.stop()
    for t in sse_threads:
        t.join(timeout=10)

    result = check(app, stats.acked)
    return report(
        mode, stats, result, features, load_start, load_end, quiet_at, ref_rate, left, args.rate
    )


def report(
    mode: Mode,
    stats: Stats,
    res: dict[str, Any],
    features: dict[str, Any],
    load_start: float,
    load_end: float,
    quiet_at: float,
    ref_rate: float,
    left: int,
    rate_arg: float | None,
) -> int:
    window = load_end - load_start
    rate = len(stats.acked) / window
    lat, first = res["latency"], res["latency_first_try"]
    ms = 1000.0
    fail_rate = float(os.environ.get("LOAD_FAIL_RATE", 0.1))
    sse_clients = mode.sse if features["stream"] else 0
    offered = f"offered {rate_arg:.0f} requests/s" if rate_arg else "closed loop"
    print(f"notice load run ({'short' if mode is SHORT else 'full'}): {window:.1f} s of load, "
          f"{mode.clients} request clients ({offered}), {sse_clients} SSE clients, sender "
          f"failing {fail_rate:.0%}")  # fmt: skip
    print(f"  requests: {stats.events} notice_event ({stats.fan_outs} fan-out x{FAN_OUT}), "
          f"{stats.reads} reads, errors {stats.errors or 0}")  # fmt: skip
    print(f"  notice_event HTTP p50 {percentile(stats.event_latency, 50) * ms:.1f} ms, "
          f"p99 {percentile(stats.event_latency, 99) * ms:.1f} ms; reads p99 "
          f"{percentile(stats.read_latency, 99) * ms:.1f} ms")  # fmt: skip
    sent_rate = res["flaky_deliveries"] / (quiet_at - load_start)
    requests_rate = (stats.events + stats.reads) / window
    print(f"  throughput: {rate:.0f} notices/s committed, {sent_rate:.0f} deliveries/s sent "
          f"(load start to quiescence), {requests_rate:.0f} requests/s")  # fmt: skip
    print(f"  end-to-end latency (create_at -> recorded send): p50 {percentile(lat, 50) * ms:.0f}"
          f" ms, p99 {percentile(lat, 99) * ms:.0f} ms, max {max(lat, default=0) * ms:.0f} ms; "
          f"first-try sends p99 {percentile(first, 99) * ms:.0f} ms; "
          f"{res['retried']} deliveries needed retries")  # fmt: skip
    if features["stream"]:
        created = res["created"]
        sse_lat = [t - created[i] for i, t in stats.sse_received.items() if i in created]
        print(f"  SSE: {stats.sse_connects} connects, {len(stats.sse_received)} notice events, "
              f"latency p50 {percentile(sse_lat, 50) * ms:.0f} ms, p99 "
              f"{percentile(sse_lat, 99) * ms:.0f} ms")  # fmt: skip
    print(f"  deliveries by status: {res['deliveries']}; pending at the end: {left}")
    print(f"  reference (1 process, 1 thread, sync, no failures): {ref_rate:.0f} notices/s; "
          f"ratio system / reference: {rate / ref_rate:.2f}")  # fmt: skip
    print(f"  committed notices {res['notices']} (acked by HTTP {len(stats.acked)}, missing "
          f"{res['acked_missing']}), not Sent {res['not_sent']}, lost deliveries "
          f"{res['lost']}, duplicated sends {res['duplicates']}")  # fmt: skip
    ok = not (res["lost"] or res["duplicates"] or res["not_sent"] or res["acked_missing"])
    ok = ok and res["notices"] > 0
    print("OK: zero lost, zero duplicated" if ok else "FAIL: lost or duplicated deliveries")
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--short", action="store_true", help="CI mode: <= 60 s, asserts")
    parser.add_argument("--seconds", type=float, help="seconds of load (overrides the mode)")
    parser.add_argument(
        "--rate", type=float, help="offered requests/s (all kinds); default: back to back"
    )
    parser.add_argument("--fail-rate", type=float, default=0.1)
    parser.add_argument(
        "--pg-admin-url",
        default=PG_ADMIN_URL,
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    parser.add_argument(
        "--celery-broker",
        help="Celery broker URL, e.g. amqp://guest:guest@127.0.0.1:5672// (default: Redis)",
    )
    parser.add_argument(
        "--celery-cpu",
        action="store_true",
        help="only measure Celery CPU ms per delivery (one task per delivery vs batches)",
    )
    parser.add_argument("--cpu-deliveries", type=int, default=2000)
    args = parser.parse_args()
    for url in (args.pg_admin_url, args.redis_url, args.celery_broker or args.redis_url):
        host = sa.make_url(url).host if "postgres" in url else urlsplit(url).hostname
        if host not in ("127.0.0.1", "localhost", "::1"):
            parser.error(f"loopback only: {url}")
    mode = SHORT if args.short else FULL
    if args.seconds:
        from dataclasses import replace

        mode = replace(mode, seconds=args.seconds)
    os.environ["LOAD_FAIL_RATE"] = str(args.fail_rate)
    if args.celery_cpu:
        report_celery_cpu(args)
        return 0
    status = run(mode, args)
    if mode is FULL:
        report_celery_cpu(args)
    return status


if __name__ == "__main__":
    sys.exit(main())
