"""Queries over the audit trail: the admin's filters (shared by /admin/audit and the user and
job detail pages) and the named finders the audit service calls. Nothing here commits."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import Select, or_, select

from app.audit.models import AuditEvent
from app.core.repository import Repository
from app.users.models import User

ACTOR_ID = re.compile(r"#[0-9]{1,18}")  # "#<user id>" in the actor filter


@dataclass(frozen=True)
class AuditFilter:
    actor: str | None = None  # email (or part of it), or "#<id>"
    action: str | None = None
    target: str | None = None  # "user:7", or a prefix such as "job:"
    since: date | None = None
    until: date | None = None  # inclusive
    request_id: str | None = None
    user_id: int | None = None  # events by or about this user


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def audit_statement(filters: AuditFilter) -> Select:
    """Events matching the filters, newest first."""
    statement = select(AuditEvent)
    if filters.actor:
        term = filters.actor.strip().lower()
        if ACTOR_ID.fullmatch(term):  # ASCII digits only: "#²" is "digits" to str.isdigit, not to int()
            statement = statement.where(AuditEvent.actor_user_id == int(term[1:]))
        else:
            statement = statement.where(
                AuditEvent.actor_user_id.in_(select(User.id).where(User.email.like(f"%{term}%")))
            )
    if filters.action:
        statement = statement.where(AuditEvent.event == filters.action.strip())
    if filters.target:
        target = filters.target.strip()
        statement = statement.where(
            AuditEvent.target.like(f"{target}%") if target.endswith(":") else AuditEvent.target == target
        )
    if filters.since:
        statement = statement.where(AuditEvent.created_at >= _day_start(filters.since))
    if filters.until and filters.until < date.max:  # up to date.max inclusive: no upper bound at all
        statement = statement.where(AuditEvent.created_at < _day_start(filters.until + timedelta(days=1)))
    if filters.request_id:
        statement = statement.where(AuditEvent.request_id == filters.request_id.strip())
    if filters.user_id is not None:
        statement = statement.where(
            or_(AuditEvent.actor_user_id == filters.user_id, AuditEvent.subject_user_id == filters.user_id)
        )
    return statement.order_by(AuditEvent.created_at.desc(), AuditEvent.id.desc())


class AuditEventRepository(Repository[AuditEvent]):
    model = AuditEvent

    def recent(self, filters: AuditFilter, limit: int) -> list[AuditEvent]:
        return list(self.session.scalars(audit_statement(filters).limit(limit)))

    def recent_about(self, user_id: int, names: tuple[str, ...], limit: int) -> list[AuditEvent]:
        """The newest `limit` events named `names` whose subject is the user (their account's
        security activity; ix_audit_events_subject_created serves it)."""
        statement = (
            select(AuditEvent)
            .where(AuditEvent.subject_user_id == user_id, AuditEvent.event.in_(names))
            .order_by(AuditEvent.created_at.desc(), AuditEvent.id.desc())
            .limit(limit)
        )
        return list(self.session.scalars(statement))

    def event_names(self) -> list[str]:
        """Every event name recorded so far."""
        return list(self.session.scalars(select(AuditEvent.event).distinct().order_by(AuditEvent.event)))

    def emails_of(self, user_ids: set[int]) -> dict[int, str]:
        """Emails of the given users (actors and subjects of a page of events): one query."""
        return dict(self.session.execute(select(User.id, User.email).where(User.id.in_(user_ids))).all())
