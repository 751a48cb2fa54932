"""`flask demo seed`: every admin page has data, a second run adds nothing, production and
staging refuse it, and no demo job is ever handed to huey (those a sweeper may send run harmlessly)."""

from __future__ import annotations

import re
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from app.audit.models import AuditEvent
from app.core.database import utcnow
from app.extensions import db
from app.jobs import service as jobs_service
from app.jobs.models import FINAL_STATUSES, Job, JobStatus, PeriodicRun
from app.jobs.queues import QUEUES_KEY
from app.rbac.models import Role
from app.storage import get_storage
from app.uploads.models import Upload, UploadStatus
from app.users.models import User
from app.users.passwords import verify_password

DEMO = "@demo.hearth.test"
PASSWORD_LINE = re.compile(r"\(shown only now\): (\S+)")


@pytest.fixture()
def demo_app(make_app, app, tmp_path):
    """The session's database, with storage of its own so the demo's files are this test's."""
    return make_app(storage_local_path=str(tmp_path / "objects"))


def seed(application, *args: str) -> str:
    result = application.test_cli_runner().invoke(args=["demo", "seed", *args])
    assert result.exit_code == 0, result.output
    return result.output


def all_rows(application, model, *where):
    with application.app_context():
        rows = list(db.session.scalars(select(model).where(*where)))
        db.session.expunge_all()
        return rows


def demo_users(application) -> list[User]:
    with application.app_context():
        users = list(db.session.scalars(select(User).where(User.email.like(f"%{DEMO}")).order_by(User.id)))
        for user in users:
            _ = user.role_names  # loaded before the session goes
        db.session.expunge_all()
        return users


def sizes(application) -> dict[str, int]:
    with application.app_context():
        return {
            model.__tablename__: db.session.scalar(select(db.func.count()).select_from(model))
            for model in (User, Role, Upload, Job, AuditEvent, PeriodicRun)
        }


def test_the_seed_fills_users_roles_uploads_jobs_and_audit(demo_app):
    from app.users.management import counts_by_status, signups_since

    output = seed(demo_app)

    users = demo_users(demo_app)
    assert len(users) == 40
    held = Counter(role for user in users for role in user.role_names)
    assert {"admin", "manager", "user", "viewer", "support"} <= set(held)
    [support] = all_rows(demo_app, Role, Role.name == "support")
    assert {p.name for p in support.permissions} == {"users:read", "jobs:read"}
    with demo_app.app_context():
        statuses = counts_by_status()
        assert statuses["active"] and statuses["disabled"] and statuses["deleted"] and statuses["unverified"]
        assert signups_since(7) > 0
    assert "support 4" in output and "admin 2" in output

    uploads = all_rows(demo_app, Upload)
    assert {upload.status for upload in uploads} == set(UploadStatus)
    assert all(upload.key.startswith("demo/") for upload in uploads)
    assert all(upload.error for upload in uploads if upload.status == UploadStatus.rejected)
    assert all(upload.error.startswith("Processing failed: ") for upload in uploads if upload.status == "failed")
    with demo_app.app_context():
        storage = get_storage()
        stored = [upload for upload in uploads if upload.size is not None]
        assert stored and all(storage.head(upload.key).size == upload.size for upload in stored)
        thumbnails = [upload for upload in uploads if upload.status == UploadStatus.ready and upload.thumbnail_key]
        assert thumbnails and all(storage.head(upload.thumbnail_key) for upload in thumbnails)
    assert any(user.avatar_upload_id for user in users)

    jobs = all_rows(demo_app, Job)
    assert {job.status for job in jobs} == set(JobStatus)
    assert {"emails", "uploads", "sync"} <= {job.queue for job in jobs}
    failed = [job for job in jobs if job.status in (JobStatus.failed, JobStatus.retrying)]
    for job in failed:
        assert job.traceback.startswith("Traceback (most recent call last):\n  File ")
        # A sentence for people; the exception that said it, with its cause, in the traceback.
        assert job.error and job.traceback.splitlines()[-1].endswith(f": {job.error}")
        assert "0x" not in job.error and "Error:" not in job.error
        assert job.attempts == job.max_attempts if job.status == JobStatus.failed else job.attempts < job.max_attempts
    running = [job for job in jobs if job.status == JobStatus.running]
    assert all(job.started_at and job.lease_expires_at > utcnow() for job in running)
    assert any(job.progress for job in running)
    two_weeks_ago = utcnow() - timedelta(days=14, minutes=1)
    assert all(job.created_at >= two_weeks_ago for job in jobs)
    assert all(job.payload == {} for job in jobs if job.status == JobStatus.succeeded)
    assert all(job.user_id for job in jobs)

    assert {run.name for run in all_rows(demo_app, PeriodicRun)} == {"sweep_jobs", "cleanup_pending_uploads"}

    events = all_rows(demo_app, AuditEvent)
    names = {event.event for event in events}
    assert {"signup", "login_succeeded", "roles_changed", "user_deleted", "upload_requested", "job_revoked"} <= names
    assert any(event.target == "role:support" and event.event == "role_created" for event in events)
    job_ids = {job.id for job in jobs}
    revoked = [event for event in events if event.event == "job_revoked"]
    assert revoked and all(event.target.removeprefix("job:") in job_ids for event in revoked)
    changes = [event for event in events if event.event == "roles_changed"]
    assert all(event.actor_user_id and event.data["before"] != event.data["after"] for event in changes)


def test_every_demo_account_shares_the_one_printed_password(demo_app):
    output = seed(demo_app, "--users", "6")
    [password] = PASSWORD_LINE.findall(output)
    assert output.count(password) == 1
    users = demo_users(demo_app)
    assert len({user.password_hash for user in users}) == 1
    assert verify_password(users[0].password_hash, password)
    admin_email = re.search(r"Sign in as: admin (\S+?),", output).group(1)
    tokens = demo_app.test_client().post("/api/v1/auth/token", json={"email": admin_email, "password": password})
    assert tokens.status_code == 200, tokens.json


def test_a_second_run_adds_nothing_and_a_larger_one_only_tops_up(demo_app):
    seed(demo_app, "--users", "8")
    before = sizes(demo_app)
    first_users = demo_users(demo_app)

    again = seed(demo_app, "--users", "8")
    assert "nothing added" in again and "shown only now" not in again
    assert sizes(demo_app) == before

    more = seed(demo_app, "--users", "11")
    assert "shown only now" not in more  # the new accounts get the password printed the first time
    users = demo_users(demo_app)
    assert len(users) == 11 and len({user.email for user in users}) == 11
    assert {user.password_hash for user in users} == {first_users[0].password_hash}
    after = sizes(demo_app)
    assert after["roles"] == before["roles"] and after["periodic_runs"] == before["periodic_runs"]
    assert after["uploads"] > before["uploads"] and after["jobs"] > before["jobs"]


def test_the_same_seed_gives_the_same_demo(demo_app, make_app, new_database, tmp_path):
    from flask_migrate import upgrade

    other = make_app(database_url=new_database(), storage_local_path=str(tmp_path / "other"))
    with other.app_context():
        upgrade()
    for application in (demo_app, other):
        seed(application, "--users", "12")

    def shape(application):
        users = demo_users(application)
        uploads = Counter((u.status, u.filename) for u in all_rows(application, Upload))
        jobs = Counter((j.task, j.status) for j in all_rows(application, Job))
        return [(u.email, u.role_names, u.status) for u in users], uploads, jobs

    assert shape(demo_app) == shape(other)
    with other.app_context():
        db.engine.dispose()


@pytest.fixture()
def production_like(make_app, app):
    """Apps configured like production or staging, on services that do not exist: the refusal
    must come before anything connects."""

    def make(app_env: str):
        return make_app(
            app_env=app_env,
            database_url="postgresql://127.0.0.1:1/nowhere",
            redis_url="redis://127.0.0.1:1/0",
            smtp_url="smtp://127.0.0.1:1",
            public_url="https://hearth.example.com",
        )

    return make


@pytest.mark.parametrize("app_env", ["production", "staging"])
def test_production_and_staging_refuse_with_a_clear_message(production_like, app, app_env):
    result = production_like(app_env).test_cli_runner().invoke(args=["demo", "seed"])
    assert result.exit_code == 1
    assert f"Refusing to seed demo data with APP_ENV={app_env}" in result.output
    assert "development and test only" in result.output


def test_the_service_refuses_too(production_like):
    from app.demo.seed import DemoSeedRefused, seed_demo

    with production_like("production").app_context(), pytest.raises(DemoSeedRefused):
        seed_demo(3)


def test_no_demo_job_is_handed_to_huey(demo_app, monkeypatch):
    sent = []
    monkeypatch.setattr(demo_app.extensions[QUEUES_KEY], "dispatch", lambda job_id, task, delay: sent.append(job_id))
    seed(demo_app, "--users", "10")
    assert sent == []
    jobs = all_rows(demo_app, Job)
    assert any(job.status == JobStatus.queued for job in jobs)  # in immediate mode, a sent job would have run


def test_a_sweeper_sending_the_demo_jobs_later_runs_them_harmlessly(demo_app):
    seed(demo_app, "--users", "20")
    waiting = [job for job in all_rows(demo_app, Job) if job.status not in FINAL_STATUSES]
    assert {job.status for job in waiting} == {JobStatus.queued, JobStatus.running, JobStatus.retrying}
    with demo_app.app_context():
        # Hours later: every queued job is overdue, every lease expired, every retry due.
        long_ago = utcnow() - timedelta(hours=2)
        db.session.execute(
            update(Job)
            .where(Job.id.in_([job.id for job in waiting]))
            .values(enqueued_at=long_ago, next_attempt_at=long_ago, lease_expires_at=long_ago)
        )
        db.session.commit()
        report = jobs_service.sweep()  # in immediate mode each re-sent job runs at once
    assert set(report.requeued) == {job.id for job in waiting}
    after = {job.id: job for job in all_rows(demo_app, Job)}
    assert {after[job.id].status for job in waiting} == {JobStatus.succeeded}
    processed = [job.payload["upload_id"] for job in waiting if job.task == "tasks.uploads.process_upload"]
    uploads = all_rows(demo_app, Upload, Upload.id.in_(processed))
    assert uploads and {upload.status for upload in uploads} == {UploadStatus.ready}
    emails = [job for job in waiting if job.task == "tasks.emails.send_email"]
    assert emails and all(job.payload["to"].endswith(DEMO) for job in emails)
    assert {job.payload["template"] for job in emails} == {"test_message"}
