"""The web layer: inbox pages and JSON API, live stream, push and topic endpoints.

:func:`register_web` is called by ``Notices.init_app``. It imports every view module
of this package (each attaches its routes to a blueprint in
:mod:`notice.web.blueprints`), then registers the blueprints under their prefixes.
"""

from __future__ import annotations

import importlib
import pkgutil

from flask import Flask

from ..state import state_of
from .blueprints import api_bp, inbox_bp

_loaded = False


def _load_views() -> None:
    global _loaded
    if not _loaded:
        for info in pkgutil.iter_modules(__path__):
            if info.name not in ("blueprints", "auth"):
                importlib.import_module(f"{__name__}.{info.name}")
        _loaded = True


def register_web(app: Flask) -> None:
    """Register the blueprints unless ``NOTICE_WEB`` is False (called by ``init_app``
    once the app's state exists)."""
    settings = state_of(app).settings
    if not settings.web:
        return
    _load_views()
    app.register_blueprint(inbox_bp, url_prefix=settings.url_prefix)
    app.register_blueprint(api_bp, url_prefix=settings.api_prefix)
