"""The public names of ``notice``, pinned (httpx's style): a name added or dropped is
a deliberate API change, made here and in CHANGES.rst."""

from __future__ import annotations

import notice


def test_all_is_exactly_the_public_api():
    assert notice.__all__ == [
        "ConfigurationError",
        "DeliveryStatus",
        "NoRecipientError",
        "NoticeConfigWarning",
        "NoticeError",
        "NoticeEvent",
        "NoticeType",
        "Notices",
        "PermanentError",
        "ReadStatus",
        "SendStatus",
        "Sender",
        "SkipDelivery",
        "TablesMissing",
        "TransientError",
        "notice_event",
    ]


def test_every_public_name_resolves_and_nothing_else_is_exported_by_star():
    namespace: dict[str, object] = {}
    exec("from notice import *", namespace)
    assert sorted(k for k in namespace if not k.startswith("__")) == notice.__all__


def _mentions_any(hint: object) -> bool:
    import typing

    if hint is typing.Any:
        return True
    return any(_mentions_any(arg) for arg in typing.get_args(hint))


def test_plugin_contracts_are_typed_without_any():
    import typing

    from notice.brokers.base import Broker, Subscription
    from notice.dispatch import Dispatcher
    from notice.senders.base import Sender

    for cls in (Sender, Broker, Subscription, Dispatcher):
        for name, member in vars(cls).items():
            if not callable(member) or (name.startswith("_") and name != "__init__"):
                continue
            import flask

            from notice.models import NoticeView

            names = {"Flask": flask.Flask, "NoticeView": NoticeView}
            hints = typing.get_type_hints(member, localns=names)
            loose = [k for k, v in hints.items() if _mentions_any(v)]
            assert loose == [], f"{cls.__name__}.{name}: {loose}"
