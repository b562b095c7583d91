"""Notice types and the status enums stored on rows.

Types are stored as stable strings (``"Comment"``), never as Python symbol names, so
renaming a constant never breaks stored rows. Apps add their own types with
:meth:`NoticeType.register` instead of forking an enum.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Hashable, Iterable
from typing import Any, ClassVar, TypeAlias

import sqlalchemy as sa

from .errors import InvalidUserId


class NoticeType(str):
    """A registered kind of notice; a ``str`` holding its stored value.

    ``NoticeType("Comment")`` returns the registered type and raises ``ValueError``
    (listing the known values) for an unknown one.
    """

    _registry: ClassVar[dict[str, NoticeType]] = {}

    POST: ClassVar[NoticeType]
    COMMENT: ClassVar[NoticeType]
    REPLY: ClassVar[NoticeType]
    FOLLOW: ClassVar[NoticeType]
    LIKE: ClassVar[NoticeType]
    SAVE: ClassVar[NoticeType]
    SYSTEM: ClassVar[NoticeType]

    def __new__(cls, value: str) -> NoticeType:
        try:
            return cls._registry[str(value)]
        except KeyError:
            known = ", ".join(sorted(cls._registry))
            raise ValueError(
                f"unknown notice type {value!r}; known types: {known}"
                " (add one with NoticeType.register(NAME, value))"
            ) from None

    @classmethod
    def register(cls, name: str, value: str | None = None) -> NoticeType:
        """Add a type and return it; it is also reachable as ``NoticeType.<name>``.

        :param name: the attribute name, e.g. ``"OWNER"``.
        :param value: the stored string, at most 32 characters; defaults to
            ``name.title()`` (``"Owner"``). Registering the same pair twice is a no-op.
        """
        if not name.isidentifier() or not name.isupper():
            raise ValueError(f"notice type name must be an UPPER_CASE identifier, got {name!r}")
        value = name.title() if value is None else value
        if not value or len(value) > 32:
            raise ValueError(f"notice type value must be 1-32 characters, got {value!r}")
        existing = getattr(cls, name, None)
        if isinstance(existing, NoticeType):
            if existing != value:
                raise ValueError(f"NoticeType.{name} is already registered as {existing!r}")
            return existing
        if value in cls._registry:
            raise ValueError(f"notice type value {value!r} is already registered")
        member = str.__new__(cls, value)
        member._name = name
        cls._registry[value] = member
        setattr(cls, name, member)
        return member

    _name: str

    @property
    def name(self) -> str:
        """The Python name, e.g. ``"COMMENT"``."""
        return self._name

    @classmethod
    def known(cls) -> list[NoticeType]:
        """All registered types, sorted by value."""
        return [cls._registry[key] for key in sorted(cls._registry)]

    def __repr__(self) -> str:
        return f"NoticeType.{self._name}"


for _name in ("POST", "COMMENT", "REPLY", "FOLLOW", "LIKE", "SAVE", "SYSTEM"):
    NoticeType.register(_name)


class ReadStatus(str, enum.Enum):
    """Whether the user has seen a notice (stored as ``"Read"`` / ``"Unread"``)."""

    READ = "Read"
    UNREAD = "Unread"

    def __str__(self) -> str:
        return self.value


class SendStatus(str, enum.Enum):
    """Roll-up of a notice's deliveries.

    Wait while any delivery is pending, Error when one failed (retrying or dead),
    Sent when all succeeded or were skipped, or when none was needed.
    """

    WAIT = "Wait"
    SENT = "Sent"
    ERROR = "Error"

    def __str__(self) -> str:
        return self.value


class DeliveryStatus(str, enum.Enum):
    """State of one (notice, channel, target) delivery."""

    #: not sent yet; picked by the dispatcher after commit, or by the sweeper
    WAIT = "Wait"
    #: delivered
    SENT = "Sent"
    #: failed, will be retried at ``next_attempt_at``
    ERROR = "Error"
    #: failed for good (permanent error or attempts used up); only an operator retries it
    DEAD = "Dead"
    #: nothing to send (expired notice, no address); final, reason in ``last_error``
    SKIPPED = "Skipped"

    def __str__(self) -> str:
        return self.value


#: delivery states the sweeper may pick up
PENDING_STATES = (DeliveryStatus.WAIT.value, DeliveryStatus.ERROR.value)


# --- user ids -------------------------------------------------------------------------

#: a user id as the app stores it (``int`` by default; ``str``, ``UUID``...), once
#: :class:`UserIdPolicy` has converted it
UserId: TypeAlias = Hashable

#: a live-stream message as brokers carry it: a JSON object
Message: TypeAlias = dict[str, object]

_INTEGER = re.compile(r"^[+-]?[0-9]{1,20}$")


class UserIdPolicy:
    """How this app's user ids are checked and converted: once, strictly, where an id
    enters the library (publishing, the reading API, topics, preferences, the web).

    Ids become the ``user_id`` column's Python type: flask-login hands out ``"7"``
    where the database holds ``7``. ``True`` (user 1?), ``2.5`` (user 2?), bytes and
    text that is not a whole number are refused with :class:`InvalidUserId`, as are
    integers outside the column's range (a database error otherwise).
    """

    def __init__(self, column_type: sa.types.TypeEngine[Any]) -> None:
        try:
            self.python_type: type | None = column_type.python_type
        except NotImplementedError:
            self.python_type = None
        bits = 63 if isinstance(column_type, sa.BigInteger) else 31
        if isinstance(column_type, sa.SmallInteger):
            bits = 15
        self.bound = 2**bits

    def many(self, values: Iterable[Any]) -> tuple[Any, ...]:
        """Each of ``values`` as a user id of this app (a fan-out's recipients), or
        :class:`InvalidUserId` for the first that is not one.

        Plain ints within range for an integer column, the usual case, are checked in
        C (their types as a set, the range by ``min``/``max``); anything else goes
        through :meth:`__call__` one by one.
        """
        ids = tuple(values)
        if self.python_type is int and ids and set(map(type, ids)) == {int}:
            if -self.bound <= min(ids) and max(ids) < self.bound:
                return ids
        return tuple(map(self, ids))

    def __call__(self, value: Any) -> Any:
        """``value`` as a user id of this app, or :class:`InvalidUserId`."""
        if value is None or isinstance(value, (bool, float, bytes, bytearray)):
            raise InvalidUserId(f"{value!r} is not a user id")
        kind = self.python_type
        if kind is int:
            if isinstance(value, str) and _INTEGER.match(value.strip()):
                value = int(value.strip())
            elif type(value) is not int:
                if not isinstance(value, int):  # int subclasses (IntEnum) pass as ints
                    raise InvalidUserId(f"{value!r} is not a user id (a whole number)")
                value = int(value)
            if not -self.bound <= value < self.bound:
                raise InvalidUserId(f"user id {value} is out of range")
            return value
        if kind is None or type(value) is kind:
            return value
        if kind is str:
            if isinstance(value, int):
                return str(value)
            raise InvalidUserId(f"{value!r} is not a user id (a string)")
        if isinstance(value, str):
            try:
                return kind(value)  # e.g. uuid.UUID("...")
            except (TypeError, ValueError) as exc:
                raise InvalidUserId(f"{value!r} is not a user id: {exc}") from None
        if isinstance(value, kind):
            return value
        raise InvalidUserId(f"{value!r} is not a user id ({kind.__name__})")


def user_key(user_id: Any) -> str:
    """The one key of a user in dicts and broker channels: ids that went through
    :class:`UserIdPolicy` and ids read back from the database compare as text."""
    return str(user_id)


def user_keys(user_ids: Iterable[Any]) -> list[str]:
    """:func:`user_key` of each of ``user_ids``, in order; one ``map`` in C for a
    fan-out's recipients instead of a Python call each (it must stay what
    :func:`user_key` computes)."""
    return list(map(str, user_ids))
