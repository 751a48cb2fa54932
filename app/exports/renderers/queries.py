"""The reads the documents need (nothing here writes). Every row is selected column by column,
so a secret never even reaches Python: no password hash, no token hash, no session id.
Large results come in batches from a server-side cursor; the activity report's figures are
aggregated by the database (the same SQL on SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Row, Select, String, func, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

from app.audit.models import AuditEvent
from app.audit.repository import AuditFilter, audit_statement
from app.auth.models import AccountToken, LoginFailures, RefreshToken, RememberToken, UserSession
from app.exports.models import Export
from app.extensions import db
from app.jobs.models import Job, JobStatus
from app.notifications.models import Notification
from app.rbac.models import Role, user_roles
from app.uploads.models import Upload
from app.users.models import User

BATCH = 500

# Audit events that record a sign-in attempt, each an outcome (app/auth/service.py, lockout.py,
# session_records.py, accounts.py).
SIGNED_IN_EVENTS = ("login_succeeded", "signed_in_remembered")
SIGN_IN_EVENTS = (*SIGNED_IN_EVENTS, "login_failed", "login_refused_locked", "login_refused_disabled")


class utc_day(FunctionElement):  # noqa: N801  (a SQL function, named like one)
    """The UTC calendar day of a timestamp column as 'YYYY-MM-DD' text. SQLite keeps UTC
    timestamps as ISO text (`date()` reads them); PostgreSQL's `timestamptz` is turned to UTC
    first, whatever the session's time zone."""

    type = String()
    inherit_cache = True


@compiles(utc_day)
def _utc_day_default(element: utc_day, compiler: Any, **kw: Any) -> str:
    return f"date({compiler.process(element.clauses, **kw)})"


@compiles(utc_day, "postgresql")
def _utc_day_postgresql(element: utc_day, compiler: Any, **kw: Any) -> str:
    return f"to_char(({compiler.process(element.clauses, **kw)}) AT TIME ZONE 'UTC', 'YYYY-MM-DD')"


def _session():
    return db.session


def stream_rows(statement: Select, batch: int = BATCH) -> Iterator[Sequence[Row]]:
    """The rows of `statement` in batches of `batch`, from a server-side cursor."""
    return _session().execute(statement.execution_options(yield_per=batch)).partitions()


# Account data -----------------------------------------------------------------------------------


def profile_of(user_id: int) -> Row | None:
    """The account's own fields (never its password hash or session epoch)."""
    return (
        _session()
        .execute(
            select(
                User.id,
                User.email,
                User.display_name,
                User.locale,
                User.is_active_account,
                User.email_verified_at,
                User.last_login_at,
                User.failed_login_count,
                User.locked_until,
                User.avatar_upload_id,
                User.deleted_at,
                User.created_at,
                User.updated_at,
            ).where(User.id == user_id)
        )
        .first()
    )


def role_names_of(user_id: int) -> list[str]:
    return list(
        _session().scalars(
            select(Role.name)
            .join(user_roles, user_roles.c.role_id == Role.id)
            .where(user_roles.c.user_id == user_id)
            .order_by(Role.name)
        )
    )


def browser_sessions(user_id: int) -> list[Row]:
    return list(
        _session().execute(
            select(
                UserSession.created_at,
                UserSession.last_seen_at,
                UserSession.expires_at,
                UserSession.revoked_at,
                UserSession.ip,
                UserSession.user_agent,
            )
            .where(UserSession.user_id == user_id)
            .order_by(UserSession.created_at.desc())
        )
    )


def remember_tokens(user_id: int) -> list[Row]:
    return list(
        _session().execute(
            select(
                RememberToken.created_at,
                RememberToken.expires_at,
                RememberToken.rotated_at,
                RememberToken.revoked_at,
            )
            .where(RememberToken.user_id == user_id)
            .order_by(RememberToken.created_at.desc())
        )
    )


def api_sign_ins(user_id: int) -> list[Row]:
    """One row per refresh-token family (one API sign-in and its rotations)."""
    return list(
        _session().execute(
            select(
                func.max(RefreshToken.user_agent).label("user_agent"),
                func.min(RefreshToken.created_at).label("created_at"),
                func.max(RefreshToken.last_used_at).label("last_used_at"),
                func.max(RefreshToken.expires_at).label("expires_at"),
                func.count().label("tokens"),
                func.count(RefreshToken.revoked_at).label("revoked_tokens"),
            )
            .where(RefreshToken.user_id == user_id)
            .group_by(RefreshToken.family_id)
            .order_by(func.min(RefreshToken.created_at).desc())
        )
    )


def emailed_links(user_id: int) -> list[Row]:
    return list(
        _session().execute(
            select(
                AccountToken.purpose,
                AccountToken.email,
                AccountToken.created_at,
                AccountToken.expires_at,
                AccountToken.used_at,
            )
            .where(AccountToken.user_id == user_id)
            .order_by(AccountToken.created_at.desc())
        )
    )


def login_failures(user_id: int) -> list[Row]:
    return list(
        _session().execute(
            select(
                LoginFailures.client, LoginFailures.failures, LoginFailures.locked_until, LoginFailures.last_failed_at
            )
            .where(LoginFailures.user_id == user_id)
            .order_by(LoginFailures.last_failed_at.desc())
        )
    )


def sign_ins_of(user_id: int) -> Select:
    """Sign-in attempts on the user's account (any outcome), newest first."""
    return (
        select(AuditEvent.created_at, AuditEvent.event, AuditEvent.ip, AuditEvent.data)
        .where(AuditEvent.subject_user_id == user_id, AuditEvent.event.in_(SIGN_IN_EVENTS))
        .order_by(AuditEvent.created_at.desc(), AuditEvent.id.desc())
    )


def uploads_of(user_id: int) -> list[Upload]:
    """The user's uploads, oldest first (a few hundred at most: a row each, files streamed apart)."""
    return list(_session().scalars(select(Upload).where(Upload.user_id == user_id).order_by(Upload.created_at)))


def notifications_of(user_id: int) -> Select:
    return (
        select(
            Notification.kind,
            Notification.title,
            Notification.body,
            Notification.link,
            Notification.created_at,
            Notification.read_at,
        )
        .where(Notification.user_id == user_id)
        .order_by(Notification.created_at.desc(), Notification.id.desc())
    )


def exports_of(user_id: int) -> list[Row]:
    return list(
        _session().execute(
            select(
                Export.kind,
                Export.filters,
                Export.status,
                Export.size,
                Export.created_at,
                Export.finished_at,
                Export.expires_at,
            )
            .where(Export.user_id == user_id)
            .order_by(Export.created_at.desc())
        )
    )


def audit_of(user_id: int) -> Select:
    """Events by or about the user, newest first (the /admin/audit statement)."""
    return audit_statement(AuditFilter(user_id=user_id)).with_only_columns(
        AuditEvent.id,
        AuditEvent.created_at,
        AuditEvent.event,
        AuditEvent.actor_user_id,
        AuditEvent.subject_user_id,
        AuditEvent.target,
        AuditEvent.ip,
        AuditEvent.request_id,
        AuditEvent.data,
    )


# Activity report ---------------------------------------------------------------------------------


def day_bounds(since: date, until: date) -> tuple[datetime, datetime]:
    """[since 00:00 UTC, the day after `until` 00:00 UTC): the inclusive range as instants."""
    return datetime.combine(since, time.min, tzinfo=UTC), datetime.combine(until + timedelta(days=1), time.min, UTC)


def _in(column: Any, since: date, until: date) -> Any:
    start, end = day_bounds(since, until)
    return (column >= start) & (column < end)


def signups_per_day(since: date, until: date) -> dict[str, int]:
    day = utc_day(User.created_at)
    rows = _session().execute(select(day, func.count()).where(_in(User.created_at, since, until)).group_by(day))
    return {str(row[0]): row[1] for row in rows}


def sign_ins_per_day(since: date, until: date) -> dict[str, int]:
    day = utc_day(AuditEvent.created_at)
    rows = _session().execute(
        select(day, func.count())
        .where(AuditEvent.event.in_(SIGNED_IN_EVENTS), _in(AuditEvent.created_at, since, until))
        .group_by(day)
    )
    return {str(row[0]): row[1] for row in rows}


def sign_ins_by_outcome(since: date, until: date) -> dict[str, int]:
    rows = _session().execute(
        select(AuditEvent.event, func.count())
        .where(AuditEvent.event.in_(SIGN_IN_EVENTS), _in(AuditEvent.created_at, since, until))
        .group_by(AuditEvent.event)
    )
    return {event: count for event, count in rows}


def uploads_by_kind_and_status(since: date, until: date) -> list[Row]:
    """(kind, status, uploads, bytes): bytes are the stored size, the declared one until confirmed."""
    size = func.coalesce(Upload.size, Upload.declared_size)
    return list(
        _session().execute(
            select(Upload.kind, Upload.status, func.count(), func.coalesce(func.sum(size), 0))
            .where(_in(Upload.created_at, since, until))
            .group_by(Upload.kind, Upload.status)
            .order_by(Upload.kind, Upload.status)
        )
    )


def jobs_by_queue_and_status(since: date, until: date) -> list[Row]:
    """(queue, status, jobs) for the jobs enqueued in the range."""
    return list(
        _session().execute(
            select(Job.queue, Job.status, func.count())
            .where(_in(Job.created_at, since, until))
            .group_by(Job.queue, Job.status)
            .order_by(Job.queue, Job.status)
        )
    )


def top_failures(since: date, until: date, limit: int = 10) -> list[Row]:
    """The most frequent errors of jobs that failed for good in the range: (task, error, jobs, last)."""
    jobs = func.count()
    return list(
        _session().execute(
            select(Job.task, Job.error, jobs, func.max(Job.finished_at))
            .where(Job.status == JobStatus.failed, _in(Job.created_at, since, until))
            .group_by(Job.task, Job.error)
            .order_by(jobs.desc(), Job.task)
            .limit(limit)
        )
    )
