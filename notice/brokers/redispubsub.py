"""Redis pub/sub broker (``NOTICE_BROKER_URL = "redis://host:6379/0"``).

Each user has a channel ``<NOTICE_BROKER_CHANNEL>:<user id>``. Publishing is one
``PUBLISH``; each process holds one subscriber connection (pattern
``<channel>:*``) whatever the number of streams it serves, and fans messages out to
its streams in memory.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import redis

from ..types import user_key
from .base import BrokerError, encode
from .listening import ListeningBroker


class RedisBroker(ListeningBroker):
    """Redis pub/sub; any app process can serve any user's stream."""

    name = "redis"

    def __init__(self, url: str | None = None, **options: Any) -> None:
        super().__init__(url, **options)
        if not url:
            raise BrokerError("RedisBroker needs a redis:// URL")
        self._client = redis.Redis.from_url(
            url, socket_timeout=5, socket_connect_timeout=5, health_check_interval=30
        )

    def publish(self, user_id: Any, message: dict[str, Any]) -> None:
        try:
            self._client.publish(f"{self.channel}:{user_key(user_id)}", encode(user_id, message))
        except redis.RedisError as exc:
            raise BrokerError(f"Redis publish failed: {exc}") from exc

    def publish_many(self, items: Sequence[tuple[Any, dict[str, Any]]]) -> None:
        pipe = self._client.pipeline(transaction=False)
        for user_id, message in items:
            pipe.publish(f"{self.channel}:{user_key(user_id)}", encode(user_id, message))
        try:
            pipe.execute()
        except redis.RedisError as exc:
            raise BrokerError(f"Redis publish failed: {exc}") from exc

    def connect_listener(self) -> Any:
        pubsub = self._client.pubsub()  # type: ignore[no-untyped-call]
        try:
            pubsub.psubscribe(f"{self.channel}:*")
            # wait for the server's confirmation: a PUBLISH sent after subscribe()
            # returns must be heard
            for _ in range(50):
                reply = pubsub.get_message(timeout=0.1)
                if reply is not None and reply["type"] == "psubscribe":
                    return pubsub
        except redis.RedisError as exc:
            pubsub.close()
            raise BrokerError(f"Redis subscribe failed: {exc}") from exc
        pubsub.close()
        raise BrokerError("Redis did not confirm the subscription")

    def listen(self, conn: Any, stop: threading.Event) -> None:
        while not stop.is_set():
            reply = conn.get_message(timeout=1.0)
            if reply is not None and reply["type"] == "pmessage":
                channel = reply["channel"]
                if isinstance(channel, bytes):
                    channel = channel.decode("utf-8", "replace")
                self.deliver(reply["data"], str(channel))

    def close(self) -> None:
        super().close()
        self._client.close()
