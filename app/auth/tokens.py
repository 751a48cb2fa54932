"""Access tokens: short-lived JWTs (HS256, algorithm pinned), carrying the user's session epoch
and the sign-in (refresh-token family) they belong to.

Verification pins the algorithm, requires `exp`, `iat`, `iss`, `aud`, `sub`, `jti` and `fam`,
checks the `typ` header, and never looks at `jku`/`x5u`/`jwk` headers (PyJWT ignores them with
a static key). A token whose `epoch` is older than the user's current one was revoked by
sign-out-everywhere, a password change or disabling; one whose family `fam` was revoked (API
logout, reuse detection, the account page) is refused too (app.auth.guards).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import jwt
from flask import current_app

ALGORITHM = "HS256"
TOKEN_TYPE = "at+jwt"  # noqa: S105  (RFC 9068 JWT type, not a secret)
# `fam`: every token can be revoked with its sign-in (tokens from before it existed are refused).
REQUIRED_CLAIMS = ["exp", "iat", "iss", "aud", "sub", "jti", "fam"]


class InvalidAccessToken(Exception):
    """The bearer token is malformed, expired, forged or revoked."""


def _settings():
    return current_app.extensions["hearth.settings"]


def issue_access_token(user: Any, family_id: str) -> tuple[str, int]:
    """A signed access token for `user` in the sign-in `family_id`, and its lifetime in seconds."""
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
    token = jwt.encode(claims, settings.jwt_secret, algorithm=ALGORITHM, headers={"typ": TOKEN_TYPE})
    return token, lifetime


def decode_access_token(token: str) -> dict[str, Any]:
    settings = _settings()
    try:
        header = jwt.get_unverified_header(token)
        if header.get("typ") != TOKEN_TYPE or header.get("alg") != ALGORITHM:
            raise InvalidAccessToken("unexpected token type or algorithm")
        return jwt.decode(
            token,
            settings.jwt_secret,
            algorithms=[ALGORITHM],
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
            options={"require": REQUIRED_CLAIMS},
            leeway=5,
        )
    except jwt.PyJWTError as exc:
        raise InvalidAccessToken(str(exc)) from None
