"""notice/types.py: the NoticeType registry and the status enums."""

from __future__ import annotations

import pytest

from notice import DeliveryStatus, NoticeType, ReadStatus, SendStatus


def test_seed_types_are_stable_strings():
    seed = {"POST", "COMMENT", "REPLY", "FOLLOW", "LIKE", "SAVE", "SYSTEM"}
    for name in seed:
        member = getattr(NoticeType, name)
        assert isinstance(member, str) and member == name.title()
        assert member.name == name and repr(member) == f"NoticeType.{name}"
        assert NoticeType(name.title()) is member
    assert seed <= {t.name for t in NoticeType.known()}
    assert NoticeType.known() == sorted(NoticeType.known())


def test_unknown_type_names_the_known_ones():
    with pytest.raises(ValueError) as info:
        NoticeType("Gossip")
    message = str(info.value)
    assert "'Gossip'" in message and "NoticeType.register" in message
    for value in ("Comment", "Follow", "Like", "Post", "Reply", "Save", "System"):
        assert value in message


def test_register_adds_a_type_with_a_stable_value():
    watching = NoticeType.register("TYPES_WATCHING", "Types watching")
    assert NoticeType.TYPES_WATCHING is watching and NoticeType("Types watching") is watching
    assert NoticeType.register("TYPES_WATCHING", "Types watching") is watching  # idempotent
    group = NoticeType.register("TYPES_GROUP")
    assert group == "Types_Group" and NoticeType(str(group)) is group


@pytest.mark.parametrize(
    "args, message",
    [
        (("lower",), "UPPER_CASE identifier"),
        (("NOT-AN-ID",), "UPPER_CASE identifier"),
        (("TYPES_LONG", "x" * 33), "1-32 characters"),
        (("TYPES_EMPTY", ""), "1-32 characters"),
        (("COMMENT", "Remark"), "already registered as"),
        (("TYPES_SECOND_LIKE", "Like"), "value 'Like' is already registered"),
    ],
)
def test_register_refuses_bad_or_clashing_types(args, message):
    known = NoticeType.known()
    with pytest.raises(ValueError, match=message):
        NoticeType.register(*args)
    assert NoticeType.known() == known


@pytest.mark.parametrize(
    "enum, values",
    [
        (ReadStatus, ["Read", "Unread"]),
        (SendStatus, ["Wait", "Sent", "Error"]),
        (DeliveryStatus, ["Wait", "Sent", "Error", "Dead", "Skipped"]),
    ],
)
def test_status_enums_store_their_values(enum, values):
    assert [m.value for m in enum] == values
    assert all(str(m) == m.value and m == m.value for m in enum)
