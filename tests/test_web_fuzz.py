"""Fuzzing the web layer: every route of the inbox blueprint and the service API (read
from ``app.url_map``, so new routes are covered) gets generated bad input as an
anonymous caller, a logged-in user and a service; no answer is a 5xx, and none shows
another user's notices. On SQLite and PostgreSQL."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from notice import notice_event
from tests.support.pushapp import login, push_config, service_headers, use_session_login, vapid_keys
from tests.support.pushservice import PushService

#: subjects of user 1's and user 2's notices; user 1 must never see user 2's
MINE, THEIRS = "MARKER-OF-USER-ONE-7a1c", "MARKER-OF-USER-TWO-93fe"
#: never fuzzed: the live stream of a logged-in user does not end
SKIP = {"notice.static", "notice.stream"}

_RULE_ARG = re.compile(r"<(?:(\w+)(?:\(([^)]*)\))?:)?(\w+)>")


@pytest.fixture(scope="module")
def push_service() -> Iterator[PushService]:
    with PushService(vapid_keys().public_key) as svc:
        yield svc


@pytest.fixture
def web(app_factory: Any, push_service: PushService) -> Any:
    app = app_factory(**push_config(push_service))
    use_session_login(app)
    with app.app_context():
        notice_event(1, subject=MINE, content="one")
        notice_event(2, subject=THEIRS, content="two")
        app.notices.topics.create("t")
        app.notices.topics.subscribe("t", user_id=1)
    return app


def _routes(app: Any) -> list[tuple[str, str]]:
    """``(method, rule)`` of every route of notice's blueprints."""
    found = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint in SKIP or not rule.endpoint.startswith(("notice.", "notice_api.")):
            continue
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            found.append((method, rule.rule))
    return found


# --- what is sent -------------------------------------------------------------------

HUGE = st.sampled_from(
    [2**63, 2**63 - 1, 2**64, 10**20, 10**30, -(2**63) - 1, -1, 0, 2**31, 10**400]
)
NUMBER_TEXT = st.one_of(
    HUGE.map(str),
    st.sampled_from(["1e20", "1e30", "-0", "NaN", "Infinity", "0x10", "1_000", " 5 ", "١٢"]),
    st.integers().map(str),
)
#: ISO datetimes at any offset, the year 1 and 9999 included
DATETIME_TEXT = st.builds(
    lambda when, minutes: when.replace(tzinfo=timezone(timedelta(minutes=minutes))).isoformat(),
    st.one_of(st.sampled_from([datetime.min, datetime.max]), st.datetimes()),
    st.one_of(st.sampled_from([-1439, 1439]), st.integers(min_value=-1439, max_value=1439)),
)
TEXT = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["\x00", "a\x00b", "\u202e", "\ud7ff\uffff", "%00", "😀" * 40, "x" * 5000]),
    NUMBER_TEXT,
    DATETIME_TEXT,
)
PLAUSIBLE = st.sampled_from(
    ["", "1", "10", "true", "false", "all", "System", "t", "2026-01-01T00:00:00Z", "2026-01-01"]
)
PARAMS = [
    "q", "read", "type", "before", "after", "before_id", "limit", "topic", "start",
    "end", "last_event_id", "id", "ids", "all", "action", "next", "saved",
]  # fmt: skip

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    HUGE,
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    TEXT,
)
FIELDS = [
    "ids", "all", "topic", "token", "user_id", "exclude", "notification", "description",
    "preferences", "digest", "endpoint", "old_endpoint", "old_auth", "subscription",
    "title", "body", "url", "icon", "type", "data", "ttl", "urgency", "keys",
]  # fmt: skip


def _values() -> st.SearchStrategy[Any]:
    return st.recursive(
        SCALARS,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4),
            st.dictionaries(st.one_of(st.sampled_from(FIELDS), TEXT), inner, max_size=4),
        ),
        max_leaves=12,
    )


def _deep(depth: int) -> str:
    return '{"ids": ' + "[" * depth + "]" * depth + "}"


BODIES = st.one_of(
    st.none(),
    st.dictionaries(st.sampled_from(FIELDS), _values(), max_size=5).map(
        lambda v: json.dumps(v, allow_nan=True)
    ),
    _values().map(lambda v: json.dumps(v, allow_nan=True)),
    st.sampled_from([40, 1000, 100_000]).map(_deep),
    st.sampled_from(["[" * 50_000, '{"a":', "\x00", '"\\u0000"', "NaN", '{"ids": [1e999]}']),
)


@st.composite
def request_to(draw: st.DrawFn, method: str, rule: str) -> dict[str, Any]:
    """A request to ``rule`` with generated path values, query string and body."""

    def value(match: re.Match[str]) -> str:
        converter, options = match.group(1), match.group(2)
        if converter == "any" and options:
            choices = [c.strip() for c in options.split(",")]
            return draw(st.one_of(st.sampled_from(choices), TEXT.map(quote)))
        if converter == "int":
            return draw(st.one_of(HUGE.map(str), st.integers(min_value=0).map(str)))
        return quote(draw(TEXT), safe="")

    path = _RULE_ARG.sub(value, rule)
    # mostly the names the views read with plausible values, so that one bad value
    # among good ones gets past the first check and reaches the deeper parsers
    value_text = st.one_of(PLAUSIBLE, PLAUSIBLE, TEXT)
    query = list(draw(st.dictionaries(st.sampled_from(PARAMS), value_text, max_size=5)).items())
    query += draw(st.lists(st.tuples(TEXT, TEXT), max_size=1))
    body = draw(BODIES)
    return {
        "method": method,
        "path": path + ("?" + urlencode(query) if query else ""),
        "data": body,
        "content_type": "application/json" if body is not None else None,
    }


# --- the test -----------------------------------------------------------------------


def _check(app: Any, role: str, data: st.DataObject) -> None:
    """One request to every route as ``role``."""
    client = app.test_client()
    headers = {"Accept": data.draw(st.sampled_from(["application/json", "text/html", "*/*"]))}
    if role == "user":
        headers.update(login(client, 1))
    elif role == "service":
        headers.update(service_headers())
    for method, rule in _routes(app):
        req = data.draw(request_to(method, rule))
        resp = client.open(
            req["path"],
            method=req["method"],
            data=req["data"],
            content_type=req["content_type"],
            headers=headers,
        )
        text = resp.get_data(as_text=True)
        assert resp.status_code < 500, (req, resp.status_code, text[:500])
        assert THEIRS not in text, req
        if role != "user":
            assert MINE not in text, req


FUZZ = settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.mark.parametrize("role", ["anonymous", "user", "service"])
@FUZZ
@given(data=st.data())
def test_bad_input_is_never_a_5xx_nor_a_leak(web, role, data):
    _check(web, role, data)


def test_every_route_is_fuzzed(web):
    endpoints = {r.endpoint for r in web.url_map.iter_rules()}
    rules = {rule for _, rule in _routes(web)}
    # the inbox JSON API and the service API are all among the fuzzed routes
    assert "/notices/api/notices/<int:notice_id>" in rules
    assert "/api/v1/topics/subscribe" in rules
    assert "notice.stream" in endpoints and "/notices/stream" not in rules
