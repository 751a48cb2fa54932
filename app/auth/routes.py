"""Browser sign-in and sign-out, sign-up, email verification and the emailed-link pages.

Where a sign-in lands: the page that asked for it (`?next=`, if it is on this site), else
`/admin` for anyone who may open it (any administrative permission), else `/files`.
Following a verification link signs its account in when this browser is signed out (the link
proves control of the address), then shows `/account`; see `verify_email` for a browser
signed in as someone else."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user
from werkzeug.wrappers import Response

from app.auth import accounts, passkeys, second_factor, sign_in_flow
from app.auth.forms import LoginForm, NewPasswordForm, ResetRequestForm, SecondFactorForm, SignupForm
from app.auth.guards import login_required
from app.auth.service import GENERIC_FAILURE, InvalidCredentials, authenticate
from app.auth.session_records import begin_browser_sign_in, end_session, sign_browser_out
from app.core.forms import apply_service_errors
from app.core.ratelimit import rate_limited
from app.core.toasts import toast
from app.errors import DomainError, ValidationFailed
from app.i18n import _
from app.users.models import User
from app.users.passwords import PasswordHashingBusy

auth_bp = Blueprint("auth", __name__, url_prefix="/auth")

PASSKEY_FIELD = "passkey_credential"


def _landing(user: User) -> str:
    """Where `user` goes after signing in (app.auth.sign_in_flow `landing`), `?next=` first."""
    return sign_in_flow.landing(user, request.args.get("next"))


def _login_page(form: LoginForm, status: int = 200, headers: dict[str, str] | None = None) -> Any:
    """The sign-in page, with the passkey button (usernameless: any passkey of this site)."""
    next_url = request.args.get("next")
    return (
        render_template(
            "auth/login.html",
            form=form,
            passkey_purpose="sign-in",
            passkey_options=passkeys.authentication_options("sign-in"),
            passkey_form_action=url_for("auth.passkey_sign_in", next=next_url),
            passkey_hidden={},
        ),
        status,
        headers or {},
    )


@auth_bp.route("/login", methods=["GET", "POST"])
@rate_limited("10 per minute", methods=["POST"])
def login() -> Any:
    if current_user.is_authenticated:
        return redirect(_landing(current_user))
    form = LoginForm()
    if form.validate_on_submit():
        try:
            result = authenticate(form.email.data or "", form.password.data or "", "browser", request.user_agent.string)
        except InvalidCredentials:
            form.password.errors.append(GENERIC_FAILURE)
            return _login_page(form, 401)
        except PasswordHashingBusy as busy:
            # The form again with what was typed but the password, rather than an error page.
            form.password.errors.append(busy.description)
            return _login_page(form, 503, {"Retry-After": str(busy.retry_after)})
        if result.second_factor_pending:
            sign_in_flow.start_pending(result.user, bool(form.remember.data), request.args.get("next"))
            return redirect(url_for("auth.two_factor"))
        begin_browser_sign_in(result.user, remember=bool(form.remember.data))
        toast(_("Welcome back, %(name)s.", name=result.user.display_name), "success")
        return redirect(_landing(result.user))
    return _login_page(form, 422 if request.method == "POST" else 200)


def _two_factor_page(user: User, form: SecondFactorForm, status: int = 200) -> Any:
    return render_template(
        "auth/two_factor.html",
        form=form,
        has_totp=second_factor.has_totp(user),
        passkey_purpose="second-factor",
        passkey_options=passkeys.authentication_options("second-factor", user=user),
        passkey_form_action=url_for("auth.two_factor"),
        passkey_hidden={},
    ), status


@auth_bp.route("/2fa", methods=["GET", "POST"])
@rate_limited("10 per minute", methods=["POST"])
def two_factor() -> Any:
    """The second step of a sign-in with two-factor: a code from the authenticator app, a
    recovery code, or a passkey (its response posted as `passkey_credential`). Wrong answers
    count toward the lockout as wrong passwords do."""
    if current_user.is_authenticated:
        return redirect(_landing(current_user))
    user = sign_in_flow.pending_user()
    if user is None:
        flash(_("Sign in again: the sign-in was not finished within 5 minutes."), "info")
        return redirect(url_for("auth.login"))
    form = SecondFactorForm()
    if request.method == "GET":
        return _two_factor_page(user, form)
    if not form.validate_on_submit():
        return _two_factor_page(user, form, 422)
    credential = request.form.get(PASSKEY_FIELD)
    try:
        if credential:
            passkeys.verify_authentication("second-factor", credential, user=user)
            method = "passkey"
        else:
            method = second_factor.verify_code(user, form.code.data or "", "browser")
    except DomainError as error:  # a wrong code or passkey, or a locked-out client (429)
        form.code.errors.append(error.detail)
        return _two_factor_page(user, form, error.status)
    return sign_in_flow.finish_browser_sign_in(user, method)


@auth_bp.post("/2fa/cancel")
def cancel_two_factor() -> Response:
    """Give up a sign-in waiting for its second factor (back to the sign-in page)."""
    sign_in_flow.cancel_pending()
    return redirect(url_for("auth.login"))


@auth_bp.post("/logout")
def logout() -> Response:
    if current_user.is_authenticated:
        end_session(current_user.id)
    sign_browser_out()
    toast(_("You have been signed out."), "success")
    return redirect(url_for("main.index"))


@auth_bp.route("/signup", methods=["GET", "POST"])
@rate_limited("10 per hour", methods=["POST"])
def signup() -> str | Response:
    if current_user.is_authenticated:
        return redirect(_landing(current_user))
    form = SignupForm()
    if form.validate_on_submit():
        try:
            accounts.sign_up(form.email.data or "", form.display_name.data or "", form.password.data or "")
        except ValidationFailed as error:
            apply_service_errors(form, error)
            return render_template("auth/signup.html", form=form), 422
        # The same answer whether or not the address already had an account.
        return render_template("auth/check_inbox.html", email=form.email.data)
    return render_template("auth/signup.html", form=form), 422 if request.method == "POST" else 200


@auth_bp.get("/verify/<token>")
def verify_email(token: str) -> str | Response:
    """Confirm the address, then show the account. The token works once (the rules of
    app.auth.accounts `verify_email`); following it proves control of the address, so:

    - signed out: the account is signed in, with a new session (as a password sign-in:
      nothing of the session before survives), audited as a sign-in by email link; unless
      it has a second factor, which the link does not prove: then the sign-in page;
    - signed in as that account: nothing changes but the address;
    - signed in as *another* account: the address is confirmed but the browser stays signed
      in as it is, and says so. A link anyone can email must not swap the account someone
      is working in for another one (their next upload would land in the sender's account).
    """
    try:
        user = accounts.verify_email(token)
    except ValidationFailed as error:
        return render_template("auth/link_invalid.html", detail=error.detail), 400
    if current_user.is_authenticated and current_user.id != user.id:
        toast(
            _(
                "That email address is confirmed, for another account than the one signed in here. "
                "To use it, sign out and sign in with that address."
            ),
            "warning",
        )
        return redirect(url_for("account.index"))
    if not current_user.is_authenticated:
        if not user.is_active:
            toast(_("Email confirmed"), "success")
            return redirect(url_for("auth.login"))  # a disabled account is never signed in
        if user.two_factor_enabled:
            # The link proves the mailbox, not the second factor: sign in the usual way.
            toast(_("Email confirmed. Sign in to continue."), "success")
            return redirect(url_for("auth.login"))
        begin_browser_sign_in(user, fresh=False)  # clears the session first: flash after it
        accounts.record_email_link_sign_in(user)
    toast(_("Email confirmed"), "success")
    return redirect(url_for("account.index"))


@auth_bp.post("/verify/resend")
@rate_limited("3 per hour")
@login_required
def resend_verification() -> Response:
    accounts.resend_verification(current_user)
    toast(_("We sent a new confirmation link. It is valid for 24 hours."), "success")
    return redirect(url_for("account.index"))


@auth_bp.route("/reset", methods=["GET", "POST"])
@rate_limited("5 per hour", methods=["POST"])
def reset_request() -> str | Response:
    form = ResetRequestForm()
    if form.validate_on_submit():
        accounts.request_password_reset(form.email.data or "")
        return render_template("auth/check_inbox.html", email=form.email.data, reset=True)
    return render_template("auth/reset_request.html", form=form), 422 if request.method == "POST" else 200


@auth_bp.route("/reset/<token>", methods=["GET", "POST"])
@rate_limited("10 per hour", methods=["POST"])
def reset_password(token: str) -> str | Response:
    try:
        accounts.check_reset_token(token)
    except ValidationFailed as error:
        return render_template("auth/link_invalid.html", detail=error.detail), 400
    form = NewPasswordForm()
    if form.validate_on_submit():
        try:
            accounts.reset_password(token, form.password.data or "")
        except accounts.InvalidAccountToken as error:
            return render_template("auth/link_invalid.html", detail=error.detail), 400
        except ValidationFailed as error:
            apply_service_errors(form, error)
            return render_template("auth/reset_password.html", form=form, token=token), 422
        sign_browser_out()
        toast(_("Your password is changed and every other session is signed out. Sign in with the new one."), "success")
        return redirect(url_for("auth.login"))
    return render_template("auth/reset_password.html", form=form, token=token), 422 if request.method == "POST" else 200


@auth_bp.route("/email/undo/<token>", methods=["GET", "POST"])
@rate_limited("10 per hour", methods=["POST"])
def undo_email_change(token: str) -> str | Response:
    """From the notice sent to the old address. GET only shows what happens (mail scanners
    open links); the POST does it, then leads straight to choosing a new password."""
    try:
        if request.method == "GET":
            address = accounts.address_to_restore(token)
            return render_template("auth/undo_email_change.html", token=token, address=address)
        reset_token = accounts.undo_email_change(token)
    except ValidationFailed as error:
        return render_template("auth/link_invalid.html", detail=error.detail), 400
    sign_browser_out()
    toast(_("The change of address is undone and every device is signed out. Choose a new password."), "success")
    return redirect(url_for("auth.reset_password", token=reset_token))


@auth_bp.route("/unlock/<token>", methods=["GET", "POST"])
@rate_limited("10 per hour", methods=["POST"])
def unlock_account(token: str) -> str | Response:
    """From the lockout notice. GET shows a button (mail scanners open links); POST unlocks."""
    try:
        if request.method == "GET":
            accounts.check_unlock_token(token)
            return render_template("auth/unlock_account.html", token=token)
        accounts.unlock_account(token)
    except ValidationFailed as error:
        return render_template("auth/link_invalid.html", detail=error.detail), 400
    toast(_("Your account is unlocked. Sign in."), "success")
    return redirect(url_for("auth.login"))
