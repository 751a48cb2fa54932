"""Personal API keys on `/account/security`: create one (fresh sign-in needed; the key is shown
once, on the security page, through `session["new_api_key"]`) and revoke one. The list and the
form are templates/account/security/_api_keys.html; the page is app.account.security's."""

from __future__ import annotations

from flask import redirect, request, session, url_for
from flask_login import current_user
from werkzeug.wrappers import Response

from app.account.routes import account_bp
from app.apikeys import service
from app.auth.freshness import fresh_auth_required
from app.auth.guards import login_required
from app.core.toasts import toast
from app.errors import DomainError
from app.i18n import _

NEW_KEY_SESSION_KEY = "new_api_key"  # popped (shown once) by the security page
# The form's expiry limit (API_KEY_MAX_DAYS), for templates/account/security/_api_keys.html.
account_bp.add_app_template_global(service.max_days, name="api_key_max_days")


def _back() -> Response:
    return redirect(url_for("account.security") + "#api-keys-title")


@account_bp.post("/security/api-keys")
@login_required
@fresh_auth_required
def create_api_key() -> Response:
    """Create a key from the form (name, scopes, expiry in days); a refusal is a toast naming
    what to fix."""
    days = request.form.get("expires_in_days", type=int)
    try:
        row, key = service.create(
            current_user._get_current_object(),
            request.form.get("name", ""),
            request.form.getlist("scopes"),
            days if days is not None else -1,
        )
    except DomainError as error:
        toast(error.detail, "error")
        return _back()
    session[NEW_KEY_SESSION_KEY] = {"name": row.name, "key": key}
    return _back()


@account_bp.post("/security/api-keys/<int:key_id>/revoke")
@login_required
def revoke_api_key(key_id: int) -> Response:
    row = service.revoke_own(current_user._get_current_object(), key_id)
    toast(_("The key %(name)s is revoked: it no longer works anywhere.", name=row.name))
    return _back()
