"""Access tokens: short-lived JWTs (HS256, algorithm pinned), carrying the user's session epoch
and the sign-in (refresh-token family) they belong to.

Verification pins the algorithm, requires `exp`, `iat`, `iss`, `aud`, `sub`, `jti` and `fam`,
checks the `typ` header, and never looks at `jku`/`x5u`/`jwk` headers (PyJWT ignores them with
a static key). A token whose `epoch` is older than the user's current one was revoked by
sign-out-everywhere, a password change or disabling; one whose family `fam` was revoked (API
logout, reuse detection, the account page) is refused too (app.auth.guards).

Verifying a token is most of what an API request's authentication costs (PyJWT parses the
header twice, checks every base64 character in Python, then the HMAC), and a client sends
the same token with every request until it expires. So each app keeps the claims of the
tokens it has verified (`VerifiedTokens`, bounded, least recently used first out): a token
seen before costs one dictionary lookup and the expiry check. Keyed by the whole token string,
so only the exact bytes that passed verification hit; revocation is not affected (the epoch
and the sign-in are checked on every request, app.auth.guards).
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import jwt
from cachetools import LRUCache
from flask import current_app

ALGORITHM = "HS256"
TOKEN_TYPE = "at+jwt"  # noqa: S105  (RFC 9068 JWT type, not a secret)
# `fam`: every token can be revoked with its sign-in (tokens from before it existed are refused).
REQUIRED_CLAIMS = ["exp", "iat", "iss", "aud", "sub", "jti", "fam"]
LEEWAY_SECONDS = 5
VERIFIED_TOKENS_KEY = "hearth.verified_tokens"
VERIFIED_TOKENS_MAX = 2048  # tokens in use at once per process; ~2 KiB each


class InvalidAccessToken(Exception):
    """The bearer token is malformed, expired, forged or revoked."""


def _settings():
    return current_app.extensions["hearth.settings"]


def issue_access_token(user: Any, family_id: str, auth_time: int | None = None) -> tuple[str, int]:
    """A signed access token for `user` in the sign-in `family_id`, and its lifetime in seconds.
    `auth_time` (unix seconds, OpenID Connect's claim): when the person last proved who they
    are in this sign-in; step-up (app.auth.freshness) reads it."""
    settings = _settings()
    now = int(time.time())
    lifetime = settings.access_token_minutes * 60
    claims = {
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "sub": str(user.id),
        "iat": now,
        "nbf": now,
        "exp": now + lifetime,
        "jti": uuid.uuid4().hex,
        "epoch": user.session_epoch,
        "fam": family_id,
    }
    if auth_time is not None:
        claims["auth_time"] = auth_time
    token = jwt.encode(claims, settings.jwt_secret, algorithm=ALGORITHM, headers={"typ": TOKEN_TYPE})
    return token, lifetime


class VerifiedTokens:
    """The claims of tokens this app has verified, so a token is verified once, not on every
    request (see the module docstring). Thread-safe; bounded by `maxsize`."""

    def __init__(self, maxsize: int = VERIFIED_TOKENS_MAX) -> None:
        self._claims: LRUCache = LRUCache(maxsize=maxsize)
        self._lock = threading.Lock()

    def get(self, token: str) -> dict[str, Any] | None:
        """The claims of `token` if it was verified here and has not expired since."""
        with self._lock:
            claims = self._claims.get(token)
        if claims is None:
            return None
        if claims["exp"] <= time.time() - LEEWAY_SECONDS:  # as PyJWT decides expiry
            with self._lock:
                self._claims.pop(token, None)
            raise InvalidAccessToken("Signature has expired")
        return dict(claims)  # a copy: callers may not change what the next request sees

    def add(self, token: str, claims: dict[str, Any]) -> None:
        with self._lock:
            self._claims[token] = dict(claims)


def _verified_tokens() -> VerifiedTokens:
    extensions = current_app.extensions
    verified = extensions.get(VERIFIED_TOKENS_KEY)
    if verified is None:
        verified = extensions.setdefault(VERIFIED_TOKENS_KEY, VerifiedTokens())  # atomic: one per app
    return verified


def decode_access_token(token: str) -> dict[str, Any]:
    """The claims of a valid access token, else `InvalidAccessToken`. A token verified before
    by this app is only checked for expiry (`nbf` and `iat` passed then, so they still do)."""
    verified = _verified_tokens()
    claims = verified.get(token)
    if claims is not None:
        return claims
    settings = _settings()
    try:
        header = jwt.get_unverified_header(token)
        if header.get("typ") != TOKEN_TYPE or header.get("alg") != ALGORITHM:
            raise InvalidAccessToken("unexpected token type or algorithm")
        claims = jwt.decode(
            token,
            settings.jwt_secret,
            algorithms=[ALGORITHM],
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
            options={"require": REQUIRED_CLAIMS},
            leeway=LEEWAY_SECONDS,
        )
    except jwt.PyJWTError as exc:
        raise InvalidAccessToken(str(exc)) from None
    verified.add(token, claims)
    return claims
