"""Secrets Hearth must read back (webhook signing secrets, TOTP seeds), encrypted at rest.

Fernet (AES-128-CBC + HMAC-SHA256) under a key derived from SECRET_KEY with HKDF-SHA256 and a
label per purpose, so no stored secret is under the key that signs sessions, and one purpose's
key opens nothing of another's. Changing SECRET_KEY makes every stored secret unreadable
(`SecretUnreadable`): docs/configuration.md says what to do then.
"""

from __future__ import annotations

import base64

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import current_app


class SecretUnreadable(Exception):
    """A stored secret no longer decrypts: SECRET_KEY changed since it was stored."""


def _fernet(purpose: bytes) -> Fernet:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(
        current_app.config["SECRET_KEY"].encode()
    )
    return Fernet(base64.urlsafe_b64encode(key))


def encrypt(value: str, purpose: bytes) -> str:
    """`value` as stored: a Fernet token under the key of `purpose` (e.g. b"hearth totp v1")."""
    return _fernet(purpose).encrypt(value.encode()).decode("ascii")


def decrypt(token: str, purpose: bytes) -> str:
    """What a stored token of `purpose` holds; `SecretUnreadable` if SECRET_KEY changed meanwhile."""
    try:
        return _fernet(purpose).decrypt(token.encode()).decode()
    except InvalidToken:
        raise SecretUnreadable(f"stored under another SECRET_KEY ({purpose.decode()})") from None
