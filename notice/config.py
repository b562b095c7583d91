"""Every ``NOTICE_*`` config key with its default.

``Notices.init_app`` applies these with ``app.config.setdefault`` and validates them
once at startup; a wrong value fails fast with :class:`notice.errors.ConfigurationError`.
"""

from __future__ import annotations

import difflib
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from flask import Flask

from .errors import ConfigurationError, NoticeConfigWarning
from .grouping import validate_grouping
from .links import link_origins
from .mobile.config import validate_mobile
from .preferences.settings import validate_preferences
from .push.config import validate_push
from .retry import RetryPolicy
from .schedule.settings import validate_schedule
from .throttle import validate_throttle

DEFAULTS: dict[str, Any] = {
    # --- core: publishing and delivery -------------------------------------------
    #: senders for every notice: built-in names ("log", "memory", "webpush", "email",
    #: "webhook", "slack", "discord", "teams", "sms", "fcm", "apns") or dotted paths
    #: "package.module:Class"
    "NOTICE_SENDERS": ["log"],
    #: when deliveries run after commit: "sync" (caller's thread), "thread" (pool),
    #: "celery" (a task per delivery) or "none" (leave them to the sweeper)
    "NOTICE_DISPATCH": "sync",
    #: worker threads of the "thread" dispatcher
    "NOTICE_THREADS": 4,
    #: deliveries the thread pool queues before leaving the rest to the sweeper
    "NOTICE_QUEUE_SIZE": 10_000,
    #: seconds a "thread" dispatcher's thread waits for more emits behind the one it
    #: took, so a burst of single emits is one send pass and one finish (0: no wait;
    #: at most 1)
    "NOTICE_DISPATCH_LINGER": 0.01,
    #: seconds a claimed delivery stays reserved; after that another worker may take it
    #: (must be longer than NOTICE_SEND_TIMEOUT)
    "NOTICE_CLAIM_TIMEOUT": 300,
    #: seconds one call into a sender (open, send, close) may take; past that the send is
    #: abandoned and recorded as a transient failure, and the batch goes on without it
    "NOTICE_SEND_TIMEOUT": 30,
    #: leases a delivery may lose without an outcome (its worker died or froze mid-send)
    #: before it is Dead as a poison row
    "NOTICE_MAX_LEASE_EXPIRIES": 3,
    #: seconds the sweeper leaves a new delivery to the Celery dispatcher (sync and
    #: thread write theirs leased to themselves)
    "NOTICE_SWEEP_GRACE": 30,
    #: attempts per delivery, the first included, before it is final (Dead)
    "NOTICE_MAX_ATTEMPTS": 10,
    #: retry backoff: first delay and cap in seconds, and relative jitter
    "NOTICE_RETRY_BASE": 30.0,
    "NOTICE_RETRY_CAP": 3600.0,
    "NOTICE_RETRY_JITTER": 0.1,
    #: deliveries one claim takes (sweeper and dispatcher batches)
    "NOTICE_BATCH_SIZE": 200,
    #: largest notice content in UTF-8 bytes (what storage, email and brokers carry);
    #: notice_event raises ValueError past it
    "NOTICE_MAX_CONTENT": 64 * 1024,
    #: largest notice ``data``: UTF-8 bytes of its compact JSON encoding
    "NOTICE_MAX_DATA": 16 * 1024,
    #: most action buttons one notice may carry (``notice_event(actions=...)``)
    "NOTICE_MAX_ACTIONS": 3,
    # --- web: inbox, JSON API, live stream -----------------------------------------
    #: register the blueprints (inbox pages, JSON API, stream, service API); False: none
    "NOTICE_WEB": True,
    #: URL prefix of the logged-in user's pages, JSON API and stream
    "NOTICE_URL_PREFIX": "/notices",
    #: URL prefix of the token-authenticated service API (topics, publishing)
    "NOTICE_API_PREFIX": "/api/v1",
    #: the live stream (``<prefix>/stream``) and the events published to it
    "NOTICE_STREAM": True,
    #: how stream events cross processes: None (in-process), "redis://...",
    #: "postgresql://..." (LISTEN/NOTIFY) or "package.module:Class"
    "NOTICE_BROKER_URL": None,
    #: Redis channel prefix / PostgreSQL NOTIFY channel of stream events
    "NOTICE_BROKER_CHANNEL": "notice",
    #: seconds between heartbeat comments on an idle stream (also how soon a gone
    #: client is noticed)
    "NOTICE_SSE_HEARTBEAT": 15.0,
    #: milliseconds a browser waits before reconnecting a dropped stream
    "NOTICE_SSE_RETRY": 3000,
    #: missed notices a reconnecting stream replays from the database at most
    "NOTICE_SSE_REPLAY": 100,
    #: events a slow stream may fall behind before it reloads from the database
    "NOTICE_SSE_QUEUE": 100,
    #: live streams one user may hold open in one process; one more closes their oldest
    "NOTICE_STREAM_MAX_PER_USER": 5,
    #: live streams one process holds at most; past it new ones get 429 (Retry-After)
    "NOTICE_STREAM_MAX": 1000,
    #: largest request body (bytes) of every notice endpoint (inbox, JSON API, push,
    #: preferences, service API); a larger one gets 413 ``too_large``
    "NOTICE_MAX_REQUEST": 256 * 1024,
    #: seconds between unread-count polls of notice.js when the stream is unavailable
    "NOTICE_POLL_INTERVAL": 30,
    #: what the bell's badge counts: "unread" notices, or "unseen" ones (unread and
    #: not yet listed: opening the inbox clears it, reading them is another step)
    "NOTICE_BADGE_COUNTS": "unread",
    #: notices per page in the inbox and the JSON API (``limit`` default / maximum)
    "NOTICE_PAGE_SIZE": 20,
    "NOTICE_PAGE_MAX": 100,
    #: origins a notice's absolute url may link to, e.g. ["https://docs.example.com"];
    #: paths on this site (/x) always link, and so does the NOTICE_BASE_URL origin.
    #: Any other url is shown as text in the inbox, pop-ups, emails and pushes
    "NOTICE_LINK_ORIGINS": [],
    #: serve the OpenAPI 3.1 document of the JSON APIs at ``<prefix>/openapi.json``
    "NOTICE_OPENAPI": True,
    #: template the inbox page extends (must define ``{% block notice_content %}``)
    "NOTICE_BASE_TEMPLATE": "notice/base.html",
    # --- web push and topics -------------------------------------------------------
    #: VAPID private key: a PEM file path, PEM text, or base64url raw/DER
    #: (`flask notice vapid-keys` makes one); needed by the "webpush" sender
    "NOTICE_VAPID_PRIVATE_KEY": None,
    #: VAPID public key (base64url); optional, derived from the private key
    "NOTICE_VAPID_PUBLIC_KEY": None,
    #: VAPID "sub" claim: a "mailto:" or "https:" contact for push services
    "NOTICE_VAPID_SUBJECT": None,
    #: push service hosts endpoints may point at: "host", "*.suffix" (https, port
    #: 443) or an exact origin "scheme://host:port" (tests add the loopback service)
    "NOTICE_PUSH_ALLOWED_HOSTS": [
        "fcm.googleapis.com",
        "android.googleapis.com",
        "updates.push.services.mozilla.com",
        "*.notify.windows.com",
        "web.push.apple.com",
    ],
    #: seconds one push request may take (connect and read)
    "NOTICE_PUSH_TIMEOUT": 10.0,
    #: default TTL header: seconds the push service keeps a message for an offline device
    "NOTICE_PUSH_TTL": 86_400,
    #: default Urgency header: "very-low", "low", "normal" or "high"
    "NOTICE_PUSH_URGENCY": "normal",
    #: icon URL shown with push notifications (per notice: data["webpush"]["icon"])
    "NOTICE_PUSH_ICON": None,
    #: push subscriptions kept per user; subscribing another device drops the oldest
    "NOTICE_PUSH_MAX_SUBSCRIPTIONS": 20,
    #: bearer tokens accepted by the service API (topics, publishing)
    "NOTICE_API_TOKENS": [],
    #: optional hook ``f(token) -> bool`` accepting further service API tokens
    "NOTICE_API_AUTH": None,
    #: let callers with neither a service token nor a login subscribe a browser's push
    #: subscription to a topic (the seed's flow); the topic authorizer is still asked
    "NOTICE_API_ANONYMOUS_DEVICES": False,
    #: the user id owning devices registered anonymously (required when they are on)
    "NOTICE_API_ANONYMOUS_USER": None,
    #: anonymous (un)subscribe calls allowed per client address and minute; then 429
    "NOTICE_API_ANONYMOUS_RATE": 10,
    # --- email, webhook, preferences, digest ---------------------------------------
    #: SMTP server of the "email" sender and the digest
    "NOTICE_MAIL_HOST": "localhost",
    #: SMTP port (25; 587 with STARTTLS; 465 with SSL)
    "NOTICE_MAIL_PORT": 25,
    #: upgrade the connection with STARTTLS after connecting
    "NOTICE_MAIL_USE_TLS": False,
    #: connect with implicit TLS (SMTPS); exclusive with NOTICE_MAIL_USE_TLS
    "NOTICE_MAIL_USE_SSL": False,
    #: SMTP login (None: no AUTH); never logged
    "NOTICE_MAIL_USERNAME": None,
    #: SMTP password; never logged
    "NOTICE_MAIL_PASSWORD": None,
    #: the From address, e.g. "Example <noreply@example.com>"; required by the email sender
    "NOTICE_MAIL_SENDER": None,
    #: seconds before an SMTP connect or command gives up
    "NOTICE_MAIL_TIMEOUT": 10.0,
    #: absolute origin for links in emails, e.g. "https://example.com" (default: SERVER_NAME)
    "NOTICE_BASE_URL": None,
    #: seconds an unsubscribe link stays valid (default 90 days)
    "NOTICE_UNSUBSCRIBE_MAX_AGE": 90 * 24 * 3600,
    #: URLs the "webhook" sender POSTs every notice to (one delivery per URL)
    "NOTICE_WEBHOOK_URLS": [],
    #: shared secret of the webhook HMAC-SHA256 signature; required by the webhook sender
    "NOTICE_WEBHOOK_SECRET": None,
    #: seconds a webhook POST may take (connect and read) before it is retried
    "NOTICE_WEBHOOK_TIMEOUT": 5.0,
    #: Slack bot token ("xoxb-...") for chat.postMessage to channel/member ids; never logged
    "NOTICE_SLACK_TOKEN": None,
    #: base URL of Slack's Web API (a test points it at a loopback fake)
    "NOTICE_SLACK_API_URL": "https://slack.com/api/",
    #: shared Slack incoming webhooks by name, e.g. {"ops": "https://hooks.slack.com/..."}
    #: (target "shared:ops")
    "NOTICE_SLACK_SHARED": {},
    #: hosts the slack sender may post to (".example.com" allows its subdomains)
    "NOTICE_SLACK_HOSTS": ["slack.com", "hooks.slack.com"],
    #: seconds a Slack POST may take in total before it is retried
    "NOTICE_SLACK_TIMEOUT": 5.0,
    #: shared Discord webhooks by name (target "shared:<name>")
    "NOTICE_DISCORD_SHARED": {},
    #: hosts the discord sender may post to
    "NOTICE_DISCORD_HOSTS": ["discord.com", "discordapp.com"],
    #: seconds a Discord POST may take in total before it is retried
    "NOTICE_DISCORD_TIMEOUT": 5.0,
    #: shared Microsoft Teams workflow webhooks by name (target "shared:<name>")
    "NOTICE_TEAMS_SHARED": {},
    #: hosts the teams sender may post to (workflow webhooks live under these)
    "NOTICE_TEAMS_HOSTS": [".logic.azure.com", ".environment.api.powerplatform.com"],
    #: seconds a Teams POST may take in total before it is retried
    "NOTICE_TEAMS_TIMEOUT": 5.0,
    #: SMS provider of the "sms" sender: "twilio" or a dotted path "package.module:Class"
    #: of a notice.senders.sms.SmsProvider subclass
    "NOTICE_SMS_PROVIDER": "twilio",
    #: SMS segments one notice may use (160 GSM-7 or 70 UCS-2 characters in one, 153 or
    #: 67 each when concatenated); a longer text is cut, keeping its link
    "NOTICE_SMS_MAX_SEGMENTS": 1,
    #: hosts the SMS provider may call (".example.com" allows its subdomains)
    "NOTICE_SMS_HOSTS": ["api.twilio.com"],
    #: seconds an SMS API request may take in total before it is retried
    "NOTICE_SMS_TIMEOUT": 5.0,
    #: Twilio account SID ("AC..."), the user name of the API's Basic auth
    "NOTICE_TWILIO_ACCOUNT_SID": None,
    #: Twilio auth token; never logged
    "NOTICE_TWILIO_AUTH_TOKEN": None,
    #: the sending number (E.164) or alphanumeric sender id; this or
    #: NOTICE_TWILIO_MESSAGING_SERVICE_SID is required by the twilio provider
    "NOTICE_TWILIO_FROM": None,
    #: Twilio messaging service SID ("MG..."): Twilio picks the sending number
    "NOTICE_TWILIO_MESSAGING_SERVICE_SID": None,
    #: base URL of Twilio's REST API (a test points it at a loopback fake)
    "NOTICE_TWILIO_API_URL": "https://api.twilio.com",
    # --- native mobile push: FCM and APNs ------------------------------------------
    #: mobile devices kept per user; registering another drops the least recently used
    "NOTICE_MOBILE_MAX_DEVICES": 20,
    #: FCM service account: a JSON key file path, its text or a dict; needed by "fcm";
    #: never logged
    "NOTICE_FCM_CREDENTIALS": None,
    #: Firebase project id (default: the service account's ``project_id``)
    "NOTICE_FCM_PROJECT_ID": None,
    #: base URL of the FCM HTTP v1 API (a test points it at a loopback fake)
    "NOTICE_FCM_URL": "https://fcm.googleapis.com/v1/",
    #: OAuth2 token endpoint (default: the service account's ``token_uri``)
    "NOTICE_FCM_TOKEN_URI": None,
    #: hosts the fcm sender may connect to (API and token endpoint; ".suffix" allows
    #: subdomains; plain http only to a loopback address)
    "NOTICE_FCM_HOSTS": ["fcm.googleapis.com", "oauth2.googleapis.com"],
    #: seconds one FCM request (the token's or a send) may take in total
    "NOTICE_FCM_TIMEOUT": 10.0,
    #: Android application ids a device may register with as its app_id (and be sent
    #: to); None: any
    "NOTICE_FCM_APP_IDS": None,
    #: APNs signing key (.p8): a file path or its PEM text; needed by "apns"; never logged
    "NOTICE_APNS_KEY": None,
    #: the 10-character Key ID of NOTICE_APNS_KEY
    "NOTICE_APNS_KEY_ID": None,
    #: the 10-character Apple developer Team ID (the provider token's ``iss``)
    "NOTICE_APNS_TEAM_ID": None,
    #: apns-topic (the app's bundle id) for devices registered without an app_id
    "NOTICE_APNS_TOPIC": None,
    #: apns-topic values (bundle ids) a device may register with as its app_id and be
    #: sent to; None: [NOTICE_APNS_TOPIC] when that is set. The "apns" sender needs one
    "NOTICE_APNS_TOPICS": None,
    #: APNs server: production, or "https://api.sandbox.push.apple.com" for
    #: development builds (a test points it at a loopback fake)
    "NOTICE_APNS_URL": "https://api.push.apple.com",
    #: hosts the apns sender may connect to (plain http only to a loopback address)
    "NOTICE_APNS_HOSTS": ["api.push.apple.com", "api.sandbox.push.apple.com"],
    #: apns-priority: 10 (at once) or 5 (when the device saves power)
    "NOTICE_APNS_PRIORITY": 10,
    #: seconds one APNs request may take in total
    "NOTICE_APNS_TIMEOUT": 10.0,
    #: shared-channel routes: notice type ("*" for all) to {channel: [shared target names]};
    #: ONE delivery per event, attached to its first recipient's notice
    "NOTICE_SHARED_ROUTES": {},
    #: fallback chains: notice type ("*" for all) to an ordered list of channels; the next
    #: is tried only when the previous failed for good or the user has no target on it
    "NOTICE_FALLBACK": {},
    #: per-type channel defaults, e.g. {"Like": {"email": False}}; "*" matches every type
    "NOTICE_PREFERENCE_DEFAULTS": {},
    #: notice types users cannot turn off on any channel, e.g. ["System"]
    "NOTICE_REQUIRED_TYPES": [],
    #: digest frequency of users who chose none: "off", "daily" or "weekly"
    "NOTICE_DIGEST_DEFAULT": "off",
    #: most notices listed in one digest email; the rest wait for the next digest
    "NOTICE_DIGEST_LIMIT": 100,
    # --- scheduling (notice.schedule) ----------------------------------------------
    #: channels whose deliveries wait while the user's quiet hours last
    "NOTICE_QUIET_HOURS_CHANNELS": ["email", "webpush"],
    #: notice types that go out during quiet hours all the same, e.g. ["System"]
    "NOTICE_URGENT_TYPES": [],
    #: seconds ahead a sync/thread dispatcher times a scheduled delivery (or a group's
    #: send at its window end) itself, so a short delay needs no sweeper (0: leave
    #: every scheduled delivery to the sweeper)
    "NOTICE_SCHEDULE_TIMER": 10,
    #: per-type delays in seconds per channel, for calls that give neither deliver_at
    #: nor delay, e.g. {"Comment": {"email": 600}}; "*" matches every type
    "NOTICE_DELAY_DEFAULTS": {},
    #: per-type unless_read channels, for calls that give no unless_read, e.g.
    #: {"Comment": ["email"]} (email only if the notice is still unread when due)
    "NOTICE_UNLESS_READ_DEFAULTS": {},
    #: default email mode per notice type (or "*"): "immediate" (its own email),
    #: "daily" or "weekly" (a line in that digest, no email of its own) or "off";
    #: users choose their own per type
    "NOTICE_EMAIL_MODES": {},
    # --- workflows: grouping, throttle, email modes ----------------------------
    #: default group window per notice type (or "*"), in seconds, for
    #: ``notice_event(group_key=...)`` without ``group_window``, e.g. {"Like": 600}
    "NOTICE_GROUP_WINDOWS": {},
    #: grouped subject per notice type: a format string with {actor}, {others},
    #: {count}, {actors} and {subject}, or a callable ``f(notice.grouping.Group) -> str``;
    #: default "Ana and 3 others liked …" from the newest subject
    "NOTICE_GROUP_SUBJECTS": {},
    #: distinct actors a group keeps (newest first)
    "NOTICE_GROUP_ACTORS": 10,
    #: at most N notices per user, type (or "*") and channel within a period:
    #: {"Like": {"email": [3, 3600]}}; over it the delivery is Skipped "throttled"
    "NOTICE_THROTTLE": {},
    #: what a throttled delivery leaves: "skip" (nothing) or "digest" (the user's next
    #: digest may list the notice, as when its email is skipped)
    "NOTICE_THROTTLE_OVERFLOW": "skip",
    # --- celery --------------------------------------------------------------------
    #: the Celery app of NOTICE_DISPATCH = "celery": an instance, "package.module:attr",
    #: or None for notices.init_celery(celery_app) / app.extensions["celery"]
    "NOTICE_CELERY_APP": None,
    #: queue of the delivery tasks; None: the Celery app's default queue
    "NOTICE_CELERY_QUEUE": None,
    #: extra apply_async options of every delivery task (priority, expires, retry_policy)
    "NOTICE_CELERY_TASK_OPTIONS": {},
    #: seconds a publish may wait on the broker (connect, each read and write); past
    #: that the deliveries stay Wait for the sweeper
    "NOTICE_CELERY_PUBLISH_TIMEOUT": 2.0,
    #: most delivery ids one Celery task carries (each still claimed on its own)
    "NOTICE_CELERY_BATCH": 100,
    # --- metrics (pip install 'notice[metrics]') ----------------------------------
    #: count deliveries, time sends and gauge the backlog with prometheus_client
    "NOTICE_METRICS": False,
    #: where metrics register: None (a CollectorRegistry of the app's own, see
    #: notice.metrics.registry_of), "default" (prometheus_client.REGISTRY) or a registry
    "NOTICE_METRICS_REGISTRY": None,
    #: path of a scrape endpoint on the app, e.g. "/metrics"; None: no endpoint
    "NOTICE_METRICS_ENDPOINT": None,
    #: bearer token the scrape endpoint requires; None: loopback callers only, unproxied
    "NOTICE_METRICS_TOKEN": None,
}

_DISPATCH_MODES = ("sync", "thread", "celery", "none")
#: the values of NOTICE_BADGE_COUNTS: the keys of a count event the badge shows
BADGE_COUNTS = ("unread", "unseen")


@dataclass(frozen=True)
class Settings:
    """The core and web ``NOTICE_*`` keys of one app, read once by ``init_app`` after
    :func:`validate`. Features keep theirs beside their validators
    (:class:`notice.push.config.PushSettings`,
    :class:`notice.preferences.settings.PreferenceSettings`)."""

    senders: tuple[str, ...]
    dispatch: str
    threads: int
    queue_size: int
    batch_size: int
    #: seconds a dispatch thread waits for more emits (NOTICE_DISPATCH_LINGER)
    linger: float
    #: NOTICE_MAX_CONTENT and NOTICE_MAX_DATA, in UTF-8 bytes
    max_content: int
    max_data: int
    #: most action buttons per notice (NOTICE_MAX_ACTIONS)
    max_actions: int
    #: how long a claim holds its deliveries (NOTICE_CLAIM_TIMEOUT)
    lease: timedelta
    #: seconds one call into a sender may take (NOTICE_SEND_TIMEOUT)
    send_timeout: float
    #: lost leases after which a delivery is Dead (NOTICE_MAX_LEASE_EXPIRIES)
    max_lease_expiries: int
    sweep_grace: timedelta
    retry: RetryPolicy
    web: bool
    url_prefix: str
    api_prefix: str
    stream: bool
    broker_url: str | None
    broker_channel: str
    sse_heartbeat: float
    sse_retry: int
    sse_replay: int
    sse_queue: int
    stream_max_per_user: int
    stream_max: int
    max_request: int
    poll_interval: int
    page_size: int
    page_max: int
    base_template: str
    api_tokens: tuple[str, ...]
    api_auth: Callable[[str], bool] | None
    api_anonymous_devices: bool
    api_anonymous_user: Any
    api_anonymous_rate: int
    #: normalised origins absolute notice links may point at (NOTICE_LINK_ORIGINS and
    #: the NOTICE_BASE_URL origin; see :func:`notice.links.safe_link`)
    link_origins: frozenset[str] = frozenset()
    #: most delivery ids one Celery task carries (NOTICE_CELERY_BATCH)
    celery_batch: int = 100
    #: serve <prefix>/openapi.json (NOTICE_OPENAPI)
    openapi: bool = True
    #: "unread" or "unseen": the count badges show (NOTICE_BADGE_COUNTS)
    badge_counts: str = "unread"
    #: NOTICE_METRICS and its registry, endpoint path and scrape token
    metrics: bool = False
    metrics_registry: Any = None
    metrics_endpoint: str | None = None
    metrics_token: str | None = None

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> Settings:
        return cls(
            senders=tuple(cfg["NOTICE_SENDERS"]),
            dispatch=cfg["NOTICE_DISPATCH"],
            threads=int(cfg["NOTICE_THREADS"]),
            queue_size=int(cfg["NOTICE_QUEUE_SIZE"]),
            batch_size=int(cfg["NOTICE_BATCH_SIZE"]),
            linger=float(cfg["NOTICE_DISPATCH_LINGER"]),
            max_content=int(cfg["NOTICE_MAX_CONTENT"]),
            max_data=int(cfg["NOTICE_MAX_DATA"]),
            max_actions=int(cfg["NOTICE_MAX_ACTIONS"]),
            lease=timedelta(seconds=cfg["NOTICE_CLAIM_TIMEOUT"]),
            send_timeout=float(cfg["NOTICE_SEND_TIMEOUT"]),
            max_lease_expiries=int(cfg["NOTICE_MAX_LEASE_EXPIRIES"]),
            sweep_grace=timedelta(seconds=cfg["NOTICE_SWEEP_GRACE"]),
            retry=RetryPolicy(
                base=float(cfg["NOTICE_RETRY_BASE"]),
                cap=float(cfg["NOTICE_RETRY_CAP"]),
                jitter=float(cfg["NOTICE_RETRY_JITTER"]),
                max_attempts=int(cfg["NOTICE_MAX_ATTEMPTS"]),
            ),
            web=bool(cfg["NOTICE_WEB"]),
            url_prefix=str(cfg["NOTICE_URL_PREFIX"]),
            api_prefix=str(cfg["NOTICE_API_PREFIX"]),
            stream=bool(cfg["NOTICE_STREAM"]),
            broker_url=cfg["NOTICE_BROKER_URL"],
            broker_channel=cfg["NOTICE_BROKER_CHANNEL"],
            sse_heartbeat=float(cfg["NOTICE_SSE_HEARTBEAT"]),
            sse_retry=int(cfg["NOTICE_SSE_RETRY"]),
            sse_replay=int(cfg["NOTICE_SSE_REPLAY"]),
            sse_queue=int(cfg["NOTICE_SSE_QUEUE"]),
            stream_max_per_user=int(cfg["NOTICE_STREAM_MAX_PER_USER"]),
            stream_max=int(cfg["NOTICE_STREAM_MAX"]),
            max_request=int(cfg["NOTICE_MAX_REQUEST"]),
            poll_interval=int(cfg["NOTICE_POLL_INTERVAL"]),
            page_size=int(cfg["NOTICE_PAGE_SIZE"]),
            page_max=int(cfg["NOTICE_PAGE_MAX"]),
            badge_counts=str(cfg["NOTICE_BADGE_COUNTS"]),
            base_template=str(cfg["NOTICE_BASE_TEMPLATE"]),
            api_tokens=tuple(cfg["NOTICE_API_TOKENS"]),
            api_auth=cfg["NOTICE_API_AUTH"],
            api_anonymous_devices=cfg["NOTICE_API_ANONYMOUS_DEVICES"],
            api_anonymous_user=cfg["NOTICE_API_ANONYMOUS_USER"],
            api_anonymous_rate=int(cfg["NOTICE_API_ANONYMOUS_RATE"]),
            link_origins=link_origins(cfg),
            celery_batch=int(cfg["NOTICE_CELERY_BATCH"]),
            openapi=cfg["NOTICE_OPENAPI"],
            metrics=cfg["NOTICE_METRICS"],
            metrics_registry=cfg["NOTICE_METRICS_REGISTRY"],
            metrics_endpoint=cfg["NOTICE_METRICS_ENDPOINT"],
            metrics_token=cfg["NOTICE_METRICS_TOKEN"],
        )


def apply_defaults(app: Flask) -> None:
    """Fill in every key the app did not set."""
    for key, value in DEFAULTS.items():
        app.config.setdefault(key, list(value) if isinstance(value, list) else value)


def _positive(app: Flask, key: str, kind: type = int) -> None:
    value = app.config[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ConfigurationError(f"{key} must be a positive number, got {value!r}")
    if kind is int and not isinstance(value, int):
        raise ConfigurationError(f"{key} must be a whole number, got {value!r}")


def warn_unknown_keys(config: Mapping[str, Any]) -> list[str]:
    """Warn (:class:`NoticeConfigWarning`) about each ``NOTICE_*`` key that is not a
    setting, naming the closest one: a misspelt key used to be ignored in silence, and
    the default it meant to change stayed in force. Returns the unknown keys."""
    unknown = sorted(k for k in config if k.startswith("NOTICE_") and k not in DEFAULTS)
    for key in unknown:
        # compared without the prefix every key shares, which alone looks "close"
        close = difflib.get_close_matches(key[7:], [k[7:] for k in DEFAULTS], n=1)
        hint = f"; did you mean NOTICE_{close[0]}?" if close else ""
        # stacklevel 4: the app's init_app call, past validate and Notices.init_app
        warnings.warn(f"{key}: unknown setting{hint}", NoticeConfigWarning, stacklevel=4)
    return unknown


def validate(app: Flask) -> None:
    """Check the core keys; raise ConfigurationError naming the key and the fix; warn
    about unknown ``NOTICE_*`` keys."""
    warn_unknown_keys(app.config)
    mode = app.config["NOTICE_DISPATCH"]
    if mode not in _DISPATCH_MODES:
        raise ConfigurationError(
            f"NOTICE_DISPATCH must be one of {', '.join(_DISPATCH_MODES)}; got {mode!r}"
        )
    senders = app.config["NOTICE_SENDERS"]
    if isinstance(senders, str) or not all(isinstance(s, str) for s in senders):
        raise ConfigurationError(
            f"NOTICE_SENDERS must be a list of sender names or dotted paths, got {senders!r}"
        )
    for key in (
        "NOTICE_THREADS",
        "NOTICE_QUEUE_SIZE",
        "NOTICE_MAX_ATTEMPTS",
        "NOTICE_BATCH_SIZE",
        "NOTICE_MAX_CONTENT",
        "NOTICE_MAX_DATA",
        "NOTICE_MAX_ACTIONS",
        "NOTICE_MAX_LEASE_EXPIRIES",
    ):
        _positive(app, key)
    _positive(app, "NOTICE_CELERY_BATCH")
    for key in (
        "NOTICE_CLAIM_TIMEOUT",
        "NOTICE_SEND_TIMEOUT",
        "NOTICE_RETRY_BASE",
        "NOTICE_RETRY_CAP",
    ):
        _positive(app, key, float)
    claim, send = app.config["NOTICE_CLAIM_TIMEOUT"], app.config["NOTICE_SEND_TIMEOUT"]
    if claim <= send:
        # a send may run for the whole send timeout; a lease no longer than that runs out
        # under a healthy send, and a second worker claims and sends the same row
        raise ConfigurationError(
            f"NOTICE_CLAIM_TIMEOUT ({claim:g} s) must be longer than NOTICE_SEND_TIMEOUT "
            f"({send:g} s): a lease has to outlast a send that runs into its timeout"
        )
    linger = app.config["NOTICE_DISPATCH_LINGER"]
    if isinstance(linger, bool) or not isinstance(linger, (int, float)) or not 0 <= linger <= 1:
        # a longer wait only delays every send: a batch fills up long before
        raise ConfigurationError(
            f"NOTICE_DISPATCH_LINGER must be a number of seconds from 0 to 1, got {linger!r}"
        )
    grace = app.config["NOTICE_SWEEP_GRACE"]
    if isinstance(grace, bool) or not isinstance(grace, (int, float)) or grace < 0:
        raise ConfigurationError(f"NOTICE_SWEEP_GRACE must be a number >= 0, got {grace!r}")
    if app.config["NOTICE_RETRY_BASE"] > app.config["NOTICE_RETRY_CAP"]:
        raise ConfigurationError("NOTICE_RETRY_BASE must not exceed NOTICE_RETRY_CAP")
    jitter = app.config["NOTICE_RETRY_JITTER"]
    if isinstance(jitter, bool) or not isinstance(jitter, (int, float)) or not 0 <= jitter < 1:
        raise ConfigurationError(
            f"NOTICE_RETRY_JITTER must be a fraction in [0, 1), e.g. 0.1; got {jitter!r}"
        )
    _validate_inbox(app)
    _validate_api(app)
    _validate_email(app)
    _validate_metrics(app)
    validate_push(app)
    validate_mobile(app.config)


def _validate_inbox(app: Flask) -> None:
    """Check the inbox, JSON API and live stream keys."""
    cfg = app.config
    for key in (
        "NOTICE_SSE_RETRY",
        "NOTICE_SSE_REPLAY",
        "NOTICE_SSE_QUEUE",
        "NOTICE_POLL_INTERVAL",
        "NOTICE_STREAM_MAX_PER_USER",
        "NOTICE_STREAM_MAX",
        "NOTICE_MAX_REQUEST",
    ):
        _positive(app, key)
    _positive(app, "NOTICE_SSE_HEARTBEAT", float)
    _positive(app, "NOTICE_PAGE_SIZE")
    _positive(app, "NOTICE_PAGE_MAX")
    if cfg["NOTICE_PAGE_SIZE"] > cfg["NOTICE_PAGE_MAX"]:
        raise ConfigurationError("NOTICE_PAGE_SIZE must not exceed NOTICE_PAGE_MAX")
    if cfg["NOTICE_STREAM_MAX_PER_USER"] > cfg["NOTICE_STREAM_MAX"]:
        raise ConfigurationError("NOTICE_STREAM_MAX_PER_USER must not exceed NOTICE_STREAM_MAX")
    url = cfg["NOTICE_BROKER_URL"]
    if url is not None and (not isinstance(url, str) or not url):
        raise ConfigurationError(
            f"NOTICE_BROKER_URL must be None or a URL such as redis://127.0.0.1:6379/0, "
            f"got {type(url).__name__}"
        )
    channel = cfg["NOTICE_BROKER_CHANNEL"]
    if not isinstance(channel, str) or not channel.replace("_", "").replace("-", "").isalnum():
        raise ConfigurationError("NOTICE_BROKER_CHANNEL must be a short name of letters and digits")
    link_origins(cfg)
    badge = cfg["NOTICE_BADGE_COUNTS"]
    if badge not in BADGE_COUNTS:
        raise ConfigurationError(f"NOTICE_BADGE_COUNTS must be 'unread' or 'unseen', got {badge!r}")
    openapi = cfg["NOTICE_OPENAPI"]
    if not isinstance(openapi, bool):
        raise ConfigurationError(f"NOTICE_OPENAPI must be True or False, got {openapi!r}")


def _validate_api(app: Flask) -> None:
    """Check the anonymous device keys of the service API."""
    cfg = app.config
    on = cfg["NOTICE_API_ANONYMOUS_DEVICES"]
    if not isinstance(on, bool):
        raise ConfigurationError(f"NOTICE_API_ANONYMOUS_DEVICES must be True or False, got {on!r}")
    _positive(app, "NOTICE_API_ANONYMOUS_RATE")
    owner = cfg["NOTICE_API_ANONYMOUS_USER"]
    if on and (owner is None or isinstance(owner, bool)):
        raise ConfigurationError(
            "NOTICE_API_ANONYMOUS_DEVICES needs NOTICE_API_ANONYMOUS_USER: the user id "
            "that owns anonymously registered devices (a guest account)"
        )


def _validate_email(app: Flask) -> None:
    """Check the email and webhook keys (sender-specific required
    keys are checked by the senders' ``init_app``)."""
    cfg = app.config
    if cfg["NOTICE_MAIL_USE_TLS"] and cfg["NOTICE_MAIL_USE_SSL"]:
        raise ConfigurationError(
            "set only one of NOTICE_MAIL_USE_TLS (STARTTLS) and NOTICE_MAIL_USE_SSL (SMTPS)"
        )
    port = cfg["NOTICE_MAIL_PORT"]
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise ConfigurationError(f"NOTICE_MAIL_PORT must be a port number, got {port!r}")
    for key in ("NOTICE_MAIL_TIMEOUT", "NOTICE_WEBHOOK_TIMEOUT", "NOTICE_UNSUBSCRIBE_MAX_AGE"):
        _positive(app, key, float)
    validate_preferences(cfg)
    validate_schedule(cfg)
    validate_grouping(cfg)
    validate_throttle(cfg)
    from .fallback import validate as validate_fallback

    validate_fallback(cfg)
    urls = cfg["NOTICE_WEBHOOK_URLS"]
    if isinstance(urls, str) or not all(isinstance(u, str) for u in urls):
        raise ConfigurationError(f"NOTICE_WEBHOOK_URLS must be a list of URLs, got {urls!r}")


def _validate_metrics(app: Flask) -> None:
    """Check the metrics keys, and that prometheus_client is installed when they are on."""
    cfg = app.config
    on, endpoint, token = (
        cfg["NOTICE_METRICS"],
        cfg["NOTICE_METRICS_ENDPOINT"],
        cfg["NOTICE_METRICS_TOKEN"],
    )
    if not isinstance(on, bool):
        raise ConfigurationError(f"NOTICE_METRICS must be True or False, got {on!r}")
    if endpoint is not None and (not isinstance(endpoint, str) or not endpoint.startswith("/")):
        raise ConfigurationError(
            f"NOTICE_METRICS_ENDPOINT must be None or a path such as '/metrics', got {endpoint!r}"
        )
    if token is not None and (not isinstance(token, str) or not token.strip()):
        raise ConfigurationError("NOTICE_METRICS_TOKEN must be None or a non-empty string")
    if not on:
        if endpoint is not None or cfg["NOTICE_METRICS_REGISTRY"] is not None:
            raise ConfigurationError(
                "NOTICE_METRICS_ENDPOINT and NOTICE_METRICS_REGISTRY need NOTICE_METRICS = True"
            )
        return
    try:
        from prometheus_client import CollectorRegistry
    except ImportError as exc:
        raise ConfigurationError(
            f"NOTICE_METRICS needs prometheus_client ({exc}): pip install 'notice[metrics]'"
        ) from exc
    registry = cfg["NOTICE_METRICS_REGISTRY"]
    if not (registry is None or registry == "default" or isinstance(registry, CollectorRegistry)):
        raise ConfigurationError(
            "NOTICE_METRICS_REGISTRY must be None (a registry of the app's own), "
            f"'default' (prometheus_client.REGISTRY) or a CollectorRegistry, got {registry!r}"
        )
