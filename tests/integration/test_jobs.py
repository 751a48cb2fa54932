"""Durable jobs through real huey consumers and a real SMTP server on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from itertools import pairwise
from typing import Any

import pytest
from sqlalchemy import select

from app.core.database import utcnow
from app.core.unit_of_work import unit_of_work
from app.extensions import db
from app.jobs import service as jobs_service
from app.jobs.models import Job, JobStatus, PeriodicRun
from app.jobs.periodic import enqueue_scheduled
from app.jobs.queues import QUEUES_KEY
from app.mail.service import queue_email
from tests.support import Worker, pid_alive, wait_until, worker_env

LEASE_SECONDS = 1.5
BACKOFF_BASE = 0.3


@pytest.fixture()
def queue_settings(app, base_settings, smtp, tmp_path) -> dict[str, Any]:
    """Settings shared by the producing test app and the worker processes: a real queue."""
    return {
        **base_settings,
        "jobs_immediate": False,
        "smtp_url": smtp.url,
        "jobs_sqlite_dir": str(tmp_path / "huey"),
        "redis_prefix": base_settings["redis_prefix"] + "-" + tmp_path.name[-12:],
        "jobs_lease_seconds": LEASE_SECONDS,
        "jobs_backoff_base_seconds": BACKOFF_BASE,
        "jobs_queued_grace_seconds": 0.5,
    }


@pytest.fixture()
def queue_app(make_app, queue_settings):
    return make_app(**queue_settings)


@pytest.fixture()
def workers(queue_settings, tmp_path) -> Iterator[Any]:
    started: list[Worker] = []

    def start(queue: str = "emails") -> Worker:
        worker = Worker(queue, worker_env(queue_settings), tmp_path / f"worker-{len(started)}.log").start()
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


def _queue_mail(app, to: str) -> str:
    with app.app_context():
        with unit_of_work():
            job = queue_email(to, "test_message", {"address": to})
        return job.id


def _job(app, job_id: str) -> Job:
    with app.app_context():
        job = db.session.get(Job, job_id)
        db.session.expunge(job)
        return job


def _wait_for_status(app, job_id: str, status: JobStatus, timeout: float = 30) -> Job:
    return wait_until(
        lambda: (job := _job(app, job_id)).status == status and job, timeout, message=f"job {job_id} to reach {status}"
    )


def test_an_email_job_goes_through_huey_to_smtp_and_succeeds(queue_app, smtp, workers):
    job_id = _queue_mail(queue_app, "someone@example.com")
    assert _job(queue_app, job_id).status == JobStatus.queued
    worker = workers("emails")
    [delivery] = smtp.wait_for_deliveries(1)
    assert delivery.recipients == ["someone@example.com"]
    assert delivery.message["Subject"] == "Hearth test message"
    # Stable across re-runs of the same job, so receivers can drop a duplicate delivery.
    assert delivery.message["Message-ID"] == f"<{job_id}@localhost>"
    job = _wait_for_status(queue_app, job_id, JobStatus.succeeded)
    assert job.attempts == 1 and job.error is None and job.duration_ms > 0
    assert job.args_summary == {"to": "someone@example.com", "template": "test_message"}
    finished = wait_until(
        lambda: [line for line in worker.log_lines() if line.get("event") == "job_finished"], message="job log line"
    )
    line = finished[0]
    assert line["job_id"] == job_id and line["queue"] == "emails" and line["outcome"] == "succeeded"
    assert line["duration_ms"] > 0 and "timestamp" in line
    assert any(entry.get("event") == "job_started" and entry.get("job_id") == job_id for entry in worker.log_lines())


def test_a_failing_job_retries_with_jittered_exponential_backoff_then_fails(queue_app, smtp, workers):
    job_id = _queue_mail(queue_app, "defer-me@example.com")  # 450: try again later
    worker = workers("emails")
    job = _wait_for_status(queue_app, job_id, JobStatus.failed, timeout=45)
    assert job.attempts == 4  # the emails queue: 3 retries
    # People read a sentence; the exception is kept, with its traceback, for the job's page.
    assert job.error == "The mail server refused the recipient's address."
    assert "smtplib.SMTPRecipientsRefused" in job.traceback and "TaskFailed" in job.traceback
    outcomes = [
        line for line in worker.log_lines() if line.get("event") == "job_finished" and line.get("job_id") == job_id
    ]
    assert [line["outcome"] for line in outcomes] == ["retrying", "retrying", "retrying", "failed"]
    delays = [line["retry_in"] for line in outcomes[:3]]
    # Exponential with equal jitter: retry n waits between half and all of base·2^(n-1).
    for delay, nominal in zip(delays, (BACKOFF_BASE, BACKOFF_BASE * 2, BACKOFF_BASE * 4), strict=True):
        assert nominal / 2 <= delay <= nominal
    attempts = [at for address, at in smtp.rcpt_attempts if address == "defer-me@example.com"]
    assert len(attempts) == 4
    for gap, delay in zip((b - a for a, b in pairwise(attempts)), delays, strict=True):
        assert gap >= delay - 0.05, "a retry ran before its backoff delay"


def test_a_permanent_refusal_fails_at_once_without_retries(queue_app, smtp, workers):
    job_id = _queue_mail(queue_app, "reject-me@example.com")  # 550: the mailbox does not exist
    worker = workers("emails")
    job = _wait_for_status(queue_app, job_id, JobStatus.failed, timeout=30)
    assert job.attempts == 1 and job.error == "The mail server refused the recipient's address."
    assert "smtplib.SMTPRecipientsRefused" in job.traceback and "PermanentFailure" in job.traceback
    assert [address for address, _at in smtp.rcpt_attempts] == ["reject-me@example.com"]
    finished = wait_until(
        lambda: [line for line in worker.log_lines() if line.get("event") == "job_finished"], message="job log line"
    )
    assert [(line["job_id"], line["outcome"]) for line in finished] == [(job_id, "failed")]


def test_a_worker_killed_mid_job_is_recovered_by_the_sweeper(queue_app, smtp, workers):
    job_id = _queue_mail(queue_app, "slow@example.com")
    first = workers("emails")
    assert smtp.slow_started.wait(30), "the first attempt never reached the SMTP server"
    running = _wait_for_status(queue_app, job_id, JobStatus.running)
    assert running.lease_owner and str(first.process.pid) in running.lease_owner
    first.kill()
    assert not pid_alive(first.process.pid)
    smtp.release_slow.set()
    # Nothing finishes a job whose worker died: it stays `running` until its lease expires.
    with queue_app.app_context():
        assert jobs_service.sweep().requeued == []
    wait_until(
        lambda: _job(queue_app, job_id).lease_expires_at < utcnow(),
        timeout=LEASE_SECONDS * 4,
        message="the lease to expire",
    )
    with queue_app.app_context():
        report = jobs_service.sweep()
    assert report.requeued == [job_id]
    assert _job(queue_app, job_id).status == JobStatus.queued
    workers("emails")
    job = _wait_for_status(queue_app, job_id, JobStatus.succeeded)
    assert job.attempts == 2
    assert [d.recipients for d in smtp.deliveries] == [["slow@example.com"]]


def test_a_live_worker_keeps_its_lease_with_heartbeats(queue_app, smtp, workers):
    job_id = _queue_mail(queue_app, "slow@example.com")
    workers("emails")
    assert smtp.slow_started.wait(30)
    first_lease = _wait_for_status(queue_app, job_id, JobStatus.running).lease_expires_at
    wait_until(
        lambda: _job(queue_app, job_id).lease_expires_at > first_lease + timedelta(seconds=0.3),
        timeout=LEASE_SECONDS * 3,
        message="a heartbeat to extend the lease",
    )
    with queue_app.app_context():
        assert jobs_service.sweep().requeued == []
    smtp.release_slow.set()


def test_jobs_huey_never_received_are_resent_by_the_sweeper(queue_app, smtp, workers, monkeypatch):
    # The broker is down when the job is committed: the row stays, nothing is lost.
    monkeypatch.setattr(queue_app.extensions[QUEUES_KEY], "dispatch", _broken_dispatcher)
    job_id = _queue_mail(queue_app, "later@example.com")
    monkeypatch.undo()
    assert _job(queue_app, job_id).status == JobStatus.queued
    workers("emails")
    wait_until(
        lambda: _job(queue_app, job_id).enqueued_at < utcnow() - timedelta(seconds=0.5),
        timeout=5,
        message="the grace period",
    )
    with queue_app.app_context():
        assert jobs_service.sweep().requeued == [job_id]
    assert _wait_for_status(queue_app, job_id, JobStatus.succeeded).attempts == 1
    assert [d.recipients for d in smtp.wait_for_deliveries(1)] == [["later@example.com"]]


def _broken_dispatcher(job_id: str, task_name: str, delay: float | None) -> None:
    raise ConnectionError("broker unreachable")


def test_a_sync_consumer_runs_a_scheduled_periodic_run_as_a_durable_job(queue_app, smtp, workers):
    """What a `sync` scheduler's firing queues, a real `sync` worker runs under the job's lease."""
    with queue_app.app_context():
        assert enqueue_scheduled("cleanup_pending_uploads", utcnow())
        job_id = db.session.scalars(select(Job.id).where(Job.task == "tasks.maintenance.cleanup_pending_uploads")).one()
    worker = workers("sync")
    job = _wait_for_status(queue_app, job_id, JobStatus.succeeded)
    assert (job.queue, job.attempts, job.max_attempts) == ("sync", 1, 6)
    with queue_app.app_context():
        assert db.session.get(PeriodicRun, "cleanup_pending_uploads").last_status == "succeeded"
    finished = [line for line in worker.log_lines() if line.get("event") == "job_finished"]
    assert [line["job_id"] for line in finished if line.get("job_id") == job_id] == [job_id]
