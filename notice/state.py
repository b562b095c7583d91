"""Per-app state: the config read once at startup, the senders, the dispatcher."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from flask import Flask
from sqlalchemy.engine import Engine

from .brokers.base import Broker
from .dispatch import Dispatcher, NoDispatcher, SyncDispatcher, ThreadDispatcher
from .errors import ConfigurationError
from .filters import Filter
from .retry import RetryPolicy
from .senders.base import Sender, load_sender
from .types import UserIdPolicy

if TYPE_CHECKING:
    from .extension import Notices
    from .models import Models

#: ``gate(channel, notice_type, user_ids) -> user ids that may receive on channel``;
#: how user preferences veto deliveries before rows are written
Gate = Callable[[str, str, Sequence[Any]], "set[Any] | frozenset[Any]"]


@dataclass
class Route:
    """A sender and the filter choosing which notices it gets."""

    sender: Sender
    when: Filter | None = None


class NoticeState:
    """What ``notice`` keeps for one app (``Notices.state(app)``)."""

    def __init__(self, ext: Notices, app: Flask) -> None:
        cfg = app.config
        self.ext = ext
        self.app = app
        self.models: Models = ext.models
        #: converts and checks user ids where they enter the library
        self.coerce_user_id = UserIdPolicy(self.models.Notice.__table__.c.user_id.type)
        self.dispatch_mode: str = cfg["NOTICE_DISPATCH"]
        self.batch_size: int = cfg["NOTICE_BATCH_SIZE"]
        self.lease = timedelta(seconds=cfg["NOTICE_CLAIM_TIMEOUT"])
        self.sweep_grace = timedelta(seconds=cfg["NOTICE_SWEEP_GRACE"])
        self.retry_policy = RetryPolicy(
            base=float(cfg["NOTICE_RETRY_BASE"]),
            cap=float(cfg["NOTICE_RETRY_CAP"]),
            jitter=float(cfg["NOTICE_RETRY_JITTER"]),
            max_attempts=int(cfg["NOTICE_MAX_ATTEMPTS"]),
        )
        self.routes: list[Route] = []
        self.senders_by_name: dict[str, Sender] = {}
        self.gates: list[Gate] = []
        #: the web layer's current-user hook (``Notices.user_loader``); None: flask-login
        self.user_loader: Callable[[], Any] | None = None
        #: ``loader(user_id) -> email address or None`` (``Notices.email_loader``)
        self.email_loader: Callable[[Any], str | None] | None = None
        #: the live stream's broker (:mod:`notice.brokers`), set up by the web layer
        self.broker: Broker | None = None
        for spec in cfg["NOTICE_SENDERS"]:
            self.add_route(Route(load_sender(spec)))
        self.dispatcher = self._make_dispatcher()

    def _make_dispatcher(self) -> Dispatcher:
        mode = self.dispatch_mode
        if mode == "sync":
            return SyncDispatcher(self)
        if mode == "thread":
            return ThreadDispatcher(
                self,
                threads=self.app.config["NOTICE_THREADS"],
                queue_size=self.app.config["NOTICE_QUEUE_SIZE"],
            )
        if mode == "celery":
            from .dispatch.celery import CeleryDispatcher  # imports Celery only for this mode

            return CeleryDispatcher(self)
        if mode == "none":
            return NoDispatcher(self)
        raise ConfigurationError(
            f"NOTICE_DISPATCH = {mode!r} is not available in this version of notice"
        )

    def add_route(self, route: Route) -> None:
        name = route.sender.name
        if not name:
            raise ConfigurationError(f"{route.sender!r} has no 'name' class attribute")
        if name in self.senders_by_name:
            raise ConfigurationError(
                f"a sender named {name!r} is already registered for this app; "
                "each channel name must be unique"
            )
        route.sender.init_app(self.app)
        self.senders_by_name[name] = route.sender
        self.routes.append(route)

    @property
    def engine(self) -> Engine:
        """The engine holding the notice tables (needs an app context)."""
        engine: Engine = self.ext.db.engine
        return engine

    def sender(self, name: str) -> Sender:
        try:
            return self.senders_by_name[name]
        except KeyError:
            known = ", ".join(sorted(self.senders_by_name)) or "none"
            raise KeyError(f"no sender named {name!r}; this app has: {known}") from None
