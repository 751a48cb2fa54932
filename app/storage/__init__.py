"""Object storage behind one interface: S3 (boto3) or local disk with the same signed-upload flow."""

from __future__ import annotations

from flask import Flask

from app.extensions import csrf
from app.storage.base import EXTENSION_KEY, ObjectInfo, ObjectTooLarge, PresignedPost, Storage, get_storage
from app.storage.local import LocalStorage, local_storage_bp, upload

__all__ = ["ObjectInfo", "ObjectTooLarge", "PresignedPost", "Storage", "get_storage", "init_storage"]


def init_storage(app: Flask) -> None:
    settings = app.extensions["hearth.settings"]
    if settings.storage_backend == "s3":
        from app.storage.s3 import S3Storage  # boto3 (~0.3 s to import) only where S3 is configured

        app.extensions[EXTENSION_KEY] = S3Storage(settings)
    else:
        app.extensions[EXTENSION_KEY] = LocalStorage(settings.local_storage_root, settings.secret_key)
        app.register_blueprint(local_storage_bp)
        # Like a presigned S3 POST, the signed policy is the authorisation: no cookie, no CSRF.
        csrf.exempt(upload)
