"""`/api/v1/webhooks`: outbound webhook endpoints, their deliveries, secrets and tests (issue 15).

Thin views over `app.webhooks.service`, the same functions `/admin/webhooks` calls: the service
validates URLs (scheme, private targets) and events, writes the audit trail and queues
deliveries on the `sync` queue. Everything needs `webhooks:manage`. A signing secret leaves
the server twice only: in the answer to creating an endpoint and to rotating its secret.
"""

from __future__ import annotations

from flask import Response, after_this_request, url_for

from app.api.openapi import api_operation
from app.api.v1.blueprint import v1_bp
from app.api.v1.webhook_schemas import (
    WebhookDeliveryDetailOut,
    WebhookDeliveryOut,
    WebhookDeliveryQuery,
    WebhookEndpointCreatedOut,
    WebhookEndpointIn,
    WebhookEndpointOut,
    WebhookEndpointPatch,
    WebhookEventList,
    WebhookEventOut,
    WebhookListQuery,
    WebhookSecretOut,
)
from app.auth.freshness import fresh_auth_required, require_fresh_auth
from app.auth.guards import current_actor
from app.core.pagination import Page
from app.i18n import translate_stored
from app.webhooks import service

TAGS = ("webhooks",)
PERMISSION = "webhooks:manage"


def _locate(location: str) -> None:
    """The `Location` header of a 201/202 answer that is serialised from a model."""

    @after_this_request
    def _add(response: Response) -> Response:
        response.headers["Location"] = location
        return response


# The catalogue ----------------------------------------------------------------------------
# `/webhooks/events` is a static segment: werkzeug ranks it above `/webhooks/<webhook_id>`.


@api_operation(
    v1_bp,
    "/webhooks/events",
    summary="List the event types",
    tags=TAGS,
    response=WebhookEventList,
    permission=PERMISSION,
)
def list_webhook_events() -> WebhookEventList:
    """Every event type an endpoint can subscribe to, with what it means. (`webhook.test` is
    sent only by `POST /webhooks/{webhook_id}/test`, never subscribed to.)"""
    return WebhookEventList(
        items=[
            WebhookEventOut(type=name, description=translate_stored(description))
            for name, description in service.event_types()
        ]
    )


# Endpoints --------------------------------------------------------------------------------


@api_operation(
    v1_bp,
    "/webhooks",
    method="POST",
    summary="Register a webhook endpoint",
    tags=TAGS,
    body=WebhookEndpointIn,
    response=WebhookEndpointCreatedOut,
    status=201,
    permission=PERMISSION,
)
@fresh_auth_required
def create_webhook(body: WebhookEndpointIn) -> WebhookEndpointCreatedOut:
    """Answers the endpoint with its signing secret (`whsec_…`): store it now, it is never
    shown again (rotate it to get a new one). `Location` gives the endpoint's URL. 422 naming
    `url` for a URL that is not allowed (not `https://` in production, a private target) or
    `events` for an unknown event type."""
    endpoint, secret = service.create_endpoint(current_actor(), body.url, list(body.events), body.description)
    _locate(url_for("api.v1.get_webhook", webhook_id=endpoint.id))
    return WebhookEndpointCreatedOut(
        **WebhookEndpointOut.model_validate(endpoint, from_attributes=True).model_dump(), secret=secret
    )


@api_operation(
    v1_bp,
    "/webhooks",
    summary="List webhook endpoints",
    tags=TAGS,
    query=WebhookListQuery,
    response=WebhookEndpointOut,
    paginated=True,
    permission=PERMISSION,
)
def list_webhooks(query: WebhookListQuery) -> Page:
    """Every registered endpoint (no secrets)."""
    return service.list_endpoints(query.page, query.per_page)


@api_operation(
    v1_bp,
    "/webhooks/<webhook_id>",
    summary="Get a webhook endpoint",
    tags=TAGS,
    response=WebhookEndpointOut,
    permission=PERMISSION,
    errors=(404,),
)
def get_webhook(webhook_id: str) -> WebhookEndpointOut:
    """The endpoint without its secret (shown only when created or rotated)."""
    return WebhookEndpointOut.model_validate(service.get_endpoint(webhook_id), from_attributes=True)


@api_operation(
    v1_bp,
    "/webhooks/<webhook_id>",
    method="PATCH",
    summary="Update a webhook endpoint",
    tags=TAGS,
    body=WebhookEndpointPatch,
    response=WebhookEndpointOut,
    permission=PERMISSION,
    errors=(404,),
)
def update_webhook(webhook_id: str, body: WebhookEndpointPatch) -> WebhookEndpointOut:
    """Changes the fields sent. `is_active: false` stops deliveries; `true` resumes them (also
    after an automatic disable). 422 naming `url` or `events` as for registering. A new `url`
    or `is_active: true` points deliveries somewhere, as registering does: it needs a recent
    sign-in (401 `reauthentication-required`; API keys: 403 `api-key-not-allowed`)."""
    if body.url is not None or body.is_active:
        require_fresh_auth()
    endpoint = service.update_endpoint(
        current_actor(),
        service.get_endpoint(webhook_id),
        url=body.url,
        events=list(body.events) if body.events is not None else None,
        description=body.description,
        is_active=body.is_active,
    )
    return WebhookEndpointOut.model_validate(endpoint, from_attributes=True)


@api_operation(
    v1_bp,
    "/webhooks/<webhook_id>",
    method="DELETE",
    summary="Delete a webhook endpoint",
    tags=TAGS,
    status=204,
    permission=PERMISSION,
    errors=(404,),
)
def delete_webhook(webhook_id: str) -> Response:
    """Removes the endpoint and its delivery log; deliveries still queued are dropped."""
    service.delete_endpoint(current_actor(), service.get_endpoint(webhook_id))
    return Response(status=204)


@api_operation(
    v1_bp,
    "/webhooks/<webhook_id>/rotate-secret",
    method="POST",
    summary="Rotate a webhook endpoint's signing secret",
    tags=TAGS,
    response=WebhookSecretOut,
    permission=PERMISSION,
    errors=(401, 404),
)
@fresh_auth_required
def rotate_webhook_secret(webhook_id: str) -> WebhookSecretOut:
    """Answers the new secret, shown this once. The previous one keeps signing for 24 hours
    (`previous_secret_expires_at`): meanwhile every delivery carries both signatures, so
    receivers can switch without missing one. Needs a recent sign-in, as registering does."""
    endpoint = service.get_endpoint(webhook_id)
    secret = service.rotate_secret(current_actor(), endpoint)
    return WebhookSecretOut(secret=secret, previous_secret_expires_at=endpoint.previous_secret_expires_at)


@api_operation(
    v1_bp,
    "/webhooks/<webhook_id>/test",
    method="POST",
    summary="Send a test event",
    tags=TAGS,
    response=WebhookDeliveryOut,
    status=202,
    permission=PERMISSION,
    errors=(404, 409),
)
def test_webhook(webhook_id: str) -> WebhookDeliveryOut:
    """Queues a `webhook.test` delivery to the endpoint and answers it (`Location`: the
    delivery, to poll for its outcome). 409 while the endpoint is disabled."""
    delivery = service.send_test(current_actor(), service.get_endpoint(webhook_id))
    _locate(url_for("api.v1.get_webhook_delivery", webhook_id=webhook_id, delivery_id=delivery.id))
    return WebhookDeliveryOut.model_validate(delivery, from_attributes=True)


# Deliveries -------------------------------------------------------------------------------


@api_operation(
    v1_bp,
    "/webhooks/<webhook_id>/deliveries",
    summary="List an endpoint's deliveries",
    tags=TAGS,
    query=WebhookDeliveryQuery,
    response=WebhookDeliveryOut,
    paginated=True,
    permission=PERMISSION,
    errors=(404,),
)
def list_webhook_deliveries(webhook_id: str, query: WebhookDeliveryQuery) -> Page:
    """Newest first: each delivery's event, status, attempts, last answer (status, duration,
    the start of its body) and next retry."""
    endpoint = service.get_endpoint(webhook_id)
    return service.list_deliveries(endpoint.id, query.page, query.per_page)


@api_operation(
    v1_bp,
    "/webhooks/<webhook_id>/deliveries/<delivery_id>",
    summary="Get a delivery",
    tags=TAGS,
    response=WebhookDeliveryDetailOut,
    permission=PERMISSION,
    errors=(404,),
)
def get_webhook_delivery(webhook_id: str, delivery_id: str) -> WebhookDeliveryDetailOut:
    """The delivery with the event it carries. 404 for a delivery of another endpoint."""
    return WebhookDeliveryDetailOut.model_validate(service.get_delivery(webhook_id, delivery_id), from_attributes=True)


@api_operation(
    v1_bp,
    "/webhooks/<webhook_id>/deliveries/<delivery_id>/redeliver",
    method="POST",
    summary="Redeliver an event",
    tags=TAGS,
    response=WebhookDeliveryOut,
    status=202,
    permission=PERMISSION,
    errors=(404, 409),
)
def redeliver_webhook_delivery(webhook_id: str, delivery_id: str) -> WebhookDeliveryOut:
    """Queues the same event to the endpoint again, as a new delivery (its own id and
    attempts) that the answer and `Location` give. 409 while the endpoint is disabled."""
    delivery = service.redeliver(current_actor(), service.get_delivery(webhook_id, delivery_id))
    _locate(url_for("api.v1.get_webhook_delivery", webhook_id=webhook_id, delivery_id=delivery.id))
    return WebhookDeliveryOut.model_validate(delivery, from_attributes=True)
