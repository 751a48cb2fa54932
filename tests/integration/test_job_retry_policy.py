"""How a failed attempt decides what comes next (app.jobs.service.record_failure): jittered
exponential backoff, a task's PermanentFailure (no retry) and RetryLater (not before
`retry_after`, capped), and `on_final_failure` running whenever the job ends `failed`."""

from __future__ import annotations

import random
import uuid
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import update

from app.core.database import utcnow
from app.core.unit_of_work import unit_of_work
from app.extensions import db
from app.jobs import service as jobs_service
from app.jobs.models import Job, JobStatus
from app.jobs.queues import QUEUES, QUEUES_KEY
from app.jobs.service import PermanentFailure, RetryLater, TaskFailed
from tasks.runtime import DurableTask, run_attempt


@pytest.fixture()
def settings(app):
    return app.extensions["hearth.settings"]


@pytest.fixture(autouse=True)
def quiet_dispatch(app, monkeypatch):
    """Jobs stay in the table, huey gets nothing (the test runs each attempt itself)."""
    monkeypatch.setattr(app.extensions[QUEUES_KEY], "dispatch", lambda *args: None)


def _running(app, queue: str = "sync", attempts: int = 1) -> Job:
    """A job whose attempt `attempts` is running, held by "worker-1" (expunged: read only)."""
    with app.app_context():
        job = Job(
            id=str(uuid.uuid4()),
            queue=queue,
            task="tests.deliver",
            payload={},
            args_summary={},
            status=JobStatus.running,
            attempts=attempts,
            max_attempts=QUEUES[queue].max_attempts,
            lease_owner="worker-1",
        )
        db.session.add(job)
        db.session.commit()
        db.session.refresh(job)
        db.session.expunge(job)
        return job


def _fail(app, job: Job, error: BaseException, rand=lambda: 0.5) -> tuple[jobs_service.AttemptOutcome, Job]:
    with app.app_context():
        outcome = jobs_service.record_failure(job, "worker-1", error, 5.0, rand=rand)
        row = db.session.get(Job, job.id)
        db.session.expunge(row)
        return outcome, row


# Jitter ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("fraction", "share"), [(0.0, 0.5), (0.5, 0.75), (0.999, 0.9995)])
def test_exponential_backoff_has_equal_jitter_between_half_and_the_whole_delay(fraction, share):
    nominal = QUEUES["sync"].backoff_seconds(3, base=10, cap=3600)
    assert QUEUES["sync"].jittered_backoff(3, base=10, cap=3600, fraction=fraction) == pytest.approx(nominal * share)


def test_flat_queues_keep_their_fixed_delay_and_the_cap_still_holds():
    assert QUEUES["uploads"].jittered_backoff(2, base=10, cap=300, fraction=0.0) == 10
    assert QUEUES["sync"].jittered_backoff(20, base=10, cap=300, fraction=0.999) <= 300


def test_a_retry_waits_the_jittered_backoff(app, settings):
    base = settings.jobs_backoff_base_seconds
    for fraction, expected in ((0.0, base / 2), (1.0, base)):
        job = _running(app)
        before = utcnow()
        outcome, row = _fail(app, job, TaskFailed("The receiver answered 503."), rand=lambda f=fraction: f)
        assert (outcome.status, row.status, outcome.retry_in) == (JobStatus.retrying, JobStatus.retrying, expected)
        assert before + timedelta(seconds=expected - 1) <= row.next_attempt_at <= utcnow() + timedelta(seconds=expected)


def test_jobs_failing_together_retry_at_different_times(app, settings):
    source = random.Random(15)  # a seeded source: the test is the same on every run
    delays = {
        _fail(app, _running(app, attempts=2), TaskFailed("down"), rand=source.random)[0].retry_in for _ in range(20)
    }
    nominal = QUEUES["sync"].backoff_seconds(2, settings.jobs_backoff_base_seconds, settings.jobs_backoff_max_seconds)
    assert len(delays) > 15, "the retries of jobs that failed together were not spread out"
    assert all(nominal / 2 <= delay <= nominal for delay in delays)


# PermanentFailure and RetryLater ----------------------------------------------------------------


def test_a_permanent_failure_fails_the_job_at_once_with_attempts_left(app):
    job = _running(app, attempts=1)
    outcome, row = _fail(app, job, PermanentFailure("The receiver answered 410 Gone."))
    assert outcome.status == row.status == JobStatus.failed and outcome.retry_in is None
    assert (row.attempts, row.max_attempts, row.error) == (1, 6, "The receiver answered 410 Gone.")
    assert row.next_attempt_at is None and row.finished_at is not None


def test_a_plain_task_failure_with_attempts_left_is_retried(app):
    outcome, row = _fail(app, _running(app, attempts=1), TaskFailed("The receiver answered 410 Gone."))
    assert outcome.status == row.status == JobStatus.retrying


@pytest.mark.parametrize(
    ("retry_after", "expected"),
    [
        (120.0, 120.0),  # longer than the backoff: what the task asked
        (1.0, None),  # shorter: the queue's backoff still applies
        (None, None),
        (10**7, "cap"),  # a day or more: capped at JOBS_BACKOFF_MAX_SECONDS
    ],
)
def test_retry_later_waits_at_least_what_was_asked_within_the_cap(app, settings, retry_after, expected):
    backoff = QUEUES["sync"].jittered_backoff(
        1, settings.jobs_backoff_base_seconds, settings.jobs_backoff_max_seconds, 0.5
    )
    wanted = {None: backoff, "cap": settings.jobs_backoff_max_seconds}.get(expected, expected)
    outcome, row = _fail(app, _running(app, attempts=1), RetryLater("Rate limited.", retry_after=retry_after))
    assert outcome.status == row.status == JobStatus.retrying
    assert outcome.retry_in == pytest.approx(wanted)


def test_retry_later_without_attempts_left_fails_the_job(app):
    outcome, row = _fail(app, _running(app, attempts=6), RetryLater("Rate limited.", retry_after=30))
    assert outcome.status == row.status == JobStatus.failed


def test_retry_after_is_never_negative():
    assert RetryLater("Rate limited.", retry_after=-5).retry_after == 0.0
    assert isinstance(RetryLater("x"), TaskFailed) and isinstance(PermanentFailure("x"), TaskFailed)


# Through the worker: on_final_failure ---------------------------------------------------------


class _Task:
    """A durable task on `sync` that raises the next of `errors` on each attempt, and records
    the calls of its on_final_failure."""

    def __init__(self, *errors: BaseException | None):
        self.errors = list(errors)
        self.given_up: list[dict[str, Any]] = []
        self.durable = DurableTask("tests.deliver", "sync", self.run, lambda payload: {}, self.give_up)

    def run(self, *, job_id: str, target: str) -> None:
        error = self.errors.pop(0)
        if error is not None:
            raise error

    def give_up(self, **arguments: Any) -> None:
        self.given_up.append(arguments)


def _queued(app, task: _Task) -> str:
    with app.app_context(), unit_of_work():
        return jobs_service.enqueue(task.durable.name, "sync", {"target": "https://example.com/hook"}).id


def _attempt(app, task: _Task, job_id: str) -> Job:
    with app.app_context():
        db.session.execute(update(Job).where(Job.id == job_id).values(next_attempt_at=None))
        db.session.commit()
    run_attempt(app, task.durable, job_id)
    with app.app_context():
        row = db.session.get(Job, job_id)
        db.session.expunge(row)
        return row


def test_on_final_failure_runs_for_a_permanent_failure_on_the_first_attempt(app):
    task = _Task(PermanentFailure("The receiver answered 410 Gone."))
    job = _attempt(app, task, _queued(app, task))
    assert (job.status, job.attempts) == (JobStatus.failed, 1)
    assert task.given_up == [{"error": "The receiver answered 410 Gone.", "target": "https://example.com/hook"}]


def test_on_final_failure_waits_while_a_retry_later_has_attempts_left(app):
    task = _Task(RetryLater("Rate limited.", retry_after=60), None)
    job_id = _queued(app, task)
    job = _attempt(app, task, job_id)
    assert job.status == JobStatus.retrying and job.next_attempt_at >= utcnow() + timedelta(seconds=55)
    assert task.given_up == []
    assert _attempt(app, task, job_id).status == JobStatus.succeeded
    assert task.given_up == []


# Outages of what a task depends on --------------------------------------------------------------


def _storage_down() -> TaskFailed:
    from app.errors import StorageUnavailable

    try:
        raise StorageUnavailable("File storage can’t be reached at the moment.")
    except StorageUnavailable as outage:
        try:
            raise TaskFailed("The file could not be stored.") from outage
        except TaskFailed as wrapped:
            return wrapped


def test_a_storage_outage_on_the_last_attempt_is_retried_after_its_retry_after_without_spending_a_retry(app):
    last = QUEUES["reports"].max_attempts
    job = _running(app, "reports", attempts=last)
    outcome, row = _fail(app, job, _storage_down())
    assert outcome.status == JobStatus.retrying and row.status == JobStatus.retrying
    assert outcome.retry_in == 30  # StorageUnavailable's Retry-After, above the queue's 10 s
    assert row.max_attempts == last + 1 and row.attempts == last
    # The same failure for any other reason ends the job: the retries are spent.
    job = _running(app, "reports", attempts=last)
    outcome, row = _fail(app, job, TaskFailed("The renderer failed."))
    assert outcome.status == JobStatus.failed and row.max_attempts == last


def test_an_unreachable_database_is_an_outage_too_but_a_permanent_failure_never_is(app):
    from sqlalchemy.exc import OperationalError

    class ConnectionRefused(Exception):
        sqlstate = None

    down = OperationalError("SELECT 1", {}, ConnectionRefused("connection refused"))
    assert jobs_service.outage_retry_after(down) == jobs_service.OUTAGE_RETRY_SECONDS
    job = _running(app, "uploads", attempts=QUEUES["uploads"].max_attempts)
    outcome, _row = _fail(app, job, down)
    assert outcome.status == JobStatus.retrying
    job = _running(app, "uploads", attempts=1)
    try:
        raise PermanentFailure("Gone.") from _storage_down()
    except PermanentFailure as permanent:
        outcome, _row = _fail(app, job, permanent)
    assert outcome.status == JobStatus.failed


def test_an_outage_stops_giving_attempts_back_an_hour_after_the_job_was_created(app):
    last = QUEUES["reports"].max_attempts
    job = _running(app, "reports", attempts=last)
    with app.app_context():
        db.session.execute(
            update(Job).where(Job.id == job.id).values(created_at=utcnow() - jobs_service.OUTAGE_PATIENCE)
        )
        db.session.commit()
        job = db.session.get(Job, job.id)
        db.session.expunge(job)
    outcome, row = _fail(app, job, _storage_down())
    assert outcome.status == JobStatus.failed and row.max_attempts == last
