"""Topics: named groups of users or devices, and fan-out publishing to them
(:mod:`~notice.topics.topics`)."""

from __future__ import annotations

from .topics import Published, Topics, UnknownTopic, check_name

__all__ = ["Published", "Topics", "UnknownTopic", "check_name"]
