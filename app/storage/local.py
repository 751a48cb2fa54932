"""Local-disk storage with the same signed-upload flow as S3's presigned POST.

The "presigned POST" is a form aimed at this app's `/storage/upload?policy=<token>`: the
token is a signed, expiring policy (key, exact Content-Type, exact size). The endpoint checks
the signature and the expiry from the query string before it reads a byte of the body, caps
the body at the policy's size, and then enforces the rest as S3 would: wrong key or type → 403,
wrong size → 400 (413 when the declared body is larger than the policy allows), nothing written.
Downloads go through `/storage/download/<token>`, always as attachments.

Upload policies and download links are signed with different salts, so one can never be
used as the other (a swapped token is a plain 403).
"""

from __future__ import annotations

import io
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any, BinaryIO

from flask import Blueprint, Response, abort, request, send_file, url_for
from itsdangerous import BadSignature, URLSafeSerializer
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.formparser import FormDataParser

from app.core.circuit import Throttle
from app.core.security_headers import own_content_security_policy
from app.i18n import _
from app.storage.base import (
    NO_ROOM,
    STREAM_CHUNK,
    UNAVAILABLE_WARN_EVERY,
    ObjectInfo,
    ObjectTooLarge,
    PresignedPost,
    get_storage,
    storage_full,
    storage_unavailable,
)
from app.storage.names import attachment_disposition

local_storage_bp = Blueprint("local_storage", __name__, url_prefix="/storage")
# The pipeline's ceiling for this endpoint before the policy is known (app/pipeline.py
# `_enforce_body_limit`); the view lowers it to the policy's own size before reading the body.
LARGEST_LOCAL_UPLOAD = 2 * 1024 * 1024 * 1024
# Room for the boundaries, part headers and the `key`/`Content-Type` fields around the file.
MULTIPART_ALLOWANCE = 64 * 1024
# Werkzeug's decoder buffers up to this much per read (it reads 64 KiB at a time); it also
# bounds each text field in memory.
FORM_MEMORY_BYTES = 256 * 1024
FORM_PARTS = 8
UPLOAD_SALT = "hearth.local-storage.upload"
DOWNLOAD_SALT = "hearth.local-storage.download"
CONTENT_TYPE_SUFFIX = ".content-type"


@dataclass(frozen=True)
class UploadPolicy:
    key: str
    content_type: str
    size: int
    expires: int


@dataclass(frozen=True)
class DownloadGrant:
    key: str
    filename: str
    expires: int


def _fields(payload: Any, names: tuple[str, ...], types: tuple[type, ...]) -> tuple[Any, ...] | None:
    """The payload's values for `names` if it is a dict holding exactly those, of those types."""
    if not isinstance(payload, dict) or set(payload) != set(names):
        return None
    values = tuple(payload[name] for name in names)
    if not all(
        isinstance(value, kind) and not isinstance(value, bool) for value, kind in zip(values, types, strict=True)
    ):
        return None
    return values


class LocalStorage:
    def __init__(self, root: Path, secret: str):
        self.root = Path(root).resolve()
        self.warnings = Throttle(UNAVAILABLE_WARN_EVERY)
        self.upload_signer = URLSafeSerializer(secret, salt=UPLOAD_SALT)
        self.download_signer = URLSafeSerializer(secret, salt=DOWNLOAD_SALT)

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root):
            raise ValueError("object key escapes the storage root")
        return path

    def presign_upload(self, key: str, content_type: str, size: int, expires_in: int) -> PresignedPost:
        self._path(key)  # refuse a key outside the root now, not when the browser posts
        token = self.upload_signer.dumps({"k": key, "t": content_type, "s": size, "e": int(time.time()) + expires_in})
        # The policy rides in the query string so it is checked before the body is read.
        return PresignedPost(
            url=url_for("local_storage.upload", policy=token), fields={"key": key, "Content-Type": content_type}
        )

    def presign_download(self, key: str, filename: str, expires_in: int) -> str:
        token = self.download_signer.dumps({"k": key, "f": filename, "e": int(time.time()) + expires_in})
        return url_for("local_storage.download", token=token)

    def head(self, key: str) -> ObjectInfo | None:
        path = self._path(key)
        if not path.is_file():
            return None
        content_type = self._path(key + CONTENT_TYPE_SUFFIX)
        return ObjectInfo(
            size=path.stat().st_size, content_type=content_type.read_text() if content_type.is_file() else None
        )

    def read(self, key: str, length: int | None = None) -> bytes:
        with self._path(key).open("rb") as handle:
            return handle.read(length if length is not None else -1)

    def open(self, key: str) -> BinaryIO:
        path = self._path(key)
        if not path.is_file():  # a folder of keys is not an object either
            raise FileNotFoundError(key)
        return path.open("rb")

    def put(self, key: str, data: bytes, content_type: str) -> None:
        self.put_stream(key, io.BytesIO(data), content_type, len(data))

    def put_stream(self, key: str, stream: BinaryIO, content_type: str, max_bytes: int) -> int:
        """Write the object and its Content-Type to part files, then rename both into place: a
        reader never sees half an object. On any failure (too large, disk full) nothing changes:
        no part file is left, and an object being overwritten keeps its old bytes and type."""
        path = self._path(key)
        written = 0
        with self._room("put"):
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
            type_fd, type_tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".type")
            try:
                with os.fdopen(type_fd, "w") as out:
                    out.write(content_type)
                with os.fdopen(fd, "wb") as out:
                    while chunk := stream.read(STREAM_CHUNK):
                        written += len(chunk)
                        if written > max_bytes:
                            raise ObjectTooLarge(max_bytes)
                        out.write(chunk)
                # Renames need no room: once the bytes are written, both land.
                os.replace(tmp, path)
                os.replace(type_tmp, self._path(key + CONTENT_TYPE_SUFFIX))
            finally:
                for part in (tmp, type_tmp):  # only left when something failed
                    Path(part).unlink(missing_ok=True)
        return written

    def _write_content_type(self, key: str, content_type: str) -> None:
        """A just-received upload's Content-Type beside it; without room for it, the upload goes
        too (the browser is told to try again, nothing half-kept)."""
        try:
            self._path(key + CONTENT_TYPE_SUFFIX).write_text(content_type)
        except OSError:
            self.delete(key)
            raise

    @contextmanager
    def _room(self, operation: str) -> Iterator[None]:
        """A full disk (or quota) is StorageFull (507), any other OS failure to write
        StorageUnavailable (503), both logged once per window, never a 500."""
        try:
            yield
        except OSError as error:
            if isinstance(error, FileNotFoundError | IsADirectoryError | NotADirectoryError):
                raise  # a key that is not there, or not a file: the caller's business
            if operation == "upload" and isinstance(error, ConnectionError | TimeoutError):
                # The browser's body stopped coming (reset, timed out): the client's failure.
                abort(400, "The upload was interrupted before the whole file arrived.")
            if error.errno in NO_ROOM:
                raise storage_full("local", operation, error, self.warnings) from error
            raise storage_unavailable("local", operation, error, self.warnings) from error

    def move(self, source: str, target: str) -> bool:
        source_path, target_path = self._path(source), self._path(target)
        target_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(source_path, target_path)  # atomic: a later upload to `source` is a new file
        except FileNotFoundError:
            return False
        try:
            os.replace(self._path(source + CONTENT_TYPE_SUFFIX), self._path(target + CONTENT_TYPE_SUFFIX))
        except FileNotFoundError:
            self._path(target + CONTENT_TYPE_SUFFIX).unlink(missing_ok=True)
        return True

    def delete(self, key: str) -> None:
        for path in (self._path(key), self._path(key + CONTENT_TYPE_SUFFIX)):
            path.unlink(missing_ok=True)

    def purge(self, prefix: str, older_than: datetime) -> int:
        base = self._path(prefix)
        if not base.is_dir():
            return 0
        cutoff, removed = older_than.timestamp(), 0
        for path in base.rglob("*"):
            # content-type files and half-written `.part` files go with everything else
            if path.is_file() and path.stat().st_mtime < cutoff:
                path.unlink(missing_ok=True)
                removed += not path.name.endswith((CONTENT_TYPE_SUFFIX, ".part"))
        return removed

    def upload_policy(self, token: str) -> UploadPolicy:
        """The policy the token signs; 403 when it is forged, malformed or expired."""
        try:
            payload = self.upload_signer.loads(token)
        except BadSignature:
            abort(403, "The upload policy is not valid.")
        values = _fields(payload, ("k", "t", "s", "e"), (str, str, int, int))
        if values is None:
            abort(403, "The upload policy is not valid.")
        policy = UploadPolicy(*values)
        if policy.expires < time.time():
            abort(403, "The upload policy has expired.")
        return policy

    def download_grant(self, token: str) -> DownloadGrant:
        """The download the token allows; 403 when forged or malformed, 410 when expired."""
        try:
            payload = self.download_signer.loads(token)
        except BadSignature:
            abort(403, "This download link is not valid.")
        values = _fields(payload, ("k", "f", "e"), (str, str, int))
        if values is None:
            abort(403, "This download link is not valid.")
        grant = DownloadGrant(*values)
        if grant.expires < time.time():
            abort(410, "This download link has expired.")
        return grant


def _storage() -> LocalStorage:
    return get_storage()


class _Spool:
    """Writes file parts straight into temporary files beside their destination (one disk
    write, on the storage volume), and removes whichever were not kept."""

    def __init__(self, directory: Path, name: str):
        self.directory, self.name = directory, name
        self.files: list[tuple[str, IO[bytes]]] = []

    def __call__(self, *args: Any, **kwargs: Any) -> IO[bytes]:
        fd, path = tempfile.mkstemp(dir=self.directory, prefix=f".{self.name}.", suffix=".part")
        handle = os.fdopen(fd, "w+b")
        self.files.append((path, handle))
        return handle

    def path_of(self, handle: IO[bytes]) -> str:
        return next(path for path, candidate in self.files if candidate is handle)

    def discard(self) -> None:
        for path, handle in self.files:
            with suppress(OSError):  # its buffered tail did not fit on a full disk: removed below anyway
                handle.close()
            Path(path).unlink(missing_ok=True)


def upload() -> tuple[str, int]:
    """The local twin of S3's POST object: enforce the signed policy, store, answer 204."""
    storage = _storage()
    # 1. Signature and expiry, from the query string: a forged or stale policy costs no body read.
    policy = storage.upload_policy(request.args.get("policy", ""))
    # 2. The body may be at most the policy's size plus the form around it (413 otherwise).
    limit = policy.size + MULTIPART_ALLOWANCE
    request.max_content_length = limit
    if request.content_length is not None and request.content_length > limit:
        raise RequestEntityTooLarge(_("The body is larger than the upload policy allows (content-length-range)."))
    path = storage._path(policy.key)
    with storage._room("upload"):  # disk full while receiving: 507, and the spooled part removed
        return _receive(storage, policy, path)


def _receive(storage: LocalStorage, policy: UploadPolicy, path: Path) -> tuple[str, int]:
    path.parent.mkdir(parents=True, exist_ok=True)
    spool = _Spool(path.parent, path.name)
    try:
        parser = FormDataParser(
            stream_factory=spool,
            max_form_memory_size=FORM_MEMORY_BYTES,
            max_form_parts=FORM_PARTS,
            silent=False,
        )
        try:
            _stream, form, files = parser.parse(
                request.stream, request.mimetype, request.content_length, request.mimetype_params
            )
        except ValueError:
            abort(400, "The upload is not a well-formed multipart form.")
        # 3. The rest of the policy, as S3 checks it.
        if form.get("key") != policy.key or form.get("Content-Type") != policy.content_type:
            abort(403, "The upload does not match its policy (key or Content-Type).")
        upload_file = files.get("file")
        if upload_file is None:
            abort(400, "The form has no file field.")
        upload_file.stream.flush()
        size = os.fstat(upload_file.stream.fileno()).st_size
        if size != policy.size:
            abort(400, f"The file has {size} bytes; the policy allows exactly {policy.size} (content-length-range).")
        os.replace(spool.path_of(upload_file.stream), path)
        storage._write_content_type(policy.key, policy.content_type)
    finally:
        spool.discard()  # the kept file was renamed away; this removes only the rest
    return "", 204


upload.max_body_bytes = LARGEST_LOCAL_UPLOAD
local_storage_bp.add_url_rule("/upload", "upload", upload, methods=["POST"])


@local_storage_bp.get("/download/<token>")
def download(token: str) -> Response:
    storage = _storage()
    grant = storage.download_grant(token)
    path = storage._path(grant.key)
    if not path.is_file():
        abort(404)
    response = send_file(path, mimetype="application/octet-stream", as_attachment=True, max_age=0)
    response.headers["Content-Disposition"] = attachment_disposition(grant.filename)
    return response


# User content never runs on this origin, even if a browser ignored the attachment header.
own_content_security_policy("sandbox; default-src 'none'")(download)
