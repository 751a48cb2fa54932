"""One attempt at a webhook delivery (the `sync` job tasks.webhooks.deliver_webhook), the
automatic disabling of an endpoint that keeps failing, and the periodic sweep.

An attempt is three steps, so no database transaction stays open while a receiver thinks:

1. one unit of work marks the delivery `delivering` (attempt n, committed: a worker killed
   now leaves it visibly mid-attempt, and the sweeper's re-run carries on from there) and
   reads what to send: the URL, the body and the signing secrets (decrypted only here);
2. the POST, with the Standard Webhooks headers, a fresh `webhook-timestamp` and the same
   `webhook-id` (the delivery id) on every attempt (app.webhooks.targets: SSRF checks at
   this moment, pinned address, no redirects, connect and total timeouts);
3. one unit of work records the answer on the delivery (status, code, duration, first KB of
   the body, error, and a line in `attempt_log`) and on the endpoint (`failing_since`).

Then the job's outcome follows the answer: 2xx succeeds; a network error, a timeout, 408, 429
or 5xx raises RetryLater (with the receiver's Retry-After, if any) while attempts remain; any
other answer (3xx: redirects are not followed, 4xx), a refused target or the last attempt's
failure is final (PermanentFailure).

An endpoint whose deliveries have all failed for WEBHOOK_DISABLE_AFTER_HOURS is disabled at
its next final failure, and whoever registered it is notified (`webhook.disabled`).
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from werkzeug.routing import BuildError

from app.audit.service import record
from app.core.database import utcnow
from app.core.hosts import app_path
from app.core.unit_of_work import unit_of_work
from app.i18n import N_
from app.jobs.repository import JobRepository
from app.jobs.service import PermanentFailure, RetryLater
from app.logging import get_logger
from app.notifications.service import notify
from app.webhooks import signing, targets
from app.webhooks.models import SNIPPET_MAX_CHARS, DeliveryStatus, WebhookDelivery, WebhookEndpoint
from app.webhooks.service import (
    allow_private_targets,
    deliveries,
    endpoints,
    forget_routes,
    shown_url,
    signing_secrets,
)

log = get_logger("hearth.webhooks")
jobs = JobRepository()

SWEEP_BATCH = 500
ENDPOINT_PAGE = "admin.webhook_detail"  # the endpoint's page, linked from the notification

# Sentences stored with a delivery (`error`) or an endpoint (`disabled_reason`) in English,
# translated where shown.
ANSWERED = N_("The receiver answered %(status)d.")
REDIRECTED = N_("The receiver answered %(status)d (a redirect): redirects are not followed.")
ENDPOINT_DISABLED = N_("The endpoint was disabled before this delivery was sent.")
SECRET_UNREADABLE = N_("The endpoint's signing secret cannot be read (SECRET_KEY changed): rotate it.")
JOB_LOST = N_("The delivery stopped before it finished (its job ended without it).")
AUTO_DISABLED = N_("Disabled automatically: every delivery failed for %(hours)s hours.")

RETRYABLE_STATUSES = frozenset({408, 429})


def _settings():
    return current_app.extensions["hearth.settings"]


def body_bytes(payload: dict[str, Any]) -> bytes:
    """The body sent: the stored payload as compact UTF-8 JSON (the same bytes every attempt)."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def deliver(delivery_id: str, job_id: str) -> None:
    """One attempt (module docstring). Returns on success or when there is nothing to do (the
    delivery is gone or already final); raises RetryLater or PermanentFailure otherwise."""
    settings = _settings()
    allow_private = allow_private_targets()
    with unit_of_work():
        delivery = deliveries.locked(delivery_id)
        if delivery is None or delivery.is_final:
            # Deleted with its endpoint, or a stale re-run of a delivery already settled.
            log.info("webhook_delivery_skipped", delivery_id=delivery_id, reason="gone or final")
            return
        endpoint = endpoints.get(delivery.endpoint_id)
        assert endpoint is not None  # deliveries go with their endpoint (ON DELETE CASCADE)
        job = jobs.get(job_id)
        last_attempt = job is None or job.attempts >= job.max_attempts
        now = utcnow()
        attempt = delivery.attempts + 1
        delivery.attempts = attempt
        delivery.last_attempt_at = now
        delivery.job_id = job_id
        # The line is written now and completed after the answer: an attempt whose worker
        # died shows as one with no outcome.
        delivery.attempt_log = [*(delivery.attempt_log or []), {"attempt": attempt, "at": now.isoformat()}]
        if not endpoint.is_active:
            _settle(delivery, None, ENDPOINT_DISABLED, now, counts=False)
            refusal: str | None = ENDPOINT_DISABLED
        else:
            try:
                secrets = signing_secrets(endpoint, now)
                refusal = None
            except signing.SecretUnreadable:
                _settle(delivery, None, SECRET_UNREADABLE, now, counts=False)
                refusal = SECRET_UNREADABLE
        if refusal is None:
            delivery.status = DeliveryStatus.delivering
            url, body, endpoint_id = endpoint.url, body_bytes(delivery.payload), endpoint.id
    if refusal is not None:
        raise PermanentFailure(refusal)

    timestamp = int(time.time())
    headers = signing.headers(secrets, delivery_id, timestamp, body)
    del secrets  # not kept past signing
    answer: targets.Answer | None = None
    retryable = False
    error: str | None = None
    try:
        target = targets.parse(url, allow_private=allow_private)
        answer = targets.post(
            target,
            body,
            headers,
            allow_private=allow_private,
            connect_timeout=settings.webhook_connect_timeout,
            total_timeout=settings.webhook_timeout,
        )
    except targets.TargetRefused as refused:
        error = refused.public_message
    except targets.TargetUnreachable as unreachable:
        error, retryable = unreachable.public_message, True
    else:
        if not 200 <= answer.status < 300:
            retryable = answer.status in RETRYABLE_STATUSES or answer.status >= 500
            error = (REDIRECTED if 300 <= answer.status < 400 else ANSWERED) % {"status": answer.status}

    succeeded = error is None
    final = succeeded or not retryable or last_attempt
    _record_attempt(delivery_id, endpoint_id, attempt, answer, error, final)
    log.info(
        "webhook_attempt",
        delivery_id=delivery_id,
        endpoint_id=endpoint_id,
        attempt=attempt,
        response_status=answer.status if answer else None,
        duration_ms=answer.duration_ms if answer else None,
        outcome="succeeded" if succeeded else ("failed" if final else "retrying"),
    )
    if succeeded:
        return
    assert error is not None
    if final:
        raise PermanentFailure(error)
    raise RetryLater(error, retry_after=answer.retry_after if answer else None)


def _record_attempt(
    delivery_id: str,
    endpoint_id: str,
    attempt: int,
    answer: targets.Answer | None,
    error: str | None,
    final: bool,
) -> None:
    """Step 3: the answer on the delivery and its attempt line, and on the endpoint."""
    now = utcnow()
    with unit_of_work():
        delivery = deliveries.locked(delivery_id)
        if delivery is None or delivery.attempts != attempt or delivery.is_final:
            # Deleted meanwhile, or a later attempt (this worker stalled past its lease) owns it.
            log.info("webhook_attempt_superseded", delivery_id=delivery_id, attempt=attempt)
            return
        delivery.response_status = answer.status if answer else None
        delivery.response_snippet = answer.snippet[:SNIPPET_MAX_CHARS] if answer else None
        delivery.duration_ms = answer.duration_ms if answer else None
        delivery.error = error
        log_lines = list(delivery.attempt_log or [])
        line = {
            "attempt": attempt,
            "at": (delivery.last_attempt_at or now).isoformat(),
            "response_status": delivery.response_status,
            "duration_ms": delivery.duration_ms,
            "error": error,
        }
        if log_lines and log_lines[-1].get("attempt") == attempt:
            log_lines[-1] = line
        else:
            log_lines.append(line)
        delivery.attempt_log = log_lines
        if error is None:
            delivery.status = DeliveryStatus.succeeded
            delivery.finished_at = now
            endpoint = endpoints.locked(endpoint_id)
            if endpoint is not None and endpoint.failing_since is not None:
                endpoint.failing_since = None
        elif final:
            _settle(delivery, answer.status if answer else None, error, now, counts=True)
        else:
            delivery.status = DeliveryStatus.pending  # the job's next_attempt_at says when


def _settle(delivery: WebhookDelivery, status: int | None, error: str, now: datetime, *, counts: bool) -> None:
    """Fail the delivery for good; `counts`: it is one of the endpoint's own failures (not one
    refused because the endpoint was off), so it may start or extend its run of failures."""
    delivery.status = DeliveryStatus.failed
    delivery.error = error
    delivery.finished_at = now
    if status is not None:
        delivery.response_status = status
    if counts:
        endpoint = endpoints.locked(delivery.endpoint_id)
        if endpoint is not None:
            note_failure(endpoint, now)


def note_failure(endpoint: WebhookEndpoint, now: datetime) -> bool:
    """A delivery to `endpoint` failed for good: start its run of failures, or disable it once
    the run has lasted WEBHOOK_DISABLE_AFTER_HOURS (and notify whoever registered it). In the
    caller's unit of work, the endpoint's row locked. True when it was disabled."""
    if endpoint.failing_since is None:
        endpoint.failing_since = now
    hours = _settings().webhook_disable_after_hours
    if not endpoint.is_active or now - endpoint.failing_since < timedelta(hours=hours):
        return False
    endpoint.is_active = False
    endpoint.disabled_at = now
    endpoint.disabled_reason = AUTO_DISABLED % {"hours": f"{hours:g}"}
    record(
        "webhook_disabled",
        target=f"webhook:{endpoint.id}",
        reason="failing",
        failing_since=endpoint.failing_since.isoformat(),
    )
    forget_routes()
    if endpoint.created_by is not None:
        notify(
            endpoint.created_by,
            "webhook.disabled",
            params={"url": shown_url(endpoint.url), "hours": f"{hours:g}"},
            link=_endpoint_page(endpoint.id),
        )
    log.warning("webhook_endpoint_disabled", endpoint_id=endpoint.id, reason="failing")
    return True


def _endpoint_page(endpoint_id: str) -> str | None:
    try:
        return app_path(ENDPOINT_PAGE, webhook_id=endpoint_id)
    except BuildError:  # an app without the admin pages (a trimmed test app): no link
        return None


def mark_failed(delivery_id: str, reason: str) -> None:
    """The delivery's job gave up without the task settling it (it normally does itself)."""
    with unit_of_work():
        delivery = deliveries.locked(delivery_id)
        if delivery is not None and not delivery.is_final:
            _settle(delivery, None, reason, utcnow(), counts=True)


def prune(now: datetime | None = None) -> int:
    """Delete deliveries (and their attempt log) that finished more than
    WEBHOOK_DELIVERY_RETENTION_DAYS ago (the daily run); how many. Pending ones stay."""
    cutoff = (now or utcnow()) - timedelta(days=_settings().webhook_delivery_retention_days)
    with unit_of_work():
        return deliveries.prune_finished(cutoff)


def sweep(now: datetime | None = None) -> dict[str, int]:
    """Fail deliveries whose job ended without them (a worker lost on the last attempt, a
    job revoked), and forget rotated-out secrets past their 24 hours. Counts of each."""
    now = now or utcnow()
    with unit_of_work():
        orphaned = deliveries.orphaned(SWEEP_BATCH)
        for delivery in orphaned:
            _settle(delivery, None, JOB_LOST, now, counts=True)
        expired = endpoints.with_expired_previous_secret(now)
        for endpoint in expired:
            endpoint.previous_secret_encrypted = None
            endpoint.previous_secret_expires_at = None
    return {"failed": len(orphaned), "secrets_dropped": len(expired)}
