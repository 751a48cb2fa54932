"""One display state per job and per upload (app.jobs.management.job_state, the Upload model's
`status_label` / `shown_error`), so no two places on a page contradict each other: a retried
job reads as a fresh pending job, a scheduled retry shows no stale progress and no finish
time, errors are sentences for people with the exception kept for the job's own page, and the
words for statuses are the filters' words."""

from __future__ import annotations

import logging
import re
import uuid
from datetime import timedelta

import pytest

from app.core.database import utcnow
from app.core.unit_of_work import unit_of_work
from app.errors import Conflict
from app.extensions import db
from app.jobs import management, periodic
from app.jobs import service as jobs_service
from app.jobs.management import STATUS_LABELS, job_state
from app.jobs.models import FINAL_STATUSES, Job, JobStatus
from app.jobs.queues import QUEUES_KEY
from app.storage import get_storage
from app.uploads import sandbox
from app.uploads.models import Upload, UploadStatus
from app.users.models import User
from tests.integration.test_admin_pages import post, toasts
from tests.support import csrf_token

TECHNICAL = "UnidentifiedImageError: cannot identify image file <_io.BytesIO object at 0x7f3a2b1c9d80>"


@pytest.fixture()
def admin(app, people, auth):
    return auth(app.test_client()).signed_in("admin@example.com")


def _stale_failure(app, **fields) -> str:
    """A failed upload-processing job as its last attempt left it: progress at 40 %, timings,
    a duration, the error and its traceback."""
    now = utcnow()
    values = {
        "id": str(uuid.uuid4()),
        "queue": "emails",
        "task": "tasks.emails.send_email",
        "payload": {"to": "j@example.com", "template": "test_message", "context": {"address": "j@example.com"}},
        "args_summary": {"to": "j@example.com", "template": "test_message"},
        "status": JobStatus.failed,
        "attempts": 4,
        "max_attempts": 4,
        "error": "The mail server closed the connection before the message was sent.",
        "traceback": "Traceback (most recent call last):\n  ...\nsmtplib.SMTPServerDisconnected: closed\n",
        "progress": 40,
        "progress_message": "stripping metadata",
        "started_at": now - timedelta(seconds=3),
        "finished_at": now - timedelta(seconds=1),
        "duration_ms": 2100.0,
    }
    with app.app_context():
        job = Job(**{**values, **fields})
        db.session.add(job)
        db.session.commit()
        return job.id


def _job(app, job_id) -> Job:
    with app.app_context():
        job = db.session.get(Job, job_id)
        db.session.expunge(job)
        return job


# The retry ------------------------------------------------------------------------------------


def test_a_retried_job_is_a_fresh_pending_job_on_every_page(app, admin, monkeypatch):
    monkeypatch.setattr(app.extensions[QUEUES_KEY], "dispatch", lambda *args: None)  # stays pending
    job_id = _stale_failure(app)
    row = admin.post(
        f"/admin/jobs/{job_id}/retry", headers={"HX-Request": "true", "X-CSRFToken": csrf_token(admin, "/")}
    )
    assert row.status_code == 200
    # The retry resets what belonged to the earlier attempts (the audit row keeps the failure).
    job = _job(app, job_id)
    assert (job.status, job.attempts, job.error, job.traceback, job.progress) == ("queued", 0, None, None, None)
    assert (job.started_at, job.finished_at, job.duration_ms, job.next_attempt_at) == (None, None, None, None)
    assert "Job " + job_id[:8] + " is queued again." in row.headers["HX-Trigger"]

    detail = admin.get(f"/admin/jobs/{job_id}").get_data(as_text=True)
    panel = admin.get(f"/admin/jobs/{job_id}?fragment=status").get_data(as_text=True)
    listed = admin.get(f"/admin/jobs?q={job_id}").get_data(as_text=True)
    listed_row = re.search(rf'<tr id="job-{job_id}".*?</tr>', listed, re.S).group(0)
    for html in (detail, panel, listed_row, row.get_data(as_text=True)):
        assert 'data-status="queued"' in html and ">Pending</span>" in html
        assert "Scheduled" not in html and "<progress" not in html and "40%" not in html
        assert "closed the connection" not in html and "Traceback" not in html
    for html in (detail, panel):
        assert "Waiting for a worker." in html and "0 of 4" in html
        assert "Finished" not in html and "took" not in html.lower() and "2.1 s" not in html


def test_after_a_failed_retry_the_job_is_scheduled_without_stale_progress_or_finish(app, admin, monkeypatch):
    monkeypatch.setattr(app.extensions[QUEUES_KEY], "dispatch", lambda *args: None)
    job_id = _stale_failure(app)
    post(admin, f"/admin/jobs/{job_id}/retry")
    with app.app_context():  # the next attempt runs, reports 40 %, and fails again
        job = jobs_service.start_attempt(job_id, "worker-1")
        jobs_service.report_progress(job_id, 40, "stripping metadata")
        try:
            raise OSError("connection reset by peer")
        except OSError as error:
            jobs_service.record_failure(job, "worker-1", error, 1234.5)
    job = _job(app, job_id)
    assert (job.status, job.attempts, job.progress) == ("retrying", 1, None)
    panel = admin.get(f"/admin/jobs/{job_id}?fragment=status").get_data(as_text=True)
    assert ">Scheduled</span>" in panel and "Attempt 1 of 4 failed; the next one is scheduled." in panel
    assert "<progress" not in panel and "Finished" not in panel and "Next attempt" in panel
    assert "Last attempt took</dt><dd>1.2 s" in panel
    assert "Last attempt failed:</strong>" in panel and "Unexpected error (OSError)." in panel
    assert "connection reset by peer" not in panel  # the exception is for the technical detail
    detail = admin.get(f"/admin/jobs/{job_id}").get_data(as_text=True)
    assert "OSError: connection reset by peer" in detail  # ... which the job's own page shows


@pytest.mark.parametrize("status", list(JobStatus))
def test_the_state_shows_each_detail_only_where_it_applies(app, status):
    job_id = _stale_failure(app, status=status, attempts=2, next_attempt_at=utcnow() + timedelta(minutes=1))
    with app.test_request_context():
        state = job_state(db.session.get(Job, job_id))
    assert state.label == STATUS_LABELS[status]
    assert state.attempts == "2 of 4"
    assert (state.progress is not None) == (status == JobStatus.running)
    assert (state.finished_at is not None) == (status in FINAL_STATUSES)
    assert (state.next_attempt_at is not None) == (status == JobStatus.retrying)
    assert (state.error is not None) == (status != JobStatus.succeeded)
    assert state.duration is None or status in (JobStatus.retrying, JobStatus.failed, JobStatus.succeeded)
    assert (state.retryable, state.revocable) == (status in management.RETRYABLE, status in management.REVOCABLE)


# One vocabulary ------------------------------------------------------------------------------


def test_the_list_filters_and_counts_use_the_same_words_for_a_status(app, admin):
    job_id = _stale_failure(app, status=JobStatus.retrying, next_attempt_at=utcnow() + timedelta(minutes=5))
    page = admin.get("/admin/jobs").get_data(as_text=True)
    row = re.search(rf'<tr id="job-{job_id}".*?</tr>', page, re.S).group(0)
    badge = re.search(r'class="badge[^"]*" data-status="retrying">.*?</svg>([^<]+)</span>', row, re.S).group(1)
    option = re.search(r'<option value="retrying"[^>]*>([^<]+)</option>', page).group(1)
    quick_filters = re.search(r'<p class="quick-filters">.*?</p>', page, re.S).group(0)
    quick = re.search(r'status=retrying"[^>]*>([^<]+)</a>', quick_filters).group(1)
    header = re.search(r'<table class="data-table queue-counts">.*?</thead>', page, re.S).group(0)
    assert badge == option == quick == "Scheduled" and ">Scheduled</th>" in header
    assert re.search(r'<option value="queued"[^>]*>Pending</option>', page)
    with app.app_context(), pytest.raises(Conflict, match="this one is scheduled"):
        management.retry(db.session.get(User, 1), db.session.get(Job, job_id))


def test_the_upload_kind_and_status_read_the_same_on_every_page(app, admin, people):
    with app.app_context():
        owner = people["admin"].id
        db.session.add(
            Upload(
                id="up-1",
                user_id=owner,
                kind="avatar",
                status=UploadStatus.ready,
                filename="me.png",
                content_type="image/png",
                declared_size=3_000_000,
                size=3_000_000,
                key="k/up-1",
            )
        )
        db.session.commit()
    pages = {
        "admin list": admin.get("/admin/uploads").get_data(as_text=True),
        "admin detail": admin.get("/admin/uploads/up-1").get_data(as_text=True),
        "user detail": admin.get(f"/admin/users/{owner}").get_data(as_text=True),
        "files": admin.get("/files/").get_data(as_text=True),
    }
    for name, html in pages.items():
        assert "Avatar" in html and ">avatar<" not in html, name
        assert "2.9 MB" in html and "KB" not in html, name
        assert re.search(r'data-status="ready">.*?</svg>Ready</span>', html, re.S), name
    for name in ("admin list", "files"):
        assert re.search(r'<option value="avatar"[^>]*>Avatar</option>', pages[name]), name
        assert re.search(r'<option value="uploaded"[^>]*>Uploaded</option>', pages[name]), name


def test_an_upload_being_processed_again_does_not_show_its_old_failure(app, admin, people):
    with app.app_context():
        for status in (UploadStatus.processing, UploadStatus.failed):
            db.session.add(
                Upload(
                    id=f"up-{status}",
                    user_id=people["admin"].id,
                    kind="document",
                    status=status,
                    filename=f"{status}.pdf",
                    content_type="application/pdf",
                    declared_size=10,
                    size=10,
                    key=f"k/{status}",
                    error="Processing failed: The file could not be read as a PDF.",
                )
            )
        db.session.commit()
    for path in ("/files/", "/admin/uploads"):
        html = admin.get(path).get_data(as_text=True)
        processing = re.search(r'<tr[^>]*data-status="processing".*?</tr>', html, re.S).group(0)
        failed = re.search(r'<tr[^>]*data-status="failed".*?</tr>', html, re.S).group(0)
        assert "Processing failed" not in processing and ">Processing</span>" in processing, path
        assert "Processing failed: The file could not be read as a PDF." in failed, path
    assert "Processing failed" not in admin.get("/admin/uploads/up-processing").get_data(as_text=True)


# Errors in words, the exception on the job's page ------------------------------------------


def test_failure_messages_are_sentences_for_people():
    class Explained(Exception):
        public_message = "The report template is missing."

    assert jobs_service.failure_message(Explained("KeyError: 'tpl' at 0x7f")) == "The report template is missing."
    assert jobs_service.failure_message(Conflict("The upload is gone.")) == "The upload is gone."
    assert jobs_service.failure_message(ValueError(TECHNICAL)) == "Unexpected error (ValueError)."
    assert jobs_service.failure_message(jobs_service.TaskFailed("The mail server did not answer in time.")) == (
        "The mail server did not answer in time."
    )


def test_an_unreadable_image_fails_with_a_sentence_and_keeps_the_exception_for_the_job_page(app, people):
    """What the dashboard showed as `UnidentifiedImageError: cannot identify image file <_io…>`."""
    from tasks.runtime import run_attempt
    from tasks.uploads import process_upload

    broken_png = b"\x89PNG\r\n\x1a\n" + b"\x00 not really a picture " * 64
    with app.app_context():
        upload = Upload(
            id=str(uuid.uuid4()),
            user_id=people["user"].id,
            kind="avatar",
            status=UploadStatus.uploaded,
            filename="broken.png",
            content_type="image/png",
            declared_size=len(broken_png),
            size=len(broken_png),
            key=f"users/{people['user'].id}/avatar/broken/broken.png",
        )
        db.session.add(upload)
        get_storage().put(upload.key, broken_png, "image/png")
        with unit_of_work():
            job = process_upload.enqueue(caused_by=people["user"].id, upload_id=upload.id)
        for _ in range(job.max_attempts):  # every attempt the queue allows, as if no backoff
            db.session.execute(db.update(Job).where(Job.id == job.id).values(next_attempt_at=None))
            db.session.commit()
            run_attempt(app, process_upload, job.id)
        db.session.expire_all()
        job, upload = db.session.get(Job, job.id), db.session.get(Upload, upload.id)
        assert job.status == JobStatus.failed and job.error == sandbox.UNREADABLE["image"]
        assert "ChildFailed" in job.traceback and "ProcessingError: The file could not be read as an image." in (
            job.traceback
        )
        assert upload.status == UploadStatus.failed
        assert upload.error == "Processing failed: The file could not be read as an image."
        assert "/tmp" not in job.error + upload.error and "0x" not in job.error + upload.error


def test_the_dashboard_shows_the_sentence_and_only_the_job_page_the_exception(app, admin):
    job_id = _stale_failure(app, traceback=f"Traceback (most recent call last):\n  ...\n{TECHNICAL}\n")
    dashboard = admin.get("/admin/").get_data(as_text=True)
    assert "The mail server closed the connection before the message was sent." in dashboard
    assert "BytesIO" not in dashboard and "Traceback" not in dashboard
    assert TECHNICAL.replace("<", "&lt;").replace(">", "&gt;") in admin.get(f"/admin/jobs/{job_id}").get_data(
        as_text=True
    )


# Bulk "Assign role" --------------------------------------------------------------------------


def test_bulk_assign_role_offers_no_default_role(app, admin, make_user):
    make_user(email="a@example.com")
    html = admin.get("/admin/users").get_data(as_text=True)
    picker = re.search(r'<select id="bulk-role" name="role"[^>]*>(.*?)</select>', html, re.S)
    assert 'data-required-when="assign_role"' in picker.group(0)
    options = re.findall(r'<option value="([^"]*)"( selected)?>', picker.group(1))
    assert options[0] == ("", " selected") and all(not selected for _, selected in options[1:])
    assert "admin" in {value for value, _ in options}


@pytest.mark.parametrize("role", ["", "   "])
def test_bulk_assign_role_without_a_role_is_refused_and_changes_nobody(app, admin, make_user, role):
    from tests.integration.test_admin_pages import _events, _user

    a = make_user(email="a@example.com")
    response = post(admin, "/admin/users/bulk", action="assign_role", role=role, user_ids=[str(a.id)])
    assert response.status_code == 302
    shown = toasts(admin.get(response.headers["Location"]).get_data(as_text=True))
    assert shown == {"error": ["Choose a role to assign."]}
    assert _user(app, "a@example.com").role_names == ["user"] and _events(app, "roles_changed") == []


# Feedback after htmx swaps -------------------------------------------------------------------


def test_a_flag_toggled_with_htmx_answers_with_a_toast_and_leaves_no_flash(app, admin):
    from app.flags import service as flags

    with app.app_context():
        actor = db.session.scalar(db.select(User).filter_by(email="admin@example.com"))
        flags.create_flag(actor, "new_dashboard", "", enabled=False)
    response = admin.post(
        "/admin/flags/new_dashboard/toggle",
        data={"csrf_token": csrf_token(admin, "/"), "enabled": "1"},
        headers={"HX-Request": "true"},
    )
    assert response.status_code == 200 and 'data-enabled="true"' in response.get_data(as_text=True)
    assert "Flag &#39;new_dashboard&#39; is on." in response.headers["HX-Trigger"].replace("'", "&#39;")
    assert toasts(admin.get("/admin/flags").get_data(as_text=True)) == {}  # nothing stale on the next page


# Quieter workers -----------------------------------------------------------------------------


class _Recorder:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str, dict]] = []

    def __getattr__(self, level):
        return lambda event, **fields: self.lines.append((level, event, fields))


@pytest.mark.parametrize(("did", "level"), [({"requeued": 0, "failed": 0}, "debug"), ({"removed": 2}, "info")])
def test_a_periodic_run_is_news_only_when_it_did_something(app, monkeypatch, did, level):
    recorder = _Recorder()
    monkeypatch.setattr(periodic, "log", recorder)
    monkeypatch.setitem(
        app.extensions[QUEUES_KEY].periodic, "chore", periodic.PeriodicTask("chore", "every minute", "", lambda: did)
    )
    with app.app_context():
        periodic.run_recorded("chore")
    [(logged_at, event, fields)] = recorder.lines
    assert (logged_at, event, fields["periodic_task"]) == (level, "periodic_task_finished", "chore")


def test_hueys_routine_lines_are_debug_lines(app):
    from tasks.queues import HUEY_TASK_LOGGERS, RoutineHueyLines

    huey_log = logging.getLogger("huey")
    assert any(isinstance(f, RoutineHueyLines) for f in huey_log.filters)  # installed with the queues
    assert set(HUEY_TASK_LOGGERS) == {"huey", "huey.consumer.Scheduler"}

    def record(message, level=logging.INFO):
        return logging.LogRecord("huey", level, __file__, 1, message, ("tasks.maintenance.sweep_jobs: 1",), None)

    previous = logging.getLogger().level
    try:
        logging.getLogger().setLevel(logging.INFO)
        routine = record("Executing %s")
        assert huey_log.filter(routine) is False and routine.levelname == "DEBUG"
        assert huey_log.filter(record("Unhandled exception in task %s.", logging.ERROR)) is True
        logging.getLogger().setLevel(logging.DEBUG)
        assert huey_log.filter(record("%s executed in %0.3fs")) is True  # LOG_LEVEL=DEBUG shows them
    finally:
        logging.getLogger().setLevel(previous)
