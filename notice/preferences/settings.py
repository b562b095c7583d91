"""The preference and digest keys: validated, then read once by ``init_app``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigurationError
from ..types import NoticeType

DIGEST_FREQUENCIES = ("off", "daily", "weekly")
#: how a type reaches a user by email: its own email at once, a line in the daily or
#: weekly digest, or not at all
EMAIL_MODES = ("immediate", "daily", "weekly", "off")
IMMEDIATE = "immediate"
#: the channel whose choice is a mode (the digest's)
EMAIL = "email"


@dataclass(frozen=True)
class PreferenceSettings:
    """Defaults and required types of the routing gate, and the digest's keys."""

    #: NOTICE_PREFERENCE_DEFAULTS: ``{type or "*": {channel: enabled}}``
    defaults: Mapping[str, Mapping[str, bool]]
    #: NOTICE_REQUIRED_TYPES: types users cannot turn off on any channel
    required: frozenset[str]
    #: NOTICE_DIGEST_DEFAULT: the digest frequency of users who chose none
    digest_default: str
    #: NOTICE_DIGEST_LIMIT: most notices listed in one digest email
    digest_limit: int
    #: NOTICE_EMAIL_MODES: ``{type or "*": mode}``, the default of :data:`EMAIL_MODES`
    email_modes: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> PreferenceSettings:
        return cls(
            defaults={t: dict(c) for t, c in cfg["NOTICE_PREFERENCE_DEFAULTS"].items()},
            required=frozenset(cfg["NOTICE_REQUIRED_TYPES"]),
            digest_default=cfg["NOTICE_DIGEST_DEFAULT"],
            digest_limit=int(cfg["NOTICE_DIGEST_LIMIT"]),
            email_modes=dict(cfg["NOTICE_EMAIL_MODES"]),
        )

    def is_required(self, notice_type: str) -> bool:
        """True when users cannot turn ``notice_type`` off."""
        return str(notice_type) in self.required

    def default(self, notice_type: str, channel: str) -> bool:
        """The configured default for a type and channel (on unless configured off)."""
        if self.is_required(notice_type):
            return True
        if channel == EMAIL and self.default_mode(notice_type) == "off":
            return False
        for key in (str(notice_type), "*"):
            value = self.defaults.get(key, {}).get(channel)
            if value is not None:
                return bool(value)
        return True

    def default_mode(self, notice_type: str) -> str:
        """The type's email mode for users who chose none: NOTICE_EMAIL_MODES (the
        type's, then "*"'s), "off" when NOTICE_PREFERENCE_DEFAULTS turns email off;
        always "immediate" for a required type."""
        t = str(notice_type)
        if self.is_required(t):
            return IMMEDIATE
        mode = self.email_modes.get(t, self.email_modes.get("*", IMMEDIATE))
        if mode == "off":
            return mode
        for key in (t, "*"):
            value = self.defaults.get(key, {}).get(EMAIL)
            if value is not None:
                return mode if value else "off"
        return mode

    def mode_of(self, notice_type: str, stored: tuple[bool, str | None] | None) -> str:
        """A user's email mode for a type from their stored ``(enabled, mode)`` on the
        email channel (None: no choice): the mode when one was chosen, "off" for a
        plain off, else the default (not "off": they turned it on)."""
        if self.is_required(notice_type) or stored is None:
            return self.default_mode(notice_type)
        enabled, mode = stored
        if mode is not None:
            return mode
        if not enabled:
            return "off"
        default = self.default_mode(notice_type)
        return IMMEDIATE if default == "off" else default


def validate_preferences(cfg: Mapping[str, Any]) -> None:
    """Check the preference and digest keys; raise ConfigurationError naming the key."""
    limit = cfg["NOTICE_DIGEST_LIMIT"]
    if isinstance(limit, bool) or not isinstance(limit, int) or limit <= 0:
        raise ConfigurationError(f"NOTICE_DIGEST_LIMIT must be a positive number, got {limit!r}")
    if cfg["NOTICE_DIGEST_DEFAULT"] not in DIGEST_FREQUENCIES:
        raise ConfigurationError(
            f"NOTICE_DIGEST_DEFAULT must be one of {', '.join(DIGEST_FREQUENCIES)}, "
            f"got {cfg['NOTICE_DIGEST_DEFAULT']!r}"
        )
    defaults = cfg["NOTICE_PREFERENCE_DEFAULTS"]
    if not isinstance(defaults, dict) or not all(
        isinstance(t, str)
        and isinstance(chans, dict)
        and all(isinstance(c, str) and isinstance(v, bool) for c, v in chans.items())
        for t, chans in defaults.items()
    ):
        raise ConfigurationError(
            "NOTICE_PREFERENCE_DEFAULTS must map a notice type (or '*') to "
            f'{{channel: True/False}}, e.g. {{"Like": {{"email": False}}}}; got {defaults!r}'
        )
    modes = cfg["NOTICE_EMAIL_MODES"]
    if not isinstance(modes, dict) or not all(
        isinstance(t, str) and m in EMAIL_MODES for t, m in modes.items()
    ):
        raise ConfigurationError(
            "NOTICE_EMAIL_MODES must map a notice type (or '*') to one of "
            f'{", ".join(EMAIL_MODES)}, e.g. {{"Like": "daily"}}; got {modes!r}'
        )
    required = cfg["NOTICE_REQUIRED_TYPES"]
    if isinstance(required, str) or not all(isinstance(t, str) for t in required):
        raise ConfigurationError(
            f"NOTICE_REQUIRED_TYPES must be a list of notice type values, got {required!r}"
        )
    for value in [*required, *(t for t in [*defaults, *modes] if t != "*")]:
        try:
            NoticeType(value)
        except ValueError as exc:
            raise ConfigurationError(f"NOTICE_REQUIRED_TYPES/PREFERENCE_DEFAULTS: {exc}") from None
