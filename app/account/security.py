"""`/account/security`: two-factor authentication (authenticator app, recovery codes), then
the sections of passkeys (app.account.passkeys), personal API keys (app.account.api_keys)
and recent security activity.

Recovery codes are shown once, right after they are made: the page shows them on its next
view and offers them as a `.txt` download until downloaded or for RECOVERY_CODES_MINUTES,
kept meanwhile in the cookie session encrypted (never in the clear, never in the database).
"""

from __future__ import annotations

import time
from typing import Any

import segno
from flask import Response, flash, redirect, render_template, session, url_for
from flask_login import current_user
from markupsafe import Markup, escape

from app.account.routes import account_bp
from app.apikeys import service as api_keys_service
from app.auth import accounts, activity, passkeys, second_factor
from app.auth.forms import TotpConfirmForm, TotpDisableForm
from app.auth.freshness import fresh_auth_required
from app.auth.guards import login_required
from app.auth.session_records import current_record
from app.core.net import client_address
from app.core.ratelimit import rate_limited
from app.core.secrets import SecretUnreadable, decrypt, encrypt
from app.errors import DomainError
from app.i18n import _

RECOVERY_CODES_KEY = "hearth_new_recovery_codes"
RECOVERY_CODES_PURPOSE = b"hearth recovery codes shown v1"
RECOVERY_CODES_MINUTES = 10


def _per_account() -> str:
    """Code and password checks here are limited per account, whichever addresses it uses."""
    return f"account:{current_user.get_id()}" if current_user.is_authenticated else client_address()


def qr_code_svg(uri: str) -> Markup:
    """The otpauth:// URI as an inline SVG QR code (made here: no outside service sees it)."""
    label = _("QR code for your authenticator app")
    svg = segno.make(uri, error="m").svg_inline(scale=4, dark="#000", light="#fff", svgclass="qr-code", lineclass=None)
    # segno writes only numbers and fixed markup; the label is escaped.
    return Markup(svg.replace("<svg ", f'<svg role="img" aria-label="{escape(label)}" ', 1))  # noqa: S704


# Recovery codes waiting to be shown / downloaded ------------------------------------------------


def keep_recovery_codes(codes: list[str]) -> None:
    """Show new recovery codes once on the next view of the page (downloadable for 10 minutes)."""
    session[RECOVERY_CODES_KEY] = {
        "codes": encrypt("\n".join(codes), RECOVERY_CODES_PURPOSE),
        "at": int(time.time()),
        "shown": False,
    }


def _kept_codes() -> list[str] | None:
    state = session.get(RECOVERY_CODES_KEY)
    if not isinstance(state, dict):
        return None
    if time.time() - int(state.get("at") or 0) > RECOVERY_CODES_MINUTES * 60:
        session.pop(RECOVERY_CODES_KEY, None)
        return None
    try:
        return decrypt(str(state.get("codes") or ""), RECOVERY_CODES_PURPOSE).split("\n")
    except SecretUnreadable:
        session.pop(RECOVERY_CODES_KEY, None)
        return None


def _codes_to_show() -> list[str] | None:
    """The new codes, the first time the page is shown after they were made."""
    codes = _kept_codes()
    state = session.get(RECOVERY_CODES_KEY)
    if codes is None or state.get("shown"):
        return None
    session[RECOVERY_CODES_KEY] = {**state, "shown": True}
    return codes


# A new API key waiting to be shown (app.account.api_keys) ------------------------------------------

NEW_API_KEY = "hearth_new_api_key"
NEW_API_KEY_PURPOSE = b"hearth api key shown v1"


def keep_new_api_key(name: str, key: str) -> None:
    """Show `key` once, on the next view of this page. The cookie session is signed, not
    encrypted: the key travels in it encrypted, as the recovery codes do."""
    session[NEW_API_KEY] = {"name": name, "key": encrypt(key, NEW_API_KEY_PURPOSE)}


def _pop_new_api_key() -> dict[str, str] | None:
    state = session.pop(NEW_API_KEY, None)
    if not isinstance(state, dict):
        return None
    try:
        return {"name": str(state.get("name") or ""), "key": decrypt(str(state.get("key") or ""), NEW_API_KEY_PURPOSE)}
    except SecretUnreadable:
        return None


def is_impersonating() -> bool:
    record = current_record()
    return record is not None and record.impersonator_id is not None


# The page ----------------------------------------------------------------------------------------


def security_page(
    confirm_form: TotpConfirmForm | None = None,
    disable_form: TotpDisableForm | None = None,
    status: int = 200,
    api_key_form: dict[str, Any] | None = None,
) -> Any:
    """The page; `api_key_form`: what a refused "Create a key" held (name, scopes, days, error),
    shown again as typed (app.account.api_keys)."""
    user = current_user._get_current_object()
    try:
        enrolment = second_factor.pending_totp_enrolment(user)
    except SecretUnreadable:
        enrolment = None  # stored under an older SECRET_KEY: start again
    if is_impersonating():
        enrolment = None  # an administrator viewing as the user never sees a secret of theirs
    return render_template(
        "account/security/index.html",
        user=user,
        totp_enabled=second_factor.has_totp(user),
        enrolment=enrolment,
        enrolment_qr=qr_code_svg(enrolment.otpauth_uri) if enrolment else None,
        confirm_form=confirm_form or TotpConfirmForm(),
        disable_form=disable_form or TotpDisableForm(),
        new_recovery_codes=_codes_to_show(),
        recovery_codes_downloadable=_kept_codes() is not None,
        recovery_codes_remaining=second_factor.remaining_recovery_codes(user) if user.two_factor_enabled else 0,
        passkeys=passkeys.list_for(user.id),
        passkey_registration_options=passkeys.registration_options(user),
        api_keys=api_keys_service.list_for(user.id),
        api_key_scopes=api_keys_service.grantable_scopes(user),
        new_api_key=_pop_new_api_key(),
        api_key_form=api_key_form or {},
        security_events=activity.recent_for(user.id),
    ), status


@account_bp.get("/security")
@login_required
def security() -> Any:
    return security_page()


@account_bp.post("/security/totp")
@login_required
@fresh_auth_required
def totp_begin() -> Any:
    """Start adding an authenticator app: a new secret, shown with its QR code. A recent sign-in
    first (step-up): a borrowed session must not enrol its own app and lock the owner out."""
    try:
        second_factor.begin_totp_enrolment(current_user._get_current_object())
    except DomainError as error:
        flash(error.detail, "error")
    return redirect(url_for("account.security", _anchor="two-factor-title"))


@account_bp.post("/security/totp/confirm")
@rate_limited("10 per minute", key_func=_per_account)
@login_required
@fresh_auth_required
def totp_confirm() -> Any:
    form = TotpConfirmForm()
    if not form.validate_on_submit():
        return security_page(confirm_form=form, status=422)
    try:
        codes = second_factor.confirm_totp(current_user._get_current_object(), form.code.data or "")
    except DomainError as error:
        form.code.errors.append(error.detail)
        return security_page(confirm_form=form, status=error.status)
    keep_recovery_codes(codes)
    flash(_("Two-factor authentication is on. Save your recovery codes now."), "success")
    return redirect(url_for("account.security", _anchor="recovery-title"))


@account_bp.post("/security/totp/cancel")
@login_required
def totp_cancel() -> Response:
    second_factor.cancel_totp_enrolment(current_user._get_current_object())
    return redirect(url_for("account.security"))


@account_bp.post("/security/totp/disable")
@rate_limited("5 per minute", "20 per hour", key_func=_per_account)
@login_required
@fresh_auth_required
def totp_disable() -> Any:
    """Remove the authenticator app: needs a current code (or a recovery code) or the password,
    and a recent sign-in (step-up)."""
    user = current_user._get_current_object()
    form = TotpDisableForm()
    if not form.validate_on_submit():
        return security_page(disable_form=form, status=422)
    code, password = (form.code.data or "").strip(), form.password.data or ""
    try:
        if code:
            second_factor.verify_code(user, code, "totp_disable")
        elif password:
            accounts.check_current_password(user, password, "totp_disable")
        else:
            raise second_factor.InvalidSecondFactor(_("Enter a code from your app, a recovery code or your password."))
        second_factor.disable_totp(user)
    except accounts.CurrentPasswordInvalid as error:
        form.password.errors.append(error.detail)
        return security_page(disable_form=form, status=error.status)
    except DomainError as error:
        form.code.errors.append(error.detail)
        return security_page(disable_form=form, status=error.status)
    if user.two_factor_enabled:
        flash(_("The authenticator app is removed. Your passkeys and recovery codes still work."), "success")
    else:
        flash(_("Two-factor authentication is off."), "success")
    return redirect(url_for("account.security"))


@account_bp.post("/security/recovery-codes")
@rate_limited("10 per hour", key_func=_per_account)
@login_required
@fresh_auth_required
def recovery_codes_regenerate() -> Any:
    """A new set of recovery codes (the old set stops working), shown once."""
    try:
        codes = second_factor.regenerate_recovery_codes(current_user._get_current_object())
    except DomainError as error:
        flash(error.detail, "error")
        return redirect(url_for("account.security"))
    keep_recovery_codes(codes)
    flash(_("New recovery codes made; the old ones no longer work. Save these now."), "success")
    return redirect(url_for("account.security", _anchor="recovery-title"))


@account_bp.get("/security/recovery-codes.txt")
@login_required
def recovery_codes_download() -> Response:
    """The codes just made, as a text file: once, and only within RECOVERY_CODES_MINUTES."""
    codes = _kept_codes()
    session.pop(RECOVERY_CODES_KEY, None)
    if codes is None:
        flash(_("Those recovery codes can no longer be downloaded. Make a new set if you need one."), "info")
        return redirect(url_for("account.security"))
    lines = [
        _("Hearth recovery codes for %(email)s", email=current_user.email),
        _("Each code works once, in place of a code from your authenticator app."),
        "",
        *codes,
        "",
    ]
    return Response(
        "\n".join(lines),
        mimetype="text/plain",
        headers={
            "Content-Disposition": 'attachment; filename="hearth-recovery-codes.txt"',
            "Cache-Control": "no-store",
        },
    )
