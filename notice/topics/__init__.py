"""Topics: named groups of users or devices, and fan-out publishing to them
(:mod:`~notice.topics.topics`)."""

from __future__ import annotations

from ..errors import UnknownTopic
from .topics import Published, Topics, check_name

__all__ = ["Published", "Topics", "UnknownTopic", "check_name"]
