"""`/admin/uploads`: everyone's uploads by kind, status and owner; detail, delete, reprocess."""

from __future__ import annotations

from flask import Response, render_template, request, url_for

from app.admin.common import actor, admin_bp, ask_confirmation, confirmed, job_rows, render_list, run_action
from app.audit.service import emails_of
from app.auth.guards import permission_required
from app.i18n import _
from app.jobs import management as job_management
from app.jobs.management import JobFilter
from app.uploads import service
from app.uploads.models import UploadStatus

PAGE_SIZE = 25


@admin_bp.get("/uploads")
@permission_required("uploads:read_any")
def uploads() -> str:
    args = request.args
    filters = {
        "kind": args.get("kind") if args.get("kind") in service.KINDS else None,
        "status": args.get("status") if args.get("status") in UploadStatus.__members__ else None,
        "owner": (args.get("owner") or "").strip()[:100] or None,
    }
    page = service.list_uploads(
        None, filters["kind"], filters["status"], args.get("page", 1, type=int), PAGE_SIZE, owner=filters["owner"]
    )
    owners = emails_of({upload.user_id for upload in page.items})
    return render_list(
        "admin/uploads/index.html",
        "admin/uploads/_list.html",
        page=page,
        filters=filters,
        owners=owners,
        thumbnails={u.id: service.thumbnail_url(u) for u in page.items},
    )


@admin_bp.get("/uploads/<upload_id>")
@permission_required("uploads:read_any")
def upload_detail(upload_id: str) -> str:
    upload = service.get_upload(upload_id)
    return render_template(
        "admin/uploads/detail.html",
        upload=upload,
        owner=service.owner_of(upload),
        thumbnail=service.thumbnail_url(upload),
        jobs=job_rows(job_management.list_jobs(JobFilter(q=upload.id), 1, 10).items),
        reprocessable=upload.status in service.REPROCESSABLE,
    )


@admin_bp.post("/uploads/<upload_id>/delete")
@permission_required("uploads:delete_any")
def delete_upload(upload_id: str) -> Response | str:
    upload = service.get_upload(upload_id)
    if not confirmed():
        return ask_confirmation(
            _("Delete %(name)s? The file is removed from storage.", name=upload.filename), _("Delete")
        )

    def apply() -> str:
        service.delete_upload(actor().id, upload)
        return _("%(name)s is deleted.", name=upload.filename)

    response = run_action(apply, url_for("admin.uploads"))
    if response.location and response.location.startswith(url_for("admin.upload_detail", upload_id=upload_id)):
        response.location = url_for("admin.uploads")  # the detail page is gone
    return response


@admin_bp.post("/uploads/<upload_id>/reprocess")
@permission_required("jobs:manage")
def reprocess_upload(upload_id: str) -> Response:
    upload = service.get_upload(upload_id)

    def apply() -> str:
        job = service.reprocess(actor().id, upload)
        return _("%(name)s is queued for processing again (job %(job)s).", name=upload.filename, job=job.id[:8])

    return run_action(apply, url_for("admin.upload_detail", upload_id=upload_id))
