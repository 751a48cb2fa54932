"""`account_data`: a ZIP of everything Hearth holds about its owner ("download my data").

profile.json, sessions.json, uploads.json with the files themselves under files/,
notifications.json, exports.json, audit.json and a README.txt saying what each holds, in the
owner's language. Nothing secret goes in: every row is read column by column
(app/exports/renderers/queries.py), so password and token hashes and session ids are never read.
Other people stay out: an audit event by someone else keeps what happened to the owner, not
who did it or from where; one about someone else keeps only its name and time.

Memory stays flat however large the account: files are copied from storage in CHUNK-sized
reads (`Storage.open`), and the long lists (sign-ins, notifications, audit events) are written
a batch of rows at a time.
"""

from __future__ import annotations

import shutil
import zipfile
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import IO, Any, BinaryIO

import orjson

from app.errors import NotFound
from app.exports.renderers import queries
from app.exports.renderers.base import CHUNK, Progress, RenderContext, owners_language
from app.i18n import _, translate_stored
from app.rbac.service import permissions_of
from app.storage import get_storage
from app.storage.names import key_segment
from app.uploads.models import Upload, UploadStatus

# Uploads whose bytes are stored at `key` (pending ones are not there yet; rejected ones are deleted).
STORED_STATUSES = frozenset({UploadStatus.uploaded, UploadStatus.processing, UploadStatus.ready, UploadStatus.failed})
# Content already compressed: stored as it is, deflating it again costs CPU for nothing.
PACKED_TYPES = ("image/", "video/", "audio/", "application/zip", "application/pdf", "application/gzip")
SECTIONS = 6  # profile, sessions, uploads.json, notifications, exports, audit (+1 a file, +1 the README)


def render_account_data(context: RenderContext, out: BinaryIO) -> None:
    with owners_language(context.user_id), zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        writer = _Archive(archive, context.generated_at)
        profile = queries.profile_of(context.user_id)
        if profile is None:
            raise NotFound(_("No user with id %(id)s.", id=context.user_id))
        uploads = queries.uploads_of(context.user_id)
        progress = Progress(context.progress, SECTIONS + len(uploads) + 1)

        writer.json("profile.json", _profile(profile, context))
        progress.step()
        _write_sessions(writer, context.user_id)
        progress.step()
        listed = []
        for upload in uploads:
            listed.append(_upload(upload, writer))
            progress.step()
        writer.json("uploads.json", listed)
        progress.step()
        writer.json_lines("notifications.json", _notifications(context.user_id))
        progress.step()
        writer.json("exports.json", [_row(row) for row in queries.exports_of(context.user_id)])
        progress.step()
        writer.json_lines("audit.json", _audit(context.user_id))
        progress.step()
        writer.text("README.txt", readme(profile.email, context.generated_at))
        progress.finish()


class _Archive:
    """Entries of one ZIP, all dated when the export was asked for."""

    def __init__(self, archive: zipfile.ZipFile, generated_at: datetime):
        self.archive = archive
        self.date_time = generated_at.timetuple()[:6]

    def open(self, name: str, compress: bool = True, large: bool = False) -> IO[bytes]:
        info = zipfile.ZipInfo(name, date_time=self.date_time)
        info.compress_type = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
        info.external_attr = 0o644 << 16  # a plain readable file when unzipped
        return self.archive.open(info, "w", force_zip64=large)

    def json(self, name: str, value: Any) -> None:
        with self.open(name) as entry:
            entry.write(orjson.dumps(value, option=orjson.OPT_INDENT_2) + b"\n")

    def json_lines(self, name: str, items: Iterable[Any]) -> None:
        """A JSON array written one item (one line) at a time, never built whole."""
        with self.open(name) as entry:
            entry.write(b"[")
            first = True
            for item in items:
                entry.write(b"\n  " if first else b",\n  ")
                entry.write(orjson.dumps(item))
                first = False
            entry.write(b"\n]\n" if not first else b"]\n")

    def text(self, name: str, text: str) -> None:
        with self.open(name) as entry:
            entry.write(text.encode())


def _row(row: Any) -> dict[str, Any]:
    return dict(row._mapping)


def _profile(profile: Any, context: RenderContext) -> dict[str, Any]:
    fields = _row(profile)
    active = fields.pop("is_active_account")
    return {
        **fields,
        "status": "deleted" if fields["deleted_at"] else ("active" if active else "disabled"),
        "roles": queries.role_names_of(context.user_id),
        "permissions": sorted(permissions_of(context.user_id)),
        "export_generated_at": context.generated_at,
    }


def _write_sessions(writer: _Archive, user_id: int) -> None:
    """sessions.json: one object; its last list (every sign-in attempt) can be long, so the
    object is written around a streamed array."""
    lists = {
        "browser_sessions": [_row(row) for row in queries.browser_sessions(user_id)],
        "remembered_browsers": [_row(row) for row in queries.remember_tokens(user_id)],
        "api_sign_ins": [_row(row) for row in queries.api_sign_ins(user_id)],
        "emailed_links": [_row(row) for row in queries.emailed_links(user_id)],
        "wrong_password_counts": [_row(row) for row in queries.login_failures(user_id)],
    }
    with writer.open("sessions.json") as entry:
        head = orjson.dumps(lists, option=orjson.OPT_INDENT_2)
        entry.write(head[:-2] + b',\n  "sign_ins": [')  # the object, still open: `\n}` cut off
        first = True
        for batch in queries.stream_rows(queries.sign_ins_of(user_id)):
            for row in batch:
                item = {"at": row.created_at, "outcome": row.event, "ip": row.ip, "channel": _get(row.data, "channel")}
                entry.write((b"\n    " if first else b",\n    ") + orjson.dumps(item))
                first = False
        entry.write(b"]\n}\n" if first else b"\n  ]\n}\n")


def _get(data: Mapping[str, Any] | None, key: str) -> Any:
    return data.get(key) if isinstance(data, Mapping) else None


def _upload(upload: Upload, writer: _Archive) -> dict[str, Any]:
    """The upload's metadata; its bytes copied into files/ when storage has them."""
    path = None
    if upload.status in STORED_STATUSES:
        path = f"files/{upload.id}/{key_segment(upload.filename)}"
        try:
            reader = get_storage().open(upload.key)
        except FileNotFoundError:
            path = None
        else:
            packed = upload.content_type.startswith(PACKED_TYPES)
            large = (upload.size or upload.declared_size or 0) > zipfile.ZIP64_LIMIT // 2
            with reader, writer.open(path, compress=not packed, large=large) as entry:
                shutil.copyfileobj(reader, entry, CHUNK)
    return {
        "id": upload.id,
        "kind": upload.kind,
        "status": upload.status,
        "filename": upload.filename,
        "content_type": upload.content_type,
        "size": upload.shown_size,
        "details": upload.details or {},
        "error": translate_stored(upload.error),
        "created_at": upload.created_at,
        "updated_at": upload.updated_at,
        "file": path,
    }


def _notifications(user_id: int) -> Iterable[dict[str, Any]]:
    for batch in queries.stream_rows(queries.notifications_of(user_id)):
        for row in batch:
            item = _row(row)
            item["title"], item["body"] = translate_stored(row.title), translate_stored(row.body)
            yield item


def _audit(user_id: int) -> Iterable[dict[str, Any]]:
    """Events by or about the owner, without other people: who else acted (and from where) is
    theirs, and so is what an event about someone else says."""
    for batch in queries.stream_rows(queries.audit_of(user_id)):
        for row in batch:
            about_owner = row.subject_user_id == user_id or row.subject_user_id is None
            by_owner = row.actor_user_id == user_id
            yield {
                "at": row.created_at,
                "event": row.event,
                "by": "you" if by_owner else ("someone else" if row.actor_user_id is not None else None),
                "about": "you" if row.subject_user_id == user_id else ("someone else" if row.subject_user_id else None),
                "target": row.target if about_owner else _kind_of(row.target),
                "ip": row.ip if by_owner or row.actor_user_id is None else None,
                "request_id": row.request_id if by_owner or row.actor_user_id is None else None,
                "data": (row.data or {}) if about_owner else {},
            }


def _kind_of(target: str | None) -> str | None:
    """ "user:7" → "user": what kind of thing, not which."""
    return target.partition(":")[0] if target else None


def readme(email: str, generated_at: datetime) -> str:
    """What the archive holds, file by file, in the owner's language."""
    lines = [
        _("Your data in Hearth"),
        "",
        _(
            "Everything Hearth holds about the account %(email)s, as of %(when)s (UTC).",
            email=email,
            when=generated_at.strftime("%Y-%m-%d %H:%M"),
        ),
        _("Times are in UTC, in ISO 8601. Nothing secret is included: no password, no token, no session key."),
        "",
        "profile.json",
        "  " + _("Your account: email address, display name, language, status, roles and the permissions they give."),
        "sessions.json",
        "  "
        + _(
            "Where you are or were signed in: browser sessions, remembered browsers, API sign-ins, links we emailed "
            "you, wrong-password counts, and every sign-in attempt on your account with its outcome."
        ),
        "uploads.json",
        "  " + _("The files you uploaded: name, type, size, status and when; 'file' names the copy in files/."),
        "files/",
        "  " + _("The files themselves, one folder per upload, as stored."),
        "notifications.json",
        "  " + _("The notifications Hearth showed you, read or not."),
        "exports.json",
        "  " + _("The exports you asked for, this one included."),
        "audit.json",
        "  "
        + _(
            "The security log entries by or about you. When someone else acted on your account it says so, "
            "without saying who."
        ),
    ]
    return "\n".join(lines) + "\n"
