"""The app's job queues: one huey instance per queue (docs/architecture.md §9), built for each
app by `init_app` and held in `app.extensions`, with every task of `tasks` registered on it.

Periodic tasks are registered twice on the `sync` huey: a huey periodic trigger, which only
queues the run's durable job (app.jobs.periodic.enqueue_scheduled), and the job's runner, like
any durable task (the sweeper alone runs from its trigger, see tasks.maintenance.sweep_jobs).

RedisHuey storage when REDIS_URL is set, SqliteHuey storage under `instance/` otherwise, an
in-memory immediate queue with JOBS_IMMEDIATE. Two apps in one process (tests, the CLI) each
have their own instances, bound to their own settings and app: nothing here is process-global.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flask import Flask
from huey import Huey, crontab
from huey.storage import MemoryStorage, RedisStorage, SqliteStorage
from redis import ConnectionPool
from redis.exceptions import RedisError

from app.config import INSTANCE_PATH, Settings
from app.core.circuit import Circuit
from app.core.database import utcnow
from app.jobs.periodic import PERIODIC_QUEUE, PeriodicTask, enqueue_scheduled, run_recorded
from app.jobs.queues import QUEUES, QUEUES_KEY, TaskSpec
from app.logging import get_logger
from tasks import DURABLE_TASKS, PERIODIC_TASKS
from tasks.runtime import DurableTask, periodic_job, run_attempt

log = get_logger("hearth.jobs")

# The dispatch breaker (app.core.circuit): after a broker failure, skip dispatching for this
# long; warn this often at most.
DISPATCH_RETRY_AFTER = 2.0
DISPATCH_WARN_EVERY = 30.0


class QueueHuey(Huey):
    """A huey instance whose storage is chosen from the app's settings."""

    def __init__(self, name: str):
        super().__init__(name, results=False, immediate=True)

    def get_immediate_storage(self) -> MemoryStorage:
        return MemoryStorage(self.name)

    def read_periodic(self, timestamp: datetime | None) -> list[Any]:
        """The periodic triggers due at `timestamp` (huey's scheduler asks once a minute), each
        told the minute it fires for (`scheduled_for`), which every scheduler evaluating the
        same minute agrees on, unlike the time a worker later gets to the trigger: what
        identifies a scheduled run (app.jobs.periodic.enqueue_scheduled)."""
        timestamp = timestamp or self._get_timestamp()
        due = super().read_periodic(timestamp)
        for trigger in due:
            trigger.extend_data({"scheduled_for": timestamp.replace(tzinfo=UTC).isoformat()})
        return due


def sqlite_queue_path(settings: Settings, queue: str) -> Path:
    directory = Path(settings.jobs_sqlite_dir) if settings.jobs_sqlite_dir else INSTANCE_PATH
    return directory / f"huey-{queue}.db"


def _connect(huey: QueueHuey, settings: Settings, pool: ConnectionPool | None) -> None:
    if settings.jobs_immediate:
        huey._immediate = True
        huey.storage = MemoryStorage(huey.name)
    elif pool is not None:
        huey._immediate = False
        huey.storage = RedisStorage(f"{settings.redis_prefix}.{huey.name}", blocking=False, connection_pool=pool)
    else:
        path = sqlite_queue_path(settings, huey.name)
        path.parent.mkdir(parents=True, exist_ok=True)
        huey._immediate = False
        huey.storage = SqliteStorage(huey.name, filename=str(path))


class AppQueues:
    """One app's four huey instances with every durable and periodic task registered on them;
    the jobs service dispatches through it (`app.extensions[QUEUES_KEY]`)."""

    def __init__(
        self,
        app: Flask,
        settings: Settings,
        durable: Iterable[DurableTask] = DURABLE_TASKS,
        periodic: Iterable[PeriodicTask] = PERIODIC_TASKS,
    ):
        pool = None
        if settings.redis_url and not settings.jobs_immediate:
            # Non-blocking dequeue: a BRPOP would outlast the short socket timeout every client gets.
            pool = ConnectionPool.from_url(
                settings.redis_url,
                socket_timeout=settings.redis_timeout_seconds,
                socket_connect_timeout=settings.redis_timeout_seconds,
            )
        # Redis down or hung: one client timeout per window, then dispatches are skipped (their
        # rows stay queued for the sweeper) instead of each paying the timeout in a request.
        self.circuit = Circuit(
            "job-dispatch",
            retry_after=DISPATCH_RETRY_AFTER,
            warn_every=DISPATCH_WARN_EVERY,
            log=log,
            unavailable_event="job_dispatch_failed",
            recovered_event="job_dispatch_recovered",
            detail="jobs stay queued in the database; the sweeper sends them once Redis is back",
        )
        self.hueys: dict[str, QueueHuey] = {name: QueueHuey(name) for name in QUEUES}
        for huey in self.hueys.values():
            _connect(huey, settings, pool)
        self.tasks: dict[str, TaskSpec] = {}
        self._wrappers: dict[str, Any] = {}
        for task in durable:
            self.tasks[task.name] = task.spec
            self._wrappers[task.name] = self.hueys[task.queue].task(name=task.func.__name__)(_job_runner(app, task))
        self.periodic: dict[str, PeriodicTask] = {}
        for schedule in periodic:
            self.periodic[schedule.name] = schedule
            trigger = _scheduled(app, schedule)
            if schedule.durable:  # its runs are jobs of its own name; the trigger only queues one
                job = periodic_job(schedule)
                self.tasks[job.name] = job.spec
                self._wrappers[job.name] = self.hueys[job.queue].task(name=schedule.func.__name__)(
                    _job_runner(app, job)
                )
            self.hueys[PERIODIC_QUEUE].periodic_task(crontab(**dict(schedule.cron)), name=trigger.__name__)(trigger)

    def dispatch(self, job_id: str, task_name: str, delay: float | None) -> bool:
        """Hand `job_id` to huey; False when it was not sent because Redis failed (now or a
        moment ago: the breaker is open). The job row stays queued and the sweeper re-sends it."""
        task = self._wrappers[task_name]
        if not self.circuit.allows():
            return False
        try:
            if delay:
                task.schedule(args=(job_id,), delay=delay)
            else:
                task(job_id)
        except RedisError as error:
            self.circuit.record_failure("dispatch", error, job_id=job_id, task=task_name)
            return False
        self.circuit.record_success()
        return True

    def pending_count(self) -> int:
        return sum(huey.pending_count() for huey in self.hueys.values())


def _job_runner(app: Flask, task: DurableTask):
    def run_job(job_id: str | None = None, **_: Any) -> None:
        if job_id is None:  # a message of an older release's periodic trigger of the same name
            log.warning("job_message_without_job", task=task.name)
            return
        run_attempt(app, task, job_id)

    # huey names a task "<module>.<name>": make it the task function's own dotted path.
    run_job.__module__ = task.func.__module__
    run_job.__name__ = task.func.__name__
    return run_job


def _scheduled(app: Flask, schedule: PeriodicTask):
    """huey's periodic trigger of `schedule`: it queues the durable job of the scheduled minute
    (at most one per minute, whichever scheduler fires first), or for the sweeper
    (`durable=False`) runs it right here."""

    def run_on_schedule(scheduled_for: str | None = None) -> None:
        with app.app_context():
            if schedule.durable:
                enqueue_scheduled(schedule.name, datetime.fromisoformat(scheduled_for) if scheduled_for else utcnow())
            else:
                run_recorded(schedule.name)

    # huey names it "<module>.<name>": the sweeper's trigger keeps the function's own name (it
    # is its only task); a durable task's name is its job runner's, so its trigger is "…_schedule".
    name = schedule.func.__name__ if not schedule.durable else f"{schedule.func.__name__}_schedule"
    run_on_schedule.__module__, run_on_schedule.__name__ = schedule.func.__module__, name
    return run_on_schedule


# huey's INFO lines for every task it runs or schedules and every periodic task it enqueues.
# Hearth's own lines say the same with more (`job_started` / `job_finished` per attempt,
# `periodic_task_finished` when a periodic run did something), so at INFO a sweep every minute
# that finds nothing writes nothing; LOG_LEVEL=DEBUG shows them again.
ROUTINE_HUEY_MESSAGES = frozenset(
    {"Executing %s", "%s executed in %0.3fs", "Enqueueing periodic task %s.", "Added task %s to schedule, eta %s"}
)
HUEY_TASK_LOGGERS = ("huey", "huey.consumer.Scheduler")


class RoutineHueyLines(logging.Filter):
    """Lowers huey's routine per-task lines (ROUTINE_HUEY_MESSAGES) from INFO to DEBUG."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.INFO and record.msg in ROUTINE_HUEY_MESSAGES:
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
        return True


_ROUTINE_HUEY_LINES = RoutineHueyLines()  # stateless; one instance, so adding it again is a no-op


def quiet_routine_huey_lines() -> None:
    """Install RoutineHueyLines on huey's loggers (idempotent: the same filter object)."""
    for name in HUEY_TASK_LOGGERS:
        logging.getLogger(name).addFilter(_ROUTINE_HUEY_LINES)


def init_app(app: Flask, settings: Settings) -> AppQueues:
    """Build this app's queues (opens no connection: huey connects on first use) and lower
    huey's routine per-task log lines to DEBUG."""
    quiet_routine_huey_lines()
    queues = AppQueues(app, settings)
    app.extensions[QUEUES_KEY] = queues
    return queues
