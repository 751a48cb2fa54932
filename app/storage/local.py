"""Local-disk storage with the same signed-upload flow as S3's presigned POST.

The "presigned POST" is a form aimed at this app's `/storage/upload` endpoint, carrying a signed,
expiring policy (key, exact Content-Type, size range). The endpoint enforces that policy exactly
as S3 would: wrong key or type, too big, empty or expired → 403/400, nothing written.
Downloads go through `/storage/download/<token>`, always as attachments.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from flask import Blueprint, Response, abort, request, send_file, url_for
from itsdangerous import BadSignature, URLSafeSerializer

from app.storage.base import ObjectInfo, PresignedPost
from app.storage.names import attachment_disposition

local_storage_bp = Blueprint("local_storage", __name__, url_prefix="/storage")
LARGEST_LOCAL_UPLOAD = 2 * 1024 * 1024 * 1024
CHUNK = 1024 * 1024


class LocalStorage:
    def __init__(self, root: Path, secret: str):
        self.root = Path(root).resolve()
        self.signer = URLSafeSerializer(secret, salt="hearth.local-storage")

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root):
            raise ValueError("object key escapes the storage root")
        return path

    def presign_upload(self, key: str, content_type: str, max_size: int, expires_in: int) -> PresignedPost:
        token = self.signer.dumps({"k": key, "t": content_type, "m": max_size, "e": int(time.time()) + expires_in})
        return PresignedPost(
            url=url_for("local_storage.upload"), fields={"key": key, "Content-Type": content_type, "policy": token}
        )

    def presign_download(self, key: str, filename: str, expires_in: int) -> str:
        token = self.signer.dumps({"k": key, "f": filename, "e": int(time.time()) + expires_in})
        return url_for("local_storage.download", token=token)

    def head(self, key: str) -> ObjectInfo | None:
        path = self._path(key)
        if not path.is_file():
            return None
        content_type = self._path(key + ".content-type")
        return ObjectInfo(
            size=path.stat().st_size, content_type=content_type.read_text() if content_type.is_file() else None
        )

    def read(self, key: str, length: int | None = None) -> bytes:
        with self._path(key).open("rb") as handle:
            return handle.read(length if length is not None else -1)

    def put(self, key: str, data: bytes, content_type: str) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".part")
        tmp.write_bytes(data)
        os.replace(tmp, path)
        self._path(key + ".content-type").write_text(content_type)

    def delete(self, key: str) -> None:
        for path in (self._path(key), self._path(key + ".content-type")):
            path.unlink(missing_ok=True)

    def policy(self, token: str) -> dict:
        try:
            return self.signer.loads(token)
        except BadSignature:
            abort(403, "The upload policy is not valid.")


def _storage() -> LocalStorage:
    from app.storage import get_storage

    return get_storage()


def upload() -> tuple[str, int]:
    """The local twin of S3's POST object: enforce the signed policy, store, answer 204."""
    storage = _storage()
    policy = storage.policy(request.form.get("policy", ""))
    if policy["e"] < time.time():
        abort(403, "The upload policy has expired.")
    if request.form.get("key") != policy["k"] or request.form.get("Content-Type") != policy["t"]:
        abort(403, "The upload does not match its policy (key or Content-Type).")
    upload_file = request.files.get("file")
    if upload_file is None:
        abort(400, "The form has no file field.")
    path = storage._path(policy["k"])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    size = 0
    with tmp.open("wb") as out:
        while chunk := upload_file.stream.read(CHUNK):
            size += len(chunk)
            if size > policy["m"]:
                out.close()
                tmp.unlink(missing_ok=True)
                abort(400, "The file is larger than the policy allows (content-length-range).")
            out.write(chunk)
    if size == 0:
        tmp.unlink(missing_ok=True)
        abort(400, "The file is empty (content-length-range).")
    os.replace(tmp, path)
    storage._path(policy["k"] + ".content-type").write_text(policy["t"])
    return "", 204


upload.max_body_bytes = LARGEST_LOCAL_UPLOAD  # the policy's own limit is enforced while streaming
local_storage_bp.add_url_rule("/upload", "upload", upload, methods=["POST"])


@local_storage_bp.get("/download/<token>")
def download(token: str) -> Response:
    storage = _storage()
    try:
        data = storage.signer.loads(token)
    except BadSignature:
        abort(404)
    if data["e"] < time.time():
        abort(410, "This download link has expired.")
    path = storage._path(data["k"])
    if not path.is_file():
        abort(404)
    response = send_file(path, mimetype="application/octet-stream", as_attachment=True, max_age=0)
    response.headers["Content-Disposition"] = attachment_disposition(data["f"])
    return response


# User content never runs on this origin, even if a browser ignored the attachment header.
download.talisman_view_options = {"content_security_policy": "sandbox; default-src 'none'"}
