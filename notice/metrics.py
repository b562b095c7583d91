"""Prometheus metrics of one app (``NOTICE_METRICS``; ``pip install 'notice[metrics]'``).

- ``notice_deliveries_total{channel, outcome}``: deliveries by how their attempt
  ended: ``sent``, ``error`` (a retry follows), ``dead``, ``skipped``.
- ``notice_send_seconds{channel}``: histogram of one call into a sender.
- ``notice_pending_deliveries{channel}``: Wait and Error rows (gauge).
- ``notice_oldest_pending_seconds{channel}``: age of the oldest pending row (gauge).
- ``notice_sweeper_passes_total`` and ``notice_sweeper_failures_total``: sweep passes
  that ended, and that raised.

Every series also has an ``app`` label (``app.name``), so apps sharing a registry
(``NOTICE_METRICS_REGISTRY = "default"``) stay apart. Outcomes are counted from the
public surfaces only: ``notice_sent`` / ``notice_failed`` signals, and a timing proxy
around each sender (which also sees a sender's :class:`~notice.errors.SkipDelivery`;
a notice skipped because it expired before its send never reaches a sender and is not
counted). The gauges are read at scrape time by one grouped query.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import time
import weakref
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from flask import Flask, Response, request
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.exc import SQLAlchemyError

from .columns import utcnow
from .errors import ConfigurationError, SkipDelivery, TablesMissing
from .senders.base import Sender
from .signals import notice_failed, notice_sent
from .store.metrics import pending_by_channel
from .types import DeliveryStatus, UserId

if TYPE_CHECKING:
    from .models import NoticeView
    from .state import NoticeState

logger = logging.getLogger("notice.metrics")

#: send latency buckets in seconds: from a memory sender to a send timeout
SEND_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class _Families:
    """The metric objects of one registry, shared by every app reporting into it."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.deliveries = Counter(
            "notice_deliveries",
            "Delivery attempts by channel and outcome (sent, error, dead, skipped).",
            ["app", "channel", "outcome"],
            registry=registry,
        )
        self.send_seconds = Histogram(
            "notice_send_seconds",
            "Seconds one call into a channel's sender took.",
            ["app", "channel"],
            buckets=SEND_BUCKETS,
            registry=registry,
        )
        self.sweeper_passes = Counter(
            "notice_sweeper_passes", "Retry sweeper passes that ended.", ["app"], registry=registry
        )
        self.sweeper_failures = Counter(
            "notice_sweeper_failures",
            "Retry sweeper passes that raised (database down...).",
            ["app"],
            registry=registry,
        )
        self.backlog = BacklogCollector()
        registry.register(self.backlog)


# registry -> its metric objects: prometheus_client refuses a second metric of one name
# in a registry, which two apps reporting into the default registry would otherwise add
_families: weakref.WeakKeyDictionary[CollectorRegistry, _Families] = weakref.WeakKeyDictionary()


class BacklogCollector(Collector):
    """``notice_pending_deliveries`` and ``notice_oldest_pending_seconds``, computed at
    scrape time with one query per app (:func:`notice.store.metrics.pending_by_channel`).

    A channel with nothing pending reports 0, so an alert on it has a series to watch.
    A database error is logged and that app's gauges are left out of the scrape (an
    absent series, which ``absent()`` alerts see), instead of failing the whole scrape.
    """

    def __init__(self) -> None:
        # app name -> state; weak, so a dropped app leaves the scrape
        self._states: weakref.WeakValueDictionary[str, NoticeState] = weakref.WeakValueDictionary()

    def add(self, name: str, state: NoticeState) -> None:
        if name in self._states:
            raise ConfigurationError(
                f"two apps named {name!r} report metrics into one registry; give them "
                "different names (Flask(import_name)) or their own registries "
                "(NOTICE_METRICS_REGISTRY = None)"
            )
        self._states[name] = state

    def describe(self) -> Iterable[Metric]:
        # without describe(), registering would call collect(), a query outside any app
        return [_pending_family(), _oldest_family()]

    def collect(self) -> Iterable[Metric]:
        pending, oldest = _pending_family(), _oldest_family()
        for name, state in list(self._states.items()):
            try:
                with state.app.app_context():
                    with state.engine.connect() as conn:
                        rows = pending_by_channel(conn, state.models.Delivery)
            except (SQLAlchemyError, TablesMissing) as exc:
                logger.warning(
                    "metrics: reading the pending deliveries of %r failed (%s)",
                    name,
                    type(getattr(exc, "orig", None) or exc).__name__,
                )
                continue
            now = utcnow()
            found = {row.channel: row for row in rows}
            for channel in sorted(set(state.senders_by_name) | set(found)):
                row = found.get(channel)
                age = (now - row.oldest).total_seconds() if row and row.oldest else 0.0
                pending.add_metric([name, channel], row.pending if row else 0)
                oldest.add_metric([name, channel], max(age, 0.0))
        return [pending, oldest]


def _pending_family() -> GaugeMetricFamily:
    return GaugeMetricFamily(
        "notice_pending_deliveries",
        "Deliveries not sent yet (Wait, or Error awaiting a retry).",
        labels=["app", "channel"],
    )


def _oldest_family() -> GaugeMetricFamily:
    return GaugeMetricFamily(
        "notice_oldest_pending_seconds",
        "Age in seconds of the oldest pending delivery (0: none pending).",
        labels=["app", "channel"],
    )


class NoticeMetrics:
    """The metrics of one app; ``init_app`` builds it when ``NOTICE_METRICS`` is on and
    keeps it on the app's state (``state.metrics``)."""

    def __init__(self, app: Flask, state: NoticeState, registry: CollectorRegistry) -> None:
        self.app_name = app.name
        #: the registry these metrics report into
        self.registry = registry
        families = _families.get(registry)
        if families is None:
            families = _families[registry] = _Families(registry)
        families.backlog.add(app.name, state)
        self._families = families
        # blinker holds receivers weakly: these bound methods live as long as this object,
        # which the app's state keeps
        notice_sent.connect(self._on_sent, sender=app)
        notice_failed.connect(self._on_failed, sender=app)

    def _on_sent(self, _app: Flask, *, channel: str, **_kwargs: Any) -> None:
        self.count(channel, DeliveryStatus.SENT)

    def _on_failed(self, _app: Flask, *, channel: str, final: bool, **_kwargs: Any) -> None:
        self.count(channel, DeliveryStatus.DEAD if final else DeliveryStatus.ERROR)

    def count(self, channel: str, outcome: DeliveryStatus) -> None:
        """Count one delivery of ``channel`` ending as ``outcome``."""
        self._families.deliveries.labels(self.app_name, channel, outcome.value.lower()).inc()

    def observe_send(self, channel: str, seconds: float) -> None:
        self._families.send_seconds.labels(self.app_name, channel).observe(seconds)

    def sweep_done(self, *, ok: bool) -> None:
        """Count one sweeper pass (called by :func:`notice.sweeper.sweep`)."""
        family = self._families.sweeper_passes if ok else self._families.sweeper_failures
        family.labels(self.app_name).inc()

    def wrap(self, sender: Sender) -> Sender:
        """``sender`` behind a :class:`TimedSender` reporting here."""
        return TimedSender(sender, self)


class TimedSender(Sender):
    """A sender's stand-in that times each send and counts a :class:`SkipDelivery`.

    Everything else goes to the wrapped sender unchanged: every hook, attributes such
    as the memory sender's ``outbox``, and ``isinstance`` (``__class__`` answers the
    wrapped sender's class, as :mod:`unittest.mock` does, so ``isinstance(sender,
    EmailSender)`` in the digest still holds). One proxy per app: a sender registered
    on several apps with ``register_sender`` reports to each app's metrics.
    """

    def __init__(self, inner: Sender, metrics: NoticeMetrics) -> None:
        self._inner = inner
        self._metrics = metrics

    @property  # type: ignore[misc]
    def __class__(self) -> type:
        return type(self._inner)

    @property
    def name(self) -> str:  # type: ignore[override]
        return self._inner.name

    @property
    def wrapped(self) -> Sender:
        """The sender this proxy times."""
        return self._inner

    def __getattr__(self, attr: str) -> Any:
        # only called for what the proxy lacks: the wrapped sender's own attributes
        return getattr(self._inner, attr)

    def init_app(self, app: Flask) -> None:
        self._inner.init_app(app)

    def targets(self, user_ids: Sequence[UserId]) -> Mapping[UserId, Sequence[str]] | None:
        return self._inner.targets(user_ids)

    def validate_data(self, data: object) -> None:
        self._inner.validate_data(data)

    def open(self) -> None:
        self._inner.open()

    def close(self) -> None:
        self._inner.close()

    def send(self, notice: NoticeView) -> None:
        self._inner.send(notice)

    def send_to(self, notice: NoticeView, target: str) -> None:
        start = time.perf_counter()
        try:
            self._inner.send_to(notice, target)
        except SkipDelivery:
            # the one outcome no signal reports
            self._metrics.count(self._inner.name, DeliveryStatus.SKIPPED)
            raise
        finally:
            self._metrics.observe_send(self._inner.name, time.perf_counter() - start)

    def __repr__(self) -> str:
        return repr(self._inner)


def resolve_registry(value: Any) -> CollectorRegistry:
    """The registry ``NOTICE_METRICS_REGISTRY`` names: None, a new one of the app's
    own; ``"default"``, prometheus_client's global ``REGISTRY``; or a registry."""
    if value is None:
        return CollectorRegistry()
    if value == "default":
        return REGISTRY
    if isinstance(value, CollectorRegistry):
        return value
    raise ConfigurationError(
        "NOTICE_METRICS_REGISTRY must be None (a registry of the app's own), "
        f"'default' (prometheus_client.REGISTRY) or a CollectorRegistry, got {value!r}"
    )


def install(app: Flask, state: NoticeState) -> NoticeMetrics:
    """Build ``app``'s metrics and, with ``NOTICE_METRICS_ENDPOINT``, its scrape
    endpoint; called by ``init_app`` before the senders are added, so each is wrapped."""
    settings = state.settings
    metrics = NoticeMetrics(app, state, resolve_registry(settings.metrics_registry))
    if settings.metrics_endpoint:
        token = settings.metrics_token

        def scrape() -> Response:
            refused = _refuse_scrape(token)
            if refused is not None:
                return refused
            return Response(generate_latest(metrics.registry), mimetype=CONTENT_TYPE_LATEST)

        app.add_url_rule(settings.metrics_endpoint, "notice_metrics", scrape, methods=["GET"])
    return metrics


def registry_of(app: Flask) -> CollectorRegistry:
    """The registry ``app``'s metrics report into (to serve it yourself, e.g. with
    ``prometheus_client.make_wsgi_app(registry)``)."""
    from .state import state_of

    metrics = state_of(app).metrics
    if not isinstance(metrics, NoticeMetrics):
        raise ConfigurationError("metrics are off for this app: set NOTICE_METRICS = True")
    return metrics.registry


_PROXY_HEADERS = ("Forwarded", "X-Forwarded-For", "X-Real-Ip")


def _refuse_scrape(token: str | None) -> Response | None:
    """None when the scrape may proceed, else the 401/403 answer.

    With ``NOTICE_METRICS_TOKEN`` the request must carry it as a bearer token. Without
    one only loopback callers may scrape, and not through a proxy: a reverse proxy on
    the same host makes every outside caller look like 127.0.0.1, so a request that
    carries a forwarding header is refused (metrics show traffic and backlog volumes).
    """
    if token is not None:
        scheme, _, sent = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(
            sent.strip().encode(), token.encode()
        ):
            return None
        response = Response("a valid metrics token is required\n", 401, mimetype="text/plain")
        response.headers["WWW-Authenticate"] = 'Bearer realm="notice-metrics"'
        return response
    if _is_loopback(request.remote_addr) and not any(h in request.headers for h in _PROXY_HEADERS):
        return None
    return Response(
        "metrics are served to loopback callers only (set NOTICE_METRICS_TOKEN)\n",
        403,
        mimetype="text/plain",
    )


def _is_loopback(address: str | None) -> bool:
    try:
        return address is not None and ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False
