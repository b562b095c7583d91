"""Twilio, the built-in provider of the "sms" sender, through the ``twilio`` library.

``Client.messages.create`` builds the request (``POST
/2010-04-01/Accounts/<sid>/Messages.json``, form-encoded ``To``, ``From`` or
``MessagingServiceSid`` and ``Body``, HTTP Basic auth with the account SID and auth
token) and reads the answer. The HTTP itself goes through :class:`DeadlineHttpClient`,
a twilio ``HttpClient`` on :func:`notice.senders.http.post_with_deadline`: the request
gets the total deadline, the host allow-list and the no-redirect rule of every notice
sender, and is not logged (twilio's own client logs each request at INFO).

twilio has no setting for the API's address; ``NOTICE_TWILIO_API_URL`` is set as the
``base_url`` of the client's ``api`` domain, the attribute twilio builds every Messages
URL from (``tests/test_sms_delivery.py`` checks the requests reach a loopback fake).

Answers: 201 with status ``queued``, ``accepted``, ``sending`` or ``sent`` is sent;
``failed`` or ``undelivered`` final; 429 and 5xx retried (after ``Retry-After``);
invalid-number codes (21211, 21614) and every other 4xx final. Neither the auth token
nor the phone number (Twilio's error messages quote it) reaches an error or a log.
"""

from __future__ import annotations

import base64
import logging
import re
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from twilio.base.exceptions import TwilioException
from twilio.http import HttpClient
from twilio.http.response import Response
from twilio.rest import Client

from ..errors import ConfigurationError, PermanentError
from .http import deadline_session, post_with_deadline, retry_after
from .sms import (
    InvalidPhoneNumber,
    SmsProvider,
    SmsReceipt,
    classify_twilio_response,
    validate_e164,
)
from .urls import url_problem

if TYPE_CHECKING:
    from flask import Flask

logger = logging.getLogger(__name__)

_ACCOUNT_SID = re.compile(r"AC[0-9a-fA-F]{32}")
_SERVICE_SID = re.compile(r"MG[0-9a-fA-F]{32}")
#: a short code, or an alphanumeric sender id (up to 11 characters, one letter at least)
_SENDER_ID = re.compile(r"[0-9]{3,8}|(?=.*[A-Za-z])[A-Za-z0-9 ]{1,11}")

#: answer bytes read: Twilio echoes the body (up to 1600 characters, escaped), and a cut
#: JSON would turn an accepted message into an error
MAX_ANSWER = 64 * 1024


class DeadlineHttpClient(HttpClient):
    """twilio's ``HttpClient`` interface on :func:`~notice.senders.http.post_with_deadline`.

    POST only (all the provider asks for); the last answer's status and headers stay in
    :attr:`last_status` and :attr:`last_headers` (``Retry-After``). One per thread, as
    its session is.
    """

    def __init__(self, timeout: float, hosts: tuple[str, ...]) -> None:
        super().__init__(logger, is_async=False, timeout=timeout)
        self.hosts = hosts
        self.session = deadline_session()
        self.last_headers: Mapping[str, str] = {}
        self.last_status: int | None = None

    def request(
        self,
        method: str,
        uri: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Response:
        if method != "POST" or params:
            raise PermanentError(f"the twilio provider only POSTs, not {method}")
        # checked again here: the URL is twilio's build from the configured base
        problem = url_problem(uri, self.hosts, "NOTICE_SMS_HOSTS")
        if problem is not None:
            # the Basic auth header goes wherever twilio's client points us: never past this
            raise PermanentError(f"not sent: the twilio API URL {problem}")
        head = dict(headers or {})
        if auth is not None:
            pair = f"{auth[0]}:{auth[1]}".encode()
            head["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
        answer = post_with_deadline(
            self.session,
            uri,
            data=urlencode(data or {}, doseq=True).encode(),
            headers=head,
            timeout=self.timeout or 5.0,
            max_body=MAX_ANSWER,
        )
        self.last_status, self.last_headers = answer.status, answer.headers
        return Response(answer.status, answer.text, answer.headers)


class TwilioProvider(SmsProvider):
    """Twilio's Messages API; settings ``NOTICE_TWILIO_*``."""

    name = "twilio"

    def __init__(self) -> None:
        super().__init__()
        self.account_sid = ""
        self._token = ""
        self.sender: dict[str, str] = {}
        self.api_url = "https://api.twilio.com"
        # neither a requests.Session nor twilio's Client is documented thread-safe
        self._local = threading.local()

    def init_app(self, app: Flask) -> None:
        super().init_app(app)
        cfg = app.config
        sid = cfg["NOTICE_TWILIO_ACCOUNT_SID"]
        if not isinstance(sid, str) or not _ACCOUNT_SID.fullmatch(sid):
            raise ConfigurationError(
                "NOTICE_TWILIO_ACCOUNT_SID must be a Twilio account SID ('AC' + 32 hex digits)"
            )
        token = cfg["NOTICE_TWILIO_AUTH_TOKEN"]
        if not isinstance(token, str) or not token:
            raise ConfigurationError("NOTICE_TWILIO_AUTH_TOKEN must be set (a string)")
        source, service = cfg["NOTICE_TWILIO_FROM"], cfg["NOTICE_TWILIO_MESSAGING_SERVICE_SID"]
        if (source is None) == (service is None):
            raise ConfigurationError(
                "set one of NOTICE_TWILIO_FROM (the sending number) and "
                "NOTICE_TWILIO_MESSAGING_SERVICE_SID"
            )
        if service is not None:
            if not isinstance(service, str) or not _SERVICE_SID.fullmatch(service):
                raise ConfigurationError(
                    "NOTICE_TWILIO_MESSAGING_SERVICE_SID must be 'MG' + 32 hex digits"
                )
            self.sender = {"messaging_service_sid": service}
        else:
            if not isinstance(source, str) or not _is_sender(source):
                raise ConfigurationError(
                    "NOTICE_TWILIO_FROM must be an E.164 number, a short code or an "
                    f"alphanumeric sender id of up to 11 characters, got {source!r}"
                )
            self.sender = {"from_": source}
        self.api_url = self.check_url(
            cfg["NOTICE_TWILIO_API_URL"], "NOTICE_TWILIO_API_URL"
        ).rstrip("/")
        self.account_sid, self._token = sid, token

    def client(self) -> tuple[Client, DeadlineHttpClient]:
        """This thread's twilio client and its HTTP client."""
        pair: tuple[Client, DeadlineHttpClient] | None = getattr(self._local, "pair", None)
        if pair is None:
            http = DeadlineHttpClient(self.timeout, self.hosts)
            client = Client(  # type: ignore[no-untyped-call] # its return is unannotated
                self.account_sid, self._token, http_client=http
            )
            # Client reads TWILIO_REGION and TWILIO_EDGE from the process environment,
            # and either would rewrite the host of NOTICE_TWILIO_API_URL
            client.edge = client.region = None
            client.api.base_url = self.api_url
            pair = self._local.pair = (client, http)
        return pair

    def send(self, to: str, body: str) -> SmsReceipt:
        client, http = self.client()
        http.last_status = None
        try:
            message = client.messages.create(to=to, body=body, **self.sender)
        except TwilioException as exc:
            # TwilioRestException, or TwilioServiceException for RFC 9457 answers (newer
            # twilio); both carry the HTTP status and Twilio's error code
            answered: object = getattr(exc, "status", None)
            if not isinstance(answered, int):
                raise  # no answer behind it: a bug, logged with its traceback
            refused = (answered, getattr(exc, "code", None))
        except ValueError:
            if http.last_status is None or not 200 <= http.last_status < 300:
                raise  # not the answer's fault: a bug, logged with its traceback
            # a 2xx whose JSON did not parse: Twilio created the message, and another
            # attempt would send it twice
            logger.warning("twilio accepted a message with an unreadable answer")
            return SmsReceipt(id="", status="queued")
        else:
            state = classify_twilio_response(201, {"status": str(message.status)})
            code = message.error_code
            return SmsReceipt(
                str(message.sid or ""), state, code if isinstance(code, int) else None
            )
        # raised out here, not in the except: twilio's exception quotes the phone
        # number, and would ride along in every logged traceback as our error's context
        wait = retry_after(http.last_headers.get("Retry-After"))
        status, error = refused
        classify_twilio_response(status, {"code": error}, None if wait is None else str(wait))
        raise PermanentError(f"twilio answered {status}")  # an error with a 2xx status


def _is_sender(value: str) -> bool:
    if _SENDER_ID.fullmatch(value):
        return True
    try:
        validate_e164(value)
    except InvalidPhoneNumber:
        return False
    return True
