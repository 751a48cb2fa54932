"""The storage contract both backends honour (tests/integration/test_storage.py runs it on both)."""

from __future__ import annotations

import errno
from dataclasses import dataclass, field
from datetime import datetime
from typing import BinaryIO, Protocol

from flask import current_app

from app.core.circuit import Throttle
from app.errors import StorageFull, StorageUnavailable
from app.i18n import _
from app.logging import get_logger

log = get_logger("hearth.storage")


@dataclass(frozen=True)
class PresignedPost:
    """Where and how a browser uploads one object: a multipart POST of `fields` plus `file`."""

    url: str
    fields: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ObjectInfo:
    size: int
    content_type: str | None


STREAM_CHUNK = 256 * 1024  # what `put_stream` reads at a time


class ObjectTooLarge(Exception):
    """`put_stream` read more than its `max_bytes`: nothing was stored."""

    def __init__(self, max_bytes: int):
        super().__init__(f"more than {max_bytes} bytes")
        self.max_bytes = max_bytes


class CappedReader:
    """A read-only view of `stream` that counts what is read and raises ObjectTooLarge as soon
    as the count passes `max_bytes` (for clients that pull from a file object, like boto3)."""

    def __init__(self, stream: BinaryIO, max_bytes: int):
        self.stream, self.max_bytes, self.count = stream, max_bytes, 0

    def read(self, size: int = -1) -> bytes:
        wanted = STREAM_CHUNK if size is None or size < 0 else size
        # Never more than one byte past the limit, however much the client asks for.
        chunk = self.stream.read(min(wanted, self.max_bytes - self.count + 1))
        self.count += len(chunk)
        if self.count > self.max_bytes:
            raise ObjectTooLarge(self.max_bytes)
        return chunk

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False


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

    def open(self, key: str) -> BinaryIO:
        """A reader of the object's bytes from the start, streamed: each `read(n)` fetches about
        `n` bytes, never the whole object at once (the account-data export copies uploads into a
        ZIP this way). Close it when done (`with storage.open(key) as reader:`). A missing
        object raises FileNotFoundError, on both backends."""

    def put(self, key: str, data: bytes, content_type: str) -> None: ...

    def put_stream(self, key: str, stream: BinaryIO, content_type: str, max_bytes: int) -> int:
        """Store what `stream` yields, read in chunks (never whole in memory); the bytes stored.
        Past `max_bytes` it stops reading, stores nothing and raises ObjectTooLarge."""

    def move(self, source: str, target: str) -> bool:
        """Move an object (with its content type) to `target`, replacing what is there;
        False when `source` does not exist."""

    def delete(self, key: str) -> None:
        """Remove the object; removing a missing object is not an error."""

    def purge(self, prefix: str, older_than: datetime) -> int:
        """Remove the objects under `prefix` last written before `older_than`; how many."""


# Disk full, or the user's/filesystem's quota reached: no room, as opposed to a broken disk.
NO_ROOM = frozenset({errno.ENOSPC, errno.EDQUOT})
UNAVAILABLE_WARN_EVERY = 30.0


def storage_unavailable(backend: str, operation: str, error: BaseException, throttle: Throttle) -> StorageUnavailable:
    """The domain error for storage that cannot be reached (503, Retry-After); logs one
    `storage_unavailable` warning per UNAVAILABLE_WARN_EVERY seconds per app."""
    occurrences = throttle.due()
    if occurrences:
        log.warning(
            "storage_unavailable",
            backend=backend,
            operation=operation,
            error=f"{type(error).__name__}: {error}"[:300],
            failures=occurrences,
        )
    return StorageUnavailable(_("File storage can’t be reached at the moment. Please try again shortly."))


def storage_full(backend: str, operation: str, error: OSError, throttle: Throttle) -> StorageFull:
    """The domain error for storage without room (507); one `storage_full` warning per window."""
    occurrences = throttle.due()
    if occurrences:
        log.warning(
            "storage_full", backend=backend, operation=operation, error=f"{error.strerror}", failures=occurrences
        )
    return StorageFull(_("There is no room left to store this file. Please try again later."))


EXTENSION_KEY = "hearth.storage"  # `app.extensions` key of the app's Storage (app.storage.init_storage)


def get_storage() -> Storage:
    """The current app's storage."""
    return current_app.extensions[EXTENSION_KEY]
