"""`/auth/reauthenticate`: step-up before a sensitive action (app.auth.freshness).

GET shows the page (reached by a redirect from a guarded GET, `?next=` its path); POST checks
one proof — the password, a TOTP or recovery code (app.auth.second_factor.verify_code), or a
passkey (`passkey_credential`, app.auth.passkeys with purpose "reauthenticate") — each counting
toward the sign-in lockout when wrong. Then the session is fresh (`mark_fresh`, audited as
`reauthenticated` with the method), and the browser goes on: to `next` for a GET, or to the
page that posts the carried form again (templates/auth/continue.html).
"""

from __future__ import annotations

from flask import redirect, request, url_for
from flask_login import current_user
from werkzeug.wrappers import Response

from app.audit.service import record
from app.auth import accounts, passkeys, second_factor
from app.auth.freshness import (
    ReauthenticateForm,
    continue_page,
    mark_fresh,
    reauthentication_page,
    unseal,
)
from app.auth.guards import login_required
from app.auth.routes import auth_bp
from app.auth.session_records import current_record
from app.core.net import client_address
from app.core.ratelimit import rate_limited
from app.core.redirects import safe_next
from app.core.toasts import toast
from app.core.unit_of_work import unit_of_work
from app.errors import DomainError, PermissionDenied
from app.i18n import _

CHANNEL = "reauthenticate"


def _per_account() -> str:
    """Guesses on this page count per account, whichever addresses a session uses."""
    return f"reauth:{current_user.get_id()}" if current_user.is_authenticated else client_address()


@auth_bp.route("/reauthenticate", methods=["GET", "POST"])
@rate_limited("10 per minute", "30 per hour", key_func=_per_account, methods=["POST"])
@login_required
def reauthenticate() -> Response | tuple[str, int] | str:
    user = current_user._get_current_object()
    row = current_record()
    if row is not None and row.impersonator_id is not None:
        raise PermissionDenied(_("Viewing as another user cannot do this."))
    next_url = safe_next(request.values.get("next"), "") or None
    if request.method == "GET":
        return reauthentication_page(user, next_url, None)
    carried = unseal(request.form.get("carried"))
    form = ReauthenticateForm()
    if not form.validate():
        return reauthentication_page(user, next_url, carried, form=form, status=422)
    credential = request.form.get("passkey_credential")
    code = (form.code.data or "").strip()
    proof = "passkey" if credential else ("code" if code else "password")
    try:
        if proof == "passkey":
            proven = passkeys.verify_authentication(CHANNEL, credential or "", user=user)
            if proven.id != user.id:  # verify_authentication ensures it; never rely on that alone
                raise PermissionDenied(_("That passkey belongs to another account."))
            method = "passkey"
        elif proof == "code":
            method = second_factor.verify_code(user, code, CHANNEL)
        else:
            accounts.check_current_password(user, form.password.data or "", channel=CHANNEL)
            method = "password"
    except DomainError as error:
        status = error.status if error.status in (403, 429) else 422
        field = {"password": form.password, "code": form.code}.get(proof)
        if field is None:  # the passkey: a message over the page
            return reauthentication_page(user, next_url, carried, form=form, status=status, error=error.detail)
        field.errors = [*field.errors, _field_message(error)]
        return reauthentication_page(user, next_url, carried, form=form, status=status)
    mark_fresh()
    with unit_of_work():
        record("reauthenticated", actor_id=user.id, subject_id=user.id, method=method)
    if carried is not None:
        return continue_page(carried)
    toast(_("Thank you: you can go on."), "success")
    return redirect(next_url or url_for("account.index"))


def _field_message(error: DomainError) -> str:
    """A service error's message for its field (the first one it names), else its detail."""
    for item in error.extra.get("errors") or []:
        if item.get("message"):
            return item["message"]
    return error.detail
