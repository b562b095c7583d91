"""Per-app state: what ``Notices.init_app`` builds for one app, and nobody else writes.

It holds the settings read once at startup, the routes (senders and their filters), the
routing gates, the dispatcher, and the live stream's broker and publisher. It keeps no
reference to the :class:`~notice.Notices` object and only a weak one to the app, so an
app that is dropped can be garbage-collected. Everything downstream gets this state or
the parts it needs as arguments.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Protocol

from flask import Flask, current_app

from .errors import ConfigurationError
from .filters import Filter
from .grouping import GroupSettings
from .links import with_link
from .models import notice_dict
from .ratelimit import RateLimiter
from .references import Resolver, resolve
from .retry import RetryPolicy
from .schedule.settings import ScheduleSettings
from .senders.base import Sender
from .sending import HungSends
from .throttle import ThrottleSettings
from .types import UserIdPolicy

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from .brokers.base import Broker
    from .brokers.publisher import StreamPublisher
    from .config import Settings
    from .dispatch import Dispatcher
    from .mobile.config import MobileSettings
    from .mobile.models import DeviceModels
    from .models import Models
    from .preferences.models import PreferenceModels
    from .preferences.settings import PreferenceSettings
    from .push.config import PushSettings
    from .push.models import PushModels

#: ``gate(channel, notice_type, user_ids) -> user ids that may receive on channel``;
#: how user preferences veto deliveries before rows are written
Gate = Callable[[str, str, Sequence[Any]], "set[Any] | frozenset[Any]"]

#: ``authorizer(user_id, topic_name, action) -> bool`` with action one of
#: :data:`TOPIC_ACTIONS`; ``user_id`` is None for an anonymous device
TopicAuthorizer = Callable[[Any, str, str], bool]

#: what a user may be allowed to do with a topic through the web layer
TOPIC_ACTIONS = ("subscribe", "history", "publish")


class MetricsHooks(Protocol):
    """What the engine calls on an app's metrics (:class:`notice.metrics.NoticeMetrics`;
    named by this protocol so the state does not import prometheus_client)."""

    def wrap(self, sender: Sender) -> Sender:
        """``sender`` behind a proxy timing its sends."""

    def sweep_done(self, *, ok: bool) -> None:
        """Count one sweeper pass."""


@dataclass
class Route:
    """A sender and the filter choosing which notices it gets."""

    sender: Sender
    when: Filter | None = None


class NoticeState:
    """What ``notice`` keeps for one app (``Notices.state(app)``)."""

    def __init__(
        self,
        app: Flask,
        *,
        db: Any,
        models: Models,
        push_models: PushModels,
        device_models: DeviceModels,
        preference_models: PreferenceModels,
        settings: Settings,
        preference_settings: PreferenceSettings,
        push_settings: PushSettings,
        mobile_settings: MobileSettings,
    ) -> None:
        self._app = weakref.ref(app)
        #: the app's Flask-SQLAlchemy object
        self.db = db
        self.models = models
        self.push_models = push_models
        self.device_models = device_models
        self.preference_models = preference_models
        self.settings = settings
        self.preference_settings = preference_settings
        self.push_settings = push_settings
        self.mobile_settings = mobile_settings
        #: converts and checks user ids where they enter the library
        self.coerce_user_id = UserIdPolicy(models.Notice.__table__.c.user_id.type)
        self.routes: list[Route] = []
        self.senders_by_name: dict[str, Sender] = {}
        self.gates: list[Gate] = []
        #: the web layer's current-user hook (``Notices.user_loader``); None: flask-login
        self.user_loader: Callable[[], Any] | None = None
        #: may a user subscribe to, read or publish to a topic through the web layer
        #: (``Notices.topic_authorizer``); None: nobody may
        self.topic_authorizer: TopicAuthorizer | None = None
        #: anonymous device subscriptions per client address (NOTICE_API_ANONYMOUS_RATE)
        self.anonymous_limiter = RateLimiter(settings.api_anonymous_rate, window=60.0)
        #: ``loader(user_id) -> email address or None`` (``Notices.email_loader``)
        self.email_loader: Callable[[Any], str | None] | None = None
        #: ``loader(user_id) -> locale or None`` (``Notices.locale_loader``)
        self.locale_loader: Callable[[Any], str | None] | None = None
        #: names the references of notices (``Notices.reference_resolver``); None: unnamed
        self.reference_resolver: Resolver | None = None
        #: runs deliveries after commit; set by ``init_app``
        self.dispatcher: Dispatcher | None = None
        #: the live stream's broker and the publisher feeding it (None: no stream)
        self.broker: Broker | None = None
        self.publisher: StreamPublisher | None = None
        #: sends this process abandoned past NOTICE_SEND_TIMEOUT that have not returned;
        #: claims skip their deliveries
        self.hung_sends = HungSends()
        #: the app's Prometheus metrics (NOTICE_METRICS); None when off
        self.metrics: MetricsHooks | None = None
        #: quiet hours' channels, urgent types, the dispatcher's timer (init_app sets it)
        self.schedule_settings = ScheduleSettings()
        #: NOTICE_GROUP_* (:mod:`notice.grouping`); set by ``init_app``
        self.group_settings = GroupSettings({}, {})
        #: NOTICE_THROTTLE* (:mod:`notice.throttle`); set by ``init_app``
        self.throttle_settings = ThrottleSettings()

    @property
    def app(self) -> Flask:
        """The app (held weakly: the state never keeps it alive)."""
        app = self._app()
        if app is None:
            raise RuntimeError("the Flask app of this notice state was garbage-collected")
        return app

    @property
    def engine(self) -> Engine:
        """The engine holding the notice tables (needs an app context)."""
        engine: Engine = self.db.engine
        return engine

    # the settings most of the engine reads, by their old names
    @property
    def dispatch_mode(self) -> str:
        return self.settings.dispatch

    @property
    def batch_size(self) -> int:
        return self.settings.batch_size

    @property
    def lease(self) -> timedelta:
        return self.settings.lease

    @property
    def sweep_grace(self) -> timedelta:
        return self.settings.sweep_grace

    @property
    def retry_policy(self) -> RetryPolicy:
        return self.settings.retry

    def notice_dicts(self, notices: Iterable[Any]) -> list[dict[str, Any]]:
        """The JSON dicts of ``notices`` (rows, views or dicts already made) with
        ``link`` and their references named: one resolver call per reference type
        (needs an app context when a resolver is registered)."""
        origins = self.settings.link_origins
        dicts = [
            with_link(n if isinstance(n, dict) else notice_dict(n), origins) for n in notices
        ]
        resolve(self.reference_resolver, dicts, origins)
        return dicts

    def name_references(self, dicts: list[dict[str, Any]]) -> None:
        """Name the references of notice dicts in place, in an app context of its own
        (the live stream's publisher thread has none); nothing without a resolver."""
        if self.reference_resolver is None:
            return
        with self.app.app_context():
            resolve(self.reference_resolver, dicts, self.settings.link_origins)

    def publish_count(self, user_id: Any, **extra: Any) -> None:
        """Send ``user_id``'s unread count to their open streams (after a commit)."""
        if self.publisher is not None:
            self.publisher.submit_count(self.engine, user_id, **extra)

    def add_route(self, route: Route) -> None:
        name = route.sender.name
        if not name:
            raise ConfigurationError(f"{route.sender!r} has no 'name' class attribute")
        if name in self.senders_by_name:
            raise ConfigurationError(
                f"a sender named {name!r} is already registered for this app; "
                "each channel name must be unique"
            )
        if self.metrics is not None:
            # a Route may be shared by several apps (register_sender): wrap per app
            route = Route(self.metrics.wrap(route.sender), route.when)
        route.sender.init_app(self.app)
        self.senders_by_name[name] = route.sender
        self.routes.append(route)

    def sender(self, name: str) -> Sender:
        try:
            return self.senders_by_name[name]
        except KeyError:
            known = ", ".join(sorted(self.senders_by_name)) or "none"
            raise KeyError(f"no sender named {name!r}; this app has: {known}") from None


# app -> its state; weak on both sides (the state holds its app weakly), so an app that
# is dropped takes its state with it
_states: weakref.WeakKeyDictionary[Flask, NoticeState] = weakref.WeakKeyDictionary()


def register_state(app: Flask, state: NoticeState) -> None:
    """Record ``state`` as ``app``'s (``Notices.init_app`` only)."""
    _states[app] = state


def state_of(app: Flask | None = None) -> NoticeState:
    """The notice state of ``app`` (default: the current app): the one lookup the web
    layer, the CLI and the workers use to reach it."""
    if app is None:
        app = current_app._get_current_object()  # type: ignore[attr-defined]
    try:
        return _states[app]
    except KeyError:
        raise RuntimeError(
            "notice is not set up on this app: call notices.init_app(app) (or "
            "Notices(app, db=db)) first"
        ) from None
