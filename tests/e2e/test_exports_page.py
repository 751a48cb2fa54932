"""`/exports` in Chromium: the page sweep of tests/e2e/test_every_page.py (fits 390–1280 px, axe,
no CSP violation) with exports in every state, for a plain user and for an admin (who also sees
the forms of the admin kinds); and the live progress bar, updated by htmx polling without a reload."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from app.core.database import utcnow
from app.core.unit_of_work import unit_of_work
from app.exports.models import Export, ExportStatus
from app.extensions import db
from tests.e2e.test_every_page import SCHEMES, Visit, post_form, run_sweep, sign_in_as

LONG_ERROR = (
    "The export could not be built: The finished file could not be stored. "
    "The storage service answered with an error the second time too, after a long wait."
)


def _exports(app, user_id: int) -> dict[str, str]:
    """One export in each state, as the list shows them."""
    now = utcnow()
    ids = {}
    states = [
        (ExportStatus.queued, "account_data", {}),
        (ExportStatus.running, "users_xlsx", {"progress": 42, "started_at": now}),
        (
            ExportStatus.ready,
            "activity_pdf",
            {
                "progress": 100,
                "size": 2_345_678,
                "filename": "hearth-activity-pdf-20261130-101500.pdf",
                "storage_key": f"exports/{user_id}/x/hearth-activity-pdf-20261130-101500.pdf",
                "finished_at": now,
                "expires_at": now + timedelta(hours=24),
            },
        ),
        (ExportStatus.failed, "users_csv", {"error": LONG_ERROR, "finished_at": now}),
        (ExportStatus.expired, "audit_csv", {"size": 1234, "filename": "hearth-audit-csv-20261129-090000.csv"}),
    ]
    with app.app_context(), unit_of_work():
        for offset, (status, kind, extra) in enumerate(states):
            export_id = str(uuid.uuid4())
            db.session.add(
                Export(
                    id=export_id,
                    user_id=user_id,
                    kind=kind,
                    filters={},
                    status=status,
                    created_at=now - timedelta(minutes=offset),
                    **extra,
                )
            )
            ids[str(status)] = export_id
    return ids


@pytest.mark.parametrize("scheme", SCHEMES)
def test_the_exports_page_fits_and_passes_axe(new_page, live_server_url, app, make_user, scheme):
    user = make_user(email="uma@example.com", display_name="Uma Example", email_verified_at=utcnow())
    admin = make_user(email="admin@example.com", display_name="Ada Admin", role="admin", email_verified_at=utcnow())
    ids = _exports(app, user.id)
    _exports(app, admin.id)
    run_sweep(
        new_page,
        live_server_url,
        "exports-user",
        scheme,
        [
            Visit("exports", "/exports/"),
            Visit("exports-confirm-delete", open=post_form("/exports/", f"/exports/{ids['ready']}/delete")),
        ],
        sign_in=sign_in_as("uma@example.com"),
    )
    run_sweep(
        new_page,
        live_server_url,
        "exports-staff",
        scheme,
        [Visit("exports", "/exports/"), Visit("users-with-export-buttons", "/admin/users")],
        sign_in=sign_in_as("admin@example.com"),
    )


def test_the_progress_bar_moves_and_polling_stops_once_ready(new_page, live_server_url, app, make_user):
    user = make_user(email="uma@example.com", email_verified_at=utcnow())
    page: Any
    page, events = new_page()
    sign_in_as("uma@example.com")(page)
    ids = _exports(app, user.id)
    page.goto("/exports/")
    running = page.locator(f"#export-{ids['running']} progress")
    assert running.get_attribute("value") == "42"
    with app.app_context(), unit_of_work():
        db.session.get(Export, ids["running"]).progress = 77
    page.wait_for_function(
        f"() => document.querySelector('#export-{ids['running']} progress')?.value === 77", timeout=8000
    )
    url_before = page.url
    with app.app_context(), unit_of_work():
        for status in ("queued", "running"):
            export = db.session.get(Export, ids[status])
            export.status, export.progress = ExportStatus.failed, 0
    page.wait_for_function("() => document.querySelector('#export-list').dataset.polling === 'no'", timeout=8000)
    assert page.url == url_before  # swapped in place, no reload
    assert page.locator("#export-list[hx-trigger]").count() == 0
    events.assert_clean()


def test_download_my_data_from_request_to_zip(browser, make_app, base_settings, tmp_path, make_user, monkeypatch):
    """The journey of issue 14: request "Download my data" on /exports, watch its progress bar,
    see the bell's count rise, open the notification and download the ZIP. The export runs on
    the `reports` queue as a worker runs it (tasks.runtime.run_attempt), on a thread."""
    import io
    import threading
    import zipfile

    from werkzeug.serving import make_server

    from app.account import notifications as notification_views
    from app.exports.renderers import RENDERERS, Renderer
    from tasks.reports import build_export
    from tasks.runtime import run_attempt

    queued_app = make_app(
        jobs_immediate=False,
        jobs_sqlite_dir=str(tmp_path / "huey"),
        redis_prefix=base_settings["redis_prefix"] + "-" + tmp_path.name[-12:],
    )
    make_user(email="uma@example.com", display_name="Uma Example", email_verified_at=utcnow())
    monkeypatch.setattr(notification_views, "POLL_SECONDS", 1)
    halfway, carry_on = threading.Event(), threading.Event()
    real = RENDERERS["account_data"]

    def slowed(context, out):
        context.progress(1, 2)
        halfway.set()
        assert carry_on.wait(20), "the test never let the export finish"
        real.render(context, out)

    monkeypatch.setitem(RENDERERS, "account_data", Renderer(slowed, real.content_type, real.extension, real.title))
    server = make_server("127.0.0.1", 0, queued_app, threaded=True)
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    context = browser.new_context(base_url=f"http://127.0.0.1:{server.server_port}", accept_downloads=True)
    context.set_default_timeout(15_000)
    try:
        page = context.new_page()
        sign_in_as("uma@example.com")(page)
        page.goto("/exports/")
        with page.expect_navigation():
            page.get_by_role("button", name="Download my data").click()
        assert "is being prepared" in page.locator("#toasts").inner_text()
        row = page.locator("tr.export-row").first
        assert row.get_attribute("data-status") == "queued"
        with queued_app.app_context():
            [export] = db.session.scalars(db.select(Export)).all()
            export_id, job_id = export.id, export.job_id
        worker = threading.Thread(target=run_attempt, args=(queued_app, build_export, job_id), daemon=True)
        worker.start()
        assert halfway.wait(10)
        page.wait_for_function(
            f"() => document.querySelector('#export-{export_id} progress')?.value === 50", timeout=10_000
        )
        assert page.locator(f"#export-{export_id}").get_attribute("data-status") == "running"
        carry_on.set()
        worker.join(20)
        page.wait_for_selector(f"#export-{export_id}[data-status=ready] a#download-{export_id}", timeout=10_000)
        page.wait_for_selector("#nav-bell .nav-bell__count", timeout=10_000)
        assert page.locator("#nav-bell .nav-bell__count").inner_text() == "1"
        with page.expect_navigation():
            page.locator("#nav-bell").click()
        notice = page.locator("li.notification[data-kind='export.ready']")
        assert "Account data" in notice.inner_text()
        with page.expect_navigation():
            notice.locator("button.notification__link").click()
        assert page.url.endswith("/exports/")
        with page.expect_download() as downloading:
            page.locator(f"a#download-{export_id}").click()
        download = downloading.value
        assert download.suggested_filename.startswith("hearth-account-data-")
        assert download.suggested_filename.endswith(".zip")
        archive = zipfile.ZipFile(io.BytesIO(Path(download.path()).read_bytes()))
        assert archive.testzip() is None and archive.namelist()
    finally:
        carry_on.set()
        context.close()
        server.shutdown()
        server.server_close()
