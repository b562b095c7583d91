"""The test kit: capture notices instead of sending them, and assert on what was sent.

::

    from notice.testing import capture_notices

    with capture_notices(app) as outbox:
        notice_event(user.id, NoticeType.COMMENT, subject="Hi", content="...")
    outbox.assert_sent(to=user, type=NoticeType.COMMENT, channel="email")

The pytest plugin (:mod:`notice.testing.plugin`, loaded automatically) gives the same
outbox as the ``notice_outbox`` fixture.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .capture import DEFAULT_TIMEOUT, CapturingSender, capture_notices
    from .outbox import CapturedNotice, NoticeOutbox, RenderedEmail

__all__ = [
    "DEFAULT_TIMEOUT",
    "CapturedNotice",
    "CapturingSender",
    "NoticeOutbox",
    "RenderedEmail",
    "capture_notices",
]

# where each public name lives; imported on first use, because pytest imports this
# package for the plugin in every run of every project that installs notice
_HOMES = {
    "DEFAULT_TIMEOUT": "capture",
    "CapturingSender": "capture",
    "capture_notices": "capture",
    "CapturedNotice": "outbox",
    "NoticeOutbox": "outbox",
    "RenderedEmail": "outbox",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{home}", __name__), name)
