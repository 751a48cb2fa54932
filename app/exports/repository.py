"""Queries over exports. Nothing here commits: the export service's units of work do
(app.core.unit_of_work)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Select, Update, func, select, update

from app.core.repository import Repository
from app.exports.models import ACTIVE_STATUSES, Export, ExportStatus
from app.jobs.models import FINAL_STATUSES, Job
from app.users.models import User


def export_list_statement(user_id: int) -> Select:
    """One user's exports, newest first."""
    return select(Export).where(Export.user_id == user_id).order_by(Export.created_at.desc(), Export.id)


def progress_statement(export_id: str, percent: int) -> Update:
    """Record how far a running export is (0–100), only while it runs."""
    return (
        update(Export)
        .where(Export.id == export_id, Export.status == ExportStatus.running)
        .values(progress=max(0, min(100, int(percent))))
    )


class ExportRepository(Repository[Export]):
    model = Export

    def lock_owner(self, user_id: int) -> None:
        """Hold the owner's row until the unit of work ends (FOR UPDATE on PostgreSQL; SQLite
        serialises writers anyway), so two requests at once cannot both pass the limit."""
        self.session.execute(select(User.id).where(User.id == user_id).with_for_update())

    def count_active(self, user_id: int) -> int:
        """The user's exports queued or running whose job is still alive: one whose job ended
        (revoked, or failed without telling the export) or is gone does not hold a slot."""
        return (
            self.session.scalar(
                select(func.count())
                .select_from(Export)
                .join(Job, Job.id == Export.job_id)
                .where(
                    Export.user_id == user_id,
                    Export.status.in_(ACTIVE_STATUSES),
                    Job.status.not_in(FINAL_STATUSES),
                )
            )
            or 0
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
