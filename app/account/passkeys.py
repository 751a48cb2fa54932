"""Passkeys on `/account/security`: add (the browser's response to the registration options
the security page carries), rename and remove. Adding and removing need a fresh sign-in
(app.auth.freshness): a passkey signs in alone, so a borrowed session must not add one, and
removing the last one can turn two-factor authentication off. A session that is no longer
fresh is offered the re-authentication page before the browser makes a passkey (one made and
then refused would stay on the authenticator, unusable). Each answers with the security page
again (redirect), saying what happened."""

from __future__ import annotations

from typing import Any

from flask import redirect, request, url_for
from flask_login import current_user
from werkzeug.wrappers import Response

from app.account.routes import account_bp
from app.account.security import keep_recovery_codes
from app.auth import passkeys, second_factor
from app.auth.freshness import fresh_auth_required, is_fresh
from app.auth.guards import login_required
from app.core.ratelimit import rate_limited
from app.core.toasts import toast
from app.errors import ValidationFailed
from app.i18n import _


@account_bp.context_processor
def _passkey_helpers() -> dict[str, Any]:
    """For templates/account/security/_passkeys.html: `passkey_needs_reauth()`, called only
    where the section renders (it reads the session record the request already loaded)."""
    return {"passkey_needs_reauth": _needs_reauth}


def _needs_reauth() -> bool:
    return not is_fresh()


def _back() -> Response:
    return redirect(url_for("account.security", _anchor="passkeys"), 303)


@account_bp.post("/security/passkeys")
@rate_limited("10 per minute")
@login_required
@fresh_auth_required
def passkey_register() -> Response:
    try:
        passkey = passkeys.register(
            current_user._get_current_object(),
            request.form.get("name", ""),
            request.form.get(passkeys.FIELD, ""),
        )
    except ValidationFailed as error:
        toast(error.detail, "error")
        return _back()
    toast(_("Passkey “%(name)s” added. You can sign in with it now.", name=passkey.name), "success")
    codes = second_factor.take_new_recovery_codes()
    if codes:  # the account's first factor: its recovery codes, shown once on the page
        keep_recovery_codes(codes)
        toast(_("Two-factor authentication is on. Save your recovery codes now."), "success")
        return redirect(url_for("account.security", _anchor="recovery-title"), 303)
    return _back()


@account_bp.post("/security/passkeys/<int:passkey_id>/rename")
@login_required
def passkey_rename(passkey_id: int) -> Response:
    try:
        passkey = passkeys.rename(current_user._get_current_object(), passkey_id, request.form.get("name", ""))
    except ValidationFailed as error:
        toast(error.detail, "error")
    else:
        toast(_("Passkey renamed to “%(name)s”.", name=passkey.name), "success")
    return _back()


@account_bp.post("/security/passkeys/<int:passkey_id>/remove")
@login_required
@fresh_auth_required
def passkey_remove(passkey_id: int) -> Response:
    passkeys.remove(current_user._get_current_object(), passkey_id)
    toast(_("Passkey removed."), "success")
    return _back()
