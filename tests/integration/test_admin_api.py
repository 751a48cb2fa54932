"""The admin API (`/api/v1/admin/...`): the role × endpoint matrix, the audit trail, the rules
that keep the site administrable, and jobs (retry, revoke, never the payload)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from app.audit.models import AuditEvent
from app.core.database import utcnow
from app.extensions import db
from app.jobs import service as jobs_service
from app.jobs.models import Job, JobStatus
from app.jobs.queues import QUEUES_KEY
from app.rbac import management as role_management
from app.rbac.catalog import PERMISSIONS
from app.users.models import User

SECRET_LINK = "https://hearth.test/reset/s3cr3t-t0ken-in-the-payload"
EMAIL_PAYLOAD = {"to": "x@example.com", "template": "test_message", "context": {"address": "x@example.com"}}


def _audit(app, event: str) -> list[dict[str, Any]]:
    with app.app_context():
        rows = db.session.scalars(select(AuditEvent).where(AuditEvent.event == event).order_by(AuditEvent.id))
        return [{"actor": row.actor_user_id, "target": row.target, "data": row.data} for row in rows]


def _make_job(app, status: JobStatus, **fields: Any) -> str:
    """A `jobs` row written directly (nothing is sent to huey)."""
    now = utcnow()
    values: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "queue": "emails",
        "task": "tasks.emails.send_email",
        "payload": EMAIL_PAYLOAD,
        "args_summary": {"to": EMAIL_PAYLOAD["to"], "template": EMAIL_PAYLOAD["template"]},
        "status": status,
        "attempts": 0,
        "max_attempts": 4,
        "created_at": now,
        "enqueued_at": now,
    }
    if status == JobStatus.failed:
        values |= {
            "attempts": 4,
            "error": "SMTPRecipientsRefused: x@example.com",
            "traceback": 'Traceback (most recent call last):\n  File "tasks/emails.py"\nSMTPRecipientsRefused',
            "started_at": now,
            "finished_at": now,
            "duration_ms": 12.5,
        }
    values |= fields
    with app.app_context():
        db.session.add(Job(**values))
        db.session.commit()
    return values["id"]


def _stored_job(app, job_id: str) -> Job:
    with app.app_context():
        job = db.session.get(Job, job_id)
        db.session.expunge(job)
        return job


def _stored_user(app, user_id: int) -> User:
    with app.app_context():
        user = db.session.get(User, user_id)
        user.role_names  # noqa: B018  (load the roles before leaving the session)
        db.session.expunge(user)
        return user


def _create_role(app, actor_id: int, name: str, permissions) -> None:
    with app.app_context():
        role_management.create_role(db.session.get(User, actor_id), name, f"The {name} role", permissions)


@pytest.fixture()
def ids(app, people, target) -> dict[str, Any]:
    """What the matrix paths point at: a plain user, an unused custom role, a failed and a queued job."""
    _create_role(app, people["admin"].id, "editor", ["users:read"])
    return {
        "target": target.id,
        "failed_job": _make_job(app, JobStatus.failed),
        "queued_job": _make_job(app, JobStatus.queued),
    }


ONLY_ADMIN = {"admin": 200, "manager": 403, "user": 403, "viewer": 403}
ADMIN_AND_MANAGER = {"admin": 200, "manager": 200, "user": 403, "viewer": 403}

# method, path, body, {role: status}
MATRIX = [
    ("PUT", "/api/v1/admin/users/{target}/roles", {"roles": ["viewer"]}, ONLY_ADMIN),
    ("POST", "/api/v1/admin/users/{target}/disable", None, ADMIN_AND_MANAGER),
    ("POST", "/api/v1/admin/users/{target}/enable", None, ADMIN_AND_MANAGER),
    ("POST", "/api/v1/admin/users/{target}/sign-out", None, {**ADMIN_AND_MANAGER, "admin": 204, "manager": 204}),
    ("POST", "/api/v1/admin/users/{target}/password-reset", None, {**ADMIN_AND_MANAGER, "admin": 202, "manager": 202}),
    ("GET", "/api/v1/admin/permissions", None, ONLY_ADMIN),
    ("GET", "/api/v1/admin/roles", None, ONLY_ADMIN),
    ("GET", "/api/v1/admin/roles/editor", None, ONLY_ADMIN),
    ("POST", "/api/v1/admin/roles", {"name": "auditor", "permissions": ["audit:read"]}, {**ONLY_ADMIN, "admin": 201}),
    ("PATCH", "/api/v1/admin/roles/editor", {"description": "Edits"}, ONLY_ADMIN),
    ("DELETE", "/api/v1/admin/roles/editor", None, {**ONLY_ADMIN, "admin": 204}),
    ("GET", "/api/v1/admin/jobs", None, ADMIN_AND_MANAGER),
    ("GET", "/api/v1/admin/jobs/queues", None, ADMIN_AND_MANAGER),
    ("GET", "/api/v1/admin/jobs/{failed_job}", None, ADMIN_AND_MANAGER),
    ("POST", "/api/v1/admin/jobs/{failed_job}/retry", None, ONLY_ADMIN),
    ("POST", "/api/v1/admin/jobs/{queued_job}/revoke", None, ONLY_ADMIN),
]


@pytest.mark.parametrize("role", ["admin", "manager", "user", "viewer", None])
@pytest.mark.parametrize(("method", "path", "body", "expected"), MATRIX)
def test_role_endpoint_matrix(client, ids, role, method, path, body, expected, api_auth):
    headers = api_auth.headers(f"{role}@example.com") if role else {}
    response = client.open(path.format(**ids), method=method, json=body, headers=headers)
    assert response.status_code == (expected[role] if role else 401), response.get_data(as_text=True)
    if response.status_code >= 400:
        assert response.mimetype == "application/problem+json"


# Users ------------------------------------------------------------------------------------


def test_setting_roles_replaces_them_and_is_audited(client, app, people, target, api_auth):
    headers = api_auth.headers("admin@example.com")
    response = client.put(
        f"/api/v1/admin/users/{target.id}/roles", json={"roles": ["viewer", "manager"]}, headers=headers
    )
    assert response.status_code == 200
    assert response.json["id"] == target.id and response.json["roles"] == ["manager", "viewer"]
    assert _stored_user(app, target.id).role_names == ["manager", "viewer"]
    [entry] = _audit(app, "roles_changed")
    assert entry["actor"] == people["admin"].id and entry["target"] == f"user:{target.id}"
    assert entry["data"] == {"before": {"roles": ["user"]}, "after": {"roles": ["manager", "viewer"]}}


def test_unknown_roles_and_malformed_bodies_are_422(client, people, target, api_auth):
    headers = api_auth.headers("admin@example.com")
    url = f"/api/v1/admin/users/{target.id}/roles"
    assert client.put(url, json={"roles": ["wizard"]}, headers=headers).status_code == 422
    assert client.put(url, json={"roles": "admin"}, headers=headers).status_code == 422
    assert client.put(url, json={}, headers=headers).status_code == 422


def test_disabling_ends_access_at_once_and_enabling_restores_it(client, app, people, target, api_auth):
    target_headers = api_auth.headers("target@example.com")
    headers = api_auth.headers("manager@example.com")
    disabled = client.post(f"/api/v1/admin/users/{target.id}/disable", headers=headers)
    assert disabled.status_code == 200 and disabled.json["status"] == "disabled"
    assert client.get("/api/v1/me", headers=target_headers).status_code == 401
    assert api_auth.request_tokens("target@example.com").status_code == 401
    enabled = client.post(f"/api/v1/admin/users/{target.id}/enable", headers=headers)
    assert enabled.status_code == 200 and enabled.json["status"] == "active"
    assert client.get("/api/v1/me", headers=api_auth.headers("target@example.com")).status_code == 200
    manager_id = people["manager"].id
    assert _audit(app, "user_disabled") == [
        {
            "actor": manager_id,
            "target": f"user:{target.id}",
            "data": {"before": {"is_active": True}, "after": {"is_active": False}},
        }
    ]
    assert _audit(app, "user_enabled") == [
        {
            "actor": manager_id,
            "target": f"user:{target.id}",
            "data": {"before": {"is_active": False}, "after": {"is_active": True}},
        }
    ]


def test_force_sign_out_revokes_the_access_and_refresh_tokens(client, app, people, target, api_auth):
    pair = api_auth.tokens("target@example.com")
    target_headers = {"Authorization": f"Bearer {pair['access_token']}"}
    assert client.get("/api/v1/me", headers=target_headers).status_code == 200
    before_epoch = _stored_user(app, target.id).session_epoch
    response = client.post(f"/api/v1/admin/users/{target.id}/sign-out", headers=api_auth.headers("admin@example.com"))
    assert response.status_code == 204 and response.data == b""
    assert client.get("/api/v1/me", headers=target_headers).status_code == 401
    refreshed = client.post("/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert refreshed.status_code == 401 and refreshed.mimetype == "application/problem+json"
    [entry] = _audit(app, "user_signed_out_by_admin")
    assert entry["actor"] == people["admin"].id and entry["target"] == f"user:{target.id}"
    assert entry["data"] == {"before": {"session_epoch": before_epoch}, "after": {"session_epoch": before_epoch + 1}}
    # The account itself still works: a fresh sign-in succeeds.
    assert client.get("/api/v1/me", headers=api_auth.headers("target@example.com")).status_code == 200


def test_password_reset_queues_the_email_and_is_audited(client, app, people, target, make_user, api_auth):
    headers = api_auth.headers("manager@example.com")
    response = client.post(f"/api/v1/admin/users/{target.id}/password-reset", headers=headers)
    assert response.status_code == 202
    with app.app_context():
        [job] = db.session.scalars(select(Job).where(Job.user_id == target.id)).all()
        assert job.task == "tasks.emails.send_email"
        assert job.args_summary == {"to": "target@example.com", "template": "password_reset"}
    [entry] = _audit(app, "password_reset_sent_by_admin")
    assert entry["actor"] == people["manager"].id and entry["target"] == f"user:{target.id}"
    disabled = make_user(email="off@example.com", is_active_account=False)
    refused = client.post(f"/api/v1/admin/users/{disabled.id}/password-reset", headers=headers)
    assert refused.status_code == 409


def test_the_last_active_admin_keeps_the_admin_role_and_the_account(client, app, people, make_user, api_auth):
    admin_id = people["admin"].id
    # Someone holding every permission without the admin role: only the last-admin rule can refuse.
    _create_role(app, admin_id, "superuser", PERMISSIONS)
    make_user(email="super@example.com", roles=("superuser",))
    make_user(email="old-admin@example.com", roles=("admin",), is_active_account=False)  # does not count
    headers = api_auth.headers("super@example.com")
    demoted = client.put(f"/api/v1/admin/users/{admin_id}/roles", json={"roles": ["user"]}, headers=headers)
    assert demoted.status_code == 409 and "last active administrator" in demoted.json["detail"]
    disabled = client.post(f"/api/v1/admin/users/{admin_id}/disable", headers=headers)
    assert disabled.status_code == 409 and "last active administrator" in disabled.json["detail"]
    stored = _stored_user(app, admin_id)
    assert stored.role_names == ["admin"] and stored.is_active_account is True
    assert _audit(app, "roles_changed") == [] and _audit(app, "user_disabled") == []
    # With a second active admin the same change goes through.
    make_user(email="admin2@example.com", roles=("admin",))
    allowed = client.put(f"/api/v1/admin/users/{admin_id}/roles", json={"roles": ["user"]}, headers=headers)
    assert allowed.status_code == 200 and allowed.json["roles"] == ["user"]


def test_admins_cannot_demote_or_disable_themselves(client, people, api_auth):
    headers = api_auth.headers("admin@example.com")
    admin_id = people["admin"].id
    assert client.put(f"/api/v1/admin/users/{admin_id}/roles", json={"roles": []}, headers=headers).status_code == 409
    assert client.post(f"/api/v1/admin/users/{admin_id}/disable", headers=headers).status_code == 409


def test_nobody_manages_an_account_with_more_permissions_than_their_own(client, app, people, api_auth):
    headers = api_auth.headers("manager@example.com")
    admin_id = people["admin"].id
    for action in ("disable", "sign-out", "password-reset"):
        response = client.post(f"/api/v1/admin/users/{admin_id}/{action}", headers=headers)
        assert response.status_code == 403, action
    assert _stored_user(app, admin_id).is_active_account is True


def test_unknown_and_deleted_users_are_404(client, app, people, make_user, api_auth):
    headers = api_auth.headers("admin@example.com")
    gone = make_user(email="gone@example.com", deleted_at=utcnow(), is_active_account=False)
    for user_id in (99999, gone.id):
        assert client.post(f"/api/v1/admin/users/{user_id}/enable", headers=headers).status_code == 404
        assert client.post(f"/api/v1/admin/users/{user_id}/sign-out", headers=headers).status_code == 404


# Roles and permissions --------------------------------------------------------------------


def test_permissions_are_listed_with_their_descriptions(client, people, api_auth):
    response = client.get("/api/v1/admin/permissions", headers=api_auth.headers("admin@example.com"))
    assert response.status_code == 200
    assert {item["name"]: item["description"] for item in response.json["items"]} == PERMISSIONS


def test_roles_are_listed_with_permissions_members_and_the_built_in_flag(client, app, people, make_user, api_auth):
    make_user(email="second-user@example.com", roles=("user", "viewer"))
    make_user(email="deleted@example.com", roles=("user",), deleted_at=utcnow(), is_active_account=False)
    _create_role(app, people["admin"].id, "editor", ["users:write", "users:read"])
    response = client.get("/api/v1/admin/roles", headers=api_auth.headers("admin@example.com"))
    assert response.status_code == 200
    roles = {item["name"]: item for item in response.json["items"]}
    assert list(roles) == ["admin", "editor", "manager", "user", "viewer"]
    assert {name: role["members"] for name, role in roles.items()} == {
        "admin": 1,
        "editor": 0,
        "manager": 1,
        "user": 2,  # the deleted account is not counted
        "viewer": 2,
    }
    assert {name for name, role in roles.items() if role["built_in"]} == {"admin", "manager", "user", "viewer"}
    assert roles["editor"]["permissions"] == ["users:read", "users:write"]
    assert roles["admin"]["permissions"] == sorted(PERMISSIONS)


def test_creating_a_role_answers_201_with_its_location_and_is_audited(client, app, people, api_auth):
    headers = api_auth.headers("admin@example.com")
    body = {"name": "editor", "description": "Edits accounts", "permissions": ["users:write", "users:read"]}
    response = client.post("/api/v1/admin/roles", json=body, headers=headers)
    assert response.status_code == 201
    assert response.json == {
        "name": "editor",
        "description": "Edits accounts",
        "permissions": ["users:read", "users:write"],
        "members": 0,
        "built_in": False,
    }
    assert response.headers["Location"] == "/api/v1/admin/roles/editor"
    assert client.get(response.headers["Location"], headers=headers).json == response.json
    assert _audit(app, "role_created") == [
        {
            "actor": people["admin"].id,
            "target": "role:editor",
            "data": {"after": {"permissions": ["users:read", "users:write"], "description": "Edits accounts"}},
        }
    ]


@pytest.mark.parametrize(
    "body",
    [
        {"name": "editor", "permissions": ["users:read"]},  # taken (created first below)
        {"name": "Bad Name!", "permissions": []},
        {"name": "reader", "permissions": ["users:fly"]},
        {"name": "reader", "permissions": [], "colour": "red"},
    ],
    ids=["taken", "bad-name", "unknown-permission", "unknown-field"],
)
def test_invalid_roles_are_422(client, app, people, body, api_auth):
    _create_role(app, people["admin"].id, "editor", [])
    response = client.post("/api/v1/admin/roles", json=body, headers=api_auth.headers("admin@example.com"))
    assert response.status_code == 422 and response.mimetype == "application/problem+json"
    assert [entry["target"] for entry in _audit(app, "role_created")] == ["role:editor"]  # nothing new


def test_updating_a_role_changes_what_is_sent_and_is_audited(client, app, people, api_auth):
    _create_role(app, people["admin"].id, "editor", ["users:read"])
    headers = api_auth.headers("admin@example.com")
    described = client.patch("/api/v1/admin/roles/editor", json={"description": "Edits accounts"}, headers=headers)
    assert described.status_code == 200
    assert described.json["description"] == "Edits accounts" and described.json["permissions"] == ["users:read"]
    granted = client.patch(
        "/api/v1/admin/roles/editor", json={"permissions": ["users:read", "users:write"]}, headers=headers
    )
    assert granted.status_code == 200
    assert granted.json["permissions"] == ["users:read", "users:write"]
    assert granted.json["description"] == "Edits accounts"
    assert [entry["data"] for entry in _audit(app, "role_updated")] == [
        {"before": {"description": "The editor role"}, "after": {"description": "Edits accounts"}},
        {"before": {"permissions": ["users:read"]}, "after": {"permissions": ["users:read", "users:write"]}},
    ]
    assert client.patch("/api/v1/admin/roles/editor", json={}, headers=headers).status_code == 422
    assert client.patch("/api/v1/admin/roles/nope", json={"description": "x"}, headers=headers).status_code == 404


def test_a_built_in_role_keeps_its_edited_permissions_and_they_take_effect(client, people, api_auth):
    headers = api_auth.headers("admin@example.com")
    manager_headers = api_auth.headers("manager@example.com")
    assert client.get("/api/v1/admin/jobs", headers=manager_headers).status_code == 200
    response = client.patch(
        "/api/v1/admin/roles/manager", json={"permissions": ["users:read", "users:write"]}, headers=headers
    )
    assert response.status_code == 200 and response.json["permissions"] == ["users:read", "users:write"]
    # Listing the roles (which makes sure the built-in ones exist) must not restore the grant.
    listed = {item["name"]: item for item in client.get("/api/v1/admin/roles", headers=headers).json["items"]}
    assert listed["manager"]["permissions"] == ["users:read", "users:write"]
    assert client.get("/api/v1/admin/jobs", headers=manager_headers).status_code == 403


def test_the_admin_role_always_keeps_roles_manage(client, app, people, api_auth):
    headers = api_auth.headers("admin@example.com")
    without = sorted(set(PERMISSIONS) - {"roles:manage"})
    response = client.patch("/api/v1/admin/roles/admin", json={"permissions": without}, headers=headers)
    assert response.status_code == 422
    assert [error["field"] for error in response.json["errors"]] == ["permissions"]
    assert client.get("/api/v1/admin/roles/admin", headers=headers).json["permissions"] == sorted(PERMISSIONS)
    assert client.get("/api/v1/admin/permissions", headers=headers).status_code == 200
    assert _audit(app, "role_updated") == []


@pytest.mark.parametrize("taken", ["roles:manage", "audit:read"])
def test_the_admin_role_loses_no_permission_through_the_api(client, app, people, taken, api_auth):
    headers = api_auth.headers("admin@example.com")
    without = sorted(set(PERMISSIONS) - {taken})
    response = client.patch("/api/v1/admin/roles/admin", json={"permissions": without}, headers=headers)
    assert response.status_code == 422 and "always keeps every permission" in response.json["detail"] + str(
        response.json["errors"]
    )
    assert client.get("/api/v1/admin/roles/admin", headers=headers).json["permissions"] == sorted(PERMISSIONS)
    assert _audit(app, "role_updated") == []
    # Its description is still the admins' to edit.
    described = client.patch("/api/v1/admin/roles/admin", json={"description": "Runs the site"}, headers=headers)
    assert described.status_code == 200 and described.json["permissions"] == sorted(PERMISSIONS)


def test_a_holder_of_only_roles_manage_cannot_disarm_the_admins(client, app, people, make_user, api_auth):
    """Finding 2 of issue 10: `PATCH /admin/roles/admin {"permissions": ["roles:manage"]}` by
    someone holding only roles:manage answered 200 and left every admin with nothing."""
    _create_role(app, people["admin"].id, "gatekeeper", ["roles:manage"])
    _create_role(app, people["admin"].id, "reader", ["users:read"])
    make_user(email="gate@example.com", roles=("gatekeeper",))
    gate = api_auth.headers("gate@example.com")
    admin = api_auth.headers("admin@example.com")

    for path, body in (
        ("/api/v1/admin/roles/admin", {"permissions": ["roles:manage"]}),
        ("/api/v1/admin/roles/admin", {"description": "Nothing"}),
        ("/api/v1/admin/roles/manager", {"permissions": []}),
        ("/api/v1/admin/roles/reader", {"permissions": ["roles:manage"]}),
    ):
        response = client.patch(path, json=body, headers=gate)
        assert response.status_code == 403, (path, response.json)
        assert response.mimetype == "application/problem+json"
        assert "holds permissions you do not have" in response.json["detail"]
    deleted = client.delete("/api/v1/admin/roles/reader", headers=gate)
    assert deleted.status_code == 403 and deleted.mimetype == "application/problem+json"

    roles = {item["name"]: item for item in client.get("/api/v1/admin/roles", headers=admin).json["items"]}
    assert roles["admin"]["permissions"] == sorted(PERMISSIONS)
    assert roles["admin"]["description"] == "Everything"
    assert roles["manager"]["permissions"] == ["jobs:read", "uploads:read_any", "users:read", "users:write"]
    assert roles["reader"]["permissions"] == ["users:read"]
    assert client.get("/api/v1/admin/jobs", headers=admin).status_code == 200  # the admins keep everything
    assert _audit(app, "role_updated") == [] and _audit(app, "role_deleted") == []

    # Roles within their own permissions stay theirs to manage.
    widened = client.patch("/api/v1/admin/roles/viewer", json={"permissions": ["roles:manage"]}, headers=gate)
    assert widened.status_code == 200 and widened.json["permissions"] == ["roles:manage"]
    assert client.patch("/api/v1/admin/roles/viewer", json={"permissions": []}, headers=gate).status_code == 200
    assert [entry["target"] for entry in _audit(app, "role_updated")] == ["role:viewer", "role:viewer"]


def test_roles_in_use_or_built_in_cannot_be_deleted(client, app, people, make_user, api_auth):
    _create_role(app, people["admin"].id, "editor", ["users:read"])
    _create_role(app, people["admin"].id, "spare", ["users:read"])
    make_user(email="editor@example.com", roles=("editor",))
    headers = api_auth.headers("admin@example.com")
    in_use = client.delete("/api/v1/admin/roles/editor", headers=headers)
    assert in_use.status_code == 409 and "held by 1 account" in in_use.json["detail"]
    assert client.delete("/api/v1/admin/roles/viewer", headers=headers).status_code == 409
    assert client.delete("/api/v1/admin/roles/spare", headers=headers).status_code == 204
    assert client.get("/api/v1/admin/roles/spare", headers=headers).status_code == 404
    assert client.delete("/api/v1/admin/roles/spare", headers=headers).status_code == 404
    names = [item["name"] for item in client.get("/api/v1/admin/roles", headers=headers).json["items"]]
    assert "editor" in names and "viewer" in names and "spare" not in names
    assert _audit(app, "role_deleted") == [
        {
            "actor": people["admin"].id,
            "target": "role:spare",
            "data": {"before": {"permissions": ["users:read"], "description": "The spare role"}},
        }
    ]


# Jobs -------------------------------------------------------------------------------------


def test_jobs_are_listed_newest_first_and_filtered(client, app, people, target, api_auth):
    now = utcnow()
    oldest = _make_job(app, JobStatus.succeeded, created_at=now - timedelta(minutes=3))
    failed = _make_job(app, JobStatus.failed, created_at=now - timedelta(minutes=2), user_id=target.id)
    upload = _make_job(
        app,
        JobStatus.queued,
        queue="uploads",
        task="tasks.uploads.process_upload",
        payload={"upload_id": "u-1"},
        args_summary={"upload_id": "u-1", "filename": "holiday.jpg"},
        created_at=now - timedelta(minutes=1),
    )
    headers = api_auth.headers("manager@example.com")
    listed = client.get("/api/v1/admin/jobs", headers=headers)
    assert listed.status_code == 200
    assert [job["id"] for job in listed.json["items"]] == [upload, failed, oldest]
    assert listed.json["meta"] == {"page": 1, "per_page": 25, "total": 3, "pages": 1}
    assert listed.headers["X-Total-Count"] == "3"

    def found(query: str) -> list[str]:
        response = client.get(f"/api/v1/admin/jobs?{query}", headers=headers)
        assert response.status_code == 200, response.json
        return [job["id"] for job in response.json["items"]]

    assert found("queue=uploads") == [upload]
    assert found("status=failed") == [failed]
    assert found(f"user_id={target.id}") == [failed]
    assert found("q=holiday") == [upload]
    assert found("q=target@example") == [failed]
    assert found(f"q={oldest[:8]}") == [oldest]
    assert found("queue=emails&status=succeeded") == [oldest]
    second = client.get("/api/v1/admin/jobs?per_page=2&page=2", headers=headers)
    assert [job["id"] for job in second.json["items"]] == [oldest]
    assert second.json["meta"]["pages"] == 2 and 'rel="prev"' in second.headers["Link"]
    item = listed.json["items"][1]
    assert item["status"] == "failed" and item["error"].startswith("SMTPRecipientsRefused")
    assert "payload" not in item and "traceback" not in item


@pytest.mark.parametrize("query", ["queue=nope", "status=stuck", "user_id=abc", "per_page=500", "page=0", "payload=x"])
def test_bad_job_filters_are_422(client, people, query, api_auth):
    response = client.get(f"/api/v1/admin/jobs?{query}", headers=api_auth.headers("admin@example.com"))
    assert response.status_code == 422 and response.mimetype == "application/problem+json"


def test_the_queue_overview_counts_jobs_per_status(client, app, people, api_auth):
    _make_job(app, JobStatus.failed)
    _make_job(app, JobStatus.failed)
    _make_job(app, JobStatus.queued)
    _make_job(app, JobStatus.succeeded, queue="reports", task="tasks.maintenance.report")
    response = client.get("/api/v1/admin/jobs/queues", headers=api_auth.headers("manager@example.com"))
    assert response.status_code == 200  # not taken for a job whose id is "queues"
    queues = {item["name"]: item for item in response.json["items"]}
    assert list(queues) == ["emails", "uploads", "sync", "reports"]
    emails = queues["emails"]
    assert emails["workers"] == 10 and emails["max_attempts"] == 4 and emails["total"] == 3
    assert emails["counts"] == {
        "queued": 1,
        "running": 0,
        "retrying": 0,
        "succeeded": 0,
        "failed": 2,
        "revoked": 0,
    }
    assert queues["reports"]["counts"]["succeeded"] == 1 and queues["uploads"]["total"] == 0


def test_job_detail_shows_the_diagnostics_but_never_the_payload(client, app, people, target, api_auth):
    job_id = _make_job(
        app,
        JobStatus.failed,
        payload={**EMAIL_PAYLOAD, "context": {"link": SECRET_LINK}},
        user_id=target.id,
        request_id="req-admin-api-1",
        progress=40,
        progress_message="Rendering",
    )
    response = client.get(f"/api/v1/admin/jobs/{job_id}", headers=api_auth.headers("manager@example.com"))
    assert response.status_code == 200
    job = response.json
    assert "payload" not in job and SECRET_LINK not in response.get_data(as_text=True)
    assert job["id"] == job_id and job["status"] == "failed" and job["task"] == "tasks.emails.send_email"
    assert job["error"] == "SMTPRecipientsRefused: x@example.com"
    assert job["traceback"].startswith("Traceback (most recent call last)")
    assert (job["attempts"], job["max_attempts"]) == (4, 4)
    assert (job["progress"], job["progress_message"]) == (40, "Rendering")
    assert job["user_id"] == target.id and job["request_id"] == "req-admin-api-1"
    assert job["args_summary"] == {"to": "x@example.com", "template": "test_message"}
    assert job["duration_ms"] == 12.5
    assert all(job[key] for key in ("created_at", "enqueued_at", "started_at", "finished_at"))
    assert client.get("/api/v1/admin/jobs/nope", headers=api_auth.headers("admin@example.com")).status_code == 404


def test_retrying_a_failed_job_queues_it_again_and_is_audited(client, app, people, api_auth):
    job_id = _make_job(app, JobStatus.failed)
    headers = api_auth.headers("admin@example.com")
    response = client.post(f"/api/v1/admin/jobs/{job_id}/retry", headers=headers)
    assert response.status_code == 200
    # Re-sent to huey after the commit; the test app runs jobs immediately, so it may be done already.
    assert response.json["status"] in ("queued", "succeeded")
    assert response.json["error"] is None and response.json["traceback"] is None
    stored = _stored_job(app, job_id)
    assert stored.status in (JobStatus.queued, JobStatus.succeeded) and stored.error is None
    assert _audit(app, "job_retried") == [
        {
            "actor": people["admin"].id,
            "target": f"job:{job_id}",
            "data": {"before": {"status": "failed"}, "after": {"status": "queued"}},
        }
    ]
    queued = _make_job(app, JobStatus.queued)
    assert client.post(f"/api/v1/admin/jobs/{queued}/retry", headers=headers).status_code == 409
    assert client.post("/api/v1/admin/jobs/nope/retry", headers=headers).status_code == 404


def test_a_retried_job_is_handed_to_huey_after_the_commit(client, app, people, monkeypatch, api_auth):
    sent: list[tuple[str, str, float | None]] = []
    monkeypatch.setattr(
        app.extensions[QUEUES_KEY], "dispatch", lambda job_id, task, delay: sent.append((job_id, task, delay))
    )
    job_id = _make_job(app, JobStatus.failed)
    response = client.post(f"/api/v1/admin/jobs/{job_id}/retry", headers=api_auth.headers("admin@example.com"))
    assert response.status_code == 200
    assert response.json["status"] == "queued" and response.json["attempts"] == 0
    assert sent == [(job_id, "tasks.emails.send_email", None)]


def test_revoking_a_queued_job_stops_it_and_is_audited(client, app, people, api_auth):
    job_id = _make_job(app, JobStatus.queued)
    headers = api_auth.headers("admin@example.com")
    response = client.post(f"/api/v1/admin/jobs/{job_id}/revoke", headers=headers)
    assert response.status_code == 200
    assert response.json["status"] == "revoked" and response.json["finished_at"] is not None
    assert _stored_job(app, job_id).status == JobStatus.revoked
    with app.app_context():  # a worker that still gets the message refuses to run it
        assert jobs_service.start_attempt(job_id, "worker-1") is None
    assert _audit(app, "job_revoked") == [
        {
            "actor": people["admin"].id,
            "target": f"job:{job_id}",
            "data": {"before": {"status": "queued"}, "after": {"status": "revoked"}},
        }
    ]
    assert client.post(f"/api/v1/admin/jobs/{job_id}/revoke", headers=headers).status_code == 409
    failed = _make_job(app, JobStatus.failed)
    assert client.post(f"/api/v1/admin/jobs/{failed}/revoke", headers=headers).status_code == 409


# OpenAPI ----------------------------------------------------------------------------------

DOCUMENTED = [
    ("/api/v1/admin/users/{user_id}/roles", "put", "roles:manage"),
    ("/api/v1/admin/users/{user_id}/disable", "post", "users:write"),
    ("/api/v1/admin/users/{user_id}/enable", "post", "users:write"),
    ("/api/v1/admin/users/{user_id}/sign-out", "post", "users:write"),
    ("/api/v1/admin/users/{user_id}/password-reset", "post", "users:write"),
    ("/api/v1/admin/permissions", "get", "roles:manage"),
    ("/api/v1/admin/roles", "get", "roles:manage"),
    ("/api/v1/admin/roles", "post", "roles:manage"),
    ("/api/v1/admin/roles/{name}", "get", "roles:manage"),
    ("/api/v1/admin/roles/{name}", "patch", "roles:manage"),
    ("/api/v1/admin/roles/{name}", "delete", "roles:manage"),
    ("/api/v1/admin/jobs", "get", "jobs:read"),
    ("/api/v1/admin/jobs/queues", "get", "jobs:read"),
    ("/api/v1/admin/jobs/{job_id}", "get", "jobs:read"),
    ("/api/v1/admin/jobs/{job_id}/retry", "post", "jobs:manage"),
    ("/api/v1/admin/jobs/{job_id}/revoke", "post", "jobs:manage"),
    # stats:read or audit:read, checked in the view (api_operation takes one permission)
    ("/api/v1/admin/stats", "get", None),
]


def test_the_openapi_document_lists_the_admin_operations_with_their_permissions(client):
    spec = client.get("/api/openapi.json").json
    documented = {
        (path, method, operation.get("x-required-permission"))
        for path, operations in spec["paths"].items()
        if path.startswith("/api/v1/admin/")
        for method, operation in operations.items()
    }
    assert documented == set(DOCUMENTED)
    for path, method, _permission in DOCUMENTED:
        operation = spec["paths"][path][method]
        assert operation["tags"] == ["admin"] and operation["security"] == [{"bearerAuth": []}]
        assert {"401", "403"} <= set(operation["responses"])
    assert set(spec["paths"]["/api/v1/admin/roles"]["post"]["responses"]) >= {"201", "422"}
    assert set(spec["paths"]["/api/v1/admin/roles/{name}"]["delete"]["responses"]) >= {"204", "409"}
    assert set(spec["paths"]["/api/v1/admin/jobs/{job_id}/retry"]["post"]["responses"]) >= {"200", "409"}
    job_filters = {p["name"] for p in spec["paths"]["/api/v1/admin/jobs"]["get"]["parameters"] if p["in"] == "query"}
    assert job_filters == {"queue", "status", "q", "user_id", "page", "per_page"}
    schemas = spec["components"]["schemas"]
    assert "payload" not in schemas["AdminJobDetailOut"]["properties"]
    assert {"traceback", "args_summary", "request_id", "duration_ms"} <= set(schemas["AdminJobDetailOut"]["properties"])
