"""S3 (or any S3-compatible endpoint) through boto3."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import wraps
from typing import BinaryIO, ParamSpec, TypeVar

import boto3
from botocore.client import Config
from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as EndpointUnreachable

from app.config import Settings
from app.core.circuit import Throttle
from app.storage.base import UNAVAILABLE_WARN_EVERY, CappedReader, ObjectInfo, PresignedPost, storage_unavailable
from app.storage.names import attachment_disposition

P = ParamSpec("P")
R = TypeVar("R")


def _server_error(error: ClientError) -> bool:
    return error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) >= 500


def reachable(method: Callable[P, R]) -> Callable[P, R]:
    """S3 unreachable (refused, reset, timed out) or failing (5xx after botocore's retries):
    StorageUnavailable (503 with Retry-After), logged once per window, never a 500."""

    @wraps(method)
    def call(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(*args, **kwargs)
        except (EndpointUnreachable, HTTPClientError) as error:
            raise storage_unavailable("s3", method.__name__, error, args[0].warnings) from error  # type: ignore[attr-defined]
        except ClientError as error:
            if not _server_error(error):
                raise
            raise storage_unavailable("s3", method.__name__, error, args[0].warnings) from error  # type: ignore[attr-defined]

    return call


class S3Storage:
    def __init__(self, settings: Settings):
        self.bucket = settings.s3_bucket
        credentials = {}
        if settings.s3_access_key_id:
            credentials = {
                "aws_access_key_id": settings.s3_access_key_id,
                "aws_secret_access_key": settings.s3_secret_access_key,
            }
        self.client = boto3.client(
            "s3",
            endpoint_url=settings.s3_endpoint_url,
            region_name=settings.s3_region,
            config=Config(
                signature_version="s3v4",
                connect_timeout=3,
                read_timeout=10,
                retries={"max_attempts": 2},
                s3={"addressing_style": "path"},
            ),
            **credentials,
        )
        self._create_bucket = settings.s3_create_bucket
        self._bucket_checked = False
        self.warnings = Throttle(UNAVAILABLE_WARN_EVERY)

    @reachable
    def _ensure_bucket(self) -> None:
        if self._create_bucket and not self._bucket_checked:
            try:
                self.client.head_bucket(Bucket=self.bucket)
            except ClientError:
                self.client.create_bucket(Bucket=self.bucket)
            self._bucket_checked = True

    @reachable
    def presign_upload(self, key: str, content_type: str, size: int, expires_in: int) -> PresignedPost:
        self._ensure_bucket()
        # boto3 adds the exact `key` and `bucket` conditions; the length range is one value.
        post = self.client.generate_presigned_post(
            Bucket=self.bucket,
            Key=key,
            Fields={"Content-Type": content_type},
            Conditions=[{"Content-Type": content_type}, ["content-length-range", size, size]],
            ExpiresIn=expires_in,
        )
        return PresignedPost(url=post["url"], fields=post["fields"])

    def presign_download(self, key: str, filename: str, expires_in: int) -> str:
        return self.client.generate_presigned_url(
            "get_object",
            ExpiresIn=expires_in,
            Params={
                "Bucket": self.bucket,
                "Key": key,
                "ResponseContentDisposition": attachment_disposition(filename),
                "ResponseContentType": "application/octet-stream",
            },
        )

    @reachable
    def head(self, key: str) -> ObjectInfo | None:
        try:
            meta = self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        return ObjectInfo(size=meta["ContentLength"], content_type=meta.get("ContentType"))

    @reachable
    def read(self, key: str, length: int | None = None) -> bytes:
        params = {"Bucket": self.bucket, "Key": key}
        if length is not None:
            params["Range"] = f"bytes=0-{length - 1}"
        return self.client.get_object(**params)["Body"].read()

    @reachable
    def open(self, key: str) -> BinaryIO:
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=key)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                raise FileNotFoundError(key) from None
            raise
        # botocore's StreamingBody: a file object reading the HTTP response as it is asked to.
        return response["Body"]

    @reachable
    def put(self, key: str, data: bytes, content_type: str) -> None:
        self._ensure_bucket()
        self.client.put_object(
            Bucket=self.bucket, Key=key, Body=data, ContentType=content_type, ContentDisposition="attachment"
        )

    @reachable
    def put_stream(self, key: str, stream: BinaryIO, content_type: str, max_bytes: int) -> int:
        self._ensure_bucket()
        reader = CappedReader(stream, max_bytes)
        # boto3 sends a small object in one PUT and a large one in parts, reading a part at a
        # time; when the reader raises, a multipart upload is aborted and nothing is stored.
        self.client.upload_fileobj(
            reader,
            self.bucket,
            key,
            ExtraArgs={"ContentType": content_type, "ContentDisposition": "attachment"},
        )
        return reader.count

    @reachable
    def move(self, source: str, target: str) -> bool:
        # A server-side copy of one version of `source` (its Content-Type comes along), then
        # the source goes: a POST replayed meanwhile lands on `source`, never on `target`.
        try:
            self.client.copy_object(
                Bucket=self.bucket,
                Key=target,
                CopySource={"Bucket": self.bucket, "Key": source},
                MetadataDirective="COPY",
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        self.client.delete_object(Bucket=self.bucket, Key=source)
        return True

    @reachable
    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=key)

    @reachable
    def purge(self, prefix: str, older_than: datetime) -> int:
        self._ensure_bucket()
        removed = 0
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            stale = [{"Key": item["Key"]} for item in page.get("Contents", []) if item["LastModified"] < older_than]
            if stale:
                self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": stale, "Quiet": True})
                removed += len(stale)
        return removed
