"""Object storage behind one interface: S3 (boto3) or local disk with the same signed-upload flow."""

from __future__ import annotations

from flask import Flask, current_app

from app.storage.base import ObjectInfo, PresignedPost, Storage

__all__ = ["ObjectInfo", "PresignedPost", "Storage", "get_storage", "init_storage"]

EXTENSION_KEY = "hearth.storage"


def init_storage(app: Flask) -> None:
    settings = app.extensions["hearth.settings"]
    if settings.storage_backend == "s3":
        from app.storage.s3 import S3Storage

        app.extensions[EXTENSION_KEY] = S3Storage(settings)
    else:
        from app.extensions import csrf
        from app.storage.local import LocalStorage, local_storage_bp, upload

        app.extensions[EXTENSION_KEY] = LocalStorage(settings.local_storage_root, settings.secret_key)
        app.register_blueprint(local_storage_bp)
        # Like a presigned S3 POST, the signed policy is the authorisation: no cookie, no CSRF.
        csrf.exempt(upload)


def get_storage() -> Storage:
    return current_app.extensions[EXTENSION_KEY]
