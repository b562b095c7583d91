"""Prometheus metrics end to end: notices go out through a working, a failing and a
skipping sender, the sweeper runs, and the scrape endpoint's text (parsed with
prometheus_client's own parser) tells what happened; the backlog gauges on SQLite and
PostgreSQL."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from notice import Sender, notice_event
from notice.columns import utcnow
from notice.errors import ConfigurationError, SkipDelivery, TablesMissing, TransientError
from notice.metrics import NoticeMetrics, TimedSender, registry_of, resolve_registry
from notice.senders.memory import MemorySender
from notice.state import state_of

TOKEN = "metrics-token-0123456789"


class FlakySender(Sender):
    """Fails (transiently) until ``working`` is set; counts its hooks."""

    name = "flaky"

    def __init__(self) -> None:
        self.working = False
        self.opened = self.closed = 0

    def validate_data(self, data: object) -> None:
        if isinstance(data, dict) and "refuse" in data:
            raise ValueError("flaky refuses this data")

    def open(self) -> None:
        self.opened += 1

    def close(self) -> None:
        self.closed += 1

    def send(self, notice: Any) -> None:
        if not self.working:
            raise TransientError("the flaky service is down")


class SkippingSender(Sender):
    name = "skipping"

    def send(self, notice: Any) -> None:
        raise SkipDelivery("no address")


def _metrics_app(app_factory: Any, **config: Any) -> tuple[Any, FlakySender]:
    settings = {
        "NOTICE_METRICS": True,
        "NOTICE_METRICS_ENDPOINT": "/metrics",
        "NOTICE_METRICS_TOKEN": TOKEN,
        **config,
    }
    app = app_factory(**settings)
    flaky = FlakySender()
    # registered after init_app: wrapped all the same
    app.notices.register_sender(flaky)
    app.notices.register_sender(SkippingSender())
    return app, flaky


def _scrape(app: Any) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """The endpoint's samples: ``(name, labels) -> value`` (parsed, not grepped)."""
    response = app.test_client().get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "text/plain"
    samples = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for s in family.samples:
            labels = dict(s.labels)
            assert labels.pop("app") == app.name
            samples[(s.name, frozenset(labels.items()))] = s.value
    return samples


def _value(samples: dict[Any, float], name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def test_deliveries_latency_backlog_and_sweeper_passes(app_factory):
    app, flaky = _metrics_app(app_factory)
    with app.app_context():
        notice_event([1, 2], subject="hello", content="hi")
    samples = _scrape(app)
    total = "notice_deliveries_total"
    assert _value(samples, total, channel="memory", outcome="sent") == 2
    assert _value(samples, total, channel="flaky", outcome="error") == 2
    assert _value(samples, total, channel="skipping", outcome="skipped") == 2
    assert _value(samples, total, channel="flaky", outcome="sent") is None
    # every call into a sender is timed, failed ones too
    for channel in ("memory", "flaky", "skipping"):
        assert _value(samples, "notice_send_seconds_count", channel=channel) == 2
        assert _value(samples, "notice_send_seconds_bucket", channel=channel, le="+Inf") == 2
    # the two failed deliveries wait for a retry; nothing else is pending
    assert _value(samples, "notice_pending_deliveries", channel="flaky") == 2
    assert _value(samples, "notice_pending_deliveries", channel="memory") == 0
    assert _value(samples, "notice_pending_deliveries", channel="skipping") == 0
    assert _value(samples, "notice_oldest_pending_seconds", channel="flaky") >= 0
    assert _value(samples, "notice_oldest_pending_seconds", channel="memory") == 0
    assert _value(samples, "notice_sweeper_passes_total") is None

    # a sweep once the retries are due: still failing
    with app.app_context():
        app.notices.sweep(now=utcnow() + timedelta(hours=2))
    samples = _scrape(app)
    assert _value(samples, total, channel="flaky", outcome="error") == 4
    assert _value(samples, "notice_sweeper_passes_total") == 1
    assert _value(samples, "notice_pending_deliveries", channel="flaky") == 2

    # the service is back: the next sweep sends them and the backlog is gone
    flaky.working = True
    with app.app_context():
        app.notices.sweep(now=utcnow() + timedelta(days=2))
    samples = _scrape(app)
    assert _value(samples, total, channel="flaky", outcome="sent") == 2
    assert _value(samples, "notice_sweeper_passes_total") == 2
    assert _value(samples, "notice_sweeper_failures_total") is None
    assert _value(samples, "notice_pending_deliveries", channel="flaky") == 0
    assert _value(samples, "notice_send_seconds_count", channel="flaky") == 6


def test_the_oldest_pending_age_grows_with_the_backlog(app_factory):
    app, _ = _metrics_app(app_factory, NOTICE_DISPATCH="none", NOTICE_SENDERS=["memory"])
    with app.app_context():
        notice_event(1, subject="waiting", content="x", channels=["memory"])
        Delivery = app.notices.Delivery
        app.db.session.execute(sa.update(Delivery).values(create_at=utcnow() - timedelta(hours=1)))
        app.db.session.commit()
    samples = _scrape(app)
    assert _value(samples, "notice_pending_deliveries", channel="memory") == 1
    assert 3600 <= _value(samples, "notice_oldest_pending_seconds", channel="memory") < 3600 * 2
    assert _value(samples, "notice_deliveries_total", channel="memory", outcome="sent") is None


def test_a_failed_sweep_pass_is_counted_and_the_scrape_survives(app_factory):
    app, _ = _metrics_app(app_factory)
    with app.app_context():
        app.notices.Delivery.__table__.drop(app.db.engine)
        with pytest.raises(TablesMissing):  # the dropped table, named (store.schema)
            app.notices.sweep()
    samples = _scrape(app)
    assert _value(samples, "notice_sweeper_failures_total") == 1
    assert _value(samples, "notice_sweeper_passes_total") is None
    # the backlog query failed: its series are left out, the counters still served
    assert not [k for k in samples if k[0] == "notice_pending_deliveries"]


def test_the_timing_proxy_keeps_the_sender_as_it_was(app_factory):
    app, flaky = _metrics_app(app_factory)
    with app.app_context():
        memory = app.notices.sender("memory")
        assert isinstance(memory, TimedSender) and isinstance(memory, MemorySender)
        assert memory.name == "memory" and repr(memory) == repr(memory.wrapped)
        notice_event(1, subject="kept", content="x")
        assert [n.subject for n in memory.outbox] == ["kept"]
        memory.reset()
        assert memory.outbox == []
        # validate_data still refuses, so nothing is written
        with pytest.raises(ValueError, match="flaky refuses"):
            notice_event(1, subject="no", content="x", data={"refuse": 1})
        assert app.notices.list_notices(1) and len(app.notices.list_notices(1)) == 1
    assert flaky.opened == flaky.closed >= 1


def test_the_endpoint_needs_the_token(app_factory):
    app, _ = _metrics_app(app_factory)
    client = app.test_client()
    assert client.get("/metrics").status_code == 401
    wrong = client.get("/metrics", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and "WWW-Authenticate" in wrong.headers
    assert client.post("/metrics").status_code == 405


def test_without_a_token_only_unproxied_loopback_callers_may_scrape(app_factory):
    app, _ = _metrics_app(app_factory, NOTICE_METRICS_TOKEN=None)
    client = app.test_client()
    assert client.get("/metrics").status_code == 200  # the test client is 127.0.0.1
    ipv6 = client.get("/metrics", environ_base={"REMOTE_ADDR": "::1"})
    assert ipv6.status_code == 200
    outside = client.get("/metrics", environ_base={"REMOTE_ADDR": "192.0.2.7"})
    assert outside.status_code == 403
    # a reverse proxy on this host: the caller is not who REMOTE_ADDR says
    proxied = client.get("/metrics", headers={"X-Forwarded-For": "192.0.2.7"})
    assert proxied.status_code == 403
    assert "notice_deliveries" not in proxied.get_data(as_text=True)


def test_metrics_are_off_by_default(app_factory):
    app = app_factory()
    assert state_of(app).metrics is None
    assert app.test_client().get("/metrics").status_code == 404
    with pytest.raises(ConfigurationError, match="NOTICE_METRICS = True"):
        registry_of(app)
    with app.app_context():
        assert not isinstance(app.notices.sender("memory"), TimedSender)


def test_without_an_endpoint_the_apps_registry_has_the_metrics(app_factory):
    app = app_factory(NOTICE_METRICS=True)
    with app.app_context():
        notice_event(1, subject="x", content="x")
    assert app.test_client().get("/metrics").status_code == 404
    text = generate_latest(registry_of(app)).decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    sent = families["notice_deliveries"].samples
    assert any(s.labels["outcome"] == "sent" and s.value == 1 for s in sent)
    # a registry of its own, not prometheus_client's global one
    assert registry_of(app) is not REGISTRY


def test_two_apps_in_one_registry_stay_apart(app_factory):
    shared = CollectorRegistry()
    first = app_factory(NOTICE_METRICS=True, NOTICE_METRICS_REGISTRY=shared)
    second = app_factory(NOTICE_METRICS=True, NOTICE_METRICS_REGISTRY=shared)
    with first.app_context():
        notice_event([1, 2, 3], subject="x", content="x")
    with second.app_context():
        notice_event(1, subject="x", content="x")
    sent = {
        s.labels["app"]: s.value
        for f in text_string_to_metric_families(generate_latest(shared).decode())
        for s in f.samples
        if s.name == "notice_deliveries_total"
    }
    assert sent == {first.name: 3, second.name: 1}
    # one name twice in one registry would mix two apps' series: refused
    with pytest.raises(ConfigurationError, match="two apps named"):
        NoticeMetrics(first, state_of(first), shared)


def test_two_apps_with_their_own_registries_do_not_collide(app_factory):
    first = app_factory(NOTICE_METRICS=True)
    second = app_factory(NOTICE_METRICS=True)
    assert registry_of(first) is not registry_of(second)
    with first.app_context():
        notice_event(1, subject="x", content="x")
    text = generate_latest(registry_of(second)).decode()
    assert 'outcome="sent"' not in text


def test_the_registry_setting_resolves():
    assert resolve_registry("default") is REGISTRY
    mine = CollectorRegistry()
    assert resolve_registry(mine) is mine
    assert isinstance(resolve_registry(None), CollectorRegistry)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"NOTICE_METRICS": "yes"}, "NOTICE_METRICS must be True or False"),
        ({"NOTICE_METRICS_ENDPOINT": "/metrics"}, "need NOTICE_METRICS = True"),
        ({"NOTICE_METRICS": True, "NOTICE_METRICS_ENDPOINT": "metrics"}, "a path such as"),
        ({"NOTICE_METRICS": True, "NOTICE_METRICS_TOKEN": " "}, "NOTICE_METRICS_TOKEN"),
        ({"NOTICE_METRICS": True, "NOTICE_METRICS_REGISTRY": "mine"}, "CollectorRegistry"),
    ],
)
def test_wrong_settings_fail_fast(app_factory, config, message):
    with pytest.raises(ConfigurationError, match=message):
        app_factory(**config)


def test_sends_of_the_thread_dispatcher_are_counted(app_factory):
    app, flaky = _metrics_app(app_factory, NOTICE_DISPATCH="thread", NOTICE_THREADS=2)
    flaky.working = True
    with app.app_context():
        notice_event(list(range(1, 11)), subject="threaded", content="x")
    # the pool sends in the background: wait until nothing is pending (a condition,
    # with a generous bound, not a timing assertion)
    deadline = time.monotonic() + 60
    while True:
        samples = _scrape(app)
        pending = [v for (name, _), v in samples.items() if name == "notice_pending_deliveries"]
        if (len(pending) == 3 and not any(pending)) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert _value(samples, "notice_deliveries_total", channel="skipping", outcome="skipped") == 10
    for channel in ("memory", "flaky"):
        assert _value(samples, "notice_deliveries_total", channel=channel, outcome="sent") == 10
        assert _value(samples, "notice_send_seconds_count", channel=channel) == 10
        assert _value(samples, "notice_pending_deliveries", channel=channel) == 0
