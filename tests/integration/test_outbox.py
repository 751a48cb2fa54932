"""The transactional outbox: a job exists, and is sent, only if its unit of work commits."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.audit.service import record
from app.core.unit_of_work import OutsideUnitOfWork, unit_of_work
from app.extensions import db
from app.jobs.models import Job, JobStatus
from app.jobs.queues import QUEUES_KEY
from app.mail.service import queue_email
from app.users.models import User
from tests.conftest import count_rows


def _recording_dispatcher(calls):
    def dispatch(job_id, task_name, delay):
        calls.append((job_id, task_name, delay))

    return dispatch


def test_nothing_is_sent_before_commit_and_everything_after(app, monkeypatch):
    calls = []
    monkeypatch.setattr(app.extensions[QUEUES_KEY], "dispatch", _recording_dispatcher(calls))
    with app.app_context():
        with unit_of_work() as session:
            job_id = queue_email("a@example.com", "test_message", {"address": "a@example.com"}).id
            session.flush()
            assert calls == []
        assert calls == [(job_id, "tasks.emails.send_email", None)]


def test_a_rolled_back_unit_of_work_leaves_no_job_and_sends_nothing(app, monkeypatch):
    calls = []
    monkeypatch.setattr(app.extensions[QUEUES_KEY], "dispatch", _recording_dispatcher(calls))
    with app.app_context():
        with pytest.raises(LookupError, match="refused"), unit_of_work() as session:  # noqa: PT012
            session.add(User(email="r@example.com", display_name="R", password_hash="x"))
            queue_email("r@example.com", "test_message", {"address": "r@example.com"})
            raise LookupError("refused after queueing")
        with unit_of_work():
            pass  # a later, unrelated unit's commit must not send the dropped job
    assert calls == []
    assert count_rows(app, "jobs") == 0 and count_rows(app, "users") == 0


def test_the_job_row_is_written_in_the_same_transaction_as_the_change(app, monkeypatch):
    monkeypatch.setattr(app.extensions[QUEUES_KEY], "dispatch", _recording_dispatcher([]))
    with app.app_context(), unit_of_work() as session:
        session.add(User(email="t@example.com", display_name="T", password_hash="x"))
        queue_email("t@example.com", "test_message", {"address": "t@example.com"})
    assert count_rows(app, "jobs") == 1 and count_rows(app, "users") == 1


def test_a_job_or_an_audit_row_outside_any_unit_of_work_is_refused_not_lost(app):
    with app.app_context():
        with pytest.raises(OutsideUnitOfWork):
            queue_email("lost@example.com", "test_message", {"address": "lost@example.com"})
        with pytest.raises(OutsideUnitOfWork):
            record("lost_event")
    assert count_rows(app, "jobs") == 0 and count_rows(app, "audit_events") == 0


def test_jobs_enqueued_by_a_request_carry_its_request_id(make_app, app, captured_logs):
    test_app = make_app()

    @test_app.get("/_enqueue")
    def enqueue():
        with unit_of_work():
            queue_email("q@example.com", "test_message", {"address": "q@example.com"})
        return "queued"

    test_app.test_client().get("/_enqueue", headers={"X-Request-ID": "req-outbox-12345"})
    with app.app_context():
        job = db.session.scalars(select(Job)).one()
        assert job.request_id == "req-outbox-12345"
        assert job.max_attempts == 4
    # ...and so does every log line of the job, wherever it runs.
    assert all(line["request_id"] == "req-outbox-12345" for line in captured_logs.events("job_finished"))
    assert captured_logs.events("job_finished")


def test_immediate_mode_runs_the_job_inline_for_tests_that_do_not_test_the_queue(app, tmp_path):
    # JOBS_IMMEDIATE with no SMTP_URL: the email job runs at commit and succeeds without a broker.
    with app.app_context():
        with unit_of_work():
            job_id = queue_email("i@example.com", "test_message", {"address": "i@example.com"}).id
        db.session.expire_all()
        assert db.session.get(Job, job_id).status == JobStatus.succeeded
