"""The OpenAPI 3.1 description of the inbox JSON API and the service API, served at
``<NOTICE_URL_PREFIX>/openapi.json`` (``NOTICE_OPENAPI``).

The document is built from code for each app rather than shipped as a file: its paths
carry the app's two prefixes, and its constraints are the very constants the views
check with (:data:`~notice.web.inbox_params.ID_MAX`, ``NOTICE_PAGE_MAX``, the
registered notice types, :data:`~notice.web.service_api.MAX_LIST`...), so a limit
changed in one place cannot leave the contract behind. ``tests/test_openapi.py``
validates it, checks that every JSON route of ``app.url_map`` is in it, and runs
Schemathesis against the live app.

It is public, like any API's documentation: it lists what the views already answer to
anyone, and holds no data. Set ``NOTICE_OPENAPI = False`` not to serve it.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, current_app, jsonify
from werkzeug.exceptions import NotFound

from ..mobile.models import MAX_APP, MAX_TOKEN, PLATFORMS
from ..preferences.settings import DIGEST_FREQUENCIES, EMAIL_MODES
from ..push.config import MAX_TTL, URGENCIES
from ..references import CATEGORIES, MAX_LABEL, MAX_REF, METHODS
from ..state import state_of
from ..types import NoticeType
from .auth import HEADER
from .blueprints import inbox_bp
from .inbox_api import ACTIONS
from .inbox_params import _FALSE, _TRUE, ARCHIVED, ID_MAX, MAX_IDS, MAX_TEXT
from .service_api import MAX_LIST

#: endpoints of the blueprints that are not JSON, with why they are left out
NOT_JSON = {
    "notice.inbox": "the HTML inbox page",
    "notice.inbox_mark": "the inbox page's form action (303 redirect)",
    "notice.preferences_page": "the HTML preferences page",
    "notice.preferences_form": "the preferences page's form action (303 redirect)",
    "notice.unsubscribe": "the HTML one-click unsubscribe page (RFC 8058)",
    "notice.stream": "the text/event-stream live stream",
    "notice.static": "static files",
    "notice.openapi": "this document",
}

_REF = "#/components/schemas/"
#: OpenAPI security requirements: any one of the listed dicts suffices
Security = list[dict[str, list[str]]]
_SESSION: Security = [{"session": []}]
_SESSION_CSRF: Security = [{"session": [], "csrf": []}]
_SERVICE: Security = [{"service": []}]


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _REF + name}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return _json(_ref("Error"), description)


def _responses(ok: dict[str, Any], **errors: str | dict[str, Any]) -> dict[str, Any]:
    """``ok`` (status -> response) plus errors (a description: a JSON error); 400 (a NUL
    in a query parameter, bad input) and 413 (``NOTICE_MAX_REQUEST``) may answer any
    call."""
    out: dict[str, Any] = dict(ok)
    errors.setdefault("400", "bad input: a parameter or body field is wrong (names it)")
    errors.setdefault("413", "the body is over NOTICE_MAX_REQUEST bytes (too_large)")
    for status, text in errors.items():
        out[status] = _error(text) if isinstance(text, str) else text
    return out


#: 404 of a route with ``{notice_id}``: JSON from notice, or, for a path value that is
#: no whole number in range (``-1``, ``abc``), the app's own 404 page: such a path
#: matches none of notice's routes, so werkzeug's routing answers before notice can
_NO_SUCH_NOTICE = {
    "description": "no such notice, or someone else's; a notice_id that is no id at all "
    "gets the app's own 404 page",
    "content": {
        "application/json": {"schema": _ref("Error")},
        "text/html": {"schema": {"type": "string"}},
    },
}


def _body(schema: dict[str, Any], *, required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {"application/json": {"schema": schema}}}


def _id(minimum: int = 1) -> dict[str, Any]:
    return {"type": "integer", "minimum": minimum, "maximum": ID_MAX}


def _path_id(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": _id(0)}


def _query(name: str, schema: dict[str, Any], description: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "in": "query", "schema": schema, "description": description, **extra}


_NO_NUL = "^[^\\x00]*$"
#: the unseen count beside every unread count: unread notices not yet listed
_UNSEEN = {
    "type": "integer",
    "minimum": 0,
    "description": "unread notices not yet seen (the inbox was not opened since)",
}


def _schemas(page_max: int, max_actions: int) -> dict[str, Any]:
    text = {"type": "string"}
    optional_text = {"type": ["string", "null"]}
    clock = {"type": "string", "pattern": "^([01][0-9]|2[0-3]):[0-5][0-9]$"}
    quiet_hours = {
        "description": "local quiet window in an IANA time zone (end < start crosses "
        "midnight); null: none",
        "type": ["object", "null"],
        "additionalProperties": False,
        "required": ["timezone", "start", "end"],
        "properties": {
            "timezone": {"type": "string", "maxLength": 64, "examples": ["Europe/Berlin"]},
            "start": clock,
            "end": clock,
        },
    }
    when = {"type": ["string", "null"], "format": "date-time"}
    subscription = {
        "type": "object",
        "required": ["endpoint", "keys"],
        "properties": {
            "endpoint": {"type": "string", "format": "uri", "maxLength": 2048},
            "keys": {
                "type": "object",
                "required": ["p256dh", "auth"],
                "properties": {"p256dh": text, "auth": text},
            },
            "expirationTime": {"type": ["number", "null"]},
        },
    }
    return {
        "Error": {
            "type": "object",
            "description": "Every error of the API (notice.web.errors.json_error).",
            "required": ["error", "message"],
            "properties": {
                "error": {
                    "type": "string",
                    "description": "a code: bad_parameter, csrf, unauthorized, not_found...",
                },
                "message": optional_text,
                "parameter": {"type": "string", "description": "the parameter at fault"},
                "limit": {"type": "integer", "description": "too_large: the byte limit"},
                "topic": {"type": "string"},
            },
        },
        "Notice": {
            "type": "object",
            "required": ["id", "user_id", "notice_type", "subject", "read_status", "link"],
            "properties": {
                "id": _id(),
                "user_id": {},
                "sender_id": {},
                "notice_type": {"type": "string", "enum": list(NoticeType.known())},
                "subject": text,
                "content": optional_text,
                "url": optional_text,
                "link": {
                    "type": ["string", "null"],
                    "description": "url when a browser may follow it, else null",
                },
                "data": {"type": ["object", "null"]},
                "read_status": {"type": "string", "enum": ["Read", "Unread"]},
                "send_status": optional_text,
                "create_at": when,
                "update_at": when,
                "read_at": when,
                "expires_at": when,
                "seen_at": when,
                "archived_at": when,
                "category": {"type": "string", "enum": list(CATEGORIES)},
                "actor": {"oneOf": [_ref("Reference"), {"type": "null"}]},
                "target": {"oneOf": [_ref("Reference"), {"type": "null"}]},
                "action_object": {"oneOf": [_ref("Reference"), {"type": "null"}]},
                "actions": {"type": "array", "items": _ref("Action"), "maxItems": max_actions},
                "group_count": {
                    "type": ["integer", "null"],
                    "minimum": 1,
                    "description": "notices folded into this one under a group_key",
                },
                "group_actors": {
                    "type": ["array", "null"],
                    "items": {"type": "string"},
                    "description": "the group's actors, newest first",
                },
            },
        },
        "Reference": {
            "type": "object",
            "description": "a row of the app the notice is about; name and url from the "
            "app's reference resolver (null: unknown)",
            "required": ["type", "id", "name", "url"],
            "properties": {
                "type": {"type": "string", "maxLength": MAX_REF},
                "id": {"type": "string", "maxLength": MAX_REF},
                "name": optional_text,
                "url": {"type": ["string", "null"], "description": "a safe link, or null"},
            },
        },
        "Action": {
            "type": "object",
            "description": "an action button: a link (GET) or a form (POST, with the "
            "CSRF token of the app's own forms)",
            "required": ["label", "url", "method"],
            "properties": {
                "label": {"type": "string", "maxLength": MAX_LABEL},
                "url": text,
                "method": {"type": "string", "enum": list(METHODS)},
            },
        },
        "NoticePage": {
            "type": "object",
            "required": ["notices", "next_before_id", "unread"],
            "properties": {
                "notices": {"type": "array", "items": _ref("Notice"), "maxItems": page_max},
                "next_before_id": {
                    "type": ["integer", "null"],
                    "description": "before_id of the next, older page; null on the last",
                },
                "unread": {"type": "integer", "minimum": 0},
            },
        },
        "Marked": {
            "type": "object",
            "required": ["notice", "unread", "unseen"],
            "properties": {
                "notice": _ref("Notice"),
                "unread": {"type": "integer", "minimum": 0},
                "unseen": _UNSEEN,
            },
        },
        "MarkMany": {
            "type": "object",
            "description": "ids to mark, or all: true (not both)",
            "properties": {
                "ids": {"type": "array", "items": _id(), "minItems": 1, "maxItems": MAX_IDS},
                "all": {"const": True},
            },
            "oneOf": [{"required": ["ids"]}, {"required": ["all"]}],
        },
        "PushSubscription": subscription,
        "Device": {
            "type": "object",
            "required": ["id", "endpoint"],
            "properties": {"id": _id(), "endpoint": text, "created": {"type": "boolean"}},
        },
        "MobileDevice": {
            "type": "object",
            "required": ["id", "platform", "token", "app_id", "created_at", "last_used_at"],
            "properties": {
                "id": _id(),
                "platform": {"type": "string", "enum": list(PLATFORMS)},
                "token": text,
                "app_id": {"type": ["string", "null"]},
                "created_at": {"type": "string", "format": "date-time"},
                "last_used_at": {"type": ["string", "null"], "format": "date-time"},
            },
        },
        "MobileDeviceRegistration": {
            "type": "object",
            "required": ["platform", "token"],
            "properties": {
                "platform": {"type": "string", "enum": list(PLATFORMS)},
                "token": {"type": "string", "minLength": 1, "maxLength": MAX_TOKEN},
                "app_id": {"type": ["string", "null"], "maxLength": MAX_APP},
            },
        },
        "Preferences": {
            "type": "object",
            "required": ["preferences", "types", "channels", "required", "digest"],
            "properties": {
                "preferences": {
                    "type": "object",
                    "additionalProperties": {
                        "type": "object",
                        "additionalProperties": {"type": "boolean"},
                    },
                },
                "types": {"type": "array", "items": text},
                "channels": {"type": "array", "items": text},
                "required": {"type": "array", "items": text},
                "digest": {"type": "string", "enum": list(DIGEST_FREQUENCIES)},
                "digest_frequencies": {"type": "array", "items": text},
                "quiet_hours": quiet_hours,
                "email_modes": {
                    "type": "object",
                    "description": "{type: mode}: how each type reaches the user by email",
                    "additionalProperties": {"type": "string", "enum": list(EMAIL_MODES)},
                },
                "email_mode_choices": {"type": "array", "items": text},
            },
        },
        "PreferencesUpdate": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "preferences": {
                    "type": "object",
                    "description": "{type: {channel: bool}} for registered types and channels",
                    "additionalProperties": {
                        "type": "object",
                        "additionalProperties": {"type": "boolean"},
                    },
                },
                "digest": {"type": "string", "enum": list(DIGEST_FREQUENCIES)},
                "quiet_hours": quiet_hours,
                "email_modes": {
                    "type": "object",
                    "description": "{type: mode} for registered types: immediate (its own "
                    "email), daily or weekly (in that digest), off",
                    "additionalProperties": {"type": "string", "enum": list(EMAIL_MODES)},
                },
            },
        },
        "Topic": {
            "type": "object",
            "required": ["topic", "description", "created_at"],
            "properties": {"topic": text, "description": optional_text, "created_at": text},
        },
        "Notification": {
            "description": "what to send: a title, or an object",
            "oneOf": [
                {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "\\S"},
                {
                    "type": "object",
                    "required": ["title"],
                    "properties": {
                        "title": {"type": "string", "minLength": 1, "maxLength": 255},
                        "body": text,
                        "url": {"type": ["string", "null"], "maxLength": 2048},
                        "icon": {"type": ["string", "null"], "maxLength": 2048},
                        "type": {"type": "string", "enum": list(NoticeType.known())},
                        "data": {"type": ["object", "null"]},
                        "ttl": {"type": ["integer", "null"], "minimum": 0, "maximum": MAX_TTL},
                        "urgency": {"type": ["string", "null"], "enum": [*URGENCIES, None]},
                        "topic": {"type": ["string", "null"], "pattern": "^[A-Za-z0-9_-]{1,32}$"},
                    },
                },
            ],
        },
        "TopicSubscription": {
            "type": "object",
            "required": ["topic"],
            "properties": {
                "topic": {"type": "string", "minLength": 1},
                "token": {
                    "description": "the device's PushSubscription.toJSON(), or its endpoint",
                    "oneOf": [subscription, {"type": "string", "minLength": 1}],
                },
                "user_id": {"description": "service token only: subscribe this user"},
            },
        },
        "Message": {
            "type": "object",
            "required": ["id", "topic", "type", "title", "created_at"],
            "properties": {
                "id": _id(),
                "topic": text,
                "type": text,
                "title": text,
                "body": optional_text,
                "url": optional_text,
                "data": {"type": ["object", "null"]},
                "sender_id": {},
                "recipients": {"type": ["integer", "null"]},
                "created_at": text,
            },
        },
    }


#: ``actor=type:id`` / ``target=type:id`` (the id may hold colons)
_REF_PATTERN = f"^[^:\\x00]{{1,{MAX_REF}}}:[^\\x00]{{1,{MAX_REF}}}$"


def _about() -> list[dict[str, Any]]:
    """The actor, target and category filters of the list and the unread count."""
    return [
        _query(
            "actor",
            {"type": "string", "pattern": _REF_PATTERN},
            "type:id of the actor, e.g. user:7",
        ),
        _query(
            "target",
            {"type": "string", "pattern": _REF_PATTERN},
            "type:id of the target or action object, e.g. post:12",
        ),
        _query(
            "category",
            {"type": "array", "items": {"type": "string", "enum": list(CATEGORIES)}},
            "categories (repeat, or comma-separated)",
            style="form",
            explode=True,
        ),
    ]


def _inbox_paths(prefix: str, page_max: int) -> dict[str, Any]:
    read_values = sorted({*_TRUE, *_FALSE, "all", ""})
    listing = [
        *_about(),
        _query("read", {"type": "string", "enum": read_values}, "read or unread only"),
        _query(
            "archived",
            {"type": "string", "enum": sorted(ARCHIVED)},
            "only: archived notices only; include: both (default: none)",
        ),
        _query(
            "type",
            {"type": "array", "items": {"type": "string", "enum": list(NoticeType.known())}},
            "notice types (repeat, or comma-separated)",
            style="form",
            explode=True,
        ),
        _query(
            "q",
            {"type": "string", "maxLength": MAX_TEXT, "pattern": _NO_NUL},
            "text in subject or content",
        ),
        _query("before", {"type": "string", "format": "date-time"}, "created before (ISO 8601)"),
        _query("after", {"type": "string", "format": "date-time"}, "created after; < before"),
        _query("before_id", _id(), "cursor: next_before_id of the previous page"),
        _query("limit", {"type": "integer", "minimum": 1, "maximum": page_max}, "page size"),
    ]
    login = {"401": "nobody is logged in (unauthorized)"}
    login_page = {
        **login,
        "302": "an HTML client is sent to the app's login view, when it has one",
    }
    paths: dict[str, Any] = {
        "/api/notices": {
            "get": {
                "operationId": "listNotices",
                "summary": "The current user's notices, newest first",
                "security": _SESSION,
                "parameters": listing,
                "responses": _responses({"200": _json(_ref("NoticePage"), "a page")}, **login),
            }
        },
        "/api/notices/{notice_id}": {
            "parameters": [_path_id("notice_id")],
            "get": {
                "operationId": "getNotice",
                "summary": "One of the user's notices",
                "security": _SESSION,
                "responses": _responses(
                    {
                        "200": _json(
                            {
                                "type": "object",
                                "required": ["notice"],
                                "properties": {"notice": _ref("Notice")},
                            },
                            "the notice",
                        )
                    },
                    **login,
                    **{"404": _NO_SUCH_NOTICE},
                ),
            },
            "delete": {
                "operationId": "deleteNotice",
                "summary": "Delete one of the user's notices",
                "security": _SESSION_CSRF,
                "responses": _responses(
                    {
                        "200": _json(
                            {
                                "type": "object",
                                "required": ["deleted", "unread"],
                                "properties": {"deleted": _id(), "unread": {"type": "integer"}},
                            },
                            "deleted",
                        )
                    },
                    **login,
                    **{"404": _NO_SUCH_NOTICE},
                ),
            },
        },
        "/api/unread-count": {
            "get": {
                "operationId": "unreadCount",
                "summary": "The unread and unseen counts of the notices matching the filters",
                "security": _SESSION,
                "parameters": _about(),
                "responses": _responses(
                    {
                        "200": _json(
                            {
                                "type": "object",
                                "required": ["unread", "unseen"],
                                "properties": {
                                    "unread": {"type": "integer", "minimum": 0},
                                    "unseen": _UNSEEN,
                                },
                            },
                            "the counts",
                        )
                    },
                    **login,
                ),
            }
        },
    }
    for action in ACTIONS:
        paths[f"/api/notices/{{notice_id}}/{action}"] = {
            "parameters": [_path_id("notice_id")],
            "post": {
                "operationId": f"markOne{action.title()}",
                "summary": f"One notice: {action}",
                "security": _SESSION_CSRF,
                "responses": _responses(
                    {"200": _json(_ref("Marked"), "the notice and the new count")},
                    **login,
                    **{"404": _NO_SUCH_NOTICE},
                ),
            },
        }
        paths[f"/api/notices/{action}"] = {
            "post": {
                "operationId": f"markMany{action.title()}",
                "summary": f"Notices: {action} some ids, or all (archive: all read)",
                "security": _SESSION_CSRF,
                "requestBody": _body(_ref("MarkMany")),
                "responses": _responses(
                    {
                        "200": _json(
                            {
                                "type": "object",
                                "required": ["changed", "unread", "unseen"],
                                "properties": {
                                    "changed": {"type": "integer", "minimum": 0},
                                    "unread": {"type": "integer", "minimum": 0},
                                    "unseen": _UNSEEN,
                                },
                            },
                            "how many changed",
                        )
                    },
                    **login,
                ),
            }
        }
    key = {
        "type": "object",
        "required": ["public_key"],
        "properties": {"public_key": {"type": "string"}},
    }
    paths["/push/key"] = {
        "get": {
            "operationId": "pushKey",
            "summary": "The VAPID public key for pushManager.subscribe",
            "security": [],
            "responses": _responses(
                {"200": _json(key, "the key")}, **{"404": "Web Push is off (push_disabled)"}
            ),
        }
    }
    devices = {
        "type": "object",
        "required": ["subscriptions"],
        "properties": {"subscriptions": {"type": "array", "items": _ref("Device")}},
    }
    paths["/push/subscriptions"] = {
        "get": {
            "operationId": "listDevices",
            "summary": "The user's push subscriptions",
            "security": _SESSION,
            "responses": _responses({"200": _json(devices, "the devices")}, **login_page),
        }
    }
    paths["/push/subscribe"] = {
        "post": {
            "operationId": "pushSubscribe",
            "summary": "Store this browser's push subscription for the user",
            "security": _SESSION_CSRF,
            "requestBody": _body(
                {
                    "oneOf": [
                        _ref("PushSubscription"),
                        {
                            "type": "object",
                            "required": ["subscription"],
                            "properties": {"subscription": _ref("PushSubscription")},
                        },
                    ]
                }
            ),
            "responses": _responses(
                {
                    "200": _json(_ref("Device"), "already known"),
                    "201": _json(_ref("Device"), "stored"),
                },
                **login_page,
            ),
        }
    }
    paths["/push/unsubscribe"] = {
        "post": {
            "operationId": "pushUnsubscribe",
            "summary": "Forget one of the user's devices",
            "security": _SESSION_CSRF,
            "requestBody": _body(
                {
                    "type": "object",
                    "required": ["endpoint"],
                    "properties": {"endpoint": {"type": "string", "minLength": 1}},
                }
            ),
            "responses": _responses(
                {
                    "200": _json(
                        {"type": "object", "properties": {"removed": {"const": True}}}, "removed"
                    )
                },
                **login_page,
                **{"404": "no such device, or someone else's"},
            ),
        }
    }
    paths["/push/resubscribe"] = {
        "post": {
            "operationId": "pushResubscribe",
            "summary": "Move a subscription to the browser's new endpoint (service worker)",
            "description": "No session or CSRF token: the old subscription's auth secret "
            "is the proof.",
            "security": [],
            "requestBody": _body(
                {
                    "type": "object",
                    "required": ["old_endpoint", "old_auth", "subscription"],
                    "properties": {
                        "old_endpoint": {"type": "string"},
                        "old_auth": {"type": "string"},
                        "subscription": _ref("PushSubscription"),
                    },
                }
            ),
            "responses": _responses(
                {"200": _json(_ref("Device"), "moved")},
                **{"404": "no such subscription, or a wrong secret"},
            ),
        }
    }
    device = {
        "type": "object",
        "required": ["device", "created"],
        "properties": {"device": _ref("MobileDevice"), "created": {"type": "boolean"}},
    }
    paths["/api/devices"] = {
        "get": {
            "operationId": "listMobileDevices",
            "summary": "The user's mobile devices (FCM and APNs), oldest first",
            "security": _SESSION,
            "responses": _responses(
                {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["devices"],
                            "properties": {
                                "devices": {"type": "array", "items": _ref("MobileDevice")}
                            },
                        },
                        "the devices",
                    )
                },
                **login,
            ),
        },
        "post": {
            "operationId": "registerMobileDevice",
            "summary": "Register this app install's push token for the user",
            "security": _SESSION_CSRF,
            "requestBody": _body(_ref("MobileDeviceRegistration")),
            "responses": _responses(
                {"200": _json(device, "already known"), "201": _json(device, "stored")},
                **login,
                **{"400": "a malformed device, or its token is another app's (bad_device)"},
            ),
        },
    }
    paths["/api/devices/{device_id}"] = {
        "parameters": [_path_id("device_id")],
        "delete": {
            "operationId": "deleteMobileDevice",
            "summary": "Forget one of the user's mobile devices",
            "security": _SESSION_CSRF,
            "responses": _responses(
                {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["removed"],
                            "properties": {"removed": _id()},
                        },
                        "removed",
                    )
                },
                **login,
                **{
                    "404": {
                        **_NO_SUCH_NOTICE,
                        "description": "no such device, or someone else's; a device_id "
                        "that is no id at all gets the app's own 404 page",
                    }
                },
            ),
        },
    }
    update = {
        "summary": "Change the user's preferences; all is checked before anything is written",
        "security": _SESSION_CSRF,
        "requestBody": _body(_ref("PreferencesUpdate")),
        "responses": _responses(
            {"200": _json(_ref("Preferences"), "the preferences now")}, **login_page
        ),
    }
    paths["/preferences.json"] = {
        "get": {
            "operationId": "getPreferences",
            "summary": "The user's channel choices per notice type, and digest frequency",
            "security": _SESSION,
            "responses": _responses(
                {"200": _json(_ref("Preferences"), "the preferences")}, **login_page
            ),
        },
        **{
            method: {"operationId": f"{method}Preferences", **update}
            for method in ("post", "put", "patch")
        },
    }
    return {prefix + path: item for path, item in paths.items()}


def _service_paths(prefix: str) -> dict[str, Any]:
    service = {"401": "no valid service token (or login, where one is accepted)"}
    either: Security = [*_SERVICE, *_SESSION_CSRF]
    either_read: Security = [*_SERVICE, *_SESSION]
    anonymous = [*either, {}]
    names = {"type": "array", "items": {"type": "string"}}
    subscription_answer = {
        "type": "object",
        "required": ["topic"],
        "properties": {
            "topic": {"type": "string"},
            "subscribed": {"type": "boolean"},
            "unsubscribed": {"type": "boolean"},
        },
    }
    paths: dict[str, Any] = {
        "/vapid/public/key": {
            "get": {
                "operationId": "vapidPublicKey",
                "summary": "The VAPID public key",
                "security": [],
                "responses": _responses(
                    {
                        "200": _json(
                            {
                                "type": "object",
                                "required": ["public_key"],
                                "properties": {"public_key": {"type": "string"}},
                            },
                            "the key",
                        )
                    },
                    **{"404": "Web Push is off (push_disabled)"},
                ),
            }
        },
        "/topics/": {
            "post": {
                "operationId": "createTopic",
                "summary": "Create a topic",
                "security": _SERVICE,
                "requestBody": _body(
                    {
                        "type": "object",
                        "required": ["topic"],
                        "properties": {
                            "topic": {"type": "string", "minLength": 1},
                            "description": {"type": ["string", "null"]},
                        },
                    }
                ),
                "responses": _responses(
                    {"201": _json(_ref("Topic"), "created")},
                    **service,
                    **{"400": "malformed, invalid or taken (bad_topic)"},
                ),
            }
        },
        "/topics/list": {
            "get": {
                "operationId": "listTopics",
                "summary": "Topic names (for a user: those the authorizer lets them join)",
                "security": either_read,
                "responses": _responses(
                    {
                        "200": _json(names, "the names"),
                        "204": {"description": "no topics"},
                    },
                    **service,
                ),
            }
        },
        "/topics/{name}": {
            "parameters": [
                {
                    "name": "name",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string", "minLength": 1, "pattern": "^[^/\\x00]+$"},
                }
            ],
            "delete": {
                "operationId": "deleteTopic",
                "summary": "Delete a topic",
                "security": _SERVICE,
                "responses": _responses(
                    {
                        "200": _json(
                            {"type": "object", "properties": {"deleted": {"type": "string"}}},
                            "deleted",
                        )
                    },
                    **service,
                    **{"400": "no such topic (unknown_topic)"},
                ),
            },
        },
        "/notifications/push": {
            "post": {
                "operationId": "pushOne",
                "summary": "Push to one device (and its owner's inbox)",
                "security": _SERVICE,
                "requestBody": _body(
                    {
                        "type": "object",
                        "required": ["token", "notification"],
                        "properties": {
                            "token": {"oneOf": [_ref("PushSubscription"), {"type": "string"}]},
                            "notification": _ref("Notification"),
                        },
                    }
                ),
                "responses": _responses(
                    {
                        "200": _json(
                            {"type": "object", "properties": {"notice_id": _id()}}, "queued"
                        )
                    },
                    **service,
                ),
            }
        },
        "/notifications/publish": {
            "post": {
                "operationId": "publish",
                "summary": "Send to every subscriber of a topic",
                "security": either,
                "requestBody": _body(
                    {
                        "type": "object",
                        "required": ["topic", "notification"],
                        "properties": {
                            "topic": {"type": "string", "minLength": 1},
                            "notification": _ref("Notification"),
                            "exclude": {"description": "a user id, or a list of them"},
                        },
                    }
                ),
                "responses": _responses(
                    {
                        "200": _json(
                            {
                                "type": "object",
                                "required": ["message_id", "recipients"],
                                "properties": {
                                    "message_id": {"type": ["integer", "null"]},
                                    "recipients": {"type": "integer", "minimum": 0},
                                },
                            },
                            "published",
                        )
                    },
                    **service,
                    **{"403": "the topic authorizer refused (forbidden)"},
                ),
            }
        },
        "/notifications/list": {
            "get": {
                "operationId": "listMessages",
                "summary": "What was published to a topic, newest first",
                "security": either_read,
                "parameters": [
                    _query("topic", {"type": "string", "pattern": _NO_NUL}, "the topic"),
                    _query("start", _id(0), "offset of the newest message to list"),
                    _query("end", _id(0), f"end offset; start <= end <= start + {MAX_LIST}"),
                ],
                "responses": _responses(
                    {
                        "200": _json({"type": "array", "items": _ref("Message")}, "messages"),
                        "204": {"description": "nothing in range"},
                    },
                    **service,
                    **{"403": "the topic authorizer refused (forbidden)"},
                ),
            }
        },
    }
    for action in ("subscribe", "unsubscribe"):
        paths[f"/topics/{action}"] = {
            "post": {
                "operationId": f"topic{action.title()}",
                "summary": f"{action.title()} a user or a device to a topic",
                "description": "A service token, a logged-in user (with the CSRF token) "
                "or, with NOTICE_API_ANONYMOUS_DEVICES, an anonymous browser.",
                "security": anonymous,
                "requestBody": _body(_ref("TopicSubscription")),
                "responses": _responses(
                    {"200": _json(subscription_answer, "done; the flag says if it changed")},
                    **service,
                    **{
                        "403": "the topic authorizer refused (forbidden)",
                        "404": "no such device or user (not_found)",
                        "409": "the database refused the change",
                        "429": "too many anonymous calls (rate_limited, Retry-After)",
                    },
                ),
            }
        }
    return {prefix.rstrip("/") + path: item for path, item in paths.items()}


def build_document(app: Flask) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``app``'s inbox JSON API and service API."""
    settings = state_of(app).settings
    paths = {
        **_inbox_paths(settings.url_prefix.rstrip("/"), settings.page_max),
        **_service_paths(settings.api_prefix),
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "notice: inbox JSON API and service API",
            "version": "1",
            "description": "Errors are JSON {error, message, ...}. State changes of a "
            "logged-in user need the CSRF token in the X-CSRFToken header (the "
            "page's <meta name=csrf-token>).",
        },
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": _schemas(settings.page_max, settings.max_actions),
            "securitySchemes": {
                "session": {
                    "type": "apiKey",
                    "in": "cookie",
                    "name": app.config.get("SESSION_COOKIE_NAME") or "session",
                    "description": "the app's login session (flask-login or notices.user_loader)",
                },
                "csrf": {
                    "type": "apiKey",
                    "in": "header",
                    "name": HEADER,
                    "description": "the CSRF token of the session, on state changes",
                },
                "service": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "a service token (NOTICE_API_TOKENS or NOTICE_API_AUTH)",
                },
            },
        },
    }


@inbox_bp.get("/openapi.json")
def openapi() -> Response:
    """The OpenAPI document; 404 when ``NOTICE_OPENAPI`` is False."""
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    if not state_of(app).settings.openapi:
        raise NotFound()
    return jsonify(build_document(app))
