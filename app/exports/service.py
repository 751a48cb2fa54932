"""Exports, shared by the JSON API and the `/exports` pages (docs/architecture.md §9).

1. `request_export` checks the kind, the permission it needs, its filters and the owner's
   limit (EXPORT_MAX_CONCURRENT_PER_USER build jobs not yet ended), then records the export
   `queued` and its `reports` job in one unit of work: the job runs only if the export exists.
2. `build` (the job, tasks.reports) checks again that the owner is active and still holds the
   kind's permission (a role may have been taken away since), marks the export `running`, has
   the kind's renderer write the document into a temporary file, reporting progress (rows
   done / total) on the export and the job as it goes, stores the file and marks it `ready`
   until now + EXPORT_RETENTION_HOURS; the owner is notified.
   Each attempt starts from scratch under an object key of its own,
   `exports/<user>/<export>/<attempt>/<filename>`, recorded on the export when it starts:
   only the attempt whose key the export holds may report progress or finish it, so a stale
   delivery of the same job never overwrites, finishes or deletes another attempt's file.
   A failing or superseded attempt leaves no file (the temporary file goes, what it stored is
   deleted); once the queue's retries are spent, `mark_failed` records why and tells the owner.
3. `expire_exports` (hourly) marks ready exports past their retention `expired`, commits, then
   deletes their files; it fails exports whose job ended without telling them, and deletes any
   file older than every export that could still own it (one a crashed worker left behind).

Deleting an export revokes its job if it has not started; a running build notices at its next
progress report and stops. Its slot in the limit is held until the job has ended.

Only the owner sees, downloads or deletes an export: anyone else gets 404, as for a missing one.
"""

from __future__ import annotations

import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import current_app

from app.audit.service import record
from app.core.database import utcnow
from app.core.hosts import app_path
from app.core.pagination import Page, paginate
from app.core.unit_of_work import on_commit, unit_of_work
from app.errors import Conflict, NotFound, PermissionDenied, TooManyRequests
from app.exports.catalogue import KINDS, ExportKind, get_kind, kind_title, validate_filters
from app.exports.models import ACTIVE_STATUSES, Export, ExportStatus
from app.exports.renderers import RENDERERS, RenderContext
from app.exports.repository import ExportRepository, export_list_statement, progress_statement
from app.extensions import db
from app.i18n import N_, _, format_filesize, ngettext
from app.jobs.service import TaskFailed, cancel, enqueue_task, report_progress
from app.logging import get_logger
from app.notifications.service import notify
from app.rbac.service import permissions_of
from app.storage import get_storage
from app.users.models import User
from app.users.repository import UserRepository
from app.webhooks.catalogue import export_data
from app.webhooks.service import emit

log = get_logger("hearth.exports")
exports = ExportRepository()
users = UserRepository()

BUILD_EXPORT_TASK = "tasks.reports.build_export"  # queued by name: tasks.reports imports this module
KEY_PREFIX = "exports/"
DOWNLOAD_URL_SECONDS = 300
# A finished document is stored whatever its size up to this (a guard, not a quota).
MAX_EXPORT_BYTES = 50 * 1024**3
# How often a running export writes its progress (each write is a commit of its own).
PROGRESS_INTERVAL_SECONDS = 0.5
# Retry-After of the per-user limit: about how long a small export takes.
LIMIT_RETRY_AFTER_SECONDS = 30
SWEEP_BATCH = 500
# An orphaned file is deleted once it is this much older than any ready export's (slack for a
# file stored a moment before its export was marked ready, and for clocks a little apart).
ORPHAN_GRACE = timedelta(hours=1)
# The pages a notification links to (a path: app.notifications builds absolute URLs for mail).
EXPORTS_PAGE_ENDPOINT = "exports.index"

# Sentences stored with an export (`exports.error`) in English, translated where shown.
BUILD_FAILED = N_("The export could not be built: %(reason)s")
STORE_FAILED = N_("The finished file could not be stored.")
JOB_LOST = N_("The export stopped before it finished (its job ended without it).")
OWNER_DISABLED = N_("The account that asked for this export is disabled.")
PERMISSION_GONE = N_("You no longer have the permission this export needs.")


def _settings():
    return current_app.extensions["hearth.settings"]


def retention_hours() -> int:
    """How long a ready export's file is kept (EXPORT_RETENTION_HOURS)."""
    return _settings().export_retention_hours


# Asking for one -------------------------------------------------------------------------------


def available_kinds(permissions: frozenset[str]) -> list[ExportKind]:
    """The kinds someone holding `permissions` may ask for, in catalogue order."""
    return [kind for kind in KINDS.values() if kind.permission is None or kind.permission in permissions]


def request_export(actor: User, kind: Any, filters: Any = None, permissions: frozenset[str] | None = None) -> Export:
    """Record an export of `kind` for `actor` and queue its job, in one unit of work.

    `permissions`: what the request may use, when less than everything `actor` holds (an API
    key's scopes, app.auth.guards `actor_permissions`); None: the actor's own.
    ValidationFailed (422) names `kind` or the bad `filters.<field>`; PermissionDenied (403)
    when the kind needs a permission `actor` lacks; TooManyRequests (429, Retry-After) when
    `actor` already has EXPORT_MAX_CONCURRENT_PER_USER exports queued or running."""
    spec = get_kind(kind)
    allowed = _may_have(actor.id, spec) if permissions is None else spec.permission in (permissions | {None})
    if not allowed:
        raise PermissionDenied(_("This needs the %(permission)r permission.", permission=spec.permission))
    clean = validate_filters(spec, filters)
    limit = _settings().export_max_concurrent_per_user
    with unit_of_work():
        exports.lock_owner(actor.id)
        if exports.count_active(actor.id, BUILD_EXPORT_TASK) >= limit:
            raise TooManyRequests(
                ngettext(
                    "You already have %(num)d export in progress. Wait until it finishes, then try again.",
                    "You already have %(num)d exports in progress. Wait until one finishes, then try again.",
                    limit,
                ),
                retry_after=LIMIT_RETRY_AFTER_SECONDS,
            )
        export = exports.add(
            Export(
                id=str(uuid.uuid4()),
                user_id=actor.id,
                kind=spec.name,
                filters=clean,
                status=ExportStatus.queued,
                progress=0,
                created_at=utcnow(),
            )
        )
        job = enqueue_task(BUILD_EXPORT_TASK, caused_by=actor.id, export_id=export.id)
        export.job_id = job.id
        record(
            "export_requested",
            actor_id=actor.id,
            subject_id=actor.id,
            target=f"export:{export.id}",
            kind=spec.name,
            filters=clean,
            job=job.id,
        )
    return export


def _may_have(user_id: int, spec: ExportKind) -> bool:
    """Whether the user holds the permission the kind needs (now: roles change)."""
    return spec.permission is None or spec.permission in permissions_of(user_id)


# Building it (the `reports` job) -------------------------------------------------------------


class AttemptSuperseded(Exception):
    """The export was deleted, or another delivery of its job took it over, while this attempt
    was building it: the attempt stops and removes what it stored."""


def object_key(export: Export, attempt: str, filename: str) -> str:
    return f"{KEY_PREFIX}{export.user_id}/{export.id}/{attempt}/{filename}"


def file_name(export: Export, extension: str) -> str:
    """The download's name: the kind and when it was asked for, the same for every attempt."""
    return f"hearth-{export.kind.replace('_', '-')}-{export.created_at:%Y%m%d-%H%M%S}.{extension}"


class ProgressReporter:
    """`progress(done, total)` for a renderer: the percentage goes on the export (for
    /exports) and the job (for /admin/jobs), each committed at once on a connection of its
    own, at most every PROGRESS_INTERVAL_SECONDS and only when it changed. When the export no
    longer takes this attempt's progress (deleted, or taken over), it raises AttemptSuperseded:
    the renderer stops there rather than build a file nobody will get."""

    def __init__(self, export_id: str, attempt_key: str, job_id: str | None, clock=time.monotonic):
        self.export_id, self.attempt_key, self.job_id, self.clock = export_id, attempt_key, job_id, clock
        self.percent = 0
        self.written_at: float | None = None

    def __call__(self, done: int, total: int) -> None:
        # 100 only once the file is stored: a document written is not yet a download.
        percent = min(99, max(0, int(done * 100 / total))) if total > 0 else 0
        now = self.clock()
        if percent == self.percent or (
            self.written_at is not None and now - self.written_at < PROGRESS_INTERVAL_SECONDS
        ):
            return
        self.percent, self.written_at = percent, now
        with db.engine.begin() as connection:
            written = connection.execute(progress_statement(self.export_id, self.attempt_key, percent)).rowcount
        if not written:
            raise AttemptSuperseded(self.export_id)
        if self.job_id:
            report_progress(self.job_id, percent, f"{done} / {total}")


def _refusal(export: Export) -> str | None:
    """Why the owner may no longer have this export built (stored English), or None."""
    owner = users.get(export.user_id)
    if owner is None or not owner.is_active:
        return OWNER_DISABLED
    if not _may_have(owner.id, get_kind(export.kind)):
        return PERMISSION_GONE
    return None


@dataclass(frozen=True)
class Attempt:
    """What one build attempt works from, read when it starts (the row may go meanwhile)."""

    export_id: str
    user_id: int
    kind: str
    filters: dict[str, Any]
    filename: str
    key: str  # where this attempt stores its file, recorded on the export while it runs


def _start(export_id: str, job_id: str | None) -> Attempt | None:
    """Mark the export running, from scratch, under a new attempt's object key (a unit of its
    own, committed before the slow part so /exports shows it). None when there is nothing to
    build: deleted, finished by an earlier delivery of the same job, or refused because its
    owner was disabled or lost the permission since (failed, told)."""
    with unit_of_work():
        export = exports.locked(export_id)
        if export is None or export.status not in ACTIVE_STATUSES:
            return None
        refusal = _refusal(export)
        if refusal is not None:
            _fail(export, refusal, refusal)
            log.info("export_refused", export_id=export_id, reason=refusal)
            return None
        if export.storage_key:
            # Taken over from an attempt that stopped answering (its lease ran out): that
            # attempt can no longer finish, so whatever it stored goes.
            _discard_after_commit([export.storage_key])
        filename = file_name(export, RENDERERS[export.kind].extension)
        attempt = Attempt(
            export.id,
            export.user_id,
            export.kind,
            dict(export.filters or {}),
            filename,
            object_key(export, uuid.uuid4().hex[:16], filename),
        )
        key = attempt.key
        export.status = ExportStatus.running
        export.started_at = utcnow()
        export.progress = 0
        export.error = None
        export.size = None
        export.storage_key = key  # this attempt's, until it finishes (the file is not there yet)
        export.finished_at = None
        export.expires_at = None
        if job_id:
            export.job_id = job_id
    return attempt


def build(export_id: str, job_id: str | None = None) -> None:
    """Build the export's document and store it (the `reports` job); idempotent."""
    attempt = _start(export_id, job_id)
    if attempt is None:
        log.info("export_skipped", export_id=export_id)
        return
    key, filename = attempt.key, attempt.filename
    renderer = RENDERERS[attempt.kind]
    storage = get_storage()
    context = RenderContext(
        user_id=attempt.user_id,
        filters=attempt.filters,
        progress=ProgressReporter(export_id, key, job_id),
        generated_at=utcnow(),
    )
    try:
        with tempfile.NamedTemporaryFile("w+b", prefix="hearth-export-", suffix=f".{renderer.extension}") as out:
            # A unit of its own (renderers only read): it ends the render's transaction and
            # snapshot, so what follows reads the export as it is now (deleted meanwhile?).
            with unit_of_work():
                renderer.render(context, out)
            out.flush()
            out.seek(0)
            try:
                size = storage.put_stream(key, out, renderer.content_type, MAX_EXPORT_BYTES)
            except Exception as error:  # the store refused or failed: a sentence for people, retried
                raise TaskFailed(STORE_FAILED) from error
        if not _finish(export_id, key, filename, renderer.content_type, size):
            _discard(key)  # deleted or taken over while it was built: nothing points at the file
    except AttemptSuperseded:
        _discard(key)
        log.info("export_superseded", export_id=export_id)
    except BaseException:
        _settle_failed_attempt(export_id, key)
        raise


def _settle_failed_attempt(export_id: str, key: str) -> None:
    """After a failed attempt: back to `queued` (a retry may follow; `mark_failed` follows when
    none will), never left `running` with a frozen progress bar, and its file removed; unless
    the export holds this attempt's file as ready after all (a commit that failed only on its
    way back), or another attempt holds it meanwhile. When the database can't say, the file
    stays for `expire_exports` to purge: deleting a file a ready export points at is worse."""
    try:
        with unit_of_work():
            export = exports.locked(export_id)
            if export is not None and export.storage_key == key and export.status == ExportStatus.ready:
                return
            if export is not None and export.status == ExportStatus.running and export.storage_key == key:
                export.status = ExportStatus.queued
                export.storage_key = None
                export.progress = 0
    except Exception as error:  # the database failing too: the job's failure is recorded anyway
        log.warning("export_requeue_failed", export_id=export_id, error=repr(error))
        return
    _discard(key)


def _finish(export_id: str, key: str, filename: str, content_type: str, size: int) -> bool:
    """Mark the export ready and tell its owner, in one unit; False if it is gone or another
    attempt holds it (the key it records is not this attempt's)."""
    now = utcnow()
    with unit_of_work():
        export = exports.locked(export_id)
        if export is None or export.status != ExportStatus.running or export.storage_key != key:
            return False
        kind = export.kind
        export.status = ExportStatus.ready
        export.progress = 100
        export.size = size
        export.storage_key = key
        export.filename = filename
        export.content_type = content_type
        export.finished_at = now
        export.expires_at = now + timedelta(hours=_settings().export_retention_hours)
        # English, as notifications store their words (translated where they are shown).
        notify(
            export.user_id,
            "export.ready",
            params={"export_name": kind_title(export.kind), "size": format_filesize(size)},
            link=exports_page_path(),
        )
        emit("export.ready", export_data(export))
    log.info("export_ready", export_id=export_id, kind=kind, size=size)
    return True


def _discard_after_commit(keys: list[str]) -> None:
    """Delete these files once the current unit of work commits (the rows no longer point at
    them); nothing on rollback."""
    if keys:
        on_commit(lambda: _discard_all(keys))


def _discard_all(keys: list[str]) -> None:
    for key in keys:
        _discard(key)


def _discard(key: str) -> None:
    """Remove what an attempt may have stored; a storage failure here is logged (the failure
    being handled matters more), and the next attempt or `expire_exports` deletes it."""
    try:
        get_storage().delete(key)
    except Exception as error:  # storage down while cleaning up after a failure: logged
        log.warning("export_cleanup_failed", key=key, error=repr(error))


def mark_failed(export_id: str, reason: str) -> None:
    """The job gave up (its retries are spent): the export fails with the job's sentence and
    its owner is told. Nothing is stored for a failed export."""
    with unit_of_work():
        export = exports.get(export_id)
        if export is None or export.status not in ACTIVE_STATUSES:
            return
        _fail(export, (BUILD_FAILED % {"reason": reason})[:2000], reason)


def _fail(export: Export, error: str, reason: str) -> None:
    """Fail the export with `error` (stored) and tell its owner `reason` (the notification
    says "could not be made: <reason>"). A file a lost attempt may have stored under the key
    it recorded goes once this commits (after_commit: the row must stop pointing at it first)."""
    if export.storage_key:
        _discard_after_commit([export.storage_key])
    export.status = ExportStatus.failed
    export.error = error
    export.storage_key = None
    export.finished_at = utcnow()
    notify(
        export.user_id,
        "export.failed",
        params={"export_name": kind_title(export.kind), "error": reason},
        link=exports_page_path(),
    )


def exports_page_path() -> str:
    """The path of the `/exports` page, built without a request (workers have none)."""
    return app_path(EXPORTS_PAGE_ENDPOINT)


# Housekeeping (hourly) -------------------------------------------------------------------------


def expire_exports(now: datetime | None = None) -> dict[str, int]:
    """Mark ready exports past their retention `expired` and fail exports whose job ended
    without them, commit, then delete their files; then delete the files no export can own
    any more (`_purge_orphans`). What it did, as counts."""
    now = now or utcnow()
    with unit_of_work():
        expired = exports.expired(now, SWEEP_BATCH)
        keys = [export.storage_key for export in expired if export.storage_key]
        for export in expired:
            export.status = ExportStatus.expired
            export.storage_key = None
        orphaned = exports.orphaned(SWEEP_BATCH)
        for export in orphaned:
            _fail(export, JOB_LOST, JOB_LOST)
        _discard_after_commit(keys)
    return {"expired": len(expired), "failed": len(orphaned), "purged": _purge_orphans(now)}


def _purge_orphans(now: datetime) -> int:
    """Delete every stored export file older than any export that could still own it: older
    than the retention and than the start of the oldest export ready or running, less
    ORPHAN_GRACE. Such a file was left by a worker that died between storing it and recording
    it, or by a delete whose storage call failed. How many files went. (Local disk keeps the
    emptied folders; S3 uploads a killed worker left unfinished are for a bucket lifecycle
    rule, docs/deployment.md.)"""
    with unit_of_work():
        oldest_live = exports.oldest_live_start()
    cutoff = now - timedelta(hours=retention_hours())
    if oldest_live is not None:
        cutoff = min(cutoff, oldest_live)
    return get_storage().purge(KEY_PREFIX, cutoff - ORPHAN_GRACE)


# Reading, downloading, deleting --------------------------------------------------------------


def list_own(user_id: int, page: int, per_page: int) -> Page[Export]:
    """One page of the user's exports, newest first."""
    return paginate(export_list_statement(user_id), page, per_page)


def any_active(items: Any) -> bool:
    """Whether any of these exports is still queued or running (a page showing them polls)."""
    return any(export.status in ACTIVE_STATUSES for export in items)


def get_owned(user_id: int, export_id: str) -> Export:
    """The export if `user_id` owns it; NotFound otherwise, the same for someone else's as for
    a missing one (ids can't be probed). Owners only: no permission sees others' exports."""
    export = exports.get(export_id)
    if export is None or export.user_id != user_id:
        raise NotFound(_("No export with this id."))
    return export


def may_download(export: Export) -> bool:
    """Whether the export has a file its owner may download now: ready, and the owner still
    holds the permission its kind needs (a cached lookup: cheap per row)."""
    return (
        export.status == ExportStatus.ready
        and bool(export.storage_key)
        and _may_have(export.user_id, get_kind(export.kind))
    )


def download_url(export: Export) -> str:
    """A link valid for DOWNLOAD_URL_SECONDS that downloads the file as an attachment
    (presigned on S3, the signed local route on disk); Conflict unless the export is ready,
    PermissionDenied when its owner no longer holds the permission its kind needs."""
    if export.status != ExportStatus.ready or not export.storage_key:
        raise Conflict(
            _("This export is %(status)s: there is no file to download.", status=export.status_label.lower())
        )
    spec = get_kind(export.kind)
    if not _may_have(export.user_id, spec):
        raise PermissionDenied(_("This needs the %(permission)r permission.", permission=spec.permission))
    return get_storage().presign_download(export.storage_key, export.filename or "export", DOWNLOAD_URL_SECONDS)


def delete_export(actor_id: int, export: Export) -> None:
    """Delete the export's row (audited) and, once that commits, its file. A job that has not
    started is revoked in the same unit; a build running stops at its next progress report, or
    finds the row gone when it ends, and removes what it stored. Its slot is free once the job
    has ended (`request_export` counts jobs)."""
    with unit_of_work():
        current = exports.locked(export.id)
        if current is None:
            return  # deleted meanwhile (another tab): nothing left to do
        if current.status in ACTIVE_STATUSES and current.job_id:
            cancel(current.job_id)
        record(
            "export_deleted",
            actor_id=actor_id,
            subject_id=current.user_id,
            target=f"export:{current.id}",
            before={"kind": current.kind, "status": current.status, "size": current.size},
        )
        if current.storage_key:
            _discard_after_commit([current.storage_key])
        exports.delete(current)
