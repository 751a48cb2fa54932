"""`/api/v1/exports`: documents built on the `reports` queue for the caller (docs/architecture.md §9)."""

from __future__ import annotations

from flask import Response, url_for

from app.api.openapi import api_operation
from app.api.v1.blueprint import v1_bp
from app.api.v1.export_schemas import ExportListQuery, ExportOut, ExportRequest
from app.auth.guards import actor_permissions, current_actor
from app.core.pagination import Page
from app.exports import service
from app.exports.models import Export


def export_out(export: Export) -> ExportOut:
    return ExportOut(
        id=export.id,
        kind=export.kind,
        filters=export.filters or {},
        status=export.status,
        progress=export.progress or 0,
        size=export.size,
        filename=export.filename,
        content_type=export.content_type,
        error=export.shown_error,
        job_id=export.job_id,
        created_at=export.created_at,
        started_at=export.started_at,
        finished_at=export.finished_at,
        expires_at=export.expires_at,
        download_url=service.download_url(export) if service.may_download(export) else None,
    )


@api_operation(
    v1_bp,
    "/exports",
    method="POST",
    summary="Request an export",
    tags=("exports",),
    body=ExportRequest,
    response=ExportOut,
    status=202,
    auth=True,
    errors=(403, 429),
)
def create_export(body: ExportRequest) -> Response:
    """Queues the export on the `reports` queue and answers 202 with it (`status: queued`) and
    a `Location` header to poll (`GET /exports/{id}`) until it is `ready`. 403 for a kind that
    needs a permission you lack; 429 with `Retry-After` while you already have
    EXPORT_MAX_CONCURRENT_PER_USER (2) exports queued or running. Its owner is notified when it
    is ready or failed."""
    actor = current_actor()
    # An API key's scopes bound the kinds it may ask for, not its owner's whole role.
    export = service.request_export(actor, body.kind, body.filters, permissions=actor_permissions(actor))
    response = Response(export_out(export).model_dump_json(), status=202, mimetype="application/json")
    response.headers["Location"] = url_for(".get_export", export_id=export.id)
    return response


@api_operation(
    v1_bp,
    "/exports",
    summary="List your exports",
    tags=("exports",),
    query=ExportListQuery,
    response=ExportOut,
    paginated=True,
    auth=True,
)
def list_exports(query: ExportListQuery) -> Page:
    """Your exports, newest first (nobody sees anyone else's)."""
    page = service.list_own(current_actor().id, query.page, query.per_page)
    return Page(
        items=[export_out(export) for export in page.items], page=page.page, per_page=page.per_page, total=page.total
    )


@api_operation(
    v1_bp,
    "/exports/<export_id>",
    summary="Get an export",
    tags=("exports",),
    response=ExportOut,
    auth=True,
    errors=(404,),
)
def get_export(export_id: str) -> ExportOut:
    """Its status and progress (0–100); when `ready`, `download_url`: valid for 5 minutes,
    presigned on S3 (the signed local route on disk), always downloaded as an attachment.
    Someone else's export is 404."""
    return export_out(service.get_owned(current_actor().id, export_id))


@api_operation(
    v1_bp,
    "/exports/<export_id>",
    method="DELETE",
    summary="Delete an export",
    tags=("exports",),
    status=204,
    auth=True,
    errors=(404,),
)
def delete_export(export_id: str) -> Response:
    """Removes the export and its file (a build still running discards what it makes)."""
    actor = current_actor()
    service.delete_export(actor.id, service.get_owned(actor.id, export_id))
    return Response(status=204)
