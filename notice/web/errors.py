"""How the web layer answers errors: JSON ``{"error": code, "message": ..., ...}``.

:func:`json_error` builds every JSON error response of :mod:`notice.web`. Exceptions
raised under ``inbox_bp`` are rendered here too: as JSON for JSON clients and under
``<prefix>/api/``, else left to the app's usual error page. Under ``api_bp`` (a JSON
API) every HTTP error is JSON (a :class:`BadParameter`, a missing CSRF token...).

Input the checks of :mod:`notice.web.inbox_params` let through and the database still
refuses (``DataError``: a value out of range or not storable; ``IntegrityError``: a
reference to a row that does not exist, or a duplicate) is a 400 or 409, never a 500:
the transaction is rolled back and the error logged, since it may also be a bug.

A library table that does not exist (:class:`notice.errors.TablesMissing`: the
migrations were not run) is a 503 naming the fix, as JSON or as a short page, not a
bare 500.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Response, jsonify, request
from flask.typing import ResponseReturnValue
from markupsafe import escape
from sqlalchemy.exc import DataError, IntegrityError
from werkzeug.exceptions import BadRequest, Conflict, HTTPException

from ..errors import NoticeError, TablesMissing
from ..state import state_of
from .blueprints import api_bp, inbox_bp

logger = logging.getLogger("notice")


class BadParameter(NoticeError, BadRequest):
    """A query parameter or body field is missing or malformed (400).

    Rendered as ``{"error": "bad_parameter", "parameter": ..., "message": ...}``.
    """

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(f"{parameter}: {message}")
        self.parameter = parameter
        self.message = message


def json_error(status: int, code: str, message: str | None, **fields: Any) -> Response:
    """``{"error": code, "message": message, **fields}`` with ``status``."""
    response = jsonify(error=code, message=message, **fields)
    response.status_code = status
    return response


def http_error_json(exc: HTTPException) -> Response:
    """``exc`` as a JSON error: ``bad_parameter`` naming the parameter, ``csrf``, or the
    HTTP status name (``not_found``...)."""
    status = exc.code or 500
    if isinstance(exc, BadParameter):
        return json_error(status, "bad_parameter", exc.message, parameter=exc.parameter)
    if type(exc).__name__ == "CSRFError":  # ours or Flask-WTF's
        return json_error(status, "csrf", exc.description)
    name = (exc.name or "error").lower().replace(" ", "_")
    return json_error(status, name, exc.description)


def wants_json() -> bool:
    """Whether the client asked for JSON (``.json`` path, ``Accept`` or a JSON body)."""
    best = request.accept_mimetypes.best_match(["application/json", "text/html"])
    return request.path.endswith(".json") or best == "application/json" or request.is_json


@inbox_bp.errorhandler(HTTPException)
def _inbox_error(exc: HTTPException) -> ResponseReturnValue:
    if exc.response is not None:
        return exc.response
    api_root = state_of().settings.url_prefix.rstrip("/") + "/api/"
    if not (wants_json() or request.path.startswith(api_root)):
        return exc
    return http_error_json(exc)


@api_bp.errorhandler(HTTPException)
def _api_error(exc: HTTPException) -> ResponseReturnValue:
    if exc.response is not None:
        return exc.response
    return http_error_json(exc)


@inbox_bp.errorhandler(DataError)
@inbox_bp.errorhandler(IntegrityError)
def _inbox_refused(exc: DataError | IntegrityError) -> ResponseReturnValue:
    return _inbox_error(_refused(exc))


@api_bp.errorhandler(DataError)
@api_bp.errorhandler(IntegrityError)
def _api_refused(exc: DataError | IntegrityError) -> ResponseReturnValue:
    return http_error_json(_refused(exc))


def _refused(exc: DataError | IntegrityError) -> HTTPException:
    state_of().db.session.rollback()
    logger.warning("the database refused a request's input: %s", exc.orig)
    if isinstance(exc, IntegrityError):
        return Conflict("the database refused this change; it may refer to a missing row")
    return BadRequest("the database refused a value of this request")


@inbox_bp.errorhandler(TablesMissing)
def _inbox_tables_missing(exc: TablesMissing) -> ResponseReturnValue:
    _tables_missing(exc)
    api_root = state_of().settings.url_prefix.rstrip("/") + "/api/"
    if wants_json() or request.path.startswith(api_root):
        return json_error(503, "tables_missing", str(exc), table=exc.table)
    page = (
        "<!doctype html><title>Notifications unavailable</title>"
        "<h1>Notifications are unavailable</h1>"
        f"<p>{escape(str(exc))}</p>"
    )
    return Response(page, status=503, mimetype="text/html")


@api_bp.errorhandler(TablesMissing)
def _api_tables_missing(exc: TablesMissing) -> ResponseReturnValue:
    _tables_missing(exc)
    return json_error(503, "tables_missing", str(exc), table=exc.table)


def _tables_missing(exc: TablesMissing) -> None:
    # PostgreSQL aborted the transaction: roll back so the session is usable again
    state_of().db.session.rollback()
    logger.error("%s", exc)
