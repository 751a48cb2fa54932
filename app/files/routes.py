"""The file library. The upload form posts the file to `upload` (a plain multipart POST, so it
works without JavaScript); with JavaScript the widget (static/js/uploads.js) takes over: it
asks `presign` for a presigned POST, sends the bytes straight to storage with a progress bar,
then `confirm` answers the new row. Both paths run the same checks (app/uploads/service.py)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, redirect, render_template, request, url_for
from flask_login import current_user
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.wrappers import Response

from app.auth.guards import login_required
from app.core.templating import UrlPattern, is_htmx_request, url_pattern
from app.core.toasts import toast
from app.errors import ValidationFailed
from app.extensions import csrf
from app.files.forms import UploadForm, blank_fields, csrf_input, upload_messages_json
from app.files.rows import file_row
from app.i18n import _
from app.uploads import service
from app.uploads.models import Upload, UploadStatus

files_bp = Blueprint("files", __name__, url_prefix="/files")

PAGE_SIZE = 20
FINAL = {UploadStatus.ready, UploadStatus.rejected, UploadStatus.failed}
# The form around the file: boundaries, part headers, the kind and the CSRF token.
FORM_ALLOWANCE = 64 * 1024
# The pipeline's ceiling for `upload` before the app's limits are at hand (app/pipeline.py
# `_enforce_body_limit`); the view lowers it to the largest kind's limit before reading the body.
LARGEST_FORM_UPLOAD = 2 * 1024 * 1024 * 1024


# A file's row (app.files.rows: Python, the same HTML as a template would write).
files_bp.add_app_template_global(file_row)


@files_bp.app_template_global()
def file_row_urls() -> dict[str, UrlPattern]:
    """What a file row links to, built once for a whole table (templates/files/_row.html)."""
    return {name: url_pattern(f"files.{name}", "upload_id") for name in ("row", "download", "delete")}


def _row(upload: Upload) -> str:
    return render_template(
        "files/_row.html", upload=upload, thumbnail=service.thumbnail_url(upload), final=upload.status in FINAL
    )


def _limits() -> dict[str, tuple[int, list[str]]]:
    return {kind: service.limits(kind) for kind in service.KINDS}


def _library(form: UploadForm | None = None) -> str:
    """The library page (or, for htmx, its list) with the upload form."""
    kind = request.args.get("kind") if request.args.get("kind") in service.KINDS else None
    status = request.args.get("status") if request.args.get("status") in UploadStatus.__members__ else None
    page = service.list_uploads(current_user.id, kind, status, request.args.get("page", 1, type=int), PAGE_SIZE)
    limits = _limits()
    context = {
        "page": page,
        "kind": kind,
        "status": status,
        "thumbnails": {u.id: service.thumbnail_url(u) for u in page.items},
        "final_statuses": FINAL,
        "limits": limits,
        "form": form,
    }
    if is_htmx_request():
        return render_template("files/_list.html", **context)
    # The upload widget's messages (static/js/uploads.js), written once per language.
    context["upload_messages_json"] = upload_messages_json()
    if form is None:  # a blank form (a GET): its fields as built once per language (app.files.forms)
        context["blank"] = (csrf_input(), *blank_fields(limits))
    return render_template("files/index.html", **context)


@files_bp.get("/")
@login_required
def index() -> str:
    return _library()


@files_bp.post("/upload")
@login_required
def upload() -> Response | tuple[str, int]:
    """The upload form without JavaScript: the file comes in the request, is checked and
    streamed to storage as the presigned path's would be, then back to the library (PRG).
    A refusal shows the form again with the reason on its field (413 when too large)."""
    limits = _limits()
    # Before any byte of the body is read: at most the largest kind plus the form around it
    # (Werkzeug answers 413 past it while parsing, spooling the file to a temporary file).
    request.max_content_length = max(max_bytes for max_bytes, _types in limits.values()) + FORM_ALLOWANCE
    if request.content_length is not None and request.content_length > request.max_content_length:
        raise RequestEntityTooLarge()
    csrf.protect()  # exempt from the pipeline's check, which would read the body under the app-wide cap
    form = UploadForm(limits)
    if not form.validate_on_submit():
        return _library(form), 422
    file = form.file.data
    try:
        received = service.receive_upload(
            current_user.id, file.filename or "", file.mimetype, form.kind.data, file.stream
        )
    except ValidationFailed as error:
        for item in error.extra.get("errors") or [{"field": None, "message": error.detail}]:
            target = form.kind if item.get("field") == "kind" else form.file
            target.errors = [*target.errors, item["message"]]
        return _library(form), error.status
    if received.status == UploadStatus.rejected:
        form.file.errors = [*form.file.errors, received.shown_error or _("The file was refused.")]
        return _library(form), 422
    toast(_("Uploaded %(name)s — processing", name=received.filename), "success")
    return redirect(url_for("files.index"))


upload.max_body_bytes = LARGEST_FORM_UPLOAD
csrf.exempt(upload)


@files_bp.post("/presign")
@login_required
def presign() -> tuple[Response, int]:
    """A presigned POST for the widget. A refusal is a ValidationFailed that the error mapper
    answers: problem+json here, because the widget asks for it (Accept), with the reason in
    `detail` and each field in `errors`."""
    data = request.get_json(silent=True) or {}
    ticket = service.request_upload(
        current_user.id,
        str(data.get("filename", "")),
        str(data.get("content_type", "")),
        _size(data.get("size")),
        str(data.get("kind", "")),
    )
    return jsonify(upload_id=ticket.upload.id, url=ticket.post.url, fields=ticket.post.fields), 201


def _size(value: Any) -> int:
    """The declared size in bytes (missing is 0, which the service refuses as too small)."""
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        message = _("The size must be a number.")
        raise ValidationFailed(
            message, errors=[{"field": "size", "location": "body", "message": message, "type": "int_parsing"}]
        ) from None


@files_bp.post("/<upload_id>/confirm")
@login_required
def confirm(upload_id: str) -> str:
    return _row(service.confirm(service.get_owned_upload(current_user.id, upload_id)))


@files_bp.get("/<upload_id>/row")
@login_required
def row(upload_id: str) -> str:
    """One row; rows still processing poll this until their status is final."""
    return _row(service.load_upload(upload_id, "uploads:read_any"))


@files_bp.get("/<upload_id>/download")
@login_required
def download(upload_id: str) -> Response:
    return redirect(service.download_url(service.load_upload(upload_id, "uploads:read_any")))


@files_bp.post("/<upload_id>/delete")
@login_required
def delete(upload_id: str) -> str | Response:
    service.delete_upload(current_user.id, service.load_upload(upload_id, "uploads:delete_any"))
    if is_htmx_request():
        return ""
    # Back to the library, never to whatever the Referer names (an open redirect).
    return redirect(url_for("files.index"))
