"""What the chat senders (Slack, Discord, Microsoft Teams) share: per-user targets from
a loader, shared targets named in the config, allow-listed hosts, one POST under a
total deadline and the retry classification.

A delivery's ``target`` is either a per-user target returned by the sender's target
loader (a Slack member or channel id, a Discord or Teams webhook URL) or
``"shared:<name>"``, a webhook named in ``NOTICE_<CHANNEL>_SHARED``: the URL stays in
the config, never in the delivery row, and no URL (their path is the secret) is put in
logs or errors. A per-user target is re-checked at send time as the SMS sender's
numbers are (:mod:`notice.senders.targets`): one the loader no longer gives the user
ends the delivery Skipped. Every URL must be https (plain http only to a loopback
host) on a host of ``NOTICE_<CHANNEL>_HOSTS`` (:mod:`notice.senders.urls`).

Outcomes: 2xx sent; 408, 429 (honouring ``Retry-After``) and 5xx, timeouts and
connection errors retried; redirects and every other 4xx final.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any, ClassVar

import requests
from flask import Flask

from ..errors import ConfigurationError, PermanentError, SkipDelivery
from ..fallback import SHARED
from .base import Sender
from .http import Answer, deadline_session, post_as, raise_for_answer
from .targets import LoaderTargets
from .urls import check_url, url_problem


class ChatSender(LoaderTargets, Sender):
    """Base of the chat senders. Subclasses set ``name``, ``key`` (the config prefix)
    and implement :meth:`message` (the JSON body) and :meth:`deliver`."""

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
        """``url`` if it is an https URL (http only to a loopback host) on a host of
        ``NOTICE_<key>_HOSTS``; ConfigurationError naming ``where`` otherwise
        (:func:`notice.senders.urls.check_url`)."""
        return check_url(url, self.hosts, where, f"NOTICE_{self.key}_HOSTS")

    def owner_checked(self, target: str) -> bool:
        # a shared target belongs to no user: the config is its owner (see resolve)
        return not target.startswith(SHARED)

    def send(self, notice: Any) -> None:
        raise SkipDelivery(f"the {self.name} sender sends to targets only")

    def preview(self, notice: Any, target: str) -> Any:
        """The JSON body :meth:`send_to` would post to ``target`` (checked as a send
        checks it)."""
        self.check_owner(notice, target)
        self.resolve(target)
        return self.message(notice, target)

    def send_to(self, notice: Any, target: str) -> None:
        """Check ``target`` is still the user's (a per-user one: see
        :mod:`notice.senders.targets`), then :meth:`deliver` it."""
        self.check_owner(notice, target)
        self.deliver(notice, target)

    def deliver(self, notice: Any, target: str) -> None:
        """Post ``notice`` to ``target`` (its owner already checked)."""
        raise NotImplementedError

    def resolve(self, target: str) -> str | None:
        """The webhook URL of ``target`` (None when it is not a URL target); checked at
        send time: a shared name may have left the config, a URL the loader gave may be
        plain http or off the allow-list."""
        if target.startswith(SHARED):
            url = self.shared.get(target[len(SHARED) :])
            if url is None:
                raise SkipDelivery(f"{target!r} is no longer in NOTICE_{self.key}_SHARED")
            return url
        if target.startswith(("https://", "http://")):
            problem = url_problem(target, self.hosts, f"NOTICE_{self.key}_HOSTS")
            if problem is not None:
                raise PermanentError(f"not sent: the {self.name} target {problem}")
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
