"""Durable jobs (docs/architecture.md §9) with a transactional outbox, leases, heartbeats, retries and a sweeper.

Huey alone loses a task whose worker dies mid-run: it pops the message and has no
acknowledgement. So the `jobs` row is the truth and huey only carries "run job <id> now":

1. `enqueue` adds the row to the caller's session; nothing is sent yet.
2. After that transaction commits, the job id is handed to huey (outbox). A rollback sends
   nothing, so no job ever runs for a change that did not happen.
3. A worker `start_attempt`s: a compare-and-set UPDATE takes a lease. A heartbeat extends it.
4. The attempt ends `succeeded`, or `retrying` (re-sent after the queue's backoff, with jitter on
   exponential queues, or later if the task raised RetryLater) or `failed` (retries spent, or
   a PermanentFailure).
5. `sweep` re-sends what huey evidently lost: rows still `queued` after a grace period,
   `running` rows whose lease expired (the worker died), and long-overdue retries.

Delivery is at-least-once, so tasks must be idempotent.

`enqueue` joins the caller's unit of work (app.core.unit_of_work); each worker-side step
(`start_attempt`, `heartbeat`, `record_success`, `record_failure`, `sweep`) is a unit of its
own, so the attempt's bookkeeping persists whatever the task body does.
"""

from __future__ import annotations

import random
import traceback as tracebacks
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from flask import current_app, g, has_request_context
from sqlalchemy import event
from sqlalchemy.orm import Session

from app.cache import bump
from app.core.api_paths import is_api_request
from app.core.database import utcnow
from app.core.unit_of_work import require_unit_of_work, unit_of_work
from app.errors import DomainError, ServiceUnavailable, is_database_unavailable
from app.extensions import db
from app.i18n import N_
from app.jobs.models import Job, JobStatus
from app.jobs.queues import QUEUES, TaskSpec, app_queues
from app.jobs.repository import JobRepository, progress_statement
from app.logging import current_request_id, get_logger

log = get_logger("hearth.jobs")
jobs = JobRepository()

OUTBOX_KEY = "hearth.jobs.outbox"
ERROR_MAX_LENGTH = 2000
# Sentences for people stored with a job (`jobs.error`) in English, translated where they are
# shown (app.i18n `translate_stored`): a worker writes them, for no reader in particular.
WORKER_LOST_FINAL = N_("The worker running its last allowed attempt stopped before it finished.")
WORKER_LOST_REQUEUED = N_("The worker running it stopped before it finished (its lease expired); it was queued again.")
UNEXPECTED_ERROR = N_("Unexpected error (%(kind)s).")
TRACEBACK_MAX_LENGTH = 20_000


def _settings():
    return current_app.extensions["hearth.settings"]


def requesting_user_id() -> int | None:
    """The signed-in user of the current request (session or bearer token), if any."""
    if not has_request_context():
        return None
    if is_api_request():
        return g.get("api_user_id")
    from flask_login import current_user

    return current_user.id if current_user.is_authenticated else None


def enqueue(
    task_name: str,
    queue: str,
    payload: dict[str, Any],
    summary: dict[str, Any] | None = None,
    user_id: int | None = None,
) -> Job:
    """Add a job to the caller's unit of work; it is sent to huey once that commits (nothing
    is sent if it rolls back).

    `user_id` is who caused it; by default the signed-in user of the current request."""
    require_unit_of_work("a job")
    spec = QUEUES[queue]
    job = Job(
        id=str(uuid.uuid4()),
        queue=queue,
        task=task_name,
        payload=payload,
        args_summary=summary if summary is not None else {},
        status=JobStatus.queued,
        attempts=0,
        max_attempts=spec.max_attempts,
        user_id=user_id if user_id is not None else requesting_user_id(),
        request_id=current_request_id(),
    )
    jobs.add(job)
    send_after_commit(job.id, task_name)
    forget_job_counts()
    return job


def enqueue_task(task_name: str, *, caused_by: int | None = None, **payload: Any) -> Job:
    """`enqueue` a task of this app's queues by its name (e.g. "tasks.emails.send_email"), with
    the queue and the summary its declaration gives: how a domain service queues work without
    importing the task module (which imports the service)."""
    task = _registered(task_name)
    return enqueue(task.name, task.queue, payload, task.summarize(payload), user_id=caused_by)


def enqueue_once(job_id: str, task_name: str, **payload: Any) -> bool:
    """`enqueue_task` with an id the caller derives from what makes the work unique (a periodic
    task's scheduled minute): the row is inserted only if no job has that id yet, with an
    INSERT … ON CONFLICT DO NOTHING, so of two processes asking at once exactly one inserts
    (and hands it to huey after its commit) and the other does nothing, without an error that
    would spoil its unit of work. True when this call inserted the job."""
    require_unit_of_work("a job")
    task = _registered(task_name)
    spec = QUEUES[task.queue]
    inserted = jobs.insert_if_absent(
        id=job_id,
        queue=task.queue,
        task=task.name,
        payload=payload,
        args_summary=task.summarize(payload),
        status=JobStatus.queued,
        attempts=0,
        max_attempts=spec.max_attempts,
        user_id=requesting_user_id(),
        request_id=current_request_id(),
    )
    if inserted:
        send_after_commit(job_id, task.name)
        forget_job_counts()
    return inserted


def _registered(task_name: str) -> TaskSpec:
    try:
        return app_queues().tasks[task_name]
    except KeyError:
        raise LookupError(f"no task named {task_name!r} is registered on this app's queues") from None


def forget_job_counts() -> None:
    """Invalidator of the per-queue job counts (app.jobs.management.overview): call it in every
    unit of work that changes a job's status."""
    bump("jobs")


def prune_succeeded(now: datetime | None = None) -> int:
    """Delete succeeded jobs that finished more than JOBS_RETENTION_DAYS ago (the daily run):
    how many. Failed and revoked jobs stay, for the dead letter; a job still referenced by an
    export or a webhook delivery may go (they keep what they need on their own rows)."""
    cutoff = (now or utcnow()) - timedelta(days=_settings().jobs_retention_days)
    with unit_of_work():
        pruned = jobs.purge_succeeded(cutoff)
        if pruned:
            forget_job_counts()
    return pruned


def cancel(job_id: str) -> bool:
    """Revoke a job that has not started (pending or scheduled), in the caller's unit of work,
    for a service whose own record of the work is going away (the caller audits that); the
    worker's claim refuses a revoked row. False when it already runs or ended."""
    require_unit_of_work("A job's cancellation")
    now = utcnow()
    for status in (JobStatus.queued, JobStatus.retrying):
        if jobs.transition(
            job_id, status, status=JobStatus.revoked, finished_at=now, next_attempt_at=None, updated_at=now
        ):
            forget_job_counts()
            return True
    return False


def send_after_commit(job_id: str, task_name: str, delay: float | None = None) -> None:
    """Hand the job to huey once the current unit of work commits (nothing on rollback)."""
    jobs.session.info.setdefault(OUTBOX_KEY, []).append((job_id, task_name, delay))


def dispatch(job_id: str, task_name: str, delay: float | None = None) -> bool:
    """Hand a job id to huey; True when sent. A broker failure is logged, never raised: the
    row stays and the sweeper re-sends it. While Redis fails, the queues' breaker skips the
    dispatch at once (one `job_dispatch_failed` line per window, tasks.queues.AppQueues)."""
    queues = app_queues()
    try:
        return queues.dispatch(job_id, task_name, delay)
    except Exception as exc:  # any other broker failure (SQLite huey): logged per job
        log.warning("job_dispatch_failed", job_id=job_id, task=task_name, error=repr(exc))
        return False


@event.listens_for(Session, "after_commit")
def _send_outbox(session: Session) -> None:
    pending = session.info.pop(OUTBOX_KEY, None)
    for job_id, task_name, delay in pending or ():
        dispatch(job_id, task_name, delay)


@event.listens_for(Session, "after_rollback")
def _drop_outbox(session: Session) -> None:
    session.info.pop(OUTBOX_KEY, None)


# Worker side -------------------------------------------------------------------------------


def lease_duration() -> timedelta:
    return timedelta(seconds=_settings().jobs_lease_seconds)


def start_attempt(job_id: str, owner: str) -> Job | None:
    """Claim the job for `owner`; None when it is done, held by a live worker, or not due.

    A unit of its own, committed before the task body runs: other workers and the sweeper see
    the lease at once, and the attempt stays counted whatever the body does."""
    with unit_of_work():
        claimed = jobs.claim(job_id, owner, utcnow(), lease_duration())
        forget_job_counts()
    return jobs.get(job_id) if claimed else None


def heartbeat(job_id: str, owner: str) -> bool:
    """Extend the lease `owner` holds (a unit of its own, on the heartbeat thread's session)."""
    with unit_of_work():
        return jobs.extend_lease(job_id, owner, utcnow() + lease_duration())


@dataclass
class AttemptOutcome:
    status: JobStatus
    retry_in: float | None = None
    recorded: bool = True
    extra: dict[str, Any] = field(default_factory=dict)


def record_success(job: Job, owner: str, duration_ms: float) -> AttemptOutcome:
    """End the attempt as `succeeded` (a unit of its own, after the task body's)."""
    with unit_of_work():
        # The payload may hold links with tokens; once delivered nothing needs it again.
        recorded = jobs.finish(
            job.id,
            owner,
            payload={},
            status=JobStatus.succeeded,
            error=None,
            finished_at=utcnow(),
            duration_ms=duration_ms,
            updated_at=utcnow(),
        )
        forget_job_counts()
    return AttemptOutcome(JobStatus.succeeded, recorded=recorded)


def report_progress(job_id: str, percent: int, message: str | None = None) -> None:
    """A running task tells the admin how far it is (0–100). Deliberately outside any unit of
    work: written and committed at once on a connection of its own, so the admin sees it while
    the task runs, and it never commits (or waits for) the task's unfinished unit of work."""
    with db.engine.begin() as connection:
        connection.execute(progress_statement(job_id, percent, message))


def failure_message(error: BaseException) -> str:
    """The sentence people see for a failed attempt (`jobs.error`): the exception's own
    `public_message` when it carries one written for people (the upload sandbox's
    ProcessingError, a task's TaskFailed), a domain error's detail, or else a sentence naming
    only the kind of error. The exception's own text, which may hold paths, object reprs or
    addresses, stays in the traceback (`technical_detail`), shown on the job's page alone."""
    public = getattr(error, "public_message", None)
    if isinstance(public, str) and public:
        return public[:ERROR_MAX_LENGTH]
    if isinstance(error, DomainError):
        return error.detail[:ERROR_MAX_LENGTH]
    return UNEXPECTED_ERROR % {"kind": type(error).__name__}


def technical_detail(error: BaseException) -> str:
    """The exception and its traceback (with its causes), for the job's page and the API."""
    return "".join(tracebacks.format_exception(error))[-TRACEBACK_MAX_LENGTH:]


class TaskFailed(Exception):
    """A task's failure explained for people: `str(error)` is the sentence shown for the job
    (raise it `from` the library's exception, which the traceback keeps). Retried like any."""

    @property
    def public_message(self) -> str:
        return str(self)


class PermanentFailure(TaskFailed):
    """A failure no later attempt can fix (a receiver answering 410 Gone, a 4xx refusal): the
    job ends `failed` at once, whatever attempts remain, and the task's `on_final_failure`
    runs as it does when the retries are spent."""


class RetryLater(TaskFailed):
    """A retryable failure whose cause says when to try again (an HTTP 429 or 503 with
    `Retry-After`): the next attempt waits at least `retry_after` seconds, and never less than
    the queue's own backoff; the wait is capped at JOBS_BACKOFF_MAX_SECONDS, so a receiver
    asking for a day does not park the job for a day. Without attempts left the job fails as
    with any error."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after if retry_after is None else max(0.0, float(retry_after))


# How long a job keeps waiting out an outage of what it depends on (storage, the database)
# without spending its retries: a dependency that is down is nobody's fault in the task.
OUTAGE_PATIENCE = timedelta(hours=1)
OUTAGE_RETRY_SECONDS = 30.0


def outage_retry_after(error: BaseException) -> float | None:
    """If `error` (or the error it was raised from) is an outage of a dependency, storage
    unavailable (app.errors.ServiceUnavailable) or the database unreachable, the seconds to wait
    before trying again; None for any other failure."""
    for cause in (error, error.__cause__):
        if isinstance(cause, ServiceUnavailable):
            return float(cause.retry_after)
        if cause is not None and is_database_unavailable(cause):
            return OUTAGE_RETRY_SECONDS
    return None


def waits_out_outage(job: Job, error: BaseException, now: datetime) -> bool:
    """An outage gives the job its attempt back (one more allowed) for OUTAGE_PATIENCE after it
    was created; after that, or for a PermanentFailure, it counts like any failure."""
    if isinstance(error, PermanentFailure) or outage_retry_after(error) is None:
        return False
    return now - job.created_at < OUTAGE_PATIENCE


def failure_is_final(job: Job, error: BaseException) -> bool:
    """Whether this failed attempt ends the job: its retries are spent, or the task said no
    retry can help (PermanentFailure)."""
    return isinstance(error, PermanentFailure) or job.attempts >= job.max_attempts


def retry_delay(job: Job, error: BaseException, rand: Callable[[], float] = random.random) -> float:
    """Seconds before the next attempt: the queue's backoff (with jitter on exponential
    queues, `QueueSpec.jittered_backoff`; `rand` is the random source, injectable for tests),
    or a RetryLater's `retry_after` when that is longer, both capped at
    JOBS_BACKOFF_MAX_SECONDS."""
    settings = _settings()
    cap = settings.jobs_backoff_max_seconds
    delay = QUEUES[job.queue].jittered_backoff(job.attempts, settings.jobs_backoff_base_seconds, cap, rand())
    asked = error.retry_after if isinstance(error, RetryLater) else outage_retry_after(error)
    if asked is not None:
        delay = max(delay, min(asked, cap))
    return round(delay, 3)


def record_failure(
    job: Job, owner: str, error: BaseException, duration_ms: float, rand: Callable[[], float] = random.random
) -> AttemptOutcome:
    """Schedule the next attempt (`retry_delay`), or fail the job for good when its retries are
    spent or the error is a PermanentFailure (`failure_is_final`). An outage of a dependency
    (`waits_out_outage`) is retried after the outage's Retry-After without spending a retry:
    the job is allowed one more attempt.

    A unit of its own, after the failed body's units rolled back: the failure (in words, see
    `failure_message`), its traceback and the attempt count persist although the task's work
    did not. The attempt's progress ends with it."""
    message = failure_message(error)
    trace = technical_detail(error)
    now = utcnow()
    outage = waits_out_outage(job, error, now)
    with unit_of_work():
        if not outage and failure_is_final(job, error):
            recorded = jobs.finish(
                job.id,
                owner,
                status=JobStatus.failed,
                error=message,
                traceback=trace,
                finished_at=now,
                duration_ms=duration_ms,
                updated_at=now,
            )
            forget_job_counts()
            return AttemptOutcome(JobStatus.failed, recorded=recorded)
        delay = retry_delay(job, error, rand)
        recorded = jobs.finish(
            job.id,
            owner,
            status=JobStatus.retrying,
            error=message,
            traceback=trace,
            progress=None,
            progress_message=None,
            next_attempt_at=now + timedelta(seconds=delay),
            enqueued_at=now,
            duration_ms=duration_ms,
            updated_at=now,
            **({"max_attempts": job.max_attempts + 1} if outage else {}),
        )
        if recorded:
            send_after_commit(job.id, job.task, delay)
        forget_job_counts()
    return AttemptOutcome(JobStatus.retrying, retry_in=delay, recorded=recorded)


# Sweeper ----------------------------------------------------------------------------------


@dataclass
class SweepReport:
    requeued: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


def sweep() -> SweepReport:
    """Re-send jobs huey lost; fail those whose worker died on their last allowed attempt."""
    settings = _settings()
    now = utcnow()
    report = SweepReport()
    with unit_of_work():
        for job in jobs.stranded(now, timedelta(seconds=settings.jobs_queued_grace_seconds)):
            if job.status == JobStatus.running and job.attempts >= job.max_attempts:
                if jobs.mark_redispatched(
                    job,
                    now,
                    status=JobStatus.failed,
                    finished_at=now,
                    lease_owner=None,
                    lease_expires_at=None,
                    error=WORKER_LOST_FINAL,
                ):
                    report.failed.append(job.id)
                continue
            values: dict[str, Any] = {}
            if job.status == JobStatus.running:
                values = {
                    "status": JobStatus.queued,
                    "lease_owner": None,
                    "lease_expires_at": None,
                    "error": WORKER_LOST_REQUEUED,
                }
            if jobs.mark_redispatched(job, now, **values):
                send_after_commit(job.id, job.task)
                report.requeued.append(job.id)
        forget_job_counts()
    if report.requeued or report.failed:
        log.warning("jobs_swept", requeued=len(report.requeued), failed=len(report.failed))
    return report
