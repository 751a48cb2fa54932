"""Periodic tasks: the schedule each runs on, its runs as durable jobs, and a record of its last
run (docs/architecture.md §9).

`tasks.maintenance.periodic` declares each; each app's queues (tasks.queues) register it on
their `sync` huey. A scheduled run is a durable job like any other (the `jobs` row is the
truth): huey's scheduler only fires a trigger, and the trigger `enqueue_scheduled`s a job of
the task's own name (`PeriodicTask.task_name`) on `sync`, which a `sync` worker then runs with
that queue's lease, heartbeat and retry policy; it shows in /admin/jobs like any job. Every
`sync` consumer runs a scheduler, so several may fire for the same minute: the job's id is
derived from (task, scheduled minute) and inserted only if absent, so one run per minute.

The job sweeper is the exception (`durable=False`): it is what re-sends lost jobs, so it must
not be a job waiting to be re-sent; it runs straight from the trigger, the next minute's run
being its retry.

`periodic_runs` keeps each task's last run for the admin's jobs page, per attempt: its start,
then its outcome (`succeeded`; `retrying` while the job's retry waits; `failed` once final).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from app.core.database import utcnow
from app.core.unit_of_work import unit_of_work
from app.errors import NotFound
from app.i18n import _
from app.jobs import service as jobs_service
from app.jobs.models import Job, JobStatus, PeriodicRun
from app.jobs.queues import app_queues
from app.jobs.repository import JobRepository, PeriodicRunRepository
from app.logging import get_logger

log = get_logger("hearth.jobs")
runs = PeriodicRunRepository()
jobs = JobRepository()

PERIODIC_QUEUE = "sync"  # where every periodic task runs (docs/architecture.md §9)
# An admin's "run now" of a task that is not a durable job of its own (the sweeper), and of
# any task in jobs queued before periodic runs became jobs (by name: no import of tasks).
RUN_PERIODIC_NOW_TASK = "tasks.maintenance.run_periodic_now"
# The namespace of scheduled runs' job ids (uuid5 of "<task name>@<minute>"): fixed forever,
# so every process derives the same id for the same scheduled minute.
SCHEDULED_RUN_NAMESPACE = uuid.UUID("7d1c3f0e-2b8a-5e47-9a61-0c4f8e2d5b13")


@dataclass(frozen=True)
class PeriodicTask:
    name: str
    schedule: str  # for people: "every minute"
    description: str
    # Returns what the run did ({"removed": 3}, or a count); nothing done is falsy (see run_recorded).
    func: Callable[[], object]
    cron: tuple[tuple[str, str], ...] = ()  # huey crontab() arguments, e.g. (("minute", "*/10"),)
    # Each run a durable job on `sync` (retried by its policy); False only for the sweeper.
    durable: bool = True

    @property
    def task_name(self) -> str:
        """The name of its runs' jobs: the function's dotted path ("tasks.maintenance.cleanup_pending_uploads")."""
        return f"{self.func.__module__}.{self.func.__name__}"


def scheduled_tasks() -> dict[str, PeriodicTask]:
    """The current app's periodic tasks by name."""
    return app_queues().periodic


def get_periodic(name: str) -> PeriodicTask:
    try:
        return scheduled_tasks()[name]
    except KeyError:
        raise NotFound(_("No periodic task named %(name)r.", name=name)) from None


def schedule_slot(at: datetime) -> datetime:
    """The scheduled minute `at` falls in (UTC): what identifies one scheduled run."""
    at = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    return at.replace(second=0, microsecond=0)


def scheduled_job_id(task: PeriodicTask, slot: datetime) -> str:
    """The job id of `task`'s run for the scheduled minute `slot`: the same in every process."""
    return str(uuid.uuid5(SCHEDULED_RUN_NAMESPACE, f"{task.task_name}@{schedule_slot(slot):%Y-%m-%dT%H:%MZ}"))


def enqueue_scheduled(name: str, scheduled_for: datetime) -> bool:
    """Queue the durable job of `name`'s run for the minute `scheduled_for` (what huey's
    scheduler firing does), unless a scheduler already did: of the `sync` consumers firing for
    the same minute, one inserts the job and the others find it (app.jobs.service.enqueue_once).
    A unit of work of its own; True when this call queued it."""
    task = get_periodic(name)
    slot = schedule_slot(scheduled_for)
    with unit_of_work():
        queued = jobs_service.enqueue_once(
            scheduled_job_id(task, slot), task.task_name, scheduled_for=slot.isoformat().replace("+00:00", "Z")
        )
    if not queued:
        log.debug("periodic_run_already_queued", periodic_task=name, scheduled_for=slot.isoformat())
    return queued


def queue_run_now(name: str) -> Job:
    """Queue one extra run of `name` now, in the caller's unit of work: a job of the task's own
    name (a run like the scheduled ones, with no scheduled minute), or for the sweeper, which
    has none, a RUN_PERIODIC_NOW_TASK job."""
    task = get_periodic(name)
    if task.durable:
        return jobs_service.enqueue_task(task.task_name)
    return jobs_service.enqueue_task(RUN_PERIODIC_NOW_TASK, name=name)


def run_recorded(name: str, job_id: str | None = None) -> None:
    """Run the periodic task `name` now, recording start, outcome and duration; re-raises.

    `job_id` is the durable job this is an attempt of, if any: a failure then reads `retrying`
    while the job has attempts left (`failed` once it has none, or with no job).

    Three outermost units of work, on purpose: the start is committed before the task runs
    (so it shows, and stays, even if the task fails or the process dies); the task is one
    unit, so a failure rolls back everything it changed; the outcome is committed after it,
    failed or not. Call it outside any unit (a worker or the scheduler does).

    The log line says what the run did at INFO, and only at DEBUG when it did nothing: a
    sweep every minute that finds nothing to sweep is not news (docs/architecture.md §11)."""
    task = get_periodic(name)
    with unit_of_work():
        run = runs.get(name) or runs.add(PeriodicRun(name=name, runs=0))
        run.last_started_at = utcnow()
    started = time.perf_counter()
    try:
        with unit_of_work():
            did = task.func()
    except Exception as error:
        message = f"{type(error).__name__}: {error}"
        status = JobStatus.failed if _ends_run(job_id, error) else JobStatus.retrying
        duration_ms = _finish(name, status, message[:2000], started)
        log.warning(
            "periodic_task_failed", periodic_task=name, duration_ms=duration_ms, error=message, outcome=status.value
        )
        raise
    duration_ms = _finish(name, JobStatus.succeeded, None, started)
    done = did if isinstance(did, dict) else ({"count": did} if did else {})
    if any(done.values()):
        log.info("periodic_task_finished", periodic_task=name, duration_ms=duration_ms, **done)
    else:
        log.debug("periodic_task_finished", periodic_task=name, duration_ms=duration_ms, idle=True)


def _ends_run(job_id: str | None, error: BaseException) -> bool:
    """Whether this failure is the run's last word: no job to retry it, or the job's own
    verdict (app.jobs.service.failure_is_final, which record_failure applies right after)."""
    job = jobs.get(job_id) if job_id else None
    return job is None or jobs_service.failure_is_final(job, error)


def _finish(name: str, status: str, error: str | None, started: float) -> float:
    """Record the run's outcome; its duration in milliseconds."""
    with unit_of_work():
        run = runs.get(name)
        run.runs = (run.runs or 0) + 1
        run.last_finished_at = utcnow()
        run.last_status = status
        run.last_error = error
        run.last_duration_ms = round((time.perf_counter() - started) * 1000, 2)
        return run.last_duration_ms


def last_runs() -> dict[str, PeriodicRun]:
    """Every periodic task's last run, by name."""
    return runs.by_name()
