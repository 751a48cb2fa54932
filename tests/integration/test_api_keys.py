"""Personal API keys (issue 16): created once and shown once (API and /account/security), stored
as a hash only, accepted wherever an access token is, limited per endpoint by their scopes ∩
the owner's current permissions (and `self:read`/`self:write` for the owner's own data),
stopped at once by revocation, expiry or a disabled owner, refused where keys may not go,
rate-limited per key, never logged, and seen and revoked by administrators."""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import event, select

from app.apikeys import service
from app.apikeys.models import ApiKey
from app.audit.models import AuditEvent
from app.auth.guards import permission_required, require_actor
from app.core.database import utcnow
from app.core.unit_of_work import unit_of_work
from app.extensions import db
from app.rbac.service import role_named
from app.users.models import User
from tests.support import bearer, csrf_token

BASE = "/api/v1/api-keys"
KEY_SHAPE = re.compile(r"^hth_[a-z0-9]{10}_[A-Za-z0-9_-]{43}$")


def make_key(app: Flask, user: Any, scopes: tuple[str, ...], days: int = 90, name: str = "script") -> str:
    """A key for `user` made by the service (the API's own path is tested separately)."""
    with app.test_request_context():
        _row, key = service.create(db.session.get(User, user.id), name, list(scopes), days)
        return key


def key_row(app: Flask, key: str) -> ApiKey:
    prefix = key.split("_")[1]
    with app.app_context():
        row = db.session.scalars(select(ApiKey).where(ApiKey.prefix == prefix)).one()
        db.session.expunge(row)
        return row


def change(app: Flask, model: type, row_id: int, **values: Any) -> None:
    with app.app_context(), unit_of_work():
        row = db.session.get(model, row_id)
        for name, value in values.items():
            setattr(row, name, value)


def set_roles(app: Flask, user: Any, *names: str) -> None:
    with app.app_context(), unit_of_work():
        db.session.get(User, user.id).roles = [role_named(name) for name in names]


# Creating, listing, revoking through the API ----------------------------------------------


def test_creating_a_key_shows_it_once_and_stores_only_its_hash(app, client, api_auth, people):
    headers = api_auth.headers(people["manager"])
    response = client.post(
        BASE, json={"name": "Backup", "scopes": ["users:read", "self:read"], "expires_in_days": 30}, headers=headers
    )
    assert response.status_code == 201, response.json
    body = response.json
    key = body["key"]
    assert KEY_SHAPE.match(key)
    assert body["prefix"] == key.split("_")[1] and body["scopes"] == ["self:read", "users:read"]
    assert body["last_used_at"] is None
    # Never again: the list has no key, and no column of the row holds it or its secret part.
    listed = client.get(BASE, headers=headers).json["items"]
    assert [item["id"] for item in listed] == [body["id"]] and "key" not in listed[0]
    row = key_row(app, key)
    assert row.secret_hash == hashlib.sha256(key.encode()).hexdigest()
    secret = key.split("_", 2)[2]
    stored = " ".join(str(getattr(row, column.key)) for column in ApiKey.__table__.columns)
    assert key not in stored and secret not in stored
    assert (row.expires_at - row.created_at) == timedelta(days=30)
    with app.app_context():
        created = db.session.scalars(select(AuditEvent).where(AuditEvent.event == "api_key_created")).one()
        assert created.actor_user_id == people["manager"].id and key not in str(created.data)


def test_expiry_defaults_to_90_days_and_is_capped_by_the_setting(app, client, api_auth, people):
    headers = api_auth.headers(people["user"])
    response = client.post(BASE, json={"name": "Default", "scopes": ["self:read"]}, headers=headers)
    row = key_row(app, response.json["key"])
    assert row.expires_at - row.created_at == timedelta(days=90)
    too_long = client.post(
        BASE, json={"name": "Long", "scopes": ["self:read"], "expires_in_days": 366}, headers=headers
    )
    assert too_long.status_code == 422
    assert too_long.json["errors"][0]["field"] == "expires_in_days"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "x", "scopes": ["users:read"]}, "scopes"),  # a plain user does not hold it
        ({"name": "x", "scopes": ["nonsense"]}, "scopes"),
        ({"name": "x", "scopes": []}, "scopes"),
        ({"name": "   ", "scopes": ["self:read"]}, "name"),
        ({"name": "x", "scopes": ["self:read"], "expires_in_days": 0}, "expires_in_days"),
        ({"name": "x", "scopes": ["self:read"], "extra": 1}, "extra"),
    ],
)
def test_a_key_gets_only_scopes_its_creator_holds(app, client, api_auth, people, body, field):
    response = client.post(BASE, json=body, headers=api_auth.headers(people["user"]))
    assert response.status_code == 422, response.json
    assert response.json["errors"][0]["field"] == field
    with app.app_context():
        assert db.session.scalar(select(ApiKey.id)) is None


def test_an_account_holds_at_most_max_api_keys_live_keys(app, client, api_auth, auth, people):
    user = people["user"]
    keys = [make_key(app, user, ("self:read",), name=f"k{index}") for index in range(service.MAX_API_KEYS - 1)]
    # Revoked and expired keys do not count.
    change(app, ApiKey, key_row(app, keys[0]).id, revoked_at=utcnow())
    change(app, ApiKey, key_row(app, keys[1]).id, expires_at=utcnow() - timedelta(seconds=1))
    keys += [make_key(app, user, ("self:read",), name=f"k{index}") for index in range(2)]
    headers = api_auth.headers(user)
    body = {"name": "One more", "scopes": ["self:read"]}
    assert client.post(BASE, json=body, headers=headers).status_code == 201
    refused = client.post(BASE, json=body, headers=headers)
    assert refused.status_code == 422 and refused.content_type == "application/problem+json"
    assert str(service.MAX_API_KEYS) in refused.json["detail"]
    with app.app_context():
        assert len(service.list_for(user.id)) == service.MAX_API_KEYS
    # The browser form says so too, keeping what was typed.
    auth.login(user)
    page = client.post(
        "/account/security/api-keys",
        data={
            "csrf_token": csrf_token(client, "/account/security"),
            "name": "Too many",
            "scopes": ["self:read"],
            "expires_in_days": "7",
        },
    )
    text = page.get_data(as_text=True)
    assert page.status_code == 422 and 'role="alert"' in text and 'value="Too many"' in text
    assert f"at most {service.MAX_API_KEYS} API keys" in text
    # Revoking one makes room again.
    change(app, ApiKey, key_row(app, keys[2]).id, revoked_at=utcnow())
    assert client.post(BASE, json=body, headers=headers).status_code == 201
    with app.app_context():
        assert len(service.list_for(user.id)) == service.MAX_API_KEYS


def test_revoking_a_key_stops_it_at_once_on_every_instance(app, make_app, client, api_auth, people):
    owner = people["user"]
    key = make_key(app, owner, ("self:read",))
    other_instance = make_app().test_client()
    assert other_instance.get("/api/v1/me", headers=bearer(key)).status_code == 200
    assert client.get("/api/v1/me", headers=bearer(key)).status_code == 200
    headers = api_auth.headers(owner)
    assert client.delete(f"{BASE}/{key_row(app, key).id}", headers=headers).status_code == 204
    for instance in (client, other_instance):
        refused = instance.get("/api/v1/me", headers=bearer(key))
        assert refused.status_code == 401 and refused.content_type == "application/problem+json"
    assert client.get(BASE, headers=headers).json["items"] == []
    # Gone is gone: a second revocation, or someone else's key, is a 404.
    assert client.delete(f"{BASE}/{key_row(app, key).id}", headers=headers).status_code == 404
    others = make_key(app, people["manager"], ("self:read",))
    assert client.delete(f"{BASE}/{key_row(app, others).id}", headers=headers).status_code == 404
    with app.app_context():
        revoked = db.session.scalars(select(AuditEvent).where(AuditEvent.event == "api_key_revoked")).one()
        assert revoked.actor_user_id == owner.id and revoked.data["by_admin"] is False


def test_keys_cannot_manage_keys_or_second_factors(app, client, people):
    key = make_key(app, people["admin"], ("self:read", "self:write", "users:read", "users:write"))
    own = key_row(app, key).id
    for method, path, body in (
        ("post", BASE, {"name": "child", "scopes": ["self:read"]}),
        ("get", BASE, None),
        ("delete", f"{BASE}/{own}", None),
        ("post", "/api/v1/me/totp", None),
    ):
        response = getattr(client, method)(path, json=body, headers=bearer(key))
        assert response.status_code == 403, (path, response.status_code)
        assert response.json["type"].endswith("/api-key-not-allowed"), path
    with app.app_context():
        assert db.session.scalar(select(ApiKey.revoked_at).where(ApiKey.id == own)) is None


# Scopes ------------------------------------------------------------------------------------


def test_scopes_are_enforced_per_endpoint(app, client, people, target):
    key = make_key(app, people["manager"], ("users:read",))
    assert client.get("/api/v1/users", headers=bearer(key)).status_code == 200
    assert client.get(f"/api/v1/users/{target.id}", headers=bearer(key)).status_code == 200
    # The owner may edit users; the key may not.
    write = client.patch(f"/api/v1/users/{target.id}", json={"display_name": "X"}, headers=bearer(key))
    assert write.status_code == 403
    assert write.json["type"].endswith("/insufficient-scope") and write.json["scope"] == "users:write"
    # No own-data scope: not even the owner's own profile.
    me = client.get("/api/v1/me", headers=bearer(key))
    assert me.status_code == 403 and me.json["scope"] == "self:read"


def test_own_data_scopes_read_and_write(app, client, people):
    reader = make_key(app, people["user"], ("self:read",))
    writer = make_key(app, people["user"], ("self:write",))
    assert client.get("/api/v1/me", headers=bearer(reader)).json["email"] == people["user"].email
    refused = client.patch("/api/v1/me", json={"display_name": "Script"}, headers=bearer(reader))
    assert refused.status_code == 403 and refused.json["scope"] == "self:write"
    assert client.get("/api/v1/notifications", headers=bearer(reader)).status_code == 200
    changed = client.patch("/api/v1/me", json={"display_name": "Script"}, headers=bearer(writer))
    assert changed.status_code == 200 and changed.json["display_name"] == "Script"
    assert client.get("/api/v1/me", headers=bearer(writer)).status_code == 200  # write includes read


def test_a_key_sees_only_its_effective_permissions(app, client, people):
    key = make_key(app, people["admin"], ("self:read", "users:read"))
    assert sorted(client.get("/api/v1/me", headers=bearer(key)).json["permissions"]) == ["users:read"]


def test_checks_inside_a_guarded_view_add_nothing_for_a_key(make_app, people):
    probe_app = make_app()

    @probe_app.get("/api/v1/_probe")
    @permission_required("users:read")
    def probe() -> dict[str, int]:
        return {"id": require_actor().id}

    key = make_key(probe_app, people["manager"], ("users:read",))
    response = probe_app.test_client().get("/api/v1/_probe", headers=bearer(key))
    assert response.status_code == 200 and response.json == {"id": people["manager"].id}


def test_a_demoted_owners_keys_shrink_with_them(app, client, people, target):
    manager = people["manager"]
    key = make_key(app, manager, ("users:read", "self:read"))
    assert client.get("/api/v1/users", headers=bearer(key)).status_code == 200
    set_roles(app, manager, "user")
    refused = client.get("/api/v1/users", headers=bearer(key))
    assert refused.status_code == 403 and refused.json["scope"] == "users:read"
    assert client.get("/api/v1/me", headers=bearer(key)).status_code == 200
    set_roles(app, manager, "manager")  # the scope comes back with the role
    assert client.get("/api/v1/users", headers=bearer(key)).status_code == 200


def test_a_disabled_or_deleted_owners_keys_stop(app, client, people):
    user = people["user"]
    key = make_key(app, user, ("self:read",))
    assert client.get("/api/v1/me", headers=bearer(key)).status_code == 200
    change(app, User, user.id, is_active_account=False)
    assert client.get("/api/v1/me", headers=bearer(key)).status_code == 401
    change(app, User, user.id, is_active_account=True)
    assert client.get("/api/v1/me", headers=bearer(key)).status_code == 200
    change(app, User, user.id, deleted_at=utcnow())
    assert client.get("/api/v1/me", headers=bearer(key)).status_code == 401


def test_an_expired_key_is_refused(app, client, people):
    key = make_key(app, people["user"], ("self:read",))
    assert client.get("/api/v1/me", headers=bearer(key)).status_code == 200
    change(app, ApiKey, key_row(app, key).id, expires_at=utcnow() - timedelta(seconds=1))
    response = client.get("/api/v1/me", headers=bearer(key))
    assert response.status_code == 401 and response.json["type"].endswith("/unauthorized")
    with app.app_context():
        assert service.list_for(people["user"].id) == []


def test_a_key_never_counts_as_a_fresh_sign_in(app, client, people):
    """Step-up actions need a person: a key gets 403 api-key-not-allowed, not a re-auth prompt."""
    key = make_key(app, people["admin"], ("self:read", "self:write", *sorted(service.PERMISSIONS)))
    response = client.post(BASE, json={"name": "x", "scopes": ["self:read"]}, headers=bearer(key))
    assert response.json["type"].endswith("/api-key-not-allowed")


# Malformed and wrong keys --------------------------------------------------------------------


@pytest.mark.parametrize(
    "token",
    [
        "hth_",
        "hth_abc",
        "hth_abcdefghij",
        "hth_abcdefghij_",
        "hth_ABCDEFGHIJ_" + "a" * 43,
        "hth_abc_" + "a" * 43,
        "hth_abcdefghij_" + "a" * 42,
        "hth_abcdefghij_" + "a" * 4000,
        "hth_abcdefghij_" + "ä" * 43,
        "hth_abcdefghij_" + "a" * 40 + "%2F=",
        "hth__" + "a" * 43,
        "hth_abcdefghij_" + "a" * 43,  # well-formed, unknown
    ],
)
def test_malformed_or_unknown_keys_get_a_401_problem(app, client, people, token):
    response = client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401, response.status_code
    assert response.content_type == "application/problem+json"


def test_a_wrong_secret_for_a_real_prefix_is_refused(app, client, people):
    key = make_key(app, people["user"], ("self:read",))
    wrong = key[:-1] + ("A" if key[-1] != "A" else "B")
    assert client.get("/api/v1/me", headers=bearer(wrong)).status_code == 401
    assert client.get("/api/v1/me", headers={"Authorization": f"bearer {key}"}).status_code == 200


# Rate limits, last use, cost ---------------------------------------------------------------------


def test_each_key_has_its_own_rate_limit(make_app, people):
    limited = make_app(api_key_rate_limit="3 per minute", rate_limit_default="5 per minute")
    first = make_key(limited, people["user"], ("self:read",))
    second = make_key(limited, people["user"], ("self:read",))
    client = limited.test_client()
    for _ in range(3):
        assert client.get("/api/v1/me", headers=bearer(first)).status_code == 200
    refused = client.get("/api/v1/me", headers=bearer(first))
    assert refused.status_code == 429 and "Retry-After" in refused.headers
    assert refused.content_type == "application/problem+json"
    # Another key from the same address has its own budget; so has the address itself.
    for _ in range(3):
        assert client.get("/api/v1/me", headers=bearer(second)).status_code == 200
    assert client.get("/api/v1/status").status_code == 200


def test_only_the_key_itself_spends_its_budget(make_app, people):
    """A key's prefix is no secret (lists, the admin page, the audit trail): made-up keys with
    a real key's prefix, from any number of addresses, must not use up the real key's budget."""
    limited = make_app(api_key_rate_limit="3 per minute", rate_limit_default="5 per minute")
    key = make_key(limited, people["user"], ("self:read",))
    prefix = key.split("_")[1]
    client = limited.test_client()
    for number in range(1, 4):
        address = f"203.0.113.{number}"
        for index in range(6):  # the same junk, then new junk: past both budgets
            junk = f"hth_{prefix}_" + (str(number) * 43 if index < 3 else f"{number}{index:042d}")
            refused = client.get("/api/v1/me", headers=bearer(junk), environ_base={"REMOTE_ADDR": address})
            assert refused.status_code in (401, 429), refused.status_code
        assert client.get("/api/v1/status", environ_base={"REMOTE_ADDR": address}).status_code == 429
    victim = {"REMOTE_ADDR": "198.51.100.9"}
    for _ in range(3):
        assert client.get("/api/v1/me", headers=bearer(key), environ_base=victim).status_code == 200
    # Its own over-use is still refused, however the header is spelled.
    refused = client.get("/api/v1/me", headers={"Authorization": f"bearer {key}"}, environ_base=victim)
    assert refused.status_code == 429 and "Retry-After" in refused.headers


def test_made_up_keys_spend_the_clients_own_budget(make_app, people):
    limited = make_app(rate_limit_default="4 per minute")
    client = limited.test_client()
    for index in range(4):
        made_up = f"hth_{index:010d}_" + "a" * 43
        assert client.get("/api/v1/me", headers=bearer(made_up)).status_code == 401
    assert client.get("/api/v1/status").status_code == 429


def test_last_use_is_recorded_at_most_once_a_minute(app, client, people):
    key = make_key(app, people["user"], ("self:read",))
    client.get("/api/v1/me", headers=bearer(key), environ_base={"REMOTE_ADDR": "203.0.113.7"})
    first = key_row(app, key)
    assert first.last_used_ip == "203.0.113.7" and first.last_used_at is not None
    client.get("/api/v1/me", headers=bearer(key), environ_base={"REMOTE_ADDR": "203.0.113.8"})
    assert key_row(app, key).last_used_ip == "203.0.113.7"  # within the minute: not rewritten
    change(app, ApiKey, first.id, last_used_at=utcnow() - timedelta(minutes=2))
    client.get("/api/v1/me", headers=bearer(key), environ_base={"REMOTE_ADDR": "203.0.113.8"})
    assert key_row(app, key).last_used_ip == "203.0.113.8"


def test_a_key_request_reads_its_key_in_one_query(app, client, people):
    key = make_key(app, people["manager"], ("users:read",))
    assert client.get("/api/v1/users", headers=bearer(key)).status_code == 200  # warms the caches
    with app.app_context():
        engine = db.engine
    statements: list[str] = []

    def count(conn, cursor, statement, *args):
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        assert client.get("/api/v1/users", headers=bearer(key)).status_code == 200
    finally:
        event.remove(engine, "before_cursor_execute", count)
    touching_keys = [s for s in statements if "api_keys" in s]
    assert len(touching_keys) == 1 and touching_keys[0].lstrip().upper().startswith("SELECT")


# Logs ---------------------------------------------------------------------------------------------


def test_keys_never_reach_the_logs(app, client, api_auth, people, captured_logs):
    headers = api_auth.headers(people["manager"])
    key = client.post(BASE, json={"name": "Logged?", "scopes": ["self:read"]}, headers=headers).json["key"]
    assert client.get("/api/v1/me", headers=bearer(key)).status_code == 200
    assert client.get("/api/v1/me", headers=bearer(key[:-2] + "zz")).status_code == 401
    assert client.get("/api/v1/nowhere", headers=bearer(key)).status_code == 404
    assert client.delete(f"{BASE}/{key_row(app, key).id}", headers=headers).status_code == 204
    assert client.get("/api/v1/me", headers=bearer(key)).status_code == 401
    text = captured_logs.buffer.getvalue().decode()
    assert captured_logs.events("request") and captured_logs.events("audit")
    secret = key.split("_", 2)[2]
    assert secret not in text and secret[:-2] not in text


# OpenAPI -------------------------------------------------------------------------------------------


def test_the_api_document_describes_keys_and_their_scopes(client):
    spec = client.get("/api/openapi.json").json
    create = spec["paths"]["/api/v1/api-keys"]["post"]
    assert create["tags"] == ["api-keys"] and create["x-api-key-scope"] is None
    assert {"201", "401", "403", "422"} <= set(create["responses"])
    assert spec["paths"]["/api/v1/api-keys/{key_id}"]["delete"]["x-api-key-scope"] is None
    assert spec["paths"]["/api/v1/users"]["get"]["x-api-key-scope"] == "users:read"
    assert spec["paths"]["/api/v1/me"]["get"]["x-api-key-scope"] == "self:read"
    assert spec["paths"]["/api/v1/me"]["patch"]["x-api-key-scope"] == "self:write"
    assert "hth_" in spec["components"]["securitySchemes"]["bearerAuth"]["description"]
    created = spec["components"]["schemas"]["ApiKeyCreatedOut"]["properties"]
    assert "key" in created and "key" not in spec["components"]["schemas"]["ApiKeyOut"]["properties"]


# Browser: /account/security and /admin/users/<id> ------------------------------------------------


def test_browser_create_shows_the_key_once_then_revoke(app, client, auth, people):
    user = people["manager"]
    auth.login(user)
    page = client.get("/account/security").get_data(as_text=True)
    assert 'name="scopes" value="users:read"' in page and 'value="users:write"' in page
    assert 'value="roles:manage"' not in page  # not held: not offered
    response = client.post(
        "/account/security/api-keys",
        data={
            "csrf_token": csrf_token(client, "/account/security"),
            "name": "Nightly sync",
            "scopes": ["self:read", "users:read"],
            "expires_in_days": "7",
        },
    )
    assert response.status_code == 302 and "/account/security" in response.headers["Location"]
    with client.session_transaction() as cookie_session:  # the key waits there encrypted, not readable
        assert "hth_" not in str(dict(cookie_session))
    shown = client.get("/account/security").get_data(as_text=True)
    key = re.search(r'value="(hth_[^"]+)"', shown).group(1)
    assert KEY_SHAPE.match(key) and "Nightly sync" in shown
    again = client.get("/account/security").get_data(as_text=True)
    assert key not in again and f"hth_{key.split('_')[1]}_" in again  # the prefix stays listed
    assert client.get("/api/v1/users", headers=bearer(key)).status_code == 200
    row = key_row(app, key)
    assert row.expires_at - row.created_at == timedelta(days=7)
    revoked = client.post(
        f"/account/security/api-keys/{row.id}/revoke", data={"csrf_token": csrf_token(client, "/account/security")}
    )
    assert revoked.status_code == 302
    assert client.get("/api/v1/users", headers=bearer(key)).status_code == 401


def test_browser_create_refuses_a_scope_not_held(app, client, auth, people):
    auth.login(people["user"])
    response = client.post(
        "/account/security/api-keys",
        data={
            "csrf_token": csrf_token(client, "/account/security"),
            "name": "Sneaky",
            "scopes": ["users:delete", "self:read"],
            "expires_in_days": "7",
        },
    )
    # The page again, as typed (nothing lost), with the reason.
    page = response.get_data(as_text=True)
    assert response.status_code == 422 and "users:delete" in page and 'role="alert"' in page
    assert 'value="Sneaky"' in page and 'value="7"' in page
    assert 'name="scopes" value="self:read" checked' in page
    with app.app_context():
        assert db.session.scalar(select(ApiKey.id)) is None


def test_admins_see_and_revoke_a_users_keys(app, client, auth, people):
    user = people["user"]
    key = make_key(app, user, ("self:read",), name="Laptop script")
    row = key_row(app, key)
    client.get("/api/v1/me", headers=bearer(key), environ_base={"REMOTE_ADDR": "198.51.100.4"})
    auth.login(people["admin"])
    page = client.get(f"/admin/users/{user.id}").get_data(as_text=True)
    assert "Laptop script" in page and f"hth_{row.prefix}_" in page and "198.51.100.4" in page
    assert key not in page
    path = f"/admin/users/{user.id}/api-keys/{row.id}/revoke"
    token = csrf_token(client, f"/admin/users/{user.id}")
    asked = client.post(path, data={"csrf_token": token})
    assert asked.status_code == 200 and client.get("/api/v1/me", headers=bearer(key)).status_code == 200
    assert client.post(path, data={"csrf_token": token, "confirmed": "yes"}).status_code == 302
    assert client.get("/api/v1/me", headers=bearer(key)).status_code == 401
    with app.app_context():
        revoked = db.session.scalars(select(AuditEvent).where(AuditEvent.event == "api_key_revoked")).one()
        assert revoked.actor_user_id == people["admin"].id and revoked.subject_user_id == user.id
        assert revoked.data["by_admin"] is True


def test_revoking_someones_keys_needs_users_write(app, client, auth, people):
    key = make_key(app, people["user"], ("self:read",))
    row = key_row(app, key)
    auth.login(people["viewer"])
    response = client.post(
        f"/admin/users/{people['user'].id}/api-keys/{row.id}/revoke",
        data={"csrf_token": csrf_token(client, "/account/"), "confirmed": "yes"},
    )
    assert response.status_code == 403
    assert client.get("/api/v1/me", headers=bearer(key)).status_code == 200


def test_a_key_asks_for_exports_within_its_scopes_not_its_owner_s_role(app, client, people):
    # The admin may export the user list; a key of theirs with only own-data scopes may not.
    narrow = make_key(app, people["admin"], ("self:read", "self:write"))
    refused = client.post("/api/v1/exports", headers=bearer(narrow), json={"kind": "users_csv", "filters": {}})
    assert refused.status_code == 403, refused.json
    own = client.post("/api/v1/exports", headers=bearer(narrow), json={"kind": "account_data", "filters": {}})
    assert own.status_code == 202, own.json
    wide = make_key(app, people["admin"], ("self:write", "users:read"))
    allowed = client.post("/api/v1/exports", headers=bearer(wide), json={"kind": "users_csv", "filters": {}})
    assert allowed.status_code == 202, allowed.json
