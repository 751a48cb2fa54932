"""The `uploads` table."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.core.database import UTCDateTime, utcnow
from app.extensions import db
from app.i18n import _l, translate_stored


class UploadStatus(StrEnum):
    pending = "pending"  # presigned URL issued, bytes not confirmed yet
    uploaded = "uploaded"  # confirmed, processing queued
    processing = "processing"
    ready = "ready"
    rejected = "rejected"  # failed a confirm check; the object is deleted
    failed = "failed"  # processing failed after the queue's retries


# The words pages use for a kind and a status (filters, lists, badges, the upload picker).
KIND_LABELS: dict[str, str] = {"avatar": _l("Avatar"), "document": _l("Document"), "video": _l("Video")}
STATUS_LABELS: dict[str, str] = {
    UploadStatus.pending: _l("Pending"),
    UploadStatus.uploaded: _l("Uploaded"),
    UploadStatus.processing: _l("Processing"),
    UploadStatus.ready: _l("Ready"),
    UploadStatus.rejected: _l("Rejected"),
    UploadStatus.failed: _l("Failed"),
}
# The statuses whose `error` says why: only these show it. A file being processed again keeps
# its last failure's text until it is ready or fails anew; no page shows it beside "Processing".
EXPLAINED_STATUSES = frozenset({UploadStatus.rejected, UploadStatus.failed})


class Upload(db.Model):
    __tablename__ = "uploads"
    __table_args__ = (
        Index("ix_uploads_user_created", "user_id", "created_at"),
        Index("ix_uploads_status_created", "status", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16), index=True)
    status: Mapped[str] = mapped_column(String(16), default=UploadStatus.pending)
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(127))
    declared_size: Mapped[int] = mapped_column(BigInteger)
    size: Mapped[int | None] = mapped_column(BigInteger)
    key: Mapped[str] = mapped_column(String(512), unique=True)
    thumbnail_key: Mapped[str | None] = mapped_column(String(512))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    # What every page says about the upload, decided here once (lists, detail pages, API rows).

    @property
    def kind_label(self) -> str:
        return KIND_LABELS.get(self.kind, str(self.kind).capitalize())

    @property
    def status_label(self) -> str:
        return STATUS_LABELS.get(self.status, str(self.status).capitalize())

    @property
    def shown_error(self) -> str | None:
        """Why the upload was rejected or failed, in the reader's language (the sentence is
        stored in English: app.i18n `translate_stored`), or None: never shown beside any other
        status."""
        return translate_stored(self.error) if self.status in EXPLAINED_STATUSES else None

    @property
    def shown_size(self) -> int | None:
        """The stored size once confirmed, the declared size until then."""
        return self.size if self.size is not None else self.declared_size
