"""The storage contract both backends honour (tests/integration/test_storage.py runs it on both)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from flask import current_app


@dataclass(frozen=True)
class PresignedPost:
    """Where and how a browser uploads one object: a multipart POST of `fields` plus `file`."""

    url: str
    fields: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ObjectInfo:
    size: int
    content_type: str | None


class Storage(Protocol):
    def presign_upload(self, key: str, content_type: str, size: int, expires_in: int) -> PresignedPost:
        """A POST that can store exactly `key`, with exactly `content_type`, of exactly `size` bytes.

        Until it expires the POST can be sent again, so callers never serve `key` itself: they
        `move` it to a key no policy names before checking it (app/uploads/service.py)."""

    def presign_download(self, key: str, filename: str, expires_in: int) -> str:
        """A short-lived GET URL that downloads the object as an attachment named `filename`."""

    def head(self, key: str) -> ObjectInfo | None: ...

    def read(self, key: str, length: int | None = None) -> bytes:
        """The object's bytes (the first `length` bytes if given)."""

    def put(self, key: str, data: bytes, content_type: str) -> None: ...

    def move(self, source: str, target: str) -> bool:
        """Move an object (with its content type) to `target`, replacing what is there;
        False when `source` does not exist."""

    def delete(self, key: str) -> None:
        """Remove the object; removing a missing object is not an error."""

    def purge(self, prefix: str, older_than: datetime) -> int:
        """Remove the objects under `prefix` last written before `older_than`; how many."""


EXTENSION_KEY = "hearth.storage"  # `app.extensions` key of the app's Storage (app.storage.init_storage)


def get_storage() -> Storage:
    """The current app's storage."""
    return current_app.extensions[EXTENSION_KEY]
