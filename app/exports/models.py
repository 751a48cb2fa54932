"""The `exports` table: one row per document a user asked for, built on the `reports` queue."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.core.database import UTCDateTime, utcnow
from app.extensions import db
from app.i18n import _l, translate_stored


class ExportStatus(StrEnum):
    queued = "queued"  # asked for, its job not started (or waiting for its retry)
    running = "running"
    ready = "ready"  # the file is stored until `expires_at`
    failed = "failed"  # no file; `error` says why
    expired = "expired"  # the file was deleted after EXPORT_RETENTION_HOURS


# Counted against EXPORT_MAX_CONCURRENT_PER_USER; a page showing one of these polls.
ACTIVE_STATUSES = (ExportStatus.queued, ExportStatus.running)

STATUS_LABELS: dict[str, str] = {
    ExportStatus.queued: _l("Queued"),
    ExportStatus.running: _l("Running"),
    ExportStatus.ready: _l("Ready"),
    ExportStatus.failed: _l("Failed"),
    ExportStatus.expired: _l("Expired"),
}


class Export(db.Model):
    __tablename__ = "exports"
    __table_args__ = (
        Index("ix_exports_user_created", "user_id", "created_at"),
        Index("ix_exports_status_expires", "status", "expires_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))
    # The validated filters (app.exports.catalogue), as JSON: what the renderer receives.
    filters: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default=ExportStatus.queued)
    progress: Mapped[int] = mapped_column(Integer, default=0)
    size: Mapped[int | None] = mapped_column(BigInteger)
    storage_key: Mapped[str | None] = mapped_column(String(512))
    filename: Mapped[str | None] = mapped_column(String(255))
    content_type: Mapped[str | None] = mapped_column(String(127))
    # Why it failed, a sentence for people stored in English (translated where shown).
    error: Mapped[str | None] = mapped_column(Text)
    job_id: Mapped[str | None] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    def __repr__(self) -> str:
        return f"<Export {self.id} {self.kind} {self.status}>"

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES

    @property
    def status_label(self) -> str:
        return str(STATUS_LABELS.get(self.status, str(self.status).capitalize()))

    @property
    def shown_error(self) -> str | None:
        """Why it failed, in the reader's language; None for any other status."""
        return translate_stored(self.error) if self.status == ExportStatus.failed and self.error else None
