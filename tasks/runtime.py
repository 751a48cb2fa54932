"""The bridge between huey and durable jobs: `durable_task` and what a worker does per attempt.

A task function is plain code taking keyword arguments. `durable_task(queue)` registers a
huey task that receives only a job id, and runs the function inside an app context with the
job's lease, heartbeat, retry policy and job log line (seed §11) around it.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import sentry_sdk
import structlog
from flask import Flask, current_app, has_app_context

from app.jobs import service as jobs_service
from app.jobs.models import Job, JobStatus
from app.logging import get_logger
from tasks.queues import HUEYS, bound_app

log = get_logger("hearth.jobs")

_TASKS: dict[str, Any] = {}  # task name -> huey TaskWrapper


class DurableTask:
    """A registered task: call `.enqueue(**payload)` inside a unit of work to run it later."""

    def __init__(
        self, name: str, queue: str, func: Callable[..., None], summarize: Callable[[dict[str, Any]], dict[str, Any]]
    ):
        self.name, self.queue, self.func, self.summarize = name, queue, func, summarize

    def enqueue(self, *, caused_by: int | None = None, **payload: Any) -> Job:
        """Queue a run with `payload`; `caused_by` is the user it is for, when no one is signed in."""
        return jobs_service.enqueue(self.name, self.queue, payload, self.summarize(payload), user_id=caused_by)

    def __call__(self, **payload: Any) -> None:
        self.func(**payload)


def durable_task(
    queue: str,
    summarize: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    on_final_failure: Callable[..., None] | None = None,
):
    """Register `func` as a durable task on `queue`; `summarize` picks what the UI may show;
    `on_final_failure(error=..., **payload)` runs once the retries are spent."""

    def decorator(func: Callable[..., None]) -> DurableTask:
        name = f"{func.__module__}.{func.__name__}"
        huey = HUEYS[queue]

        def run_job(job_id: str) -> None:
            run_attempt(name, job_id, func, on_final_failure)

        # huey names a task "<module>.<name>": make it the task function's own dotted path.
        run_job.__module__ = func.__module__
        _TASKS[name] = huey.task(name=func.__name__)(run_job)
        return DurableTask(name, queue, func, summarize or (lambda payload: {}))

    return decorator


def dispatch_to_huey(job_id: str, task_name: str, delay: float | None) -> None:
    task = _TASKS[task_name]
    if delay:
        task.schedule(args=(job_id,), delay=delay)
    else:
        task(job_id)


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
                        log.warning("job_lease_lost", job_id=self.job_id)
                        return
                except Exception as exc:  # a missed beat is survivable; the next one retries
                    log.warning("job_heartbeat_failed", job_id=self.job_id, error=repr(exc))

    def stop(self) -> None:
        self.stopped.set()


def _worker_identity() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def run_attempt(
    task_name: str, job_id: str, func: Callable[..., None], on_final_failure: Callable[..., None] | None = None
) -> None:
    """One attempt at a job: claim it, run it with a heartbeat, record the outcome."""
    app = current_app._get_current_object() if has_app_context() else bound_app()
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
    heartbeat = _Heartbeat(app, job.id, owner, settings.jobs_lease_seconds / 3)
    heartbeat.start()
    log.info("job_started")
    started = time.perf_counter()
    try:
        func(job_id=job.id, **job.payload)
    except Exception as exc:  # any task failure is recorded on the row and retried by policy
        heartbeat.stop()
        sentry_sdk.capture_exception(exc)  # a no-op unless SENTRY_DSN is configured
        duration_ms = round((time.perf_counter() - started) * 1000, 2)
        outcome = jobs_service.record_failure(job, owner, exc, duration_ms)
        log.warning(
            "job_finished",
            outcome=outcome.status.value,
            duration_ms=duration_ms,
            error=f"{type(exc).__name__}: {exc}",
            retry_in=outcome.retry_in,
            recorded=outcome.recorded,
        )
        if outcome.status == JobStatus.failed and outcome.recorded and on_final_failure is not None:
            on_final_failure(error=f"{type(exc).__name__}: {exc}", **job.payload)
        return
    heartbeat.stop()
    duration_ms = round((time.perf_counter() - started) * 1000, 2)
    outcome = jobs_service.record_success(job, owner, duration_ms)
    log.info("job_finished", outcome=outcome.status.value, duration_ms=duration_ms, recorded=outcome.recorded)
