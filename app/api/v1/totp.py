"""`/api/v1/me/totp`: set up, confirm and remove the signed-in user's authenticator app.

Personal API keys may not touch two-factor (`api-key-not-allowed`): only a person with a
password-grant token may."""

from __future__ import annotations

from flask import Response

from app.api.openapi import api_operation
from app.api.v1.blueprint import v1_bp
from app.api.v1.schemas import RecoveryCodesOut, TotpCode, TotpDisable, TotpEnrolmentOut
from app.auth import accounts, second_factor
from app.auth.freshness import fresh_auth_required
from app.auth.guards import current_actor, no_api_keys
from app.core.ratelimit import rate_limited
from app.i18n import _


@api_operation(
    v1_bp,
    "/me/totp",
    method="POST",
    summary="Start setting up an authenticator app",
    tags=("me",),
    response=TotpEnrolmentOut,
    auth=True,
    errors=(401, 403, 409),
)
@no_api_keys
@fresh_auth_required
def begin_totp() -> TotpEnrolmentOut:
    """A new secret for an authenticator app (TOTP: 30 s, 6 digits), not active until confirmed
    with `POST /me/totp/confirm`; it replaces one not yet confirmed. 409 `totp-already-enabled`
    while one is active. Needs a recent sign-in (else 401 `reauthentication-required`): a
    stolen token must not enrol its own app."""
    enrolment = second_factor.begin_totp_enrolment(current_actor())
    return TotpEnrolmentOut(secret=enrolment.secret, otpauth_uri=enrolment.otpauth_uri)


@api_operation(
    v1_bp,
    "/me/totp/confirm",
    method="POST",
    summary="Turn on the authenticator app",
    tags=("me",),
    body=TotpCode,
    response=RecoveryCodesOut,
    auth=True,
    errors=(401, 403, 409, 422),
)
@rate_limited("10 per minute")
@no_api_keys
@fresh_auth_required
def confirm_totp(body: TotpCode) -> RecoveryCodesOut:
    """Confirm the app with a current code: two-factor is on from now, and the answer holds 10
    single-use recovery codes, shown only this once. A wrong code: 422 `invalid-second-factor`."""
    return RecoveryCodesOut(recovery_codes=second_factor.confirm_totp(current_actor(), body.code))


@api_operation(
    v1_bp,
    "/me/totp",
    method="DELETE",
    summary="Remove the authenticator app",
    tags=("me",),
    body=TotpDisable,
    status=204,
    auth=True,
    errors=(401, 403, 409, 422, 429),
)
@rate_limited("5 per minute")
@no_api_keys
@fresh_auth_required
def delete_totp(body: TotpDisable) -> Response:
    """Needs `code` (a current code or a recovery code) or `password`, and a recent sign-in
    (FRESH_AUTH_MINUTES; else 401 `reauthentication-required`). Recovery codes stay while a
    passkey remains; otherwise two-factor is off."""
    user = current_actor()
    if body.code and body.code.strip():
        second_factor.verify_code(user, body.code, "api")
    elif body.password:
        accounts.check_current_password(user, body.password, "api")
    else:
        raise second_factor.InvalidSecondFactor(_("Send `code` (a current or recovery code) or `password`."))
    second_factor.disable_totp(user)
    return Response(status=204)
