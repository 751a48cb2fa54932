"""`/admin/webhooks`: the list and its Add endpoint form, the endpoint's page (edit, enable and
disable, rotate with confirmation, test, delete with confirmation, the paginated delivery log
with Redeliver), the secret shown once on the answer itself (never in a cookie, a URL or a later
page), form errors on their fields, the `webhooks:manage` guard and the nav link. Everything
as a browser without JavaScript: plain forms, POST then redirect."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from app.audit.models import AuditEvent
from app.core.database import utcnow
from app.extensions import db
from app.webhooks.models import WebhookDelivery, WebhookEndpoint
from tests.integration.test_webhooks_api import Receiver
from tests.support import csrf_token, statements_of_get

SECRET = re.compile(r"whsec_[A-Za-z0-9+/=_-]+")


@pytest.fixture()
def receiver():
    server = Receiver()
    yield server
    server.close()


@pytest.fixture()
def admin_client(app, people, auth):
    return auth(app.test_client()).signed_in("admin@example.com")


def post(client, path: str, **data: Any):
    """A form POST with a valid CSRF token (as the page's form sends it)."""
    return client.post(path, data={"csrf_token": csrf_token(client, "/"), **data})


def _create(client, url: str, events=("user.created",), description: str = "CRM sync"):
    return post(client, "/admin/webhooks", url=url, events=list(events), description=description)


def _endpoint(app) -> WebhookEndpoint:
    with app.app_context():
        endpoint = db.session.scalar(select(WebhookEndpoint).order_by(WebhookEndpoint.created_at.desc()))
        db.session.expunge(endpoint)
        return endpoint


def _deliveries(app, endpoint_id: str, count: int) -> list[str]:
    now = utcnow()
    ids = []
    with app.app_context():
        for index in range(count):
            ids.append(str(uuid.uuid4()))
            db.session.add(
                WebhookDelivery(
                    id=ids[-1],
                    endpoint_id=endpoint_id,
                    event_type="user.created",
                    payload={"type": "user.created", "timestamp": now.isoformat(), "data": {"id": index}},
                    status="failed",
                    attempts=6,
                    response_status=503,
                    response_snippet=f"busy {index}",
                    duration_ms=40.0,
                    error="The receiver answered 503.",
                    created_at=now - timedelta(minutes=count - index),
                    last_attempt_at=now - timedelta(minutes=count - index),
                )
            )
        db.session.commit()
    return ids


# Who may, and the nav ----------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["manager", "user", "viewer"])
def test_the_pages_and_actions_need_webhooks_manage(app, people, auth, admin_client, receiver, role):
    _create(admin_client, receiver.url)
    endpoint = _endpoint(app)
    [delivery_id] = _deliveries(app, endpoint.id, 1)
    client = auth(app.test_client()).signed_in(f"{role}@example.com")
    base = f"/admin/webhooks/{endpoint.id}"
    for path in ("/admin/webhooks", "/admin/webhooks/new", base):
        assert client.get(path).status_code == 403, (role, path)
    token = csrf_token(client, "/")
    for path in (
        "/admin/webhooks",
        base,
        f"{base}/disable",
        f"{base}/rotate-secret",
        f"{base}/test",
        f"{base}/delete",
        f"{base}/deliveries/{delivery_id}/redeliver",
    ):
        data = {"csrf_token": token, "confirmed": "yes", "url": receiver.url + "/x", "events": "user.created"}
        assert client.post(path, data=data).status_code == 403, (role, path)
    assert _endpoint(app).is_active and _endpoint(app).url == receiver.url
    assert receiver.requests == []


def test_signed_out_visitors_are_sent_to_sign_in(client):
    response = client.get("/admin/webhooks")
    assert response.status_code == 302 and "/auth/login" in response.headers["Location"]


def test_the_admin_nav_links_webhooks_only_for_holders_of_webhooks_manage(app, people, auth, admin_client):
    page = admin_client.get("/admin/").get_data(as_text=True)
    assert 'href="/admin/webhooks"' in page
    manager = auth(app.test_client()).signed_in("manager@example.com")
    assert 'href="/admin/webhooks"' not in manager.get("/admin/").get_data(as_text=True)
    listing = admin_client.get("/admin/webhooks").get_data(as_text=True)
    assert re.search(r'<a href="/admin/webhooks" aria-current="page">', listing)


# Adding an endpoint: the secret once -----------------------------------------------------------


def test_the_list_shows_the_add_form_and_an_empty_state(admin_client):
    page = admin_client.get("/admin/webhooks")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "No webhook endpoints yet." in html
    assert 'action="/admin/webhooks"' in html and 'name="url"' in html
    assert 'name="events" value="user.created"' in html and 'value="webhook.test"' not in html
    assert 'name="csrf_token"' in html
    assert admin_client.get("/admin/webhooks/new").status_code == 200


def test_adding_shows_the_secret_on_the_answer_only_never_again(app, admin_client, receiver):
    response = _create(admin_client, receiver.url, events=("user.created", "role.changed"))
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    [secret] = set(SECRET.findall(html))
    assert "Copy it now: it is not shown again." in html
    assert "readonly" in html and 'id="webhook-secret"' in html
    # Not in a cookie (a flash message), a redirect or any later page.
    assert "Location" not in response.headers
    assert all(secret not in value for value in response.headers.getlist("Set-Cookie"))
    assert "no-store" in response.headers.get("Cache-Control", "")
    endpoint = _endpoint(app)
    assert endpoint.url == receiver.url and endpoint.events == ["user.created", "role.changed"]
    assert endpoint.description == "CRM sync"
    for path in ("/admin/webhooks", f"/admin/webhooks/{endpoint.id}", "/admin/"):
        later = admin_client.get(path).get_data(as_text=True)
        assert secret not in later and "whsec_" not in later, path
    assert secret not in (endpoint.secret_encrypted or "")


@pytest.mark.parametrize(
    ("form", "field", "message"),
    [
        ({"url": "", "events": ["user.created"]}, "url", "Enter the URL events are sent to."),
        ({"url": "ftp://example.com/hook", "events": ["user.created"]}, "url", None),
        (
            {"url": "http://127.0.0.1:9/hook?x=1\x012", "events": ["user.created"]},
            "url",
            "The URL must not contain control characters",
        ),
        ({"url": "https://a\u200db.example/hook", "events": ["user.created"]}, "url", "host name is not valid"),
        ({"url": "https://example.com:0/hook", "events": ["user.created"]}, "url", "port is not valid"),
        ({"url": "https://example.com/hook", "events": []}, "events", "Choose at least one event."),
        ({"url": "https://example.com/hook", "events": ["user.exploded"]}, "events", None),
        (
            {"url": "https://example.com/hook", "events": ["user.created"], "description": "x" * 501},
            "description",
            None,
        ),
    ],
)
def test_a_refused_form_comes_back_with_the_error_on_its_field(app, admin_client, form, field, message):
    response = post(admin_client, "/admin/webhooks", **form)
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert f'id="{field}-error"' in html
    if field != "events":
        assert re.search(rf'<input[^>]*aria-invalid="true"[^>]*id="{field}"|id="{field}"[^>]*aria-invalid="true"', html)
    if message:
        assert message in html
    assert "whsec_" not in html
    # What was typed stays in the form.
    if form.get("url"):
        assert f'value="{form["url"]}"' in html
    with app.app_context():
        assert db.session.scalar(select(WebhookEndpoint.id)) is None


def test_a_form_without_its_csrf_token_is_refused(app, admin_client, receiver):
    response = admin_client.post("/admin/webhooks", data={"url": receiver.url, "events": "user.created"})
    assert response.status_code == 400
    with app.app_context():
        assert db.session.scalar(select(WebhookEndpoint.id)) is None


# The endpoint's page -----------------------------------------------------------------------------


def test_the_list_shows_each_endpoint_with_its_status_and_last_delivery(app, admin_client, receiver):
    _create(admin_client, receiver.url)
    endpoint = _endpoint(app)
    _deliveries(app, endpoint.id, 2)
    html = admin_client.get("/admin/webhooks").get_data(as_text=True)
    row = re.search(rf'<tr data-webhook="{endpoint.id}">.*?</tr>', html, re.S).group(0)
    assert receiver.url in row and "user.created" in row
    assert 'data-status="active"' in row and 'data-status="failed"' in row and "503" in row
    post(admin_client, f"/admin/webhooks/{endpoint.id}/disable")
    html = admin_client.get("/admin/webhooks").get_data(as_text=True)
    row = re.search(rf'<tr data-webhook="{endpoint.id}">.*?</tr>', html, re.S).group(0)
    assert 'data-status="disabled"' in row and "Disabled by an administrator." in row


def test_the_endpoint_page_shows_details_and_the_edit_form(app, admin_client, receiver):
    _create(admin_client, receiver.url, events=("user.deleted",))
    endpoint = _endpoint(app)
    page = admin_client.get(f"/admin/webhooks/{endpoint.id}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert receiver.url in html and "Shown only when created or rotated." in html
    assert re.search(r'name="events" value="user.deleted" checked', html)
    assert not re.search(r'name="events" value="user.created" checked', html)
    assert "Nothing delivered yet." in html
    assert admin_client.get(f"/admin/webhooks/{uuid.uuid4()}").status_code == 404


def test_editing_saves_and_redirects_back(app, admin_client, receiver):
    _create(admin_client, receiver.url)
    endpoint = _endpoint(app)
    response = post(
        admin_client,
        f"/admin/webhooks/{endpoint.id}",
        url=receiver.url + "/v2",
        events=["user.updated", "user.disabled"],
        description="Billing",
    )
    assert response.status_code == 302 and response.headers["Location"].endswith(f"/admin/webhooks/{endpoint.id}")
    saved = _endpoint(app)
    assert (saved.url, saved.events, saved.description) == (
        receiver.url + "/v2",
        ["user.updated", "user.disabled"],
        "Billing",
    )
    assert "Webhook endpoint saved." in admin_client.get(response.headers["Location"]).get_data(as_text=True)


def test_a_refused_edit_shows_the_page_again_with_the_error_and_changes_nothing(app, admin_client, receiver):
    _create(admin_client, receiver.url)
    endpoint = _endpoint(app)
    response = post(admin_client, f"/admin/webhooks/{endpoint.id}", url="nope", events=["user.created"])
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert 'id="url-error"' in html and 'value="nope"' in html
    assert _endpoint(app).url == receiver.url


def test_disabling_and_enabling(app, admin_client, receiver):
    _create(admin_client, receiver.url)
    endpoint = _endpoint(app)
    response = post(admin_client, f"/admin/webhooks/{endpoint.id}/disable")
    assert response.status_code == 302
    assert _endpoint(app).is_active is False
    html = admin_client.get(f"/admin/webhooks/{endpoint.id}").get_data(as_text=True)
    assert f'action="/admin/webhooks/{endpoint.id}/enable"' in html
    post(admin_client, f"/admin/webhooks/{endpoint.id}/enable")
    assert _endpoint(app).is_active is True


def test_rotating_asks_first_then_shows_the_new_secret_once(app, admin_client, receiver):
    first = _create(admin_client, receiver.url).get_data(as_text=True)
    [old_secret] = set(SECRET.findall(first))
    endpoint = _endpoint(app)
    path = f"/admin/webhooks/{endpoint.id}/rotate-secret"
    asked = post(admin_client, path)
    assert asked.status_code == 200 and "Are you sure?" in asked.get_data(as_text=True)
    assert _endpoint(app).previous_secret_expires_at is None
    rotated = post(admin_client, path, confirmed="yes")
    html = rotated.get_data(as_text=True)
    [new_secret] = set(SECRET.findall(html))
    assert new_secret != old_secret and "Secret rotated" in html
    assert all(new_secret not in value for value in rotated.headers.getlist("Set-Cookie"))
    assert _endpoint(app).previous_secret_expires_at is not None
    later = admin_client.get(f"/admin/webhooks/{endpoint.id}").get_data(as_text=True)
    assert new_secret not in later and "The previous secret signs too until" in later


def test_sending_a_test_event_lists_its_delivery(app, admin_client, receiver):
    _create(admin_client, receiver.url)
    endpoint = _endpoint(app)
    response = post(admin_client, f"/admin/webhooks/{endpoint.id}/test")
    assert response.status_code == 302
    assert len(receiver.requests) == 1
    html = admin_client.get(response.headers["Location"]).get_data(as_text=True)
    assert "A test event is on its way" in html
    row = re.search(r"<tr data-delivery=.*?</tr>", html, re.S).group(0)
    assert "webhook.test" in row and 'data-status="succeeded"' in row and "Redeliver" in row


def test_a_disabled_endpoint_refuses_a_test_event_with_a_message(app, admin_client, receiver):
    _create(admin_client, receiver.url)
    endpoint = _endpoint(app)
    post(admin_client, f"/admin/webhooks/{endpoint.id}/disable")
    response = post(admin_client, f"/admin/webhooks/{endpoint.id}/test")
    assert response.status_code == 302
    assert "enable it first" in admin_client.get(response.headers["Location"]).get_data(as_text=True)
    assert receiver.requests == []


def test_redeliver_sends_the_event_again_as_a_new_delivery(app, admin_client, receiver):
    _create(admin_client, receiver.url)
    endpoint = _endpoint(app)
    [delivery_id] = _deliveries(app, endpoint.id, 1)
    response = post(admin_client, f"/admin/webhooks/{endpoint.id}/deliveries/{delivery_id}/redeliver")
    assert response.status_code == 302
    assert len(receiver.requests) == 1
    with app.app_context():
        again = db.session.scalar(select(WebhookDelivery).where(WebhookDelivery.redelivery_of == delivery_id))
        assert again is not None and again.status == "succeeded"
    assert post(admin_client, f"/admin/webhooks/{endpoint.id}/deliveries/{uuid.uuid4()}/redeliver").status_code == 404


def test_the_delivery_log_is_paginated_and_htmx_gets_the_table_alone(app, admin_client, receiver):
    _create(admin_client, receiver.url)
    endpoint = _endpoint(app)
    ids = _deliveries(app, endpoint.id, 23)
    first = admin_client.get(f"/admin/webhooks/{endpoint.id}").get_data(as_text=True)
    shown = re.findall(r'<tr data-delivery="([^"]+)"', first)
    assert shown == list(reversed(ids))[:20]
    assert "Page 1 of 2" in first and f"/admin/webhooks/{endpoint.id}?page=2" in first
    assert "busy 22" in first and "The receiver answered 503." in first
    second = admin_client.get(f"/admin/webhooks/{endpoint.id}?page=2", headers={"HX-Request": "true"})
    html = second.get_data(as_text=True)
    assert re.findall(r'<tr data-delivery="([^"]+)"', html) == list(reversed(ids))[20:]
    assert "<html" not in html and 'id="edit-title"' not in html


def test_deleting_asks_first_then_removes_the_endpoint(app, admin_client, receiver):
    _create(admin_client, receiver.url)
    endpoint = _endpoint(app)
    path = f"/admin/webhooks/{endpoint.id}/delete"
    asked = post(admin_client, path)
    assert asked.status_code == 200 and "Are you sure?" in asked.get_data(as_text=True)
    response = post(admin_client, path, confirmed="yes")
    assert response.status_code == 302 and response.headers["Location"].endswith("/admin/webhooks")
    with app.app_context():
        assert db.session.get(WebhookEndpoint, endpoint.id) is None
        audited = db.session.scalars(select(AuditEvent.event).where(AuditEvent.target == f"webhook:{endpoint.id}"))
        assert {"webhook_created", "webhook_deleted"} <= set(audited)
    assert admin_client.get(f"/admin/webhooks/{endpoint.id}").status_code == 404


def test_the_endpoint_list_is_paginated(app, admin_client, receiver):
    for index in range(27):
        _create(admin_client, f"{receiver.url}/{index}")
    first = admin_client.get("/admin/webhooks").get_data(as_text=True)
    assert len(re.findall(r"<tr data-webhook=", first)) == 25 and "Page 1 of 2" in first
    second = admin_client.get("/admin/webhooks?page=2").get_data(as_text=True)
    assert len(re.findall(r"<tr data-webhook=", second)) == 2


def _statements(app, client, path: str) -> list[str]:
    return statements_of_get(app, client, path)[0]


def test_the_list_reads_every_endpoints_last_delivery_in_one_statement(app, admin_client, receiver):
    def add_endpoints(count: int) -> None:
        for index in range(count):
            _create(admin_client, f"{receiver.url}/{index}")
            _deliveries(app, _endpoint(app).id, 2)

    add_endpoints(2)
    few = _statements(app, admin_client, "/admin/webhooks")
    add_endpoints(4)
    many = _statements(app, admin_client, "/admin/webhooks")
    assert len(many) == len(few), (few, many)  # not two more per endpoint (no N+1)
    assert sum("webhook_deliveries" in statement for statement in many) == 1
    html = admin_client.get("/admin/webhooks").get_data(as_text=True)
    rows = re.findall(r'<tr data-webhook="[^"]+">.*?</tr>', html, re.S)
    assert len(rows) == 6 and all('data-status="failed"' in row and "503" in row for row in rows)
