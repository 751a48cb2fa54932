"""`/api/v1/uploads`: presigned direct-to-storage uploads and the caller's files (docs/architecture.md §10)."""

from __future__ import annotations

from flask import Response

from app.api.openapi import api_operation
from app.api.v1.blueprint import v1_bp
from app.api.v1.schemas import DownloadOut, PresignedPostOut, PresignOut, PresignRequest, UploadListQuery, UploadOut
from app.auth.guards import actor_permissions, current_actor
from app.core.pagination import Page
from app.errors import PermissionDenied
from app.i18n import _
from app.uploads import service
from app.uploads.models import Upload


def upload_out(upload: Upload) -> UploadOut:
    return UploadOut(
        id=upload.id,
        kind=upload.kind,
        status=upload.status,
        filename=upload.filename,
        content_type=upload.content_type,
        size=upload.size,
        details=upload.details or {},
        error=upload.error,
        created_at=upload.created_at,
        updated_at=upload.updated_at,
        thumbnail_url=service.thumbnail_url(upload),
    )


@api_operation(
    v1_bp,
    "/uploads/presigned",
    method="POST",
    summary="Start an upload",
    tags=("uploads",),
    body=PresignRequest,
    response=PresignOut,
    status=201,
    auth=True,
)
def presign_upload(body: PresignRequest) -> PresignOut:
    """Checks type, size and quota, then returns a presigned POST valid for 15 minutes, for
    exactly `size` bytes. Send the bytes straight to storage with it (POST to `url` with every
    field of `fields`, then the file), then call `/uploads/{id}/confirm`."""
    ticket = service.request_upload(current_actor().id, body.filename, body.content_type, body.size, body.kind)
    return PresignOut(
        upload_id=ticket.upload.id,
        expires_in=ticket.expires_in,
        upload=PresignedPostOut(url=ticket.post.url, fields=ticket.post.fields),
    )


@api_operation(
    v1_bp,
    "/uploads/<upload_id>/confirm",
    method="POST",
    summary="Confirm an upload",
    tags=("uploads",),
    response=UploadOut,
    auth=True,
    errors=(404, 409),
)
def confirm_upload(upload_id: str) -> UploadOut:
    """Moves the uploaded object to its final key, which the presigned POST cannot write, and
    checks it there (exact size, magic bytes). A mismatch deletes it and answers the upload with
    status `rejected` and the reason; otherwise processing is queued. 409 while nothing has
    arrived, or once the upload is no longer pending."""
    return upload_out(service.confirm(service.get_owned_upload(current_actor().id, upload_id)))


@api_operation(
    v1_bp,
    "/uploads",
    summary="List uploads",
    tags=("uploads",),
    query=UploadListQuery,
    response=UploadOut,
    paginated=True,
    auth=True,
)
def list_uploads(query: UploadListQuery) -> Page:
    actor = current_actor()
    if query.all_users and "uploads:read_any" not in actor_permissions(actor):
        raise PermissionDenied(_("Listing everyone's uploads needs the 'uploads:read_any' permission."))
    page = service.list_uploads(
        None if query.all_users else actor.id, query.kind, query.status, query.page, query.per_page
    )
    return Page(
        items=[upload_out(upload) for upload in page.items], page=page.page, per_page=page.per_page, total=page.total
    )


@api_operation(
    v1_bp,
    "/uploads/<upload_id>",
    summary="Get an upload",
    tags=("uploads",),
    response=UploadOut,
    auth=True,
    errors=(404,),
)
def get_upload(upload_id: str) -> UploadOut:
    return upload_out(service.load_upload(upload_id, "uploads:read_any"))


@api_operation(
    v1_bp,
    "/uploads/<upload_id>/download",
    summary="Download link",
    tags=("uploads",),
    response=DownloadOut,
    auth=True,
    errors=(404, 409),
)
def download_upload(upload_id: str) -> DownloadOut:
    """A presigned GET valid for 5 minutes that always downloads as an attachment."""
    return DownloadOut(url=service.download_url(service.load_upload(upload_id, "uploads:read_any")), expires_in=300)


@api_operation(
    v1_bp,
    "/uploads/<upload_id>",
    method="DELETE",
    summary="Delete an upload",
    tags=("uploads",),
    status=204,
    auth=True,
    errors=(404,),
)
def delete_upload(upload_id: str) -> Response:
    """Removes the record, the object and its thumbnail."""
    service.delete_upload(current_actor().id, service.load_upload(upload_id, "uploads:delete_any"))
    return Response(status=204)
