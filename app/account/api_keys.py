"""Personal API keys on `/account/security`: create one (fresh sign-in needed; the key is shown
once, on the security page, kept encrypted in the session until then) and revoke one. The list and the
form are templates/account/security/_api_keys.html; the page is app.account.security's."""

from __future__ import annotations

from typing import Any

from flask import redirect, request, url_for
from flask_login import current_user
from werkzeug.wrappers import Response

from app.account.routes import account_bp
from app.account.security import keep_new_api_key, security_page
from app.apikeys import service
from app.auth.freshness import fresh_auth_required
from app.auth.guards import login_required
from app.core.toasts import toast
from app.errors import DomainError, ValidationFailed
from app.i18n import _

# The form's expiry limit (API_KEY_MAX_DAYS), for templates/account/security/_api_keys.html.
account_bp.add_app_template_global(service.max_days, name="api_key_max_days")


def _back() -> Response:
    return redirect(url_for("account.security") + "#api-keys-title")


@account_bp.post("/security/api-keys")
@login_required
@fresh_auth_required
def create_api_key() -> Any:
    """Create a key from the form (name, scopes, expiry in days); a refusal shows the page again
    with what was typed and the reason (422)."""
    days = request.form.get("expires_in_days", type=int)
    typed = {
        "name": request.form.get("name", "")[:80],
        "scopes": request.form.getlist("scopes"),
        "days": request.form.get("expires_in_days", "")[:6],
    }
    try:
        row, key = service.create(
            current_user._get_current_object(),
            typed["name"],
            typed["scopes"],
            days if days is not None else -1,
        )
    except ValidationFailed as error:
        return security_page(api_key_form={**typed, "error": error.detail}, status=422)
    except DomainError as error:
        return security_page(api_key_form={**typed, "error": error.detail}, status=error.status)
    keep_new_api_key(row.name, key)
    return _back()


@account_bp.post("/security/api-keys/<int:key_id>/revoke")
@login_required
def revoke_api_key(key_id: int) -> Response:
    row = service.revoke_own(current_user._get_current_object(), key_id)
    toast(_("The key %(name)s is revoked: it no longer works anywhere.", name=row.name))
    return _back()
