"""The scheduling keys: validated, then read once by ``init_app``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
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

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> ScheduleSettings:
        return cls(
            quiet_channels=frozenset(cfg["NOTICE_QUIET_HOURS_CHANNELS"]),
            urgent_types=frozenset(cfg["NOTICE_URGENT_TYPES"]),
            timer=float(cfg["NOTICE_SCHEDULE_TIMER"]),
        )

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
    timer = cfg["NOTICE_SCHEDULE_TIMER"]
    if isinstance(timer, bool) or not isinstance(timer, (int, float)) or not 0 <= timer <= 300:
        raise ConfigurationError(
            f"NOTICE_SCHEDULE_TIMER must be a number of seconds in [0, 300], got {timer!r}"
        )
