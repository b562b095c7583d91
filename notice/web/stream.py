"""The live stream: ``GET <prefix>/stream``, Server-Sent Events for the logged-in user.

Events::

    event: count          data: {"unread": 3, "unseen": 1, ...}
                                                          on connect and on every change
    id: 42
    event: notice         data: <Notice.to_dict()> + link   each new notice, its
                                                            references named

    event: closed         data: {"reason": "superseded"}  last event: a newer stream
                                                            of the user replaced this one

The ``id:`` is the newest notice id sent, so a reconnecting ``EventSource`` sends it
back as ``Last-Event-ID`` and the notices it missed are replayed from the database
(``?last_event_id=`` does the same for a fresh page). Comments (``: ping``) every
``NOTICE_SSE_HEARTBEAT`` seconds keep proxies from closing an idle stream and make a
write fail soon after the client has gone, which ends the generator and its
subscription.

Limits per process: a user opening more than ``NOTICE_STREAM_MAX_PER_USER`` streams
closes their oldest (``event: closed``; notice.js then polls instead of reconnecting).
The oldest rather than the new one, because the newest is the tab the user is looking
at, and the oldest is often a reloaded page whose connection is not yet noticed as
gone. Past ``NOTICE_STREAM_MAX`` streams in the process a new one gets 429 with
``Retry-After``.

The response generator holds no app context and no database connection while it
waits: the database is read in short app contexts only when a replay is needed.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

from flask import Flask, Response, current_app, request

from ..brokers.base import BrokerError, Subscription, TooManyStreams
from ..links import with_link
from ..state import state_of
from ..store import NoticeQuery
from . import inbox_reads
from .auth import require_api_user
from .blueprints import inbox_bp
from .errors import json_error
from .inbox_params import parse_id

logger = logging.getLogger("notice")


def sse(event: str | None, data: Any, event_id: int | None = None) -> str:
    """One Server-Sent Event; JSON data on a single line (no raw newlines to split)."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    kind = f"event: {event}\n" if event else ""
    return f"{head}{kind}data: {json.dumps(data, separators=(',', ':'))}\n\n"


def _last_event_id() -> int | None:
    raw = request.headers.get("Last-Event-ID") or request.args.get("last_event_id", "")
    if not raw.strip():
        return None
    return parse_id("Last-Event-ID", raw.strip(), low=0)


def _missed(app: Flask, user_id: Any, after_id: int) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Notices newer than ``after_id`` (oldest first, at most NOTICE_SSE_REPLAY) and the
    unread and unseen counts, read in a short app context that gives its connection back."""
    state = state_of(app)
    with app.app_context():
        try:
            newest = inbox_reads.notices(user_id, NoticeQuery(limit=state.settings.sse_replay))
            rows = state.notice_dicts([n for n in reversed(newest) if n.id > after_id])
            counts = inbox_reads.counts(user_id)
        finally:
            state.db.session.remove()
    return rows, counts


def _load_one(app: Flask, user_id: Any, notice_id: int) -> dict[str, Any] | None:
    with app.app_context():
        try:
            notice = inbox_reads.get(user_id, notice_id)
            return None if notice is None else state_of(app).notice_dicts([notice])[0]
        finally:
            state_of(app).db.session.remove()


@inbox_bp.get("/stream")
def stream() -> Response:
    user_id = require_api_user()
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    state = state_of(app)
    broker = state.broker
    if broker is None:
        return Response("the live stream is off (NOTICE_STREAM)\n", 404, mimetype="text/plain")
    last_id = _last_event_id()
    # subscribe before reading the database, so a notice written in between is not lost
    try:
        sub = broker.subscribe(user_id)
    except BrokerError:
        logger.warning("the live stream's broker is unreachable", exc_info=True)
        # notice.js falls back to polling the count when the stream is refused
        response = json_error(503, "stream_unavailable", "try again later")
        response.headers["Retry-After"] = "30"
        return response
    except TooManyStreams as exc:
        response = json_error(429, "too_many_streams", str(exc))
        # by then streams of gone clients have been noticed (heartbeats) and dropped
        response.headers["Retry-After"] = str(state.settings.poll_interval)
        return response
    try:
        if last_id is not None:
            replay, counts = _missed(app, user_id, last_id)
        else:
            replay, counts = [], inbox_reads.counts(user_id)
        state.db.session.remove()
    except BaseException:
        sub.close()
        raise
    response = Response(
        _events(app, sub, user_id, replay, counts, last_id),
        mimetype="text/event-stream",
    )
    response.headers["Cache-Control"] = "no-cache"
    # nginx would buffer the stream otherwise
    response.headers["X-Accel-Buffering"] = "no"
    return response


def _events(
    app: Flask,
    sub: Subscription,
    user_id: Any,
    replay: list[dict[str, Any]],
    counts: dict[str, int],
    last_id: int | None,
) -> Iterator[str]:
    settings = state_of(app).settings
    heartbeat = settings.sse_heartbeat
    newest = last_id or 0
    sent: set[tuple[int, Any]] = set()

    def notices(rows: list[dict[str, Any]]) -> Iterator[str]:
        nonlocal newest
        for row in rows:
            # a replayed notice and its live event are one; a fold into a group
            # (notice.grouping) is a new version of the item, sent again
            version = (row["id"], row.get("group_count"))
            if version in sent:
                continue
            sent.add(version)
            # the id only grows, so Last-Event-ID is always the newest notice seen
            newest = max(newest, row["id"])
            yield sse("notice", with_link(row, settings.link_origins), newest)

    try:
        yield f"retry: {settings.sse_retry}\n\n"
        yield from notices(replay)
        yield sse("count", counts)
        while True:
            message = sub.get(timeout=heartbeat)
            if message is None:
                yield ": ping\n\n"
                continue
            event = message.get("event")
            if event == "notice":
                data, ref = message.get("data"), message.get("id")
                if data is None and isinstance(ref, int):
                    # sent by reference (too large for the broker)
                    data = _load_one(app, user_id, ref)
                if isinstance(data, dict):
                    yield from notices([data])
            elif event == "count":
                yield sse("count", message.get("data", {}))
            elif event == "closed":
                # a newer stream of this user took this one's place: tell the client
                # not to reconnect (that would close the next oldest, in a loop)
                yield sse("closed", {"reason": "superseded"})
                return
            elif event == "resync":
                rows, fresh = _missed(app, user_id, newest)
                yield from notices(rows)
                yield sse("count", fresh)
            if len(sent) > 10_000:
                sent.clear()
    finally:
        sub.close()
