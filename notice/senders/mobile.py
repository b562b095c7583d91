"""What the native mobile senders (FCM, APNs) share: one delivery per registered device
of the notice's user on the sender's platform, the device checked at send time, dead
tokens pruned, and ``last_used_at`` written once per batch.

A delivery's ``target`` is a ``notice_device`` id. At send time the device must still
exist, be on this platform, belong to the notice's user and, when it names its app, be
of an allowed app (``NOTICE_APNS_TOPICS``, ``NOTICE_FCM_APP_IDS``): otherwise the
delivery ends ``Skipped`` and nothing is sent (the device may have been removed, its
token moved to another user logging in on the same phone, or its app been taken off
the list since the delivery was written).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from ..columns import utcnow
from ..errors import PermanentError, SkipDelivery
from ..links import link_origins, safe_link
from ..mobile.config import allowed_apps
from ..state import state_of
from ..store import devices as device_store
from ..types import user_key
from .base import Sender

if TYPE_CHECKING:
    import sqlalchemy as sa
    from flask import Flask

#: the per-notice key of extra push data: ``data["mobile"] = {"screen": "inbox"}``
DATA_KEY = "mobile"


def mobile_data(data: object) -> dict[str, str]:
    """``data["mobile"]`` checked: an object of string keys to string values (FCM's
    ``data`` takes strings only), or ``{}`` when absent.

    :raise ValueError: naming the wrong field.
    """
    raw = data.get(DATA_KEY) if isinstance(data, Mapping) else None
    if raw is None:
        return {}
    if not isinstance(raw, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in raw.items()
    ):
        raise ValueError(f'data["{DATA_KEY}"] must be an object of string keys and string values')
    return dict(raw)


class MobileSender(Sender):
    """Base of the FCM and APNs senders: subclasses set ``name`` and ``platform`` and
    implement :meth:`message` and :meth:`push`."""

    #: the ``notice_device.platform`` this sender pushes to
    platform: ClassVar[str] = ""

    def __init__(self) -> None:
        self._local = threading.local()
        self._db: Any = None
        self.link_origins: frozenset[str] = frozenset()
        #: the app ids this sender may push to; None: any (see the module doc)
        self.apps: frozenset[str] | None = None

    def init_app(self, app: Flask) -> None:
        self._db = app.extensions["sqlalchemy"]
        self.link_origins = link_origins(app.config)
        self.apps = allowed_apps(app.config).get(self.platform)

    def _table(self) -> sa.Table:
        table: sa.Table = state_of().device_models.Device.__table__
        return table

    def validate_data(self, data: object) -> None:
        """Check ``data["mobile"]`` (see :func:`mobile_data`)."""
        mobile_data(data)

    def targets(self, user_ids: Sequence[Any]) -> Mapping[Any, Sequence[str]]:
        """Each user's device ids on this platform (one delivery per device). Runs in the
        publishing transaction."""
        return device_store.device_ids(self._db.session, self._table(), self.platform, user_ids)

    # --- batches: devices loaded once, last_used_at written once ----------------------

    def open(self) -> None:
        self._local.used = set()
        self._local.devices = {}

    def prepare(self, items: Sequence[tuple[Any, str]]) -> None:
        """Load every device of the batch in one query (as the webpush sender does)."""
        ids = [int(target) for _, target in items if target.isdigit()]
        if ids:
            found = device_store.load_many_for_send(self._db.engine, self._table(), ids)
            # None: gone, known without asking again at send time
            self._local.devices = {dev_id: found.get(dev_id) for dev_id in ids}

    def close(self) -> None:
        used: set[int] = getattr(self._local, "used", None) or set()
        self._local.used, self._local.devices = None, None
        if used:
            device_store.record_used(self._db.engine, self._table(), used, now=utcnow())

    # --- sending ----------------------------------------------------------------------

    def send(self, notice: Any) -> None:
        raise PermanentError(f"{self.name} deliveries need a target (a device id)")

    def send_to(self, notice: Any, target: str) -> None:
        device = self.load(notice, target)
        self.push(notice, device, self.message(notice, device))
        used: set[int] | None = getattr(self._local, "used", None)
        if used is None:  # outside open()/close(): record right away
            device_store.record_used(self._db.engine, self._table(), {device["id"]}, now=utcnow())
        else:
            used.add(device["id"])

    def preview(self, notice: Any, target: str) -> Any:
        """The message :meth:`send_to` would send to ``target`` (device checked)."""
        return self.message(notice, self.load(notice, target))

    def fields(self, notice: Any) -> dict[str, str]:
        """The string fields every mobile message carries beside its title and body:
        the notice's id, type and link (:func:`notice.links.safe_link`, left out when
        the url may not be one) and the notice's ``data["mobile"]``."""
        try:
            extra = mobile_data(notice.data)
        except ValueError as exc:
            # written before publish checked it: retrying cannot fix it
            raise PermanentError(str(exc)) from None
        fields = {**extra, "notice_id": str(notice.id), "type": str(notice.notice_type)}
        url = safe_link(notice.url, self.link_origins)
        if url:
            fields["url"] = url
        return fields

    def message(self, notice: Any, device: Mapping[str, Any]) -> dict[str, Any]:
        """The JSON body sent to ``device``."""
        raise NotImplementedError

    def push(self, notice: Any, device: Mapping[str, Any], message: dict[str, Any]) -> None:
        """Send ``message`` to ``device``; raise a delivery error on failure."""
        raise NotImplementedError

    def load(self, notice: Any, target: str) -> dict[str, Any]:
        """The device ``target`` names, checked at send time (see module doc)."""
        try:
            dev_id = int(target)
        except ValueError:
            raise PermanentError(f"{self.name} target {target!r} is not a device id") from None
        prepared: dict[int, dict[str, Any] | None] | None = getattr(self._local, "devices", None)
        if prepared is not None and dev_id in prepared:
            device = prepared[dev_id]
        else:
            found = device_store.load_many_for_send(self._db.engine, self._table(), [dev_id])
            device = found.get(dev_id)
        if device is None:
            raise SkipDelivery(f"device {dev_id} is gone")
        if device["platform"] != self.platform:
            raise SkipDelivery(f"device {dev_id} is not an {self.platform} device")
        if user_key(device["user_id"]) != user_key(notice.user_id):
            raise SkipDelivery(f"device {dev_id} belongs to another user now")
        app_id = device.get("app_id")
        if self.apps is not None and app_id is not None and app_id not in self.apps:
            # registered before the list was narrowed (registration checks it too)
            raise SkipDelivery(f"device {dev_id}'s app is not an allowed one")
        return dict(device)

    def drop(self, device: Mapping[str, Any], why: str) -> PermanentError:
        """Delete ``device`` (the provider says its token is dead) and return the final
        error to raise; the token itself is never put in the message."""
        prepared: dict[int, Any] | None = getattr(self._local, "devices", None)
        if prepared is not None:
            # a later send of this batch to the same device finds it gone
            prepared[device["id"]] = None
        device_store.delete_device(self._db.engine, self._table(), device["id"], device["token"])
        return PermanentError(f"{why}; device {device['id']} removed")


def encode(message: Mapping[str, Any]) -> bytes:
    """Compact UTF-8 JSON, as both providers take it."""
    return json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
