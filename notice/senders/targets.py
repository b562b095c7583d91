"""Per-user targets from a loader the app registers, re-checked at send time: the
mechanism the chat senders and the SMS sender share.

A delivery may be sent hours after it was written (a retry, the sweeper): by then the
user may have removed the number or webhook it names, and it may belong to someone
else. So before each send the loader is asked again (once per batch, in
:meth:`LoaderTargets.prepare`) and a target that is no longer among the user's ends the
delivery ``Skipped`` with nothing sent.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

from ..errors import SkipDelivery
from ..types import user_key

TargetLoader = Callable[[Sequence[Any]], Mapping[Any, "str | Sequence[str] | None"]]


class LoaderTargets:
    """:meth:`target_loader`, :meth:`~notice.senders.base.Sender.targets` from it, and
    the send-time owner check (:meth:`prepare`, :meth:`check_owner`, :meth:`close`).

    The class using it sets ``self._local`` to a ``threading.local()``: the targets
    loaded for a batch belong to the dispatcher thread sending it."""

    #: what a target is, for the Skipped reason ("number", "target")
    target_noun: ClassVar[str] = "target"

    _loader: TargetLoader | None = None
    _local: Any

    def target_loader(self, loader: TargetLoader) -> TargetLoader:
        """Register the function giving each user's targets on this channel::

            @notices.sender("slack").target_loader
            def slack_targets(user_ids):
                return {u.id: u.slack_id for u in User.query.filter(User.id.in_(user_ids))}

        It gets a list of user ids and returns a mapping of user id to a target string
        or a list of them; a user missing (or mapped to None) has no target here, so
        a fallback chain moves on to its next channel. Called inside the publishing
        transaction, when a fallback chain reaches this channel, and before sending
        (a target no longer given ends its delivery Skipped).
        """
        self._loader = loader
        return loader

    def targets(self, user_ids: Sequence[Any]) -> Mapping[Any, Sequence[str]]:
        if self._loader is None:
            return {}
        found = self._loader(list(user_ids))
        out: dict[Any, Sequence[str]] = {}
        for user, value in found.items():
            if not value:
                continue
            out[user] = [value] if isinstance(value, str) else [str(v) for v in value]
        return out

    def owner_checked(self, target: str) -> bool:
        """Whether ``target`` is a per-user one to re-check (all of them by default; the
        chat senders leave out shared targets, which belong to no user)."""
        return True

    def prepare(self, items: Sequence[tuple[Any, str]]) -> None:
        """Load the current targets of the batch's users with one loader call, for
        :meth:`check_owner`."""
        users = {
            user_key(notice.user_id): notice.user_id
            for notice, target in items
            if self.owner_checked(target)
        }
        found = self.targets(list(users.values())) if users else {}
        current = {user_key(u): list(v) for u, v in found.items()}
        self._local.owned = {key: current.get(key, []) for key in users}

    def close(self) -> None:
        self._local.owned = None

    def check_owner(self, notice: Any, target: str) -> None:
        """SkipDelivery unless ``target`` is still one of the user's (see module doc)."""
        if not self.owner_checked(target):
            return
        key = user_key(notice.user_id)
        owned: dict[str, list[str]] | None = getattr(self._local, "owned", None)
        if owned is None or key not in owned:  # not prepared (a lone send): ask now
            found = self.targets([notice.user_id])
            current = next((list(v) for u, v in found.items() if user_key(u) == key), [])
        else:
            current = owned[key]
        if target not in current:
            raise SkipDelivery(
                f"the {self.target_noun} is no longer the user's (target loader)"
            )
