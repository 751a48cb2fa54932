"""Tasks of the `sync` queue for outbound webhooks (app.webhooks): one durable job per
delivery, and the periodic sweep of deliveries whose job ended without them."""

from __future__ import annotations

from typing import Any

from app.i18n import N_
from app.webhooks import delivery
from tasks.maintenance import periodic
from tasks.runtime import durable_task


def _give_up(*, error: str, delivery_id: str, **_: Any) -> None:
    # The task settles its delivery itself; this covers a job failed some other way.
    delivery.mark_failed(delivery_id, error)


@durable_task("sync", summarize=lambda payload: {"delivery_id": payload["delivery_id"]}, on_final_failure=_give_up)
def deliver_webhook(*, job_id: str, delivery_id: str) -> None:
    """POST one event to one endpoint, signed (Standard Webhooks), and record the answer;
    retried with the queue's exponential backoff on network errors, timeouts, 408, 429 and 5xx."""
    delivery.deliver(delivery_id, job_id)


@periodic(
    N_("every 10 minutes"),
    N_("Fail webhook deliveries whose job ended without them; forget rotated-out secrets past 24 hours."),
    minute="*/10",
)
def sweep_webhooks() -> dict[str, int]:
    """Fail webhook deliveries whose job ended without them; forget rotated-out secrets past 24 hours."""
    return delivery.sweep()


@periodic(
    N_("daily at 03:47 UTC"),
    N_("Delete webhook deliveries that finished more than WEBHOOK_DELIVERY_RETENTION_DAYS ago."),
    hour="3",
    minute="47",
)
def prune_webhook_deliveries() -> dict[str, int]:
    """Delete webhook deliveries that finished more than WEBHOOK_DELIVERY_RETENTION_DAYS ago."""
    return {"pruned": delivery.prune()}
