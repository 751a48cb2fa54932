"""Tasks of the `reports` queue: building exports (app.exports.service), and their expiry."""

from __future__ import annotations

from typing import Any

from app.exports import service as exports
from app.i18n import N_
from tasks.maintenance import periodic
from tasks.runtime import durable_task


def _give_up(*, error: str, export_id: str, **_: Any) -> None:
    # `error` is the job's sentence for people; the export records it ("The export could not
    # be built: …") and its owner is told. The exception stays on the job's admin page.
    exports.mark_failed(export_id, error)


@durable_task("reports", summarize=lambda payload: {"export_id": payload["export_id"]}, on_final_failure=_give_up)
def build_export(*, job_id: str, export_id: str) -> None:
    """Render the export's document into a temporary file, store it, mark it ready and tell
    its owner; progress shows on /exports and /admin/jobs while it runs. Every attempt starts
    from scratch, and a failed one leaves no file."""
    exports.build(export_id, job_id)


@periodic(N_("hourly"), N_("Delete the files of exports past their retention and mark them expired."), minute="17")
def expire_exports() -> dict[str, int]:
    """Delete the files of exports past their retention and mark them expired."""
    return exports.expire_exports()
