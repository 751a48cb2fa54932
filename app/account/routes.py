"""`/account`: edit profile, change password, list and revoke sessions and API sign-ins."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, session, url_for
from flask_login import current_user
from werkzeug.wrappers import Response

from app.account.forms import LanguageForm, PasswordForm, ProfileForm
from app.auth import accounts
from app.auth import service as auth_service
from app.auth.freshness import mark_fresh
from app.auth.guards import login_required
from app.auth.session_records import SESSION_KEY, active_sessions, begin_browser_sign_in, revoke_session
from app.core.forms import apply_service_errors
from app.core.net import client_address
from app.core.ratelimit import rate_limited
from app.core.templating import is_htmx_request
from app.errors import ValidationFailed
from app.i18n import _, refresh_locale
from app.uploads import service as uploads
from app.users import service as users_service

account_bp = Blueprint("account", __name__, url_prefix="/account")


def _page(
    profile: ProfileForm | None = None,
    password: PasswordForm | None = None,
    language: LanguageForm | None = None,
    status: int = 200,
):
    user = current_user
    choices = uploads.avatar_choices(user.id)
    profile = profile or ProfileForm(data={"display_name": user.display_name, "email": user.email})
    return render_template(
        "account/index.html",
        profile=profile,
        password=password or PasswordForm(),
        language=language or LanguageForm(data={"locale": user.locale or ""}),
        sessions=active_sessions(user.id),
        current_sid=session.get(SESSION_KEY),
        api_sign_ins=auth_service.api_sign_ins(user.id),
        avatar_choices=choices,
        thumbnails={u.id: uploads.thumbnail_url(u) for u in choices},
    ), status


def _continue_here() -> None:
    """After an epoch bump, keep this browser signed in with a fresh session."""
    begin_browser_sign_in(current_user._get_current_object())


@account_bp.get("/")
@login_required
def index():
    return _page()


@account_bp.post("/profile")
@login_required
def update_profile():
    form = ProfileForm()
    if not form.validate_on_submit():
        return _page(profile=form, status=422)
    try:
        pending = accounts.update_profile(
            current_user, form.display_name.data or "", form.email.data or "", form.current_password.data
        )
    except accounts.TooManyPasswordAttempts as error:
        apply_service_errors(form, error)
        return _page(profile=form, status=429)
    except ValidationFailed as error:
        apply_service_errors(form, error)
        return _page(profile=form, status=422)
    if pending:
        mark_fresh()  # the current password was just checked: that is a step-up (app.auth.freshness)
        flash(_("Profile saved. Confirm the new address with the link we sent to it."), "success")
    else:
        flash(_("Profile saved."), "success")
    return redirect(url_for("account.index"))


@account_bp.post("/language")
@login_required
def update_language():
    form = LanguageForm()
    if not form.validate_on_submit():
        return _page(language=form, status=422)
    try:
        users_service.set_preferred_locale(current_user._get_current_object(), form.preferred_locale())
    except ValidationFailed as error:
        apply_service_errors(form, error)
        return _page(language=form, status=422)
    refresh_locale()  # the confirmation below, and the next page, in the language just chosen
    flash(_("Language saved."), "success")
    return redirect(url_for("account.index"))


@account_bp.post("/avatar")
@login_required
def update_avatar() -> Response:
    choice = request.form.get("upload_id") or None
    try:
        uploads.set_avatar(current_user._get_current_object(), choice)
    except ValidationFailed as error:
        flash(error.detail, "error")
    else:
        flash(_("Avatar updated.") if choice else _("Avatar removed."), "success")
    return redirect(url_for("account.index"))


def _per_account() -> str:
    """Limits on password checks count per account, whichever addresses a session uses."""
    return f"account:{current_user.get_id()}" if current_user.is_authenticated else client_address()


@account_bp.post("/password")
@rate_limited("5 per minute", "20 per hour", key_func=_per_account)
@login_required
def change_password():
    form = PasswordForm()
    if not form.validate_on_submit():
        return _page(password=form, status=422)
    try:
        accounts.change_password(current_user, form.current_password.data or "", form.new_password.data or "")
    except accounts.TooManyPasswordAttempts as error:
        apply_service_errors(form, error)
        return _page(password=form, status=429)
    except ValidationFailed as error:
        apply_service_errors(form, error)
        return _page(password=form, status=422)
    _continue_here()
    flash(_("Password changed. Every other session and API sign-in has been signed out."), "success")
    return redirect(url_for("account.index"))


@account_bp.post("/sessions/<sid>/revoke")
@login_required
def revoke_browser_session(sid: str) -> Response | str:
    if not revoke_session(current_user.id, sid):
        abort(404)
    if is_htmx_request():
        return ""
    flash(_("Session signed out."), "success")
    return redirect(url_for("account.index"))


@account_bp.post("/api-sign-ins/<family_id>/revoke")
@login_required
def revoke_api_sign_in(family_id: str) -> Response | str:
    if not auth_service.revoke_api_sign_in(current_user.id, family_id):
        abort(404)
    if is_htmx_request():
        return ""
    flash(_("API sign-in revoked."), "success")
    return redirect(url_for("account.index"))


@account_bp.post("/sign-out-everywhere")
@login_required
def sign_out_everywhere_view() -> Response:
    auth_service.sign_out_everywhere(current_user._get_current_object(), reason="user_request")
    _continue_here()
    flash(_("Every other session and API sign-in has been signed out."), "success")
    return redirect(url_for("account.index"))
