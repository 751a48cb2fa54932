"""`/exports` in the browser (no JavaScript needed) and the users export button of `/admin/users`."""

from __future__ import annotations

import io
import re
import zipfile

import pytest
from sqlalchemy import select

from app.exports.models import Export
from app.extensions import db
from app.jobs.models import Job
from tasks.reports import build_export
from tasks.runtime import run_attempt
from tests.support import csrf_token


def _exports(app) -> list[Export]:
    with app.app_context():
        rows = db.session.scalars(select(Export).order_by(Export.created_at)).all()
        db.session.expunge_all()
        return list(rows)


def _post(client, path: str, **data):
    return client.post(path, data={"csrf_token": csrf_token(client, "/exports/"), **data})


@pytest.fixture()
def queued_app(make_app, base_settings, tmp_path, app):
    """Jobs really queued and nobody consuming them: exports stay queued until a test runs them."""
    return make_app(
        jobs_immediate=False,
        jobs_sqlite_dir=str(tmp_path / "huey"),
        redis_prefix=base_settings["redis_prefix"] + "-" + tmp_path.name[-12:],
    )


def test_the_page_needs_a_sign_in(client):
    response = client.get("/exports/")
    assert response.status_code == 302 and "/auth/login" in response.headers["Location"]
    # Its polling, once signed out, tells htmx to stop (286) rather than swap in a sign-in page.
    assert client.get("/exports/list", headers={"HX-Request": "true"}).status_code == 286


def test_download_my_data_works_without_javascript(app, client, auth, people):
    auth.login("user@example.com")
    page = client.get("/exports/").get_data(as_text=True)
    assert "Download my data" in page and "No exports yet." in page
    # Only what the user may ask for: no admin kinds.
    assert 'value="users_csv"' not in page and 'value="audit_csv"' not in page and 'value="activity_pdf"' not in page
    response = _post(client, "/exports/", kind="account_data")
    assert response.status_code == 302 and response.headers["Location"] == "/exports/"
    [export] = _exports(app)
    assert (export.kind, export.user_id, export.status) == (
        "account_data",
        people["user"].id,
        "ready",
    )  # jobs run inline
    page = client.get("/exports/").get_data(as_text=True)
    assert "is being prepared" in page  # the toast
    row = re.search(rf'<tr id="export-{export.id}".*?</tr>', page, re.S).group(0)
    assert 'data-status="ready"' in row and "Ready" in row and export.filename in row
    assert f'href="/exports/{export.id}/download"' in row
    assert 'hx-trigger="every 2s"' not in page  # nothing active: no polling
    download = client.get(f"/exports/{export.id}/download")
    assert download.status_code == 302
    served = client.get(download.headers["Location"])
    assert served.status_code == 200 and served.headers["Content-Disposition"].startswith("attachment")
    assert export.filename in served.headers["Content-Disposition"]
    assert zipfile.ZipFile(io.BytesIO(served.data)).testzip() is None


def test_the_list_polls_while_an_export_is_active_and_stops_after(queued_app, people):
    client = queued_app.test_client()
    from tests.support import BrowserAuth

    BrowserAuth(client).login("user@example.com")
    assert _post(client, "/exports/", kind="account_data").status_code == 302
    [export] = _exports(queued_app)
    partial = client.get("/exports/", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "<html" not in partial and partial.lstrip().startswith('<div id="export-list"')
    assert 'hx-trigger="every 2s"' in partial and 'hx-get="/exports/list?page=1"' in partial
    assert "<progress" in partial and 'data-status="queued"' in partial
    polled = client.get("/exports/list?page=1", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert polled == partial
    run_attempt(queued_app, build_export, export.job_id)
    partial = client.get("/exports/list?page=1", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "hx-trigger" not in partial.split(">", 1)[0] and 'data-status="ready"' in partial
    assert "<progress" not in partial


def test_admins_get_forms_for_the_admin_kinds_and_errors_show_on_the_field(app, client, auth, people):
    auth.login("admin@example.com")
    page = client.get("/exports/").get_data(as_text=True)
    for kind in ("account_data", "users_csv", "users_xlsx", "audit_csv", "activity_pdf"):
        assert f'value="{kind}"' in page, kind
    response = _post(client, "/exports/", kind="activity_pdf", since="2026-03-10", until="2026-03-01")
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert 'id="activity_pdf-until" name="until" value="2026-03-01" aria-invalid="true"' in html
    assert 'id="activity_pdf-until-error"' in html and "The start date must not be after the end date." in html
    assert _exports(app) == []
    assert _post(client, "/exports/", kind="activity_pdf", since="2026-03-01", until="2026-03-10").status_code == 302
    [export] = _exports(app)
    assert export.filters == {"since": "2026-03-01", "until": "2026-03-10"}


def test_a_kind_without_the_permission_or_unknown_is_refused(app, client, auth, people):
    auth.login("manager@example.com")  # users:read, not audit:read
    assert _post(client, "/exports/", kind="audit_csv").status_code == 403
    assert _post(client, "/exports/", kind="sql_dump").status_code == 422
    assert _exports(app) == []


def test_the_per_user_limit_is_a_429_page_with_the_reason(queued_app, people):
    client = queued_app.test_client()
    from tests.support import BrowserAuth

    BrowserAuth(client).login("user@example.com")
    for _ in range(2):
        assert _post(client, "/exports/", kind="account_data").status_code == 302
    refused = _post(client, "/exports/", kind="account_data")
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
    assert "2 exports in progress" in refused.get_data(as_text=True)
    assert len(_exports(queued_app)) == 2


def test_deleting_asks_first_without_javascript(app, client, auth, people):
    auth.login("user@example.com")
    _post(client, "/exports/", kind="account_data")
    [export] = _exports(app)
    question = _post(client, f"/exports/{export.id}/delete")
    assert question.status_code == 200 and "Are you sure?" in question.get_data(as_text=True)
    assert len(_exports(app)) == 1
    done = _post(client, f"/exports/{export.id}/delete", confirmed="yes")
    assert done.status_code == 302 and done.headers["Location"] == "/exports/"
    assert _exports(app) == []
    # With htmx (its confirm dialog sends confirmed=yes) the list comes back in place.
    _post(client, "/exports/", kind="account_data")
    [export] = _exports(app)
    swapped = client.post(
        f"/exports/{export.id}/delete?page=1",
        data={"confirmed": "yes", "csrf_token": csrf_token(client, "/exports/")},
        headers={"HX-Request": "true"},
    )
    assert swapped.status_code == 200 and 'id="export-list"' in swapped.get_data(as_text=True)
    assert "No exports yet." in swapped.get_data(as_text=True)


# /admin/users -------------------------------------------------------------------------------------


def test_the_admin_users_export_button_starts_an_export_with_the_lists_filters(app, client, auth, people):
    auth.login("manager@example.com")
    page = client.get("/admin/users?status=disabled&q=ali&sort=-email").get_data(as_text=True)
    form = re.search(r'<form method="post" action="/admin/users/export" id="users-export".*?</form>', page, re.S)
    assert form, "the export form"
    fields = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', form.group(0)))
    assert fields["status"] == "disabled" and fields["q"] == "ali" and fields["sort"] == "-email"
    response = client.post("/admin/users/export", data={**fields, "kind": "users_xlsx"})
    assert response.status_code == 302 and response.headers["Location"] == "/exports/"
    [export] = _exports(app)
    assert export.kind == "users_xlsx" and export.user_id == people["manager"].id
    assert export.filters == {"q": "ali", "role": None, "status": "disabled", "verified": None, "sort": "-email"}
    with app.app_context():
        job = db.session.get(Job, export.job_id)
        assert (job.queue, job.task) == ("reports", "tasks.reports.build_export")
    # The list's htmx swap keeps the form's filters in step (out of band).
    partial = client.get("/admin/users?status=active", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert re.search(r'<form method="post" action="/admin/users/export" id="users-export"[^>]*hx-swap-oob', partial)
    assert '<input type="hidden" name="status" value="active">' in partial
    # The synchronous CSV route is gone: one way to export, on the queue.
    assert client.get("/admin/users/export.csv").status_code == 404


def test_the_admin_users_export_needs_users_read(app, client, auth, people):
    auth.login("user@example.com")
    assert client.post("/admin/users/export", data={"csrf_token": csrf_token(client, "/exports/")}).status_code == 403
    assert _exports(app) == []
