"""Roles, permissions and the one guard shared by browser and API routes."""

from __future__ import annotations

import pytest
from flask import Blueprint

from app.api.openapi import api_operation
from app.auth.guards import permission_required
from app.extensions import db
from app.rbac.catalog import PERMISSIONS, ROLES
from app.rbac.models import Permission, Role
from app.rbac.service import permissions_of, sync_roles


def test_sync_is_idempotent_and_matches_the_catalog(app):
    with app.app_context():
        sync_roles()
        sync_roles()
        assert db.session.scalar(db.select(db.func.count()).select_from(Permission)) == len(PERMISSIONS)
        roles = {role.name: {p.name for p in role.permissions} for role in db.session.scalars(db.select(Role))}
    assert roles == {name: set(granted) for name, (_, granted) in ROLES.items()}
    assert roles["admin"] == set(PERMISSIONS)
    assert roles["manager"] == {"users:read", "users:write", "uploads:read_any", "jobs:read"}


def test_roles_sync_command(app):
    result = app.test_cli_runner().invoke(args=["roles", "sync"])
    assert result.exit_code == 0 and "in sync" in result.output


@pytest.fixture()
def guarded_app(make_app):
    app = make_app()
    pages = Blueprint("guarded_pages", __name__)

    @pages.get("/_users")
    @permission_required("users:read")
    def users_page():
        return "user list"

    api = Blueprint("guarded_api", __name__, url_prefix="/api/test")

    @api_operation(
        api, "/users/<int:user_id>", method="DELETE", summary="Delete", permission="users:delete", status=204
    )
    def delete_user(user_id: int):
        from flask import Response

        return Response(status=204)

    app.register_blueprint(pages)
    app.register_blueprint(api)
    return app


@pytest.mark.parametrize(
    ("role", "page_status", "api_status"),
    [
        ("admin", 200, 204),
        ("manager", 200, 403),
        ("user", 403, 403),
        ("viewer", 403, 403),
    ],
)
def test_each_role_against_guarded_browser_and_api_routes(
    guarded_app, make_user, role, page_status, api_status, api_auth, auth
):
    make_user(email=f"{role}@example.com", roles=(role,))
    browser = guarded_app.test_client()
    auth(browser).login(f"{role}@example.com")
    assert browser.get("/_users").status_code == page_status
    api = guarded_app.test_client()
    response = api.delete("/api/test/users/1", headers=api_auth(api).headers(f"{role}@example.com"))
    assert response.status_code == api_status
    if api_status == 403:
        assert response.mimetype == "application/problem+json" and "users:delete" in response.json["detail"]


def test_nobody_signed_in_gets_a_redirect_in_the_browser_and_401_on_the_api(guarded_app):
    client = guarded_app.test_client()
    page = client.get("/_users")
    assert page.status_code == 302 and page.headers["Location"].startswith("/auth/login?next=/_users")
    api = client.delete("/api/test/users/1")
    assert api.status_code == 401 and api.headers["WWW-Authenticate"] == "Bearer"


def test_auth_is_checked_before_input_validation(guarded_app):
    assert guarded_app.test_client().delete("/api/test/users/not-a-number").status_code == 404
    assert guarded_app.test_client().delete("/api/test/users/5").status_code == 401


def test_a_role_change_takes_effect_on_the_next_request(guarded_app, make_user, app, api_auth):
    from app.users.models import User
    from app.users.service import grant_role

    user = make_user(email="promote@example.com", roles=("user",))
    client = guarded_app.test_client()
    headers = api_auth(client).headers("promote@example.com")
    assert client.delete("/api/test/users/1", headers=headers).status_code == 403
    with app.app_context():
        grant_role(db.session.get(User, user.id), "admin")
        db.session.commit()
        assert "users:delete" in permissions_of(user.id)
    assert client.delete("/api/test/users/1", headers=headers).status_code == 204


def test_guarded_operations_document_their_permission(guarded_app):
    operation = guarded_app.test_client().get("/api/openapi.json").json["paths"]["/api/test/users/{user_id}"]["delete"]
    assert operation["security"] == [{"bearerAuth": []}]
    assert operation["x-required-permission"] == "users:delete"
    assert {"401", "403"} <= set(operation["responses"])


def test_cli_set_password_enforces_the_policy_and_revokes_sessions(app, make_user):
    user = make_user(email="cli@example.com")
    runner = app.test_cli_runner()
    weak = runner.invoke(args=["users", "set-password", "cli@example.com"], input="password123\npassword123\n")
    assert weak.exit_code != 0 and "at least 12" in weak.output
    ok = runner.invoke(
        args=["users", "set-password", "cli@example.com"], input="a brand new passphrase\na brand new passphrase\n"
    )
    assert ok.exit_code == 0, ok.output
    from app.users.models import User
    from app.users.passwords import verify_password

    with app.app_context():
        stored = db.session.get(User, user.id)
        assert verify_password(stored.password_hash, "a brand new passphrase")
        assert stored.session_epoch == user.session_epoch + 1


def test_cli_create_admin(app):
    result = app.test_cli_runner().invoke(
        args=["users", "create-admin", "root@example.com"], input="an admin passphrase\nan admin passphrase\n"
    )
    assert result.exit_code == 0, result.output
    with app.app_context():
        from app.users.repository import UserRepository

        admin = UserRepository().find_by_email("root@example.com")
        assert admin.role_names == ["admin"]


def test_ownership_helper_allows_owners_and_permission_holders_and_hides_the_rest(make_app, make_user, api_auth):
    from app.auth.guards import ensure_owner_or

    app = make_app()

    @app.get("/api/test/things/<int:owner_id>")
    def thing(owner_id: int):
        ensure_owner_or("uploads:read_any", owner_id)
        return {"ok": True}

    owner = make_user(email="owner@example.com", roles=("user",))
    make_user(email="other@example.com", roles=("user",))
    make_user(email="boss@example.com", roles=("manager",))
    client = app.test_client()
    bearer = api_auth(client).headers
    assert client.get(f"/api/test/things/{owner.id}", headers=bearer("owner@example.com")).status_code == 200
    assert client.get(f"/api/test/things/{owner.id}", headers=bearer("other@example.com")).status_code == 404
    assert client.get(f"/api/test/things/{owner.id}", headers=bearer("boss@example.com")).status_code == 200
    assert client.get(f"/api/test/things/{owner.id}").status_code == 401


def test_browser_helpers_redirect_anonymous_visitors_instead_of_failing(make_app):
    from app.auth.guards import require_actor

    app = make_app()

    @app.get("/_mine")
    def mine():
        require_actor()
        return "mine"

    response = app.test_client().get("/_mine")
    assert response.status_code == 302 and response.headers["Location"].startswith("/auth/login?next=/_mine")
