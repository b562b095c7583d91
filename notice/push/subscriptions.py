"""Storing browsers' push subscriptions: validate, save, remove, re-subscribe.

Shared by the logged-in user's views and the service API. Every function works in
``db.session`` and leaves committing to the caller; the statements are in
:mod:`notice.store.push`.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import EndpointRefused, SubscriptionError
from ..store import push as push_store
from .config import AllowList
from .models import PushModels


@dataclass(frozen=True)
class SubscriptionInfo:
    """A validated ``PushSubscription.toJSON()``."""

    endpoint: str
    p256dh: str
    auth: str


def parse_subscription(value: Any, allow: AllowList) -> SubscriptionInfo:
    """Validate ``{"endpoint", "keys": {"p256dh", "auth"}}`` from a browser.

    :raise SubscriptionError: saying what is wrong.
    """
    if not isinstance(value, Mapping):
        raise SubscriptionError("subscription must be an object with endpoint and keys")
    try:
        endpoint = allow.check(value.get("endpoint"))
    except EndpointRefused as exc:
        raise SubscriptionError(str(exc)) from None
    keys = value.get("keys")
    if not isinstance(keys, Mapping):
        raise SubscriptionError("subscription keys must be an object with p256dh and auth")
    # cryptography comes with the webpush extra; the core imports this module too
    from cryptography.hazmat.primitives.asymmetric import ec

    from .vapid import b64url_decode

    p256dh, auth = keys.get("p256dh"), keys.get("auth")
    if not isinstance(p256dh, str) or not isinstance(auth, str) or len(p256dh) > 128:
        raise SubscriptionError("subscription keys p256dh and auth must be base64url strings")
    try:
        point = b64url_decode(p256dh)
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
        if len(point) != 65:
            raise ValueError("compressed point")
    except ValueError:
        raise SubscriptionError("p256dh is not an uncompressed P-256 public key") from None
    try:
        secret = b64url_decode(auth)
    except ValueError:
        secret = b""
    if len(secret) != 16:
        raise SubscriptionError("auth must be a 16-byte secret, base64url")
    return SubscriptionInfo(endpoint, p256dh.rstrip("="), auth.rstrip("="))


def find(session: Any, models: PushModels, endpoint: str) -> Any:
    """The push subscription at ``endpoint``, or None."""
    return push_store.find(session, models.PushSubscription, endpoint)


def save(
    session: Any,
    models: PushModels,
    user_id: Any,
    info: SubscriptionInfo,
    *,
    user_agent: str | None = None,
    max_per_user: int | None = 20,
) -> tuple[Any, bool]:
    """Store ``info`` for ``user_id``; return ``(subscription, created)``.

    Subscribing the same browser again is idempotent. A known endpoint moves to another
    user only with the same keys: whoever holds the browser's auth secret *is* that
    browser, while knowing an endpoint URL alone must not let anyone take it over.
    Beyond ``max_per_user`` devices the least recently used ones are dropped (None:
    none are, for the guest owning anonymous devices, whose cap would let one caller
    evict everyone else's).

    :raise SubscriptionError: the endpoint is registered with other keys.
    """
    existing = find(session, models, info.endpoint)
    if existing is not None:
        if existing.auth != info.auth or existing.p256dh != info.p256dh:
            raise SubscriptionError("this endpoint is registered with other keys")
        existing.user_id = user_id
        return existing, False
    sub = push_store.add(
        session,
        models.PushSubscription,
        user_id,
        endpoint=info.endpoint,
        p256dh=info.p256dh,
        auth=info.auth,
        user_agent=(user_agent or "")[:255] or None,
    )
    if max_per_user is not None:
        push_store.drop_least_used(session, models.PushSubscription, user_id, keep=max_per_user)
    return sub, True


def remove(session: Any, models: PushModels, user_id: Any, endpoint: str) -> bool:
    """Delete ``user_id``'s subscription at ``endpoint``; False if it is not theirs."""
    return push_store.remove(session, models.PushSubscription, user_id, endpoint)


def resubscribe(
    session: Any, models: PushModels, old_endpoint: str, old_auth: str, info: SubscriptionInfo
) -> Any:
    """Move a subscription to the browser's new endpoint and keys
    (``pushsubscriptionchange``), keeping its owner and topics.

    The service worker proves it is the old subscription's browser with the old auth
    secret, so this needs no session cookie. Returns the subscription, or None when
    ``old_endpoint`` is unknown or the secret does not match.
    """
    old = find(session, models, old_endpoint)
    if old is None or not _same_secret(old.auth, old_auth.rstrip("=")):
        return None
    if info.endpoint != old.endpoint:
        clash = find(session, models, info.endpoint)
        if clash is not None:
            # the page re-subscribed first: fold the old row's topics into it, but only
            # when that row is this browser's (same owner and keys); knowing another
            # user's endpoint must not let anyone re-key or take over their device
            if clash.user_id != old.user_id or not (
                _same_secret(clash.auth, info.auth) and _same_secret(clash.p256dh, info.p256dh)
            ):
                return None
            push_store.fold_into(session, models.TopicSubscription, old, clash)
            return clash
    old.endpoint, old.p256dh, old.auth = info.endpoint, info.p256dh, info.auth
    old.failure_count = 0
    return old


def _same_secret(stored: str, sent: str) -> bool:
    # compare_digest refuses non-ASCII str; compare bytes so odd input is just "no"
    return hmac.compare_digest(stored.encode("utf-8"), sent.encode("utf-8"))
