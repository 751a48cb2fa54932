"""Tasks of the `uploads` queue."""

from __future__ import annotations

from typing import Any

from app.jobs.service import report_progress
from app.uploads import service as uploads
from tasks.runtime import durable_task


def _give_up(*, error: str, upload_id: str, **_: Any) -> None:
    # `error` is the job's sentence for people ("The file could not be read as an image."):
    # the owner sees it on /files ("Processing failed: …"); the exception stays on the job's
    # admin page.
    uploads.mark_failed(upload_id, error)


@durable_task("uploads", summarize=lambda payload: {"upload_id": payload["upload_id"]}, on_final_failure=_give_up)
def process_upload(*, job_id: str, upload_id: str) -> None:
    """Strip EXIF and make thumbnails for images, count PDF pages, record metadata. Decoding
    happens in a child process with its own memory and CPU limits (app/uploads/sandbox.py),
    so one hostile file cannot exhaust this consumer."""
    uploads.process(upload_id, progress=lambda percent, message: report_progress(job_id, percent, message))
