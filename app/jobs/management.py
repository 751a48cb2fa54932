"""The admin's view of background jobs (docs/architecture.md §9), shared by /admin/jobs
and /api/v1/admin/jobs.

The `jobs` table is the truth, so everything here is SQL: counts per queue and status, a
list searchable by job id, task, user and arguments (which a Redis-only dashboard cannot
do), and actions that change what huey runs: a retried job is re-sent to huey after the
commit; a revoked one is refused by the worker's claim, so its task body never runs. Each
action is one unit of work (app.core.unit_of_work) with its audit row; the queries are
app/jobs/repository.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Select

from app.audit.service import record
from app.cache import CacheKey, cached
from app.core.database import utcnow
from app.core.pagination import Page, paginate
from app.core.unit_of_work import unit_of_work
from app.errors import Conflict, NotFound, ValidationFailed
from app.i18n import _, _l, format_decimal_fast, ngettext, translate_stored
from app.jobs import service
from app.jobs.models import FINAL_STATUSES, Job, JobStatus, PeriodicRun
from app.jobs.periodic import PeriodicTask, get_periodic, last_runs, queue_run_now, scheduled_tasks
from app.jobs.queues import QUEUES
from app.jobs.repository import JobRepository, job_list_statement
from app.logging import get_logger
from app.users.models import User
from app.users.repository import UserRepository

log = get_logger("hearth.jobs")
jobs = JobRepository()
users = UserRepository()

# The words every page uses for a status (badges, filters, counts, messages), Bull Board's:
# a `queued` job is pending, a `retrying` one is scheduled (it waits for its next attempt).
STATUS_LABELS: dict[str, str] = {
    JobStatus.queued: _l("Pending"),
    JobStatus.retrying: _l("Scheduled"),
    JobStatus.running: _l("Running"),
    JobStatus.succeeded: _l("Succeeded"),
    JobStatus.failed: _l("Failed"),
    JobStatus.revoked: _l("Revoked"),
}
RETRYABLE = frozenset({JobStatus.failed, JobStatus.revoked})
REVOCABLE = frozenset({JobStatus.queued, JobStatus.retrying})
BULK_RETRY_LIMIT = 1000


def _in_words(status: str) -> str:
    """A status inside a sentence: "pending", "scheduled"."""
    return STATUS_LABELS[status].lower()


@dataclass(frozen=True)
class JobFilter:
    queue: str | None = None
    status: str | None = None
    q: str | None = None
    user_id: int | None = None

    def __post_init__(self) -> None:
        if self.queue is not None and self.queue not in QUEUES:
            raise _invalid(
                "queue", _("Unknown queue %(queue)r; one of %(queues)s.", queue=self.queue, queues=", ".join(QUEUES))
            )
        if self.status is not None and self.status not in STATUS_LABELS:
            raise _invalid(
                "status",
                _(
                    "Unknown status %(status)r; one of %(statuses)s.",
                    status=self.status,
                    statuses=", ".join(STATUS_LABELS),
                ),
            )


def _invalid(name: str, message: str) -> ValidationFailed:
    return ValidationFailed(message, errors=[{"field": name, "location": "query", "message": message}])


def list_statement(filters: JobFilter) -> Select:
    """Jobs matching the filters, newest first (app.jobs.repository.job_list_statement)."""
    return job_list_statement(queue=filters.queue, status=filters.status, q=filters.q, user_id=filters.user_id)


def list_jobs(filters: JobFilter, page: int = 1, per_page: int = 25) -> Page[Job]:
    return paginate(list_statement(filters), page, per_page)


def get_job(job_id: str) -> Job:
    job = jobs.get(job_id)
    if job is None:
        raise NotFound(_("No job with id %(id)s.", id=job_id))
    return job


def caused_by(job: Job) -> User | None:
    """The account whose request queued the job; None for the system (or a removed account)."""
    return users.get(job.user_id) if job.user_id else None


# What pages say about a job ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class JobState:
    """What every page says about one job, decided here once, so that the list row, the detail
    page, its polled status panel, the dashboard and the upload and user pages never contradict
    each other: progress only while an attempt runs, a finish time only once the job is final,
    a duration named for what it measured, the error as a sentence for people (the exception
    and its traceback stay on the job's own page), and which actions its status allows."""

    status: str
    label: str  # the status in words: the same as the filters and counts use (STATUS_LABELS)
    summary: str  # one sentence: where the job stands
    attempts: str  # "2 of 4"
    final: bool
    retryable: bool
    revocable: bool
    progress: int | None = None  # 0–100, only while running
    progress_message: str | None = None
    error: str | None = None  # for people; `job.traceback` holds the technical detail
    error_label: str | None = None  # "Error", or "Last attempt failed" while more may follow
    finished_at: datetime | None = None  # only for a final status
    next_attempt_at: datetime | None = None  # only while scheduled
    duration: str | None = None  # "340 ms", "2.5 s": the finished job's, or its last attempt's
    duration_label: str | None = None


def format_duration(milliseconds: float | None) -> str | None:
    """A duration for people: "340 ms" under a second, "2.5 s" above ("2,5 s" in German)."""
    if milliseconds is None:
        return None
    return f"{milliseconds:.0f} ms" if milliseconds < 1000 else f"{format_decimal_fast(f'{milliseconds / 1000:.1f}')} s"


def job_state(job: Job) -> JobState:
    """The one display state of `job` (JobState); cheap enough for every row of a table."""
    status, attempts, most = job.status, job.attempts or 0, job.max_attempts or 1
    final = status in FINAL_STATUSES
    state = {
        "status": status,
        "label": STATUS_LABELS.get(status, str(status).capitalize()),
        "attempts": _("%(done)s of %(most)s", done=attempts, most=most),
        "final": final,
        "retryable": status in RETRYABLE,
        "revocable": status in REVOCABLE,
    }
    ended = format_duration(job.duration_ms)
    if status == JobStatus.queued:
        summary = (
            _("Attempt %(n)s of %(most)s ended early; it runs again.", n=attempts, most=most)
            if attempts
            else _("Waiting for a worker.")
        )
    elif status == JobStatus.running:
        summary = _("Attempt %(n)s of %(most)s is running.", n=attempts, most=most)
        state |= {"progress": job.progress, "progress_message": translate_stored(job.progress_message)}
    elif status == JobStatus.retrying:
        summary = _("Attempt %(n)s of %(most)s failed; the next one is scheduled.", n=attempts, most=most)
        state |= {"next_attempt_at": job.next_attempt_at, "duration": ended, "duration_label": _("Last attempt took")}
    elif status == JobStatus.succeeded:
        summary = _("Succeeded on attempt %(n)s of %(most)s.", n=attempts, most=most)
        state |= {"finished_at": job.finished_at, "duration": ended, "duration_label": _("Took")}
    elif status == JobStatus.failed:
        summary = ngettext(
            "Failed after %(num)s attempt; it runs again only if retried.",
            "Failed after %(num)s attempts; it runs again only if retried.",
            attempts,
        )
        state |= {"finished_at": job.finished_at, "duration": ended, "duration_label": _("Last attempt took")}
    else:  # revoked
        summary = _("Revoked: it will not run unless retried.")
        state |= {"finished_at": job.finished_at}
    if job.error and status != JobStatus.succeeded:
        label = _("Error") if status == JobStatus.failed else _("Last attempt failed")
        state |= {"error": translate_stored(job.error), "error_label": label}
    return JobState(summary=summary, **state)


@dataclass
class QueueOverview:
    name: str
    workers: int
    max_attempts: int
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


JOB_COUNTS = "jobs"
COUNTS_TTL = 30


def overview() -> list[QueueOverview]:
    """Per queue: jobs in each status and the configured worker concurrency. The counts are
    cached (30 s at most; every job state change calls `forget_job_counts`)."""
    counts = cached(CacheKey(JOB_COUNTS, "by_queue_status"), jobs.counts_by_queue_and_status, timeout=COUNTS_TTL)
    queues = {
        name: QueueOverview(name, spec.workers, spec.max_attempts, dict.fromkeys(STATUS_LABELS, 0))
        for name, spec in QUEUES.items()
    }
    for queue, status, count in counts:
        if queue in queues and status in STATUS_LABELS:
            queues[queue].counts[status] = count
    return list(queues.values())


def latest_failures(limit: int = 5) -> list[Job]:
    """The jobs that failed most recently."""
    return jobs.latest_failed(limit)


# Actions -----------------------------------------------------------------------------------


def retry(actor: User, job: Job) -> Job:
    """Run a failed (or revoked) job again from its first attempt; huey gets it after the commit."""
    if job.status not in RETRYABLE:
        raise Conflict(
            _("Only failed or revoked jobs can be retried; this one is %(status)s.", status=_in_words(job.status))
        )
    before = job.status
    with unit_of_work():
        if not _requeue(job.id, job.task, before, utcnow()):
            raise Conflict(_("The job changed meanwhile; reload and try again."))
        record(
            "job_retried",
            actor_id=actor.id,
            target=f"job:{job.id}",
            before={"status": before},
            after={"status": "queued"},
        )
        service.forget_job_counts()
    return jobs.reload(job)


def _requeue(job_id: str, task: str, from_status: str, now) -> bool:
    """Back to `queued` as if it had never run: attempts, error, traceback, progress and every
    timing of the earlier attempts are cleared (a retried job's pages show a fresh pending job,
    not the failure it leaves behind; the audit row keeps that). Handed to huey after the unit
    of work commits; False if it changed meanwhile. Call it inside a unit."""
    requeued = jobs.transition(
        job_id,
        from_status,
        status=JobStatus.queued,
        attempts=0,
        error=None,
        traceback=None,
        progress=None,
        progress_message=None,
        next_attempt_at=None,
        started_at=None,
        finished_at=None,
        duration_ms=None,
        lease_owner=None,
        lease_expires_at=None,
        enqueued_at=now,
        updated_at=now,
    )
    if requeued:
        service.send_after_commit(job_id, task)
    return requeued


def revoke(actor: User, job: Job) -> Job:
    """Cancel a pending or scheduled job. Huey may still deliver its message, but the worker's
    claim refuses a revoked row, so the task never runs."""
    if job.status not in REVOCABLE:
        raise Conflict(
            _("Only pending or scheduled jobs can be revoked; this one is %(status)s.", status=_in_words(job.status))
        )
    before = job.status
    now = utcnow()
    with unit_of_work():
        if not jobs.transition(
            job.id, before, status=JobStatus.revoked, finished_at=now, next_attempt_at=None, updated_at=now
        ):
            raise Conflict(_("The job started or changed meanwhile; reload and try again."))
        record(
            "job_revoked",
            actor_id=actor.id,
            target=f"job:{job.id}",
            before={"status": before},
            after={"status": "revoked"},
        )
        service.forget_job_counts()
    return jobs.reload(job)


def retry_all_failed(actor: User, filters: JobFilter) -> int:
    """Retry every failed job in the filtered set (up to BULK_RETRY_LIMIT per call)."""
    failed = JobFilter(queue=filters.queue, status=JobStatus.failed, q=filters.q, user_id=filters.user_id)
    with unit_of_work():
        candidates = jobs.ids_and_tasks(list_statement(failed), BULK_RETRY_LIMIT)
        now = utcnow()
        retried = sum(_requeue(job_id, task, JobStatus.failed, now) for job_id, task in candidates)
        record(
            "jobs_retried",
            actor_id=actor.id,
            target=f"queue:{filters.queue}" if filters.queue else "jobs",
            count=retried,
            filters={"queue": filters.queue, "q": filters.q, "user_id": filters.user_id},
        )
        service.forget_job_counts()
    return retried


def purge_succeeded(actor: User, older_than_days: int, queue: str | None = None) -> int:
    """Delete succeeded jobs that finished more than `older_than_days` days ago."""
    if not 0 <= older_than_days <= 3650:
        raise ValidationFailed(
            _("Days must be between 0 and 3650."), errors=[{"field": "days", "message": _("Between 0 and 3650.")}]
        )
    JobFilter(queue=queue)  # validates the queue name
    with unit_of_work():
        purged = jobs.purge_succeeded(utcnow() - timedelta(days=older_than_days), queue)
        record(
            "jobs_purged",
            actor_id=actor.id,
            target=f"queue:{queue}" if queue else "jobs",
            count=purged,
            older_than_days=older_than_days,
        )
        service.forget_job_counts()
    return purged


# Periodic tasks ----------------------------------------------------------------------------


def periodic_tasks() -> list[tuple[PeriodicTask, PeriodicRun]]:
    """Every periodic task with its last run (a blank record for one that never ran)."""
    runs = last_runs()
    return [
        (task, runs.get(name) or PeriodicRun(name=name, runs=0)) for name, task in sorted(scheduled_tasks().items())
    ]


def run_periodic_now(actor: User, name: str) -> Job:
    """Queue one extra run of a periodic task now, a job like its scheduled runs (so its
    outcome shows in the job list and on the periodic task's row)."""
    get_periodic(name)
    with unit_of_work():
        job = queue_run_now(name)
        record("periodic_task_run", actor_id=actor.id, target=f"periodic:{name}", job=job.id)
    return job
