"""The loopback push service must be as strict as a real one, or E2E tests prove nothing."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import http_ece
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid import Vapid, Vapid01
from py_vapid.jwt import sign as jwt_sign
from pywebpush import WebPusher, WebPushException, webpush

from tests.support.pushservice import (
    BrowserKeys,
    PushRejected,
    PushService,
    b64url_decode,
    b64url_encode,
    verify_vapid,
    wait_for,
)

SUB = "mailto:test@example.org"


def _vapid() -> Vapid:
    v = Vapid()
    v.generate_keys()
    return v


def _public_b64(v: Vapid01) -> str:
    raw = v.public_key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return b64url_encode(raw)


@pytest.fixture(scope="module")
def vapid() -> Vapid:
    return _vapid()


@pytest.fixture
def service(vapid: Vapid) -> Iterator[PushService]:
    with PushService(vapid_public_key_b64url=_public_b64(vapid)) as svc:
        svc.timeout_sleep = 0.5
        yield svc


@pytest.fixture
def session() -> Iterator[requests.Session]:
    s = requests.Session()
    s.trust_env = False  # never route loopback traffic through an env proxy
    with s:
        yield s


def _send(
    sub: dict[str, Any],
    data: str,
    vapid: Vapid01,
    session: requests.Session,
    claims: dict[str, Any] | None = None,
    timeout: float = 5,
    **kwargs: Any,
) -> requests.Response:
    return webpush(
        sub,
        data=data,
        vapid_private_key=vapid,
        vapid_claims=claims if claims is not None else {"sub": SUB},
        timeout=timeout,
        requests_session=session,
        **kwargs,
    )


def _raw_post(
    session: requests.Session,
    sub: dict[str, Any],
    headers: dict[str, str],
    data: bytes = b"",
    timeout: float = 5,
) -> requests.Response:
    return session.post(sub["endpoint"], data=data, headers=headers, timeout=timeout)


def _encrypt_for(sub: dict[str, Any], payload: bytes) -> bytes:
    pusher = WebPusher(sub)
    return pusher.encode(payload, "aes128gcm")["body"]


# ----------------------------------------------------------------------------- happy path


def test_pywebpush_roundtrip_decrypts_payload(service, vapid, session):
    sub = service.new_subscription("alice")
    assert sub["endpoint"].startswith(service.origin + "/push/")
    assert sub["endpoint"].endswith("-alice")
    assert service.origin.startswith("http://127.0.0.1:")

    claims = {"sub": SUB}
    payload = '{"title": "Hi", "body": "h\u00e9llo"}'
    resp = _send(sub, payload, vapid, session, claims=claims, ttl=60)

    assert resp.status_code == 201
    assert resp.headers["Location"].startswith(service.origin + "/message/")
    [msg] = service.received
    assert msg.token == PushService.token_of(sub)
    assert msg.payload == payload.encode("utf-8")
    assert msg.json() == {"title": "Hi", "body": "h\u00e9llo"}
    assert msg.ttl == 60
    assert msg.headers["Content-Encoding"] == "aes128gcm"
    assert msg.claims["aud"] == service.origin
    assert msg.claims["sub"] == SUB
    assert time.time() < msg.claims["exp"] <= time.time() + 24 * 3600
    assert service.attempts == [(msg.token, 201)]
    # pywebpush writes aud and exp into the caller's claims dict.
    assert claims["aud"] == service.origin and "exp" in claims


def test_pywebpush_defaults_ttl_zero(service, vapid, session):
    sub = service.new_subscription()
    _send(sub, "x", vapid, session)
    assert service.received[0].headers["TTL"] == "0"


def test_legacy_webpush_scheme_with_crypto_key_is_accepted(session):
    legacy = Vapid01()
    legacy.generate_keys()
    with PushService() as svc:
        sub = svc.new_subscription()
        _send(sub, "legacy", legacy, session)
        [msg] = svc.received
    assert msg.headers["Authorization"].startswith("WebPush ")
    assert "p256ecdsa=" in msg.headers["Crypto-Key"]
    assert msg.payload == b"legacy"


def test_payloadless_push_is_accepted(service, vapid, session):
    sub = service.new_subscription()
    headers = vapid.sign({"sub": SUB, "aud": service.origin})
    resp = _raw_post(session, sub, {**headers, "TTL": "0"})
    assert resp.status_code == 201
    assert service.received[0].payload == b""


# ----------------------------------------------------------------------------- VAPID checks


def test_missing_authorization_is_401(service, session):
    sub = service.new_subscription()
    body = _encrypt_for(sub, b"hello")
    resp = _raw_post(session, sub, {"TTL": "0", "Content-Encoding": "aes128gcm"}, body)
    assert resp.status_code == 401
    assert resp.headers["WWW-Authenticate"] == "vapid"
    assert "Authorization" in resp.text
    assert service.received == []


def test_jwt_signed_by_other_key_is_rejected(service, vapid, session):
    sub = service.new_subscription()
    forger = _vapid()
    token = jwt_sign(
        {"sub": SUB, "aud": service.origin, "exp": int(time.time()) + 3600}, forger.private_key
    )
    headers = {
        # the real application server's public key, but a JWT signed by someone else
        "Authorization": f"vapid t={token}, k={_public_b64(vapid)}",
        "TTL": "0",
        "Content-Encoding": "aes128gcm",
    }
    resp = _raw_post(session, sub, headers, _encrypt_for(sub, b"evil"))
    assert resp.status_code == 401
    assert "signature" in resp.text
    assert service.received == []


def test_valid_jwt_from_unexpected_key_is_403(service, session):
    sub = service.new_subscription()
    with pytest.raises(WebPushException) as exc:
        _send(sub, "hello", _vapid(), session)
    assert exc.value.status_code == 403
    assert service.received == []


def test_tampered_claims_are_rejected(service, vapid, session):
    sub = service.new_subscription()
    auth = vapid.sign({"sub": SUB, "aud": service.origin})["Authorization"]
    params = dict(p.split("=", 1) for p in auth.split(" ", 1)[1].split(","))
    header, _claims, sig = params["t"].split(".")
    forged_claims = b64url_encode(
        b'{"aud":"%s","exp":9999999999,"sub":"%s"}' % (service.origin.encode(), SUB.encode())
    )
    forged = f"vapid t={header}.{forged_claims}.{sig},k={params['k']}"
    resp = _raw_post(session, sub, {"Authorization": forged, "TTL": "0"})
    assert resp.status_code == 401


@pytest.mark.parametrize(
    "aud",
    ["http://127.0.0.1:1", "https://fcm.googleapis.com", "http://localhost:{port}"],
)
def test_wrong_aud_is_rejected(service, vapid, session, aud):
    port = service.origin.rsplit(":", 1)[1]
    aud = aud.format(port=port, origin=service.origin)
    sub = service.new_subscription()
    with pytest.raises(WebPushException) as exc:
        _send(sub, "hello", vapid, session, claims={"sub": SUB, "aud": aud})
    assert exc.value.status_code == 401
    assert "aud" in exc.value.response.text


@pytest.mark.parametrize("suffix", ["/", "/push"])
def test_aud_must_be_the_bare_origin(service, vapid, session, suffix):
    # py_vapid refuses to sign such an aud, so build the JWT by hand.
    sub = service.new_subscription()
    claims = {"sub": SUB, "aud": service.origin + suffix, "exp": int(time.time()) + 600}
    auth = f"vapid t={jwt_sign(claims, vapid.private_key)}, k={_public_b64(vapid)}"
    resp = _raw_post(session, sub, {"Authorization": auth, "TTL": "0"})
    assert resp.status_code == 401
    assert "aud" in resp.text


def test_reused_claims_dict_carries_stale_aud_to_other_service(vapid, session):
    """pywebpush stores aud in the claims dict: reusing it for another origin fails."""
    key = _public_b64(vapid)
    claims = {"sub": SUB}
    with PushService(key) as first, PushService(key) as second:
        _send(first.new_subscription(), "one", vapid, session, claims=claims)
        with pytest.raises(WebPushException) as exc:
            _send(second.new_subscription(), "two", vapid, session, claims=claims)
    assert exc.value.status_code == 401
    assert claims["aud"] == first.origin


def test_expired_exp_is_rejected(service, vapid, session):
    sub = service.new_subscription()
    # py_vapid signs whatever exp it gets; webpush() would replace an expired one.
    headers = vapid.sign({"sub": SUB, "aud": service.origin, "exp": int(time.time()) - 5})
    resp = WebPusher(sub, requests_session=session).send("hello", headers, ttl=30, timeout=5)
    assert resp.status_code == 401
    assert "expired" in resp.text
    assert service.received == []


def test_webpush_silently_refreshes_an_expired_exp(service, vapid, session):
    sub = service.new_subscription()
    claims = {"sub": SUB, "exp": int(time.time()) - 5}
    assert _send(sub, "hello", vapid, session, claims=claims).status_code == 201
    assert claims["exp"] > time.time()


def test_exp_more_than_24h_ahead_is_rejected(service, vapid, session):
    sub = service.new_subscription()
    headers = vapid.sign({"sub": SUB, "aud": service.origin, "exp": int(time.time()) + 25 * 3600})
    resp = WebPusher(sub, requests_session=session).send("hello", headers, ttl=30, timeout=5)
    assert resp.status_code == 401
    assert "24 hours" in resp.text


@pytest.mark.parametrize("sub_claim", [None, "test@example.org", "http://example.org"])
def test_bad_sub_is_rejected(service, vapid, session, sub_claim):
    sub = service.new_subscription()
    claims: dict[str, Any] = {"aud": service.origin, "exp": int(time.time()) + 600}
    if sub_claim is not None:
        claims["sub"] = sub_claim
    token = jwt_sign(claims, vapid.private_key)
    auth = f"vapid t={token}, k={_public_b64(vapid)}"
    body = _encrypt_for(sub, b"x")
    resp = _raw_post(
        session, sub, {"Authorization": auth, "TTL": "0", "Content-Encoding": "aes128gcm"}, body
    )
    assert resp.status_code == 401
    assert "sub" in resp.text


def test_verify_vapid_unit(vapid):
    aud = "http://127.0.0.1:9"
    header = vapid.sign({"sub": SUB, "aud": aud})["Authorization"]
    claims, k = verify_vapid(header, aud, expected_key=_public_b64(vapid))
    assert claims["sub"] == SUB and k == _public_b64(vapid)
    with pytest.raises(PushRejected) as rej:
        verify_vapid(header, aud, now=time.time() + 2 * 86400)
    assert rej.value.status == 401
    with pytest.raises(PushRejected):
        verify_vapid("Bearer abc", aud)
    with pytest.raises(PushRejected):
        verify_vapid(header.replace("k=", "k=AAAA"), aud)


# ----------------------------------------------------------------------------- body checks


def test_body_over_4096_bytes_is_413(service, vapid, session):
    sub = service.new_subscription()
    with pytest.raises(WebPushException) as exc:
        _send(sub, "x" * 4100, vapid, session)
    assert exc.value.status_code == 413
    assert service.received == []


def test_largest_single_record_payload_fits(service, vapid, session):
    sub = service.new_subscription()
    # 4096 - 86 (header) - 16 (tag) - 1 (delimiter)
    payload = "y" * 3993
    assert _send(sub, payload, vapid, session).status_code == 201
    assert service.received[0].payload == payload.encode()


def test_ttl_is_required(service, vapid, session):
    sub = service.new_subscription()
    headers = vapid.sign({"sub": SUB, "aud": service.origin})
    resp = _raw_post(
        session, sub, {**headers, "Content-Encoding": "aes128gcm"}, _encrypt_for(sub, b"hi")
    )
    assert resp.status_code == 400
    assert "TTL" in resp.text


def test_content_encoding_aes128gcm_is_required(service, vapid, session):
    sub = service.new_subscription()
    headers = vapid.sign({"sub": SUB, "aud": service.origin})
    resp = _raw_post(session, sub, {**headers, "TTL": "0"}, _encrypt_for(sub, b"hi"))
    assert resp.status_code == 400
    with pytest.raises(WebPushException) as exc:
        _send(sub, "hi", vapid, session, content_encoding="aesgcm")
    assert exc.value.status_code == 400
    assert "aes128gcm" in exc.value.response.text


def test_payload_for_another_subscription_does_not_decrypt(service, vapid, session):
    sub, other = service.new_subscription(), service.new_subscription()
    headers = vapid.sign({"sub": SUB, "aud": service.origin})
    body = _encrypt_for(other, b"not yours")
    resp = _raw_post(session, sub, {**headers, "TTL": "0", "Content-Encoding": "aes128gcm"}, body)
    assert resp.status_code == 400
    assert "decrypt" in resp.text


# ----------------------------------------------------------------------------- subscriptions


def test_unknown_token_is_404_and_gone_is_410(service, vapid, session):
    sub = service.new_subscription()
    unknown = {**sub, "endpoint": service.origin + "/push/nope"}
    with pytest.raises(WebPushException) as exc:
        _send(unknown, "hello", vapid, session)
    assert exc.value.status_code == 404

    service.mark_gone(PushService.token_of(sub))
    with pytest.raises(WebPushException) as exc:
        _send(sub, "hello", vapid, session)
    assert exc.value.status_code == 410
    assert service.received == []


# ----------------------------------------------------------------------------- scripting


def test_scripted_responses_come_first_then_normal_handling(service, vapid, session):
    sub = service.new_subscription()
    token = PushService.token_of(sub)
    service.script(token, [(429, ("Retry-After", "2")), 500, (503, {"Retry-After": "7"})])

    with pytest.raises(WebPushException) as exc:
        _send(sub, "one", vapid, session)
    assert exc.value.status_code == 429
    assert exc.value.retry_after == "2"
    with pytest.raises(WebPushException) as exc:
        _send(sub, "two", vapid, session)
    assert exc.value.status_code == 500
    with pytest.raises(WebPushException) as exc:
        _send(sub, "three", vapid, session)
    assert exc.value.retry_after == "7"
    assert _send(sub, "four", vapid, session).status_code == 201

    assert service.attempts_for(token) == [429, 500, 503, 201]
    assert [m.payload for m in service.received] == [b"four"]


def test_scripted_410(service, vapid, session):
    sub = service.new_subscription()
    service.script(PushService.token_of(sub), [410])
    with pytest.raises(WebPushException) as exc:
        _send(sub, "x", vapid, session)
    assert exc.value.status_code == 410
    assert _send(sub, "x", vapid, session).status_code == 201


def test_scripted_timeout_hangs_then_closes_without_answer(service, vapid, session):
    sub = service.new_subscription()
    token = PushService.token_of(sub)
    service.script(token, ["timeout", "timeout"])

    started = time.monotonic()
    with pytest.raises(requests.exceptions.Timeout):
        _send(sub, "x", vapid, session, timeout=0.2)
    assert time.monotonic() - started < 0.45

    with pytest.raises(requests.exceptions.ConnectionError):
        # the client waits longer than timeout_sleep: the connection just closes
        _send(sub, "x", vapid, session, timeout=3)
    assert service.attempts_for(token) == ["timeout", "timeout"]
    assert service.received == []


def test_stop_does_not_wait_for_hung_handlers(vapid):
    svc = PushService().start()
    sub = svc.new_subscription()
    svc.timeout_sleep = 30
    svc.script(PushService.token_of(sub), ["timeout"])
    errors: list[BaseException] = []

    def client() -> None:
        s = requests.Session()
        s.trust_env = False
        try:
            _send(sub, "x", vapid, s, timeout=10)
        except BaseException as exc:
            errors.append(exc)
        finally:
            s.close()

    t = threading.Thread(target=client, daemon=True)
    t.start()
    assert wait_for(lambda: svc.attempts)
    started = time.monotonic()
    svc.stop()
    t.join(5)
    assert time.monotonic() - started < 2
    assert not t.is_alive()
    assert errors and isinstance(errors[0], requests.exceptions.ConnectionError)


# ----------------------------------------------------------------------------- browser keys


def test_browser_keys_format_and_decrypt():
    keys = BrowserKeys()
    raw = b64url_decode(keys.p256dh)
    assert len(raw) == 65 and raw[0] == 4
    assert len(b64url_decode(keys.auth)) == 16
    assert "=" not in keys.p256dh + keys.auth

    sender = ec.generate_private_key(ec.SECP256R1())
    body = http_ece.encrypt(
        b"payload",
        private_key=sender,
        dh=raw,
        auth_secret=b64url_decode(keys.auth),
        version="aes128gcm",
    )
    assert keys.decrypt(body) == b"payload"

    with pytest.raises(ValueError):
        BrowserKeys().decrypt(body)  # other browser
    multi = http_ece.encrypt(
        os.urandom(100),
        private_key=sender,
        dh=raw,
        auth_secret=keys.auth_secret,
        version="aes128gcm",
        rs=50,
    )
    with pytest.raises(ValueError, match="one aes128gcm record"):
        keys.decrypt(multi)


def test_wait_for():
    assert wait_for(lambda: 42, timeout=0.1) == 42
    with pytest.raises(TimeoutError):
        wait_for(lambda: False, timeout=0.05)


def test_concurrent_pushes_are_all_recorded(service, vapid):
    subs = [service.new_subscription(f"u{i}") for i in range(12)]

    def push(i: int) -> int:
        with requests.Session() as s:
            s.trust_env = False
            return _send(subs[i], f"msg-{i}", vapid, s).status_code

    with ThreadPoolExecutor(max_workers=12) as pool:
        statuses = list(pool.map(push, range(12)))
    assert statuses == [201] * 12
    got = {m.token: m.payload for m in service.received}
    assert got == {PushService.token_of(s): f"msg-{i}".encode() for i, s in enumerate(subs)}
    assert len(service.attempts) == 12
