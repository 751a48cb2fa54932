"""Step-up: sensitive actions need the person to have proved who they are within the last
FRESH_AUTH_MINUTES (default 10): changing roles and permissions, disabling or deleting users,
registering webhooks, creating API keys, disabling 2FA, impersonating.

"Proved" means, in this browser: the password sign-in (with its second factor), a passkey
sign-in, or the re-authentication page (/auth/reauthenticate, app.auth.reauth_routes:
password, TOTP or recovery code, or a passkey). A session resumed from "keep me signed in",
or opened by an emailed link, is not fresh. `UserSession.authenticated_at` holds the moment;
the correct current password of a password or email change counts too (`mark_fresh`).

On the API the access token's `auth_time` claim (the password sign-in of its refresh family,
app.auth.tokens) is the moment: an older one answers 401 problem `reauthentication-required`
(sign in again with POST /api/v1/auth/token). A personal API key proves nobody just now: 403
`api-key-not-allowed`. An impersonation session is never fresh.

A browser POST that is not fresh gets the re-authentication page in its answer, carrying the
submitted fields (signed, in one hidden field; never the CSRF token or a field named like a
password), and after it a page that posts them again to the same URL (auto-submitted with
JavaScript, a "Continue" button without): nothing typed is lost. Uploaded files cannot be
carried (no guarded form has one).

`fresh_auth_required` reads only what the request already loaded (the session record loaded
with the user, or the token's claims): it costs a guarded request no query.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from functools import wraps
from typing import Any

from flask import abort, current_app, g, make_response, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from itsdangerous import BadSignature, URLSafeTimedSerializer
from werkzeug.wrappers import Response
from wtforms import PasswordField, StringField
from wtforms.validators import Length

from app.auth import passkeys
from app.auth.guards import ApiKeyNotAllowed, bearer_user_id, check_access, current_api_key
from app.auth.session_records import current_record
from app.core.api_paths import is_api_request
from app.core.database import utcnow
from app.core.redirects import safe_next
from app.core.templating import is_htmx_request
from app.core.unit_of_work import unit_of_work
from app.errors import PermissionDenied, Unauthorized
from app.i18n import _, _l
from app.users.models import User

FRESH_ATTR = "__hearth_fresh_auth__"  # on a guarded view: OpenAPI notes and tests can find them
CARRY_SALT = "hearth.reauthenticate.carried"
CARRY_MAX_AGE = 3600  # seconds a re-authentication page may stay open and still carry its form
# Never carried: the old CSRF token (the continue page has a new one) and secrets (anything
# named like a password, one-time codes, a passkey's answer): those are typed again if needed.
NOT_CARRIED = frozenset({"csrf_token", "code", "otp", "passkey_credential"})
SECRET_NAME_PARTS = ("password", "recovery")


class ReauthenticationRequired(Unauthorized):
    """The action needs a recent sign-in and this one is older (API: sign in again)."""

    slug = "reauthentication-required"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(
            detail
            or _(
                "This action needs a recent sign-in: get a new access token with POST /api/v1/auth/token "
                "(with your one-time code as `otp` if you use two-factor authentication), then try again."
            )
        )


class ReauthenticateForm(FlaskForm):
    """The re-authentication page's fields: the password, or a second-factor code."""

    password = PasswordField(
        _l("Password"), validators=[Length(max=1024)], render_kw={"autocomplete": "current-password"}
    )
    code = StringField(
        _l("Code from your authenticator app, or a recovery code"),
        validators=[Length(max=64)],
        render_kw={"autocomplete": "one-time-code", "inputmode": "text", "spellcheck": "false"},
    )


@dataclass(frozen=True)
class Carried:
    """A POST waiting for re-authentication: where it went and what it carried."""

    target: str
    fields: list[tuple[str, str]]


# Freshness ----------------------------------------------------------------------------------


def _window() -> timedelta:
    return timedelta(minutes=current_app.extensions["hearth.settings"].fresh_auth_minutes)


def is_fresh() -> bool:
    """Whether whoever makes this request proved who they are within FRESH_AUTH_MINUTES."""
    if is_api_request():
        if bearer_user_id() is None or current_api_key() is not None:
            return False
        auth_time = g.get("api_auth_time")
        if auth_time is None:
            return False
        return -60 <= time.time() - float(auth_time) <= _window().total_seconds()
    if not current_user.is_authenticated:
        return False
    row = current_record()
    if row is None or row.impersonator_id is not None or row.authenticated_at is None:
        return False
    return utcnow() - row.authenticated_at <= _window()


def mark_fresh() -> None:
    """This browser's person just proved who they are (re-authentication, or the current
    password of a change): step-up accepts their session for FRESH_AUTH_MINUTES from now.
    (An API token's `auth_time` is fixed: the API signs in again instead.)"""
    if is_api_request():
        return
    row = current_record()
    if row is None or row.impersonator_id is not None:
        return
    with unit_of_work():
        row.authenticated_at = utcnow()


def fresh_auth_required(view: Callable[..., Any]) -> Callable[..., Any]:
    """Guard a sensitive view; put it under the permission guard (401/403 come first).

    Not fresh: the API answers 401 `reauthentication-required` (a personal API key: 403
    `api-key-not-allowed`). A browser GET goes to /auth/reauthenticate and back; a browser POST
    gets the re-authentication page itself (200) carrying its fields (module docstring)."""

    @wraps(view)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        if not is_fresh():
            return _step_up()
        return view(*args, **kwargs)

    setattr(guarded, FRESH_ATTR, True)
    return guarded


def require_fresh_auth() -> None:
    """`fresh_auth_required` inside a view, for an action that is sensitive only with some of
    its input (an API PATCH that changes roles or disables the user)."""
    if not is_fresh():
        abort(make_response(_step_up()))


def _step_up() -> Response | tuple[str, int]:
    check_access()  # nobody signed in: 401 (API) or the sign-in page, as any guarded view
    if is_api_request():
        if current_api_key() is not None:
            raise ApiKeyNotAllowed()
        raise ReauthenticationRequired()
    row = current_record()
    if row is not None and row.impersonator_id is not None:
        raise PermissionDenied(_("Viewing as another user cannot do this."))
    if request.method in ("GET", "HEAD"):
        return redirect(url_for("auth.reauthenticate", next=request.full_path.rstrip("?")))
    if is_htmx_request():
        # A swap cannot show a page: the whole window goes to it, and back to where it was.
        response = Response(status=204)
        back = safe_next(request.referrer, url_for("main.index"))
        response.headers["HX-Redirect"] = url_for("auth.reauthenticate", next=back)
        return response
    if request.accept_mimetypes.best_match(("text/html", "application/json"), default="text/html") != "text/html":
        # A page's script: a problem it can read, rather than a page.
        raise ReauthenticationRequired(_("This action needs a recent sign-in: confirm it is you, then try again."))
    carried = Carried(request.full_path.rstrip("?"), _carried_fields())
    return reauthentication_page(current_user._get_current_object(), None, carried)


def _carried_fields() -> list[tuple[str, str]]:
    return [
        (name, value)
        for name, value in request.form.items(multi=True)
        if name not in NOT_CARRIED and not any(part in name.lower() for part in SECRET_NAME_PARTS)
    ]


# The page -----------------------------------------------------------------------------------


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=CARRY_SALT)


def _bound_to() -> list[Any]:
    """Whose carried form it is: this user in this browser session (its record's id)."""
    record = current_record()
    return [current_user.get_id() if current_user.is_authenticated else None, record.id if record else None]


def seal(carried: Carried) -> str:
    """The carried form as one signed hidden field (tampering makes it void), bound to this
    user's session: another account's or another browser's sealed form is refused."""
    return _serializer().dumps(
        {"to": carried.target, "fields": [list(pair) for pair in carried.fields], "by": _bound_to()}
    )


def unseal(value: str | None) -> Carried | None:
    """The carried form back, if `value` is one we sealed (within CARRY_MAX_AGE) for a path here,
    in this user's session."""
    if not value:
        return None
    try:
        data = _serializer().loads(value, max_age=CARRY_MAX_AGE)
        target = safe_next(data["to"], "")
        fields = [(str(name), str(field_value)) for name, field_value in data["fields"]]
        bound = data["by"]
    except (BadSignature, KeyError, TypeError, ValueError):
        return None
    if bound != _bound_to():
        return None
    return Carried(target, fields) if target else None


def reauthentication_page(
    user: User,
    next_url: str | None,
    carried: Carried | None,
    form: ReauthenticateForm | None = None,
    status: int = 200,
    error: str | None = None,
) -> tuple[str, int]:
    """/auth/reauthenticate's page (also the answer to a stale POST): password, code (with
    two-factor) or passkey (when the user has one), each posting to /auth/reauthenticate."""
    form = form or ReauthenticateForm(formdata=None)
    sealed = seal(carried) if carried is not None else None
    hidden = {"next": next_url or ""}
    if sealed:
        hidden["carried"] = sealed
    return render_template(
        "auth/reauthenticate.html",
        form=form,
        hidden=hidden,
        carried=carried is not None,
        error=error,
        two_factor=bool(user.two_factor_enabled),
        passkey_purpose="reauthenticate",
        passkey_options=passkeys.authentication_options("reauthenticate", user),
        passkey_form_action=url_for("auth.reauthenticate"),
        passkey_hidden=hidden,
    ), status


def continue_page(carried: Carried) -> str:
    """After re-authentication: the form that posts the carried fields again (new CSRF token)."""
    return render_template("auth/continue.html", target=carried.target, fields=carried.fields)
