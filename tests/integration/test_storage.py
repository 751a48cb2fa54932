"""The storage contract, run against both backends (S3 through moto's HTTP server, local disk)."""

from __future__ import annotations

import pytest
import urllib3

from tests.integration.test_uploads import backend, s3_endpoint  # noqa: F401  (shared fixtures)


@pytest.fixture()
def storage_app(make_app, backend):  # noqa: F811
    return make_app(**backend)


def test_put_head_read_and_delete(storage_app):
    from app.storage import get_storage

    with storage_app.test_request_context():
        storage = get_storage()
        key = "contract/a/b/object.txt"
        assert storage.head(key) is None
        storage.put(key, b"hello storage", "text/plain")
        info = storage.head(key)
        assert info.size == 13 and info.content_type == "text/plain"
        assert storage.read(key) == b"hello storage"
        assert storage.read(key, 5) == b"hello"
        storage.delete(key)
        assert storage.head(key) is None
        storage.delete(key)  # deleting a missing object is not an error


def test_move_replaces_the_target_with_its_content_type_and_purge_takes_old_objects(storage_app):
    from datetime import UTC, datetime, timedelta

    from app.storage import get_storage

    with storage_app.test_request_context():
        storage = get_storage()
        storage.put("contract/staging/a", b"new bytes", "image/png")
        storage.put("contract/final/a", b"old", "text/plain")
        assert storage.move("contract/staging/a", "contract/final/a") is True
        assert storage.head("contract/staging/a") is None
        assert storage.read("contract/final/a") == b"new bytes"
        assert storage.head("contract/final/a").content_type == "image/png"
        assert storage.move("contract/staging/a", "contract/final/b") is False  # no source
        assert storage.head("contract/final/b") is None
        storage.put("contract/staging/b", b"x", "text/plain")
        now = datetime.now(UTC)
        assert storage.purge("contract/staging/", now - timedelta(hours=1)) == 0  # too recent
        assert storage.purge("contract/staging/", now + timedelta(minutes=1)) == 1
        assert storage.head("contract/staging/b") is None
        assert storage.head("contract/final/a") is not None  # other prefixes untouched
        assert storage.purge("contract/nothing-here/", now) == 0
        storage.delete("contract/final/a")


def test_put_stream_stores_in_chunks_and_refuses_more_than_its_limit(storage_app):
    import io

    from app.storage import ObjectTooLarge, get_storage
    from app.storage.base import STREAM_CHUNK

    data = bytes(range(256)) * (STREAM_CHUNK // 256 * 2 + 3)  # two chunks and a bit
    with storage_app.test_request_context():
        storage = get_storage()
        assert storage.put_stream("contract/stream/ok", io.BytesIO(data), "video/mp4", len(data)) == len(data)
        assert storage.read("contract/stream/ok") == data
        assert storage.head("contract/stream/ok").content_type == "video/mp4"
        source = io.BytesIO(data)
        with pytest.raises(ObjectTooLarge):
            storage.put_stream("contract/stream/big", source, "video/mp4", STREAM_CHUNK)
        assert storage.head("contract/stream/big") is None  # nothing stored, not even a part
        assert source.tell() <= 2 * STREAM_CHUNK < len(data)  # it stopped reading past the limit
        storage.delete("contract/stream/ok")


def test_open_streams_the_object_in_the_reads_asked_for(storage_app):
    """`open` is a reader, not a download: each read returns at most what was asked (the
    account-data export copies files through it; tests/integration/test_export_renderers.py
    bounds its memory on both backends)."""
    import os

    from app.storage import get_storage
    from app.storage.base import STREAM_CHUNK

    data = os.urandom(2 * STREAM_CHUNK + 5)
    with storage_app.test_request_context():
        storage = get_storage()
        storage.put("contract/open/blob", data, "application/octet-stream")
        with storage.open("contract/open/blob") as reader:
            first = reader.read(1000)
            chunks = []
            while chunk := reader.read(STREAM_CHUNK):
                assert len(chunk) <= STREAM_CHUNK
                chunks.append(chunk)
        assert first == data[:1000] and first + b"".join(chunks) == data
        for missing in ("contract/open/missing", "contract/open"):  # nothing there; a "folder" of keys
            with pytest.raises(FileNotFoundError):
                storage.open(missing)
        storage.delete("contract/open/blob")


def test_presigned_downloads_are_attachments(storage_app):
    from app.storage import get_storage

    with storage_app.test_request_context():
        storage = get_storage()
        storage.put("contract/page.html", b"<script>alert(1)</script>", "text/html")
        url = storage.presign_download("contract/page.html", "page.html", 60)
    if url.startswith("http"):
        response = urllib3.request("GET", url)
        headers, body = response.headers, response.data
    else:
        response = storage_app.test_client().get(url)
        headers, body = response.headers, response.data
    assert headers["Content-Disposition"].startswith("attachment")
    assert headers["Content-Type"] == "application/octet-stream"
    assert body == b"<script>alert(1)</script>"


def test_keys_cannot_escape_the_local_root(tmp_path):
    from app.storage.local import LocalStorage

    storage = LocalStorage(tmp_path, "s" * 40)
    with pytest.raises(ValueError, match="escapes"):
        storage.put("../outside.txt", b"x", "text/plain")


@pytest.mark.parametrize("name", ["../etc/passwd", "a/b.txt", "..", "bad\x00name", "tab\tname", ""])
def test_unsafe_file_names_are_refused(name):
    from app.storage.names import UnsafeFileName, safe_file_name

    with pytest.raises(UnsafeFileName):
        safe_file_name(name)


def test_key_segments_are_ascii_slugs():
    from app.storage.names import key_segment

    assert key_segment("Résumé final (v2).pdf") == "Resume-final--v2-.pdf"
    assert key_segment("日本語") == "file"
