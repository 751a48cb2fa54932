"""The bridge between huey and durable jobs: `durable_task` and what a worker does per attempt.

A task function is plain code taking keyword arguments. `durable_task(queue)` declares it;
each app's queues (tasks.queues) register a huey task that receives only a job id and runs
the function inside that app's context with the
job's lease, heartbeat, retry policy and job log line (docs/architecture.md §11) around it.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from types import ModuleType
from typing import Any, TypeVar

import sentry_sdk
import structlog
from flask import Flask
from sqlalchemy.exc import PendingRollbackError

from app.errors import is_database_unavailable
from app.jobs import service as jobs_service
from app.jobs.models import Job, JobStatus
from app.jobs.periodic import PERIODIC_QUEUE, PeriodicTask, run_recorded
from app.jobs.queues import TaskSpec
from app.logging import get_logger

T = TypeVar("T")
log = get_logger("hearth.jobs")


@dataclass(frozen=True)
class DurableTask:
    """A task declared with `durable_task`: call `.enqueue(**payload)` inside a unit of work to
    run it later. Each app's queues (tasks.queues) register it on their huey instance."""

    name: str
    queue: str
    func: Callable[..., None]
    summarize: Callable[[dict[str, Any]], dict[str, Any]]
    on_final_failure: Callable[..., None] | None = None

    @property
    def spec(self) -> TaskSpec:
        return TaskSpec(self.name, self.queue, self.summarize)

    def enqueue(self, *, caused_by: int | None = None, **payload: Any) -> Job:
        """Queue a run with `payload`; `caused_by` is the user it is for, when no one is signed in."""
        return jobs_service.enqueue(self.name, self.queue, payload, self.summarize(payload), user_id=caused_by)

    def __call__(self, **payload: Any) -> None:
        self.func(**payload)


def durable_task(
    queue: str,
    summarize: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    on_final_failure: Callable[..., None] | None = None,
) -> Callable[[Callable[..., None]], DurableTask]:
    """Declare `func` a durable task on `queue`; `summarize` picks what the UI may show;
    `on_final_failure(error=..., **payload)` runs once the job fails for good (its retries
    spent, or at once on a PermanentFailure), `error` being the failure in words for people
    (app.jobs.service.failure_message). Raise RetryLater to ask for a later retry."""

    def decorator(func: Callable[..., None]) -> DurableTask:
        name = f"{func.__module__}.{func.__name__}"
        return DurableTask(name, queue, func, summarize or _no_summary, on_final_failure)

    return decorator


def _no_summary(payload: dict[str, Any]) -> dict[str, Any]:
    return {}


def periodic_job(schedule: PeriodicTask) -> DurableTask:
    """The durable task `schedule`'s runs are jobs of: named after its function (so the job
    list names the periodic task), on PERIODIC_QUEUE with its retry policy, each attempt
    recorded in `periodic_runs` (app.jobs.periodic.run_recorded). Its summary shows the task's
    name, and the minute it was scheduled for unless an admin started it."""
    name = schedule.name

    def run(*, job_id: str, scheduled_for: str | None = None) -> None:
        run_recorded(name, job_id=job_id)

    def summarize(payload: dict[str, Any]) -> dict[str, Any]:
        when = payload.get("scheduled_for")
        return {"periodic_task": name, **({"scheduled_for": when} if when else {})}

    # huey and the job's traceback name it after the declared function.
    run.__module__, run.__name__, run.__qualname__ = schedule.func.__module__, schedule.func.__name__, name
    return DurableTask(schedule.task_name, PERIODIC_QUEUE, run, summarize)


def collect_tasks(modules: Iterable[ModuleType], kind: type[T]) -> tuple[T, ...]:
    """The `kind` objects (durable or periodic tasks) each module defines, in name order."""
    found = {
        id(value): value
        for module in modules
        for value in vars(module).values()
        if isinstance(value, kind)
        and getattr(value, "func", None) is not None
        and getattr(value.func, "__module__", None) == module.__name__
    }
    return tuple(sorted(found.values(), key=lambda task: task.name))


class _Heartbeat(threading.Thread):
    """Extends the job's lease every third of its length while the attempt runs."""

    def __init__(self, app: Flask, job_id: str, owner: str, interval: float):
        super().__init__(name=f"heartbeat-{job_id}", daemon=True)
        self.app, self.job_id, self.owner, self.interval = app, job_id, owner, interval
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            with self.app.app_context():
                try:
                    if not jobs_service.heartbeat(self.job_id, self.owner):
                        # Stopped meanwhile: the outcome was recorded, which ends the lease.
                        if not self.stopped.is_set():
                            log.warning("job_lease_lost", job_id=self.job_id)
                        return
                except Exception as exc:  # a missed beat is survivable; the next one retries
                    log.warning("job_heartbeat_failed", job_id=self.job_id, error=repr(exc))

    def stop(self) -> None:
        self.stopped.set()


RECORD_RETRY_FIRST_DELAY = 0.25
RECORD_RETRY_MAX_DELAY = 5.0


def record_outcome(
    record: Callable[[], T], job_id: str, within_seconds: float, sleep: Callable[[float], None] = time.sleep
) -> T:
    """Run `record` (writing an attempt's outcome), retrying with backoff for up to
    `within_seconds` (the lease length) while the database is unavailable (app.errors
    `is_database_unavailable`). An email delivered while PostgreSQL restarts is then recorded
    once it is back, rather than left `running` for the sweeper to send again after the lease.
    Any other error, or an outage outlasting the lease, is raised as before."""
    deadline = time.monotonic() + within_seconds
    delay = RECORD_RETRY_FIRST_DELAY
    attempts = 0
    while True:
        try:
            outcome = record()
        except Exception as error:
            # PendingRollbackError: the session still held a transaction a lost connection broke
            # (the task's body read outside a unit of work); the failed unit of work inside
            # `record` has rolled it back, so the next round starts clean.
            retryable = is_database_unavailable(error) or isinstance(error, PendingRollbackError)
            if not retryable or time.monotonic() + delay > deadline:
                raise
            attempts += 1
            if attempts == 1:  # one line per attempt's outcome, however long the outage
                log.warning(
                    "job_outcome_not_recorded_retrying",
                    job_id=job_id,
                    error=f"{type(error).__name__}: {error}".splitlines()[0][:300],
                    retry_for_seconds=within_seconds,
                )
            sleep(delay)
            delay = min(delay * 2, RECORD_RETRY_MAX_DELAY)
            continue
        if attempts:
            log.info("job_outcome_recorded_after_retry", job_id=job_id, retries=attempts)
        return outcome


def _worker_identity() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def run_attempt(app: Flask, task: DurableTask, job_id: str) -> None:
    """One attempt at a job of `app`: claim it, run it with a heartbeat, record the outcome."""
    task_name, func, on_final_failure = task.name, task.func, task.on_final_failure
    with app.app_context():
        owner = _worker_identity()
        job = jobs_service.start_attempt(job_id, owner)
        if job is None:
            log.info("job_skipped", job_id=job_id, task=task_name, reason="finished, running or not due")
            return
        context = {"job_id": job.id, "queue": job.queue, "task": task_name, "attempt": job.attempts}
        if job.request_id:
            context["request_id"] = job.request_id
        with structlog.contextvars.bound_contextvars(**context):
            _run_with_lease(app, job, owner, func, on_final_failure)


def _run_with_lease(
    app: Flask, job: Job, owner: str, func: Callable[..., None], on_final_failure: Callable[..., None] | None
) -> None:
    settings = app.extensions["hearth.settings"]
    job_id = job.id
    heartbeat = _Heartbeat(app, job_id, owner, settings.jobs_lease_seconds / 3)
    heartbeat.start()
    log.info("job_started")
    started = time.perf_counter()
    try:
        func(job_id=job_id, **job.payload)
    except Exception as exc:  # any task failure is recorded on the row and retried by policy
        sentry_sdk.capture_exception(exc)  # a no-op unless SENTRY_DSN is configured
        duration_ms = round((time.perf_counter() - started) * 1000, 2)
        # A unit of work of its own: the body's units rolled its work back, the attempt's
        # bookkeeping (attempt count, error, traceback, next try) persists regardless.
        try:
            outcome = record_outcome(
                partial(jobs_service.record_failure, job, owner, exc, duration_ms), job_id, settings.jobs_lease_seconds
            )
        finally:
            heartbeat.stop()
        log.warning(
            "job_finished",
            outcome=outcome.status.value,
            duration_ms=duration_ms,
            error=f"{type(exc).__name__}: {exc}",  # the technical text: the log is for operators
            retry_in=outcome.retry_in,
            recorded=outcome.recorded,
        )
        if outcome.status == JobStatus.failed and outcome.recorded and on_final_failure is not None:
            # The sentence the job records (never the exception's own text, which may hold
            # paths or reprs): what a task shows its users about the failure.
            on_final_failure(error=jobs_service.failure_message(exc), **job.payload)
        return
    duration_ms = round((time.perf_counter() - started) * 1000, 2)
    try:
        # The heartbeat keeps the lease while a database outage delays the record: the work
        # is done (an email sent) and must not be handed to another worker meanwhile.
        outcome = record_outcome(
            partial(jobs_service.record_success, job, owner, duration_ms), job_id, settings.jobs_lease_seconds
        )
    finally:
        heartbeat.stop()
    log.info("job_finished", outcome=outcome.status.value, duration_ms=duration_ms, recorded=outcome.recorded)
