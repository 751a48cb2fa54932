"""Uploads end to end on both storage backends: local disk and S3 through a real HTTP S3
endpoint on loopback (moto server)."""

from __future__ import annotations

import base64
import calendar
import io
import json
import time
from datetime import timedelta
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import urllib3
from PIL import Image

from app.errors import NotFound
from app.extensions import db
from app.uploads import service
from app.uploads.models import Upload


@pytest.fixture(scope="session")
def s3_endpoint():
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(params=["local", "s3"])
def backend(request, s3_endpoint, tmp_path):
    if request.param == "s3":
        return {
            "storage_backend": "s3",
            "s3_bucket": f"hearth-test-{tmp_path.name[-12:].lower().replace('_', '-')}",
            "s3_endpoint_url": s3_endpoint,
            "s3_access_key_id": "testing",
            "s3_secret_access_key": "testing",
            "s3_create_bucket": True,
        }
    return {"storage_backend": "local", "storage_local_path": str(tmp_path / "objects")}


@pytest.fixture()
def uploads_app(make_app, backend, app):
    return make_app(**backend)


@pytest.fixture()
def client(uploads_app):
    return uploads_app.test_client()


@pytest.fixture()
def owner(make_user):
    return make_user(email="owner@example.com")


def _send(client, post: dict, data: bytes, filename="file.bin"):
    """Upload like a browser would: the presigned form fields, then the file."""
    if post["url"].startswith("http"):
        fields = [*list(post["fields"].items()), ("file", (filename, data))]
        response = urllib3.request("POST", post["url"], fields=fields)
        return response.status
    form = dict(post["fields"])
    form["file"] = (io.BytesIO(data), filename)
    return client.post(post["url"], data=form, content_type="multipart/form-data").status_code


def jpeg_with_exif(size=(640, 480)) -> bytes:
    image = Image.new("RGB", size, (200, 80, 40))
    exif = Image.Exif()
    exif[0x010F] = "SecretCam"  # Make
    exif[0x0110] = "Model-X"
    out = io.BytesIO()
    image.save(out, format="JPEG", exif=exif)
    return out.getvalue()


def pdf_with_pages(pages=3) -> bytes:
    from pypdf import PdfWriter

    writer = PdfWriter()
    for _ in range(pages):
        writer.add_blank_page(width=200, height=200)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def _start(client, headers, data, content_type, kind, filename="photo.jpg", size=None):
    return client.post(
        "/api/v1/uploads/presigned",
        headers=headers,
        json={
            "filename": filename,
            "content_type": content_type,
            "size": len(data) if size is None else size,
            "kind": kind,
        },
    )


def _upload(client, headers, data, content_type="image/jpeg", kind="avatar", filename="photo.jpg"):
    started = _start(client, headers, data, content_type, kind, filename)
    assert started.status_code == 201, started.json
    body = started.json
    assert _send(client, body["upload"], data, filename) in (200, 201, 204)
    return body["upload_id"], client.post(f"/api/v1/uploads/{body['upload_id']}/confirm", headers=headers)


def test_an_image_goes_through_presign_upload_confirm_and_processing(client, owner, uploads_app, api_auth):
    headers = api_auth.headers("owner@example.com")
    data = jpeg_with_exif()
    upload_id, confirmed = _upload(client, headers, data)
    assert confirmed.status_code == 200
    item = client.get(f"/api/v1/uploads/{upload_id}", headers=headers).json
    assert item["status"] == "ready" and item["details"]["width"] == 640 and item["details"]["height"] == 480
    assert item["thumbnail_url"]
    with uploads_app.app_context():
        from app.storage import get_storage

        upload = db.session.get(Upload, upload_id)
        assert upload.key == f"users/{owner.id}/avatar/{upload_id}/photo.jpg"
        stored = get_storage().read(upload.key)
        thumb = Image.open(io.BytesIO(get_storage().read(upload.thumbnail_key)))
    assert b"SecretCam" in data and b"SecretCam" not in stored  # EXIF stripped
    assert max(thumb.size) == 256


def test_the_presigned_post_is_bounded_by_size_type_and_time(client, owner, backend, api_auth):
    headers = api_auth.headers("owner@example.com")
    body = _start(client, headers, b"x" * 1000, "text/plain", "document", "notes.txt").json
    fields = body["upload"]["fields"]
    assert body["expires_in"] == 900
    if backend["storage_backend"] == "s3":
        # moto accepts any body, so the policy itself is checked: exact type, exact size.
        policy = json.loads(base64.b64decode(fields["policy"]))
        conditions = policy["conditions"]
        assert {"Content-Type": "text/plain"} in conditions
        assert ["content-length-range", 1000, 1000] in conditions
        expires = calendar.timegm(time.strptime(policy["expiration"], "%Y-%m-%dT%H:%M:%SZ"))  # UTC, as written
        assert 800 < expires - time.time() <= 900
    else:
        assert _send(client, body["upload"], b"x" * 1001) == 400  # one byte more than declared
        assert _send(client, body["upload"], b"x" * 999) == 400  # or less
        assert _send(client, body["upload"], b"x" * (25 * 1024 * 1024 + 1)) == 413  # beyond the policy
        wrong_type = dict(body["upload"], fields={**fields, "Content-Type": "text/html"})
        assert _send(client, wrong_type, b"x" * 1000) == 403
        assert _send(client, body["upload"], b"") == 400
        assert _send(client, body["upload"], b"x" * 1000) == 204


def test_an_expired_upload_url_is_refused(make_app, backend, owner, app, api_auth):
    if backend["storage_backend"] == "s3":
        pytest.skip("moto does not enforce the policy's expiration; the policy content is tested above")
    client = make_app(**backend, upload_url_ttl_seconds=60).test_client()
    headers = api_auth.headers("owner@example.com")
    body = _start(client, headers, b"hello world", "text/plain", "document", "a.txt").json
    from app.storage.local import LocalStorage

    signer = LocalStorage("/tmp", client.application.extensions["hearth.settings"].secret_key).upload_signer
    url = urlsplit(body["upload"]["url"])
    policy = signer.loads(parse_qs(url.query)["policy"][0])
    expired = signer.dumps({**policy, "e": int(time.time()) - 1})
    assert (
        _send(client, dict(body["upload"], url=f"{url.path}?{urlencode({'policy': expired})}"), b"hello world") == 403
    )


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"filename": "x.svg", "content_type": "image/svg+xml", "size": 10, "kind": "avatar"}, "content_type"),
        ({"filename": "x.html", "content_type": "text/html", "size": 10, "kind": "document"}, "content_type"),
        ({"filename": "big.jpg", "content_type": "image/jpeg", "size": 6 * 1024 * 1024, "kind": "avatar"}, "size"),
        ({"filename": "../../etc/passwd", "content_type": "text/plain", "size": 10, "kind": "document"}, "filename"),
        ({"filename": "x.txt", "content_type": "text/plain", "size": 10, "kind": "music"}, "kind"),
    ],
)
def test_bad_requests_are_refused_before_any_byte_is_sent(client, owner, payload, field, api_auth):
    response = client.post("/api/v1/uploads/presigned", headers=api_auth.headers("owner@example.com"), json=payload)
    assert response.status_code == 422
    assert field in {error["field"] for error in response.json["errors"]}


def test_the_quota_is_enforced_before_a_url_is_issued(make_app, backend, owner, app, api_auth):
    client = make_app(**backend, upload_quota_mb=0.01).test_client()
    headers = api_auth.headers("owner@example.com")
    response = _start(client, headers, b"x" * 20000, "text/plain", "document", "a.txt")
    assert response.status_code == 422 and "quota" in response.json["detail"]


def test_a_size_mismatch_is_rejected_and_the_object_deleted(client, owner, uploads_app, backend, api_auth):
    headers = api_auth.headers("owner@example.com")
    started = _start(client, headers, b"", "text/plain", "document", "n.txt", size=10).json
    sent = _send(client, started["upload"], b"twenty bytes of text")
    confirmed = client.post(f"/api/v1/uploads/{started['upload_id']}/confirm", headers=headers)
    if backend["storage_backend"] == "local":
        # the local endpoint enforces the exact size itself: nothing was stored
        assert sent == 400 and confirmed.status_code == 409
    else:
        # moto ignores content-length-range (real S3 would answer 400): confirm is the guard
        assert confirmed.json["status"] == "rejected" and "declared" in confirmed.json["error"]
    with uploads_app.app_context():
        from app.storage import get_storage

        assert get_storage().head(db.session.get(Upload, started["upload_id"]).key) is None


def test_content_that_is_not_the_declared_type_is_rejected(client, owner, api_auth):
    headers = api_auth.headers("owner@example.com")
    _upload_id, confirmed = _upload(
        client, headers, b"<html><script>alert(1)</script></html>", "image/png", "avatar", "cat.png"
    )
    assert confirmed.json["status"] == "rejected" and "not image/png" in confirmed.json["error"]


def test_pdfs_get_their_page_count(client, owner, api_auth):
    headers = api_auth.headers("owner@example.com")
    upload_id, _ = _upload(client, headers, pdf_with_pages(3), "application/pdf", "document", "report.pdf")
    item = client.get(f"/api/v1/uploads/{upload_id}", headers=headers).json
    assert item["status"] == "ready" and item["details"]["pages"] == 3 and item["thumbnail_url"] is None


def test_other_peoples_uploads_are_not_found_unless_permitted(client, owner, make_user, api_auth):
    make_user(email="other@example.com")
    make_user(email="manager@example.com", roles=("manager",))
    upload_id, _ = _upload(client, api_auth.headers("owner@example.com"), jpeg_with_exif((64, 64)))
    other = api_auth.headers("other@example.com")
    assert client.get(f"/api/v1/uploads/{upload_id}", headers=other).status_code == 404
    assert client.post(f"/api/v1/uploads/{upload_id}/confirm", headers=other).status_code == 404
    assert client.delete(f"/api/v1/uploads/{upload_id}", headers=other).status_code == 404
    manager = api_auth.headers("manager@example.com")
    assert client.get(f"/api/v1/uploads/{upload_id}", headers=manager).status_code == 200
    assert client.post(f"/api/v1/uploads/{upload_id}/confirm", headers=manager).status_code == 404  # owner only
    assert client.delete(f"/api/v1/uploads/{upload_id}", headers=manager).status_code == 404  # no delete_any
    assert client.get("/api/v1/uploads?all_users=true", headers=other).status_code == 403
    assert client.get("/api/v1/uploads?all_users=true", headers=manager).json["meta"]["total"] == 1


def test_get_owned_upload_finds_only_the_owners_upload(app, owner, make_user):
    admin = make_user(email="admin@example.com", roles=("admin",))
    with app.app_context():
        db.session.add(
            Upload(
                id="owned",
                user_id=owner.id,
                kind="document",
                status="pending",
                filename="a.txt",
                content_type="text/plain",
                declared_size=1,
                key="k/owned",
            )
        )
        db.session.commit()
        assert service.get_owned_upload(owner.id, "owned").id == "owned"
        for user_id, upload_id in ((admin.id, "owned"), (owner.id, "missing")):
            with pytest.raises(NotFound):  # someone else's upload looks exactly like a missing one
                service.get_owned_upload(user_id, upload_id)


def test_downloads_are_short_lived_attachments(client, owner, api_auth):
    headers = api_auth.headers("owner@example.com")
    upload_id, _ = _upload(client, headers, b"plain text notes\n", "text/plain", "document", "Notes été.txt")
    link = client.get(f"/api/v1/uploads/{upload_id}/download", headers=headers).json
    assert link["expires_in"] == 300
    if link["url"].startswith("http"):
        response = urllib3.request("GET", link["url"])
        disposition, body = response.headers["Content-Disposition"], response.data
    else:
        response = client.get(link["url"])
        disposition, body = response.headers["Content-Disposition"], response.data
        assert response.mimetype == "application/octet-stream"
        assert "sandbox" in response.headers["Content-Security-Policy"]
    assert disposition.startswith("attachment") and "Notes%20%C3%A9t%C3%A9.txt" in disposition
    assert body == b"plain text notes\n"


def test_deleting_removes_the_record_object_and_thumbnail(client, owner, uploads_app, api_auth):
    headers = api_auth.headers("owner@example.com")
    upload_id, _ = _upload(client, headers, jpeg_with_exif((100, 100)))
    with uploads_app.app_context():
        upload = db.session.get(Upload, upload_id)
        keys = [upload.key, upload.thumbnail_key]
    assert client.delete(f"/api/v1/uploads/{upload_id}", headers=headers).status_code == 204
    with uploads_app.app_context():
        from app.storage import get_storage

        assert all(get_storage().head(key) is None for key in keys)
        assert db.session.get(Upload, upload_id) is None


def test_pending_uploads_older_than_an_hour_are_cleaned_up(client, owner, uploads_app, api_auth):
    from app.uploads.service import cleanup_pending

    headers = api_auth.headers("owner@example.com")
    stale = _start(client, headers, b"hello there", "text/plain", "document", "old.txt").json
    _send(client, stale["upload"], b"hello there")
    fresh = _start(client, headers, b"hello again", "text/plain", "document", "new.txt").json
    with uploads_app.app_context():
        from app.storage import get_storage

        upload = db.session.get(Upload, stale["upload_id"])
        upload.created_at = upload.created_at - timedelta(hours=2)
        key = upload.key
        db.session.commit()
        assert cleanup_pending() == 1
        assert get_storage().head(key) is None
        assert db.session.get(Upload, stale["upload_id"]) is None
        assert db.session.get(Upload, fresh["upload_id"]) is not None


def test_a_failing_processing_job_marks_the_upload_failed(client, owner, uploads_app, monkeypatch, api_auth):
    from app.uploads import service

    def broken(upload, data):
        raise OSError("decoder exploded")

    monkeypatch.setattr(service, "_image_details", broken)
    headers = api_auth.headers("owner@example.com")
    upload_id, _confirmed = _upload(client, headers, jpeg_with_exif((32, 32)))
    # jobs run inline in tests: the first attempt failed; run the remaining attempts the queue allows
    with uploads_app.app_context():
        from app.jobs.models import Job
        from tasks.runtime import run_attempt
        from tasks.uploads import process_upload

        job = db.session.scalar(db.select(Job).where(Job.task == process_upload.name))
        for _ in range(job.max_attempts - 1):  # as if each backoff delay had passed
            db.session.execute(db.update(Job).where(Job.id == job.id).values(next_attempt_at=None))
            db.session.commit()
            run_attempt(uploads_app, process_upload, job.id)
        db.session.expire_all()
        assert db.session.get(Job, job.id).status == "failed"
        upload = db.session.get(Upload, upload_id)
        # The owner reads a sentence; the exception stays on the job, for its admin page.
        assert (upload.status, upload.error) == ("failed", "Processing failed: Unexpected error (OSError).")
        assert "OSError: decoder exploded" in db.session.get(Job, job.id).traceback


def test_a_failed_processing_attempt_keeps_processing_but_nothing_half_done(
    client, owner, uploads_app, monkeypatch, api_auth
):
    from app.jobs.models import Job

    def half_done(upload, data):
        upload.thumbnail_key = upload.key + ".half-made-thumbnail"
        raise OSError("decoder exploded")

    monkeypatch.setattr(service, "_image_details", half_done)
    upload_id, _confirmed = _upload(client, api_auth.headers("owner@example.com"), jpeg_with_exif((32, 32)))
    with uploads_app.app_context():
        upload = db.session.get(Upload, upload_id)
        job = db.session.scalar(db.select(Job))
        # `processing` was its own unit of work; the attempt's own bookkeeping too; the failed part rolled back.
        assert (upload.status, upload.thumbnail_key) == ("processing", None)
        assert (job.status, job.attempts) == ("retrying", 1) and "decoder exploded" in job.traceback


def test_uploads_are_listed_paginated_and_filtered(client, owner, api_auth):
    headers = api_auth.headers("owner@example.com")
    _upload(client, headers, b"one\n", "text/plain", "document", "1.txt")
    _upload(client, headers, jpeg_with_exif((20, 20)), "image/jpeg", "avatar", "a.jpg")
    everything = client.get("/api/v1/uploads", headers=headers).json
    assert everything["meta"]["total"] == 2
    documents = client.get("/api/v1/uploads?kind=document", headers=headers).json["items"]
    assert [item["filename"] for item in documents] == ["1.txt"]
    assert client.get("/api/v1/uploads?status=ready&per_page=1", headers=headers).json["meta"]["pages"] == 2
