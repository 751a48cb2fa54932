"""The upload flow of docs/architecture.md §10, shared by the JSON API and the /files pages.

1. `request_upload` checks kind, type, size and quota, records a `pending` upload and returns a
   presigned POST (15 minutes) for exactly the declared size, to the upload's *staging* key.
2. The client sends the bytes straight to storage.
3. `confirm` moves the staging object to the upload's final key, then checks that object: its
   size is within the limit and equals the declared size, and its first bytes match the
   declared type; a mismatch deletes it and marks the upload `rejected` with the reason.
   Otherwise `uploaded`, and a processing job is queued. The presigned POST stays usable until
   it expires, but it can only ever write the staging key again, which nothing serves: what
   was checked is what is served. Staging objects older than an hour are purged.
   Without JavaScript the browser posts the file to the app instead (`receive_upload`): the
   same checks as step 1 on its measured size, the bytes streamed to the staging key, then
   step 3 exactly as after a presigned POST.
4. `process` (the `uploads` queue) extracts metadata and thumbnails in a bounded child process
   (app/uploads/sandbox.py), then `ready`; `rejected` when the file is too large to decode
   safely, `failed` when processing keeps failing.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, BinaryIO

from flask import current_app
from sqlalchemy import event
from sqlalchemy.orm import Session

from app.audit.service import record
from app.auth.guards import ensure_owner_or
from app.cache import CacheKey, bump, cached
from app.core.database import utcnow
from app.core.hosts import app_path
from app.core.pagination import Page, paginate
from app.core.unit_of_work import unit_of_work
from app.errors import Conflict, NotFound, ValidationFailed
from app.i18n import N_, _
from app.jobs.service import enqueue_task
from app.notifications.service import notify
from app.storage import ObjectTooLarge, PresignedPost, get_storage
from app.storage.names import UnsafeFileName, key_segment, safe_file_name
from app.uploads import sandbox
from app.uploads.models import KIND_LABELS, Upload, UploadStatus
from app.uploads.repository import UploadRepository, upload_list_statement
from app.uploads.sniff import SNIFF_BYTES, matches
from app.users.models import User
from app.users.repository import UserRepository
from app.webhooks.catalogue import upload_data
from app.webhooks.service import emit

if TYPE_CHECKING:
    from app.jobs.models import Job

KINDS = ("avatar", "document", "video")
PENDING_MAX_AGE = timedelta(hours=1)  # also at least the longest presigned POST (3600 s)
STAGING_PREFIX = "staging/"
THUMBNAIL_SIZE = sandbox.THUMBNAIL_SIZE
MB = 1024 * 1024

PROCESS_UPLOAD_TASK = "tasks.uploads.process_upload"  # queued by name: tasks.uploads imports this module

uploads = UploadRepository()
users = UserRepository()


def _settings():
    return current_app.extensions["hearth.settings"]


def limits(kind: str) -> tuple[int, list[str]]:
    """(max bytes, allowed content types) for `kind`, from configuration."""
    settings = _settings()
    return int(getattr(settings, f"upload_{kind}_max_mb") * MB), getattr(settings, f"upload_{kind}_types")


def _invalid(field: str, message: str) -> ValidationFailed:
    return ValidationFailed(
        message, errors=[{"field": field, "location": "body", "message": message, "type": "value_error"}]
    )


def used_bytes(user_id: int) -> int:
    """What counts against the user's quota, in bytes."""
    return uploads.used_bytes(user_id)


def staging_key(upload: Upload) -> str:
    """Where the upload's presigned POST writes; never served (`confirm` moves it away)."""
    return f"{STAGING_PREFIX}{upload.id}"


@dataclass(frozen=True)
class UploadTicket:
    upload: Upload
    post: PresignedPost
    expires_in: int


# Why an upload was rejected or failed, stored with it (`uploads.error`) in English, as the
# worker that decides it knows no reader; pages translate it (app.i18n `translate_stored`).
LARGER_THAN_ALLOWED = N_("The file is larger than %(size)s MB.")
SIZE_DIFFERS = N_("The file has %(size)s bytes, not the %(declared)s declared.")
CONTENT_DIFFERS = N_("The file's content is not %(type)s.")
PROCESSING_FAILED = N_("Processing failed: %(reason)s")
# The processing sandbox's (it imports nothing of the app, so its templates are known here).
SANDBOX_MESSAGES = tuple(N_(message) for message in sandbox.STORED_MESSAGES)


def _kind_label(kind: str) -> str:
    """A kind as pages name it ("Avatar"), for a sentence."""
    return str(KIND_LABELS.get(kind, kind.capitalize()))


class UploadTooLarge(ValidationFailed):
    """A file the app received itself (`receive_upload`) is larger than its kind allows: 413,
    the status of a request whose body is too large. (A presign request only declares a size,
    so there the same limit is a plain 422.)"""

    status, title, slug = 413, "Content too large", "content-too-large"


def _too_large(kind: str, max_bytes: int) -> UploadTooLarge:
    message = _("%(kind)s files can be at most %(size)s MB.", kind=_kind_label(kind), size=max_bytes // MB)
    return UploadTooLarge(
        message, errors=[{"field": "size", "location": "body", "message": message, "type": "too_large"}]
    )


def request_upload(user_id: int, filename: str, content_type: str, size: int, kind: str) -> UploadTicket:
    """Check a declared upload and record it `pending`; a presigned POST to its staging key."""
    upload = _checked_upload(user_id, filename, content_type, size, kind)
    expires_in = _settings().upload_url_ttl_seconds
    with unit_of_work():
        uploads.add(upload)
        post = get_storage().presign_upload(staging_key(upload), content_type, size, expires_in)
        record("upload_requested", actor_id=user_id, subject_id=user_id, upload=upload.id, kind=kind)
    return UploadTicket(upload, post, expires_in)


def receive_upload(user_id: int, filename: str, content_type: str, kind: str, stream: BinaryIO) -> Upload:
    """The form path (no JavaScript): the browser sent the file to the app. The same checks
    as `request_upload`, on the size the file really has; then its bytes are streamed to the
    staging key in chunks (never whole in memory; past the kind's limit nothing is kept) and
    `confirm` checks and queues it exactly as after a presigned POST. The upload comes back
    `uploaded` (processing queued) or `rejected` with the reason, like `confirm`'s.

    `stream` must be seekable (Werkzeug spools a form's file to memory, then to a temporary
    file past 500 KB), so the size is known before anything is stored."""
    start = stream.tell()
    size = stream.seek(0, 2) - start
    stream.seek(start)
    if kind in KINDS and size > limits(kind)[0]:
        raise _too_large(kind, limits(kind)[0])
    upload = _checked_upload(user_id, filename, content_type, size, kind)
    max_bytes = limits(kind)[0]
    storage = get_storage()
    try:
        storage.put_stream(staging_key(upload), stream, content_type, max_bytes)
    except ObjectTooLarge:
        raise _too_large(kind, max_bytes) from None
    try:
        with unit_of_work():
            uploads.add(upload)
            record("upload_requested", actor_id=user_id, subject_id=user_id, upload=upload.id, kind=kind)
            return confirm(upload)
    except BaseException:
        storage.delete(staging_key(upload))  # the record was rolled back: nothing points at it
        raise


def _checked_upload(user_id: int, filename: str, content_type: str, size: int, kind: str) -> Upload:
    """What every upload passes before a byte is stored: a known kind, a type that kind
    accepts, a size within its limit, a plain file name, room in the user's quota. The new
    `pending` upload (not yet added); ValidationFailed naming the field otherwise."""
    if kind not in KINDS:
        raise _invalid("kind", _("kind must be one of %(kinds)s.", kinds=", ".join(KINDS)))
    max_bytes, allowed = limits(kind)
    if content_type not in allowed:
        raise _invalid(
            "content_type",
            _(
                "%(kind)s uploads: %(type)s is not accepted (allowed: %(allowed)s).",
                type=repr(content_type),
                kind=_kind_label(kind),
                allowed=", ".join(allowed),
            ),
        )
    if size < 1 or size > max_bytes:
        raise _invalid(
            "size",
            _("%(kind)s files must be between 1 byte and %(size)s MB.", kind=_kind_label(kind), size=max_bytes // MB),
        )
    try:
        name = safe_file_name(filename)
    except UnsafeFileName as error:
        raise _invalid("filename", str(error)) from None
    quota = int(_settings().upload_quota_mb * MB)
    if used_bytes(user_id) + size > quota:
        raise _invalid(
            "size",
            _("This upload would exceed your storage quota of %(size)s MB. Delete some files first.", size=quota // MB),
        )
    upload_id = str(uuid.uuid4())
    return Upload(
        id=upload_id,
        user_id=user_id,
        kind=kind,
        status=UploadStatus.pending,
        filename=name,
        content_type=content_type,
        declared_size=size,
        key=f"users/{user_id}/{kind}/{upload_id}/{key_segment(name)}",
        details={},
    )


def _reject(upload: Upload, reason: str) -> Upload:
    """Delete the file (and any thumbnail) and mark the upload `rejected` with the reason."""
    with unit_of_work():
        get_storage().delete(upload.key)
        if upload.thumbnail_key:
            get_storage().delete(upload.thumbnail_key)
            upload.thumbnail_key = None
        upload.status = UploadStatus.rejected
        upload.error = reason
        record("upload_rejected", subject_id=upload.user_id, upload=upload.id, reason=reason)
        emit("upload.rejected", upload_data(upload, reason))
        notify(
            upload.user_id,
            "upload.rejected",
            params={"filename": upload.filename, "reason": reason},
            link=app_path("files.index"),
        )
    return upload


def _claim_pending(upload: Upload) -> None:
    """Hold the upload for this confirmation until its unit of work ends: a write to the row,
    only while it is `pending`, locks it (row lock on PostgreSQL, the write lock on SQLite), so
    a second confirmation waits and then finds it no longer pending. Call it inside a unit."""
    if not uploads.claim_pending(upload.id):
        raise Conflict(_("This upload is no longer pending."))


def confirm(upload: Upload) -> Upload:
    """Move what arrived to the final key and check it there; queue processing, or reject and delete it."""
    if upload.status != UploadStatus.pending:
        raise Conflict(_("This upload is already %(status)s.", status=str(upload.status_label).lower()))
    with unit_of_work():
        _claim_pending(upload)
        storage = get_storage()
        # Checked and served from a key no presigned POST can write. Without a staging object, a
        # final object is one an interrupted confirmation already moved (or an upload presigned
        # before staging keys existed).
        storage.move(staging_key(upload), upload.key)
        info = storage.head(upload.key)
        if info is None:
            raise Conflict(_("Nothing has been uploaded for this upload yet."))
        max_bytes = limits(upload.kind)[0]
        if info.size > max_bytes:
            return _reject(upload, LARGER_THAN_ALLOWED % {"size": max_bytes // MB})
        if info.size != upload.declared_size:
            return _reject(upload, SIZE_DIFFERS % {"size": info.size, "declared": upload.declared_size})
        if not matches(upload.content_type, storage.read(upload.key, SNIFF_BYTES)):
            return _reject(upload, CONTENT_DIFFERS % {"type": upload.content_type})
        upload.size = info.size
        upload.status = UploadStatus.uploaded
        enqueue_task(PROCESS_UPLOAD_TASK, caused_by=upload.user_id, upload_id=upload.id)
        record("upload_confirmed", subject_id=upload.user_id, upload=upload.id)
    return upload


# Processing --------------------------------------------------------------------------------


def _limits() -> sandbox.Limits:
    settings = _settings()
    return sandbox.Limits(
        max_pixels=settings.upload_image_max_pixels, memory_bytes=settings.upload_processing_memory_mb * MB
    )


def _image_details(upload: Upload, data: bytes) -> dict[str, Any]:
    result = sandbox.inspect_image(data, upload.content_type, _limits())
    # Re-encoding dropped EXIF (location, camera serials) from what is kept and served.
    get_storage().put(upload.key, result.clean, upload.content_type)
    upload.thumbnail_key = upload.key.rsplit("/", 1)[0] + "/thumbnail-256.jpg"
    get_storage().put(upload.thumbnail_key, result.thumbnail, "image/jpeg")
    upload.size = len(result.clean)
    return {"width": result.width, "height": result.height, "exif_stripped": True}


def _pdf_details(data: bytes) -> dict[str, Any]:
    return {"pages": sandbox.count_pdf_pages(data, _limits())}


def process(upload_id: str, progress: Callable[[int, str], None] | None = None) -> None:
    """Extract metadata (and thumbnails for images); idempotent, so a re-run is harmless.
    `progress(percent, message)` hears how far it got."""
    report = progress or (lambda percent, message: None)
    # A unit of its own, committed before the slow part: the admin sees `processing` while it
    # runs, and it stays recorded when processing fails (the retry, or `mark_failed` once the
    # job gives up, takes it from there).
    with unit_of_work():
        upload = uploads.get(upload_id)
        if upload is None or upload.status in (UploadStatus.ready, UploadStatus.rejected):
            return
        upload.status = UploadStatus.processing
    report(10, N_("reading the file"))
    details: dict[str, Any] = {"content_type": upload.content_type, "size": upload.size}
    with unit_of_work():
        try:
            if upload.kind == "avatar" or upload.content_type.startswith("image/"):
                data = get_storage().read(upload.key)
                report(40, N_("stripping metadata and making the thumbnail"))
                details |= _image_details(upload, data)
            elif upload.content_type == "application/pdf":
                data = get_storage().read(upload.key)
                report(40, N_("counting pages"))
                details |= _pdf_details(data)
        except sandbox.Refused as refusal:
            # Final, not retried: the same file would be refused again.
            _reject(upload, str(refusal))
            return
        report(90, N_("saving"))
        upload.details = details
        upload.status = UploadStatus.ready
        upload.error = None
        notify(upload.user_id, "upload.ready", params={"filename": upload.filename}, link=app_path("files.index"))
        emit("upload.ready", upload_data(upload))


def mark_failed(upload_id: str, reason: str) -> None:
    """Called when the processing job gives up: never leave an upload stuck in `processing`.
    `reason` is the job's sentence for people ("The file could not be read as an image."); the
    upload says "Processing failed: " before it (in English, as stored: PROCESSING_FAILED)."""
    with unit_of_work():
        upload = uploads.get(upload_id)
        if upload is not None and upload.status in (UploadStatus.uploaded, UploadStatus.processing):
            upload.status = UploadStatus.failed
            upload.error = (PROCESSING_FAILED % {"reason": reason})[:500]
            emit("upload.rejected", upload_data(upload, upload.error))
            notify(
                upload.user_id,
                "upload.rejected",
                params={"filename": upload.filename, "reason": upload.error},
                link=app_path("files.index"),
            )


REPROCESSABLE = frozenset({UploadStatus.failed, UploadStatus.ready, UploadStatus.uploaded, UploadStatus.processing})


def reprocess(actor_id: int, upload: Upload) -> Job:
    """Run processing again (after a fix, or to rebuild thumbnails); audited."""
    if upload.status not in REPROCESSABLE:
        status = str(upload.status_label).lower()
        raise Conflict(_("This upload is %(status)s: it has no confirmed file to process.", status=status))
    with unit_of_work():
        before = upload.status
        upload.status = UploadStatus.uploaded
        upload.error = None
        job = enqueue_task(PROCESS_UPLOAD_TASK, caused_by=upload.user_id, upload_id=upload.id)
        record(
            "upload_reprocessed",
            actor_id=actor_id,
            subject_id=upload.user_id,
            target=f"upload:{upload.id}",
            before={"status": before},
            after={"status": UploadStatus.uploaded.value},
            job=job.id,
        )
    return job


# Library -----------------------------------------------------------------------------------


def get_owned_upload(owner_id: int, upload_id: str) -> Upload:
    """The upload if `owner_id` owns it, whatever anyone's permissions: only the owner confirms
    an upload or makes it an avatar. NotFound otherwise, the same for someone else's upload as
    for a missing one (ids can't be probed)."""
    upload = uploads.get(upload_id)
    if upload is None or upload.user_id != owner_id:
        raise NotFound()
    return upload


def load_upload(upload_id: str, permission: str) -> Upload:
    """The upload if the actor owns it or holds `permission`; 404 otherwise (ids can't be probed)."""
    upload = uploads.get(upload_id)
    if upload is None:
        raise NotFound()
    ensure_owner_or(permission, upload.user_id)
    return upload


def get_upload(upload_id: str) -> Upload:
    """Any upload by id, for the admin pages (whose route checks the permission); NotFound if missing."""
    upload = uploads.get(upload_id)
    if upload is None:
        raise NotFound(_("No upload with id %(id)s.", id=upload_id))
    return upload


def owner_of(upload: Upload) -> User | None:
    """The account the upload belongs to."""
    return users.get(upload.user_id)


def list_uploads(
    user_id: int | None, kind: str | None, status: str | None, page: int, per_page: int, *, owner: str | None = None
) -> Page[Upload]:
    """One page of uploads, newest first, by kind and status; `user_id` keeps one owner's,
    `owner` matches the owner's email (or part of it) for the admin."""
    return paginate(upload_list_statement(kind, status, user_id=user_id, owner=owner), page, per_page)


UPLOAD_TOTALS = "uploads"
TOTALS_TTL = 30


def totals_by_status() -> tuple[dict[str, int], int]:
    """Uploads per status and the bytes stored (confirmed files), for the admin dashboard:
    cached 30 s; `forget_upload_totals` runs on every upload write (listener below)."""
    return cached(CacheKey(UPLOAD_TOTALS, "totals"), _count_totals, timeout=TOTALS_TTL)


def forget_upload_totals() -> None:
    bump(UPLOAD_TOTALS)


@event.listens_for(Session, "before_flush")
def _forget_changed_uploads(session: Session, flush_context, instances) -> None:
    if any(isinstance(obj, Upload) for obj in (*session.new, *session.dirty, *session.deleted)):
        forget_upload_totals()


def _count_totals() -> tuple[dict[str, int], int]:
    counts = dict.fromkeys(UploadStatus.__members__, 0)
    stored = 0
    for status, count, size in uploads.count_and_size_by_status():
        counts[status] = count
        if status != UploadStatus.rejected:
            stored += size
    return counts, stored


def download_url(upload: Upload) -> str:
    if upload.status != UploadStatus.ready:
        raise Conflict(_("The file is not ready yet."))
    return get_storage().presign_download(upload.key, upload.filename, 300)


def thumbnail_url(upload: Upload) -> str | None:
    if not upload.thumbnail_key or upload.status != UploadStatus.ready:
        return None
    return get_storage().presign_download(upload.thumbnail_key, "thumbnail.jpg", 300)


def delete_upload(actor_id: int, upload: Upload) -> None:
    """Remove the upload's objects, then its row (audited)."""
    storage = get_storage()
    storage.delete(staging_key(upload))
    storage.delete(upload.key)
    if upload.thumbnail_key:
        storage.delete(upload.thumbnail_key)
    with unit_of_work():
        record(
            "upload_deleted",
            actor_id=actor_id,
            subject_id=upload.user_id,
            target=f"upload:{upload.id}",
            before={"filename": upload.filename, "status": upload.status, "size": upload.size},
        )
        uploads.delete(upload)


def cleanup_pending() -> int:
    """Remove uploads still `pending` an hour after their URL was issued, with any object, and
    every staging object older than that (its policy has expired: a POST replayed after
    confirmation, or sent for an upload since deleted, lands there and is never served)."""
    cutoff = utcnow() - PENDING_MAX_AGE
    storage = get_storage()
    with unit_of_work():
        stale = uploads.stale_pending(cutoff, limit=500)
        for upload in stale:
            storage.delete(staging_key(upload))
            storage.delete(upload.key)
            uploads.delete(upload)
    storage.purge(STAGING_PREFIX, cutoff)
    return len(stale)


def set_avatar(user, upload_id: str | None) -> None:
    """Use one of the user's own ready images as their avatar (None removes it)."""
    if upload_id is not None:
        try:
            upload = get_owned_upload(user.id, upload_id)
        except NotFound:
            raise _invalid("upload_id", _("Choose one of your own images.")) from None
        if upload.status != UploadStatus.ready or not upload.thumbnail_key:
            raise _invalid("upload_id", _("Only a processed image can be an avatar."))
    with unit_of_work():
        user.avatar_upload_id = upload_id
        record("avatar_changed", actor_id=user.id, subject_id=user.id)


def avatar_url(user) -> str | None:
    """A short-lived URL of the user's avatar thumbnail, or None."""
    if not getattr(user, "avatar_upload_id", None):
        return None
    upload = uploads.get(user.avatar_upload_id)
    return thumbnail_url(upload) if upload is not None else None


def avatar_choices(user_id: int) -> list[Upload]:
    """The user's processed images, newest first (50 at most): what can be an avatar."""
    return uploads.avatar_choices(user_id, limit=50)
