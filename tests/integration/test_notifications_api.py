"""`/api/v1/notifications`: the caller's own notifications (others' are 404), marking them read,
and preferences with 422 problems naming the field."""

from __future__ import annotations

import pytest

from app.core.database import utcnow
from app.core.unit_of_work import unit_of_work
from app.extensions import db
from app.notifications import service
from app.notifications.catalogue import KINDS
from app.notifications.models import Notification


@pytest.fixture()
def member(make_user):
    return make_user(email="member@example.com", email_verified_at=utcnow())


@pytest.fixture()
def other(make_user):
    return make_user(email="other@example.com")


def _notify(app, user_id, count=1):
    with app.app_context(), unit_of_work() as session:
        rows = [
            service.notify(user_id, "upload.ready", params={"filename": f"file-{n}.pdf"}, link="/files/")
            for n in range(count)
        ]
        session.flush()
        return [row.id for row in rows]


def _read_at(app, notification_id):
    with app.app_context():
        return db.session.get(Notification, notification_id).read_at


ENDPOINTS = [
    ("get", "/api/v1/notifications"),
    ("post", "/api/v1/notifications/1/read"),
    ("post", "/api/v1/notifications/read-all"),
    ("get", "/api/v1/notifications/preferences"),
    ("put", "/api/v1/notifications/preferences"),
]


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_every_endpoint_needs_a_bearer_token(client, method, path):
    response = getattr(client, method)(path, json={} if method == "put" else None)
    assert response.status_code == 401 and response.mimetype == "application/problem+json"


def test_the_list_holds_only_my_notifications_newest_first_paginated(app, client, member, other, api_auth):
    mine = _notify(app, member.id, count=3)
    _notify(app, other.id, count=2)
    response = client.get("/api/v1/notifications?per_page=2", headers=api_auth.headers(member))
    assert response.status_code == 200
    body = response.json
    assert [item["id"] for item in body["items"]] == [mine[2], mine[1]]
    assert body["meta"] == {"page": 1, "per_page": 2, "total": 3, "pages": 2}
    assert response.headers["X-Total-Count"] == "3" and 'rel="next"' in response.headers["Link"]
    item = body["items"][0]
    assert item["kind"] == "upload.ready" and item["title"] == "File ready: file-2.pdf"
    assert item["link"] == "/files/" and item["read_at"] is None and item["created_at"]


def test_unread_true_lists_only_unread(app, client, member, api_auth):
    first, second = _notify(app, member.id, count=2)
    with app.app_context():
        service.mark_read(member.id, first)
    headers = api_auth.headers(member)
    unread = client.get("/api/v1/notifications?unread=true", headers=headers).json
    assert [item["id"] for item in unread["items"]] == [second]
    everything = client.get("/api/v1/notifications", headers=headers).json
    assert everything["meta"]["total"] == 2


def test_marking_one_read_answers_204_and_is_idempotent(app, client, member, api_auth):
    [notification_id] = _notify(app, member.id)
    headers = api_auth.headers(member)
    response = client.post(f"/api/v1/notifications/{notification_id}/read", headers=headers)
    assert response.status_code == 204 and response.get_data() == b""
    read_at = _read_at(app, notification_id)
    assert read_at is not None
    assert client.post(f"/api/v1/notifications/{notification_id}/read", headers=headers).status_code == 204
    assert _read_at(app, notification_id) == read_at


def test_another_users_notification_is_404(app, client, member, other, api_auth):
    [notification_id] = _notify(app, member.id)
    headers = api_auth.headers(other)
    response = client.post(f"/api/v1/notifications/{notification_id}/read", headers=headers)
    assert response.status_code == 404 and response.json["type"].endswith("/not-found")
    assert client.post("/api/v1/notifications/999999/read", headers=headers).status_code == 404
    assert _read_at(app, notification_id) is None
    assert client.get("/api/v1/notifications", headers=headers).json["items"] == []


def test_read_all_marks_only_mine(app, client, member, other, api_auth):
    mine = _notify(app, member.id, count=2)
    [theirs] = _notify(app, other.id)
    response = client.post("/api/v1/notifications/read-all", headers=api_auth.headers(member))
    assert response.status_code == 204
    assert all(_read_at(app, notification_id) is not None for notification_id in mine)
    assert _read_at(app, theirs) is None


def test_preferences_list_every_kind_with_the_defaults(client, member, api_auth):
    response = client.get("/api/v1/notifications/preferences", headers=api_auth.headers(member))
    assert response.status_code == 200
    assert response.json == {kind.name: {"in_app": kind.in_app, "email": kind.email or kind.security} for kind in KINDS}


def test_put_changes_the_kinds_given_and_answers_every_kind(app, client, member, api_auth):
    headers = api_auth.headers(member)
    response = client.put(
        "/api/v1/notifications/preferences",
        json={
            "upload.ready": {"in_app": False, "email": True},
            "security.new_sign_in": {"in_app": False, "email": True},
        },
        headers=headers,
    )
    assert response.status_code == 200, response.json
    assert response.json["upload.ready"] == {"in_app": False, "email": True}
    assert response.json["security.new_sign_in"] == {"in_app": False, "email": True}
    assert response.json["export.ready"] == {"in_app": True, "email": True}  # left as it was
    assert client.get("/api/v1/notifications/preferences", headers=headers).json == response.json


def test_an_unknown_kind_is_a_422_naming_it(app, client, member, api_auth):
    response = client.put(
        "/api/v1/notifications/preferences",
        json={"upload.ready": {"in_app": False, "email": False}, "export.bogus": {"in_app": True, "email": True}},
        headers=api_auth.headers(member),
    )
    assert response.status_code == 422
    assert [error["field"] for error in response.json["errors"]] == ["export.bogus"]
    with app.app_context():
        assert service.preferences(member.id)["upload.ready"].in_app is True  # nothing saved


def test_switching_a_security_email_off_is_a_422(app, client, member, api_auth):
    response = client.put(
        "/api/v1/notifications/preferences",
        json={"security.password_changed": {"in_app": True, "email": False}},
        headers=api_auth.headers(member),
    )
    assert response.status_code == 422
    assert [error["field"] for error in response.json["errors"]] == ["security.password_changed.email"]
    with app.app_context():
        assert service.preferences(member.id)["security.password_changed"].email is True


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"upload.ready": {"in_app": "yes", "email": True}}, "upload.ready.in_app"),
        ({"upload.ready": {"in_app": True}}, "upload.ready.email"),
        ({"upload.ready": {"in_app": True, "email": True, "sms": True}}, "upload.ready.sms"),
    ],
)
def test_malformed_preferences_are_422_naming_the_field(client, member, api_auth, body, field):
    response = client.put("/api/v1/notifications/preferences", json=body, headers=api_auth.headers(member))
    assert response.status_code == 422
    assert field in [error["field"] for error in response.json["errors"]]


def test_the_openapi_document_lists_the_operations_and_every_kind(client):
    spec = client.get("/api/openapi.json").json
    assert {"get"} <= set(spec["paths"]["/api/v1/notifications"])
    assert "post" in spec["paths"]["/api/v1/notifications/{notification_id}/read"]
    assert "post" in spec["paths"]["/api/v1/notifications/read-all"]
    assert {"get", "put"} <= set(spec["paths"]["/api/v1/notifications/preferences"])
    properties = spec["components"]["schemas"]["NotificationPreferences"]["properties"]
    assert set(properties) == {kind.name for kind in KINDS}
