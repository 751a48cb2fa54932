"""`POST /auth/passkey`: sign in with a passkey alone, without typing an email (the login
page's "Sign in with a passkey", templates/auth/_passkey_sign_in.html). A passkey checked with
user verification is both factors, so the sign-in finishes at once (app.auth.sign_in_flow).
A refusal goes back to the login page with the reason (a passkey response cannot be typed
again, so there is no form to show it on)."""

from __future__ import annotations

from flask import redirect, request, url_for
from flask_login import current_user
from werkzeug.wrappers import Response

from app.auth import passkeys, sign_in_flow
from app.auth.routes import auth_bp
from app.core.ratelimit import rate_limited
from app.core.toasts import toast


@auth_bp.post("/passkey")
@rate_limited("10 per minute")
def passkey_sign_in() -> Response:
    if current_user.is_authenticated:
        return redirect(url_for("auth.login", next=request.args.get("next")))
    try:
        user = passkeys.verify_authentication(passkeys.SIGN_IN, request.form.get(passkeys.FIELD, ""))
    except passkeys.InvalidPasskey as error:
        toast(error.detail, "error")
        return redirect(url_for("auth.login", next=request.args.get("next")), 303)
    return sign_in_flow.finish_browser_sign_in(user, "passkey")
