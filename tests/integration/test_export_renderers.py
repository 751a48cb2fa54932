"""The documents of the reports queue (app/exports/renderers), each rendered directly into a
temporary file from seeded data and read back with a library: the ZIP unzipped and its JSON
parsed, the CSVs with the csv module, the XLSX with openpyxl, the PDF with pypdf. Streaming is
proved by memory bounds measured with tracemalloc on large exports."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import tracemalloc
import uuid
import zipfile
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select, text

from app.audit.models import AuditEvent
from app.auth.models import AccountToken, RefreshToken, RememberToken, UserSession
from app.core.database import utcnow
from app.exports.renderers import RENDERERS, RenderContext
from app.extensions import db
from app.jobs.models import Job, JobStatus
from app.notifications.models import Notification
from app.rbac.models import Role, user_roles
from app.storage import get_storage
from app.uploads.models import Upload
from app.users.management import EXPORT_COLUMNS
from app.users.models import User
from tests.integration.test_uploads import backend, s3_endpoint  # noqa: F401  (shared fixtures)

MB = 1024 * 1024


class Rendered:
    """A document rendered into a temporary file, and every progress report made meanwhile."""

    def __init__(self, data: bytes, progress: list[tuple[int, int]]):
        self.data, self.progress = data, progress

    def assert_progress_completed(self) -> None:
        assert self.progress, "no progress was reported"
        total = self.progress[-1][1]
        assert self.progress[0] == (0, total)
        assert self.progress[-1] == (total, total)
        done = [step[0] for step in self.progress]
        assert done == sorted(done) and all(0 <= d <= t for d, t in self.progress)


def render(application, kind: str, user_id: int, filters: dict[str, Any] | None = None) -> Rendered:
    progress: list[tuple[int, int]] = []
    context = RenderContext(
        user_id=user_id,
        filters=filters or {},
        progress=lambda done, total: progress.append((done, total)),
        generated_at=utcnow(),
    )
    with application.app_context(), tempfile.TemporaryFile("w+b") as out:
        RENDERERS[kind].render(context, out)
        out.seek(0)
        return Rendered(out.read(), progress)


def peak_while(application, work: Callable[[], Any]) -> int:
    """The peak of Python allocations (bytes, tracemalloc) while `work` runs in an app context."""
    with application.app_context():
        db.session.execute(select(1))  # the connection is open before measuring
        tracemalloc.start()
        try:
            tracemalloc.reset_peak()
            work()
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
            db.session.remove()


def _add(application, *rows: Any) -> None:
    with application.app_context():
        db.session.add_all(rows)
        db.session.commit()


def _event(event: str, at: datetime | None = None, **fields: Any) -> AuditEvent:
    return AuditEvent(event=event, created_at=at or utcnow(), data=fields.pop("data", {}), **fields)


# account_data ---------------------------------------------------------------------------------------


@pytest.fixture()
def storage_app(make_app, app, backend):  # noqa: F811
    return make_app(**backend)


def test_account_data_zip_holds_the_owners_data_and_files_and_nobody_elses(storage_app, make_user, people):
    admin = people["admin"]
    owner = make_user(email="owner@example.com", display_name="Owner Person", locale="en", role="manager")
    other = make_user(email="other@example.com", display_name="Other Person")
    now = utcnow()
    document = os.urandom(300 * 1024) + b"the owner's document"
    upload_id, pending_id, others_upload = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
    secrets_written = {name: hashlib.sha256(name.encode()).hexdigest() for name in ("refresh", "remember", "emailed")}
    with storage_app.test_request_context():
        storage = get_storage()
        storage.put(f"users/{owner.id}/document/{upload_id}/report.pdf", document, "application/pdf")
        storage.put(f"users/{other.id}/document/{others_upload}/theirs.txt", b"other people's bytes", "text/plain")
    session_id = "s" * 43
    _add(
        storage_app,
        Upload(
            id=upload_id,
            user_id=owner.id,
            kind="document",
            status="ready",
            filename="Quarterly report.pdf",
            content_type="application/pdf",
            declared_size=len(document),
            size=len(document),
            key=f"users/{owner.id}/document/{upload_id}/report.pdf",
        ),
        Upload(
            id=pending_id,
            user_id=owner.id,
            kind="document",
            status="pending",
            filename="never-sent.txt",
            content_type="text/plain",
            declared_size=5,
            key=f"users/{owner.id}/document/{pending_id}/never-sent.txt",
        ),
        Upload(
            id=others_upload,
            user_id=other.id,
            kind="document",
            status="ready",
            filename="theirs.txt",
            content_type="text/plain",
            declared_size=20,
            size=20,
            key=f"users/{other.id}/document/{others_upload}/theirs.txt",
        ),
        UserSession(
            id=session_id,
            user_id=owner.id,
            user_agent="OwnerBrowser/1.0",
            ip="198.51.100.7",
            expires_at=now + timedelta(hours=8),
        ),
        UserSession(
            id="o" * 43, user_id=other.id, user_agent="OtherBrowser/9", ip="192.0.2.99", expires_at=now + timedelta(1)
        ),
        RefreshToken(
            user_id=owner.id,
            family_id=str(uuid.uuid4()),
            token_hash=secrets_written["refresh"],
            user_agent="owner-cli/2",
            expires_at=now + timedelta(days=30),
        ),
        AccountToken(
            user_id=owner.id,
            purpose="verify_email",
            token_hash=secrets_written["emailed"],
            expires_at=now + timedelta(days=1),
        ),
        Notification(user_id=owner.id, kind="export.ready", title="Your export is ready", body="Download it."),
        Notification(user_id=other.id, kind="export.ready", title="Other's export", body="Not the owner's."),
        _event(
            "login_succeeded",
            actor_user_id=owner.id,
            subject_user_id=owner.id,
            ip="198.51.100.7",
            target=f"user:{owner.id}",
            data={"channel": "browser"},
        ),
        _event(
            "login_failed",
            subject_user_id=owner.id,
            ip="203.0.113.50",
            target=f"user:{owner.id}",
            data={"channel": "browser", "reason": "bad_password"},
        ),
        _event(
            "roles_changed",
            actor_user_id=admin.id,
            subject_user_id=owner.id,
            ip="192.0.2.1",
            request_id="admin-request",
            target=f"user:{owner.id}",
            data={"before": {"roles": ["user"]}, "after": {"roles": ["manager"]}},
        ),
        _event(
            "user_deleted",
            actor_user_id=owner.id,
            subject_user_id=other.id,
            target=f"user:{other.id}",
            data={"before": {"email": "other@example.com"}},
        ),
        _event("login_succeeded", actor_user_id=other.id, subject_user_id=other.id, ip="192.0.2.99"),
    )
    _add(  # after the session it belongs to
        storage_app,
        RememberToken(
            user_id=owner.id,
            session_id=session_id,
            token_hash=secrets_written["remember"],
            expires_at=now + timedelta(30),
        ),
    )

    rendered = render(storage_app, "account_data", owner.id)

    archive = zipfile.ZipFile(io.BytesIO(rendered.data))
    assert archive.testzip() is None
    file_entry = f"files/{upload_id}/Quarterly-report.pdf"
    assert set(archive.namelist()) == {
        "profile.json",
        "sessions.json",
        "uploads.json",
        "notifications.json",
        "exports.json",
        "audit.json",
        "README.txt",
        file_entry,
    }
    assert archive.read(file_entry) == document
    assert archive.getinfo("profile.json").compress_type == zipfile.ZIP_DEFLATED
    parsed = {name: json.loads(archive.read(name)) for name in archive.namelist() if name.endswith(".json")}

    profile = parsed["profile.json"]
    assert profile["email"] == "owner@example.com" and profile["display_name"] == "Owner Person"
    assert profile["locale"] == "en" and profile["status"] == "active" and profile["roles"] == ["manager"]
    assert "users:read" in profile["permissions"] and "roles:manage" not in profile["permissions"]

    sessions = parsed["sessions.json"]
    assert [s["user_agent"] for s in sessions["browser_sessions"]] == ["OwnerBrowser/1.0"]
    assert sessions["browser_sessions"][0]["ip"] == "198.51.100.7"
    assert len(sessions["remembered_browsers"]) == 1 and len(sessions["emailed_links"]) == 1
    assert [s["user_agent"] for s in sessions["api_sign_ins"]] == ["owner-cli/2"]
    assert sorted(s["outcome"] for s in sessions["sign_ins"]) == ["login_failed", "login_succeeded"]

    uploads = {u["id"]: u for u in parsed["uploads.json"]}
    assert set(uploads) == {upload_id, pending_id}
    assert uploads[upload_id]["file"] == file_entry and uploads[upload_id]["size"] == len(document)
    assert uploads[upload_id]["filename"] == "Quarterly report.pdf"
    assert uploads[pending_id]["file"] is None

    assert [n["title"] for n in parsed["notifications.json"]] == ["Your export is ready"]
    assert parsed["exports.json"] == []

    audit = {event["event"]: event for event in parsed["audit.json"]}
    assert set(audit) == {"login_succeeded", "login_failed", "roles_changed", "user_deleted"}
    assert audit["login_succeeded"]["by"] == "you" and audit["login_succeeded"]["ip"] == "198.51.100.7"
    assert audit["login_failed"]["ip"] == "203.0.113.50"  # someone tried the owner's password: theirs to know
    changed = audit["roles_changed"]
    assert changed["by"] == "someone else" and changed["ip"] is None and changed["request_id"] is None
    assert changed["data"]["after"] == {"roles": ["manager"]}
    deleted = audit["user_deleted"]  # the owner acted on someone else: what, not whom
    assert deleted["about"] == "someone else" and deleted["data"] == {} and deleted["target"] == "user"

    readme = archive.read("README.txt").decode()
    for name in ("profile.json", "sessions.json", "uploads.json", "files/", "notifications.json", "audit.json"):
        assert name in readme

    everything = b"".join(archive.read(name) for name in archive.namelist() if name != file_entry)
    with storage_app.app_context():
        password_hash = db.session.scalar(select(User.password_hash).where(User.id == owner.id))
    for secret in (password_hash, *secrets_written.values(), session_id):
        assert secret.encode() not in everything
    for foreign in (
        "other@example.com",
        "Other Person",
        "OtherBrowser",
        "192.0.2.99",
        "192.0.2.1",
        "Other's export",
        "theirs.txt",
        admin.email,
        "admin-request",
    ):
        assert foreign.encode() not in everything, foreign
    assert b"other people's bytes" not in rendered.data
    rendered.assert_progress_completed()
    assert rendered.progress[-1][1] == 6 + 2 + 1  # six sections, two uploads, the README


def test_account_data_of_a_missing_user_fails_loudly(app):
    from app.errors import NotFound

    with pytest.raises(NotFound):
        render(app, "account_data", 999_999)


# users_csv / users_xlsx ----------------------------------------------------------------------------


@pytest.fixture()
def listed_users(make_user):
    make_user(email="csv-b@example.com", display_name='=HYPERLINK("http://evil.example","x")', role="manager")
    make_user(email="csv-a@example.com", display_name="+Plus Start", email_verified_at=utcnow())
    make_user(email="csv-c@example.com", display_name="Disabled", is_active_account=False)
    make_user(email="other@example.com", display_name="Not matched")
    return make_user(email="owner@example.com", role="admin")


USER_FILTERS = {"q": "csv-", "role": None, "status": None, "verified": None, "sort": "email"}


def test_users_csv_follows_the_filters_and_defuses_formulas(app, listed_users):
    rendered = render(app, "users_csv", listed_users.id, USER_FILTERS)
    rows = list(csv.reader(io.StringIO(rendered.data.decode())))
    assert tuple(rows[0]) == EXPORT_COLUMNS
    assert [row[1] for row in rows[1:]] == ["csv-a@example.com", "csv-b@example.com", "csv-c@example.com"]
    by_email = {row[1]: row for row in rows[1:]}
    assert by_email["csv-b@example.com"][2] == '\'=HYPERLINK("http://evil.example","x")'
    assert by_email["csv-a@example.com"][2] == "'+Plus Start"
    assert by_email["csv-a@example.com"][5] == "yes" and by_email["csv-b@example.com"][4] == "manager"
    datetime.fromisoformat(by_email["csv-a@example.com"][6])
    rendered.assert_progress_completed()
    assert rendered.progress[-1] == (3, 3)

    active = render(app, "users_csv", listed_users.id, {**USER_FILTERS, "status": "active", "sort": "-email"})
    emails = [row[1] for row in list(csv.reader(io.StringIO(active.data.decode())))[1:]]
    assert emails == ["csv-b@example.com", "csv-a@example.com"]
    assert active.progress[-1] == (2, 2)
    verified = render(app, "users_csv", listed_users.id, {**USER_FILTERS, "verified": True, "role": None})
    assert [row[1] for row in list(csv.reader(io.StringIO(verified.data.decode())))[1:]] == ["csv-a@example.com"]
    managers = render(app, "users_csv", listed_users.id, {**USER_FILTERS, "q": None, "role": "manager"})
    assert [row[1] for row in list(csv.reader(io.StringIO(managers.data.decode())))[1:]] == ["csv-b@example.com"]


def test_users_xlsx_is_a_workbook_of_typed_cells(app, listed_users):
    import openpyxl

    rendered = render(app, "users_xlsx", listed_users.id, USER_FILTERS)
    sheet = openpyxl.load_workbook(io.BytesIO(rendered.data)).active
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0] == (
        "ID",
        "Email",
        "Display name",
        "Status",
        "Roles",
        "Email verified",
        "Created (UTC)",
        "Last sign-in (UTC)",
    )
    assert [row[1] for row in rows[1:]] == ["csv-a@example.com", "csv-b@example.com", "csv-c@example.com"]
    formula_like = sheet.cell(row=3, column=3)
    assert formula_like.value == '=HYPERLINK("http://evil.example","x")' and formula_like.data_type == "s"
    assert isinstance(rows[1][0], int) and isinstance(rows[1][6], datetime)
    assert rows[3][3] == "disabled" and rows[1][5] == "yes" and rows[2][5] == "no"
    rendered.assert_progress_completed()
    assert rendered.progress[-1] == (3, 3)


def test_users_xlsx_refuses_more_rows_than_a_worksheet_holds(app, listed_users, monkeypatch):
    from app.exports.renderers import tables
    from app.jobs.service import TaskFailed

    monkeypatch.setattr(tables, "XLSX_MAX_ROWS", 3)  # the header and two users
    with pytest.raises(TaskFailed, match="More than 2 users match"):
        render(app, "users_xlsx", listed_users.id, USER_FILTERS)  # three match
    render(app, "users_xlsx", listed_users.id, {**USER_FILTERS, "status": "active"})  # two fit


# audit_csv -----------------------------------------------------------------------------------------


def test_audit_csv_follows_the_audit_filters_and_defuses_formulas(app, make_user):
    actor = make_user(email="actor@example.com")
    subject = make_user(email="=subject@example.com")
    day = datetime(2026, 3, 10, 12, tzinfo=UTC)
    _add(
        app,
        _event(
            "roles_changed",
            day,
            actor_user_id=actor.id,
            subject_user_id=subject.id,
            target="=1+1",
            request_id="req-1",
            data={"after": {"roles": ["admin"]}},
        ),
        _event("roles_changed", day - timedelta(days=5), actor_user_id=actor.id, subject_user_id=subject.id),
        _event("login_succeeded", day, actor_user_id=subject.id, subject_user_id=subject.id),
    )
    filters = {
        "actor": "actor@",
        "action": "roles_changed",
        "target": None,
        "since": "2026-03-09",
        "until": "2026-03-10",
        "request_id": None,
    }
    rendered = render(app, "audit_csv", actor.id, filters)
    rows = list(csv.DictReader(io.StringIO(rendered.data.decode())))
    assert len(rows) == 1
    [row] = rows
    assert row["event"] == "roles_changed" and row["actor_email"] == "actor@example.com"
    assert row["subject_email"] == "'=subject@example.com" and row["target"] == "'=1+1"
    assert row["request_id"] == "req-1" and '"roles": ["admin"]' in row["data"].replace('":[', '": [')
    assert datetime.fromisoformat(row["created_at"]) == day
    rendered.assert_progress_completed()
    everything = render(app, "audit_csv", actor.id, {})
    assert len(list(csv.DictReader(io.StringIO(everything.data.decode())))) == 3


# activity_pdf ----------------------------------------------------------------------------------------


def _seed_activity(application, make_user) -> int:
    start = datetime(2026, 5, 4, 9, tzinfo=UTC)
    owner = make_user(email="owner@example.com", role="admin", created_at=start - timedelta(days=40))
    for n in range(3):
        make_user(email=f"new{n}@example.com", created_at=start + timedelta(days=n % 2, hours=n))
    make_user(email="outside@example.com", created_at=start + timedelta(days=30))
    jobs = [
        Job(
            id=str(uuid.uuid4()),
            queue="emails",
            task="tasks.emails.send_email",
            status=JobStatus.failed,
            error="SMTPServerDisconnected: Connection unexpectedly closed",
            created_at=start,
            finished_at=start + timedelta(minutes=5),
        )
        for _ in range(3)
    ]
    jobs += [
        Job(
            id=str(uuid.uuid4()),
            queue="uploads",
            task="tasks.uploads.process_upload",
            status=JobStatus.failed,
            error="Pillow could not read the image",
            created_at=start,
            finished_at=start,
        ),
        Job(
            id=str(uuid.uuid4()),
            queue="reports",
            task="tasks.reports.build_export",
            status=JobStatus.succeeded,
            created_at=start + timedelta(days=1),
        ),
        Job(
            id=str(uuid.uuid4()),
            queue="emails",
            task="tasks.emails.send_email",
            status=JobStatus.failed,
            error="Outside the range",
            created_at=start - timedelta(days=20),
        ),
    ]
    _add(
        application,
        *jobs,
        *[_event("login_succeeded", start + timedelta(days=1, minutes=n), subject_user_id=owner.id) for n in range(4)],
        _event("signed_in_remembered", start + timedelta(days=2), subject_user_id=owner.id),
        _event("login_failed", start, subject_user_id=owner.id),
        _event("login_succeeded", start - timedelta(days=10), subject_user_id=owner.id),
        Upload(
            id=str(uuid.uuid4()),
            user_id=owner.id,
            kind="document",
            status="ready",
            filename="a.pdf",
            content_type="application/pdf",
            declared_size=10,
            size=3 * MB,
            key="k/a",
            created_at=start,
        ),
        Upload(
            id=str(uuid.uuid4()),
            user_id=owner.id,
            kind="avatar",
            status="rejected",
            filename="b.png",
            content_type="image/png",
            declared_size=2048,
            key="k/b",
            created_at=start,
        ),
    )
    return owner.id


def test_activity_pdf_is_an_a4_report_of_the_range(app, make_user):
    from pypdf import PdfReader

    owner_id = _seed_activity(app, make_user)
    rendered = render(app, "activity_pdf", owner_id, {"since": "2026-05-01", "until": "2026-05-10"})
    assert rendered.data.startswith(b"%PDF-")
    reader = PdfReader(io.BytesIO(rendered.data))
    page = reader.pages[0]
    assert (round(float(page.mediabox.width)), round(float(page.mediabox.height))) == (595, 842)  # A4 in points
    text = " ".join(" ".join(p.extract_text().split()) for p in reader.pages)
    assert "Activity report" in text and f"Page 1 of {len(reader.pages)}" in text
    assert "Sign-ups 3" in text  # three accounts created in the range (not the owner, not the one after)
    assert "Sign-ins 5" in text  # four password sign-ins and a remembered browser, in the range
    assert "Wrong password or unknown address 1" in text
    assert "Document Ready 1 3.0 MB" in text and "Avatar Rejected 1 2.0 KB" in text
    assert "SMTPServerDisconnected: Connection unexpectedly closed 3" in text
    assert "Pillow could not read the image 1" in text and "Outside the range" not in text
    assert "emails 0 3" in text  # the emails queue: succeeded 0, failed 3
    assert reader.metadata.title.startswith("Activity report")
    rendered.assert_progress_completed()


def test_activity_chart_is_inline_svg_with_a_bar_per_day_and_series(app, make_user):
    from flask import render_template

    from app.exports.renderers.activity import TEMPLATE, read_figures, report_context

    owner_id = _seed_activity(app, make_user)
    context = RenderContext(owner_id, {}, lambda done, total: None, utcnow())
    with app.app_context():
        figures = read_figures(date(2026, 5, 1), date(2026, 5, 10))
        values = report_context(figures, context)
        html = render_template(TEMPLATE, **values)
    chart = values["chart"]
    # 4 May: 2 sign-ups (0 sign-ins); 5 May: 1 sign-up, 4 sign-ins; 6 May: 1 sign-in.
    assert sorted((bar.series, bar.value) for bar in chart.bars) == [(0, 1), (0, 2), (1, 1), (1, 4)]
    tallest = max(chart.bars, key=lambda bar: bar.value)
    assert tallest.y + tallest.height == chart.bottom and tallest.height > 2 * min(b.height for b in chart.bars)
    assert html.count("<rect ") == 4 and "<svg" in html and "<script" not in html
    assert "http" not in html.replace("http://www.w3.org/2000/svg", "")  # it links and loads nothing


def test_activity_report_counts_per_utc_day(app, make_user):
    """Midnight UTC splits days on every database (PostgreSQL's session time zone aside)."""
    from app.exports.renderers.queries import signups_per_day

    make_user(email="late@example.com", created_at=datetime(2026, 5, 4, 23, 59, 59, tzinfo=UTC))
    make_user(email="early@example.com", created_at=datetime(2026, 5, 5, 0, 0, 1, tzinfo=UTC))
    with app.app_context():
        if db.engine.dialect.name == "postgresql":
            db.session.execute(text("SET TIME ZONE 'Asia/Tokyo'"))  # midnight UTC is 9:00 there
        assert signups_per_day(date(2026, 5, 4), date(2026, 5, 5)) == {"2026-05-04": 1, "2026-05-05": 1}
        db.session.remove()


# Streaming: memory bounds ------------------------------------------------------------------------------

BULK_USERS = 20_000


@pytest.fixture()
def many_users(app, make_user) -> int:
    """BULK_USERS accounts (each holding the user role) inserted in bulk, and the owner's id."""
    owner = make_user(email="owner@example.com", role="admin")
    now = utcnow()
    with app.app_context():
        role_id = db.session.scalar(select(Role.id).where(Role.name == "user"))
        rows = [
            {
                "email": f"bulk{n:06d}@example.com",
                "display_name": f"Bulk User Number {n:06d} " + "x" * 40,
                "password_hash": "$argon2id$v=19$m=8,t=1,p=1$" + "h" * 60,
                "is_active_account": True,
                "session_epoch": 0,
                "failed_login_count": 0,
                "created_at": now,
                "updated_at": now,
                "last_login_at": now,
            }
            for n in range(BULK_USERS)
        ]
        db.session.execute(insert(User), rows)
        ids = db.session.scalars(select(User.id).where(User.email.like("bulk%"))).all()
        db.session.execute(insert(user_roles), [{"user_id": user_id, "role_id": role_id} for user_id in ids])
        db.session.commit()
    return owner.id


BULK_FILTERS = {"q": "bulk", "role": None, "status": None, "verified": None, "sort": "email"}


def test_user_exports_stream_in_flat_memory(app, many_users, record_property):
    """Holding the rows costs what a list of them costs; the exports stay far below it."""
    from app.users.management import export_batches

    held: list[Any] = []
    holding = peak_while(app, lambda: held.extend(row for batch in export_batches(BULK_FILTERS) for row in batch))
    assert len(held) == BULK_USERS
    held.clear()
    documents: dict[str, bytes] = {}

    def export(kind: str) -> Callable[[], None]:
        def work() -> None:
            progress: list[tuple[int, int]] = []
            context = RenderContext(many_users, BULK_FILTERS, lambda d, t: progress.append((d, t)), utcnow())
            with tempfile.TemporaryFile("w+b") as out:
                RENDERERS[kind].render(context, out)
                out.seek(0)
                documents[kind] = out.read(4096) if kind == "users_xlsx" else out.read()
            assert progress[-1] == (BULK_USERS, BULK_USERS) and len(progress) > 10

        return work

    csv_peak = peak_while(app, export("users_csv"))
    xlsx_peak = peak_while(app, export("users_xlsx"))
    record_property("memory", {"rows_held": holding, "users_csv": csv_peak, "users_xlsx": xlsx_peak})
    print(f"\nrows held {holding / MB:.1f} MB; users_csv {csv_peak / MB:.1f} MB; users_xlsx {xlsx_peak / MB:.1f} MB")
    assert documents["users_csv"].count(b"\r\n") == BULK_USERS + 1
    # Measured (SQLite and PostgreSQL alike): the 20,000 rows alone, as tuples, peak at ~11 MB;
    # each export stays at ~3-4 MB however many rows (one batch of 500 users and their ORM state,
    # the first statement's compilation, the csv module's or XlsxWriter's buffers), flat from the
    # first thousand rows to the last. Retaining every row, even as bare tuples, breaks the bounds.
    assert holding > 8 * MB
    assert csv_peak < holding / 2 and csv_peak < 6 * MB
    assert xlsx_peak < holding / 2 and xlsx_peak < 6 * MB


# A storage whose reads tracemalloc can watch: moto's in-process server would count the object
# it serves against the test's peak, so this one runs in a process of its own.


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def moto_process() -> Iterator[str]:
    port = _free_port()
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("moto_server did not start") from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(10)


@pytest.fixture(params=["local", "s3"])
def large_file_app(request, make_app, app, tmp_path):
    if request.param == "s3":
        return make_app(
            storage_backend="s3",
            s3_bucket=f"hearth-big-{uuid.uuid4().hex[:12]}",
            s3_endpoint_url=request.getfixturevalue("moto_process"),
            s3_access_key_id="testing",
            s3_secret_access_key="testing",
            s3_create_bucket=True,
        )
    return make_app(storage_backend="local", storage_local_path=str(tmp_path / "objects"))


LARGE_FILE = 30 * MB


def test_a_large_upload_streams_into_the_account_zip_in_flat_memory(large_file_app, make_user, tmp_path):
    owner = make_user(email="owner@example.com")
    upload_id = str(uuid.uuid4())
    key = f"users/{owner.id}/video/{upload_id}/holiday.mp4"
    source = tmp_path / "big.bin"
    digest = hashlib.sha256()
    with source.open("wb") as handle:  # written a MB at a time, never whole in memory
        for n in range(LARGE_FILE // MB):
            chunk = hashlib.sha256(str(n).encode()).digest() * (MB // 32)
            digest.update(chunk)
            handle.write(chunk)
    with large_file_app.test_request_context(), source.open("rb") as handle:
        get_storage().put_stream(key, handle, "application/octet-stream", LARGE_FILE)
    _add(
        large_file_app,
        Upload(
            id=upload_id,
            user_id=owner.id,
            kind="video",
            status="ready",
            filename="holiday.mp4",
            content_type="application/octet-stream",
            declared_size=LARGE_FILE,
            size=LARGE_FILE,
            key=key,
        ),
    )
    archive_path = tmp_path / "account.zip"
    progress: list[tuple[int, int]] = []

    def work() -> None:
        context = RenderContext(owner.id, {}, lambda d, t: progress.append((d, t)), utcnow())
        with archive_path.open("w+b") as out:
            RENDERERS["account_data"].render(context, out)

    peak = peak_while(large_file_app, work)
    print(f"\naccount_data with a {LARGE_FILE // MB} MB file: peak {peak / MB:.2f} MB")
    assert peak < 5 * MB
    with zipfile.ZipFile(archive_path) as archive:
        entry = f"files/{upload_id}/holiday.mp4"
        assert archive.getinfo(entry).file_size == LARGE_FILE
        copied = hashlib.sha256()
        with archive.open(entry) as stored:
            while chunk := stored.read(MB):
                copied.update(chunk)
    assert copied.digest() == digest.digest()
    assert progress[-1][0] == progress[-1][1]
