"""Standard Webhooks signatures (https://www.standardwebhooks.com) and the secrets behind them.

A secret is `whsec_` + base64 of 32 random bytes; the HMAC key is those bytes (what the
`standardwebhooks` libraries decode). A signature is `v1,<base64 HMAC-SHA256 of
"{webhook-id}.{webhook-timestamp}.{body}">`; during a rotation the header carries the new
and the old one, separated by a space, and receivers accept either.

Secrets are stored encrypted (app.core.secrets: Fernet under a key derived from SECRET_KEY
with HKDF and a label of its own, so the key is never the one that signs sessions).
Changing SECRET_KEY makes stored secrets unreadable: rotate every endpoint's secret
afterwards (docs/webhooks.md).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Iterable

from app.core.secrets import SecretUnreadable, decrypt, encrypt

SECRET_PREFIX = "whsec_"  # noqa: S105  (the format's prefix, not a secret)
SECRET_BYTES = 32
SIGNATURE_VERSION = "v1"
_HKDF_INFO = b"hearth webhook secrets v1"

__all__ = ["SecretUnreadable", "decrypt_secret", "encrypt_secret", "generate_secret", "headers", "sign"]


def generate_secret() -> str:
    """A new signing secret, `whsec_<base64 of 32 random bytes>`."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def secret_key_bytes(secret: str) -> bytes:
    """The HMAC key of a `whsec_` secret: its base64 part decoded (as the libraries do)."""
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX) + "==")


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """One `v1,<base64>` signature of the body for this id and unix timestamp."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key_bytes(secret), signed, hashlib.sha256).digest()
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode('ascii')}"


def signature_header(signing_secrets: Iterable[str], message_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value: one signature per secret, space-separated (current first)."""
    return " ".join(sign(secret, message_id, timestamp, body) for secret in signing_secrets)


def headers(signing_secrets: Iterable[str], message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers of one attempt."""
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature_header(signing_secrets, message_id, timestamp, body),
    }


# At rest -------------------------------------------------------------------------------------


def encrypt_secret(secret: str) -> str:
    """The secret as stored (a Fernet token, app.core.secrets)."""
    return encrypt(secret, _HKDF_INFO)


def decrypt_secret(token: str) -> str:
    """The secret a stored token holds; SecretUnreadable if SECRET_KEY changed meanwhile."""
    return decrypt(token, _HKDF_INFO)
