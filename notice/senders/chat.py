"""What the chat senders (Slack, Discord, Microsoft Teams) share: per-user targets from
a loader, shared targets named in the config, allow-listed hosts, one POST under a
total deadline and the retry classification.

A delivery's ``target`` is either a per-user target returned by the sender's target
loader (a Slack member or channel id, a Discord or Teams webhook URL) or
``"shared:<name>"``, a webhook named in ``NOTICE_<CHANNEL>_SHARED``: the URL stays in
the config, never in the delivery row, and no URL (their path is the secret) is put in
logs or errors.

Outcomes: 2xx sent; 408, 429 (honouring ``Retry-After``) and 5xx, timeouts and
connection errors retried; redirects and every other 4xx final.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar
from urllib.parse import urlsplit

import requests
from flask import Flask

from ..errors import ConfigurationError, PermanentError, SkipDelivery
from ..fallback import SHARED
from .base import Sender
from .http import Answer, deadline_session, post_as, raise_for_answer

TargetLoader = Callable[[Sequence[Any]], Mapping[Any, "str | Sequence[str] | None"]]


def host_allowed(host: str, allowed: Sequence[str]) -> bool:
    """``host`` is one of ``allowed`` or, for an entry ``".example.com"``, under it."""
    host = host.lower().rstrip(".")
    for entry in allowed:
        entry = entry.lower()
        if entry.startswith("."):
            if host.endswith(entry):
                return True
        elif host == entry:
            return True
    return False


class LoaderTargets:
    """Per-user targets from a function the app registers: the chat senders' and the
    SMS sender's :meth:`target_loader` and :meth:`~notice.senders.base.Sender.targets`."""

    _loader: TargetLoader | None = None

    def target_loader(self, loader: TargetLoader) -> TargetLoader:
        """Register the function giving each user's targets on this channel::

            @notices.sender("slack").target_loader
            def slack_targets(user_ids):
                return {u.id: u.slack_id for u in User.query.filter(User.id.in_(user_ids))}

        It gets a list of user ids and returns a mapping of user id to a target string
        or a list of them; a user missing (or mapped to None) has no target here, so
        a fallback chain moves on to its next channel. Called inside the publishing
        transaction, and when a fallback chain reaches this channel.
        """
        self._loader = loader
        return loader

    def targets(self, user_ids: Sequence[Any]) -> Mapping[Any, Sequence[str]]:
        if self._loader is None:
            return {}
        found = self._loader(list(user_ids))
        out: dict[Any, Sequence[str]] = {}
        for user, value in found.items():
            if not value:
                continue
            out[user] = [value] if isinstance(value, str) else [str(v) for v in value]
        return out


class ChatSender(LoaderTargets, Sender):
    """Base of the chat senders. Subclasses set ``name``, ``key`` (the config prefix)
    and implement :meth:`message` (the JSON body) and :meth:`post`."""

    #: config keys are ``NOTICE_<key>_SHARED``, ``_HOSTS``, ``_TIMEOUT``
    key: ClassVar[str] = ""

    def __init__(self) -> None:
        self.shared: dict[str, str] = {}
        self.hosts: tuple[str, ...] = ()
        self.timeout = 5.0
        # requests.Session is not documented thread-safe: one per dispatcher thread
        self._local = threading.local()

    def init_app(self, app: Flask) -> None:
        cfg = app.config
        prefix = f"NOTICE_{self.key}"
        hosts = cfg[f"{prefix}_HOSTS"]
        if isinstance(hosts, str) or not all(isinstance(h, str) and h for h in hosts):
            raise ConfigurationError(f"{prefix}_HOSTS must be a list of host names, got {hosts!r}")
        self.hosts = tuple(hosts)
        shared = cfg[f"{prefix}_SHARED"]
        if not isinstance(shared, Mapping):
            raise ConfigurationError(f"{prefix}_SHARED must be a dict of name to webhook URL")
        for name, url in shared.items():
            if not isinstance(name, str) or not name or len(SHARED + name) > 255:
                raise ConfigurationError(f"{prefix}_SHARED: bad target name {name!r}")
            # the URL itself stays out of the message: its path is the webhook's secret
            self.check_url(url, f"{prefix}_SHARED[{name!r}]")
        self.shared = dict(shared)
        timeout = cfg[f"{prefix}_TIMEOUT"]
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
            raise ConfigurationError(f"{prefix}_TIMEOUT must be a positive number of seconds")
        self.timeout = float(timeout)

    def check_url(self, url: object, where: str) -> str:
        """``url`` if it is an https URL (http only for a loopback host) on an allowed
        host; ConfigurationError naming ``where`` otherwise."""
        parts = urlsplit(url) if isinstance(url, str) else None
        host = parts.hostname if parts else None
        if parts is None or host is None or parts.scheme not in ("http", "https"):
            raise ConfigurationError(f"{where} is not an http(s) URL")
        if not host_allowed(host, self.hosts):
            raise ConfigurationError(
                f"{where}: host {host!r} is not in NOTICE_{self.key}_HOSTS"
            )
        assert isinstance(url, str)
        return url

    def send(self, notice: Any) -> None:
        raise SkipDelivery(f"the {self.name} sender sends to targets only")

    def preview(self, notice: Any, target: str) -> Any:
        """The JSON body :meth:`send_to` would post to ``target``."""
        self.resolve(target)
        return self.message(notice, target)

    def resolve(self, target: str) -> str | None:
        """The webhook URL of ``target`` (None when it is not a URL target); checked at
        send time: a shared name may have left the config, a host the allow-list."""
        if target.startswith(SHARED):
            url = self.shared.get(target[len(SHARED) :])
            if url is None:
                raise SkipDelivery(f"{target!r} is no longer in NOTICE_{self.key}_SHARED")
            return url
        if target.startswith(("https://", "http://")):
            host = urlsplit(target).hostname or ""
            if not host_allowed(host, self.hosts):
                raise PermanentError(f"{self.name} target host is not in NOTICE_{self.key}_HOSTS")
            return target
        return None

    def message(self, notice: Any, target: str) -> dict[str, Any]:
        raise NotImplementedError

    def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> Answer:
        """POST under the total deadline; transport failures are transient and never
        name the URL."""
        return post_as(
            self.name,
            self.session(),
            url,
            data=body,
            headers={"Content-Type": "application/json", **headers},
            timeout=self.timeout,
        )

    def classify(self, answer: Answer, wait: float | None = None) -> None:
        """Raise for a non-2xx answer (:func:`~notice.senders.http.raise_for_answer`;
        ``wait`` when the answer gives no ``Retry-After``)."""
        raise_for_answer(answer, self.name, wait=wait)

    def session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = deadline_session()
        return session
