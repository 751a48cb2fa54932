"""Impersonation ("view as", app.auth.impersonation): an administrator sees the site as a user,
read-only, for at most IMPERSONATION_MINUTES; never as someone holding more than they do;
audited both ways with both ids, logged with both ids on every request, and told to the user.

Time passes by moving the impersonation record's `expires_at` back (no sleeping)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from app.audit.models import AuditEvent
from app.auth import impersonation, session_records
from app.auth.models import UserSession
from app.auth.service import sign_out_everywhere
from app.core.database import utcnow
from app.extensions import db
from app.jobs.periodic import run_recorded
from app.logging import hash_identifier
from app.notifications.models import Notification
from app.rbac import management as role_management
from app.rbac.service import permissions_of
from app.users import management as user_management
from app.users.models import User
from tests.support import csrf_token


def _events(app, name: str) -> list[AuditEvent]:
    with app.app_context():
        rows = list(db.session.scalars(select(AuditEvent).where(AuditEvent.event == name).order_by(AuditEvent.id)))
        for row in rows:
            db.session.expunge(row)
        return rows


def _impersonations(app) -> list[UserSession]:
    with app.app_context():
        rows = list(db.session.scalars(select(UserSession).where(UserSession.impersonator_id.is_not(None))))
        for row in rows:
            db.session.expunge(row)
        return rows


def start(client, user_id: int):
    return client.post(f"/admin/users/{user_id}/impersonate", data={"csrf_token": csrf_token(client, "/admin/")})


def stop(client):
    return client.post("/admin/impersonation/stop", data={"csrf_token": csrf_token(client, "/files/")})


@pytest.fixture()
def admin_browser(app, people, auth):
    return auth(app.test_client()).signed_in("admin@example.com")


@pytest.fixture()
def viewing(app, people, target, admin_browser):
    """The admin's browser, viewing the site as `target`."""
    response = start(admin_browser, target.id)
    assert response.status_code == 302, response.get_data(as_text=True)[:500]
    return admin_browser


def test_the_admin_sees_the_site_as_the_user_with_a_banner(app, people, target, viewing, auth):
    page = viewing.get("/files/")
    assert page.status_code == 200
    body = page.get_data(as_text=True)
    assert "data-impersonation-banner" in body
    assert "Viewing as <strong>Target</strong> (target@example.com), read-only. Ends in 15 minutes." in body
    assert 'action="/admin/impersonation/stop"' in body
    assert auth(viewing).is_signed_in_as("target@example.com")
    assert viewing.get("/admin/").status_code == 403  # the user's permissions, not the admin's
    (row,) = _impersonations(app)
    assert (row.user_id, row.impersonator_id, row.authenticated_at) == (target.id, people["admin"].id, None)
    assert timedelta(minutes=14) < row.expires_at - row.created_at <= timedelta(minutes=15)


def test_a_normal_session_shows_no_banner(app, people, admin_browser):
    assert "data-impersonation-banner" not in admin_browser.get("/files/").get_data(as_text=True)


UNSAFE = [
    ("POST", "/account/profile", {"display_name": "Hacked", "email": "target@example.com"}),
    ("POST", "/account/password", {"current_password": "x", "new_password": "y" * 20}),
    ("POST", "/account/language", {"locale": "de"}),
    ("POST", "/account/sign-out-everywhere", {}),
    ("POST", "/auth/reauthenticate", {"password": "correct horse battery staple"}),
    ("POST", "/admin/users/1/impersonate", {}),
    ("PUT", "/account/profile", {}),
    ("PATCH", "/account/profile", {}),
    ("DELETE", "/account/profile", {}),
]


@pytest.mark.parametrize(("method", "path", "form"), UNSAFE)
def test_every_unsafe_method_is_refused_while_viewing(app, target, viewing, method, path, form):
    token = csrf_token(viewing, "/files/")
    response = viewing.open(path, method=method, data={"csrf_token": token, **form}, headers={"X-CSRFToken": token})
    assert response.status_code == 403
    assert "read-only" in response.get_data(as_text=True)
    with app.app_context():
        user = db.session.get(User, target.id)
        assert (user.display_name, user.locale) == ("Target", None)
    assert len([row for row in _impersonations(app) if row.revoked_at is None]) == 1


def test_the_impersonating_browser_is_nobody_on_the_api(app, target, viewing):
    # The API never reads the browser's cookie: the impersonating browser is nobody there.
    response = viewing.get("/api/v1/me")
    assert response.status_code == 401


def test_stop_brings_the_admin_back_and_is_audited_with_both_ids(app, people, target, viewing, auth):
    response = stop(viewing)
    assert response.status_code == 302
    assert response.headers["Location"] == f"/admin/users/{target.id}"
    assert auth(viewing).is_signed_in_as("admin@example.com")
    assert "data-impersonation-banner" not in viewing.get("/admin/").get_data(as_text=True)
    (started,) = _events(app, "impersonation_started")
    (stopped,) = _events(app, "impersonation_stopped")
    for event in (started, stopped):
        assert (event.actor_user_id, event.subject_user_id) == (people["admin"].id, target.id)
    assert stopped.data["reason"] == "stopped"
    (row,) = _impersonations(app)
    assert row.revoked_at is not None


def test_after_the_time_box_the_admin_is_back(app, people, target, viewing, auth):
    with app.app_context():
        db.session.execute(
            update(UserSession)
            .where(UserSession.impersonator_id.is_not(None))
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
        db.session.commit()

    response = viewing.get("/files/")

    assert response.status_code == 302 and response.headers["Location"] == f"/admin/users/{target.id}"
    landing = viewing.get(response.headers["Location"])
    assert landing.status_code == 200
    assert "you are yourself again" in landing.get_data(as_text=True)
    assert auth(viewing).is_signed_in_as("admin@example.com")
    (stopped,) = _events(app, "impersonation_stopped")
    assert stopped.data["reason"] == "expired"
    assert (stopped.actor_user_id, stopped.subject_user_id) == (people["admin"].id, target.id)


def test_an_unsafe_request_after_the_time_box_is_not_run_as_the_admin(app, people, target, viewing):
    token = csrf_token(viewing, "/files/")
    with app.app_context():
        db.session.execute(update(UserSession).values(expires_at=utcnow() - timedelta(seconds=1)))
        db.session.execute(
            update(UserSession)
            .where(UserSession.impersonator_id.is_(None))
            .values(expires_at=utcnow() + timedelta(days=1))
        )
        db.session.commit()
    response = viewing.post(
        "/account/profile", data={"csrf_token": token, "display_name": "Changed", "email": "admin@example.com"}
    )
    assert response.status_code == 302 and response.headers["Location"] == f"/admin/users/{target.id}"
    with app.app_context():
        assert db.session.get(User, people["admin"].id).display_name == "Admin"


def test_when_the_admins_own_session_ended_meanwhile_stopping_signs_out(app, people, target, viewing, auth):
    with app.app_context():
        db.session.execute(
            update(UserSession).where(UserSession.user_id == people["admin"].id).values(revoked_at=utcnow())
        )
        db.session.commit()
    stop(viewing)
    assert viewing.get("/account/").status_code == 302  # the sign-in page
    assert len(_events(app, "impersonation_stopped")) == 1


def test_signing_out_while_viewing_stops_it_and_signs_out(app, people, target, viewing):
    response = viewing.post("/auth/logout", data={"csrf_token": csrf_token(viewing, "/files/")})
    assert response.status_code == 302
    assert viewing.get("/account/").status_code == 302
    (stopped,) = _events(app, "impersonation_stopped")
    assert stopped.data["reason"] == "signed_out"
    with app.app_context():  # every session involved has ended
        assert all(row.revoked_at is not None for row in db.session.scalars(select(UserSession)))


def test_viewing_is_never_fresh(app, target, viewing):
    assert viewing.get("/auth/reauthenticate").status_code == 403


@pytest.fixture()
def support(app, make_user):
    """An account that may impersonate but holds only a few permissions."""
    with app.test_request_context():
        admin = db.session.scalar(select(User).where(User.email == "admin@example.com"))
        role_management.create_role(admin, "support", "Helps people", ["users:read", "users:impersonate"])
    return make_user(email="support@example.com", display_name="Support", role="support")


@pytest.mark.parametrize(
    ("who", "whom", "status", "reason"),
    [
        ("admin", "self", 403, "yourself"),
        ("admin", "disabled", 403, "disabled"),
        ("admin", "other admin", 403, "administrator"),
        ("support", "manager", 403, "permissions you do not have"),
        ("manager", "user", 403, "users:impersonate"),
        ("admin", "deleted", 404, None),
    ],
)
def test_refused_targets(app, people, make_user, support, auth, who, whom, status, reason):
    targets = {
        "self": people.get(who),
        "disabled": make_user(email="off@example.com", is_active_account=False),
        "other admin": make_user(email="admin2@example.com", role="admin"),
        "manager": people["manager"],
        "user": people["user"],
        "deleted": make_user(email="gone@example.com", deleted_at=utcnow()),
    }
    client = auth(app.test_client()).signed_in(f"{who}@example.com")

    response = start(client, targets[whom].id)

    assert response.status_code == status
    if reason:
        assert reason in response.get_data(as_text=True)
    assert _impersonations(app) == []
    assert _events(app, "impersonation_started") == []


def test_a_narrower_admin_may_view_as_someone_holding_less(app, people, support, auth):
    client = auth(app.test_client()).signed_in("support@example.com")
    assert start(client, people["viewer"].id).status_code == 302
    assert auth(client).is_signed_in_as("viewer@example.com")


def test_the_user_page_offers_the_button_or_says_why_not(app, people, target, admin_browser):
    offered = admin_browser.get(f"/admin/users/{target.id}").get_data(as_text=True)
    assert f'action="/admin/users/{target.id}/impersonate"' in offered
    refused = admin_browser.get(f"/admin/users/{people['admin'].id}").get_data(as_text=True)
    assert "/impersonate" not in refused and "data-impersonation-refused" in refused


def test_no_api_route_can_impersonate(app):
    rules = [rule.rule for rule in app.url_map.iter_rules() if "imperson" in rule.rule]
    assert rules and all(not rule.startswith("/api/") for rule in rules)


def test_every_request_while_viewing_is_logged_with_both_ids(app, people, target, viewing, captured_logs):
    viewing.get("/files/")
    viewing.post("/account/language", data={"csrf_token": csrf_token(viewing, "/files/"), "locale": "de"})
    key = app.config["SECRET_KEY"]
    lines = [line for line in captured_logs.events("request") if line["route"] in ("/files/", "/account/language")]
    assert len(lines) >= 3
    for line in lines:
        assert line["user"] == hash_identifier(target.id, key)
        assert line["impersonator"] == hash_identifier(people["admin"].id, key)
    stop(viewing)
    (stop_line,) = [line for line in captured_logs.lines if line.get("audit_event") == "impersonation_stopped"]
    assert stop_line["impersonator"] == hash_identifier(people["admin"].id, key)
    assert (stop_line["actor"], stop_line["subject"]) == (
        hash_identifier(people["admin"].id, key),
        hash_identifier(target.id, key),
    )
    captured_logs.buffer.seek(0)
    captured_logs.buffer.truncate()
    viewing.get("/admin/")
    assert all("impersonator" not in line for line in captured_logs.lines)


def test_the_user_is_told_and_sees_it_in_their_activity(app, people, target, viewing, auth):
    stop(viewing)
    with app.app_context():
        notices = list(db.session.scalars(select(Notification).where(Notification.user_id == target.id)))
        assert [n.kind for n in notices] == ["security.impersonated"]
        assert "An administrator (Admin) viewed your account" in notices[0].body
    own = auth(app.test_client()).signed_in("target@example.com")
    page = own.get("/account/security")
    assert page.status_code == 200
    body = page.get_data(as_text=True)
    assert 'data-event="impersonation_started"' in body
    assert "An administrator (Admin) viewed your account on" in body
    assert "admin@example.com" not in body  # the administrator's address is not the user's to see


# How a view ends when nobody presses Stop ----------------------------------------------------

FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
CHROME_ON_WINDOWS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
)


def _browser(app, auth, email: str, agent: str):
    client = app.test_client()
    client.environ_base["HTTP_USER_AGENT"] = agent
    return auth(client).signed_in(email)


def test_viewing_is_neither_one_of_the_users_sessions_nor_a_device_of_theirs(app, people, target, auth):
    own = _browser(app, auth, "target@example.com", FIREFOX)
    admin = _browser(app, auth, "admin@example.com", CHROME_ON_WINDOWS)
    assert start(admin, target.id).status_code == 302
    with app.app_context():
        listed = session_records.active_sessions(target.id)
        assert [row.user_agent for row in listed] == [FIREFOX]  # the administrator's browser is not theirs
    assert CHROME_ON_WINDOWS not in own.get("/account/").get_data(as_text=True)
    # Someone signing in as the user with the administrator's kind of browser is a new device.
    _browser(app, auth, "target@example.com", CHROME_ON_WINDOWS)
    with app.app_context():
        kinds = db.session.scalars(select(Notification.kind).where(Notification.user_id == target.id)).all()
    assert kinds.count("security.new_sign_in") == 1


def _comes_back_as_the_admin(app, target, viewing, auth, told: str) -> None:
    """The administrator's browser, after the view ended without it: sent back to the user's
    admin page, told why, themselves again, and nothing more recorded."""
    response = viewing.get("/files/")
    assert response.status_code == 302 and response.headers["Location"] == f"/admin/users/{target.id}"
    assert told in viewing.get(response.headers["Location"]).get_data(as_text=True)
    assert auth(viewing).is_signed_in_as("admin@example.com")
    assert len(_events(app, "impersonation_stopped")) == 1


@pytest.mark.parametrize("ending", ["disabled", "deleted", "signed_out_everywhere"])
def test_the_users_sessions_ending_stops_the_view_once_and_brings_the_admin_back(
    app, people, target, viewing, auth, ending
):
    with app.test_request_context():
        admin = db.session.get(User, people["admin"].id)
        user = db.session.get(User, target.id)
        if ending == "disabled":
            user_management.update_user(admin, permissions_of(admin.id), user, is_active=False)
        elif ending == "deleted":
            user_management.delete_user(admin, permissions_of(admin.id), user)
        else:
            sign_out_everywhere(user, reason="user")
    # Recorded when it happened, not when (or whether) the administrator's browser comes back.
    (stopped,) = _events(app, "impersonation_stopped")
    assert stopped.data["reason"] == "revoked"
    assert (stopped.actor_user_id, stopped.subject_user_id) == (people["admin"].id, target.id)

    _comes_back_as_the_admin(app, target, viewing, auth, told="signed out everywhere")


def test_a_view_whose_time_ran_out_unseen_is_recorded_as_stopped_once(app, people, target, viewing, auth):
    with app.app_context():
        db.session.execute(
            update(UserSession)
            .where(UserSession.impersonator_id.is_not(None))
            .values(created_at=utcnow() - timedelta(minutes=15, seconds=1), expires_at=utcnow() - timedelta(seconds=1))
        )
        db.session.commit()
        run_recorded("close_lapsed_impersonations")  # the periodic task, as its job runs it
        assert impersonation.close_lapsed() == 0  # nothing left to close
    (stopped,) = _events(app, "impersonation_stopped")
    assert stopped.data["reason"] == "expired" and 15 * 60 - 1 <= stopped.data["seconds"] <= 15 * 60  # the box
    # The administrator's browser coming back later is sent back, and records nothing more.
    _comes_back_as_the_admin(app, target, viewing, auth, told="it lasts at most 15 minutes")


def test_the_user_cannot_revoke_a_view_as_if_it_were_a_session_of_theirs(app, people, target, viewing, auth):
    own = auth(app.test_client()).signed_in("target@example.com")
    (row,) = _impersonations(app)
    response = own.post(f"/account/sessions/{row.id}/revoke", data={"csrf_token": csrf_token(own, "/account/")})
    assert response.status_code == 404
    (row,) = _impersonations(app)
    assert row.revoked_at is None and _events(app, "impersonation_stopped") == []
