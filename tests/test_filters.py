"""notice/filters.py: composable filters and their truth tables."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from notice import NoticeType
from notice.filters import Filter, always, from_sender, of_type, to_user, where


def notice(notice_type="Like", user_id=1, sender_id=None):
    return SimpleNamespace(notice_type=notice_type, user_id=user_id, sender_id=sender_id)


A = of_type(NoticeType.LIKE)  # true for notice_type "Like"
B = to_user(1)  # true for user_id 1
CASES = [
    (notice("Like", 1), True, True),
    (notice("Like", 2), True, False),
    (notice("Post", 1), False, True),
    (notice("Post", 2), False, False),
]


@pytest.mark.parametrize("n, a, b", CASES)
def test_truth_tables(n, a, b):
    assert A(n) is a and B(n) is b
    assert (A & B)(n) is (a and b)
    assert (A | B)(n) is (a or b)
    assert (~A)(n) is (not a)
    assert (~(A & B))(n) is (not (a and b))
    assert ((A | B) & ~(A & B))(n) is (a != b)  # exclusive or, built from the three


def test_basic_filters_match_what_they_name():
    assert of_type("Like", NoticeType.POST)(notice("Post"))
    assert not of_type("Like")(notice("Comment"))
    assert to_user(1, 2)(notice(user_id=2)) and not to_user(1)(notice(user_id=3))
    assert from_sender(9)(notice(sender_id=9)) and not from_sender(9)(notice(sender_id=None))
    assert where(lambda n: n.user_id > 5)(notice(user_id=6))
    assert always(notice()) and always(None)
    assert where(lambda n: 1)(notice()) is True  # truthy results become bools


def test_descriptions_show_the_composition():
    f = (of_type("Like", "Post") | from_sender(9)) & ~to_user(2)
    assert f.description == "((of_type(Like, Post) | from_sender(9)) & ~to_user(2))"
    assert repr(f) == f"<Filter {f.description}>"
    assert isinstance(f, Filter)


def test_and_or_short_circuit():
    calls = []

    def spy(result):
        return where(lambda n: calls.append(result) or result)

    assert not (spy(False) & spy(True))(notice())
    assert (spy(True) | spy(False))(notice())
    assert calls == [False, True]
