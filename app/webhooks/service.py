"""Outbound webhooks: endpoints, events and deliveries (docs/webhooks.md, architecture §9).

Shared by the JSON API (/api/v1/webhooks) and the admin pages (/admin/webhooks); both check
`webhooks:manage` before calling. Every change is one unit of work with its audit row.

`emit(event_type, data)` is how the services that change things announce it: inside their
unit of work it writes one `webhook_deliveries` row and one `sync` job
(`tasks.webhooks.deliver_webhook`) per active endpoint subscribed to the event. The job row is
the outbox: a rolled-back change delivers nothing, a committed one loses nothing. Which
endpoints want which event is cached (`routes`, dropped whenever an endpoint changes), so a
request that emits costs one cache read and no query while nobody subscribed.

The delivery itself (one attempt: sign, POST, record, decide) is app.webhooks.delivery.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Collection
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from flask import current_app

from app.audit.service import record
from app.cache import CacheKey, cached, invalidate
from app.core.database import utcnow
from app.core.pagination import Page, paginate
from app.core.unit_of_work import require_unit_of_work, unit_of_work
from app.errors import Conflict, NotFound, ValidationFailed
from app.i18n import N_, _, translate_stored
from app.jobs.service import cancel, enqueue_task
from app.logging import get_logger
from app.users.models import User
from app.webhooks import signing, targets
from app.webhooks.catalogue import EVENTS, SUBSCRIBABLE, TEST_EVENT
from app.webhooks.models import (
    ACTIVE_DELIVERY_STATUSES,
    DESCRIPTION_MAX_LENGTH,
    URL_MAX_LENGTH,
    DeliveryStatus,
    WebhookDelivery,
    WebhookEndpoint,
)
from app.webhooks.repository import (
    DeliveryRepository,
    EndpointRepository,
    delivery_list_statement,
    endpoint_list_statement,
)

log = get_logger("hearth.webhooks")
endpoints = EndpointRepository()
deliveries = DeliveryRepository()

DELIVER_TASK = "tasks.webhooks.deliver_webhook"  # queued by name: tasks.webhooks imports this package
ROUTES_KEY = CacheKey("webhooks", "routes")
ROUTES_TTL = 300
# How long the secret a rotation replaced keeps signing (both signatures are sent meanwhile).
PREVIOUS_SECRET_HOURS = 24
MAX_EVENTS_PER_ENDPOINT = len(EVENTS)

DISABLED_BY_HAND = N_("Disabled by an administrator.")
TEST_MESSAGE = N_("This is a test event from Hearth.")


def _settings():
    return current_app.extensions["hearth.settings"]


def allow_private_targets() -> bool:
    """WEBHOOK_ALLOW_PRIVATE_TARGETS: http:// and internal addresses allowed (development/test)."""
    return bool(_settings().webhook_allow_private_targets)


# Events ------------------------------------------------------------------------------------


def event_types() -> list[tuple[str, str]]:
    """The events an endpoint may subscribe to, with what each means (a stored English
    sentence: translate it where it is shown). `webhook.test` is only sent on request."""
    return [(name, EVENTS[name]) for name in SUBSCRIBABLE]


def routes() -> dict[str, tuple[str, ...]]:
    """Event type -> ids of the active endpoints subscribed to it; cached (L1 then L2), dropped
    by `forget_routes` whenever an endpoint is created, changed, disabled or deleted."""
    return cached(ROUTES_KEY, _query_routes, timeout=ROUTES_TTL, local=True)


def forget_routes() -> None:
    """Invalidator of `routes` (after the current commit, on every instance)."""
    invalidate(ROUTES_KEY)


def _query_routes() -> dict[str, tuple[str, ...]]:
    table: dict[str, list[str]] = {}
    for endpoint_id, events in endpoints.active_routes():
        for event in events:
            table.setdefault(event, []).append(endpoint_id)
    return {event: tuple(ids) for event, ids in table.items()}


def _jsonable(value: Any) -> Any:
    """`data` as plain JSON (dates as ISO 8601), checked now rather than in the worker."""

    def default(item: Any) -> Any:
        if isinstance(item, datetime | date):
            return item.isoformat()
        raise TypeError(f"{type(item).__name__} is not JSON serialisable in webhook data")

    return json.loads(json.dumps(value, default=default))


def emit(event_type: str, data: dict[str, Any]) -> list[WebhookDelivery]:
    """Queue `event_type` with `data` to every active endpoint subscribed to it, in the
    caller's unit of work (module docstring). The deliveries made (none, usually)."""
    require_unit_of_work("a webhook event")
    if event_type not in EVENTS:
        raise ValueError(f"unknown webhook event {event_type!r} (app.webhooks.catalogue.EVENTS)")
    endpoint_ids = routes().get(event_type)
    if not endpoint_ids:
        return []
    body = {"type": event_type, "timestamp": utcnow().isoformat(), "data": _jsonable(data)}
    made = []
    for endpoint_id in endpoint_ids:
        endpoint = endpoints.get(endpoint_id)
        if endpoint is None or not endpoint.is_active or event_type not in endpoint.events:
            continue  # the cache is a little behind a change committed elsewhere
        made.append(_queue_delivery(endpoint, event_type, body))
    return made


def _queue_delivery(
    endpoint: WebhookEndpoint, event_type: str, body: dict[str, Any], redelivery_of: str | None = None
) -> WebhookDelivery:
    delivery = deliveries.add(
        WebhookDelivery(
            id=str(uuid.uuid4()),
            endpoint_id=endpoint.id,
            event_type=event_type,
            payload=body,
            status=DeliveryStatus.pending,
            attempts=0,
            attempt_log=[],
            redelivery_of=redelivery_of,
            created_at=utcnow(),
        )
    )
    job = enqueue_task(DELIVER_TASK, caused_by=endpoint.created_by, delivery_id=delivery.id)
    delivery.job_id = job.id
    return delivery


# Validation ----------------------------------------------------------------------------------


def _invalid(field: str, message: str, kind: str = "value_error") -> ValidationFailed:
    return ValidationFailed(message, errors=[{"field": field, "location": "body", "message": message, "type": kind}])


def _clean_url(url: Any) -> str:
    if not isinstance(url, str) or not url.strip():
        raise _invalid("url", _("Enter the URL events are sent to."), "missing")
    url = url.strip()
    if len(url) > URL_MAX_LENGTH:
        raise _invalid("url", _("The URL can be at most %(num)d characters.", num=URL_MAX_LENGTH), "string_too_long")
    try:
        targets.check_registration(url, allow_private=allow_private_targets(), timeout=_settings().webhook_timeout)
    except targets.TargetRefused as refusal:
        raise _invalid("url", translate_stored(refusal.public_message) or refusal.public_message) from None
    return url


def _clean_events(events: Any) -> list[str]:
    if not isinstance(events, list | tuple) or not events:
        raise _invalid("events", _("Choose at least one event."), "missing")
    unknown = sorted({str(name) for name in events if name not in SUBSCRIBABLE})
    if unknown:
        raise _invalid(
            "events",
            _(
                "Unknown event %(names)s: choose from %(choices)s.",
                names=", ".join(unknown),
                choices=", ".join(SUBSCRIBABLE),
            ),
            "enum",
        )
    wanted = set(events)
    return [name for name in SUBSCRIBABLE if name in wanted]  # catalogue order, no duplicates


def _clean_description(description: Any) -> str:
    if description is None:
        return ""
    if not isinstance(description, str):
        raise _invalid("description", _("The description must be text."), "string_type")
    description = description.strip()
    if len(description) > DESCRIPTION_MAX_LENGTH:
        raise _invalid(
            "description",
            _("The description can be at most %(num)d characters.", num=DESCRIPTION_MAX_LENGTH),
            "string_too_long",
        )
    return description


def shown_url(url: str) -> str:
    """The URL without its query (which may carry a receiver's token): what audit rows and
    log lines hold."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "…" if parts.query else "", ""))


def _state(endpoint: WebhookEndpoint) -> dict[str, Any]:
    return {
        "url": shown_url(endpoint.url),
        "events": list(endpoint.events),
        "description": endpoint.description,
        "is_active": endpoint.is_active,
    }


# Endpoints -----------------------------------------------------------------------------------


def list_endpoints(page: int, per_page: int) -> Page[WebhookEndpoint]:
    """One page of every endpoint, newest first."""
    return paginate(endpoint_list_statement(), page, per_page)


def get_endpoint(endpoint_id: str) -> WebhookEndpoint:
    """The endpoint; NotFound otherwise."""
    endpoint = endpoints.get(endpoint_id) if isinstance(endpoint_id, str) else None
    if endpoint is None:
        raise NotFound(_("No webhook endpoint with this id."))
    return endpoint


def create_endpoint(actor: User, url: Any, events: Any, description: Any = None) -> tuple[WebhookEndpoint, str]:
    """Register an endpoint (audited); the signing secret is returned this once and only kept
    encrypted. ValidationFailed naming `url`, `events` or `description`."""
    clean_url = _clean_url(url)
    clean_events = _clean_events(events)
    clean_description = _clean_description(description)
    secret = signing.generate_secret()
    now = utcnow()
    with unit_of_work():
        endpoint = endpoints.add(
            WebhookEndpoint(
                id=str(uuid.uuid4()),
                url=clean_url,
                description=clean_description,
                events=clean_events,
                secret_encrypted=signing.encrypt_secret(secret),
                is_active=True,
                created_by=actor.id,
                created_at=now,
                updated_at=now,
            )
        )
        record(
            "webhook_created",
            actor_id=actor.id,
            target=f"webhook:{endpoint.id}",
            after=_state(endpoint),
        )
        forget_routes()
    return endpoint, secret


def update_endpoint(
    actor: User,
    endpoint: WebhookEndpoint,
    *,
    url: Any = None,
    events: Any = None,
    description: Any = None,
    is_active: bool | None = None,
) -> WebhookEndpoint:
    """Change what is given (None: unchanged), audited. Disabling stops deliveries (pending
    ones fail as they come up); enabling again resumes them and forgets the run of failures."""
    clean_url = _clean_url(url) if url is not None else None
    clean_events = _clean_events(events) if events is not None else None
    clean_description = _clean_description(description) if description is not None else None
    with unit_of_work():
        current = endpoints.locked(endpoint.id)
        if current is None:
            raise NotFound(_("No webhook endpoint with this id."))
        before = _state(current)
        old_url = current.url
        if clean_url is not None:
            current.url = clean_url
        if clean_events is not None:
            current.events = clean_events
        if clean_description is not None:
            current.description = clean_description
        if is_active is not None and is_active != current.is_active:
            current.is_active = is_active
            if is_active:
                current.disabled_reason = current.disabled_at = current.failing_since = None
            else:
                current.disabled_reason, current.disabled_at = DISABLED_BY_HAND, utcnow()
        after = _state(current)
        changed = sorted(key for key in after if after[key] != before[key])
        if current.url != old_url and "url" not in changed:
            changed.append("url")  # only the query changed: still worth a line
        if changed:
            current.updated_at = utcnow()
            record(
                "webhook_updated",
                actor_id=actor.id,
                target=f"webhook:{current.id}",
                before={key: before[key] for key in changed},
                after={key: after[key] for key in changed},
            )
            forget_routes()
    return current


def delete_endpoint(actor: User, endpoint: WebhookEndpoint) -> None:
    """Delete the endpoint and its deliveries (audited); their jobs not yet started are revoked,
    and one already running finds its delivery gone and stops."""
    with unit_of_work():
        current = endpoints.locked(endpoint.id)
        if current is None:
            return  # deleted meanwhile
        for delivery in deliveries.session.scalars(
            delivery_list_statement(current.id).where(WebhookDelivery.status.in_(ACTIVE_DELIVERY_STATUSES))
        ):
            if delivery.job_id:
                cancel(delivery.job_id)
        record("webhook_deleted", actor_id=actor.id, target=f"webhook:{current.id}", before=_state(current))
        endpoints.delete(current)  # its deliveries go with it (ON DELETE CASCADE)
        forget_routes()


def rotate_secret(actor: User, endpoint: WebhookEndpoint) -> str:
    """A new signing secret, returned this once; the one it replaces keeps signing for
    PREVIOUS_SECRET_HOURS (both signatures are sent meanwhile). Rotating again within that
    time drops the oldest secret at once: only the last two ever sign."""
    secret = signing.generate_secret()
    now = utcnow()
    with unit_of_work():
        current = endpoints.locked(endpoint.id)
        if current is None:
            raise NotFound(_("No webhook endpoint with this id."))
        current.previous_secret_encrypted = current.secret_encrypted
        current.previous_secret_expires_at = now + timedelta(hours=PREVIOUS_SECRET_HOURS)
        current.secret_encrypted = signing.encrypt_secret(secret)
        current.updated_at = now
        record(
            "webhook_secret_rotated",
            actor_id=actor.id,
            target=f"webhook:{current.id}",
            previous_valid_until=current.previous_secret_expires_at.isoformat(),
        )
    return secret


def signing_secrets(endpoint: WebhookEndpoint, now: datetime | None = None) -> list[str]:
    """The secrets a delivery is signed with now: the current one, then the rotated-out one
    while it is still valid."""
    now = now or utcnow()
    found = [signing.decrypt_secret(endpoint.secret_encrypted)]
    if (
        endpoint.previous_secret_encrypted
        and endpoint.previous_secret_expires_at is not None
        and endpoint.previous_secret_expires_at > now
    ):
        found.append(signing.decrypt_secret(endpoint.previous_secret_encrypted))
    return found


# Deliveries ------------------------------------------------------------------------------------


def list_deliveries(endpoint_id: str, page: int, per_page: int) -> Page[WebhookDelivery]:
    """One page of the endpoint's deliveries, newest first."""
    return paginate(delivery_list_statement(endpoint_id), page, per_page)


def last_deliveries(endpoint_ids: Collection[str]) -> dict[str, WebhookDelivery]:
    """Endpoint id -> its newest delivery, for the endpoints that have one (one query)."""
    return deliveries.latest_of(endpoint_ids)


def get_delivery(endpoint_id: str, delivery_id: str) -> WebhookDelivery:
    """The endpoint's delivery; NotFound otherwise (also for another endpoint's)."""
    delivery = deliveries.find(endpoint_id, delivery_id) if isinstance(delivery_id, str) else None
    if delivery is None:
        raise NotFound(_("No delivery with this id for this endpoint."))
    return delivery


def _require_active(endpoint: WebhookEndpoint) -> None:
    if not endpoint.is_active:
        raise Conflict(_("This endpoint is disabled: enable it first."))


def redeliver(actor: User, delivery: WebhookDelivery) -> WebhookDelivery:
    """Send a delivery's event again, as a new delivery (a new `webhook-id`, the same body),
    audited. Conflict while the endpoint is disabled."""
    with unit_of_work():
        endpoint = get_endpoint(delivery.endpoint_id)
        _require_active(endpoint)
        again = _queue_delivery(endpoint, delivery.event_type, dict(delivery.payload), redelivery_of=delivery.id)
        record(
            "webhook_redelivered",
            actor_id=actor.id,
            target=f"webhook:{endpoint.id}",
            delivery=delivery.id,
            redelivery=again.id,
            event_type=delivery.event_type,
        )
    return again


def send_test(actor: User, endpoint: WebhookEndpoint) -> WebhookDelivery:
    """Queue a `webhook.test` event to the endpoint (whatever it subscribed to), audited.
    Conflict while the endpoint is disabled."""
    _require_active(endpoint)
    body = {
        "type": TEST_EVENT,
        "timestamp": utcnow().isoformat(),
        "data": {"endpoint_id": endpoint.id, "message": TEST_MESSAGE},
    }
    with unit_of_work():
        delivery = _queue_delivery(endpoint, TEST_EVENT, body)
        record("webhook_test_sent", actor_id=actor.id, target=f"webhook:{endpoint.id}", delivery=delivery.id)
    return delivery
