"""/admin/webhooks in Chromium: every webhooks page (the list, the add form and its errors, the
secret shown once, an endpoint with its delivery log, the confirmation) fits 390 and 1280 px
(and the widths between), passes axe-core and raises no CSP violation, in both schemes: the
sweep of tests/e2e/test_every_page.py, over these pages. Screenshots go beside the sweep's
(`staff-webhooks-…`)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest

from app.core.database import utcnow
from app.core.unit_of_work import unit_of_work
from app.extensions import db
from app.users.models import User
from app.webhooks import service
from app.webhooks.models import WebhookDelivery
from tests.e2e.test_every_page import SCHEMES, Visit, post_form, run_sweep, sign_in_as

pytestmark = pytest.mark.e2e

LONG_URL = (
    "https://hooks.receiver-with-a-rather-long-name.example.com/api/v2/incoming/webhooks/hearth?token=abc123def456"
)
LONG_SNIPPET = '{"error": "upstream_unavailable", "detail": "' + "The receiving service is overloaded. " * 20 + '"}'


def _endpoints(app, admin_id: int) -> str:
    """An active endpoint with deliveries in every state, a disabled one, a few plain ones."""
    with app.app_context():
        admin = db.session.get(User, admin_id)
        events = ["user.created", "user.updated", "user.deleted", "role.changed", "export.ready"]
        endpoint, _secret = service.create_endpoint(admin, LONG_URL, events, "CRM sync")
        disabled, _secret = service.create_endpoint(admin, "https://billing.example.com/hooks", ["upload.ready"], "")
        service.update_endpoint(admin, disabled, is_active=False)
        for index in range(3):
            service.create_endpoint(admin, f"https://example.com/hook/{index}", ["user.created"], f"Hook {index}")
        now = utcnow()
        with unit_of_work() as session:
            for index, (status, code, snippet, error) in enumerate(
                [
                    ("succeeded", 200, "ok", None),
                    ("failed", 503, LONG_SNIPPET, "The receiver answered 503 Service Unavailable after 6 attempts."),
                    ("pending", 500, "Internal Server Error", "The receiver answered 500."),
                    ("delivering", None, None, None),
                    ("failed", None, None, "The connection timed out after 10 seconds."),
                ]
            ):
                session.add(
                    WebhookDelivery(
                        id=str(uuid.uuid4()),
                        endpoint_id=endpoint.id,
                        event_type="user.created",
                        payload={"type": "user.created", "timestamp": now.isoformat(), "data": {"id": index}},
                        status=status,
                        attempts=index + 1,
                        response_status=code,
                        response_snippet=snippet,
                        duration_ms=1234.5 if code else None,
                        error=error,
                        created_at=now - timedelta(minutes=index),
                        last_attempt_at=now - timedelta(minutes=index) if code else None,
                    )
                )
        return endpoint.id


def _add_endpoint(url: str) -> Any:
    """Fill and send the add form of /admin/webhooks/new; the status of the page it answers."""

    def submit(page: Any) -> int:
        page.goto("/admin/webhooks/new")
        page.locator("input[name=url]").fill(url)
        page.locator("input[name=events][value='user.created']").check()
        with page.expect_navigation() as navigation:
            page.locator("form.webhook-form button[type=submit]").click()
        response = navigation.value
        return response.status if response is not None else 0

    return submit


@pytest.mark.parametrize("scheme", SCHEMES)
def test_every_webhooks_page_fits_and_passes_axe(new_page, live_server_url, app, make_user, scheme):
    admin = make_user(email="admin@example.com", display_name="Ada Admin", role="admin", email_verified_at=utcnow())
    endpoint_id = _endpoints(app, admin.id)
    detail = f"/admin/webhooks/{endpoint_id}"
    visits = [
        Visit("webhooks", "/admin/webhooks"),
        Visit("webhooks-new", "/admin/webhooks/new"),
        Visit("webhooks-form-error", open=_add_endpoint("ftp://example.com/nope"), status=422),
        Visit("webhooks-secret", open=_add_endpoint("https://example.com/brand-new")),
        Visit("webhooks-detail", detail),
        Visit("webhooks-confirm", open=post_form(detail, f"{detail}/rotate-secret")),
    ]
    run_sweep(new_page, live_server_url, "staff", scheme, visits, sign_in=sign_in_as("admin@example.com"))
