"""The storage contract both backends honour (tests/integration/test_storage.py runs it on both)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


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
    def presign_upload(self, key: str, content_type: str, max_size: int, expires_in: int) -> PresignedPost:
        """A POST that can store exactly `key`, with exactly `content_type`, of 1..max_size bytes."""

    def presign_download(self, key: str, filename: str, expires_in: int) -> str:
        """A short-lived GET URL that downloads the object as an attachment named `filename`."""

    def head(self, key: str) -> ObjectInfo | None: ...

    def read(self, key: str, length: int | None = None) -> bytes:
        """The object's bytes (the first `length` bytes if given)."""

    def put(self, key: str, data: bytes, content_type: str) -> None: ...

    def delete(self, key: str) -> None:
        """Remove the object; removing a missing object is not an error."""
