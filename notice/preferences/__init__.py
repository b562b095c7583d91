"""Per-user choices: which types reach a user on which channel (the routing gate,
:mod:`~notice.preferences.preferences`), and the emailed digest of unread notices
(:mod:`~notice.preferences.digest`)."""

from __future__ import annotations

from .preferences import INTERNAL_CHANNELS, Preferences

__all__ = ["INTERNAL_CHANNELS", "Preferences"]
