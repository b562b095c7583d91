"""Durations on the command line: ``"90d"``, ``"2h"``, ``"30m"``, ``"45s"``, ``"2w"``."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import click

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PATTERN = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")


def parse_duration(text: str) -> timedelta:
    """Parse ``"<number><unit>"`` (units s, m, h, d, w) into a positive timedelta.

    :raises ValueError: with a message fit to show the user.
    """
    match = _PATTERN.fullmatch(text.strip().lower())
    if match is None:
        raise ValueError(f"{text!r} is not a duration; use a number and a unit: 30m, 2h, 90d")
    seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if seconds <= 0:
        raise ValueError(f"{text!r} must be longer than zero")
    return timedelta(seconds=seconds)


class Duration(click.ParamType[timedelta]):
    """A click parameter type for :func:`parse_duration`; bad input is a usage error."""

    name = "duration"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> timedelta:
        if isinstance(value, timedelta):
            return value
        try:
            return parse_duration(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


DURATION = Duration()
