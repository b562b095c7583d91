"""The Flask extension object, :class:`Notices`."""

from __future__ import annotations

import functools
import weakref
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from flask import Flask, current_app, has_app_context

from . import references, store
from .aftercommit import call_after_commit
from .brokers.base import load_broker
from .brokers.publisher import StreamPublisher
from .cli import load_commands
from .config import Settings, apply_defaults, validate
from .delivery import Report, deliver, deliver_in_app
from .dispatch import Dispatcher, NoDispatcher, SyncDispatcher, ThreadDispatcher
from .errors import ConfigurationError
from .filters import Filter
from .grouping import GroupSettings
from .i18n import LocaleLoader, install_jinja_globals
from .mobile.config import MobileSettings
from .mobile.models import DeviceModels, build_device_models
from .models import Models, build_models
from .preferences.models import build_preference_models
from .preferences.preferences import Preferences
from .preferences.preferences import allowed as preference_gate
from .preferences.settings import PreferenceSettings
from .publish import on_notification
from .push.config import PushSettings
from .push.models import PushModels, build_push_models
from .references import Resolver
from .schedule.cancel import Cancelled
from .schedule.cancel import cancel as cancel_notices
from .schedule.settings import ScheduleSettings
from .senders.base import Sender, load_sender
from .signals import notice_read, notice_seen, notification, send_observing
from .state import NoticeState, Route, TopicAuthorizer, register_state
from .store.schema import watch_for_missing_tables
from .sweeper import sweep
from .throttle import ThrottleSettings
from .topics.topics import Published, Topics
from .web import register_web
from .web.auth import csrf_token


class Notices:
    """Notifications for a Flask app: models, publishing, delivery and reading.

    ::

        db = SQLAlchemy()
        notices = Notices(db=db)
        notices.init_app(app)          # after db.init_app(app)

    :param app: initialise for this app right away.
    :param db: the app's :class:`flask_sqlalchemy.SQLAlchemy`; the models live on it.
    :param user_table: ``"table.column"`` of the app's users, e.g. ``"user.id"``; makes
        ``notice.user_id`` a foreign key that deletes a user's notices with the user.
    :param user_id_type: SQLAlchemy type of user ids (default ``Integer``).
    """

    def __init__(
        self,
        app: Flask | None = None,
        *,
        db: Any,
        user_table: str | None = None,
        user_id_type: Any = sa.Integer,
    ) -> None:
        if db is None:
            raise TypeError("Notices needs the app's Flask-SQLAlchemy object: Notices(db=db)")
        self.db = db
        self.models: Models = build_models(db, user_table=user_table, user_id_type=user_id_type)
        #: the Notice model class
        self.Notice = self.models.Notice
        #: the delivery model class (one row per notice and channel/target)
        self.Delivery = self.models.Delivery
        #: push subscription and topic models (notice/push_models.py)
        self.push_models: PushModels = build_push_models(
            db, user_table=user_table, user_id_type=user_id_type
        )
        #: mobile devices of the fcm and apns senders (notice/mobile/models.py)
        self.device_models: DeviceModels = build_device_models(
            db, user_table=user_table, user_id_type=user_id_type
        )
        #: topic management and fan-out publishing (notice/topics.py)
        self.topics = Topics(db, self.push_models)
        self._routes: list[Route] = []
        self._user_loader: Callable[[], Any] | None = None
        self._email_loader: Callable[[Any], str | None] | None = None
        self._locale_loader: LocaleLoader | None = None
        self._topic_authorizer: TopicAuthorizer | None = None
        self._reference_resolver: Resolver | None = None
        #: per-user channel choices and digest frequency (:class:`notice.preferences.Preferences`)
        self.preference_models = build_preference_models(
            db, user_table=user_table, user_id_type=user_id_type
        )
        self.preferences = Preferences(self.preference_models)
        self._states: weakref.WeakKeyDictionary[Flask, NoticeState] = weakref.WeakKeyDictionary()
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Read and check config, build senders and the dispatcher, connect handlers."""
        if "notice" in app.extensions:
            raise RuntimeError(
                "notice is already initialised on this app; call init_app once per app, "
                "or create a single Notices() and reuse it"
            )
        if "sqlalchemy" not in app.extensions or app.extensions["sqlalchemy"] is not self.db:
            raise ConfigurationError(
                "call db.init_app(app) with the same SQLAlchemy object given to "
                "Notices(db=...) before notices.init_app(app)"
            )
        apply_defaults(app)
        validate(app)
        cfg = app.config
        settings = Settings.from_config(cfg)
        state = NoticeState(
            app,
            db=self.db,
            models=self.models,
            push_models=self.push_models,
            device_models=self.device_models,
            preference_models=self.preference_models,
            settings=settings,
            preference_settings=PreferenceSettings.from_config(cfg),
            push_settings=PushSettings.from_config(cfg),
            mobile_settings=MobileSettings.from_config(cfg),
        )
        state.schedule_settings = ScheduleSettings.from_config(cfg)
        state.group_settings = GroupSettings.from_config(cfg)
        state.throttle_settings = ThrottleSettings.from_config(cfg)
        if settings.metrics:
            from .metrics import install  # imports prometheus_client only when on

            state.metrics = install(app, state)
        for spec in settings.senders:
            state.add_route(Route(load_sender(spec)))
        for r in self._routes:
            state.add_route(r)
        state.user_loader = self._user_loader
        state.email_loader = self._email_loader
        state.locale_loader = self._locale_loader
        state.topic_authorizer = self._topic_authorizer
        state.reference_resolver = self._reference_resolver
        state.gates.append(functools.partial(preference_gate, state))
        state.dispatcher = _make_dispatcher(state, app)
        if settings.stream:
            # the core owns the broker: a process that writes notices but serves no
            # pages (NOTICE_WEB = False, a worker) still publishes live events
            state.broker = load_broker(
                settings.broker_url,
                channel=settings.broker_channel,
                queue_size=settings.sse_queue,
                max_streams=settings.stream_max,
                max_per_user=settings.stream_max_per_user,
            )
            state.publisher = StreamPublisher(
                self.Notice, state.broker, name=state.name_references
            )
        self._states[app] = state
        register_state(app, state)
        app.extensions["notice"] = self
        _tune_sqlite(self.db, app)
        watch_for_missing_tables(self.db, app)
        notification.connect(on_notification, sender=app)
        app.cli.add_command(load_commands())
        register_web(app)
        app.jinja_env.globals.setdefault("notice_csrf_token", csrf_token)
        install_jinja_globals(app.jinja_env)

    # --- per-app state ---------------------------------------------------------------

    def state(self, app: Flask | None = None) -> NoticeState:
        """The state for ``app`` (default: the current app)."""
        app = app or current_app._get_current_object()  # type: ignore[attr-defined]
        try:
            return self._states[app]
        except KeyError:
            raise RuntimeError(
                "notice is not initialised on this app: call notices.init_app(app)"
            ) from None

    def user_loader(self, loader: Callable[[], Any]) -> Callable[[], Any]:
        """Decorator: register how the web layer finds the current user's id (return
        None when nobody is logged in). Default: flask-login's ``current_user``."""
        self._user_loader = loader
        for state in self._states.values():
            state.user_loader = loader
        return loader

    def email_loader(self, loader: Callable[[Any], str | None]) -> Callable[[Any], str | None]:
        """Decorator: register ``loader(user_id) -> address or None``, where the email
        sender and the digest find a user's address (None: skip that user)."""
        self._email_loader = loader
        for state in self._states.values():
            state.email_loader = loader
        return loader

    def locale_loader(self, loader: LocaleLoader) -> LocaleLoader:
        """Decorator: register ``loader(user_id) -> locale or None`` (``"de"``,
        ``"pt_BR"``), the language emails, pushes and digests to that user are written
        in (None: the app's ``BABEL_DEFAULT_LOCALE``). Needs Flask-Babel on the
        app (the ``i18n`` extra); see :mod:`notice.i18n`."""
        self._locale_loader = loader
        for state in self._states.values():
            state.locale_loader = loader
        return loader

    def topic_authorizer(self, authorizer: TopicAuthorizer) -> TopicAuthorizer:
        """Decorator: register ``authorizer(user_id, topic_name, action) -> bool``, asked
        before a logged-in user (or, with ``NOTICE_API_ANONYMOUS_DEVICES``, an anonymous
        device: ``user_id`` None) subscribes to a topic (``"subscribe"``), reads its
        history (``"history"``) or publishes to it (``"publish"``) through the web layer.

        Without one, users may do none of these: topics often mirror private groups, so
        access is the app's to grant. Service-token calls and your own Python calls
        (``notices.topics``) are not asked.
        """
        self._topic_authorizer = authorizer
        for state in self._states.values():
            state.topic_authorizer = authorizer
        return authorizer

    # --- senders ---------------------------------------------------------------------

    def register_sender(self, sender: Sender, *, when: Filter | None = None) -> Sender:
        """Add a sender for every app this extension serves (those already initialised
        and those to come). ``when`` is a filter choosing the notices it gets."""
        if not isinstance(sender, Sender):
            raise TypeError(f"{sender!r} is not a notice.Sender")
        route = Route(sender, when)
        for state in self._states.values():
            state.add_route(route)
        self._routes.append(route)
        return sender

    def sender(self, name: str) -> Sender:
        """The current app's sender called ``name`` (e.g. ``notices.sender("memory")``)."""
        return self.state().sender(name)

    # --- reading ---------------------------------------------------------------------

    def _user(self, user_id: Any) -> Any:
        # the same id conversion as publishing: "7" and 7 are one user on every database
        return self.state().coerce_user_id(user_id)

    def unread_count(self, user_id: Any) -> int:
        """How many unread, unexpired, unarchived notices ``user_id`` has."""
        return store.unread_count(self.db.session, self.Notice, self._user(user_id))

    def list_notices(
        self, user_id: Any, query: store.NoticeQuery | None = None, **filters: Any
    ) -> list[Any]:
        """``user_id``'s notices, newest first; ``filters`` as in
        :class:`notice.store.NoticeQuery` (read, types, text, before, after, before_id,
        limit, archived)."""
        if query is None:
            if "types" in filters and filters["types"] is not None:
                filters["types"] = tuple(str(t) for t in filters["types"])
            query = store.NoticeQuery(**filters)
        return store.list_notices(self.db.session, self.Notice, self._user(user_id), query)

    def get(self, user_id: Any, notice_id: int) -> Any:
        """``user_id``'s notice ``notice_id``, or None (also when it is someone else's)."""
        return store.get_notice(self.db.session, self.Notice, self._user(user_id), notice_id)

    def mark_read(
        self, user_id: Any, ids: Iterable[int] | None = None, *, commit: bool = True
    ) -> int:
        """Mark ``user_id``'s notices read (``ids``, or all); return how many changed."""
        return self._set_read(user_id, ids, read=True, commit=commit)

    def mark_unread(
        self, user_id: Any, ids: Iterable[int] | None = None, *, commit: bool = True
    ) -> int:
        """Mark ``user_id``'s notices unread (``ids``, or all); return how many changed."""
        return self._set_read(user_id, ids, read=False, commit=commit)

    def mark_seen(
        self, user_id: Any, ids: Iterable[int] | None = None, *, commit: bool = True
    ) -> int:
        """Mark ``user_id``'s notices seen (``ids``, or all); return how many changed.
        Seen is not read: the bell was opened, the notice was not necessarily acted on.
        A notice keeps the time it was first seen. Open streams get the new counts
        (the badge may count unseen: ``NOTICE_BADGE_COUNTS``), and ``notice_seen`` is
        sent when rows changed."""
        state = self.state()
        user_id = state.coerce_user_id(user_id)
        session = self.db.session
        id_list = None if ids is None else list(ids)
        changed = store.set_seen(session, self.Notice, user_id, id_list)
        if changed and state.publisher is not None:
            # the unseen count changed: badges counting unseen (other tabs) follow
            call_after_commit(
                session,
                lambda: state.publish_count(user_id, seen=id_list),
                description="publishing the counts to the live stream",
            )
        if commit:
            session.commit()
        if changed:
            send_observing(notice_seen, state.app, user_id=user_id, ids=id_list, count=changed)
        return changed

    def archive(
        self,
        user_id: Any,
        ids: Iterable[int] | None = None,
        *,
        only_read: bool = False,
        commit: bool = True,
    ) -> int:
        """Archive ``user_id``'s notices (``ids``, or all; ``only_read`` for "archive all
        read"); return how many changed. Archived notices leave the inbox and its counts,
        are listed with ``notices.list_notices(user, archived=True)`` and are purged by age like
        read ones (``flask notice purge``); :meth:`delete` stays a hard delete."""
        return self._set_archived(user_id, ids, archived=True, only_read=only_read, commit=commit)

    def unarchive(
        self, user_id: Any, ids: Iterable[int] | None = None, *, commit: bool = True
    ) -> int:
        """Put ``user_id``'s archived notices (``ids``, or all) back in the inbox; return
        how many changed."""
        return self._set_archived(user_id, ids, archived=False, only_read=False, commit=commit)

    def _set_archived(
        self,
        user_id: Any,
        ids: Iterable[int] | None,
        *,
        archived: bool,
        only_read: bool,
        commit: bool,
    ) -> int:
        state = self.state()
        user_id = state.coerce_user_id(user_id)
        id_list = None if ids is None else list(ids)
        session = self.db.session
        changed = store.set_archived(
            session, self.Notice, user_id, id_list, archived=archived, only_read=only_read
        )
        if changed and state.publisher is not None:
            # the counts leave out archived notices: open badges follow, and open lists
            # drop what was archived (or unarchived, in the "Archived" view); "read" and
            # "all" name what an id-less call changed
            which: list[int] | str = (
                id_list if id_list is not None else ("read" if only_read else "all")
            )
            extra = {"archived": which} if archived else {"unarchived": which}
            call_after_commit(
                session,
                lambda: state.publish_count(user_id, **extra),
                description="publishing an unread count to the live stream",
            )
        if commit:
            session.commit()
        return changed

    def delete_for(self, obj: Any, *, commit: bool = True) -> int:
        """Delete every user's notices whose target or action object is ``obj`` (a
        model instance or a ``(type, id)`` pair, as given to ``notice_event``), with
        their deliveries; return how many. Call it when the object is deleted: a
        notice about a deleted post would lead nowhere. Open streams get the new
        unread counts after the commit."""
        state = self.state()
        ref = references.reference("obj", obj)
        if ref is None:
            raise TypeError("delete_for() needs a model instance or a (type, id) pair")
        session = self.db.session
        rows = store.delete_about(session, self.Notice, self.Delivery, ref.type, ref.id)
        if rows and state.publisher is not None:
            by_user: dict[Any, list[int]] = {}
            for notice_id, user_id, _status in rows:
                by_user.setdefault(user_id, []).append(notice_id)

            def publish() -> None:
                for user_id, ids in by_user.items():
                    state.publish_count(user_id, deleted=ids)

            call_after_commit(
                session, publish, description="publishing unread counts to the live stream"
            )
        if commit:
            session.commit()
        return len(rows)

    def reference_resolver(self, resolver: Resolver) -> Resolver:
        """Decorator: register ``resolver(type, ids) -> {id: (name, url)}``, which
        names the actors, targets and action objects of notices (see
        :mod:`notice.references`). It is called once per reference type for a page
        of notices (the JSON API, the live stream, the inbox, email), in an app
        context; ids it does not return stay unnamed, and a url that is not a safe
        link (:func:`notice.links.safe_link`) is dropped."""
        self._reference_resolver = resolver
        for state in self._states.values():
            state.reference_resolver = resolver
        return resolver

    def notice_dicts(self, notices: Iterable[Any]) -> list[dict[str, Any]]:
        """The JSON dicts of ``notices`` (ORM rows or views) as the API sends them:
        ``link`` added and references named by the resolver, one call per type."""
        return self.state().notice_dicts(notices)

    def _set_read(
        self, user_id: Any, ids: Iterable[int] | None, *, read: bool, commit: bool
    ) -> int:
        state = self.state()
        user_id = state.coerce_user_id(user_id)
        id_list = None if ids is None else list(ids)
        session = self.db.session
        changed = store.set_read(session, self.Notice, user_id, id_list, read=read)
        if changed and state.publisher is not None:
            # every open stream of the user gets the new count, once it is true for readers
            call_after_commit(
                session,
                lambda: state.publish_count(user_id, ids=id_list, read=read),
                description="publishing an unread count to the live stream",
            )
        if commit:
            session.commit()
        if changed:
            send_observing(
                notice_read,
                state.app,
                user_id=user_id,
                ids=id_list,
                read=read,
                count=changed,
            )
        return changed

    # --- delivery --------------------------------------------------------------------

    def cancel(
        self,
        *,
        notice_id: int | None = None,
        dedupe_key: str | None = None,
        group_key: str | None = None,
        user_id: Any = None,
        remove: bool = False,
        commit: bool = True,
    ) -> Cancelled:
        """Cancel pending deliveries: of notice ``notice_id``, or of the notices under
        ``dedupe_key`` (or ``group_key``), of ``user_id`` or of every user.

        A pending delivery no worker holds ends Skipped ("cancelled"); one a worker
        holds (its send in progress) is sent and counted as ``in_flight``: a delivery
        is either sent or cancelled, never both. ``remove=True`` also deletes the
        notices (and their deliveries) from the inbox. Returns the counts
        (:class:`notice.schedule.cancel.Cancelled`).
        """
        return cancel_notices(
            self.state(),
            notice_id=notice_id,
            dedupe_key=dedupe_key,
            group_key=group_key,
            user_id=user_id,
            remove=remove,
            commit=commit,
        )

    def init_celery(self, celery_app: Any, *, app: Flask | None = None) -> None:
        """Publish ``app``'s deliveries (default: the current app) as tasks of
        ``celery_app``; for ``NOTICE_DISPATCH = "celery"`` (see :mod:`notice.dispatch.celery`)."""
        from .dispatch.celery import CeleryDispatcher

        if app is None and not has_app_context():
            apps = list(self._states)
            if len(apps) != 1:
                raise RuntimeError("init_celery(celery_app, app=app): which app?")
            app = apps[0]
        state = self.state(app)
        if not isinstance(state.dispatcher, CeleryDispatcher):
            raise ConfigurationError(
                f"init_celery() needs NOTICE_DISPATCH = 'celery', not {state.settings.dispatch!r}"
            )
        state.dispatcher.init_celery(celery_app)

    def publish(self, topic: str, notice_type: Any = "System", **options: Any) -> Published:
        """Send a notice to every subscriber of ``topic``; see :meth:`Topics.publish`
        (``subject``, ``content``, ``exclude``, ``url``, ``data``, ...)."""
        return self.topics.publish(topic, notice_type, **options)

    def deliver_due(self, *, limit: int | None = None) -> Report:
        """Claim and send what is due now: one batch of ``limit``, or with no limit
        everything due; the sweeper's building block."""
        return deliver(self.state(), limit=limit)

    def sweep(self, now: datetime | None = None, limit: int | None = None) -> Report:
        """Run one retry-sweeper pass for the current app (see :func:`notice.sweeper.sweep`):
        new deliveries left undispatched, expired leases and due retries."""
        return sweep(self.state(), now=now, limit=limit)


def _make_dispatcher(state: NoticeState, app: Flask) -> Dispatcher:
    """The dispatcher ``NOTICE_DISPATCH`` names, delivering through this app's state."""
    settings = state.settings
    deliver = functools.partial(deliver_in_app, state)
    if settings.dispatch == "sync":
        return SyncDispatcher(deliver)
    if settings.dispatch == "thread":
        return ThreadDispatcher(
            deliver,
            threads=settings.threads,
            queue_size=settings.queue_size,
            batch_size=settings.batch_size,
            linger=settings.linger,
        )
    if settings.dispatch == "celery":
        from .dispatch.celery import CeleryDispatcher  # imports Celery only for this mode

        return CeleryDispatcher(deliver, app)
    return NoDispatcher(deliver)


def _tune_sqlite(db: Any, app: Flask) -> None:
    """SQLite: enforce foreign keys (cascades), WAL so readers don't block the writer,
    and a busy timeout so concurrent claimers wait instead of failing."""
    with app.app_context():
        engines = list(db.engines.values())
    for engine in engines:
        if engine.dialect.name != "sqlite" or getattr(engine, "_notice_tuned", False):
            continue

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            store.tune_sqlite_connection(dbapi_conn)

        if engine.url.database not in (None, "", ":memory:"):
            # connections opened before now lack the pragmas; an in-memory database
            # lives in its one connection, so that one is kept
            engine.pool.dispose()
        engine._notice_tuned = True
