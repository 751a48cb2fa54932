"""`webhook_endpoints` (where to send which events, with the signing secret encrypted) and
`webhook_deliveries` (one event to one endpoint: its payload, its `sync` job and what the
receiver answered). docs/webhooks.md describes both."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Index, Integer, String, Text, select
from sqlalchemy.orm import Mapped, column_property, mapped_column

from app.core.database import UTCDateTime, utcnow
from app.extensions import db
from app.i18n import _l, translate_stored
from app.jobs.models import Job, JobStatus

URL_MAX_LENGTH = 2000
DESCRIPTION_MAX_LENGTH = 500
SNIPPET_MAX_CHARS = 1024


class DeliveryStatus(StrEnum):
    pending = "pending"  # waiting for its first attempt, or for a retry (`next_attempt_at`)
    delivering = "delivering"  # an attempt is sending it now
    succeeded = "succeeded"  # the receiver answered 2xx
    failed = "failed"  # final: a 4xx, the retries spent, the target refused, or the endpoint disabled


# Not yet final: a page showing one of these may poll.
ACTIVE_DELIVERY_STATUSES = (DeliveryStatus.pending, DeliveryStatus.delivering)

DELIVERY_STATUS_LABELS: dict[str, Any] = {
    DeliveryStatus.pending: _l("Pending"),
    DeliveryStatus.delivering: _l("Delivering"),
    DeliveryStatus.succeeded: _l("Succeeded"),
    DeliveryStatus.failed: _l("Failed"),
}


class WebhookEndpoint(db.Model):
    """A receiver's URL and the events it subscribed to.

    The signing secret (`whsec_…`) is stored encrypted (app.webhooks.signing) and only ever
    shown once, when it is made; `previous_secret_encrypted` is the one a rotation replaced,
    still signed with until `previous_secret_expires_at`."""

    __tablename__ = "webhook_endpoints"
    __table_args__ = (Index("ix_webhook_endpoints_active", "is_active"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    url: Mapped[str] = mapped_column(String(URL_MAX_LENGTH))
    description: Mapped[str] = mapped_column(String(DESCRIPTION_MAX_LENGTH), default="")
    events: Mapped[list[str]] = mapped_column(JSON, default=list)
    # Fernet tokens (never the secret itself): decrypted only to sign a delivery.
    secret_encrypted: Mapped[str] = mapped_column(Text)
    previous_secret_encrypted: Mapped[str | None] = mapped_column(Text)
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    # Why it was switched off (a stored English sentence, translated where shown) and when.
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Since when every delivery has failed (set by the first final failure after a success,
    # cleared by a success): past WEBHOOK_DISABLE_AFTER_HOURS the endpoint is disabled.
    failing_since: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    def __repr__(self) -> str:  # never the URL (it may carry a token) nor the secret
        return f"<WebhookEndpoint {self.id}>"

    @property
    def shown_disabled_reason(self) -> str | None:
        """Why it is disabled, in the reader's language."""
        return translate_stored(self.disabled_reason) if not self.is_active and self.disabled_reason else None


class WebhookDelivery(db.Model):
    """One event sent (or to be sent) to one endpoint. Its `id` is the `webhook-id` header,
    the same on every attempt, so receivers can drop a duplicate; a redelivery is a new row
    (a new id) pointing at the one it copies (`redelivery_of`)."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index("ix_webhook_deliveries_endpoint_created", "endpoint_id", "created_at"),
        Index("ix_webhook_deliveries_status_created", "status", "created_at"),
        Index("ix_webhook_deliveries_created", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    endpoint_id: Mapped[str] = mapped_column(ForeignKey("webhook_endpoints.id", ondelete="CASCADE"))
    event_type: Mapped[str] = mapped_column(String(64))
    # The body sent, as JSON: {"type", "timestamp" (when the event happened), "data"}; the
    # same bytes on every attempt.
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default=DeliveryStatus.pending)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # The last attempt's outcome: the HTTP status (None: no answer), the first KB of the
    # answer's body, how long it took, and why it failed (a stored English sentence).
    response_status: Mapped[int | None] = mapped_column(Integer)
    response_snippet: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[float | None] = mapped_column(Float)
    error: Mapped[str | None] = mapped_column(Text)
    # Every attempt in order: {"attempt", "at", "response_status", "duration_ms", "error"}.
    attempt_log: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    job_id: Mapped[str | None] = mapped_column(String(36))
    redelivery_of: Mapped[str | None] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    # When the next attempt is due: read from the delivery's job (the queue decides the
    # backoff, with jitter, or a receiver's Retry-After), so it is never a guess.
    next_attempt_at: Mapped[datetime | None] = column_property(
        select(Job.next_attempt_at)
        .where(Job.id == job_id, Job.status == JobStatus.retrying)
        .correlate_except(Job)
        .scalar_subquery(),
        deferred=False,
    )

    def __repr__(self) -> str:
        return f"<WebhookDelivery {self.id} {self.event_type} {self.status}>"

    @property
    def is_final(self) -> bool:
        return self.status in (DeliveryStatus.succeeded, DeliveryStatus.failed)

    @property
    def status_label(self) -> str:
        return str(DELIVERY_STATUS_LABELS.get(self.status, str(self.status).capitalize()))

    @property
    def shown_error(self) -> str | None:
        """Why the last attempt failed, in the reader's language."""
        return translate_stored(self.error) if self.error else None
