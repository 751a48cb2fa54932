"""Request and response schemas of `/api/v1/webhooks` (they also generate the OpenAPI document).

The signing secret is in one schema only, `WebhookEndpointCreatedOut`/`WebhookSecretOut`: the
answers to creating an endpoint and rotating its secret. Every other representation leaves it
out, so a GET never shows it again.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.api.pagination import PageQuery
from app.webhooks.catalogue import SUBSCRIBABLE
from app.webhooks.models import DESCRIPTION_MAX_LENGTH, URL_MAX_LENGTH

# The catalogue in code is the one list of event types: the document's enum follows it
# (`webhook.test` is sent on request only, never subscribed to).
EventType = Literal[SUBSCRIBABLE]
DeliveryStatus = Literal["pending", "delivering", "succeeded", "failed"]

URL_DESCRIPTION = (
    "Where events are POSTed. `https://` in production; a host that resolves to a loopback, private, "
    "link-local or metadata address is refused (422 naming `url`) unless the deployment allows private "
    "targets. Redirects are not followed."
)
EVENTS_DESCRIPTION = "The event types to receive (see `GET /api/v1/webhooks/events`); at least one."


class WebhookEndpointIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(
        min_length=1, max_length=URL_MAX_LENGTH, description=URL_DESCRIPTION, examples=["https://example.com/hooks"]
    )
    events: list[EventType] = Field(min_length=1, max_length=len(SUBSCRIBABLE), description=EVENTS_DESCRIPTION)
    description: str = Field(
        default="", max_length=DESCRIPTION_MAX_LENGTH, description="What the endpoint is for, for people"
    )


class WebhookEndpointPatch(BaseModel):
    """Only the fields sent change. `is_active: true` re-enables an endpoint that was disabled
    (by hand, or automatically after failing every delivery) and deliveries resume."""

    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(default=None, min_length=1, max_length=URL_MAX_LENGTH, description=URL_DESCRIPTION)
    events: list[EventType] | None = Field(
        default=None, min_length=1, max_length=len(SUBSCRIBABLE), description=EVENTS_DESCRIPTION
    )
    description: str | None = Field(default=None, max_length=DESCRIPTION_MAX_LENGTH)
    is_active: bool | None = None


class WebhookEndpointOut(BaseModel):
    """A registered endpoint; its signing secret is never part of it (shown once, at creation
    and rotation)."""

    # By name too: the create answer copies an endpoint's fields into WebhookEndpointCreatedOut.
    model_config = ConfigDict(from_attributes=True, validate_by_name=True, validate_by_alias=True)

    id: str
    url: str
    description: str
    events: list[str]
    is_active: bool = Field(description="False: nothing is delivered until it is enabled again")
    disabled_reason: str | None = Field(
        validation_alias="shown_disabled_reason",
        description="While disabled: why (by hand, or after failing every delivery), in the request's language",
    )
    disabled_at: datetime | None
    failing_since: datetime | None = Field(
        description="The first failed delivery of the current run of failures; null once one succeeds"
    )
    previous_secret_expires_at: datetime | None = Field(
        description="After a rotation: until then the previous secret signs too (both signatures are sent)"
    )
    created_at: datetime
    updated_at: datetime


class WebhookEndpointCreatedOut(WebhookEndpointOut):
    """The new endpoint with its signing secret: keep it now, it is never shown again."""

    secret: str = Field(description="The signing secret (`whsec_…`), shown this once", examples=["whsec_…"])


class WebhookSecretOut(BaseModel):
    """A new signing secret, shown this once."""

    secret: str = Field(description="The new signing secret (`whsec_…`)")
    previous_secret_expires_at: datetime | None = Field(
        description="Until then the previous secret signs too: deliveries carry both signatures"
    )


class WebhookEventOut(BaseModel):
    type: str = Field(examples=["user.created"])
    description: str


class WebhookEventList(BaseModel):
    items: list[WebhookEventOut]


class WebhookDeliveryOut(BaseModel):
    """One delivery of one event to one endpoint: its id is the `webhook-id` header, the same on
    every attempt (receivers de-duplicate on it)."""

    model_config = ConfigDict(from_attributes=True)

    id: str = Field(description="The `webhook-id` header of every attempt")
    endpoint_id: str
    event_type: str = Field(examples=["user.created"])
    status: DeliveryStatus
    attempts: int = Field(ge=0)
    response_status: int | None = Field(description="The HTTP status of the last attempt's answer")
    response_snippet: str | None = Field(description="The start of the last answer's body (at most 1 KB)")
    duration_ms: int | float | None = Field(description="How long the last attempt took")
    error: str | None = Field(
        validation_alias="shown_error",
        description="Why the last attempt failed (timeout, refused target, …), in the request's language",
    )
    next_attempt_at: datetime | None = Field(description="When the next retry is due, while one is")
    redelivery_of: str | None = Field(description="The delivery this one sends again, for a redelivery")
    created_at: datetime
    last_attempt_at: datetime | None
    finished_at: datetime | None = Field(description="When it succeeded or failed for good")


class WebhookAttemptOut(BaseModel):
    attempt: int
    at: datetime | None
    response_status: int | None = None
    duration_ms: int | float | None = None
    error: str | None = None


class WebhookDeliveryDetailOut(WebhookDeliveryOut):
    """A delivery with the event it carries (the JSON body's `data`)."""

    payload: dict[str, Any] = Field(description="The event as sent: `type`, `timestamp` and `data`")
    attempt_log: list[WebhookAttemptOut] = Field(description="Every attempt so far, oldest first")


class WebhookListQuery(PageQuery):
    pass


class WebhookDeliveryQuery(PageQuery):
    pass
