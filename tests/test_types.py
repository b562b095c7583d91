"""notice/types.py: the NoticeType registry and the status enums."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa

from notice import DeliveryStatus, NoticeType, ReadStatus, SendStatus
from notice.errors import InvalidUserId
from notice.types import UserIdPolicy, user_key, user_keys


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


# --- user ids: one strict policy ------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        True,
        False,
        2.5,
        2.0,
        b"7",
        bytearray(b"7"),
        "x",
        "7.0",
        "",
        None,
        2**31,
        -(2**31) - 1,
        [7],
        object(),
    ],
)
def test_integer_ids_refuse_what_is_not_a_whole_number_in_range(value):
    with pytest.raises(InvalidUserId):
        UserIdPolicy(sa.Integer())(value)
    # also among many (a fan-out's recipients): the fast path takes plain ints only
    with pytest.raises(InvalidUserId):
        UserIdPolicy(sa.Integer()).many([1, 2, value, 3])


@pytest.mark.parametrize(("value", "expected"), [(7, 7), ("7", 7), (" 42 ", 42), ("-3", -3)])
def test_integer_ids_accept_ints_and_their_text(value, expected):
    got = UserIdPolicy(sa.Integer())(value)
    assert got == expected and type(got) is int


def test_big_integer_ids_reach_the_64_bit_range():
    policy = UserIdPolicy(sa.BigInteger())
    assert policy(str(2**62)) == 2**62
    with pytest.raises(InvalidUserId):
        policy(2**63)


def test_string_and_uuid_ids():
    assert UserIdPolicy(sa.String(36))(7) == "7"
    with pytest.raises(InvalidUserId):
        UserIdPolicy(sa.String(36))(True)
    policy = UserIdPolicy(sa.Uuid())
    u = uuid.uuid4()
    assert policy(str(u)) == u and policy(u) is u
    with pytest.raises(InvalidUserId):
        policy("not-a-uuid")


def test_user_key_is_the_same_for_an_id_and_its_text():
    assert user_key(7) == user_key("7") == "7"
    u = uuid.uuid4()
    assert user_keys([7, "7", u]) == [user_key(7), user_key("7"), user_key(u)]


@pytest.mark.parametrize(
    ("column", "values", "expected"),
    [
        (sa.Integer(), range(5), (0, 1, 2, 3, 4)),
        (sa.Integer(), [1, "2", 3], (1, 2, 3)),
        (sa.Integer(), [-(2**31), 2**31 - 1], (-(2**31), 2**31 - 1)),
        (sa.BigInteger(), [2**62, 1], (2**62, 1)),
        (sa.String(36), [7, "8"], ("7", "8")),
        (sa.Integer(), [], ()),
    ],
)
def test_many_ids_convert_as_each_would(column, values, expected):
    policy = UserIdPolicy(column)
    got = policy.many(values)
    assert got == expected == tuple(map(policy, values))
    assert list(map(type, got)) == list(map(type, expected))
