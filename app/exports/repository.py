"""Queries over exports. Nothing here commits: the export service's units of work do
(app.core.unit_of_work)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Select, Update, func, select, text, update

from app.core.repository import Repository
from app.exports.models import ACTIVE_STATUSES, Export, ExportStatus
from app.jobs.models import FINAL_STATUSES, Job
from app.users.models import User


def export_list_statement(user_id: int) -> Select:
    """One user's exports, newest first."""
    return select(Export).where(Export.user_id == user_id).order_by(Export.created_at.desc(), Export.id)


def progress_statement(export_id: str, attempt_key: str, percent: int) -> Update:
    """Record how far a running export is (0–100), only while this attempt (the object key it
    will store under) is the one running it: no row updated means the export was deleted or a
    later delivery of its job took over."""
    return (
        update(Export)
        .where(Export.id == export_id, Export.status == ExportStatus.running, Export.storage_key == attempt_key)
        .values(progress=max(0, min(100, int(percent))))
    )


class ExportRepository(Repository[Export]):
    model = Export

    def lock_owner(self, user_id: int) -> None:
        """Hold the owner's row until the unit of work ends, so two requests at once cannot
        both pass the limit (`_hold`)."""
        self._hold("users", user_id)
        self.session.execute(select(User.id).where(User.id == user_id).with_for_update())

    def _hold(self, table: str, row_id: Any) -> None:
        """On SQLite, take the database's write lock now with a write that changes nothing:
        it has no row locks (FOR UPDATE is ignored) and pysqlite opens no transaction for a
        SELECT, so what the unit reads next could change before it writes. PostgreSQL locks
        the row itself (FOR UPDATE, in the caller's SELECT). `table` is one of ours, never input."""
        if self.session.get_bind().dialect.name == "sqlite":
            self.session.execute(text(f"UPDATE {table} SET id = id WHERE id = :id"), {"id": row_id})  # noqa: S608

    def locked(self, export_id: str) -> Export | None:
        """The export as committed now, its row held until the unit of work ends (FOR UPDATE on
        PostgreSQL), so a deletion and a build finishing at once take turns."""
        self._hold("exports", export_id)
        return self.session.scalar(
            select(Export).where(Export.id == export_id).with_for_update().execution_options(populate_existing=True)
        )

    def count_active(self, user_id: int, task: str) -> int:
        """The user's `task` jobs not yet ended: the slots they hold. Counted on the jobs, not on
        the exports, so an export deleted while its job still runs holds its slot until the job
        stops, and one whose job ended (revoked, or failed without telling it) holds none."""
        return (
            self.session.scalar(
                select(func.count())
                .select_from(Job)
                .where(Job.user_id == user_id, Job.task == task, Job.status.not_in(FINAL_STATUSES))
            )
            or 0
        )

    def oldest_live_start(self) -> datetime | None:
        """When the oldest export with a file that must outlive any sweep (ready, or running and
        storing it) was started: its stored file is no older than that (an S3 multipart upload's
        LastModified is when the upload began, not when it ended)."""
        return self.session.scalar(
            select(func.min(Export.started_at)).where(Export.status.in_((ExportStatus.ready, ExportStatus.running)))
        )

    def expired(self, now: datetime, limit: int) -> Sequence[Export]:
        """Ready exports whose retention ended, oldest first."""
        return self.session.scalars(
            select(Export)
            .where(Export.status == ExportStatus.ready, Export.expires_at <= now)
            .order_by(Export.expires_at)
            .limit(limit)
        ).all()

    def orphaned(self, limit: int) -> Sequence[Export]:
        """Exports still queued or running whose job ended or disappeared (a worker lost on its
        last attempt, a job revoked or purged): nothing will ever finish them."""
        return self.session.scalars(
            select(Export)
            .outerjoin(Job, Job.id == Export.job_id)
            .where(
                Export.status.in_(ACTIVE_STATUSES),
                (Job.id.is_(None)) | Job.status.in_(FINAL_STATUSES),
            )
            .limit(limit)
        ).all()
