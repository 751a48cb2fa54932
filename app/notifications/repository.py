"""Queries over notifications and preferences. Nothing here commits: the notification service's
units of work do (app.core.unit_of_work)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Select, case, func, select, update

from app.core.database import upsert
from app.core.repository import Repository
from app.notifications.models import Notification, NotificationPreference


def notification_list_statement(user_id: int, unread_only: bool = False) -> Select:
    """One user's notifications, newest first (ix_notifications_user_unread serves both)."""
    statement = select(Notification).where(Notification.user_id == user_id)
    if unread_only:
        statement = statement.where(Notification.read_at.is_(None))
    return statement.order_by(Notification.created_at.desc(), Notification.id.desc())


class NotificationRepository(Repository[Notification]):
    model = Notification

    def owned(self, user_id: int, notification_id: int) -> Notification | None:
        return self.session.scalars(
            select(Notification).where(Notification.id == notification_id, Notification.user_id == user_id)
        ).first()

    def mark_all_read(self, user_id: int, now: datetime) -> int:
        result = self.session.execute(
            update(Notification)
            .where(Notification.user_id == user_id, Notification.read_at.is_(None))
            .values(read_at=now)
            .execution_options(synchronize_session=False)
        )
        return result.rowcount or 0

    def unread_summary(self, user_id: int) -> tuple[int, datetime | None, datetime | None]:
        """(unread count, newest created_at, newest read_at) of the user's notifications: one
        statement, what the bell shows and its Last-Modified."""
        row = self.session.execute(
            select(
                func.coalesce(func.sum(case((Notification.read_at.is_(None), 1), else_=0)), 0),
                func.max(Notification.created_at),
                func.max(Notification.read_at),
            ).where(Notification.user_id == user_id)
        ).one()
        return int(row[0]), row[1], row[2]


class PreferenceRepository(Repository[NotificationPreference]):
    model = NotificationPreference

    def of_user(self, user_id: int) -> list[NotificationPreference]:
        return list(
            self.session.scalars(select(NotificationPreference).where(NotificationPreference.user_id == user_id))
        )

    def store(self, user_id: int, kind: str, in_app: bool, email: bool) -> None:
        """Write the user's choice for `kind`, inserting or replacing it in one statement: two
        saves at once (two tabs) both succeed, the later one winning, never a duplicate-key
        error."""
        table = NotificationPreference.__table__
        statement = (
            upsert(self.session.get_bind().dialect, table)
            .values(user_id=user_id, kind=kind, in_app=in_app, email=email)
            .on_conflict_do_update(
                index_elements=[table.c.user_id, table.c.kind], set_={"in_app": in_app, "email": email}
            )
            .execution_options(synchronize_session=False)
        )
        self.session.execute(statement)
        # A row this session loaded earlier would otherwise keep its old values.
        loaded = self.session.identity_map.get(self.session.identity_key(NotificationPreference, (user_id, kind)))
        if loaded is not None:
            self.session.expire(loaded)
