"""`/admin/flags`: list feature flags, turn them on and off, create and delete them."""

from __future__ import annotations

from flask import Response, render_template, request, url_for

from app.admin.common import actor, admin_bp, ask_confirmation, confirmed, run_action
from app.auth.guards import permission_required
from app.core.templating import is_htmx_request
from app.errors import ValidationFailed
from app.flags import service

# What the toggle form posts as `enabled`.
STATES = {"1": True, "0": False}


@admin_bp.get("/flags")
@permission_required("flags:manage")
def flags() -> str:
    return render_template("admin/flags/index.html", rows=service.list_flags())


@admin_bp.post("/flags")
@permission_required("flags:manage")
def create_flag() -> Response:
    def apply() -> str:
        flag = service.create_flag(
            actor(),
            request.form.get("name", ""),
            request.form.get("description", ""),
            enabled=request.form.get("enabled") == "1",
        )
        return f"Flag {flag.name!r} created ({'on' if flag.enabled else 'off'})."

    return run_action(apply, url_for("admin.flags"))


@admin_bp.post("/flags/<name>/toggle")
@permission_required("flags:manage")
def toggle_flag(name: str) -> Response | str:
    """Posts the wanted state (`enabled=1|0`), so a repeated click changes nothing twice.
    htmx swaps the flag's row; without JavaScript the page reloads with a message."""
    service.get_flag(name)  # 404 for an unknown flag, as for delete

    def apply() -> str:
        wanted = STATES.get(request.form.get("enabled", ""))
        if wanted is None:
            raise ValidationFailed("Say whether the flag should be on (enabled=1) or off (enabled=0).")
        flag = service.set_flag(actor(), name, wanted)
        return f"Flag {flag.name!r} is {'on' if flag.enabled else 'off'}."

    if is_htmx_request():
        apply()
        return render_template("admin/flags/_row.html", row=service.get_row(name))
    return run_action(apply, url_for("admin.flags"))


@admin_bp.post("/flags/<name>/delete")
@permission_required("flags:manage")
def delete_flag(name: str) -> Response | str:
    flag = service.get_flag(name)
    if not confirmed():
        return ask_confirmation(f"Delete the flag {flag.name!r}? Code asking for it will see it off.", "Delete flag")

    def apply() -> str:
        service.delete_flag(actor(), name)
        return f"Flag {name!r} deleted."

    return run_action(apply, url_for("admin.flags"))
