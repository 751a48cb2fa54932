"""Step-up (app.auth.freshness): every sensitive action needs a sign-in, password or second
factor within FRESH_AUTH_MINUTES. A stale browser POST gets the re-authentication page with
its form carried, then a page that posts it again (nothing typed is lost); a stale API token
gets 401 `reauthentication-required`; a personal API key 403 `api-key-not-allowed`.

A session is made stale by moving its `authenticated_at` back (no sleeping)."""

from __future__ import annotations

import html
import re
from datetime import timedelta
from typing import Any

import pyotp
import pytest
from itsdangerous import URLSafeTimedSerializer
from sqlalchemy import select, update

from app.audit.models import AuditEvent
from app.auth import freshness
from app.auth.freshness import fresh_auth_required
from app.auth.guards import login_required
from app.auth.models import RefreshToken, UserSession
from app.core.database import utcnow
from app.extensions import db
from app.rbac.models import Role
from app.users.models import User
from app.webhooks.models import WebhookEndpoint
from tests.support import PASSWORD, bearer, csrf_token

STALE = timedelta(minutes=11)  # FRESH_AUTH_MINUTES is 10
HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')
CONTINUE_FORM = re.compile(r'<form method="post" action="([^"]+)" data-auto-submit>(.*?)</form>', re.S)


# Helpers ---------------------------------------------------------------------------------------


def make_stale(app, user_id: int, by: timedelta = STALE) -> None:
    """Every browser session of the user proved who they are `by` ago."""
    with app.app_context():
        db.session.execute(
            update(UserSession).where(UserSession.user_id == user_id).values(authenticated_at=utcnow() - by)
        )
        db.session.commit()


def _hidden(page: str) -> list[tuple[str, str]]:
    return [(name, html.unescape(value)) for name, value in HIDDEN.findall(page)]


def _carried(page: str) -> str:
    values = [value for name, value in _hidden(page) if name == "carried"]
    assert values, "the re-authentication page carries no form"
    return values[0]


def _unsealed(app, carried: str) -> dict[str, Any]:
    return URLSafeTimedSerializer(app.config["SECRET_KEY"], salt=freshness.CARRY_SALT).loads(carried)


def reauthenticate(client, carried: str | None = None, **proof: str):
    data = {"csrf_token": csrf_token(client, "/auth/reauthenticate"), **proof}
    if carried:
        data["carried"] = carried
    return client.post("/auth/reauthenticate", data=data)


def continue_form(page: str) -> tuple[str, list[tuple[str, str]]]:
    """The continue page's form: where it posts, and its fields (a new CSRF token among them)."""
    match = CONTINUE_FORM.search(page)
    assert match, page[:2000]
    return html.unescape(match.group(1)), _hidden(match.group(2))


def submit(client, action: str, fields: list[tuple[str, str]]):
    """Post a form as the browser would (repeated names kept)."""
    from werkzeug.datastructures import MultiDict

    return client.post(action, data=MultiDict(fields))


def _user(app, user_id: int) -> User:
    with app.app_context():
        user = db.session.get(User, user_id)
        _ = user.role_names
        db.session.expunge(user)
        return user


def _events(app, name: str) -> list[AuditEvent]:
    with app.app_context():
        rows = list(db.session.scalars(select(AuditEvent).where(AuditEvent.event == name).order_by(AuditEvent.id)))
        for row in rows:
            db.session.expunge(row)
        return rows


def _role_permissions(app, name: str) -> set[str] | None:
    with app.app_context():
        role = db.session.scalar(select(Role).where(Role.name == name))
        return None if role is None else {p.name for p in role.permissions}


@pytest.fixture()
def admin_browser(app, people, auth):
    return auth(app.test_client()).signed_in("admin@example.com")


# Every browser action ----------------------------------------------------------------------------


def _make_role(app, name: str) -> None:
    from app.rbac import management as role_management

    with app.test_request_context():
        admin = db.session.scalar(select(User).where(User.email == "admin@example.com"))
        role_management.create_role(admin, name, "temporary", [])


BROWSER_ACTIONS = {
    "set roles": (
        "/admin/users/{t}/roles",
        [("roles", "user"), ("roles", "viewer")],
        lambda app, t: set(_user(app, t).role_names) == {"user", "viewer"},
    ),
    "disable": (
        "/admin/users/{t}/disable",
        [("confirmed", "yes"), ("next", "/admin/users")],
        lambda app, t: not _user(app, t).is_active,
    ),
    "delete": (
        "/admin/users/{t}/delete",
        [("confirmed", "yes")],
        lambda app, t: _user(app, t).deleted_at is not None,
    ),
    "bulk disable": (
        "/admin/users/bulk",
        [("action", "disable"), ("user_ids", "{t}"), ("confirmed", "yes")],
        lambda app, t: not _user(app, t).is_active,
    ),
    "bulk role": (
        "/admin/users/bulk",
        [("action", "assign_role"), ("role", "viewer"), ("user_ids", "{t}")],
        lambda app, t: "viewer" in _user(app, t).role_names,
    ),
    "permission grid": (
        "/admin/roles/matrix",
        None,  # the grid as it is plus one box (built in the test)
        lambda app, t: "uploads:read_any" in (_role_permissions(app, "viewer") or set()),
    ),
    "create role": (
        "/admin/roles",
        [("name", "support"), ("description", "Helps people"), ("grant", "users:read")],
        lambda app, t: _role_permissions(app, "support") == {"users:read"},
    ),
    "delete role": (
        "/admin/roles/doomed/delete",
        [("confirmed", "yes")],
        lambda app, t: _role_permissions(app, "doomed") is None,
    ),
    "register webhook": (
        "/admin/webhooks",
        [("url", "http://127.0.0.1:9/hook"), ("events", "user.created"), ("description", "CRM sync")],
        lambda app, t: _count_webhooks(app) == 1,
    ),
    "impersonate": (
        "/admin/users/{t}/impersonate",
        [],
        lambda app, t: len(_events(app, "impersonation_started")) == 1,
    ),
    "re-point webhook": (
        "/admin/webhooks/{w}",
        [("url", "http://127.0.0.1:9/elsewhere"), ("events", "user.created"), ("description", "")],
        lambda app, t: _only_webhook(app).url == "http://127.0.0.1:9/elsewhere",
    ),
    "rotate webhook secret": (
        "/admin/webhooks/{w}/rotate-secret",
        [("confirmed", "yes")],
        lambda app, t: _only_webhook(app).previous_secret_expires_at is not None,
    ),
    "add an authenticator app": (
        "/account/security/totp",
        [],
        lambda app, t: _totp_of_admin(app) is not None,
    ),
}


def _only_webhook(app) -> WebhookEndpoint:
    with app.app_context():
        endpoint = db.session.scalars(select(WebhookEndpoint)).one()
        db.session.expunge(endpoint)
        return endpoint


def _totp_of_admin(app) -> Any:
    from app.auth.models import TotpCredential

    with app.app_context():
        admin = db.session.scalars(select(User).where(User.email == "admin@example.com")).one()
        return db.session.get(TotpCredential, admin.id)


def _count_webhooks(app) -> int:
    with app.app_context():
        return len(db.session.scalars(select(WebhookEndpoint)).all())


def _grid_fields(app) -> list[tuple[str, str]]:
    from app.rbac.catalog import ROLES as CATALOG_ROLES

    granted = [f"{role}|{permission}" for role, (_, permissions) in CATALOG_ROLES.items() for permission in permissions]
    return [("grant", value) for value in [*granted, "viewer|uploads:read_any"]]


@pytest.mark.parametrize("name", list(BROWSER_ACTIONS))
def test_a_stale_browser_action_goes_through_reauthentication_and_back_with_its_form(
    app, people, target, admin_browser, name
):
    path, fields, done = BROWSER_ACTIONS[name]
    if name == "delete role":
        _make_role(app, "doomed")
    fields = _grid_fields(app) if fields is None else [(k, v.replace("{t}", str(target.id))) for k, v in fields]
    path = path.replace("{t}", str(target.id))
    if "{w}" in path:
        path = path.replace("{w}", _webhook_of_admin(app))
    admin = people["admin"]
    make_stale(app, admin.id)

    asked = submit(admin_browser, path, [("csrf_token", csrf_token(admin_browser, "/admin/")), *fields])

    assert asked.status_code == 200
    page = asked.get_data(as_text=True)
    assert "Confirm it is you" in page and 'name="password"' in page
    assert not done(app, target.id), "the action ran without a recent sign-in"
    carried = _carried(page)

    confirmed = reauthenticate(admin_browser, carried, password=PASSWORD)

    assert confirmed.status_code == 200
    action, resent = continue_form(confirmed.get_data(as_text=True))
    assert action == path
    assert [pair for pair in resent if pair[0] != "csrf_token"] == fields  # every field, in order
    assert not done(app, target.id)  # nothing happens before the form is posted again
    finished = submit(admin_browser, action, resent)
    assert finished.status_code in (200, 302), finished.status_code
    assert done(app, target.id)
    assert [e.data["method"] for e in _events(app, "reauthenticated")] == ["password"]


def test_fresh_sign_in_needs_no_reauthentication(app, people, target, admin_browser):
    response = submit(
        admin_browser,
        f"/admin/users/{target.id}/disable",
        [("csrf_token", csrf_token(admin_browser, "/admin/")), ("confirmed", "yes")],
    )
    assert response.status_code == 302
    assert not _user(app, target.id).is_active


def test_the_window_is_fresh_auth_minutes(app, people, target, admin_browser):
    make_stale(app, people["admin"].id, by=timedelta(minutes=9))
    response = submit(
        admin_browser,
        f"/admin/users/{target.id}/disable",
        [("csrf_token", csrf_token(admin_browser, "/admin/")), ("confirmed", "yes")],
    )
    assert response.status_code == 302 and not _user(app, target.id).is_active


def test_a_stale_get_is_sent_to_the_page_and_back(make_app, app, people, auth):
    guarded = make_app()

    @login_required
    @fresh_auth_required
    def probe() -> str:
        return "the sensitive page"

    guarded.add_url_rule("/probe", "probe", probe)
    client = auth(guarded.test_client()).signed_in("admin@example.com")
    assert client.get("/probe").get_data(as_text=True) == "the sensitive page"
    make_stale(guarded, people["admin"].id)

    sent = client.get("/probe?tab=2")
    assert sent.status_code == 302
    assert sent.headers["Location"].startswith("/auth/reauthenticate?next=")
    page = client.get(sent.headers["Location"])
    assert page.status_code == 200
    assert ("next", "/probe?tab=2") in _hidden(page.get_data(as_text=True))
    back = client.post(
        "/auth/reauthenticate",
        data={"csrf_token": csrf_token(client, "/auth/reauthenticate"), "next": "/probe?tab=2", "password": PASSWORD},
    )
    assert back.status_code == 302 and back.headers["Location"] == "/probe?tab=2"
    assert client.get("/probe").get_data(as_text=True) == "the sensitive page"


def test_a_wrong_password_keeps_the_session_stale_and_counts_toward_the_lockout(app, people, target, admin_browser):
    make_stale(app, people["admin"].id)
    asked = submit(
        admin_browser,
        f"/admin/users/{target.id}/disable",
        [("csrf_token", csrf_token(admin_browser, "/admin/")), ("confirmed", "yes")],
    )
    carried = _carried(asked.get_data(as_text=True))

    refused = reauthenticate(admin_browser, carried, password="not the password")

    assert refused.status_code == 422
    page = refused.get_data(as_text=True)
    assert "The current password is not correct." in page
    # The form is still carried for the next try (sealed again: the timestamp may differ).
    assert _unsealed(app, _carried(page)) == _unsealed(app, carried)
    assert [e.subject_user_id for e in _events(app, "login_failed")] == [people["admin"].id]
    assert _user(app, people["admin"].id).failed_login_count == 1
    again = submit(
        admin_browser,
        f"/admin/users/{target.id}/disable",
        [("csrf_token", csrf_token(admin_browser, "/admin/")), ("confirmed", "yes")],
    )
    assert "Confirm it is you" in again.get_data(as_text=True)
    assert _user(app, target.id).is_active


def test_passwords_and_the_csrf_token_are_never_carried(app, people, target, admin_browser):
    make_stale(app, people["admin"].id)
    asked = submit(
        admin_browser,
        f"/admin/users/{target.id}/roles",
        [
            ("csrf_token", csrf_token(admin_browser, "/admin/")),
            ("roles", "viewer"),
            ("current_password", "hunter2-secret"),
            ("new_password", "another-secret"),
            ("code", "123456"),
        ],
    )
    page = asked.get_data(as_text=True)
    assert "hunter2-secret" not in page and "another-secret" not in page
    with app.test_request_context():
        sealed = freshness._serializer().loads(_carried(page))
    assert sealed["fields"] == [["roles", "viewer"]]


def test_a_tampered_carried_form_is_not_posted_again(app, people, target, admin_browser):
    make_stale(app, people["admin"].id)
    asked = submit(
        admin_browser,
        f"/admin/users/{target.id}/roles",
        [("csrf_token", csrf_token(admin_browser, "/admin/")), ("roles", "viewer")],
    )
    carried = _carried(asked.get_data(as_text=True))
    forged = carried[:-3] + ("AAA" if not carried.endswith("AAA") else "BBB")
    response = reauthenticate(admin_browser, forged, password=PASSWORD)
    assert response.status_code == 302  # fresh now, but nothing is posted on the forged form's behalf
    assert "data-auto-submit" not in response.get_data(as_text=True)


def test_a_carried_form_works_only_in_the_session_it_was_made_for(app, people, target, admin_browser, auth):
    make_stale(app, people["admin"].id)
    asked = submit(
        admin_browser,
        f"/admin/users/{target.id}/roles",
        [("csrf_token", csrf_token(admin_browser, "/admin/")), ("roles", "viewer")],
    )
    carried = _carried(asked.get_data(as_text=True))
    # Another account (or another browser) presenting it re-authenticates, but nothing is re-posted.
    other = auth(app.test_client()).signed_in(people["manager"].email)
    make_stale(app, people["manager"].id)
    response = reauthenticate(other, carried, password=PASSWORD)
    assert response.status_code == 302 and "data-auto-submit" not in response.get_data(as_text=True)
    # Its own session gets it back.
    own = reauthenticate(admin_browser, carried, password=PASSWORD)
    assert own.status_code == 200 and "data-auto-submit" in own.get_data(as_text=True)


def test_a_second_factor_code_is_a_step_up_too(app, people, target, admin_browser):
    admin = people["admin"]
    # Set up in this browser: turning two-factor on ends every other sign-in of the account.
    form_token = csrf_token(admin_browser, "/account/security")
    assert admin_browser.post("/account/security/totp", data={"csrf_token": form_token}).status_code == 302
    page = admin_browser.get("/account/security").get_data(as_text=True)
    totp = pyotp.TOTP(re.search(r'<code id="totp-secret">([A-Z2-7]+)</code>', page).group(1))
    confirmed = admin_browser.post(
        "/account/security/totp/confirm", data={"csrf_token": form_token, "code": totp.now()}
    )
    assert confirmed.status_code == 302
    # The code used to confirm cannot be replayed: the next time step's code is the proof here.
    make_stale(app, admin.id)
    asked = submit(
        admin_browser,
        f"/admin/users/{target.id}/disable",
        [("csrf_token", csrf_token(admin_browser, "/admin/")), ("confirmed", "yes")],
    )
    page = asked.get_data(as_text=True)
    assert 'name="code"' in page  # offered to an account with two-factor
    refused = reauthenticate(admin_browser, _carried(page), code="000000")
    assert refused.status_code == 422
    code = totp.at(utcnow() + timedelta(seconds=30))
    confirmed = reauthenticate(admin_browser, _carried(page), code=code)
    assert confirmed.status_code == 200, confirmed.get_data(as_text=True)[:500]
    action, fields = continue_form(confirmed.get_data(as_text=True))
    submit(admin_browser, action, fields)
    assert not _user(app, target.id).is_active
    assert [e.data["method"] for e in _events(app, "reauthenticated")] == ["totp"]


def test_the_current_password_of_an_email_change_is_a_step_up(app, people, target, admin_browser):
    admin = people["admin"]
    make_stale(app, admin.id)
    saved = admin_browser.post(
        "/account/profile",
        data={
            "csrf_token": csrf_token(admin_browser, "/account/"),
            "display_name": "Admin",
            "email": "new-admin@example.com",
            "current_password": PASSWORD,
        },
    )
    assert saved.status_code == 302
    done = submit(
        admin_browser,
        f"/admin/users/{target.id}/disable",
        [("csrf_token", csrf_token(admin_browser, "/admin/")), ("confirmed", "yes")],
    )
    assert done.status_code == 302 and not _user(app, target.id).is_active


def test_the_current_password_of_a_password_change_is_a_step_up(app, people, target, admin_browser):
    admin = people["admin"]
    make_stale(app, admin.id)
    changed = admin_browser.post(
        "/account/password",
        data={
            "csrf_token": csrf_token(admin_browser, "/account/"),
            "current_password": PASSWORD,
            "new_password": "a brand new passphrase for the admin",
        },
    )
    assert changed.status_code == 302
    done = submit(
        admin_browser,
        f"/admin/users/{target.id}/disable",
        [("csrf_token", csrf_token(admin_browser, "/admin/")), ("confirmed", "yes")],
    )
    assert done.status_code == 302 and not _user(app, target.id).is_active


def test_a_session_resumed_from_remember_me_is_not_fresh(app, people, target, auth):
    client = app.test_client()
    auth(client).login("admin@example.com", remember=True)
    with app.app_context():  # the session ends (idle); the remember-me cookie starts a new one
        db.session.execute(update(UserSession).values(last_seen_at=utcnow() - timedelta(days=1)))
        db.session.commit()
    assert client.get("/admin/").status_code == 200
    response = submit(
        client,
        f"/admin/users/{target.id}/disable",
        [("csrf_token", csrf_token(client, "/admin/")), ("confirmed", "yes")],
    )
    assert "Confirm it is you" in response.get_data(as_text=True)
    assert _user(app, target.id).is_active


# The API ---------------------------------------------------------------------------------------------


def _stale_headers(app, api_auth, user) -> dict[str, str]:
    """A valid access token whose sign-in (`auth_time`) is older than the window: the refresh
    family's proof moved back, then refreshed."""
    tokens = api_auth.tokens(user)
    with app.app_context():
        db.session.execute(update(RefreshToken).values(authenticated_at=utcnow() - STALE))
        db.session.commit()
    refreshed = api_auth.client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert refreshed.status_code == 200, refreshed.get_json()
    return bearer(refreshed.json["access_token"])


def _webhook_of_admin(app) -> str:
    from app.webhooks import service as webhooks_service

    with app.test_request_context():
        admin = db.session.scalars(select(User).where(User.email == "admin@example.com")).one()
        endpoint, _secret = webhooks_service.create_endpoint(admin, "http://127.0.0.1:9/first", ["user.created"], "")
        return endpoint.id


def _api_actions(app, target_id: int) -> list[tuple[str, str, dict | None]]:
    webhook_id = _webhook_of_admin(app)
    return [
        # Re-pointing a webhook or taking its new secret is as sensitive as registering one;
        # enrolling an authenticator app would let a stolen token lock the owner out.
        ("PATCH", f"/api/v1/webhooks/{webhook_id}", {"url": "http://127.0.0.1:9/elsewhere"}),
        ("POST", f"/api/v1/webhooks/{webhook_id}/rotate-secret", None),
        ("POST", "/api/v1/me/totp", None),
        ("PUT", f"/api/v1/admin/users/{target_id}/roles", {"roles": ["user", "viewer"]}),
        ("POST", f"/api/v1/admin/users/{target_id}/disable", None),
        ("PATCH", f"/api/v1/users/{target_id}", {"roles": ["viewer"]}),
        ("PATCH", f"/api/v1/users/{target_id}", {"is_active": False}),
        ("DELETE", f"/api/v1/users/{target_id}", None),
        ("POST", "/api/v1/webhooks", {"url": "http://127.0.0.1:9/hook", "events": ["user.created"]}),
        ("POST", "/api/v1/admin/roles", {"name": "support", "permissions": ["users:read"]}),
        ("PATCH", "/api/v1/admin/roles/viewer", {"permissions": ["users:read"]}),
        ("DELETE", "/api/v1/admin/roles/doomed", None),
    ]


API_ACTION_COUNT = 12


@pytest.mark.parametrize("index", range(API_ACTION_COUNT))
def test_a_stale_api_token_gets_reauthentication_required_and_a_fresh_one_succeeds(
    app, people, target, client, api_auth, index
):
    _make_role(app, "doomed")
    method, path, body = _api_actions(app, target.id)[index]
    stale = _stale_headers(app, api_auth, people["admin"])

    refused = client.open(path, method=method, json=body, headers=stale)

    assert refused.status_code == 401, refused.get_json()
    problem = refused.get_json()
    assert problem["type"].endswith("/reauthentication-required")
    assert "POST /api/v1/auth/token" in problem["detail"]
    fresh = client.open(path, method=method, json=body, headers=api_auth.headers(people["admin"]))
    assert fresh.status_code in (200, 201, 204), fresh.get_json()


def test_an_api_patch_that_changes_nothing_sensitive_needs_no_fresh_sign_in(app, people, target, client, api_auth):
    stale = _stale_headers(app, api_auth, people["admin"])
    response = client.patch(f"/api/v1/users/{target.id}", json={"display_name": "Renamed"}, headers=stale)
    assert response.status_code == 200, response.get_json()


@pytest.mark.parametrize("index", range(API_ACTION_COUNT))
def test_a_personal_api_key_may_never_take_a_step_up_action(app, people, target, client, index):
    from app.apikeys import service as api_keys
    from app.rbac.service import permissions_of

    _make_role(app, "doomed")
    with app.test_request_context():
        admin = db.session.get(User, people["admin"].id)
        _row, key = api_keys.create(admin, "script", sorted(permissions_of(admin.id)), 30)
    method, path, body = _api_actions(app, target.id)[index]

    response = client.open(path, method=method, json=body, headers=bearer(key))

    assert response.status_code == 403, response.get_json()
    assert response.get_json()["type"].endswith("/api-key-not-allowed")
