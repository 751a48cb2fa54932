"""The `jobs` table: one row per background job, written in the transaction that asked for it."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.core.database import UTCDateTime, utcnow
from app.extensions import db


class JobStatus(StrEnum):
    queued = "queued"
    running = "running"
    retrying = "retrying"
    succeeded = "succeeded"
    failed = "failed"
    revoked = "revoked"


FINAL_STATUSES = frozenset({JobStatus.succeeded, JobStatus.failed, JobStatus.revoked})


class Job(db.Model):
    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_status_enqueued_at", "status", "enqueued_at"),
        Index("ix_jobs_queue_status", "queue", "status"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    queue: Mapped[str] = mapped_column(String(32))
    task: Mapped[str] = mapped_column(String(120))
    # What the task needs to run again after a crash; never shown, never logged.
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # What people may see: the payload with secrets and bodies left out.
    args_summary: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default=JobStatus.queued)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=1)
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    error: Mapped[str | None] = mapped_column(Text)
    # The last failure's traceback: code lines and the exception message, never the payload.
    traceback: Mapped[str | None] = mapped_column(Text)
    # What a long task reports about itself (0–100) while it runs.
    progress: Mapped[int | None] = mapped_column(Integer)
    progress_message: Mapped[str | None] = mapped_column(String(200))
    # Who caused the job (the signed-in user of the request that enqueued it), if anyone.
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    request_id: Mapped[str | None] = mapped_column(String(128))
    duration_ms: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    enqueued_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    def __repr__(self) -> str:
        return f"<Job {self.id} {self.task} {self.status}>"


class PeriodicRun(db.Model):
    """The last run of each periodic task, for the admin's jobs page."""

    __tablename__ = "periodic_runs"

    name: Mapped[str] = mapped_column(String(120), primary_key=True)
    runs: Mapped[int] = mapped_column(Integer, default=0)
    last_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_status: Mapped[str | None] = mapped_column(String(16))
    last_error: Mapped[str | None] = mapped_column(Text)
    last_duration_ms: Mapped[float | None] = mapped_column(Float)
