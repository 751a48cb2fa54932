"""Periodic tasks: the schedule each runs on and a record of its last run (docs/architecture.md §9).

`tasks.maintenance` declares each with `periodic(...)`; each app's queues (tasks.queues)
register them on its `sync` huey, whose scheduler runs them on the `sync` consumers. An admin
can also run one now (it then runs as an ordinary durable job, so it shows in the job list
with its outcome).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from app.core.database import utcnow
from app.core.unit_of_work import unit_of_work
from app.errors import NotFound
from app.i18n import _
from app.jobs.models import PeriodicRun
from app.jobs.queues import app_queues
from app.jobs.repository import PeriodicRunRepository
from app.logging import get_logger

log = get_logger("hearth.jobs")
runs = PeriodicRunRepository()

RUN_PERIODIC_NOW_TASK = "tasks.maintenance.run_periodic_now"  # an admin's "run now" (by name: no import of tasks)


@dataclass(frozen=True)
class PeriodicTask:
    name: str
    schedule: str  # for people: "every minute"
    description: str
    # Returns what the run did ({"removed": 3}, or a count); nothing done is falsy (see run_recorded).
    func: Callable[[], object]
    cron: tuple[tuple[str, str], ...] = ()  # huey crontab() arguments, e.g. (("minute", "*/10"),)


def scheduled_tasks() -> dict[str, PeriodicTask]:
    """The current app's periodic tasks by name."""
    return app_queues().periodic


def get_periodic(name: str) -> PeriodicTask:
    try:
        return scheduled_tasks()[name]
    except KeyError:
        raise NotFound(_("No periodic task named %(name)r.", name=name)) from None


def run_recorded(name: str) -> None:
    """Run the periodic task `name` now, recording start, outcome and duration; re-raises.

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
        duration_ms = _finish(name, "failed", message[:2000], started)
        log.warning("periodic_task_failed", periodic_task=name, duration_ms=duration_ms, error=message)
        raise
    duration_ms = _finish(name, "succeeded", None, started)
    done = did if isinstance(did, dict) else ({"count": did} if did else {})
    if any(done.values()):
        log.info("periodic_task_finished", periodic_task=name, duration_ms=duration_ms, **done)
    else:
        log.debug("periodic_task_finished", periodic_task=name, duration_ms=duration_ms, idle=True)


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
