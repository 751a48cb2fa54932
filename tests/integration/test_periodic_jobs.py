"""Periodic tasks run as durable jobs (app.jobs.periodic): a scheduler firing queues one job per
task and scheduled minute on `sync`, which runs with that queue's retry policy, shows in
/admin/jobs, and keeps `periodic_runs` current; the sweeper alone is never a job."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from app.core.database import utcnow
from app.extensions import db
from app.jobs import management, periodic
from app.jobs import service as jobs_service
from app.jobs.models import Job, JobStatus, PeriodicRun
from app.jobs.periodic import RUN_PERIODIC_NOW_TASK, PeriodicTask
from app.jobs.queues import QUEUES, QUEUES_KEY
from app.jobs.service import PermanentFailure
from app.users.models import User
from tasks.maintenance import periodic as periodic_decorator
from tasks.queues import AppQueues
from tasks.runtime import periodic_job, run_attempt

TEN_O_CLOCK = datetime(2030, 1, 7, 10, 0, 30, tzinfo=UTC)
CLEANUP = "tasks.maintenance.cleanup_pending_uploads"


@pytest.fixture()
def dispatched(app, monkeypatch) -> list[tuple[str, str]]:
    """What is handed to huey (nothing runs: the test runs attempts itself)."""
    sent: list[tuple[str, str]] = []
    monkeypatch.setattr(app.extensions[QUEUES_KEY], "dispatch", lambda job_id, task, delay: sent.append((job_id, task)))
    return sent


def _jobs(app, task: str | None = None) -> list[Job]:
    with app.app_context():
        statement = select(Job).order_by(Job.created_at)
        rows = list(db.session.scalars(statement.where(Job.task == task) if task else statement))
        for row in rows:
            db.session.expunge(row)
        return rows


def _run(app, name: str) -> PeriodicRun | None:
    with app.app_context():
        run = db.session.get(PeriodicRun, name)
        if run is not None:
            db.session.expunge(run)
        return run


# Declaring ------------------------------------------------------------------------------------


def test_the_decorator_keeps_its_signature_and_declares_a_durable_task():
    def nightly() -> dict[str, int]:
        return {}

    declared = periodic_decorator("nightly", "Roll up yesterday.", hour="2", minute="5")(nightly)
    assert declared == PeriodicTask(
        "nightly", "nightly", "Roll up yesterday.", nightly, (("hour", "2"), ("minute", "5"))
    )
    assert declared.durable and declared.task_name == f"{__name__}.nightly"


def test_each_periodic_task_but_the_sweeper_is_a_durable_task_on_sync(app):
    queues = app.extensions[QUEUES_KEY]
    for name, task in queues.periodic.items():
        if name == "sweep_jobs":
            assert not task.durable and task.task_name not in queues.tasks
        else:
            assert task.durable and queues.tasks[task.task_name].queue == "sync", name
    registered = set(queues.hueys["sync"]._registry._registry)
    assert {CLEANUP, f"{CLEANUP}_schedule", "tasks.maintenance.sweep_jobs"} <= registered


# Scheduling -----------------------------------------------------------------------------------


def test_a_scheduled_firing_queues_a_durable_job_named_after_the_task(app, dispatched):
    with app.app_context():
        assert periodic.enqueue_scheduled("cleanup_pending_uploads", TEN_O_CLOCK) is True
    [job] = _jobs(app)
    assert (job.task, job.queue, job.status, job.max_attempts) == (CLEANUP, "sync", JobStatus.queued, 6)
    assert job.max_attempts == QUEUES["sync"].max_attempts
    assert job.args_summary == {"periodic_task": "cleanup_pending_uploads", "scheduled_for": "2030-01-07T10:00:00Z"}
    assert dispatched == [(job.id, CLEANUP)]  # handed to huey once committed


def test_schedulers_firing_for_the_same_minute_queue_one_run(app, dispatched):
    with app.app_context():
        first = periodic.enqueue_scheduled("cleanup_pending_uploads", TEN_O_CLOCK)
        again = periodic.enqueue_scheduled("cleanup_pending_uploads", TEN_O_CLOCK + timedelta(seconds=29))
        later = periodic.enqueue_scheduled("cleanup_pending_uploads", TEN_O_CLOCK + timedelta(minutes=10))
    assert (first, again, later) == (True, False, True)
    assert len(_jobs(app, CLEANUP)) == 2 and len(dispatched) == 2


def test_schedulers_racing_for_the_same_minute_queue_one_run(app, dispatched):
    """Several consumers' schedulers at once (threads, each with its own session and
    connection): the unique job id lets exactly one insert, and none fails."""
    barrier, results, errors = threading.Barrier(4), [], []

    def fire() -> None:
        with app.app_context():
            barrier.wait()
            try:
                results.append(periodic.enqueue_scheduled("cleanup_pending_uploads", TEN_O_CLOCK))
            except Exception as error:  # collected: the assertion below names it
                errors.append(error)

    threads = [threading.Thread(target=fire) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == [] and sorted(results) == [False, False, False, True]
    assert len(_jobs(app, CLEANUP)) == 1 and len(dispatched) == 1


def test_the_huey_trigger_queues_the_run_of_the_minute_the_scheduler_checked(app, dispatched):
    huey = app.extensions[QUEUES_KEY].hueys["sync"]
    checked = datetime(2030, 1, 7, 10, 0, 59)  # huey's naive UTC: its scheduler checks once a minute
    due = {trigger.name: trigger for trigger in huey.read_periodic(checked)}
    assert "cleanup_pending_uploads_schedule" in due and "prune_login_failures_schedule" not in due  # at :07
    due["cleanup_pending_uploads_schedule"].execute()
    [job] = _jobs(app, CLEANUP)
    assert job.args_summary["scheduled_for"] == "2030-01-07T10:00:00Z"
    # A second consumer's scheduler checking the same minute a little later: no second run.
    again = {trigger.name: trigger for trigger in huey.read_periodic(checked + timedelta(seconds=0.5))}
    again["cleanup_pending_uploads_schedule"].execute()
    assert len(_jobs(app, CLEANUP)) == 1


def test_the_sweeper_runs_from_its_trigger_and_is_never_a_job(app, dispatched):
    huey = app.extensions[QUEUES_KEY].hueys["sync"]
    [sweep] = [trigger for trigger in huey.read_periodic(datetime(2030, 1, 7, 10, 3)) if trigger.name == "sweep_jobs"]
    sweep.execute()
    assert _jobs(app) == []
    assert (_run(app, "sweep_jobs").runs, _run(app, "sweep_jobs").last_status) == (1, "succeeded")


# Running --------------------------------------------------------------------------------------


def test_a_scheduled_run_runs_as_a_job_and_records_its_run(app):
    """With the immediate queue the job runs as its commit hands it to huey."""
    with app.app_context():
        periodic.enqueue_scheduled("cleanup_pending_uploads", TEN_O_CLOCK)
    [job] = _jobs(app, CLEANUP)
    assert (job.status, job.attempts, job.error) == (JobStatus.succeeded, 1, None)
    run = _run(app, "cleanup_pending_uploads")
    assert (run.runs, run.last_status, run.last_error) == (1, "succeeded", None)
    assert run.last_started_at >= job.started_at - timedelta(seconds=1)


class _Flaky:
    """A periodic task failing with the next of `errors` (None: it succeeds)."""

    def __init__(self, *errors: BaseException | None):
        self.errors = list(errors)

    def __call__(self) -> dict[str, int]:
        error = self.errors.pop(0)
        if error is not None:
            raise error
        return {"done": 1}


@pytest.fixture()
def flaky(app, monkeypatch, dispatched):
    """Install a periodic task `flaky` (with its durable job) on the app's queues."""

    def install(*errors: BaseException | None) -> PeriodicTask:
        func = _Flaky(*errors)
        func.__module__, func.__name__ = __name__, "flaky"
        task = PeriodicTask("flaky", "every minute", "", func, (("minute", "*"),))
        queues = AppQueues(app, app.extensions["hearth.settings"], durable=(), periodic=(task,))
        monkeypatch.setitem(app.extensions[QUEUES_KEY].periodic, "flaky", task)
        monkeypatch.setitem(app.extensions[QUEUES_KEY].tasks, task.task_name, queues.tasks[task.task_name])
        return task

    return install


def _attempt(app, task: PeriodicTask, job_id: str) -> Job:
    with app.app_context():
        db.session.execute(update(Job).where(Job.id == job_id).values(next_attempt_at=None))
        db.session.commit()
    run_attempt(app, periodic_job(task), job_id)
    [job] = [job for job in _jobs(app) if job.id == job_id]
    return job


def test_a_failing_scheduled_run_is_retried_by_the_queue_policy(app, flaky):
    task = flaky(RuntimeError("storage went away"), None)
    with app.app_context():
        periodic.enqueue_scheduled("flaky", TEN_O_CLOCK)
    [job] = _jobs(app, task.task_name)
    job = _attempt(app, task, job.id)
    assert (job.status, job.attempts, job.error) == (JobStatus.retrying, 1, "Unexpected error (RuntimeError).")
    assert job.next_attempt_at > utcnow()
    run = _run(app, "flaky")  # the admin's periodic row agrees with the job: a retry is scheduled
    assert (run.last_status, run.last_error) == ("retrying", "RuntimeError: storage went away")
    job = _attempt(app, task, job.id)
    assert (job.status, job.attempts) == (JobStatus.succeeded, 2)
    assert (_run(app, "flaky").last_status, _run(app, "flaky").runs) == ("succeeded", 2)


def test_a_scheduled_run_out_of_attempts_or_failing_for_good_reads_failed(app, flaky):
    task = flaky(PermanentFailure("The stats source is gone."))
    with app.app_context():
        periodic.enqueue_scheduled("flaky", TEN_O_CLOCK)
    [job] = _jobs(app, task.task_name)
    job = _attempt(app, task, job.id)
    assert (job.status, job.attempts, job.error) == (JobStatus.failed, 1, "The stats source is gone.")
    assert _run(app, "flaky").last_status == "failed"


def test_a_lost_scheduled_run_is_resent_by_the_sweeper(app, dispatched):
    with app.app_context():
        periodic.enqueue_scheduled("cleanup_pending_uploads", TEN_O_CLOCK)
        db.session.execute(update(Job).values(enqueued_at=utcnow() - timedelta(hours=1)))
        db.session.commit()
        [job] = _jobs(app, CLEANUP)
        assert jobs_service.sweep().requeued == [job.id]
    assert dispatched == [(job.id, CLEANUP), (job.id, CLEANUP)]


# Run now and the admin ------------------------------------------------------------------------


def test_run_now_queues_a_run_like_the_scheduled_ones_and_the_sweeper_a_run_now_job(app, people, dispatched):
    with app.app_context():
        admin = db.session.scalars(select(User).where(User.email == "admin@example.com")).one()
        cleanup = management.run_periodic_now(admin, "cleanup_pending_uploads")
        sweep = management.run_periodic_now(admin, "sweep_jobs")
        assert (cleanup.task, cleanup.args_summary) == (CLEANUP, {"periodic_task": "cleanup_pending_uploads"})
        assert (sweep.task, sweep.args_summary) == (RUN_PERIODIC_NOW_TASK, {"periodic_task": "sweep_jobs"})
        assert cleanup.queue == sweep.queue == "sync"


def test_scheduled_runs_are_listed_in_admin_jobs_with_the_periodic_row(app, people, auth):
    with app.app_context():
        periodic.enqueue_scheduled("cleanup_pending_uploads", TEN_O_CLOCK)
    [job] = _jobs(app, CLEANUP)
    client = auth(app.test_client()).signed_in("admin@example.com")
    html = client.get("/admin/jobs?queue=sync").get_data(as_text=True)
    listed = html[html.index(f'data-job="{job.id}"') :]
    listed = listed[: listed.index("</tr>")]
    assert "cleanup_pending_uploads" in listed and "periodic_task=cleanup_pending_uploads" in listed
    assert "scheduled_for=2030-01-07T10:00:00Z" in listed and 'data-status="succeeded"' in html
    row = html[html.index('data-periodic="cleanup_pending_uploads"') :]
    row = row[: row.index("</tr>")]
    assert "Succeeded" in row and "never run" not in row


def test_succeeded_jobs_past_their_retention_are_pruned_daily_and_failed_ones_stay(app):
    from tasks import PERIODIC_TASKS

    retention = app.extensions["hearth.settings"].jobs_retention_days
    now = utcnow()
    rows = {
        "old-ok": (JobStatus.succeeded, now - timedelta(days=retention, hours=1)),
        "new-ok": (JobStatus.succeeded, now - timedelta(days=retention - 1)),
        "old-failed": (JobStatus.failed, now - timedelta(days=retention * 3)),
        "old-revoked": (JobStatus.revoked, now - timedelta(days=retention * 3)),
    }
    with app.app_context():
        for name, (status, finished_at) in rows.items():
            db.session.add(
                Job(
                    id=str(uuid.uuid4()),
                    queue="emails",
                    task="tasks.emails.send_email",
                    payload={},
                    args_summary={"name": name},
                    status=status,
                    attempts=1,
                    max_attempts=4,
                    created_at=finished_at,
                    enqueued_at=finished_at,
                    finished_at=finished_at,
                )
            )
        db.session.commit()
        assert "prune_job_history" in {task.name for task in PERIODIC_TASKS}
        assert jobs_service.prune_succeeded() == 1
        left = {job.args_summary["name"] for job in db.session.scalars(select(Job))}
    assert left == {"new-ok", "old-failed", "old-revoked"}
