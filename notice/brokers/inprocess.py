"""The default broker: streams served by the same process that writes the notice."""

from __future__ import annotations

from typing import Any

from ..types import user_key
from .base import Broker


class InProcessBroker(Broker):
    """Hands messages straight to this process's streams; nothing to install.

    Only right for one app process (the dev server, one gunicorn worker): a notice
    written by another process never reaches streams here. Use Redis or PostgreSQL
    for more.
    """

    name = "memory"

    def audience(self) -> set[str] | None:
        # every stream this broker can reach lives here: publish only for them
        return self.hub.keys()

    def publish(self, user_id: Any, message: dict[str, Any]) -> None:
        self.hub.dispatch(user_key(user_id), message)
