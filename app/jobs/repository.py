"""Queries over jobs. Every state change is a compare-and-set UPDATE, so two workers or two
sweepers racing for the same row can never both win."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import and_, func, or_, select, update

from app.core.repository import Repository
from app.jobs.models import Job, JobStatus


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

    def counts_by_queue_and_status(self) -> list[tuple[str, str, int]]:
        rows = self.session.execute(select(Job.queue, Job.status, func.count()).group_by(Job.queue, Job.status)).all()
        return [(queue, status, count) for queue, status, count in rows]
