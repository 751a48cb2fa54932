"""What the admin's job pages show comes from the worker: progress, tracebacks, periodic runs."""

from __future__ import annotations

import pytest

from app.audit.service import record
from app.extensions import db
from app.jobs import periodic
from app.jobs import service as jobs_service
from app.jobs.models import Job, JobStatus, PeriodicRun
from app.jobs.queues import QUEUES_KEY
from tests.conftest import count_rows


def _running_job(app, attempts: int) -> str:
    with app.app_context():
        job = Job(
            id="job-1",
            queue="reports",
            task="tasks.reports.build",
            payload={},
            args_summary={},
            status=JobStatus.running,
            attempts=attempts,
            max_attempts=2,
            lease_owner="worker-1",
        )
        db.session.add(job)
        db.session.commit()
        return job.id


def test_progress_is_written_at_once_without_committing_the_tasks_work(app):
    job_id = _running_job(app, attempts=1)
    with app.app_context():
        job = db.session.get(Job, job_id)
        job.error = "unfinished work of the task"  # pending in the task's session, not committed
        jobs_service.report_progress(job_id, 140, "almost" * 100)
        db.session.rollback()
        db.session.expire_all()
        job = db.session.get(Job, job_id)
        assert (job.progress, len(job.progress_message), job.error) == (100, 200, None)


@pytest.mark.parametrize(("attempts", "status"), [(1, JobStatus.retrying), (2, JobStatus.failed)])
def test_a_failed_attempt_keeps_its_traceback(app, attempts, status):
    job_id = _running_job(app, attempts=attempts)
    with app.app_context():
        job = db.session.get(Job, job_id)
        try:
            raise ValueError("the report template is missing")
        except ValueError as error:
            outcome = jobs_service.record_failure(job, "worker-1", error, 12.5)
        db.session.expire_all()
        job = db.session.get(Job, job_id)
        assert outcome.status == status == job.status
        assert job.traceback.startswith("Traceback (most recent call last):")
        assert "ValueError: the report template is missing" in job.traceback
        assert "test_a_failed_attempt_keeps_its_traceback" in job.traceback


def test_periodic_runs_are_recorded_with_their_outcome(app, monkeypatch):
    calls = []
    monkeypatch.setitem(
        app.extensions[QUEUES_KEY].periodic,
        "flaky",
        periodic.PeriodicTask("flaky", "every minute", "", lambda: calls.append(1) or (len(calls) > 1 and 1 / 0)),
    )
    with app.app_context():
        periodic.run_recorded("flaky")
        with pytest.raises(ZeroDivisionError):
            periodic.run_recorded("flaky")
        run = db.session.get(PeriodicRun, "flaky")
        assert run.runs == 2 and run.last_status == "failed" and "ZeroDivisionError" in run.last_error
        assert run.last_duration_ms is not None and run.last_finished_at >= run.last_started_at


def test_a_failing_periodic_task_keeps_nothing_it_changed_but_its_run_is_recorded(app, monkeypatch):
    def half_done() -> None:
        record("half_done")
        raise RuntimeError("storage went away")

    monkeypatch.setitem(
        app.extensions[QUEUES_KEY].periodic, "half", periodic.PeriodicTask("half", "every minute", "", half_done)
    )
    with app.app_context(), pytest.raises(RuntimeError, match="storage went away"):
        periodic.run_recorded("half")
    assert count_rows(app, "audit_events") == 0
    with app.app_context():
        run = db.session.get(PeriodicRun, "half")
        assert (run.runs, run.last_status, run.last_error) == (1, "failed", "RuntimeError: storage went away")


def test_the_built_in_periodic_tasks_are_registered_with_schedules(app):
    schedules = {name: task.schedule for name, task in app.extensions[QUEUES_KEY].periodic.items()}
    assert schedules.items() >= {("sweep_jobs", "every minute"), ("cleanup_pending_uploads", "every 10 minutes")}
    registered = app.extensions[QUEUES_KEY].hueys["sync"]._registry._registry
    assert {"tasks.maintenance.sweep_jobs", "tasks.maintenance.cleanup_pending_uploads"} <= set(registered)


def test_every_task_a_service_queues_by_name_is_registered(app):
    from app.jobs.periodic import RUN_PERIODIC_NOW_TASK
    from app.mail.service import SEND_EMAIL_TASK
    from app.uploads.service import PROCESS_UPLOAD_TASK

    registered = app.extensions[QUEUES_KEY].tasks
    for name in (SEND_EMAIL_TASK, PROCESS_UPLOAD_TASK, RUN_PERIODIC_NOW_TASK):
        assert registered[name].name == name
    with app.app_context(), pytest.raises(LookupError):
        jobs_service.enqueue_task("tasks.nowhere.nothing")
