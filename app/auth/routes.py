"""Browser sign-in and sign-out, sign-up, email verification and the emailed-link pages.

Where a sign-in lands: the page that asked for it (`?next=`, if it is on this site), else
`/admin` for anyone who may open it (any administrative permission), else `/files`.
Following a verification link signs its account in when this browser is signed out (the link
proves control of the address), then shows `/account`; see `verify_email` for a browser
signed in as someone else."""

from __future__ import annotations

from flask import Blueprint, redirect, render_template, request, url_for
from flask_login import current_user
from werkzeug.wrappers import Response

from app.admin.common import ADMIN_PERMISSIONS
from app.auth import accounts
from app.auth.forms import LoginForm, NewPasswordForm, ResetRequestForm, SignupForm
from app.auth.guards import login_required
from app.auth.service import GENERIC_FAILURE, InvalidCredentials, authenticate
from app.auth.session_records import begin_browser_sign_in, end_session, sign_browser_out
from app.core.forms import apply_service_errors
from app.core.ratelimit import rate_limited
from app.core.redirects import safe_next
from app.core.toasts import toast
from app.errors import ValidationFailed
from app.i18n import _
from app.rbac.service import permissions_of
from app.users.models import User
from app.users.passwords import PasswordHashingBusy

auth_bp = Blueprint("auth", __name__, url_prefix="/auth")


def _landing(user: User) -> str:
    """Where `user` goes after signing in: `?next=` if it is a page on this site, else the
    admin area for staff (anyone holding an administrative permission), else their files."""
    staff = not permissions_of(user.id).isdisjoint(ADMIN_PERMISSIONS)
    return safe_next(request.args.get("next"), url_for("admin.index" if staff else "files.index"))


@auth_bp.route("/login", methods=["GET", "POST"])
@rate_limited("10 per minute", methods=["POST"])
def login() -> str | Response:
    if current_user.is_authenticated:
        return redirect(_landing(current_user))
    form = LoginForm()
    if form.validate_on_submit():
        try:
            user = authenticate(form.email.data or "", form.password.data or "", "browser", request.user_agent.string)
        except InvalidCredentials:
            form.password.errors.append(GENERIC_FAILURE)
            return render_template("auth/login.html", form=form), 401
        except PasswordHashingBusy as busy:
            # The form again with what was typed but the password, rather than an error page.
            form.password.errors.append(busy.description)
            return render_template("auth/login.html", form=form), 503, {"Retry-After": str(busy.retry_after)}
        begin_browser_sign_in(user, remember=bool(form.remember.data))
        toast(_("Welcome back, %(name)s.", name=user.display_name), "success")
        return redirect(_landing(user))
    status = 422 if request.method == "POST" else 200
    return render_template("auth/login.html", form=form), status


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
      nothing of the session before survives), audited as a sign-in by email link;
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
