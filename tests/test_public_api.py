"""The public names of ``notice``, pinned (httpx's style): a name added or dropped is
a deliberate API change, made here and in CHANGES.rst."""

from __future__ import annotations

import notice


def test_all_is_exactly_the_public_api():
    assert notice.__all__ == [
        "ConfigurationError",
        "DeliveryStatus",
        "NoRecipientError",
        "NoticeError",
        "NoticeEvent",
        "NoticeType",
        "Notices",
        "PermanentError",
        "ReadStatus",
        "SendStatus",
        "Sender",
        "SkipDelivery",
        "TransientError",
        "notice_event",
    ]


def test_every_public_name_resolves_and_nothing_else_is_exported_by_star():
    namespace: dict[str, object] = {}
    exec("from notice import *", namespace)
    assert sorted(k for k in namespace if not k.startswith("__")) == notice.__all__
