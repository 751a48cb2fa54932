"""`/api/v1/webhooks`: registering endpoints (the secret shown once, never again), editing,
disabling and deleting them, rotating secrets, the event catalogue, test events, the delivery
log with redelivery, validation (422 naming the field), 404s, the `webhooks:manage` guard,
pagination, ETags, and the OpenAPI document."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from sqlalchemy import select

from app.core.database import utcnow
from app.extensions import db
from app.rbac import management as role_management
from app.users.models import User
from app.webhooks.catalogue import SUBSCRIBABLE
from app.webhooks.models import WebhookDelivery, WebhookEndpoint

BASE = "/api/v1/webhooks"


class Receiver:
    """A webhook receiver on loopback that answers 200 and keeps what it was sent."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        received = self.requests

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                received.append({"headers": dict(self.headers), "body": self.rfile.read(length)})
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


@pytest.fixture()
def admin_headers(people, api_auth) -> dict[str, str]:
    return api_auth.headers(people["admin"])


def _create(client, headers, url: str, events=("user.created",), description: str = "CRM sync") -> Any:
    return client.post(BASE, json={"url": url, "events": list(events), "description": description}, headers=headers)


def _created(client, headers, url: str, **kwargs: Any) -> dict[str, Any]:
    response = _create(client, headers, url, **kwargs)
    assert response.status_code == 201, response.get_json()
    return response.json


def _deliveries(app, endpoint_id: str, count: int, status: str = "succeeded") -> list[str]:
    """`count` delivery rows written directly (nothing is sent), a second apart, newest last."""
    now = utcnow()
    ids = []
    with app.app_context():
        for index in range(count):
            delivery_id = str(uuid.uuid4())
            db.session.add(
                WebhookDelivery(
                    id=delivery_id,
                    endpoint_id=endpoint_id,
                    event_type="user.created",
                    payload={"type": "user.created", "timestamp": now.isoformat(), "data": {"id": index}},
                    status=status,
                    attempts=1,
                    response_status=200 if status == "succeeded" else 500,
                    response_snippet="ok" if status == "succeeded" else "boom",
                    duration_ms=12.0,
                    created_at=now - timedelta(seconds=count - index),
                    last_attempt_at=now - timedelta(seconds=count - index),
                )
            )
            ids.append(delivery_id)
        db.session.commit()
    return ids


# Registering: the secret once ----------------------------------------------------------------


def test_registering_answers_201_with_the_secret_once_and_a_location(client, admin_headers, receiver):
    response = _create(client, admin_headers, receiver.url, events=("user.created", "user.deleted"))
    assert response.status_code == 201
    body = response.json
    assert body["secret"].startswith("whsec_") and len(body["secret"]) > 20
    assert body["url"] == receiver.url
    assert body["events"] == ["user.created", "user.deleted"]
    assert body["description"] == "CRM sync"
    assert body["is_active"] is True and body["disabled_reason"] is None
    assert response.headers["Location"].endswith(f"{BASE}/{body['id']}")

    shown = client.get(response.headers["Location"], headers=admin_headers)
    assert shown.status_code == 200
    assert "secret" not in shown.json
    assert body["secret"] not in shown.get_data(as_text=True)
    listed = client.get(BASE, headers=admin_headers)
    assert [item["id"] for item in listed.json["items"]] == [body["id"]]
    assert "whsec_" not in listed.get_data(as_text=True)


def test_the_secret_is_stored_encrypted_not_as_it_was_shown(app, client, admin_headers, receiver):
    body = _created(client, admin_headers, receiver.url)
    with app.app_context():
        endpoint = db.session.get(WebhookEndpoint, body["id"])
        assert body["secret"] not in (endpoint.secret_encrypted or "")


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"url": "not a url", "events": ["user.created"]}, "url"),
        ({"url": "ftp://example.com/hook", "events": ["user.created"]}, "url"),
        ({"url": "", "events": ["user.created"]}, "url"),
        ({"url": "https://example.com/" + "a" * 2100, "events": ["user.created"]}, "url"),
        ({"url": "https://example.com/hook", "events": []}, "events"),
        ({"url": "https://example.com/hook", "events": ["user.exploded"]}, "events.0"),
        ({"url": "https://example.com/hook", "events": ["webhook.test"]}, "events.0"),
        ({"url": "https://example.com/hook"}, "events"),
        ({"events": ["user.created"]}, "url"),
        ({"url": "https://example.com/hook", "events": ["user.created"], "description": "x" * 501}, "description"),
        ({"url": "https://example.com/hook", "events": ["user.created"], "secret": "whsec_mine"}, "secret"),
    ],
)
def test_registering_refuses_bad_input_with_a_422_naming_the_field(app, client, admin_headers, payload, field):
    response = client.post(BASE, json=payload, headers=admin_headers)
    assert response.status_code == 422, response.get_json()
    assert response.mimetype == "application/problem+json"
    assert field in {error["field"] for error in response.json["errors"]}
    with app.app_context():
        assert db.session.scalar(select(WebhookEndpoint.id)) is None


def test_a_private_target_is_refused_when_private_targets_are_not_allowed(make_app, make_user, api_auth):
    strict = make_app(webhook_allow_private_targets=False)
    admin = make_user(email="strict-admin@example.com", role="admin")
    client = strict.test_client()
    headers = api_auth(client).headers(admin)
    for url in ("http://127.0.0.1:9/hook", "https://127.0.0.1/hook", "https://169.254.169.254/latest"):
        response = client.post(BASE, json={"url": url, "events": ["user.created"]}, headers=headers)
        assert response.status_code == 422, (url, response.get_json())
        assert [error["field"] for error in response.json["errors"]] == ["url"]


# Reading, editing, deleting ------------------------------------------------------------------


def test_the_list_is_paginated_with_meta_and_link_headers(client, admin_headers, receiver):
    for index in range(3):
        _created(client, admin_headers, f"{receiver.url}/{index}")
    first = client.get(f"{BASE}?per_page=2", headers=admin_headers)
    assert first.status_code == 200
    assert first.json["meta"] == {"page": 1, "per_page": 2, "total": 3, "pages": 2}
    assert len(first.json["items"]) == 2
    assert first.headers["X-Total-Count"] == "3"
    assert 'rel="next"' in first.headers["Link"]
    second = client.get(f"{BASE}?per_page=2&page=2", headers=admin_headers)
    assert len(second.json["items"]) == 1
    seen = {item["id"] for item in first.json["items"] + second.json["items"]}
    assert len(seen) == 3
    assert client.get(f"{BASE}?per_page=101", headers=admin_headers).status_code == 422


def test_patch_changes_only_the_fields_sent(client, admin_headers, receiver):
    endpoint = _created(client, admin_headers, receiver.url)
    path = f"{BASE}/{endpoint['id']}"
    response = client.patch(path, json={"events": ["user.deleted", "role.changed"]}, headers=admin_headers)
    assert response.status_code == 200, response.get_json()
    assert sorted(response.json["events"]) == ["role.changed", "user.deleted"]
    assert response.json["url"] == receiver.url and response.json["description"] == "CRM sync"
    assert "secret" not in response.json

    response = client.patch(path, json={"url": receiver.url + "/v2", "description": "New"}, headers=admin_headers)
    assert (response.json["url"], response.json["description"]) == (receiver.url + "/v2", "New")
    assert client.get(path, headers=admin_headers).json["url"] == receiver.url + "/v2"


def test_patch_is_active_disables_and_re_enables_the_endpoint(client, admin_headers, receiver):
    endpoint = _created(client, admin_headers, receiver.url)
    path = f"{BASE}/{endpoint['id']}"
    disabled = client.patch(path, json={"is_active": False}, headers=admin_headers).json
    assert disabled["is_active"] is False and disabled["disabled_at"] is not None
    enabled = client.patch(path, json={"is_active": True}, headers=admin_headers).json
    assert enabled["is_active"] is True and enabled["disabled_reason"] is None


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"url": "gopher://example.com"}, "url"),
        ({"events": []}, "events"),
        ({"events": ["nope"]}, "events.0"),
        ({"is_active": "maybe"}, "is_active"),
        ({"secret": "whsec_x"}, "secret"),
    ],
)
def test_patch_refuses_bad_input_with_a_422_naming_the_field(client, admin_headers, receiver, payload, field):
    endpoint = _created(client, admin_headers, receiver.url)
    response = client.patch(f"{BASE}/{endpoint['id']}", json=payload, headers=admin_headers)
    assert response.status_code == 422, response.get_json()
    assert field in {error["field"] for error in response.json["errors"]}
    assert client.get(f"{BASE}/{endpoint['id']}", headers=admin_headers).json["url"] == receiver.url


def test_get_carries_an_etag_and_a_stale_if_match_is_refused(client, admin_headers, receiver):
    endpoint = _created(client, admin_headers, receiver.url)
    path = f"{BASE}/{endpoint['id']}"
    etag = client.get(path, headers=admin_headers).headers["ETag"]
    assert client.get(path, headers={**admin_headers, "If-None-Match": etag}).status_code == 304
    assert client.patch(path, json={"description": "A"}, headers={**admin_headers, "If-Match": etag}).status_code == 200
    stale = client.patch(path, json={"description": "B"}, headers={**admin_headers, "If-Match": etag})
    assert stale.status_code == 412
    assert client.get(path, headers=admin_headers).json["description"] == "A"


def test_delete_answers_204_and_the_endpoint_and_its_deliveries_are_gone(app, client, admin_headers, receiver):
    endpoint = _created(client, admin_headers, receiver.url)
    _deliveries(app, endpoint["id"], 2)
    response = client.delete(f"{BASE}/{endpoint['id']}", headers=admin_headers)
    assert response.status_code == 204 and response.data == b""
    assert client.get(f"{BASE}/{endpoint['id']}", headers=admin_headers).status_code == 404
    with app.app_context():
        assert db.session.scalar(select(WebhookDelivery.id)) is None


def test_a_disabled_endpoint_refuses_test_events_and_redeliveries_with_409(app, client, admin_headers, receiver):
    endpoint = _created(client, admin_headers, receiver.url)
    [delivery_id] = _deliveries(app, endpoint["id"], 1)
    client.patch(f"{BASE}/{endpoint['id']}", json={"is_active": False}, headers=admin_headers)
    assert client.post(f"{BASE}/{endpoint['id']}/test", headers=admin_headers).status_code == 409
    redeliver = f"{BASE}/{endpoint['id']}/deliveries/{delivery_id}/redeliver"
    assert client.post(redeliver, headers=admin_headers).status_code == 409
    assert receiver.requests == []


# Secrets ----------------------------------------------------------------------------------------


def test_rotating_answers_a_new_secret_once_and_keeps_the_old_one_for_24_hours(client, admin_headers, receiver):
    endpoint = _created(client, admin_headers, receiver.url)
    before = utcnow()
    response = client.post(f"{BASE}/{endpoint['id']}/rotate-secret", headers=admin_headers)
    assert response.status_code == 200, response.get_json()
    rotated = response.json
    assert rotated["secret"].startswith("whsec_") and rotated["secret"] != endpoint["secret"]
    expires = rotated["previous_secret_expires_at"]
    assert expires is not None
    from datetime import datetime

    moment = datetime.fromisoformat(expires)
    assert timedelta(hours=23, minutes=59) <= moment - before <= timedelta(hours=24, minutes=1)
    shown = client.get(f"{BASE}/{endpoint['id']}", headers=admin_headers)
    text = shown.get_data(as_text=True)
    assert rotated["secret"] not in text and endpoint["secret"] not in text
    assert shown.json["previous_secret_expires_at"] is not None


# The catalogue ------------------------------------------------------------------------------


def test_the_event_catalogue_lists_every_type_with_a_description(client, admin_headers):
    response = client.get(f"{BASE}/events", headers=admin_headers)
    assert response.status_code == 200
    listed = {item["type"]: item["description"] for item in response.json["items"]}
    assert set(listed) == set(SUBSCRIBABLE) and "webhook.test" not in listed
    assert {"user.created", "user.updated", "user.disabled", "user.deleted", "role.changed"} <= set(listed)
    assert {"upload.ready", "upload.rejected", "export.ready"} <= set(listed)
    assert all(description for description in listed.values())


def test_the_event_catalogue_is_in_the_requests_language(client, admin_headers):
    english = client.get(f"{BASE}/events", headers=admin_headers).json["items"]
    german = client.get(f"{BASE}/events", headers={**admin_headers, "Accept-Language": "de"}).json["items"]
    assert [item["type"] for item in german] == [item["type"] for item in english]


# Test events and deliveries -------------------------------------------------------------------


def test_a_test_event_answers_202_with_its_delivery_and_reaches_the_receiver(client, admin_headers, receiver):
    endpoint = _created(client, admin_headers, receiver.url)
    response = client.post(f"{BASE}/{endpoint['id']}/test", headers=admin_headers)
    assert response.status_code == 202, response.get_json()
    delivery = response.json
    assert delivery["event_type"] == "webhook.test" and delivery["endpoint_id"] == endpoint["id"]
    assert response.headers["Location"].endswith(f"{BASE}/{endpoint['id']}/deliveries/{delivery['id']}")
    # Jobs run at once in tests: the receiver has it, under the delivery's id.
    assert [request["headers"].get("webhook-id") for request in receiver.requests] == [delivery["id"]]

    shown = client.get(response.headers["Location"], headers=admin_headers)
    assert shown.status_code == 200
    assert shown.json["status"] == "succeeded" and shown.json["response_status"] == 200
    assert shown.json["attempts"] == 1 and shown.json["response_snippet"] == "ok"
    assert shown.json["payload"]["type"] == "webhook.test"
    listed = client.get(f"{BASE}/{endpoint['id']}/deliveries", headers=admin_headers).json
    assert [item["id"] for item in listed["items"]] == [delivery["id"]]
    assert "payload" not in listed["items"][0]


def test_redelivering_queues_a_new_delivery_of_the_same_event(client, admin_headers, receiver):
    endpoint = _created(client, admin_headers, receiver.url)
    first = client.post(f"{BASE}/{endpoint['id']}/test", headers=admin_headers).json
    response = client.post(f"{BASE}/{endpoint['id']}/deliveries/{first['id']}/redeliver", headers=admin_headers)
    assert response.status_code == 202, response.get_json()
    again = response.json
    assert again["id"] != first["id"] and again["event_type"] == first["event_type"]
    assert again["redelivery_of"] == first["id"]
    assert response.headers["Location"].endswith(f"/deliveries/{again['id']}")
    assert len(receiver.requests) == 2
    assert receiver.requests[0]["body"] == receiver.requests[1]["body"]
    listed = client.get(f"{BASE}/{endpoint['id']}/deliveries", headers=admin_headers).json
    assert {item["id"] for item in listed["items"]} == {first["id"], again["id"]}


def test_the_delivery_log_is_paginated_newest_first(app, client, admin_headers, receiver):
    endpoint = _created(client, admin_headers, receiver.url)
    ids = _deliveries(app, endpoint["id"], 5, status="failed")
    first = client.get(f"{BASE}/{endpoint['id']}/deliveries?per_page=2", headers=admin_headers)
    assert first.json["meta"] == {"page": 1, "per_page": 2, "total": 5, "pages": 3}
    assert [item["id"] for item in first.json["items"]] == [ids[4], ids[3]]
    item = first.json["items"][0]
    assert (item["status"], item["attempts"], item["response_status"], item["response_snippet"]) == (
        "failed",
        1,
        500,
        "boom",
    )
    assert item["duration_ms"] == 12.0 and item["last_attempt_at"] is not None
    last = client.get(f"{BASE}/{endpoint['id']}/deliveries?per_page=2&page=3", headers=admin_headers)
    assert [item["id"] for item in last.json["items"]] == [ids[0]]
    assert 'rel="prev"' in last.headers["Link"]


# Not found ------------------------------------------------------------------------------------


def test_unknown_endpoints_and_deliveries_are_404(client, admin_headers, receiver, app):
    missing = str(uuid.uuid4())
    for method, path in [
        ("get", f"{BASE}/{missing}"),
        ("patch", f"{BASE}/{missing}"),
        ("delete", f"{BASE}/{missing}"),
        ("post", f"{BASE}/{missing}/rotate-secret"),
        ("post", f"{BASE}/{missing}/test"),
        ("get", f"{BASE}/{missing}/deliveries"),
        ("get", f"{BASE}/not-a-uuid"),
        ("get", f"{BASE}/{'x' * 300}"),
    ]:
        kwargs = {"json": {"description": "x"}} if method == "patch" else {}
        response = getattr(client, method)(path, headers=admin_headers, **kwargs)
        assert response.status_code == 404, (method, path, response.status_code)
        assert response.mimetype == "application/problem+json"

    mine = _created(client, admin_headers, receiver.url)
    other = _created(client, admin_headers, receiver.url + "/other")
    [theirs] = _deliveries(app, other["id"], 1)
    for method, path in [
        ("get", f"{BASE}/{mine['id']}/deliveries/{missing}"),
        ("get", f"{BASE}/{mine['id']}/deliveries/{theirs}"),
        ("post", f"{BASE}/{mine['id']}/deliveries/{theirs}/redeliver"),
    ]:
        assert getattr(client, method)(path, headers=admin_headers).status_code == 404, path
    assert client.get(f"{BASE}/{other['id']}/deliveries/{theirs}", headers=admin_headers).status_code == 200


# Who may ----------------------------------------------------------------------------------------


def _every_operation(endpoint_id: str, delivery_id: str) -> list[tuple[str, str, dict[str, Any]]]:
    body = {"url": "https://example.com/hook", "events": ["user.created"]}
    return [
        ("post", BASE, {"json": body}),
        ("get", BASE, {}),
        ("get", f"{BASE}/events", {}),
        ("get", f"{BASE}/{endpoint_id}", {}),
        ("patch", f"{BASE}/{endpoint_id}", {"json": {"description": "mine now"}}),
        ("post", f"{BASE}/{endpoint_id}/rotate-secret", {}),
        ("post", f"{BASE}/{endpoint_id}/test", {}),
        ("get", f"{BASE}/{endpoint_id}/deliveries", {}),
        ("get", f"{BASE}/{endpoint_id}/deliveries/{delivery_id}", {}),
        ("post", f"{BASE}/{endpoint_id}/deliveries/{delivery_id}/redeliver", {}),
        ("delete", f"{BASE}/{endpoint_id}", {}),
    ]


@pytest.mark.parametrize("role", ["manager", "user", "viewer"])
def test_without_webhooks_manage_every_operation_is_403(app, client, people, api_auth, admin_headers, receiver, role):
    endpoint = _created(client, admin_headers, receiver.url)
    [delivery_id] = _deliveries(app, endpoint["id"], 1)
    headers = api_auth.headers(people[role])
    for method, path, kwargs in _every_operation(endpoint["id"], delivery_id):
        response = getattr(client, method)(path, headers=headers, **kwargs)
        assert response.status_code == 403, (role, method, path, response.status_code)
    with app.app_context():
        assert db.session.scalar(select(WebhookEndpoint.description)) == "CRM sync"
        assert db.session.query(WebhookEndpoint).count() == 1
    assert receiver.requests == []


def test_anonymous_requests_are_401(app, client, admin_headers, receiver):
    endpoint = _created(client, admin_headers, receiver.url)
    [delivery_id] = _deliveries(app, endpoint["id"], 1)
    for method, path, kwargs in _every_operation(endpoint["id"], delivery_id):
        assert getattr(client, method)(path, **kwargs).status_code == 401, (method, path)


def test_a_role_granted_webhooks_manage_may_use_the_api(app, client, make_user, api_auth, receiver):
    admin = make_user(email="root@example.com", role="admin")
    with app.app_context():
        role_management.create_role(db.session.get(User, admin.id), "integrator", "Integrations", ["webhooks:manage"])
    integrator = make_user(email="integrator@example.com", roles=("integrator",))
    response = _create(client, api_auth.headers(integrator), receiver.url)
    assert response.status_code == 201, response.get_json()


# The OpenAPI document ----------------------------------------------------------------------


DOCUMENTED = {
    (BASE, "post", "201"),
    (BASE, "get", "200"),
    (f"{BASE}/events", "get", "200"),
    (f"{BASE}/{{webhook_id}}", "get", "200"),
    (f"{BASE}/{{webhook_id}}", "patch", "200"),
    (f"{BASE}/{{webhook_id}}", "delete", "204"),
    (f"{BASE}/{{webhook_id}}/rotate-secret", "post", "200"),
    (f"{BASE}/{{webhook_id}}/test", "post", "202"),
    (f"{BASE}/{{webhook_id}}/deliveries", "get", "200"),
    (f"{BASE}/{{webhook_id}}/deliveries/{{delivery_id}}", "get", "200"),
    (f"{BASE}/{{webhook_id}}/deliveries/{{delivery_id}}/redeliver", "post", "202"),
}


def test_the_openapi_document_lists_every_webhook_operation_with_its_permission(client):
    spec = client.get("/api/openapi.json").json
    documented = {
        (path, method, status)
        for path, operations in spec["paths"].items()
        if path.startswith(BASE)
        for method, operation in operations.items()
        for status in operation["responses"]
        if status.startswith("2")
    }
    assert documented == DOCUMENTED
    for path, method, _status in DOCUMENTED:
        operation = spec["paths"][path][method]
        assert operation["tags"] == ["webhooks"]
        assert operation["x-required-permission"] == "webhooks:manage"
        assert {"401", "403", "422"} <= set(operation["responses"])
        if "{" in path:
            assert "404" in operation["responses"]
    schemas = spec["components"]["schemas"]
    # The secret is in the answers to creating and rotating only.
    with_secret = {
        name for name, schema in schemas.items() if "secret" in schema.get("properties", {}) and "Webhook" in name
    }
    assert with_secret == {"WebhookEndpointCreatedOut", "WebhookSecretOut"}
    events = schemas["WebhookEndpointIn"]["properties"]["events"]["items"]
    assert set(events["enum"]) == set(SUBSCRIBABLE)
    assert any(tag["name"] == "webhooks" for tag in spec["tags"])
