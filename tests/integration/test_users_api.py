"""The users and roles API: filters, sorting, pagination without N+1, soft delete, and the
role × endpoint matrix."""

from __future__ import annotations

import pytest
from sqlalchemy import event

from app.extensions import db
from app.users.models import User
from tests.support import PASSWORD

# role × endpoint: expected status for each role
MATRIX = [
    # method, path, body, {role: status}
    ("GET", "/api/v1/users", None, {"admin": 200, "manager": 200, "user": 403, "viewer": 403}),
    ("GET", "/api/v1/users/{target}", None, {"admin": 200, "manager": 200, "user": 403, "viewer": 403}),
    (
        "PATCH",
        "/api/v1/users/{target}",
        {"display_name": "T"},
        {"admin": 200, "manager": 200, "user": 403, "viewer": 403},
    ),
    (
        "PATCH",
        "/api/v1/users/{target}",
        {"roles": ["viewer"]},
        {"admin": 200, "manager": 403, "user": 403, "viewer": 403},
    ),
    ("DELETE", "/api/v1/users/{target}", None, {"admin": 204, "manager": 403, "user": 403, "viewer": 403}),
    ("GET", "/api/v1/roles", None, {"admin": 200, "manager": 200, "user": 403, "viewer": 403}),
    ("GET", "/api/v1/me", None, {"admin": 200, "manager": 200, "user": 200, "viewer": 200}),
    ("PATCH", "/api/v1/me", {"display_name": "Me"}, {"admin": 200, "manager": 200, "user": 200, "viewer": 200}),
]


@pytest.mark.parametrize("role", ["admin", "manager", "user", "viewer", None])
@pytest.mark.parametrize(("method", "path", "body", "expected"), MATRIX)
def test_role_endpoint_matrix(client, people, target, role, method, path, body, expected, api_auth):
    headers = api_auth.headers(f"{role}@example.com") if role else {}
    response = client.open(path.format(target=target.id), method=method, json=body, headers=headers)
    assert response.status_code == (expected[role] if role else 401), response.get_data(as_text=True)
    if response.status_code >= 400:
        assert response.mimetype == "application/problem+json"


def test_list_filters_sorts_and_paginates(client, people, make_user, api_auth):
    make_user(email="zed@example.com", display_name="Zed", is_active_account=False)
    headers = api_auth.headers("admin@example.com")
    everyone = client.get("/api/v1/users?per_page=100", headers=headers).json
    assert everyone["meta"]["total"] == 5
    assert [u["email"] for u in everyone["items"]] == sorted(u["email"] for u in everyone["items"])
    by_role = client.get("/api/v1/users?role=manager", headers=headers).json["items"]
    assert [u["email"] for u in by_role] == ["manager@example.com"]
    disabled = client.get("/api/v1/users?status=disabled", headers=headers).json["items"]
    assert [(u["email"], u["status"]) for u in disabled] == [("zed@example.com", "disabled")]
    found = client.get("/api/v1/users?q=MANAG", headers=headers).json["items"]
    assert [u["email"] for u in found] == ["manager@example.com"]
    newest = client.get("/api/v1/users?sort=-created_at&per_page=1", headers=headers)
    assert newest.json["items"][0]["email"] == "zed@example.com" and 'rel="next"' in newest.headers["Link"]
    assert client.get("/api/v1/users?sort=password_hash", headers=headers).status_code == 422


def test_listing_runs_the_same_number_of_queries_whatever_the_page_size(client, people, make_user, app, api_auth):
    for n in range(25):
        make_user(email=f"bulk{n:02d}@example.com", roles=("user", "viewer"))
    headers = api_auth.headers("admin@example.com")
    client.get("/api/v1/users?per_page=1", headers=headers)  # the admin's permission set is cached now
    counts = {}
    with app.app_context():
        engine = db.engine
    for size in (2, 25):
        statements: list[int] = []

        def count(*_args, statements=statements, **_kwargs):
            statements.append(1)

        event.listen(engine, "before_cursor_execute", count)
        try:
            response = client.get(f"/api/v1/users?per_page={size}", headers=headers)
        finally:
            event.remove(engine, "before_cursor_execute", count)
        assert response.status_code == 200 and len(response.json["items"]) == size
        assert all(item["roles"] for item in response.json["items"])
        counts[size] = len(statements)
    assert counts[2] == counts[25], counts


def test_soft_delete_keeps_the_row_and_ends_access(client, people, target, app, api_auth):
    target_headers = api_auth.headers("target@example.com")
    admin_headers = api_auth.headers("admin@example.com")
    assert client.delete(f"/api/v1/users/{target.id}", headers=admin_headers).status_code == 204
    assert client.get("/api/v1/me", headers=target_headers).status_code == 401
    assert api_auth.request_tokens("target@example.com").status_code == 401
    deleted = client.get(f"/api/v1/users/{target.id}", headers=admin_headers).json
    assert deleted["status"] == "deleted"
    assert target.id not in [u["id"] for u in client.get("/api/v1/users", headers=admin_headers).json["items"]]
    with app.app_context():
        assert db.session.get(User, target.id).email == "target@example.com"


def test_disabling_a_user_kills_their_tokens_at_once(client, people, target, api_auth):
    target_headers = api_auth.headers("target@example.com")
    admin_headers = api_auth.headers("admin@example.com")
    response = client.patch(f"/api/v1/users/{target.id}", json={"is_active": False}, headers=admin_headers)
    assert response.status_code == 200 and response.json["status"] == "disabled"
    assert client.get("/api/v1/me", headers=target_headers).status_code == 401


def test_admins_cannot_lock_themselves_out(client, people, api_auth):
    headers = api_auth.headers("admin@example.com")
    admin_id = people["admin"].id
    assert client.delete(f"/api/v1/users/{admin_id}", headers=headers).status_code == 409
    assert client.patch(f"/api/v1/users/{admin_id}", json={"is_active": False}, headers=headers).status_code == 409
    assert client.patch(f"/api/v1/users/{admin_id}", json={"roles": ["user"]}, headers=headers).status_code == 409


def test_unknown_roles_and_fields_are_422(client, people, target, api_auth):
    headers = api_auth.headers("admin@example.com")
    assert client.patch(f"/api/v1/users/{target.id}", json={"roles": ["wizard"]}, headers=headers).status_code == 422
    assert client.patch(f"/api/v1/users/{target.id}", json={"password_hash": "x"}, headers=headers).status_code == 422


def test_unknown_users_are_404(client, people, api_auth):
    headers = api_auth.headers("admin@example.com")
    assert client.get("/api/v1/users/99999", headers=headers).status_code == 404


def test_roles_are_listed_with_their_permissions(client, people, api_auth):
    items = client.get("/api/v1/roles", headers=api_auth.headers("manager@example.com")).json["items"]
    roles = {item["name"]: item["permissions"] for item in items}
    assert set(roles) == {"admin", "manager", "user", "viewer"}
    assert "users:delete" in roles["admin"] and roles["user"] == []


def test_patch_me_changes_the_name_and_asks_to_confirm_a_new_email(make_app, smtp, people, api_auth):
    client = make_app(smtp_url=smtp.url).test_client()
    headers = api_auth(client).headers("user@example.com")
    response = client.patch(
        "/api/v1/me",
        json={"display_name": "Renamed", "email": "elsewhere@example.com", "current_password": PASSWORD},
        headers=headers,
    )
    assert response.status_code == 200
    assert response.json["display_name"] == "Renamed" and response.json["email"] == "user@example.com"
    # a link to the new address, a notice (with an undo link) to the old one
    assert sorted(d.recipients[0] for d in smtp.deliveries) == ["elsewhere@example.com", "user@example.com"]


def test_a_refused_patch_changes_nothing(client, people, target, app, api_auth):
    headers = api_auth.headers("manager@example.com")  # users:write but not roles:manage
    response = client.patch(
        f"/api/v1/users/{target.id}", json={"is_active": False, "roles": ["admin"]}, headers=headers
    )
    assert response.status_code == 403
    with app.app_context():
        stored = db.session.get(User, target.id)
        assert stored.is_active_account is True and stored.role_names == ["user"]


def test_nobody_manages_an_account_with_more_permissions_than_their_own(client, people, api_auth):
    headers = api_auth.headers("manager@example.com")
    admin_id = people["admin"].id
    assert client.patch(f"/api/v1/users/{admin_id}", json={"is_active": False}, headers=headers).status_code == 403
    assert client.patch(f"/api/v1/users/{admin_id}", json={"display_name": "x"}, headers=headers).status_code == 403
