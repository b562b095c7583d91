"""The scheduling keys: validated, then read once by ``init_app``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from ..errors import ConfigurationError
from ..types import NoticeType


@dataclass(frozen=True)
class ScheduleSettings:
    """Quiet hours' channels and urgent types, and the dispatcher's timer horizon."""

    #: NOTICE_QUIET_HOURS_CHANNELS: channels whose deliveries wait out quiet hours
    quiet_channels: frozenset[str] = frozenset({"email", "webpush"})
    #: NOTICE_URGENT_TYPES: notice types that bypass quiet hours
    urgent_types: frozenset[str] = frozenset()
    #: NOTICE_SCHEDULE_TIMER: seconds ahead a sync/thread dispatcher times a scheduled
    #: delivery itself (0: leave every one to the sweeper)
    timer: float = 10.0
    #: NOTICE_DELAY_DEFAULTS: ``{type or "*": {channel: seconds}}``
    delays: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    #: NOTICE_UNLESS_READ_DEFAULTS: ``{type or "*": [channel, ...]}``
    unless_read: Mapping[str, frozenset[str]] = field(default_factory=dict)

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> ScheduleSettings:
        return cls(
            quiet_channels=frozenset(cfg["NOTICE_QUIET_HOURS_CHANNELS"]),
            urgent_types=frozenset(cfg["NOTICE_URGENT_TYPES"]),
            timer=float(cfg["NOTICE_SCHEDULE_TIMER"]),
            delays={t: dict(c) for t, c in cfg["NOTICE_DELAY_DEFAULTS"].items()},
            unless_read={t: frozenset(c) for t, c in cfg["NOTICE_UNLESS_READ_DEFAULTS"].items()},
        )

    def type_delays(self, notice_type: str) -> dict[str, timedelta]:
        """The configured delays of ``notice_type`` per channel (its own over "*")."""
        merged = {**self.delays.get("*", {}), **self.delays.get(str(notice_type), {})}
        return {c: timedelta(seconds=s) for c, s in merged.items()}

    def type_unless_read(self, notice_type: str) -> frozenset[str]:
        """The configured ``unless_read`` channels of ``notice_type`` (its own, else "*")."""
        own = self.unless_read.get(str(notice_type))
        return own if own is not None else self.unless_read.get("*", frozenset())

    def quiet_applies(self, channel: str, notice_type: str) -> bool:
        """Whether a delivery on ``channel`` of ``notice_type`` waits out quiet hours."""
        return channel in self.quiet_channels and str(notice_type) not in self.urgent_types


def validate_schedule(cfg: Mapping[str, Any]) -> None:
    """Check the scheduling keys; raise ConfigurationError naming the key."""
    channels = cfg["NOTICE_QUIET_HOURS_CHANNELS"]
    if isinstance(channels, str) or not all(isinstance(c, str) for c in channels):
        raise ConfigurationError(
            f'NOTICE_QUIET_HOURS_CHANNELS must be a list of channel names, e.g. ["email"]; '
            f"got {channels!r}"
        )
    urgent = cfg["NOTICE_URGENT_TYPES"]
    if isinstance(urgent, str) or not all(isinstance(t, str) for t in urgent):
        raise ConfigurationError(
            f"NOTICE_URGENT_TYPES must be a list of notice type values, got {urgent!r}"
        )
    for value in urgent:
        try:
            NoticeType(value)
        except ValueError as exc:
            raise ConfigurationError(f"NOTICE_URGENT_TYPES: {exc}") from None
    delays = cfg["NOTICE_DELAY_DEFAULTS"]
    if not isinstance(delays, dict) or not all(
        isinstance(t, str)
        and isinstance(chans, dict)
        and all(
            isinstance(c, str)
            and isinstance(v, (int, float))
            and not isinstance(v, bool)
            and v >= 0
            for c, v in chans.items()
        )
        for t, chans in delays.items()
    ):
        raise ConfigurationError(
            "NOTICE_DELAY_DEFAULTS must map a notice type (or '*') to {channel: seconds}, "
            f'e.g. {{"Comment": {{"email": 600}}}}; got {delays!r}'
        )
    unless = cfg["NOTICE_UNLESS_READ_DEFAULTS"]
    if not isinstance(unless, dict) or not all(
        isinstance(t, str) and not isinstance(chans, str) and all(isinstance(c, str) for c in chans)
        for t, chans in unless.items()
    ):
        raise ConfigurationError(
            "NOTICE_UNLESS_READ_DEFAULTS must map a notice type (or '*') to a list of "
            f'channels, e.g. {{"Comment": ["email"]}}; got {unless!r}'
        )
    for key, mapping in (
        ("NOTICE_DELAY_DEFAULTS", delays),
        ("NOTICE_UNLESS_READ_DEFAULTS", unless),
    ):
        for value in (t for t in mapping if t != "*"):
            try:
                NoticeType(value)
            except ValueError as exc:
                raise ConfigurationError(f"{key}: {exc}") from None
    timer = cfg["NOTICE_SCHEDULE_TIMER"]
    if isinstance(timer, bool) or not isinstance(timer, (int, float)) or not 0 <= timer <= 300:
        raise ConfigurationError(
            f"NOTICE_SCHEDULE_TIMER must be a number of seconds in [0, 300], got {timer!r}"
        )
