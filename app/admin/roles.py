"""`/admin/roles`: member counts, the permission matrix as a checkbox grid, create, delete."""

from __future__ import annotations

from flask import Response, render_template, request, url_for

from app.admin.common import actor, admin_bp, ask_confirmation, confirmed, permissions, run_action
from app.auth.freshness import fresh_auth_required
from app.auth.guards import permission_required
from app.i18n import _
from app.rbac import management as role_management
from app.rbac.catalog import ADMIN_ROLE, PERMISSIONS


@admin_bp.get("/roles")
@permission_required("roles:manage")
def roles() -> str:
    held = permissions()
    summaries = role_management.list_roles()
    return render_template(
        "admin/roles.html",
        summaries=summaries,
        # The catalogue's descriptions in the reader's language (marked with N_ there).
        permissions={name: _(description) for name, description in PERMISSIONS.items()},
        admin_role=ADMIN_ROLE,
        held=held,
        # Roles holding a permission the viewer lacks are shown read-only (the service refuses them too).
        editable={summary.role.name for summary in summaries if role_management.can_edit(held, summary.role)},
    )


@admin_bp.post("/roles/matrix")
@permission_required("roles:manage")
@fresh_auth_required
def save_matrix() -> Response:
    """The grid posts `grant=<role>|<permission>` for every ticked box (read-only ticks as
    hidden fields); all changed roles are saved (and each audited) together, or none."""
    granted: dict[str, set[str]] = {}
    for value in request.form.getlist("grant"):
        role_name, _sep, permission = value.partition("|")
        granted.setdefault(role_name, set()).add(permission)

    def apply() -> str:
        changed = role_management.update_grid(actor(), granted)
        return _("Saved permissions for %(roles)s.", roles=", ".join(changed)) if changed else _("Nothing changed.")

    return run_action(apply, url_for("admin.roles"))


@admin_bp.post("/roles")
@permission_required("roles:manage")
@fresh_auth_required
def create_role() -> Response:
    def apply() -> str:
        role = role_management.create_role(
            actor(), request.form.get("name", ""), request.form.get("description", ""), request.form.getlist("grant")
        )
        return _("Role %(name)s created; tick its permissions in the grid.", name=repr(role.name))

    return run_action(apply, url_for("admin.roles"))


@admin_bp.post("/roles/<name>/delete")
@permission_required("roles:manage")
@fresh_auth_required
def delete_role(name: str) -> Response | str:
    role = role_management.get_role(name)
    if not confirmed():
        return ask_confirmation(_("Delete the role %(name)s?", name=repr(role.name)), _("Delete role"))

    def apply() -> str:
        role_management.delete_role(actor(), role, permissions())
        return _("Role %(name)s deleted.", name=repr(name))

    return run_action(apply, url_for("admin.roles"))
