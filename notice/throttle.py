"""Throttle: at most N notices per user x type x channel within a period
(``NOTICE_THROTTLE``). Over the limit the delivery is written Skipped at once, its
``last_error`` saying why: "throttled" (the notice stays in the inbox and leaves no
email to the digest either), or, with ``NOTICE_THROTTLE_OVERFLOW = "digest"``,
"throttled: left to the digest" (the user's next digest lists it like any notice whose
email was skipped).

The check runs in the publishing transaction, under a lock per user x type x channel
(:func:`notice.store.throttle.lock`), so concurrent publishers never pass the limit
together. Grouped notices (``group_key``) are not throttled: a group already sends once
per window.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from .errors import ConfigurationError
from .store import throttle as throttle_store
from .store.throttle import THROTTLED, THROTTLED_TO_DIGEST
from .types import NoticeType, user_key

OVERFLOWS = ("skip", "digest")

Pair = tuple[str, str]


@dataclass(frozen=True)
class ThrottleSettings:
    """NOTICE_THROTTLE and NOTICE_THROTTLE_OVERFLOW."""

    #: ``{type or "*": {channel: (most, period)}}``
    limits: Mapping[str, Mapping[str, tuple[int, timedelta]]] = field(default_factory=dict)
    overflow: str = "skip"

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> ThrottleSettings:
        return cls(
            limits={
                t: {c: (int(n), timedelta(seconds=s)) for c, (n, s) in chans.items()}
                for t, chans in cfg["NOTICE_THROTTLE"].items()
            },
            overflow=cfg["NOTICE_THROTTLE_OVERFLOW"],
        )

    def limit(self, notice_type: str, channel: str) -> tuple[int, timedelta] | None:
        """The type's limit on ``channel`` (then "*"'s); None: unlimited."""
        for key in (str(notice_type), "*"):
            found = self.limits.get(key, {}).get(channel)
            if found is not None:
                return found
        return None

    @property
    def reason(self) -> str:
        """The ``last_error`` a throttled delivery gets."""
        return THROTTLED_TO_DIGEST if self.overflow == "digest" else THROTTLED


def validate_throttle(cfg: Mapping[str, Any]) -> None:
    """Check the throttle keys; raise ConfigurationError naming the key."""
    limits = cfg["NOTICE_THROTTLE"]

    def good(rule: Any) -> bool:
        return (
            isinstance(rule, (list, tuple))
            and len(rule) == 2
            and all(not isinstance(v, bool) and isinstance(v, (int, float)) for v in rule)
            and isinstance(rule[0], int)
            and rule[0] >= 0
            and rule[1] > 0
        )

    if not isinstance(limits, dict) or not all(
        isinstance(t, str)
        and isinstance(chans, dict)
        and all(isinstance(c, str) and good(r) for c, r in chans.items())
        for t, chans in limits.items()
    ):
        raise ConfigurationError(
            "NOTICE_THROTTLE must map a notice type (or '*') to {channel: [most, seconds]}, "
            f'e.g. {{"Like": {{"email": [3, 3600]}}}}; got {limits!r}'
        )
    for t in limits:
        if t != "*":
            try:
                NoticeType(t)
            except ValueError as exc:
                raise ConfigurationError(f"NOTICE_THROTTLE: {exc}") from None
    overflow = cfg["NOTICE_THROTTLE_OVERFLOW"]
    if overflow not in OVERFLOWS:
        raise ConfigurationError(
            f"NOTICE_THROTTLE_OVERFLOW must be one of {', '.join(OVERFLOWS)}, got {overflow!r}"
        )


def hold_back(
    session: Session,
    notice: sa.Table,
    delivery: sa.Table,
    settings: ThrottleSettings,
    notice_type: str,
    user_ids: tuple[Any, ...],
    routes: dict[str, list[Pair]],
    now: datetime,
) -> dict[str, list[Pair]]:
    """Take out of ``routes`` the deliveries over their limit; return them by user key
    (the caller writes them Skipped with :attr:`ThrottleSettings.reason`).

    One notice counts once per channel, whatever its targets (devices) there.
    """
    held: dict[str, list[Pair]] = {}
    channels = sorted({c for pairs in routes.values() for c, _ in pairs})
    limited = [(c, rule) for c in channels if (rule := settings.limit(notice_type, c))]
    if not limited:
        return held
    keys = [user_key(u) for u in user_ids]
    throttle_store.lock(
        session, notice, [f"{k}:{notice_type}:{c}" for k in keys for c, _ in limited]
    )
    for channel, (most, period) in limited:
        counts = throttle_store.recent_counts(
            session, notice, delivery, list(user_ids), notice_type, channel, now - period
        )
        for key in keys:
            pairs = routes.get(key, [])
            if counts.get(key, 0) < most or not any(c == channel for c, _ in pairs):
                continue
            held.setdefault(key, []).extend(p for p in pairs if p[0] == channel)
            routes[key] = [p for p in pairs if p[0] != channel]
    return held
