"""Quiet hours: when a delivery due inside a user's quiet window may go out.

Pure functions on aware datetimes; the window is wall-clock time in the user's IANA
zone, so it follows daylight saving time: a 22:00-07:00 window ends at 07:00 local
time on the morning the clocks change too (one hour earlier or later in UTC).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ..errors import InvalidQuietHours

_CLOCK = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
MINUTES_PER_DAY = 24 * 60


def parse_clock(text: str) -> int:
    """``"HH:MM"`` (24-hour) as minutes after midnight; :class:`InvalidQuietHours` if not."""
    match = _CLOCK.match(text) if isinstance(text, str) else None
    if match is None:
        raise InvalidQuietHours(f"a time of day must be 'HH:MM' (00:00-23:59), got {text!r}")
    return int(match.group(1)) * 60 + int(match.group(2))


def format_clock(minutes: int) -> str:
    """Minutes after midnight as ``"HH:MM"``."""
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def zone(name: str) -> ZoneInfo:
    """The IANA zone ``name``; :class:`InvalidQuietHours` when there is none."""
    if not isinstance(name, str) or not name or len(name) > 64:
        raise InvalidQuietHours(f"timezone must be an IANA zone name, got {name!r}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidQuietHours(
            f"unknown timezone {name!r} (an IANA name, e.g. 'Europe/Berlin')"
        ) from None


@dataclass(frozen=True)
class QuietWindow:
    """A daily window ``[start, end)`` in minutes after local midnight in ``timezone``;
    ``end < start`` crosses midnight, ``end == start`` is empty."""

    timezone: str
    start: int
    end: int

    def __post_init__(self) -> None:
        zone(self.timezone)
        for value in (self.start, self.end):
            if isinstance(value, bool) or not isinstance(value, int):
                raise InvalidQuietHours(f"window bounds are minutes after midnight, got {value!r}")
            if not 0 <= value < MINUTES_PER_DAY:
                raise InvalidQuietHours(f"window bounds are 0-1439 minutes, got {value}")

    def release(self, due: datetime) -> datetime:
        """When a delivery due at ``due`` (aware) may go out: ``due`` itself outside the
        window, else the window's end (UTC).

        The end is the local wall-clock time on the right day, made aware in the zone:
        an end inside a spring-forward gap (02:30 on the night 02:00 jumps to 03:00)
        falls just after the gap (zoneinfo reads it with the offset before the jump).
        """
        if self.start == self.end:
            return due
        tz = zone(self.timezone)
        local = due.astimezone(tz)
        minute = local.hour * 60 + local.minute
        if self.start < self.end:
            inside = self.start <= minute < self.end
            end_day = local.date()
        else:  # crosses midnight: [start, 24:00) or [00:00, end)
            inside = minute >= self.start or minute < self.end
            end_day = local.date() + timedelta(days=1) if minute >= self.start else local.date()
        if not inside:
            return due
        clock = time(self.end // 60, self.end % 60)
        # fold=0: an end in the repeated hour of a fall-back night is its first pass
        end = datetime.combine(end_day, clock, tzinfo=tz).astimezone(timezone.utc)
        return max(end, due)
