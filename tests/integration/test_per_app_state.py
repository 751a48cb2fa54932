"""Per-app state lives on the app: building another app in the same process (a test, the
CLI) changes nothing for the apps already built (issue 12 §1)."""

from __future__ import annotations

from app.cache.aside import EXTENSION_KEY as CACHE_STATE_KEY
from app.core.unit_of_work import unit_of_work
from app.extensions import cache, db
from app.jobs.models import Job, JobStatus
from app.jobs.queues import QUEUES_KEY
from app.mail.service import queue_email


def test_a_later_app_does_not_take_over_an_earlier_apps_queues(app, make_app, tmp_path):
    # The reproduction from the issue: an app with real (SQLite) queues, built after the
    # session's inline app, used to repoint the process-global queues for every app.
    other = make_app(jobs_immediate=False, jobs_sqlite_dir=str(tmp_path / "huey"))
    assert other.extensions[QUEUES_KEY] is not app.extensions[QUEUES_KEY]
    with app.app_context():
        with unit_of_work():
            job_id = queue_email("first@example.com", "test_message", {"address": "first@example.com"}).id
        db.session.expire_all()
        assert db.session.get(Job, job_id).status == JobStatus.succeeded  # ran inline, in this app
    assert other.extensions[QUEUES_KEY].pending_count() == 0  # nothing leaked to the other app's queue
    with other.app_context():
        with unit_of_work():
            queued_id = queue_email("second@example.com", "test_message", {"address": "second@example.com"}).id
        db.session.expire_all()
        assert db.session.get(Job, queued_id).status == JobStatus.queued  # waits for that app's consumer
    assert other.extensions[QUEUES_KEY].pending_count() == 1


def test_each_app_has_its_own_caches(app, make_app):
    other = make_app()
    assert other.extensions[CACHE_STATE_KEY].local is not app.extensions[CACHE_STATE_KEY].local
    assert other.extensions["cache"][cache] is not app.extensions["cache"][cache]  # L2 backends
