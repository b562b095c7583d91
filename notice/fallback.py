"""Fallback chains and shared-channel routes, read from the config.

``NOTICE_FALLBACK = {"Comment": ["slack", "email"]}``: of the channels of a chain a user
gets only the first on which they have a target (the routing step drops the rest); when
that delivery fails for good, the engine's finish step writes the next channel's
delivery in the same transaction that records the failure (:func:`follow_up`).

``NOTICE_SHARED_ROUTES = {"Post": {"slack": ["ops"]}}``: one delivery per event to the
shared target ``"shared:ops"`` of the slack sender, whoever the recipients are. It is
attached to the notice of the event's first recipient (a delivery row needs a notice;
an event-level row would need a new table): that notice's ``send_status`` then also
reflects the shared post, and deleting that notice deletes the record of it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .errors import ConfigurationError

#: prefix of a delivery target naming a shared target of the sender's config
SHARED = "shared:"

#: the key matching every notice type
ANY = "*"


def validate(cfg: Mapping[str, Any]) -> None:
    """Check ``NOTICE_FALLBACK`` and ``NOTICE_SHARED_ROUTES`` (shapes only: the channel
    names are checked against the senders when they are used)."""
    chains = cfg.get("NOTICE_FALLBACK", {})
    if not isinstance(chains, Mapping):
        raise ConfigurationError("NOTICE_FALLBACK must be a dict of notice type to channels")
    for notice_type, chain in chains.items():
        if (
            isinstance(chain, str)
            or not isinstance(chain, Sequence)
            or len(chain) < 2
            or not all(isinstance(c, str) and c for c in chain)
            or len(set(chain)) != len(chain)
        ):
            raise ConfigurationError(
                f"NOTICE_FALLBACK[{notice_type!r}] must be a list of two or more distinct "
                f"channel names, got {chain!r}"
            )
    shared = cfg.get("NOTICE_SHARED_ROUTES", {})
    if not isinstance(shared, Mapping) or not all(
        isinstance(per, Mapping)
        and all(
            not isinstance(names, str) and all(isinstance(n, str) and n for n in names)
            for names in per.values()
        )
        for per in shared.values()
    ):
        raise ConfigurationError(
            'NOTICE_SHARED_ROUTES must look like {"Post": {"slack": ["ops"]}}, '
            f"got {shared!r}"
        )


def chain_for(cfg: Mapping[str, Any], notice_type: str) -> tuple[str, ...]:
    """The fallback chain of ``notice_type`` (empty: none)."""
    chains = cfg.get("NOTICE_FALLBACK") or {}
    chain = chains.get(str(notice_type), chains.get(ANY, ()))
    return tuple(chain)


def shared_for(cfg: Mapping[str, Any], notice_type: str) -> dict[str, list[str]]:
    """``{channel: [shared target names]}`` of ``notice_type``'s shared routes."""
    routes = cfg.get("NOTICE_SHARED_ROUTES") or {}
    out: dict[str, list[str]] = {}
    for key in (ANY, str(notice_type)):
        for channel, names in (routes.get(key) or {}).items():
            out.setdefault(channel, []).extend(n for n in names if n not in out.get(channel, []))
    return out


def first_of_chain(
    pairs: list[tuple[str, str]], chain: tuple[str, ...]
) -> list[tuple[str, str]]:
    """``pairs`` (one user's deliveries) keeping, of the chain's channels, only the
    first channel that has any."""
    present = {c for c, _ in pairs}
    first = next((c for c in chain if c in present), None)
    return [(c, t) for c, t in pairs if c not in chain or c == first]


def follow_up(
    senders: Mapping[str, Any],
    chain: tuple[str, ...],
    failed: str,
    user_id: Any,
    allowed: Callable[[str], bool],
) -> list[tuple[str, str]]:
    """The ``(channel, target)`` deliveries to write after ``failed`` failed for good:
    those of the next channel of ``chain`` that ``allowed`` (the user's preferences)
    lets through and on which the user has a target; channels whose sender is not
    registered are passed over. Empty at the end of the chain."""
    if failed not in chain:
        return []
    for channel in chain[chain.index(failed) + 1 :]:
        sender = senders.get(channel)
        # a user who turned email off for this type must not get it as a fallback
        # either: the send-time re-check skips notices this fresh
        if sender is None or not allowed(channel):
            continue
        targets = sender.targets([user_id])
        if targets is None:
            return [(channel, "")]
        found = targets.get(user_id, ())
        if found:
            return [(channel, str(t)) for t in found]
    return []
