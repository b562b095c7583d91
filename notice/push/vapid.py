"""VAPID keys (RFC 8292): generate a pair, and load the configured private key.

``NOTICE_VAPID_PRIVATE_KEY`` may be a PEM file path, PEM text (e.g. from an env var,
with real or ``\\n``-escaped newlines) or base64url of the raw 32-byte scalar or of
the DER encoding (what ``vapid --gen`` and ``web-push generate-vapid-keys`` print).
Error messages never echo the key.
"""

from __future__ import annotations

import base64
import binascii
import os
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ..errors import ConfigurationError


def b64url(data: bytes) -> str:
    """Unpadded base64url, the encoding Web Push uses everywhere."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Decode base64url with or without padding; raise ValueError otherwise."""
    text = "".join(text.split())
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ValueError("not base64url") from exc


@dataclass(frozen=True)
class VapidKeys:
    """A loaded key pair."""

    private_key: ec.EllipticCurvePrivateKey

    @property
    def public_key(self) -> str:
        """The uncompressed public point, base64url: ``applicationServerKey`` in JS."""
        return public_key_b64(self.private_key.public_key())

    def private_raw(self) -> str:
        """The private scalar, base64url (32 bytes), for a config line."""
        return b64url(self.private_key.private_numbers().private_value.to_bytes(32, "big"))

    def private_pem(self) -> str:
        return self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode("ascii")

    def __repr__(self) -> str:  # never show the private key in logs or tracebacks
        return f"<VapidKeys public={self.public_key[:12]}...>"


def public_key_b64(key: ec.EllipticCurvePublicKey) -> str:
    return b64url(
        key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    )


def generate() -> VapidKeys:
    """A new P-256 key pair."""
    return VapidKeys(ec.generate_private_key(ec.SECP256R1()))


def load_private_key(value: object, *, key: str = "NOTICE_VAPID_PRIVATE_KEY") -> VapidKeys:
    """Load a P-256 private key from a PEM path, PEM text or base64url raw/DER.

    :raise ConfigurationError: naming ``key`` and the accepted forms; the value itself
        is never included.
    """
    forms = (
        "a PEM file path, PEM text, or base64url of the raw 32-byte key or its DER "
        "(generate one with `flask notice vapid-keys`)"
    )
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(f"{key} is not set: give {forms}")
    text = value.strip()
    try:
        if "-----BEGIN" not in text and len(text) < 4096 and os.path.isfile(text):
            with open(text, encoding="utf-8") as fh:
                text = fh.read().strip()
        private = _parse(text)
    except OSError as exc:
        raise ConfigurationError(f"{key}: cannot read the key file ({exc.strerror})") from None
    except (ValueError, TypeError, UnicodeDecodeError):
        raise ConfigurationError(f"{key} is not a valid P-256 private key: give {forms}") from None
    if not isinstance(private, ec.EllipticCurvePrivateKey) or not isinstance(
        private.curve, ec.SECP256R1
    ):
        raise ConfigurationError(f"{key} must be a P-256 (prime256v1) EC key: give {forms}")
    return VapidKeys(private)


def _parse(text: str) -> object:
    if "-----BEGIN" in text:
        # env vars often carry PEM with literal "\n" sequences
        pem = text.replace("\\n", "\n").encode("ascii")
        return serialization.load_pem_private_key(pem, password=None)
    raw = b64url_decode(text)
    if len(raw) == 32:
        value = int.from_bytes(raw, "big")
        return ec.derive_private_key(value, ec.SECP256R1())
    return serialization.load_der_private_key(raw, password=None)


def check_public_key(
    value: object, keys: VapidKeys, *, key: str = "NOTICE_VAPID_PUBLIC_KEY"
) -> None:
    """When the app also configures the public key, it must belong to the private one."""
    if value in (None, ""):
        return
    if not isinstance(value, str) or value.strip().rstrip("=") != keys.public_key:
        raise ConfigurationError(
            f"{key} does not match NOTICE_VAPID_PRIVATE_KEY; leave it unset to derive it"
        )
