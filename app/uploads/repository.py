"""Queries over uploads. Nothing here commits: the upload service's units of work do
(app.core.unit_of_work)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Select, func, select, update

from app.core.database import utcnow
from app.core.repository import Repository
from app.uploads.models import Upload, UploadStatus
from app.users.models import User

# What counts against a user's quota: everything not rejected or failed.
LIVE_STATUSES = (UploadStatus.pending, UploadStatus.uploaded, UploadStatus.processing, UploadStatus.ready)


def upload_list_statement(
    kind: str | None, status: str | None, *, user_id: int | None = None, owner: str | None = None
) -> Select:
    """Uploads newest first, by kind and status; `user_id` keeps one owner's, `owner` matches
    the owner's email (or part of it) for the admin."""
    statement = select(Upload)
    if user_id is not None:
        statement = statement.where(Upload.user_id == user_id)
    if kind:
        statement = statement.where(Upload.kind == kind)
    if status:
        statement = statement.where(Upload.status == status)
    if owner:
        statement = statement.where(
            Upload.user_id.in_(select(User.id).where(User.email.like(f"%{owner.strip().lower()}%")))
        )
    return statement.order_by(Upload.created_at.desc(), Upload.id)


class UploadRepository(Repository[Upload]):
    model = Upload

    def used_bytes(self, user_id: int) -> int:
        """Bytes the user's live uploads take (the declared size until one is confirmed)."""
        return (
            self.session.scalar(
                select(func.coalesce(func.sum(func.coalesce(Upload.size, Upload.declared_size)), 0)).where(
                    Upload.user_id == user_id, Upload.status.in_(LIVE_STATUSES)
                )
            )
            or 0
        )

    def claim_pending(self, upload_id: str) -> bool:
        """Compare-and-set: touch the row only while it is `pending`, which locks it until the
        unit of work ends (row lock on PostgreSQL, the write lock on SQLite); False when it
        was no longer pending."""
        claimed = self.session.execute(
            update(Upload)
            .where(Upload.id == upload_id, Upload.status == UploadStatus.pending)
            .values(updated_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        return claimed.rowcount == 1

    def stale_pending(self, cutoff: datetime, limit: int = 500) -> Sequence[Upload]:
        """Uploads still `pending` that were requested before `cutoff`."""
        return self.session.scalars(
            select(Upload).where(Upload.status == UploadStatus.pending, Upload.created_at < cutoff).limit(limit)
        ).all()

    def count_and_size_by_status(self) -> list[tuple[str, int, int]]:
        """(status, uploads, bytes of confirmed files) for every status that has uploads."""
        rows = self.session.execute(
            select(Upload.status, func.count(), func.coalesce(func.sum(Upload.size), 0)).group_by(Upload.status)
        ).all()
        return [(status, count, int(size or 0)) for status, count, size in rows]

    def avatar_choices(self, user_id: int, limit: int = 50) -> list[Upload]:
        """The user's processed images (those with a thumbnail), newest first."""
        return list(
            self.session.scalars(
                select(Upload)
                .where(
                    Upload.user_id == user_id, Upload.status == UploadStatus.ready, Upload.thumbnail_key.is_not(None)
                )
                .order_by(Upload.created_at.desc())
                .limit(limit)
            )
        )
