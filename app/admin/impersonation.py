"""`POST /admin/users/<id>/impersonate` and `POST /admin/impersonation/stop`: "view as".

The rules are app.auth.impersonation's, the browser side app.auth.session_records'. Starting
needs `users:impersonate` and a recent sign-in (step-up); stopping needs nothing but a browser
that is viewing as someone: the viewed user holds no admin permission, and the read-only rule
lets this one POST (and sign-out) through.
"""

from __future__ import annotations

from flask import Response, current_app, redirect, url_for

from app.admin.common import actor, admin_bp, permissions
from app.auth import impersonation, session_records
from app.auth.freshness import fresh_auth_required
from app.auth.guards import login_required, permission_required
from app.core.toasts import toast
from app.i18n import _
from app.users import management as user_management
from app.users.models import User


@admin_bp.post("/users/<int:user_id>/impersonate")
@permission_required(impersonation.PERMISSION)
@fresh_auth_required
def impersonate(user_id: int) -> Response:
    """View the site as the user, read-only, for IMPERSONATION_MINUTES (403 with the reason
    when not allowed)."""
    target = user_management.get_user(user_id)
    session_records.begin_impersonation(actor(), target, permissions())
    toast(
        _("You are viewing the site as %(name)s, read-only. Stop from the banner.", name=target.display_name),
        "info",
    )
    return redirect(url_for("files.index"))


@admin_bp.post("/impersonation/stop")
@login_required
def stop_impersonation() -> Response:
    """Back to yourself (or to the sign-in page, when your own session ended meanwhile)."""
    ended = session_records.end_impersonation("stopped")
    if ended is None:
        return redirect(url_for("main.index"))
    toast(_("You stopped viewing as another user."), "success")
    return redirect(url_for("admin.user_detail", user_id=ended.user_id))


def impersonation_refusal(user: User) -> str | None:
    """For the user page: why the signed-in administrator may not view as `user` (shown
    instead of the button), or None."""
    return impersonation.refusal(actor(), user, permissions())


def impersonation_minutes() -> int:
    """How long viewing as someone lasts at most (IMPERSONATION_MINUTES)."""
    return current_app.extensions["hearth.settings"].impersonation_minutes


admin_bp.add_app_template_global(impersonation_refusal)
admin_bp.add_app_template_global(impersonation_minutes)
