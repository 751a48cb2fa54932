"""`/admin/users`: search, filters, sort, bulk actions, exports (CSV, XLSX) and the user detail page."""

from __future__ import annotations

from typing import Any

from flask import Response, redirect, render_template, request, url_for

from app.admin.common import (
    actor,
    admin_bp,
    ask_confirmation,
    can,
    confirmed,
    job_rows,
    permissions,
    render_list,
    run_action,
    user_status_labels,
)
from app.apikeys import service as api_keys
from app.audit.service import AuditFilter, emails_of, recent
from app.auth import service as auth_service
from app.auth import session_records
from app.auth.freshness import fresh_auth_required
from app.auth.guards import permission_required
from app.core.toasts import toast
from app.errors import DomainError, PermissionDenied, ValidationFailed
from app.exports import service as exports
from app.exports.catalogue import kind_label
from app.i18n import _, ngettext
from app.jobs import management as job_management
from app.jobs.management import JobFilter
from app.uploads import service as uploads
from app.users import management as user_management

PAGE_SIZE = 25
RECENT_UPLOADS = 10


USER_EXPORT_KINDS = ("users_csv", "users_xlsx")
FILTER_ARGS = ("q", "role", "status", "verified", "sort")


def _filter_args(args: Any) -> dict[str, str]:
    """The list's filters as they appear in its query string (the export form repeats them)."""
    return {name: args.get(name) for name in FILTER_ARGS if args.get(name)}


def _filters(args: Any = None) -> dict:
    args = request.args if args is None else args
    sort = args.get("sort", "email")
    verified = {"yes": True, "no": False}.get(args.get("verified", ""))
    return {
        "q": (args.get("q") or "").strip()[:100] or None,
        "role": args.get("role") or None,
        "status": args.get("status") if args.get("status") in user_management.STATUSES else None,
        "verified": verified,
        "sort": sort if sort.lstrip("-") in user_management.SORTABLE else "email",
    }


@admin_bp.get("/users")
@permission_required("users:read")
def users() -> str:
    filters = _filters()
    page = user_management.list_users(filters, request.args.get("page", 1, type=int), PAGE_SIZE)
    return render_list(
        "admin/users/index.html",
        "admin/users/_list.html",
        page=page,
        filters=filters,
        verified=request.args.get("verified", ""),
        roles=user_management.role_names(),
        statuses=user_management.STATUSES,
        status_words=user_status_labels(),
    )


@admin_bp.post("/users/export")
@permission_required("users:read")
def export_users() -> Response:
    """Start an export of the filtered list (users_csv, or users_xlsx) on the `reports` queue
    and go to /exports, where it shows its progress and, once ready, its download. (The list
    used to stream as CSV from here; a queued export holds no request thread for a large list
    and ends in a notification.) A refusal (the per-user limit) is a toast back on the list."""
    kind = request.form.get("kind") if request.form.get("kind") in USER_EXPORT_KINDS else "users_csv"

    try:
        exports.request_export(actor(), kind, _filters(request.form))
    except DomainError as error:
        toast(error.detail, "error")
        return redirect(url_for("admin.users", **_filter_args(request.form)))
    toast(
        _("%(name)s is being prepared: it appears here, and you are notified when it is ready.", name=kind_label(kind)),
        "success",
    )
    return redirect(url_for("exports.index"))


@admin_bp.post("/users/bulk")
@permission_required("users:write")
@fresh_auth_required
def bulk_users() -> Response | str:
    action = request.form.get("action", "")
    # type=int skips what is not an id, including numbers beyond the column (app.core.input).
    ids = request.form.getlist("user_ids", type=int)
    back = url_for("admin.users")

    role = request.form.get("role", "").strip()

    def apply() -> str:
        if not ids:
            raise ValidationFailed(_("Select at least one user."))
        if action == "disable":
            outcome = user_management.bulk_disable(actor(), permissions(), ids)
            return outcome.summary(ngettext("Disabled %(num)d user.", "Disabled %(num)d users.", len(outcome.changed)))
        if action == "assign_role":
            # Never a default: the form's role picker starts on "Choose a role…" (no value).
            if not role:
                raise ValidationFailed(_("Choose a role to assign."))
            outcome = user_management.bulk_assign_role(actor(), permissions(), ids, role)
            return outcome.summary(
                ngettext(
                    "Gave the %(role)s role to %(num)d user.",
                    "Gave the %(role)s role to %(num)d users.",
                    len(outcome.changed),
                    role=repr(role),
                )
            )
        raise ValidationFailed(_("Choose an action."))

    if action == "assign_role" and not can("roles:manage"):
        raise PermissionDenied(_("Assigning roles needs the 'roles:manage' permission."))
    if action == "disable" and ids and not confirmed():
        return ask_confirmation(
            ngettext(
                "Disable %(num)d selected user? They are signed out everywhere.",
                "Disable %(num)d selected users? They are signed out everywhere.",
                len(ids),
            ),
            _("Disable"),
        )
    return run_action(apply, back)


@admin_bp.get("/users/<int:user_id>")
@permission_required("users:read")
def user_detail(user_id: int) -> str:
    user = user_management.get_user(user_id, include_deleted=True)
    events = recent(AuditFilter(user_id=user.id), limit=20)
    user_uploads = uploads.list_uploads(user.id, None, None, 1, RECENT_UPLOADS).items if can("uploads:read_any") else []
    user_jobs = job_management.list_jobs(JobFilter(user_id=user.id), 1, 10).items if can("jobs:read") else None
    return render_template(
        "admin/users/detail.html",
        user=user,
        roles=user_management.role_names(),
        uploads=user_uploads if can("uploads:read_any") else None,
        thumbnails={u.id: uploads.thumbnail_url(u) for u in user_uploads},
        jobs=job_rows(user_jobs) if user_jobs is not None else None,
        sessions=session_records.active_sessions(user.id) if user.status != "deleted" else None,
        api_sign_ins=auth_service.api_sign_ins(user.id) if user.status != "deleted" else [],
        api_keys=api_keys.list_for(user.id) if user.status != "deleted" else [],
        events=events if can("audit:read") else None,
        status_words=user_status_labels(),
        emails=emails_of({e.actor_user_id for e in events} | {e.subject_user_id for e in events}),
        is_self=user.id == actor().id,
    )


def _detail(user_id: int) -> str:
    return url_for("admin.user_detail", user_id=user_id)


@admin_bp.post("/users/<int:user_id>/api-keys/<int:key_id>/revoke")
@permission_required("users:write")
def revoke_user_api_key(user_id: int, key_id: int) -> Response | str:
    """Revoke one of the user's personal API keys (audited with the administrator as actor)."""
    if not confirmed():
        return ask_confirmation(_("Revoke this API key? Whatever uses it stops working at once."), _("Revoke"))

    def apply() -> str:
        key = api_keys.revoke_for(actor(), permissions(), user_id, key_id)
        return _("The API key %(name)s is revoked.", name=key.name)

    return run_action(apply, _detail(user_id))


@admin_bp.post("/users/<int:user_id>/roles")
@permission_required("roles:manage")
@fresh_auth_required
def set_roles(user_id: int) -> Response:
    user = user_management.get_user(user_id)
    wanted = request.form.getlist("roles")

    def apply() -> str:
        user_management.update_user(actor(), permissions(), user, roles=wanted)
        return _("%(email)s now has: %(roles)s.", email=user.email, roles=", ".join(user.role_names) or _("no roles"))

    return run_action(apply, _detail(user_id))


@admin_bp.post("/users/<int:user_id>/disable")
@permission_required("users:write")
@fresh_auth_required
def disable_user(user_id: int) -> Response | str:
    user = user_management.get_user(user_id)
    if not confirmed():
        return ask_confirmation(
            _("Disable %(email)s? They are signed out everywhere at once.", email=user.email), _("Disable")
        )

    def apply() -> str:
        user_management.update_user(actor(), permissions(), user, is_active=False)
        return _("%(email)s is disabled and signed out everywhere.", email=user.email)

    return run_action(apply, _detail(user_id))


@admin_bp.post("/users/<int:user_id>/enable")
@permission_required("users:write")
def enable_user(user_id: int) -> Response:
    user = user_management.get_user(user_id)

    def apply() -> str:
        user_management.update_user(actor(), permissions(), user, is_active=True)
        return _("%(email)s is enabled again.", email=user.email)

    return run_action(apply, _detail(user_id))


@admin_bp.post("/users/<int:user_id>/verify")
@permission_required("users:write")
def verify_user(user_id: int) -> Response:
    user = user_management.get_user(user_id)

    def apply() -> str:
        user_management.update_user(actor(), permissions(), user, email_verified=True)
        return _("%(email)s is marked verified.", email=user.email)

    return run_action(apply, _detail(user_id))


@admin_bp.post("/users/<int:user_id>/password-reset")
@permission_required("users:write")
def reset_user_password(user_id: int) -> Response:
    user = user_management.get_user(user_id)

    def apply() -> str:
        user_management.send_password_reset(actor(), permissions(), user)
        return _("A password reset link is on its way to %(email)s.", email=user.email)

    return run_action(apply, _detail(user_id))


@admin_bp.post("/users/<int:user_id>/two-factor-reset")
@permission_required("users:write")
@fresh_auth_required
def reset_user_two_factor(user_id: int) -> Response | str:
    """For a user who lost their authenticator and recovery codes (after checking who they are,
    outside Hearth): every second factor removed, signed out everywhere, told by email."""
    user = user_management.get_user(user_id)
    if not confirmed():
        return ask_confirmation(
            _(
                "Reset two-factor authentication of %(email)s? Their authenticator app, passkeys and recovery "
                "codes are removed and they are signed out everywhere. Only do this once you know it is them.",
                email=user.email,
            ),
            _("Reset two-factor"),
        )

    def apply() -> str:
        user_management.reset_two_factor(actor(), permissions(), user)
        return _("Two-factor authentication of %(email)s is reset; they are signed out everywhere.", email=user.email)

    return run_action(apply, _detail(user_id))


@admin_bp.post("/users/<int:user_id>/sign-out")
@permission_required("users:write")
def sign_out_user(user_id: int) -> Response | str:
    user = user_management.get_user(user_id)
    if not confirmed():
        return ask_confirmation(
            _(
                "Sign %(email)s out everywhere? Every browser session ends and every API token is revoked.",
                email=user.email,
            ),
            _("Sign out everywhere"),
        )

    def apply() -> str:
        user_management.force_sign_out(actor(), permissions(), user)
        return _("%(email)s is signed out everywhere; their API tokens are revoked.", email=user.email)

    return run_action(apply, _detail(user_id))


@admin_bp.post("/users/<int:user_id>/delete")
@permission_required("users:delete")
@fresh_auth_required
def delete_user(user_id: int) -> Response | str:
    user = user_management.get_user(user_id)
    if not confirmed():
        return ask_confirmation(
            _("Delete %(email)s? The account can no longer be used; its audit trail stays.", email=user.email),
            _("Delete"),
        )

    def apply() -> str:
        user_management.delete_user(actor(), permissions(), user)
        return _("%(email)s is deleted.", email=user.email)

    return run_action(apply, _detail(user_id))
