"""``NOTICE_DISPATCH = "celery"``: one small Celery task per batch of deliveries.

After the caller's commit, :class:`CeleryDispatcher` publishes one ``notice.deliver``
task per ``NOTICE_CELERY_BATCH`` deliveries, carrying only their ids (a task per
delivery cost ~13 ms of worker and database CPU each, tasks of 100 ids ~0.3-0.45 ms
per delivery: ``bench/load.py --celery-cpu``). The task claims the rows exactly as the
sweeper does (:func:`notice.delivery.deliver`), each row on its own, so a task the
broker hands out twice (Celery runs ``acks_late`` tasks at least once) finds its rows
leased or finished and sends none of them again. When the broker is unreachable at
publish time, or hangs (each publish gives up after ``NOTICE_CELERY_PUBLISH_TIMEOUT``),
the rows simply stay Wait and the sweeper sends them once ``NOTICE_SWEEP_GRACE`` has
passed: nothing is lost and the caller never sees the broker's error.

The Celery app is, in this order: the one given to ``notices.init_celery(celery_app)``,
``NOTICE_CELERY_APP`` (an instance or ``"package.module:attr"``), or
``app.extensions["celery"]``, where Flask's Celery pattern keeps it. Retries of failed
sends are the sweeper's job, so run at least one ``flask notice worker`` beside the
Celery workers.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections.abc import Mapping, Sequence
from typing import Any

from flask import Flask, current_app, has_app_context

from ..errors import ConfigurationError
from . import Deliver, Dispatcher

try:
    from celery import shared_task
    from celery.utils.imports import symbol_by_name
    from kombu.exceptions import KombuError
    from kombu.pools import ProducerPool
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ConfigurationError(
        "NOTICE_DISPATCH = 'celery' needs Celery: pip install 'notice[celery]'"
    ) from exc

logger = logging.getLogger("notice")

#: the registered name of the delivery task (route it with Celery's ``task_routes``)
TASK_NAME = "notice.deliver"

#: ``apply_async`` options of every publish; ``NOTICE_CELERY_TASK_OPTIONS`` overrides
#: them. One quick retry and no long sleeps: with the broker down the rows stay Wait
#: for the sweeper, so there is nothing to gain by holding up the caller.
PUBLISH_DEFAULTS: dict[str, Any] = {
    "retry": True,
    "retry_policy": {
        "max_retries": 1,
        "interval_start": 0,
        "interval_step": 0.2,
        "interval_max": 0.2,
    },
}

# Dispatchers of the apps delivering through Celery, so a worker task without an app
# context (no FlaskTask) finds the Flask app built when the worker imported the app's
# module.
_dispatchers: weakref.WeakSet[CeleryDispatcher] = weakref.WeakSet()


@shared_task(  # type: ignore[untyped-decorator]  # Celery ships no type hints
    bind=True, name=TASK_NAME, acks_late=True, ignore_result=True
)
def deliver_task(task: Any, delivery_ids: int | list[int]) -> dict[str, int]:
    """Claim and send a batch of deliveries; those someone else holds or finished are
    skipped. A single id is accepted too: the tasks of 0.1 (one per delivery) may still
    wait in a queue when the workers are upgraded."""
    ids = [delivery_ids] if isinstance(delivery_ids, int) else list(delivery_ids)
    if has_app_context():
        app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
        return _run(app, ids)
    app = _flask_app_for(task.app)
    with app.app_context():
        return _run(app, ids)


def _run(app: Flask, delivery_ids: list[int]) -> dict[str, int]:
    for dispatcher in list(_dispatchers):
        if dispatcher.app is app:
            return dispatcher.run_task(delivery_ids)
    raise RuntimeError(f"{TASK_NAME}: this app does not use NOTICE_DISPATCH = 'celery'")


def _flask_app_for(celery_app: Any) -> Flask:
    dispatchers = [d for d in _dispatchers if d.app is not None]
    mine = [d for d in dispatchers if _celery_of(d) is celery_app]
    if len(mine) == 1 or (not mine and len(dispatchers) == 1):
        app = (mine or dispatchers)[0].app
        assert app is not None
        return app
    raise RuntimeError(
        f"cannot tell which Flask app runs {TASK_NAME}: {len(dispatchers)} apps use Celery "
        "dispatch in this worker; push an app context in your tasks (Flask's "
        "celery_init_app pattern with a FlaskTask class) or call notices.init_celery()"
    )


def _celery_of(dispatcher: CeleryDispatcher) -> Any:
    try:
        return dispatcher.celery_app(required=False)
    except ConfigurationError:
        return None


class CeleryDispatcher(Dispatcher):
    """Publishes a ``notice.deliver`` task per batch of delivery ids after commit."""

    def __init__(self, deliver: Deliver, app: Flask) -> None:
        super().__init__(deliver)
        self._app = weakref.ref(app)
        cfg = app.config
        queue = cfg["NOTICE_CELERY_QUEUE"]
        if queue is not None and (not isinstance(queue, str) or not queue):
            raise ConfigurationError(
                f"NOTICE_CELERY_QUEUE must be a queue name or None, got {queue!r}"
            )
        extra = cfg["NOTICE_CELERY_TASK_OPTIONS"]
        if not isinstance(extra, Mapping):
            raise ConfigurationError(
                f"NOTICE_CELERY_TASK_OPTIONS must be a dict of apply_async options, got {extra!r}"
            )
        timeout = cfg["NOTICE_CELERY_PUBLISH_TIMEOUT"]
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
            raise ConfigurationError(
                f"NOTICE_CELERY_PUBLISH_TIMEOUT must be a positive number, got {timeout!r}"
            )
        self.publish_timeout = float(timeout)
        #: most delivery ids one task carries (checked by :func:`notice.config.validate`)
        self.batch = int(cfg["NOTICE_CELERY_BATCH"])
        self._producers: Any = None
        self._producers_pid = 0
        self._lock = threading.Lock()
        self.options: dict[str, Any] = {**PUBLISH_DEFAULTS, **extra}
        if queue:
            self.options["queue"] = queue
        source = cfg["NOTICE_CELERY_APP"]
        if source is not None and not isinstance(source, str):
            _check_celery_app(source, "NOTICE_CELERY_APP")
        self._source: Any = source
        self._celery: Any = None
        _dispatchers.add(self)

    @property
    def app(self) -> Flask | None:
        """The app whose deliveries this dispatcher publishes (held weakly)."""
        return self._app()

    def run_task(self, delivery_ids: Sequence[int]) -> dict[str, int]:
        """The worker side of one task: claim and send ``delivery_ids``, each claimed on
        its own, so rows another task or the sweeper holds or finished are skipped."""
        report: Any = self._deliver(delivery_ids)
        return dict(report.as_dict())

    def init_celery(self, celery_app: Any) -> None:
        """Publish through ``celery_app`` from now on."""
        _check_celery_app(celery_app, "init_celery()")
        self._celery = celery_app

    def celery_app(self, *, required: bool = True) -> Any:
        """The Celery app tasks go to; resolved on first use, because Flask's pattern
        builds it after ``init_app``. ``required=False``: None when there is none."""
        if self._celery is None:
            source = self._source
            if isinstance(source, str):
                try:
                    source = symbol_by_name(source)
                except (ImportError, AttributeError, ValueError) as exc:
                    raise ConfigurationError(
                        f"NOTICE_CELERY_APP = {self._source!r} cannot be imported: {exc}"
                    ) from exc
            app = self.app
            if source is None and app is not None:
                source = app.extensions.get("celery")
            if source is None:
                if not required:
                    return None
                raise ConfigurationError(
                    "NOTICE_DISPATCH = 'celery' but no Celery app: set NOTICE_CELERY_APP, "
                    "call notices.init_celery(celery_app), or store it in "
                    "app.extensions['celery']"
                )
            _check_celery_app(source, "NOTICE_CELERY_APP")
            self._celery = source
        return self._celery

    def submit(self, delivery_ids: Sequence[int]) -> None:
        celery_app = self.celery_app()
        task = celery_app.tasks[TASK_NAME]
        size = self.batch
        batches = [list(delivery_ids[i : i + size]) for i in range(0, len(delivery_ids), size)]
        if celery_app.conf.task_always_eager:
            # the app's tests: tasks run right here, no broker involved
            for ids in batches:
                task.apply_async((ids,), **self.options)
            return
        published = 0
        try:
            # one pooled broker connection for all the batches
            pool = self._producer_pool(celery_app)
            with pool.acquire(block=True, timeout=self.publish_timeout) as producer:
                for ids in batches:
                    task.apply_async((ids,), producer=producer, **self.options)
                    published += len(ids)
        except (KombuError, OSError) as exc:
            logger.warning(
                "Celery broker unreachable (%s: %s); %d of %d deliveries left Wait for the sweeper",
                type(exc).__name__,
                exc,
                len(delivery_ids) - published,
                len(delivery_ids),
            )

    def shutdown(self, wait: bool = True) -> None:
        """Close the broker connections this dispatcher opened."""
        with self._lock:
            if self._producers is not None and self._producers_pid == os.getpid():
                self._producers.force_close_all()
                self._producers.connections.force_close_all()
            self._producers = None

    def _producer_pool(self, celery_app: Any) -> Any:
        """Producers whose sockets give up after ``publish_timeout`` seconds.

        Our own pool rather than the Celery app's: whatever the app's broker settings
        (Redis has no read timeout by default), a broker that accepts connections but
        never answers must not hold up the caller. Rebuilt in a forked child.
        """
        with self._lock:
            if self._producers is None or self._producers_pid != os.getpid():
                seconds = self.publish_timeout
                probe = celery_app.connection_for_write()
                options = _socket_timeouts(probe.transport.driver_type, seconds)
                probe.release()
                conn = celery_app.connection_for_write(
                    connect_timeout=seconds, transport_options=options
                )
                limit = celery_app.conf.broker_pool_limit or 10
                self._producers = ProducerPool(  # type: ignore[no-untyped-call]
                    conn.Pool(limit=limit), limit=limit, Producer=celery_app.amqp.Producer
                )
                self._producers_pid = os.getpid()
            return self._producers


def _socket_timeouts(driver: str, seconds: float) -> dict[str, float]:
    """Transport options bounding each socket operation of a publish."""
    if driver == "redis":
        return {"socket_timeout": seconds, "socket_connect_timeout": seconds}
    if driver == "amqp":
        return {"read_timeout": seconds, "write_timeout": seconds}
    return {}


def _check_celery_app(obj: Any, where: str) -> None:
    if not (hasattr(obj, "tasks") and hasattr(obj, "producer_or_acquire")):
        raise ConfigurationError(f"{where} needs a celery.Celery instance, got {obj!r}")
