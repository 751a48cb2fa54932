"""`/admin/flags`: list feature flags, turn them on and off, create and delete them."""

from __future__ import annotations

from flask import Response, render_template, request, url_for

from app.admin.common import actor, admin_bp, ask_confirmation, confirmed, run_action
from app.auth.guards import permission_required
from app.core.templating import is_htmx_request
from app.core.toasts import toast
from app.errors import DomainError, ValidationFailed
from app.flags import service
from app.i18n import _

# What the toggle form posts as `enabled`.
STATES = {"1": True, "0": False}


def _labels() -> dict[str, str]:
    """The flag table's words, translated once per table. Those with `%(name)s` are whole
    sentences the row fills with the flag's name (`| format(name=…)`)."""
    return {
        "description": _("Description"),
        "state": _("State"),
        "changed": _("Last changed"),
        "on": _("On"),
        "off": _("Off"),
        "turn_on": _("Turn on"),
        "turn_off": _("Turn off"),
        "turn_on_named": _("Turn on %(name)s"),
        "turn_off_named": _("Turn off %(name)s"),
        "actions": _("Actions"),
        "actions_for": _("Actions for %(name)s"),
        "delete": _("Delete"),
        "delete_question": _("Delete the flag %(name)s? Code asking for it will see it off."),
    }


@admin_bp.get("/flags")
@permission_required("flags:manage")
def flags() -> str:
    return render_template("admin/flags/index.html", rows=service.list_flags(), L=_labels())


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
        if flag.enabled:
            return _("Flag %(name)s created (on).", name=repr(flag.name))
        return _("Flag %(name)s created (off).", name=repr(flag.name))

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
            raise ValidationFailed(_("Say whether the flag should be on (enabled=1) or off (enabled=0)."))
        flag = service.set_flag(actor(), name, wanted)
        if flag.enabled:
            return _("Flag %(name)s is on.", name=repr(flag.name))
        return _("Flag %(name)s is off.", name=repr(flag.name))

    if is_htmx_request():
        # Only the row is swapped: the outcome is a toast (HX-Trigger), never a flash that
        # would surface, stale, on the next full page.
        try:
            toast(apply(), "success")
        except DomainError as error:
            toast(error.detail, "error")
        return render_template("admin/flags/_row.html", row=service.get_row(name), L=_labels())
    return run_action(apply, url_for("admin.flags"))


@admin_bp.post("/flags/<name>/delete")
@permission_required("flags:manage")
def delete_flag(name: str) -> Response | str:
    flag = service.get_flag(name)
    if not confirmed():
        return ask_confirmation(
            _("Delete the flag %(name)s? Code asking for it will see it off.", name=repr(flag.name)), _("Delete flag")
        )

    def apply() -> str:
        service.delete_flag(actor(), name)
        return _("Flag %(name)s deleted.", name=repr(name))

    return run_action(apply, url_for("admin.flags"))
