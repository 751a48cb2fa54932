"""`/exports`: the signed-in user's exports (hypermedia, not the JSON API).

The list shows each export's status, progress, size and expiry; while any is queued or
running it polls itself every 2 s (htmx) and stops once none is. The forms ask for an export
with a plain POST (works without JavaScript): "Download my data" for everyone, the user list,
audit trail and activity report for those holding the permission. The same service as
`/api/v1/exports` (app.exports.service) checks and queues them."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, redirect, render_template, request, url_for
from flask_login import current_user
from werkzeug.wrappers import Response

from app.auth.guards import actor_permissions, login_required
from app.auth.session_records import passive_request
from app.core.templating import HTMX_STOP_POLLING, is_htmx_request
from app.core.toasts import toast
from app.errors import TooManyRequests, ValidationFailed
from app.exports import service
from app.exports.catalogue import KINDS, activity_default_range, kind_label
from app.i18n import _

exports_bp = Blueprint("exports", __name__, url_prefix="/exports")

PAGE_SIZE = 20
USER_STATUSES = ("active", "disabled", "deleted", "all")


def filters_from_form(kind: str, form: Any) -> dict[str, Any]:
    """The posted fields the kind takes as filters (blank ones left out: their defaults apply)."""
    spec = KINDS.get(kind)
    if spec is None:
        return {}
    return {name: form[name] for name in spec.filters.model_fields if (form.get(name) or "").strip()}


def _list_context() -> dict[str, Any]:
    page = service.list_own(current_user.id, request.args.get("page", 1, type=int), PAGE_SIZE)
    return {
        "page": page,
        "polling": service.any_active(page.items),
        "kind_label": kind_label,
        "downloadable": {export.id for export in page.items if service.may_download(export)},
    }


def _page(status: int = 200, *, posted: str | None = None, errors: dict[str, str] | None = None) -> Any:
    """The page (or, for htmx, the list alone) with the request forms; `posted` is the kind
    whose form was sent and `errors` its fields' messages, shown beside them."""
    context = _list_context()
    if is_htmx_request():
        return render_template("exports/_list.html", **context), status
    kinds = {kind.name for kind in service.available_kinds(actor_permissions(current_user))}
    since, until = activity_default_range()
    context |= {
        "kinds": kinds,
        "posted": posted,
        "errors": errors or {},
        "values": request.form if posted else {},
        "user_statuses": USER_STATUSES,
        "status_words": {
            "active": _("Active"),
            "disabled": _("Disabled"),
            "deleted": _("Deleted"),
            "all": _("All, deleted included"),
        },
        "activity_since": since.isoformat(),
        "activity_until": until.isoformat(),
        "retention_hours": service.retention_hours(),
    }
    return render_template("exports/index.html", **context), status


@exports_bp.get("/")
@login_required
def index() -> Any:
    return _page()


@exports_bp.get("/list")
@passive_request
def rows() -> Any:
    """The list alone, for its polling while an export is queued or running. Not activity (an
    open tab still goes idle); once signed out, 286 tells htmx to stop polling."""
    if not current_user.is_authenticated:
        return Response(status=HTMX_STOP_POLLING)
    return render_template("exports/_list.html", **_list_context())


@exports_bp.post("/")
@login_required
def create() -> Any:
    """Ask for an export (PRG); a refused request shows the page again with the reason."""
    kind = request.form.get("kind", "")
    try:
        service.request_export(current_user, kind, filters_from_form(kind, request.form))
    except ValidationFailed as error:
        errors = {item["field"].removeprefix("filters."): item["message"] for item in error.extra.get("errors") or []}
        toast(error.detail, "error")
        return _page(422, posted=kind, errors=errors)
    except TooManyRequests as error:
        toast(error.detail, "error")
        body, status = _page(429, posted=kind)
        return body, status, error.response_headers()
    toast(
        _(
            "%(name)s is being prepared: it appears below, and you are notified when it is ready.",
            name=kind_label(kind),
        ),
        "success",
    )
    return redirect(url_for("exports.index"))


@exports_bp.get("/<export_id>/download")
@login_required
def download(export_id: str) -> Response:
    """The owner's file: a redirect to a link valid for 5 minutes (an attachment)."""
    return redirect(service.download_url(service.get_owned(current_user.id, export_id)))


@exports_bp.post("/<export_id>/delete")
@login_required
def delete(export_id: str) -> Any:
    """Delete an export and its file. Without JavaScript a page asks first; with it, htmx's
    confirm dialog does (it sends confirmed=yes) and the list is swapped in place."""
    export = service.get_owned(current_user.id, export_id)
    if request.form.get("confirmed") != "yes":
        return render_template("exports/confirm_delete.html", export=export, name=kind_label(export.kind))
    service.delete_export(current_user.id, export)
    toast(_("The export is deleted."), "success")
    if is_htmx_request():
        return _page()
    return redirect(url_for("exports.index"))
