"""Senders: where notices go once they are written (log, memory, web push, email, ...)."""

from __future__ import annotations

from .base import BUILTIN_SENDERS, Sender, load_sender

__all__ = ["BUILTIN_SENDERS", "Sender", "load_sender"]
