"""Queries over jobs and periodic runs. Every state change is a compare-and-set UPDATE, so two
workers or two sweepers racing for the same row can never both win. Nothing here commits: the
jobs services' units of work do (app.core.unit_of_work)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, String, Update, and_, cast, delete, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from app.core.repository import Repository
from app.jobs.models import Job, JobStatus, PeriodicRun
from app.users.models import User


def job_list_statement(
    *, queue: str | None = None, status: str | None = None, q: str | None = None, user_id: int | None = None
) -> Select:
    """Jobs matching the filters, newest first. `q` matches a job id (or its start), the task
    name, the causing user's email, or any text in the arguments summary."""
    statement = select(Job)
    if queue:
        statement = statement.where(Job.queue == queue)
    if status:
        statement = statement.where(Job.status == status)
    if user_id is not None:
        statement = statement.where(Job.user_id == user_id)
    if q:
        term = q.strip().lower()
        pattern = f"%{term}%"
        by_user = select(User.id).where(User.email.like(pattern))
        statement = statement.where(
            or_(
                Job.id.like(f"{term}%"),
                func.lower(Job.task).like(pattern),
                Job.user_id.in_(by_user),
                func.lower(cast(Job.args_summary, String)).like(pattern),
            )
        )
    return statement.order_by(Job.created_at.desc(), Job.id)


def progress_statement(job_id: str, percent: int, message: str | None) -> Update:
    """Record how far a running job is (0–100, the message cut to 200 characters)."""
    return (
        update(Job)
        .where(Job.id == job_id, Job.status == JobStatus.running)
        .values(progress=max(0, min(100, int(percent))), progress_message=(message or None) and message[:200])
    )


class JobRepository(Repository[Job]):
    model = Job

    def claim(self, job_id: str, owner: str, now: datetime, lease: timedelta) -> bool:
        """Take the lease on a runnable job; False if it is finished, running elsewhere or not due."""
        runnable = or_(
            Job.status == JobStatus.queued,
            and_(
                Job.status == JobStatus.retrying,
                or_(Job.next_attempt_at.is_(None), Job.next_attempt_at <= now + timedelta(seconds=1)),
            ),
            and_(Job.status == JobStatus.running, Job.lease_expires_at < now),
        )
        result = self.session.execute(
            update(Job)
            .where(Job.id == job_id, runnable)
            .values(
                status=JobStatus.running,
                attempts=Job.attempts + 1,
                lease_owner=owner,
                lease_expires_at=now + lease,
                started_at=now,
                next_attempt_at=None,
                progress=None,
                progress_message=None,
                updated_at=now,
            )
        )
        return result.rowcount == 1

    def insert_if_absent(self, **values: Any) -> bool:
        """INSERT the job unless one with its id exists (ON CONFLICT DO NOTHING, on PostgreSQL
        and SQLite alike): a unique insert two processes can race for without either failing.
        True if this statement inserted it."""
        dialect = self.session.get_bind().dialect.name
        insert = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}[dialect]
        statement = insert(Job).values(**values).on_conflict_do_nothing(index_elements=[Job.id]).returning(Job.id)
        # RETURNING says whether a row went in: rowcount is not reliable for an ORM-enabled insert.
        return self.session.execute(statement).scalar_one_or_none() is not None

    def extend_lease(self, job_id: str, owner: str, until: datetime) -> bool:
        result = self.session.execute(
            update(Job)
            .where(Job.id == job_id, Job.lease_owner == owner, Job.status == JobStatus.running)
            .values(lease_expires_at=until)
        )
        return result.rowcount == 1

    def finish(self, job_id: str, owner: str, **values) -> bool:
        """Record the end of the attempt `owner` holds; False if the lease was lost meanwhile."""
        result = self.session.execute(
            update(Job)
            .where(Job.id == job_id, Job.lease_owner == owner, Job.status == JobStatus.running)
            .values(lease_owner=None, lease_expires_at=None, **values)
        )
        return result.rowcount == 1

    def mark_redispatched(self, job: Job, now: datetime, **values) -> bool:
        """Compare-and-set on (status, enqueued_at) so only one sweeper re-enqueues a job."""
        result = self.session.execute(
            update(Job)
            .where(Job.id == job.id, Job.status == job.status, Job.enqueued_at == job.enqueued_at)
            .values(enqueued_at=now, updated_at=now, **values)
        )
        return result.rowcount == 1

    def transition(self, job_id: str, from_status: str, **values) -> bool:
        """Move a job out of `from_status` (compare-and-set); False if it changed meanwhile."""
        result = self.session.execute(
            update(Job)
            .where(Job.id == job_id, Job.status == from_status)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        return result.rowcount == 1

    def stranded(self, now: datetime, grace: timedelta, limit: int = 500) -> Sequence[Job]:
        """Jobs huey has evidently lost: queued too long, lease expired, or retry long overdue."""
        statement = (
            select(Job)
            .where(
                or_(
                    and_(Job.status == JobStatus.queued, Job.enqueued_at < now - grace),
                    and_(Job.status == JobStatus.running, Job.lease_expires_at < now),
                    and_(Job.status == JobStatus.retrying, Job.next_attempt_at < now - grace),
                )
            )
            .order_by(Job.enqueued_at)
            .limit(limit)
        )
        return self.session.scalars(statement).all()

    def reload(self, job: Job) -> Job:
        """Read the row again (after a compare-and-set UPDATE, which leaves loaded jobs as they were)."""
        self.session.refresh(job)
        return job

    def ids_and_tasks(self, statement: Select, limit: int) -> list[tuple[str, str]]:
        """(id, task) of the first `limit` jobs `statement` selects."""
        rows = self.session.execute(statement.with_only_columns(Job.id, Job.task).limit(limit)).all()
        return [(job_id, task) for job_id, task in rows]

    def latest_failed(self, limit: int) -> list[Job]:
        return list(
            self.session.scalars(
                select(Job).where(Job.status == JobStatus.failed).order_by(Job.finished_at.desc()).limit(limit)
            )
        )

    def purge_succeeded(self, finished_before: datetime, queue: str | None = None) -> int:
        """Delete succeeded jobs that finished before `finished_before` (in `queue`, or any); how many."""
        condition = and_(Job.status == JobStatus.succeeded, Job.finished_at < finished_before)
        if queue:
            condition = and_(condition, Job.queue == queue)
        return self.session.execute(delete(Job).where(condition).execution_options(synchronize_session=False)).rowcount

    def counts_by_queue_and_status(self) -> list[tuple[str, str, int]]:
        rows = self.session.execute(select(Job.queue, Job.status, func.count()).group_by(Job.queue, Job.status)).all()
        return [(queue, status, count) for queue, status, count in rows]


class PeriodicRunRepository(Repository[PeriodicRun]):
    model = PeriodicRun

    def by_name(self) -> dict[str, PeriodicRun]:
        """Every periodic task's last run, by task name."""
        return {run.name: run for run in self.session.scalars(select(PeriodicRun))}
