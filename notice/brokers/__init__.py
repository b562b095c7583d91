"""Brokers carry live-stream events between the process that writes a notice and the
processes serving that user's streams: in-process, Redis pub/sub, PostgreSQL
LISTEN/NOTIFY."""

from __future__ import annotations

from .base import BUILTIN_BROKERS, RESYNC, Broker, BrokerError, Hub, Subscription, load_broker

__all__ = [
    "BUILTIN_BROKERS",
    "RESYNC",
    "Broker",
    "BrokerError",
    "Hub",
    "Subscription",
    "load_broker",
]
