"""The /files library pages and the widget's hypermedia endpoints."""

from __future__ import annotations

import io
import re

import pytest

from app.extensions import db
from app.uploads.models import Upload
from tests.integration.test_uploads import backend, jpeg_with_exif, s3_endpoint  # noqa: F401  (shared fixtures)
from tests.support import csrf_token


@pytest.fixture()
def browser(auth, make_user):
    client = auth.signed_in(make_user(email="files@example.com"))
    client.csrf = csrf_token(client, "/files/")
    return client


def _widget_upload(browser, data, content_type="image/jpeg", kind="avatar", name="pic.jpg"):
    ticket = browser.post(
        "/files/presign",
        json={"filename": name, "content_type": content_type, "size": len(data), "kind": kind},
        headers={"X-CSRFToken": browser.csrf},
    )
    assert ticket.status_code == 201, ticket.json
    form = dict(ticket.json["fields"], file=(io.BytesIO(data), name))
    assert browser.post(ticket.json["url"], data=form, content_type="multipart/form-data").status_code == 204
    return ticket.json["upload_id"], browser.post(
        f"/files/{ticket.json['upload_id']}/confirm", headers={"X-CSRFToken": browser.csrf, "HX-Request": "true"}
    )


def test_the_library_needs_sign_in(client):
    assert client.get("/files/").status_code == 302


def test_the_page_has_the_widget_and_an_empty_list(browser):
    html = browser.get("/files/").get_data(as_text=True)
    assert 'id="upload-widget"' in html and "No files yet." in html
    assert re.search(r'src="/static/js/uploads\.[0-9a-f]{12}\.js"', html) and "<script>" not in html


def test_widget_flow_returns_a_row_that_the_list_then_shows(browser):
    upload_id, row = _widget_upload(browser, jpeg_with_exif((80, 60)))
    assert row.status_code == 200 and f'id="upload-{upload_id}"' in row.get_data(as_text=True)
    listing = browser.get("/files/", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert (
        "<html" not in listing
        and "pic.jpg" in listing
        and 'class="badge badge--success" data-status="ready"' in listing
    )
    assert browser.get(f"/files/{upload_id}/download").status_code == 302


def test_rows_still_processing_poll_and_final_rows_do_not(browser, app):
    from app.extensions import db
    from app.uploads.models import Upload

    upload_id, _ = _widget_upload(browser, b"some text\n", "text/plain", "document", "a.txt")
    assert "hx-trigger" not in browser.get(f"/files/{upload_id}/row").get_data(as_text=True)
    with app.app_context():
        db.session.get(Upload, upload_id).status = "processing"
        db.session.commit()
    assert 'hx-trigger="every 2s"' in browser.get(f"/files/{upload_id}/row").get_data(as_text=True)


WIDGET_ACCEPT = "application/json, application/problem+json"  # what static/js/uploads.js sends


def _presign(browser, accept=WIDGET_ACCEPT, **body):
    headers = {"X-CSRFToken": browser.csrf} | ({"Accept": accept} if accept else {})
    return browser.post("/files/presign", json=body, headers=headers)


def test_widget_errors_are_problems_from_the_error_mapper(browser):
    response = _presign(browser, filename="x.svg", content_type="image/svg+xml", size=10, kind="avatar")
    assert response.status_code == 422 and response.mimetype == "application/problem+json"
    problem = response.json
    assert problem["type"].endswith("/validation-failed") and problem["instance"] == "/files/presign"
    assert "not accepted" in problem["detail"] and problem["errors"][0]["field"] == "content_type"
    assert "error" not in problem  # the old hand-made body is gone
    # a CSRF refusal reaches the widget the same way
    refused = browser.post("/files/presign", json={}, headers={"Accept": WIDGET_ACCEPT})
    assert refused.status_code == 400 and refused.mimetype == "application/problem+json"


@pytest.mark.parametrize("size", ["many", [1], {"n": 1}])
def test_a_size_that_is_not_a_number_is_a_problem_about_the_size(browser, size):
    response = _presign(browser, filename="a.jpg", content_type="image/jpeg", size=size, kind="avatar")
    assert response.status_code == 422 and response.json["detail"] == "The size must be a number."
    assert [error["field"] for error in response.json["errors"]] == ["size"]


@pytest.mark.parametrize("accept", [None, "*/*", "text/html,application/xhtml+xml,*/*;q=0.8"])
def test_a_client_that_does_not_ask_for_json_gets_the_error_page(browser, accept):
    response = _presign(browser, accept, filename="x.svg", content_type="image/svg+xml", size=10, kind="avatar")
    assert response.status_code == 422 and response.mimetype == "text/html"
    assert "not accepted" in response.get_data(as_text=True)


def test_only_the_owner_confirms_an_upload(browser, make_user, app):
    other = make_user(email="files-other@example.com")
    with app.app_context():
        db.session.add(
            Upload(
                id="not-mine",
                user_id=other.id,
                kind="document",
                status="pending",
                filename="theirs.txt",
                content_type="text/plain",
                declared_size=5,
                key="k/not-mine",
            )
        )
        db.session.commit()
    headers = {"X-CSRFToken": browser.csrf, "HX-Request": "true"}
    for upload_id in ("not-mine", "no-such-upload"):
        response = browser.post(f"/files/{upload_id}/confirm", headers=headers)
        assert response.status_code == 404 and response.mimetype == "text/html"
    with app.app_context():
        assert db.session.get(Upload, "not-mine").status == "pending"


def test_filters_and_delete(browser):
    _widget_upload(browser, b"doc\n", "text/plain", "document", "d.txt")
    upload_id, _ = _widget_upload(browser, jpeg_with_exif((10, 10)))
    html = browser.get("/files/?kind=document").get_data(as_text=True)
    assert "d.txt" in html and "pic.jpg" not in html
    deleted = browser.post(
        f"/files/{upload_id}/delete", data={"csrf_token": browser.csrf}, headers={"HX-Request": "true"}
    )
    assert deleted.status_code == 200 and deleted.get_data(as_text=True) == ""
    assert "pic.jpg" not in browser.get("/files/").get_data(as_text=True)


def test_the_csp_opens_only_to_the_s3_endpoint(make_app):
    app = make_app(storage_backend="s3", s3_bucket="b", s3_endpoint_url="http://127.0.0.1:9000/")
    csp = app.test_client().get("/").headers["Content-Security-Policy"]
    assert "connect-src 'self' http://127.0.0.1:9000" in csp and "form-action 'self' http://127.0.0.1:9000" in csp
    assert "script-src 'self';" in csp


def test_an_uploaded_image_becomes_the_avatar_shown_in_the_navigation(browser, make_user):
    upload_id, _ = _widget_upload(browser, jpeg_with_exif((300, 300)))
    _widget_upload(browser, b"text\n", "text/plain", "document", "notes.txt")
    account = browser.get("/account/").get_data(as_text=True)
    assert f'value="{upload_id}"' in account and "notes.txt" not in account  # only processed images
    token = re.search(r'name="csrf_token" value="([^"]+)"', account).group(1)
    assert browser.post("/account/avatar", data={"csrf_token": token, "upload_id": upload_id}).status_code == 302
    home = browser.get("/").get_data(as_text=True)
    assert re.search(r'<img src="[^"]+" alt="" width="28" height="28" class="avatar">', home)
    # someone else's image cannot be chosen
    other = make_user(email="x-other@example.com")
    assert other.id
    response = browser.post("/account/avatar", data={"csrf_token": token, "upload_id": "not-mine"})
    assert response.status_code == 302
    assert "Choose one of your own images." in browser.get("/account/").get_data(as_text=True)
    # deleting the image removes the avatar
    browser.post(f"/files/{upload_id}/delete", data={"csrf_token": token})
    assert 'class="avatar"' not in browser.get("/").get_data(as_text=True)


def test_deleting_without_javascript_returns_to_the_library_not_to_the_referer(browser):
    upload_id, _ = _widget_upload(browser, b"doc\n", "text/plain", "document", "d.txt")
    response = browser.post(
        f"/files/{upload_id}/delete", data={"csrf_token": browser.csrf}, headers={"Referer": "https://evil.example/"}
    )
    assert response.status_code == 302
    assert response.headers["Location"] == "/files/"


def test_an_image_refused_by_processing_shows_its_reason_in_the_library(browser):
    from tests.integration.test_upload_hardening import png_bomb

    upload_id, _ = _widget_upload(browser, png_bomb(9000, 5000), "image/png", "avatar", "bomb.png")
    html = browser.get(f"/files/{upload_id}/row").get_data(as_text=True)
    assert 'class="badge badge--danger" data-status="rejected"' in html and "hx-trigger" not in html
    assert "The image is 9000×5000 pixels (45 megapixels); the limit is 40 megapixels." in html


# Uploading without JavaScript: the form posts the file to /files/upload -------------------------


@pytest.fixture()
def form_app(make_app, backend, app):  # noqa: F811  (backend: local disk and S3, from test_uploads)
    # 10 KiB for avatars, so "too large" needs no large file
    return make_app(**backend, upload_avatar_max_mb=10 / 1024)


@pytest.fixture()
def form_browser(form_app, auth, make_user):
    client = auth(form_app.test_client()).signed_in(make_user(email="form@example.com"))
    client.csrf = csrf_token(client, "/files/")
    return client


def _form_upload(client, data, name="pic.jpg", content_type="image/jpeg", kind="avatar", csrf=True):
    form = {"kind": kind, "file": (io.BytesIO(data), name, content_type)}
    if csrf:
        form["csrf_token"] = client.csrf
    return client.post("/files/upload", data=form, content_type="multipart/form-data")


def _uploads_and_objects(app) -> tuple[list[Upload], list[str]]:
    """The uploads' rows, and which of their keys (final and staging) hold an object."""
    from app.storage import get_storage
    from app.uploads.service import staging_key

    with app.test_request_context():
        rows = db.session.scalars(db.select(Upload)).all()
        storage = get_storage()
        stored = [key for u in rows for key in (u.key, staging_key(u)) if storage.head(key) is not None]
        db.session.expunge_all()
        return rows, stored


def test_the_upload_form_is_a_plain_multipart_post_with_a_csrf_token(browser):
    html = browser.get("/files/").get_data(as_text=True)
    form = re.search(r'<form id="upload-form"[^>]*>', html).group(0)
    assert 'method="post"' in form and 'action="/files/upload"' in form
    assert 'enctype="multipart/form-data"' in form
    body = html.split(form, 1)[1].split("</form>", 1)[0]
    assert 'name="csrf_token"' in body and 'name="kind"' in body and 'type="file"' in body
    assert "Works without JavaScript" in html
    assert re.search(r'<option[^>]*value="avatar"[^>]*>Avatar \(JPEG, PNG, WebP, GIF; up to 5 MB\)</option>', html)
    assert ">Image (" not in html


def test_a_form_upload_is_stored_checked_and_processed_like_a_presigned_one(form_browser, form_app):
    from app.jobs.models import Job
    from app.uploads.service import PROCESS_UPLOAD_TASK

    data = jpeg_with_exif((80, 60))
    response = _form_upload(form_browser, data)
    assert response.status_code == 302 and response.headers["Location"] == "/files/"
    [upload], stored = _uploads_and_objects(form_app)
    assert upload.filename == "pic.jpg" and upload.kind == "avatar" and upload.declared_size == len(data)
    assert stored == [upload.key]  # under its final key; nothing left in staging
    assert upload.status == "ready" and upload.thumbnail_key  # jobs run inline in tests
    with form_app.app_context():
        [job] = db.session.scalars(db.select(Job).where(Job.task == PROCESS_UPLOAD_TASK)).all()
        assert job.args_summary == {"upload_id": upload.id} and job.status == "succeeded"
    page = form_browser.get("/files/").get_data(as_text=True)
    assert "Uploaded pic.jpg — processing" in page and "pic.jpg" in page


def test_a_file_larger_than_its_kind_allows_is_refused_and_nothing_is_kept(form_browser, form_app):
    data = b"\xff\xd8\xff\xe0" + b"\0" * (11 * 1024)
    response = _form_upload(form_browser, data, "big.jpg")
    assert response.status_code == 413
    html = response.get_data(as_text=True)
    assert "Avatar files can be at most" in html and 'aria-invalid="true"' in html
    assert _uploads_and_objects(form_app) == ([], [])


def test_a_type_the_kind_does_not_accept_is_refused_on_the_form(form_browser, form_app):
    response = _form_upload(form_browser, b"<svg xmlns='http://www.w3.org/2000/svg'/>", "x.svg", "image/svg+xml")
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "Avatar uploads: &#39;image/svg+xml&#39; is not accepted" in html
    assert re.search(r'<input[^>]*aria-describedby="upload-file-error"[^>]*aria-invalid="true"[^>]*autofocus', html)
    assert _uploads_and_objects(form_app) == ([], [])


def test_content_that_is_not_the_declared_type_is_rejected_and_deleted(form_browser, form_app):
    response = _form_upload(form_browser, b"plain text, not a JPEG at all", "fake.jpg")
    assert response.status_code == 422
    assert "The file&#39;s content is not image/jpeg." in response.get_data(as_text=True)
    [upload], stored = _uploads_and_objects(form_app)
    assert upload.status == "rejected" and stored == []  # as confirm() leaves a presigned upload


def test_a_form_upload_without_a_csrf_token_is_refused(form_browser, form_app):
    response = _form_upload(form_browser, jpeg_with_exif((10, 10)), csrf=False)
    assert response.status_code == 400
    assert _uploads_and_objects(form_app) == ([], [])


def test_a_form_without_a_file_asks_for_one(form_browser):
    response = form_browser.post(
        "/files/upload", data={"csrf_token": form_browser.csrf, "kind": "avatar"}, content_type="multipart/form-data"
    )
    assert response.status_code == 422 and "Choose a file first." in response.get_data(as_text=True)


def test_a_body_larger_than_any_kind_allows_is_refused_before_it_is_read(make_app, auth, make_user, app):
    small = 10 / 1024  # MB: every kind 10 KiB, so the body may be 10 KiB plus the form around it
    tiny_app = make_app(upload_avatar_max_mb=small, upload_document_max_mb=small, upload_video_max_mb=small)
    client = auth(tiny_app.test_client()).signed_in(make_user(email="tiny@example.com"))
    client.csrf = csrf_token(client, "/files/")
    response = _form_upload(client, b"\xff\xd8\xff" + b"\0" * (200 * 1024), "huge.jpg")
    assert response.status_code == 413
    assert _uploads_and_objects(tiny_app) == ([], [])
