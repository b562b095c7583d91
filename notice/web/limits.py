"""Request body limits of every notice endpoint (``NOTICE_MAX_REQUEST``).

One ``before_request`` hook on both blueprints answers a larger body with 413
``{"error": "too_large", ...}`` before any view reads it. The app's own
``MAX_CONTENT_LENGTH`` is left alone: the host app's other routes may take uploads.
"""

from __future__ import annotations

from io import BytesIO
from typing import IO

from flask import Response, request

from ..state import state_of
from .blueprints import api_bp, inbox_bp
from .errors import json_error

_CHUNK = 64 * 1024


def too_large(limit: int) -> Response:
    """The 413 of a body over ``limit`` bytes."""
    return json_error(
        413,
        "too_large",
        f"the request body is over {limit} bytes (NOTICE_MAX_REQUEST)",
        limit=limit,
    )


def _read_at_most(stream: IO[bytes], size: int) -> bytes:
    """Up to ``size`` bytes; a socket's ``read(n)`` may return fewer before the end."""
    parts: list[bytes] = []
    left = size
    while left > 0:
        part = stream.read(min(left, _CHUNK))
        if not part:
            break
        parts.append(part)
        left -= len(part)
    return b"".join(parts)


def limit_body() -> Response | None:
    """Refuse a body over ``NOTICE_MAX_REQUEST`` bytes with 413 (a ``before_request``)."""
    limit = state_of().settings.max_request
    length = request.content_length
    if length is not None:
        return too_large(limit) if length > limit else None
    environ = request.environ
    # no length: werkzeug reads a body only from a server that ends the stream itself
    # (chunked); a hook of the app that already took the stream leaves nothing to bound
    if not environ.get("wsgi.input_terminated") or "stream" in request.__dict__:
        return None
    body = _read_at_most(environ["wsgi.input"], limit + 1)
    if len(body) > limit:
        return too_large(limit)
    # the views read the body we buffered, now of a known length
    environ["wsgi.input"] = BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    environ.pop("HTTP_TRANSFER_ENCODING", None)
    return None


inbox_bp.before_request(limit_body)
api_bp.before_request(limit_body)
