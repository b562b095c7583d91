"""The blueprint objects; view modules attach routes to them.

``inbox_bp`` (``NOTICE_URL_PREFIX``, default ``/notices``) serves the logged-in user:
pages, JSON API, the live stream, push subscriptions, preferences.
``api_bp`` (``NOTICE_API_PREFIX``, default ``/api/v1``) is the service API of topics
and publishing, authenticated with API tokens.
"""

from __future__ import annotations

from flask import Blueprint

inbox_bp = Blueprint(
    "notice",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/static",
)

api_bp = Blueprint("notice_api", __name__)
