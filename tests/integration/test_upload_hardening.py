"""Issue 10, uploads and storage: what was checked is what is served (8), decompression bombs
(9), the local upload endpoint reads no body before its policy holds (10), upload and
download tokens are not interchangeable (11). Both storage backends where they differ."""

# ruff: noqa: F811  (the fixtures imported from test_uploads are parameters of the tests below)
from __future__ import annotations

import base64
import io
import json
import os
import resource
import struct
import time
import zlib
from datetime import timedelta
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import urllib3
from PIL import Image

from app.extensions import db
from app.uploads.models import Upload
from tests.integration.test_uploads import (  # noqa: F401  (shared fixtures and helpers)
    _send,
    _start,
    _upload,
    backend,
    client,
    owner,
    s3_endpoint,
    uploads_app,
)

MB = 1024 * 1024
PILLOW_DEFAULT_MAX_PIXELS = 1024 * 1024 * 1024 // 4 // 3


def small_png() -> bytes:
    image = Image.new("RGB", (12, 12), (30, 120, 200))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def png_bomb(width: int = 12000, height: int = 12000) -> bytes:
    """A valid PNG of `width`×`height` black RGB pixels: about 410 KB on disk for 12000²,
    432 MB once decoded. Compressed row by row, so making it needs no decoded image."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    compressor = zlib.compressobj(9)
    row = b"\x00" * (width * 3 + 1)  # filter byte + pixels
    data = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def bomb() -> bytes:
    return png_bomb()


def _download(client, url: str) -> bytes:
    if url.startswith("http"):
        return urllib3.request("GET", url).data
    response = client.get(url)
    assert response.status_code == 200
    return response.data


def _served(client, headers, upload_id: str) -> bytes:
    return _download(client, client.get(f"/api/v1/uploads/{upload_id}/download", headers=headers).json["url"])


def _policy_token(post: dict) -> str:
    """The local backend's signed policy (in the URL; a form field before issue 10)."""
    return parse_qs(urlsplit(post["url"]).query).get("policy", [post["fields"].get("policy")])[0]


# 8. The presigned policy cannot change what is served ----------------------------------------


def test_the_policy_allows_exactly_the_declared_size_at_a_staging_key(client, owner, backend, uploads_app, api_auth):
    headers = api_auth.headers("owner@example.com")
    started = _start(client, headers, small_png(), "image/png", "avatar", "cat.png").json
    post = started["upload"]
    with uploads_app.app_context():
        final_key = db.session.get(Upload, started["upload_id"]).key
    staging = f"staging/{started['upload_id']}"
    if backend["storage_backend"] == "s3":
        conditions = json.loads(base64.b64decode(post["fields"]["policy"]))["conditions"]
        size = len(small_png())
        assert ["content-length-range", size, size] in conditions
        assert {"key": staging} in conditions and post["fields"]["key"] == staging
    else:
        from app.storage.local import LocalStorage

        signer = LocalStorage("/tmp", uploads_app.extensions["hearth.settings"].secret_key).upload_signer
        policy = signer.loads(_policy_token(post))
        assert policy["k"] == staging and policy["s"] == len(small_png()) and policy["t"] == "image/png"
    assert final_key != staging and not final_key.startswith("staging/")


def test_a_post_replayed_after_confirm_never_changes_what_is_served(client, owner, backend, uploads_app, api_auth):
    headers = api_auth.headers("owner@example.com")
    png = small_png()
    started = _start(client, headers, png, "image/png", "avatar", "cat.png").json
    assert _send(client, started["upload"], png, "cat.png") in (201, 204)
    upload_id = started["upload_id"]
    confirmed = client.post(f"/api/v1/uploads/{upload_id}/confirm", headers=headers).json
    assert confirmed["status"] == "ready"
    with uploads_app.app_context():
        from app.storage import get_storage

        assert get_storage().head(f"staging/{upload_id}") is None  # moved away, nothing left to replay onto
    served = _served(client, headers, upload_id)
    assert served.startswith(b"\x89PNG")

    html = b"<html><script>alert(document.cookie)</script>"
    big = html + b" " * (4 * MB - len(html))
    same_size = html + b" " * (len(png) - len(html))
    replayed_big = _send(client, started["upload"], big, "cat.png")
    replayed_same = _send(client, started["upload"], same_size, "cat.png")
    if backend["storage_backend"] == "local":
        assert replayed_big == 413 and replayed_same == 204  # exact size enforced; the key is staging
    else:
        assert replayed_same in (201, 204)  # moto enforces no length range; the policy test covers it

    assert _served(client, headers, upload_id) == served
    assert client.get(f"/api/v1/uploads/{upload_id}", headers=headers).json["status"] == "ready"
    # a second confirm cannot pull the replayed object in either
    assert client.post(f"/api/v1/uploads/{upload_id}/confirm", headers=headers).status_code == 409
    assert _served(client, headers, upload_id) == served


def test_confirm_checks_the_moved_object_and_a_rejection_deletes_it(client, owner, uploads_app, api_auth):
    headers = api_auth.headers("owner@example.com")
    html = b"<html><script>alert(1)</script></html>"
    upload_id, confirmed = _upload(client, headers, html, "image/png", "avatar", "cat.png")
    assert confirmed.json["status"] == "rejected" and "not image/png" in confirmed.json["error"]
    with uploads_app.app_context():
        from app.storage import get_storage

        key = db.session.get(Upload, upload_id).key
        assert get_storage().head(key) is None and get_storage().head(f"staging/{upload_id}") is None


def test_confirm_before_anything_arrived_keeps_the_upload_pending(client, owner, api_auth):
    headers = api_auth.headers("owner@example.com")
    started = _start(client, headers, b"hello\n", "text/plain", "document", "a.txt").json
    response = client.post(f"/api/v1/uploads/{started['upload_id']}/confirm", headers=headers)
    assert response.status_code == 409 and "Nothing has been uploaded" in response.json["detail"]
    assert _send(client, started["upload"], b"hello\n", "a.txt") in (201, 204)
    assert client.post(f"/api/v1/uploads/{started['upload_id']}/confirm", headers=headers).json["status"] == "ready"


def test_a_confirmation_interrupted_after_the_move_can_be_repeated(client, owner, uploads_app, api_auth):
    headers = api_auth.headers("owner@example.com")
    started = _start(client, headers, b"notes\n", "text/plain", "document", "a.txt").json
    assert _send(client, started["upload"], b"notes\n", "a.txt") in (201, 204)
    with uploads_app.app_context():
        from app.storage import get_storage

        # as if a confirmation died between the move and its commit (or the upload was
        # presigned to its final key before staging keys existed)
        assert get_storage().move(f"staging/{started['upload_id']}", db.session.get(Upload, started["upload_id"]).key)
    assert client.post(f"/api/v1/uploads/{started['upload_id']}/confirm", headers=headers).json["status"] == "ready"
    assert _served(client, headers, started["upload_id"]) == b"notes\n"


def test_staging_objects_outliving_their_policy_are_purged(client, owner, backend, uploads_app, api_auth):
    from app.storage import get_storage
    from app.uploads.service import STAGING_PREFIX, cleanup_pending

    headers = api_auth.headers("owner@example.com")
    upload_id, _ = _upload(client, headers, b"notes\n", "text/plain", "document", "a.txt")
    started = _start(client, headers, b"notes\n", "text/plain", "document", "a.txt").json
    with uploads_app.app_context():
        key = db.session.get(Upload, upload_id).key
    # a replay after confirmation leaves a staging object that nothing serves
    replay_key = f"staging/{started['upload_id']}"
    assert _send(client, started["upload"], b"notes\n", "a.txt") in (201, 204)
    with uploads_app.app_context():
        storage = get_storage()
        assert storage.purge(STAGING_PREFIX, _past()) == 0  # fresh: kept
        assert storage.head(replay_key) is not None
        if backend["storage_backend"] == "local":
            old = time.time() - 2 * 3600
            path = storage._path(replay_key)
            os.utime(path, (old, old))
            cleanup_pending()  # the periodic task (every 10 minutes)
        else:
            # S3 sets LastModified itself: purge with a cutoff after the write instead
            assert storage.purge(STAGING_PREFIX, _future()) == 1
        assert storage.head(replay_key) is None
        assert storage.head(key) is not None  # served objects are never under the staging prefix


def _past():
    from app.core.database import utcnow

    return utcnow() - timedelta(hours=1)


def _future():
    from app.core.database import utcnow

    return utcnow() + timedelta(minutes=1)


# 9. Decompression bombs ----------------------------------------------------------------------


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def test_a_decompression_bomb_is_rejected_from_its_header(client, owner, uploads_app, bomb, api_auth):
    assert len(bomb) < 500 * 1024  # ~410 KB on disk, 432 MB decoded
    headers = api_auth.headers("owner@example.com")
    before = _peak_rss_mb()
    upload_id, _ = _upload(client, headers, bomb, "image/png", "avatar", "bomb.png")
    item = client.get(f"/api/v1/uploads/{upload_id}", headers=headers).json
    assert item["status"] == "rejected"
    assert item["error"] == "The image is 12000×12000 pixels (144 megapixels); the limit is 40 megapixels."
    assert item["thumbnail_url"] is None
    # nothing was decoded in this process (the old code peaked near 1.8 GB here)
    assert _peak_rss_mb() - before < 200
    # Pillow's process-wide limit here is untouched: the cap lives in the decoding child
    assert Image.MAX_IMAGE_PIXELS == PILLOW_DEFAULT_MAX_PIXELS
    with uploads_app.app_context():
        from app.storage import get_storage

        assert get_storage().head(db.session.get(Upload, upload_id).key) is None


def test_decoding_memory_is_bounded_per_job(make_app, backend, owner, app, bomb, api_auth):
    # with the pixel cap lifted, the bomb reaches the decoder: the child's own limit stops it
    client = make_app(**backend, upload_image_max_pixels=200_000_000, upload_processing_memory_mb=256).test_client()
    headers = api_auth.headers("owner@example.com")
    before = _peak_rss_mb()
    upload_id, _ = _upload(client, headers, bomb, "image/png", "avatar", "bomb.png")
    item = client.get(f"/api/v1/uploads/{upload_id}", headers=headers).json
    assert item["status"] == "rejected"
    assert item["error"] == "The file needs more than 256 MB of memory to process."
    assert _peak_rss_mb() - before < 200


def test_an_image_within_the_limits_is_still_processed(make_app, backend, owner, app, api_auth):
    client = make_app(**backend, upload_image_max_pixels=1_000_000).test_client()
    headers = api_auth.headers("owner@example.com")
    image = Image.new("RGB", (1000, 1000), (10, 200, 30))
    out = io.BytesIO()
    image.save(out, format="PNG")
    upload_id, _ = _upload(client, headers, out.getvalue(), "image/png", "avatar", "square.png")
    item = client.get(f"/api/v1/uploads/{upload_id}", headers=headers).json
    assert item["status"] == "ready" and (item["details"]["width"], item["details"]["height"]) == (1000, 1000)
    wide = Image.new("RGB", (1001, 1000))
    out = io.BytesIO()
    wide.save(out, format="PNG")
    upload_id, _ = _upload(client, headers, out.getvalue(), "image/png", "avatar", "wide.png")
    assert "the limit is 1.0 megapixels" in client.get(f"/api/v1/uploads/{upload_id}", headers=headers).json["error"]


# 10. The local upload endpoint reads no body before its policy holds --------------------------


class CountingStream:
    """A multipart body of `size` bytes made on demand, one file part of zeros, which counts
    the bytes read from it (seek/tell only let the test client measure it)."""

    HEAD = b'--hearth\r\nContent-Disposition: form-data; name="file"; filename="big.bin"\r\n\r\n'

    def __init__(self, size: int):
        self.size, self.position, self.read_bytes = size, 0, 0

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = 0) -> int:
        self.position = self.size + offset if whence == 2 else offset
        return self.position

    def read(self, n: int = -1) -> bytes:
        start = self.position
        n = self.size - start if n is None or n < 0 else min(n, self.size - start)
        self.position += n
        self.read_bytes += n
        head = self.HEAD[start : start + n]
        return head + b"\x00" * (n - len(head))

    def readline(self, n: int = -1) -> bytes:
        return self.read(n if n is not None and n >= 0 else 65536)


@pytest.fixture()
def local_client(make_app, tmp_path, app):
    return make_app(storage_backend="local", storage_local_path=str(tmp_path / "objects")).test_client()


def _post_stream(client, url: str, size: int):
    stream = CountingStream(size)
    response = client.post(
        url,
        input_stream=stream,
        content_type="multipart/form-data; boundary=hearth",
    )
    return response, stream


def _spooled_files(root) -> list:
    return [path for path in root.rglob("*") if path.is_file()] if root.exists() else []


@pytest.mark.parametrize("policy", [None, "bogus", "eyJrIjoiYSJ9.forged"])
def test_a_bogus_policy_is_refused_before_the_body_is_read(local_client, tmp_path, policy):
    url = "/storage/upload" + (f"?{urlencode({'policy': policy})}" if policy else "")
    response, stream = _post_stream(local_client, url, 300 * MB)
    assert stream.read_bytes == 0  # nothing spooled anywhere: the body was never read
    assert response.status_code == 403
    assert _spooled_files(tmp_path / "objects") == []


def test_an_expired_policy_is_refused_before_the_body_is_read(local_client, tmp_path):
    from app.storage.local import LocalStorage

    secret = local_client.application.extensions["hearth.settings"].secret_key
    signer = LocalStorage(tmp_path, secret).upload_signer
    token = signer.dumps({"k": "staging/x", "t": "text/plain", "s": 10, "e": int(time.time()) - 1})
    response, stream = _post_stream(local_client, f"/storage/upload?{urlencode({'policy': token})}", 300 * MB)
    assert stream.read_bytes == 0 and response.status_code == 403


def test_a_body_larger_than_its_policy_gets_413(local_client, owner, tmp_path, api_auth):
    headers = api_auth(local_client).headers("owner@example.com")
    started = _start(local_client, headers, b"x" * 1000, "text/plain", "document", "a.txt").json
    # declared too large: refused from Content-Length, unread
    response, stream = _post_stream(local_client, started["upload"]["url"], 300 * MB)
    assert stream.read_bytes == 0 and response.status_code == 413
    # really too large: the capped stream stops it
    assert _send(local_client, started["upload"], b"x" * (1000 + 65 * 1024)) == 413
    assert [p for p in _spooled_files(tmp_path / "objects") if p.name.endswith(".part")] == []


# 11. Upload policies and download links are different tokens ---------------------------------


def test_a_download_link_is_not_an_upload_policy(local_client, owner, api_auth):
    headers = api_auth(local_client).headers("owner@example.com")
    upload_id, _ = _upload(local_client, headers, b"notes\n", "text/plain", "document", "a.txt")
    link = local_client.get(f"/api/v1/uploads/{upload_id}/download", headers=headers).json["url"]
    token = link.rsplit("/", 1)[1]
    with local_client.application.app_context():
        key = db.session.get(Upload, upload_id).key
    form = {"key": key, "policy": token, "Content-Type": "text/plain", "file": (io.BytesIO(b"evil\n"), "a.txt")}
    response = local_client.post(
        f"/storage/upload?{urlencode({'policy': token})}", data=form, content_type="multipart/form-data"
    )
    assert response.status_code == 403
    assert local_client.get(link).data == b"notes\n"


def test_an_upload_policy_is_not_a_download_link(local_client, owner, api_auth):
    headers = api_auth(local_client).headers("owner@example.com")
    started = _start(local_client, headers, b"notes\n", "text/plain", "document", "a.txt").json
    assert _send(local_client, started["upload"], b"notes\n", "a.txt") == 204  # the policy's key now exists
    token = _policy_token(started["upload"])
    response = local_client.get(f"/storage/download/{token}")
    assert response.status_code == 403 and b"notes" not in response.data


@pytest.mark.parametrize(
    "payload",
    [
        [],
        "text",
        {"k": "a"},
        {"k": 1, "f": "a", "e": 1},
        {"k": "a", "f": "a", "e": "soon"},
        {"k": "a", "f": "a", "e": True},
    ],
)
def test_signed_but_malformed_tokens_are_refused_cleanly(local_client, tmp_path, payload):
    from app.storage.local import LocalStorage

    storage = LocalStorage(tmp_path, local_client.application.extensions["hearth.settings"].secret_key)
    download = local_client.get(f"/storage/download/{storage.download_signer.dumps(payload)}")
    assert download.status_code == 403
    upload = local_client.post(
        f"/storage/upload?{urlencode({'policy': storage.upload_signer.dumps(payload)})}",
        data={"file": (io.BytesIO(b"x"), "a.txt")},
        content_type="multipart/form-data",
    )
    assert upload.status_code == 403
