"""Reading the audit trail: the admin's filters, shared by /admin/audit and the user and job
detail pages."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import Select, or_, select

from app.audit.models import AuditEvent
from app.extensions import db
from app.users.models import User


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
    statement = select(AuditEvent)
    if filters.actor:
        term = filters.actor.strip().lower()
        if term.startswith("#") and term[1:].isdigit():
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
    if filters.until:
        statement = statement.where(AuditEvent.created_at < _day_start(filters.until + timedelta(days=1)))
    if filters.request_id:
        statement = statement.where(AuditEvent.request_id == filters.request_id.strip())
    if filters.user_id is not None:
        statement = statement.where(
            or_(AuditEvent.actor_user_id == filters.user_id, AuditEvent.subject_user_id == filters.user_id)
        )
    return statement.order_by(AuditEvent.created_at.desc(), AuditEvent.id.desc())


def recent(filters: AuditFilter, limit: int = 20) -> list[AuditEvent]:
    return list(db.session.scalars(audit_statement(filters).limit(limit)))


def actions() -> list[str]:
    """Every event name recorded so far, for the filter's choices."""
    return list(db.session.scalars(select(AuditEvent.event).distinct().order_by(AuditEvent.event)))


def emails_of(user_ids: set[int | None]) -> dict[int, str]:
    """Actor and subject emails for a page of events: one query, not one per row."""
    ids = {user_id for user_id in user_ids if user_id is not None}
    if not ids:
        return {}
    return dict(db.session.execute(select(User.id, User.email).where(User.id.in_(ids))).all())
