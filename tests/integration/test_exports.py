"""Exports on the `reports` queue, through the API and the job, on both storage backends: local
disk and S3 through a real HTTP S3 endpoint on loopback (moto server).

Most tests build an app whose jobs are really queued (JOBS_IMMEDIATE off, no consumer), then
run the job's attempts themselves with the worker's own code (tasks.runtime.run_attempt): the
202 shows the export as queued, and each attempt is observed. Each kind's document content is
tested with its renderer (app/exports/renderers); here it is only opened."""

from __future__ import annotations

import csv
import io
import os
import re
import tempfile
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import urllib3
from sqlalchemy import select, update

from app.core.database import utcnow
from app.exports import service
from app.exports.models import Export, ExportStatus
from app.extensions import db
from app.jobs.models import Job, PeriodicRun
from app.notifications.models import Notification
from app.storage import get_storage
from tasks.reports import build_export
from tasks.runtime import run_attempt
from tests.support import csrf_token


@pytest.fixture(scope="session")
def s3_endpoint():
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def _backend(kind: str, s3_endpoint: str, tmp_path: Path) -> dict[str, Any]:
    if kind == "s3":
        return {
            "storage_backend": "s3",
            "s3_bucket": f"hearth-exports-{tmp_path.name[-12:].lower().replace('_', '-')}",
            "s3_endpoint_url": s3_endpoint,
            "s3_access_key_id": "testing",
            "s3_secret_access_key": "testing",
            "s3_create_bucket": True,
        }
    return {"storage_backend": "local", "storage_local_path": str(tmp_path / "objects")}


@pytest.fixture(params=["local", "s3"])
def backend(request, s3_endpoint, tmp_path):
    return _backend(request.param, s3_endpoint, tmp_path)


@pytest.fixture()
def exports_app(make_app, backend, base_settings, tmp_path, app):
    """Jobs really queued (huey storage of its own, nobody consuming): tests run the attempts."""
    return make_app(
        **backend,
        jobs_immediate=False,
        jobs_sqlite_dir=str(tmp_path / "huey"),
        redis_prefix=base_settings["redis_prefix"] + "-" + tmp_path.name[-12:],
    )


@pytest.fixture()
def client(exports_app):
    return exports_app.test_client()


@pytest.fixture()
def owner(make_user):
    return make_user(email="owner@example.com", roles=("admin",))


@pytest.fixture()
def headers(owner, api_auth):
    return api_auth.headers("owner@example.com")


def _request(client, headers, kind="users_csv", filters=None):
    return client.post("/api/v1/exports", headers=headers, json={"kind": kind, "filters": filters or {}})


def _export(app, export_id: str) -> Export:
    with app.app_context():
        export = db.session.get(Export, export_id)
        db.session.expunge(export)
        return export


def _job(app, job_id: str) -> Job:
    with app.app_context():
        job = db.session.get(Job, job_id)
        db.session.expunge(job)
        return job


def run_job(app, job_id: str) -> None:
    """One attempt, as a worker would run it (any retry delay taken as passed)."""
    with app.app_context():
        db.session.execute(update(Job).where(Job.id == job_id).values(next_attempt_at=None))
        db.session.commit()
    run_attempt(app, build_export, job_id)


def stored_keys(app, prefix: str) -> list[str]:
    """Every object under `prefix` (the content-type sidecars of the local backend left out)."""
    with app.app_context():
        storage = get_storage()
        if hasattr(storage, "client"):
            storage._ensure_bucket()  # as any write would (the test may have stored nothing yet)
            listed = storage.client.list_objects_v2(Bucket=storage.bucket, Prefix=prefix)
            return sorted(item["Key"] for item in listed.get("Contents", []))
        root = app.extensions["hearth.settings"].local_storage_root
        return sorted(
            str(path.relative_to(root))
            for path in (root / prefix).rglob("*")
            if path.is_file() and not path.name.endswith(".content-type")
        )


def fetch(client, url: str) -> tuple[str, bytes]:
    """GET a download link (the app's signed route, or S3's presigned URL): its
    Content-Disposition and body."""
    if url.startswith("http"):
        response = urllib3.request("GET", url)
        assert response.status == 200, response.data[:300]
        return response.headers["Content-Disposition"], response.data
    response = client.get(url)
    assert response.status_code == 200
    return response.headers["Content-Disposition"], response.data


def _notifications(app, user_id: int) -> list[Notification]:
    with app.app_context():
        rows = db.session.scalars(select(Notification).where(Notification.user_id == user_id)).all()
        db.session.expunge_all()
        return list(rows)


# Asking for one ----------------------------------------------------------------------------------


def test_a_request_answers_202_with_location_and_queues_a_reports_job(client, exports_app, owner, headers):
    response = _request(client, headers, "users_csv", {"status": "active", "sort": "-email"})
    assert response.status_code == 202, response.json
    body = response.json
    assert body["status"] == "queued" and body["kind"] == "users_csv" and body["progress"] == 0
    assert body["filters"] == {"q": None, "role": None, "status": "active", "verified": None, "sort": "-email"}
    assert body["download_url"] is None and body["size"] is None
    assert response.headers["Location"] == f"/api/v1/exports/{body['id']}"
    job = _job(exports_app, body["job_id"])
    assert (job.queue, job.task, job.status) == ("reports", "tasks.reports.build_export", "queued")
    assert job.max_attempts == 2  # the reports queue: one retry
    assert job.args_summary == {"export_id": body["id"]} and job.user_id == owner.id
    polled = client.get(response.headers["Location"], headers=headers)
    assert polled.status_code == 200 and polled.json["status"] == "queued"


def test_the_job_builds_the_file_with_progress_then_it_downloads_as_an_attachment(
    client, exports_app, owner, headers, make_user, monkeypatch
):
    from app.users import management

    for n in range(6):
        make_user(email=f"listed{n}@example.com")
    monkeypatch.setattr(management, "EXPORT_BATCH", 2)
    monkeypatch.setattr(service, "PROGRESS_INTERVAL_SECONDS", 0)
    seen: list[tuple[int, int | None, int | None, str]] = []
    real_report = service.report_progress

    def watching(job_id, percent, message=None):
        real_report(job_id, percent, message)
        # What another process (the /exports page, /admin/jobs) reads while the job runs.
        with exports_app.app_context(), db.engine.connect() as connection:
            job_progress = connection.scalar(select(Job.progress).where(Job.id == job_id))
            export = connection.execute(select(Export.status, Export.progress).where(Export.job_id == job_id)).one()
        seen.append((percent, job_progress, export.progress, export.status))

    monkeypatch.setattr(service, "report_progress", watching)
    body = _request(client, headers, "users_csv").json
    run_job(exports_app, body["job_id"])

    assert len(seen) >= 3, seen
    assert all(job == percent == on_export and status == "running" for percent, job, on_export, status in seen)
    assert [percent for percent, *_ in seen] == sorted({percent for percent, *_ in seen})
    assert max(percent for percent, *_ in seen) < 100  # 100 only once the file is stored

    export = client.get(f"/api/v1/exports/{body['id']}", headers=headers).json
    assert export["status"] == "ready" and export["progress"] == 100 and export["error"] is None
    assert export["filename"].startswith("hearth-users-csv-") and export["filename"].endswith(".csv")
    assert export["content_type"] == "text/csv" and export["size"] > 0
    assert export["download_url"]
    [key] = stored_keys(exports_app, "exports/")
    prefix, attempt, filename = key.rsplit("/", 2)
    assert prefix == f"exports/{owner.id}/{body['id']}" and len(attempt) == 16 and filename == export["filename"]
    with exports_app.app_context():
        retention = exports_app.extensions["hearth.settings"].export_retention_hours
        row = db.session.get(Export, body["id"])
        assert row.storage_key == key
        assert abs((row.expires_at - row.finished_at) - timedelta(hours=retention)) < timedelta(seconds=1)
    assert _job(exports_app, body["job_id"]).status == "succeeded"

    disposition, data = fetch(client, export["download_url"])
    assert disposition.startswith("attachment") and export["filename"] in disposition
    rows = list(csv.reader(io.StringIO(data.decode())))
    assert len(data) == export["size"] and len(rows) == 1 + 7  # the header, six listed and the owner
    [note] = _notifications(exports_app, owner.id)
    assert note.kind == "export.ready" and note.link == "/exports/"
    assert "Users (CSV)" in note.title or "Users (CSV)" in note.body


def test_the_owners_list_is_paginated_and_holds_only_their_exports(
    client, exports_app, owner, headers, api_auth, make_user
):
    make_user(email="other@example.com")
    other = api_auth.headers("other@example.com")
    first = _request(client, headers, "users_csv").json
    second = _request(client, headers, "account_data").json
    _request(client, other, "account_data")
    listed = client.get("/api/v1/exports?per_page=1", headers=headers)
    assert listed.status_code == 200
    assert listed.json["meta"] == {"page": 1, "per_page": 1, "total": 2, "pages": 2}
    assert listed.json["items"][0]["id"] == second["id"]  # newest first
    assert 'rel="next"' in listed.headers["Link"]
    page_two = client.get("/api/v1/exports?per_page=1&page=2", headers=headers).json
    assert [item["id"] for item in page_two["items"]] == [first["id"]]


# Limits, validation, permissions, ownership --------------------------------------------------


def test_more_exports_at_once_than_allowed_are_429_with_retry_after(client, exports_app, owner, headers):
    first = _request(client, headers, "account_data").json
    assert _request(client, headers, "users_csv").status_code == 202
    refused = _request(client, headers, "users_xlsx")
    assert refused.status_code == 429
    assert refused.mimetype == "application/problem+json"
    assert refused.json["type"].endswith("/too-many-requests") and "2 exports in progress" in refused.json["detail"]
    assert int(refused.headers["Retry-After"]) > 0
    with exports_app.app_context():
        assert db.session.scalar(select(db.func.count()).select_from(Export)) == 2
        assert db.session.scalar(select(db.func.count()).select_from(Job).where(Job.queue == "reports")) == 2
    run_job(exports_app, first["job_id"])  # one finishes: a slot is free again
    assert _request(client, headers, "users_xlsx").status_code == 202


def test_an_export_whose_job_ended_without_it_holds_no_slot_and_is_failed_hourly(client, exports_app, owner, headers):
    stuck = [_request(client, headers, "account_data").json for _ in range(2)]
    with exports_app.app_context():
        # A worker lost on the last attempt: the sweeper fails the job, nothing tells the export.
        db.session.execute(update(Job).where(Job.id == stuck[0]["job_id"]).values(status="failed"))
        db.session.commit()
    assert _request(client, headers, "users_csv").status_code == 202
    with exports_app.app_context():
        assert service.expire_exports() == {"expired": 0, "failed": 1, "purged": 0}
    gone = _export(exports_app, stuck[0]["id"])
    assert gone.status == "failed" and gone.error == service.JOB_LOST
    assert [note.kind for note in _notifications(exports_app, owner.id)] == ["export.failed"]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"kind": "everything"}, "kind"),
        ({"kind": "users_csv", "filters": {"sort": "password_hash"}}, "filters.sort"),
        ({"kind": "users_csv", "filters": {"status": "sleeping"}}, "filters.status"),
        ({"kind": "users_csv", "filters": {"bogus": 1}}, "filters.bogus"),
        ({"kind": "account_data", "filters": {"user_id": 1}}, "filters.user_id"),
        ({"kind": "audit_csv", "filters": {"since": "yesterday"}}, "filters.since"),
        ({"kind": "activity_pdf", "filters": {"since": "2026-01-10", "until": "2026-01-01"}}, "filters.until"),
        ({"kind": "activity_pdf", "filters": {"since": "2024-01-01", "until": "2026-01-01"}}, "filters.until"),
        ({"kind": "users_csv", "filters": []}, "filters"),
        # Days at the ends of the calendar (day arithmetic past date.min/date.max was a 500).
        ({"kind": "activity_pdf", "filters": {"until": "0001-01-01"}}, "filters.until"),
        ({"kind": "activity_pdf", "filters": {"since": "9999-12-01", "until": "9999-12-31"}}, "filters.since"),
        ({"kind": "audit_csv", "filters": {"until": "9999-12-31"}}, "filters.until"),
        ({"kind": "audit_csv", "filters": {"since": "1999-12-31"}}, "filters.since"),
    ],
)
def test_an_invalid_kind_or_filter_is_422_naming_the_field(client, exports_app, owner, headers, payload, field):
    response = client.post("/api/v1/exports", headers=headers, json=payload)
    assert response.status_code == 422, response.json
    assert response.mimetype == "application/problem+json"
    assert field in {error["field"] for error in response.json["errors"]}
    with exports_app.app_context():
        assert db.session.scalar(select(db.func.count()).select_from(Export)) == 0


def test_an_actor_filter_of_non_ascii_digits_builds_an_empty_audit_export(client, exports_app, owner, headers):
    """ "#²" is digits to str.isdigit but not to int(): it once failed the job on every attempt."""
    body = _request(client, headers, "audit_csv", {"actor": "#²"}).json
    run_job(exports_app, body["job_id"])
    export = _export(exports_app, body["id"])
    assert export.status == ExportStatus.ready, export.error


def test_activity_reports_default_to_the_last_30_days(client, owner, headers):
    body = _request(client, headers, "activity_pdf").json
    today = utcnow().date()
    assert body["filters"] == {"since": str(today - timedelta(days=29)), "until": str(today)}


def test_kinds_need_their_permission(client, exports_app, people, api_auth):
    user, manager = api_auth.headers("user@example.com"), api_auth.headers("manager@example.com")
    for kind in ("users_csv", "users_xlsx", "audit_csv", "activity_pdf"):
        refused = _request(client, user, kind)
        assert refused.status_code == 403 and refused.mimetype == "application/problem+json", kind
    assert _request(client, manager, "audit_csv").status_code == 403  # users:read, not audit:read
    assert _request(client, manager, "activity_pdf").status_code == 403
    assert _request(client, manager, "users_csv").status_code == 202
    assert _request(client, user, "account_data").status_code == 202  # anyone, for their own data
    assert client.post("/api/v1/exports", json={"kind": "account_data"}).status_code == 401
    with exports_app.app_context():
        assert db.session.scalar(select(db.func.count()).select_from(Export)) == 2


def test_other_peoples_exports_are_not_found(client, exports_app, owner, headers, make_user, api_auth, auth):
    body = _request(client, headers, "account_data").json
    run_job(exports_app, body["job_id"])
    assert client.get(f"/api/v1/exports/{body['id']}", headers=headers).json["status"] == "ready"
    make_user(email="other@example.com", roles=("admin",))  # even an admin: exports are private
    other = api_auth.headers("other@example.com")
    assert client.get(f"/api/v1/exports/{body['id']}", headers=other).status_code == 404
    assert client.delete(f"/api/v1/exports/{body['id']}", headers=other).status_code == 404
    assert client.get("/api/v1/exports", headers=other).json["meta"]["total"] == 0
    auth.login("other@example.com")
    assert client.get(f"/exports/{body['id']}/download").status_code == 404
    token = csrf_token(client, "/exports/")
    assert (
        client.post(f"/exports/{body['id']}/delete", data={"confirmed": "yes", "csrf_token": token}).status_code == 404
    )
    assert _export(exports_app, body["id"]).status == "ready"
    assert client.get("/api/v1/exports/no-such-export", headers=headers).status_code == 404


# Failures, retries, expiry, deletion ---------------------------------------------------------


def _temporary_files(monkeypatch) -> list[str]:
    made: list[str] = []
    real = tempfile.NamedTemporaryFile

    def recording(*args, **kwargs):
        handle = real(*args, **kwargs)
        made.append(handle.name)
        return handle

    monkeypatch.setattr(service.tempfile, "NamedTemporaryFile", recording)
    return made


def test_a_failing_export_leaves_no_file_and_a_clear_error_once_retries_are_spent(
    client, exports_app, owner, headers, monkeypatch
):
    from app.users import management

    def broken(filters):
        yield []
        raise OSError("database connection lost mid-export at /var/run/secret.sock")

    monkeypatch.setattr(management, "export_batches", broken)
    made = _temporary_files(monkeypatch)
    body = _request(client, headers, "users_csv").json
    run_job(exports_app, body["job_id"])
    job = _job(exports_app, body["job_id"])
    assert (job.status, job.attempts) == ("retrying", 1)
    # Waiting for its retry: queued again, not frozen at `running`.
    assert _export(exports_app, body["id"]).status == "queued"
    run_job(exports_app, body["job_id"])
    job = _job(exports_app, body["job_id"])
    assert (job.status, job.attempts) == ("failed", 2)
    assert job.error == "Unexpected error (OSError)."
    assert "database connection lost" in job.traceback
    export = client.get(f"/api/v1/exports/{body['id']}", headers=headers).json
    assert export["status"] == "failed" and export["download_url"] is None and export["size"] is None
    assert export["error"] == "The export could not be built: Unexpected error (OSError)."
    assert "secret.sock" not in export["error"]
    assert stored_keys(exports_app, "exports/") == []
    assert len(made) == 2 and not any(os.path.exists(name) for name in made)
    [note] = _notifications(exports_app, owner.id)
    assert note.kind == "export.failed" and "Unexpected error (OSError)." in note.body


def test_a_failure_after_the_file_was_stored_removes_it_and_the_retry_starts_afresh(
    client, exports_app, owner, headers, monkeypatch
):
    real_notify = service.notify
    calls = {"n": 0}

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise ConnectionError("the database went away at commit")
        return real_notify(*args, **kwargs)

    monkeypatch.setattr(service, "notify", flaky)
    body = _request(client, headers, "account_data").json
    run_job(exports_app, body["job_id"])
    assert _job(exports_app, body["job_id"]).status == "retrying"
    assert stored_keys(exports_app, "exports/") == []  # stored, then removed with the failure
    run_job(exports_app, body["job_id"])
    export = _export(exports_app, body["id"])
    assert export.status == "ready" and export.error is None
    assert stored_keys(exports_app, "exports/") == [export.storage_key]
    assert [note.kind for note in _notifications(exports_app, owner.id)] == ["export.ready"]
    # A re-delivery of the finished job changes nothing.
    with exports_app.app_context():
        service.build(body["id"], body["job_id"])
    assert _export(exports_app, body["id"]).finished_at == export.finished_at


def test_ready_exports_expire_on_the_hourly_run(client, exports_app, owner, headers):
    old, fresh = (_request(client, headers, kind).json for kind in ("account_data", "users_csv"))
    for body in (old, fresh):
        run_job(exports_app, body["job_id"])
    old_key = _export(exports_app, old["id"]).storage_key
    with exports_app.app_context():
        db.session.execute(
            update(Export).where(Export.id == old["id"]).values(expires_at=utcnow() - timedelta(minutes=1))
        )
        db.session.commit()
        from app.jobs.periodic import run_recorded

        assert "expire_exports" in exports_app.extensions["hearth.queues"].periodic
        run_recorded("expire_exports")
        assert db.session.get(PeriodicRun, "expire_exports").last_status == "succeeded"
    expired = client.get(f"/api/v1/exports/{old['id']}", headers=headers).json
    assert expired["status"] == "expired" and expired["download_url"] is None
    assert old_key not in stored_keys(exports_app, "exports/")
    assert client.get(f"/api/v1/exports/{fresh['id']}", headers=headers).json["status"] == "ready"
    assert stored_keys(exports_app, "exports/") == [_export(exports_app, fresh["id"]).storage_key]


def test_deleting_removes_the_row_and_its_file(client, exports_app, owner, headers):
    body = _request(client, headers, "account_data").json
    run_job(exports_app, body["job_id"])
    assert len(stored_keys(exports_app, "exports/")) == 1
    assert client.delete(f"/api/v1/exports/{body['id']}", headers=headers).status_code == 204
    assert stored_keys(exports_app, "exports/") == []
    assert client.get(f"/api/v1/exports/{body['id']}", headers=headers).status_code == 404
    with exports_app.app_context():
        assert db.session.get(Export, body["id"]) is None


def test_an_export_deleted_while_it_runs_leaves_no_file(client, exports_app, owner, headers, monkeypatch):
    body = _request(client, headers, "account_data").json
    real_finish = service._finish

    def deleted_meanwhile(export_id, *args):
        with exports_app.app_context():
            db.session.execute(db.delete(Export).where(Export.id == export_id))
            db.session.commit()
        return real_finish(export_id, *args)

    monkeypatch.setattr(service, "_finish", deleted_meanwhile)
    run_job(exports_app, body["job_id"])
    assert _job(exports_app, body["job_id"]).status == "succeeded"
    assert stored_keys(exports_app, "exports/") == []


def test_the_reports_jobs_show_in_the_admin_jobs_page(client, exports_app, owner, headers, auth):
    body = _request(client, headers, "account_data").json
    auth.login("owner@example.com")
    page = client.get("/admin/jobs?queue=reports").get_data(as_text=True)
    assert f'data-job="{body["job_id"]}"' in page and "build_export" in page


def test_the_limit_and_the_retention_come_from_configuration(make_app, base_settings, tmp_path, owner, api_auth):
    configured = make_app(
        export_max_concurrent_per_user=1,
        export_retention_hours=3,
        jobs_immediate=False,
        jobs_sqlite_dir=str(tmp_path / "huey"),
        storage_local_path=str(tmp_path / "objects"),
        redis_prefix=base_settings["redis_prefix"] + "-" + tmp_path.name[-12:],
    )
    client = configured.test_client()
    headers = api_auth(client).headers("owner@example.com")
    first = _request(client, headers, "account_data").json
    assert _request(client, headers, "account_data").status_code == 429
    run_job(configured, first["job_id"])
    export = _export(configured, first["id"])
    assert export.expires_at - export.finished_at == timedelta(hours=3)


# Deleting while it is built, other deliveries, lost rights ------------------------------------


def _limited_app(make_app, base_settings, tmp_path, backend, limit=1):
    return make_app(
        **backend,
        export_max_concurrent_per_user=limit,
        jobs_immediate=False,
        jobs_sqlite_dir=str(tmp_path / "huey"),
        redis_prefix=base_settings["redis_prefix"] + "-" + tmp_path.name[-12:],
    )


def in_another_thread(*calls):
    """Run the calls in order in a thread of their own (while a job is paused in this one) and
    return what they returned."""
    results: list[Any] = []
    worker = threading.Thread(target=lambda: results.extend(call() for call in calls))
    worker.start()
    worker.join(timeout=60)
    assert len(results) == len(calls), "the other thread failed (see the captured log)"
    return results


def _many_users(make_user, monkeypatch, count=6):
    """Enough rows, in small enough batches, for a users export to report progress several times."""
    from app.users import management

    for n in range(count):
        make_user(email=f"listed{n}@example.com")
    monkeypatch.setattr(management, "EXPORT_BATCH", 2)
    monkeypatch.setattr(service, "PROGRESS_INTERVAL_SECONDS", 0)


def test_deleting_a_queued_export_revokes_its_job_and_frees_its_slot(
    make_app, base_settings, tmp_path, backend, owner, api_auth
):
    limited = _limited_app(make_app, base_settings, tmp_path, backend)
    client = limited.test_client()
    headers = api_auth(client).headers("owner@example.com")
    first = _request(client, headers, "account_data").json
    assert _request(client, headers, "account_data").status_code == 429
    assert client.delete(f"/api/v1/exports/{first['id']}", headers=headers).status_code == 204
    assert _job(limited, first["job_id"]).status == "revoked"
    run_job(limited, first["job_id"])  # huey still delivers it: the claim refuses a revoked job
    assert _job(limited, first["job_id"]).status == "revoked"
    assert stored_keys(limited, "exports/") == []
    assert _request(client, headers, "account_data").status_code == 202


def test_deleting_a_running_export_holds_its_slot_until_the_build_stops(
    make_app, base_settings, tmp_path, backend, owner, api_auth, make_user, monkeypatch
):
    limited = _limited_app(make_app, base_settings, tmp_path, backend)
    client = limited.test_client()
    headers = api_auth(client).headers("owner@example.com")
    _many_users(make_user, monkeypatch)
    body = _request(client, headers, "users_csv").json
    reports: list[int] = []
    real_report = service.report_progress

    def delete_while_running(job_id, percent, message=None):
        real_report(job_id, percent, message)
        reports.append(percent)
        if len(reports) == 1:
            # The owner's requests, from another thread (a web process, with connections of its own).
            answers = in_another_thread(
                lambda: client.delete(f"/api/v1/exports/{body['id']}", headers=headers).status_code,
                # Its job still runs: deleting is no way round the limit.
                lambda: _request(client, headers, "account_data").status_code,
            )
            assert answers == [204, 429]

    monkeypatch.setattr(service, "report_progress", delete_while_running)
    run_job(limited, body["job_id"])
    assert len(reports) == 1  # the next progress report found the export gone and stopped the build
    assert _job(limited, body["job_id"]).status == "succeeded"
    assert stored_keys(limited, "exports/") == []
    assert _request(client, headers, "account_data").status_code == 202


def test_a_stale_delivery_never_discards_the_file_another_delivery_finished(
    client, exports_app, owner, headers, make_user, monkeypatch
):
    _many_users(make_user, monkeypatch)
    body = _request(client, headers, "users_csv").json
    real_report = service.report_progress
    calls = {"n": 0}

    def second_delivery_meanwhile(job_id, percent, message=None):
        real_report(job_id, percent, message)
        calls["n"] += 1
        if calls["n"] == 1:
            # The lease ran out under a slow first attempt: another worker builds it all.
            monkeypatch.setattr(service, "report_progress", real_report)
            with exports_app.app_context():
                service.build(body["id"], body["job_id"])

    monkeypatch.setattr(service, "report_progress", second_delivery_meanwhile)
    run_job(exports_app, body["job_id"])
    export = _export(exports_app, body["id"])
    assert export.status == "ready"
    assert stored_keys(exports_app, "exports/") == [export.storage_key]
    _, data = fetch(client, client.get(f"/api/v1/exports/{body['id']}", headers=headers).json["download_url"])
    assert len(data) == export.size
    assert [note.kind for note in _notifications(exports_app, owner.id)] == ["export.ready"]


def test_a_delete_that_read_the_export_before_it_finished_still_removes_its_file(
    client, exports_app, owner, headers, monkeypatch
):
    body = _request(client, headers, "account_data").json
    real_finish = service._finish
    seen: list[Export] = []

    def read_before_finishing(export_id, *args):
        seen.append(_export(exports_app, export_id))  # what a DELETE request loaded, still running
        return real_finish(export_id, *args)

    monkeypatch.setattr(service, "_finish", read_before_finishing)
    run_job(exports_app, body["job_id"])
    assert seen[0].status == "running" and len(stored_keys(exports_app, "exports/")) == 1
    with exports_app.app_context():
        service.delete_export(owner.id, seen[0])
        assert db.session.get(Export, body["id"]) is None
    assert stored_keys(exports_app, "exports/") == []


def _take_admin_role(app, user_id: int) -> None:
    from app.rbac.models import Role
    from app.rbac.service import forget_permissions
    from app.users.models import User

    with app.app_context():
        user = db.session.get(User, user_id)
        user.roles = [db.session.scalar(select(Role).where(Role.name == "user"))]
        forget_permissions(user_id)
        db.session.commit()


def test_an_export_whose_owner_lost_its_permission_is_neither_built_nor_downloaded(
    client, exports_app, owner, headers, auth
):
    built = _request(client, headers, "users_csv").json
    run_job(exports_app, built["job_id"])
    waiting = _request(client, headers, "audit_csv").json
    _take_admin_role(exports_app, owner.id)

    run_job(exports_app, waiting["job_id"])
    refused = client.get(f"/api/v1/exports/{waiting['id']}", headers=headers).json
    assert refused["status"] == "failed" and refused["error"] == service.PERMISSION_GONE
    assert _job(exports_app, waiting["job_id"]).status == "succeeded"  # refused, not retried
    kinds = [note.kind for note in _notifications(exports_app, owner.id)]
    assert sorted(kinds) == ["export.failed", "export.ready"]

    ready = client.get(f"/api/v1/exports/{built['id']}", headers=headers)
    assert ready.status_code == 200 and ready.json["download_url"] is None
    auth.login("owner@example.com")
    assert client.get(f"/exports/{built['id']}/download").status_code == 403
    page = client.get("/exports/").get_data(as_text=True)
    assert f'id="download-{built["id"]}"' not in page
    row = re.search(rf'<tr id="export-{built["id"]}".*?</tr>', page, re.DOTALL).group(0)
    assert "You no longer have the permission this export needs." in row
    # An export any user may have is unaffected.
    own = _request(client, headers, "account_data").json
    run_job(exports_app, own["job_id"])
    assert client.get(f"/api/v1/exports/{own['id']}", headers=headers).json["download_url"]


def test_an_export_of_a_disabled_owner_is_not_built(client, exports_app, owner, headers):
    from app.users.models import User

    body = _request(client, headers, "account_data").json
    with exports_app.app_context():
        db.session.get(User, owner.id).is_active_account = False
        db.session.commit()
    run_job(exports_app, body["job_id"])
    export = _export(exports_app, body["id"])
    assert export.status == "failed" and export.error == service.OWNER_DISABLED
    assert stored_keys(exports_app, "exports/") == []


def test_expiry_deletes_files_only_after_the_rows_say_expired(client, exports_app, owner, headers, monkeypatch):
    body = _request(client, headers, "account_data").json
    run_job(exports_app, body["job_id"])
    statuses_when_deleted: list[str] = []
    with exports_app.app_context():
        storage = get_storage()
        real_delete = storage.delete

        def watching(key):
            with db.engine.connect() as connection:  # what every other process sees
                statuses_when_deleted.append(connection.scalar(select(Export.status).where(Export.id == body["id"])))
            real_delete(key)

        monkeypatch.setattr(storage, "delete", watching)
        later = utcnow() + timedelta(hours=service.retention_hours(), minutes=1)
        assert service.expire_exports(later)["expired"] == 1
    assert statuses_when_deleted == ["expired"]
    assert stored_keys(exports_app, "exports/") == []


def test_the_hourly_run_purges_files_no_export_can_own_and_keeps_the_rest(client, exports_app, owner, headers):
    body = _request(client, headers, "account_data").json
    run_job(exports_app, body["job_id"])
    kept = _export(exports_app, body["id"]).storage_key
    stray = f"exports/{owner.id}/{'0' * 36}/{'f' * 16}/left-by-a-crashed-worker.zip"
    with exports_app.app_context():
        get_storage().put_stream(stray, io.BytesIO(b"half a document"), "application/zip", 1024)
        # Its retention made longer by hand: the ready export's file must survive any sweep.
        db.session.execute(
            update(Export).where(Export.id == body["id"]).values(expires_at=utcnow() + timedelta(days=30))
        )
        db.session.commit()
        far_later = utcnow() + timedelta(days=3)
        assert service.expire_exports(far_later) == {"expired": 0, "failed": 0, "purged": 0}
        assert sorted(stored_keys(exports_app, "exports/")) == sorted([kept, stray])
        db.session.execute(update(Export).where(Export.id == body["id"]).values(expires_at=utcnow()))
        db.session.commit()
        assert service.expire_exports(far_later) == {"expired": 1, "failed": 0, "purged": 1}
    assert stored_keys(exports_app, "exports/") == []


def test_a_delete_arriving_while_the_build_finishes_waits_for_it_then_removes_the_file(
    client, exports_app, owner, headers, monkeypatch
):
    """The finish checks the export and writes it as one step (SQLite included, which has no
    row locks): a delete in between waits, then finds the export ready and removes its file."""
    body = _request(client, headers, "account_data").json
    real_notify = service.notify
    other: dict[str, Any] = {}

    def delete_meanwhile(*args, **kwargs):
        if "thread" not in other:
            other["thread"] = thread = threading.Thread(
                target=lambda: other.setdefault(
                    "status", client.delete(f"/api/v1/exports/{body['id']}", headers=headers).status_code
                )
            )
            thread.start()
            thread.join(timeout=1)  # it waits for the finish to commit
        return real_notify(*args, **kwargs)

    monkeypatch.setattr(service, "notify", delete_meanwhile)
    run_job(exports_app, body["job_id"])
    other["thread"].join(timeout=30)
    assert other["status"] == 204
    assert _job(exports_app, body["job_id"]).status == "succeeded"
    with exports_app.app_context():
        assert db.session.get(Export, body["id"]) is None
    assert stored_keys(exports_app, "exports/") == []


def test_taking_over_from_an_attempt_that_died_removes_what_it_stored(client, exports_app, owner, headers):
    body = _request(client, headers, "account_data").json
    with exports_app.app_context():
        lost = service._start(body["id"], body["job_id"])  # a worker that stored its file, then died
        get_storage().put_stream(lost.key, io.BytesIO(b"PK lost"), "application/zip", 1024)
    run_job(exports_app, body["job_id"])  # the re-delivered job takes it over
    export = _export(exports_app, body["id"])
    assert export.status == "ready" and export.storage_key != lost.key
    assert stored_keys(exports_app, "exports/") == [export.storage_key]


def test_a_failure_after_the_finish_committed_keeps_the_ready_file(client, exports_app, owner, headers, monkeypatch):
    body = _request(client, headers, "account_data").json

    class FailingAfterCommit:
        """The unit committed; what follows fails (a connection lost on the way back, say)."""

        def __getattr__(self, name):
            def log_call(event, **fields):
                if event == "export_ready":
                    raise ConnectionError("lost after the commit")

            return log_call

    monkeypatch.setattr(service, "log", FailingAfterCommit())
    run_job(exports_app, body["job_id"])
    assert _job(exports_app, body["job_id"]).status == "retrying"
    export = _export(exports_app, body["id"])
    assert export.status == "ready" and stored_keys(exports_app, "exports/") == [export.storage_key]
    monkeypatch.undo()
    run_job(exports_app, body["job_id"])  # the retry finds it ready: nothing more to do
    assert _export(exports_app, body["id"]).storage_key == export.storage_key
    assert stored_keys(exports_app, "exports/") == [export.storage_key]
