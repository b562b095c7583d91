"""Every exception the library defines is a NoticeError and keeps its builtin base."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import notice
from notice import errors


def _library_exceptions() -> list[type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for info in pkgutil.walk_packages(notice.__path__, "notice."):
        if info.name == "notice.dispatch.celery":
            pytest.importorskip("celery")
        module = importlib.import_module(info.name)
        for _name, obj in inspect.getmembers(module, inspect.isclass):
            if issubclass(obj, BaseException) and obj.__module__.startswith("notice."):
                found[f"{obj.__module__}.{obj.__qualname__}"] = obj
    return list(found.values())


def test_every_library_exception_derives_from_notice_error():
    classes = _library_exceptions()
    assert len(classes) >= 14  # the tree in notice/errors.py, and BrokerError, CSRFError
    outside = [c.__qualname__ for c in classes if not issubclass(c, errors.NoticeError)]
    assert outside == []


@pytest.mark.parametrize(
    ("error", "builtin"),
    [
        (errors.ConfigurationError, RuntimeError),
        (errors.InvalidUserId, ValueError),
        (errors.NoRecipientError, ValueError),
        (errors.UnknownTopic, LookupError),
        (errors.SubscriptionError, ValueError),
        (errors.EndpointRefused, ValueError),
        (errors.BadToken, ValueError),
    ],
)
def test_errors_keep_their_builtin_base(error, builtin):
    assert issubclass(error, builtin) and issubclass(error, errors.NoticeError)


def test_the_tree_in_the_docstring_names_every_error():
    for cls in _library_exceptions():
        if cls.__name__.startswith("_"):
            continue
        assert cls.__name__ in (errors.__doc__ or ""), cls
