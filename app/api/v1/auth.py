"""`POST /api/v1/auth/token`, `/auth/refresh`, `/auth/logout`: bearer tokens for integrators."""

from __future__ import annotations

from flask import Response, request

from app.api.openapi import api_operation
from app.api.v1.blueprint import v1_bp
from app.api.v1.schemas import RefreshRequest, TokenPairOut, TokenRequest
from app.auth import service
from app.core.ratelimit import rate_limited


def _pair_out(pair: service.TokenPair) -> TokenPairOut:
    return TokenPairOut(
        access_token=pair.access_token,
        refresh_token=pair.refresh_token,
        token_type=pair.token_type,
        expires_in=pair.expires_in,
    )


@api_operation(
    v1_bp,
    "/auth/token",
    method="POST",
    summary="Get a token pair",
    tags=("auth",),
    body=TokenRequest,
    response=TokenPairOut,
    errors=(401, 403, 429, 503),
)
@rate_limited("10 per minute")
def create_token(body: TokenRequest) -> TokenPairOut:
    """Exchange email and password for an access token (ACCESS_TOKEN_MINUTES, 15 by default) and
    a refresh token (REFRESH_TOKEN_DAYS, 30 by default).

    Wrong credentials, unknown emails, locked and disabled accounts all answer the same 401.
    An account with two-factor authentication also sends `otp`: without it the answer is 401
    `otp-required` (the password was right), with a wrong or already used code 401
    `invalid-otp`. An account whose role requires two-factor (REQUIRE_2FA_FOR_ROLES) and has
    none gets 403 `two-factor-setup-required`: set it up in the browser on /account/security.
    During a storm of sign-ins, one past this process's line of password checks gets 503 with
    Retry-After (PASSWORD_HASH_QUEUE): retry after that many seconds.
    """
    return _pair_out(service.sign_in_for_tokens(body.email, body.password, request.user_agent.string, otp=body.otp))


@api_operation(
    v1_bp,
    "/auth/refresh",
    method="POST",
    summary="Rotate a refresh token",
    tags=("auth",),
    body=RefreshRequest,
    response=TokenPairOut,
    errors=(401,),
)
@rate_limited("30 per minute")
def refresh_token(body: RefreshRequest) -> TokenPairOut:
    """Exchange a refresh token for a new pair. The presented token is revoked; presenting it
    again revokes every token of that sign-in (reuse detection)."""
    return _pair_out(service.rotate_refresh_token(body.refresh_token, request.user_agent.string))


@api_operation(
    v1_bp, "/auth/logout", method="POST", summary="Revoke a sign-in", tags=("auth",), body=RefreshRequest, status=204
)
def revoke_tokens(body: RefreshRequest) -> Response:
    """Revoke the sign-in the presented refresh token belongs to: every refresh token of it, and
    its unexpired access tokens, which are refused from the next request on."""
    service.logout_refresh_token(body.refresh_token)
    return Response(status=204)
