"""The notification centre in the browser: the bell (cached count, accessible name, conditional
polling), `/notifications` (list, mark read, open) and `/account/notifications` (preferences)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from app.auth.models import UserSession
from app.core.database import utcnow
from app.core.unit_of_work import unit_of_work
from app.extensions import db
from app.notifications import service
from app.notifications.models import Notification
from tests.support import csrf_token, statements_of_get


@pytest.fixture()
def member(make_user):
    return make_user(email="member@example.com", display_name="Member", email_verified_at=utcnow())


@pytest.fixture()
def signed_in(client, auth, member):
    auth.login(member)
    client.get("/")  # shows (and so consumes) the welcome flash
    return client


def _notify(app, user_id, kind="upload.ready", count=1, link="/files/", **params):
    params = params or {"filename": "report.pdf"}
    with app.app_context(), unit_of_work() as session:
        rows = [service.notify(user_id, kind, params=params, link=link) for _ in range(count)]
        session.flush()
        return [row.id for row in rows]


def _bell(html: str) -> str | None:
    match = re.search(r'<a href="/notifications" id="nav-bell"[^>]*>.*?</a>', html, re.DOTALL)
    return match.group(0) if match else None


def _read_at(app, notification_id):
    with app.app_context():
        return db.session.get(Notification, notification_id).read_at


# The bell --------------------------------------------------------------------------------------


def test_the_bell_shows_the_unread_count_with_an_accessible_name(app, signed_in, member):
    bell = _bell(signed_in.get("/files/").get_data(as_text=True))
    assert bell is not None and 'aria-label="Notifications"' in bell and "nav-bell__count" not in bell
    _notify(app, member.id, count=3)
    bell = _bell(signed_in.get("/files/").get_data(as_text=True))
    assert 'aria-label="Notifications, 3 unread"' in bell
    assert '<span class="nav-bell__count" aria-hidden="true">3</span>' in bell
    assert 'hx-get="/notifications/bell"' in bell and 'hx-trigger="every 20s"' in bell


def test_anonymous_pages_have_no_bell(client):
    assert _bell(client.get("/").get_data(as_text=True)) is None
    assert 'id="nav-bell"' not in client.get("/auth/login").get_data(as_text=True)


def _statements(app, client, path):
    return statements_of_get(app, client, path)


def test_a_page_runs_no_statement_for_the_bell_once_the_count_is_cached(app, signed_in, member):
    _notify(app, member.id, count=2)
    signed_in.get("/files/")  # caches the count (and the permission set the layout asks for)
    statements, response = _statements(app, signed_in, "/files/")
    assert "Notifications, 2 unread" in response.get_data(as_text=True)
    assert not [s for s in statements if "notifications" in s], statements


def test_the_cached_count_follows_new_and_read_notifications(app, signed_in, member):
    signed_in.get("/files/")
    [first, _second] = _notify(app, member.id, count=2)
    assert "Notifications, 2 unread" in signed_in.get("/files/").get_data(as_text=True)
    with app.app_context():
        service.mark_read(member.id, first)
    assert "Notifications, 1 unread" in signed_in.get("/files/").get_data(as_text=True)
    with app.app_context():
        service.mark_all_read(member.id)
    assert 'aria-label="Notifications"' in signed_in.get("/files/").get_data(as_text=True)


def test_the_bell_fragment_answers_304_until_something_changes(app, signed_in, member):
    first = signed_in.get("/notifications/bell")
    assert first.status_code == 200 and first.headers["Cache-Control"] == "private, no-cache"
    assert first.get_data(as_text=True).startswith('<a href="/notifications" id="nav-bell"')
    etag = first.headers["ETag"]
    again = signed_in.get("/notifications/bell", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.get_data() == b""
    _notify(app, member.id)
    changed = signed_in.get("/notifications/bell", headers={"If-None-Match": etag})
    assert changed.status_code == 200 and "Notifications, 1 unread" in changed.get_data(as_text=True)
    assert changed.headers["ETag"] != etag and changed.headers["Last-Modified"]
    since = signed_in.get(
        "/notifications/bell",
        headers={"If-None-Match": changed.headers["ETag"], "If-Modified-Since": changed.headers["Last-Modified"]},
    )
    assert since.status_code == 304


def test_the_bell_of_another_user_never_matches(app, client, auth, member, make_user):
    other = make_user(email="other@example.com")
    auth.login(member)
    etag = client.get("/notifications/bell").headers["ETag"]
    auth.logout()
    auth.login(other)
    response = client.get("/notifications/bell", headers={"If-None-Match": etag})
    assert response.status_code == 200


def test_polling_the_bell_signed_out_stops_the_polling(client):
    response = client.get("/notifications/bell")
    assert response.status_code == 286 and response.get_data() == b""  # htmx stops polling on 286


def test_polling_the_bell_is_not_activity_that_keeps_a_session_alive(app, signed_in, member):
    with app.app_context():
        row = db.session.scalars(select(UserSession)).one()
        row.last_seen_at = utcnow() - timedelta(minutes=5)
        db.session.commit()
        before = row.last_seen_at
    assert signed_in.get("/notifications/bell").status_code == 200
    with app.app_context():
        assert db.session.scalars(select(UserSession)).one().last_seen_at == before
    signed_in.get("/files/")  # a page the user opens is activity
    with app.app_context():
        assert db.session.scalars(select(UserSession)).one().last_seen_at > before


# /notifications -------------------------------------------------------------------------------


def test_the_list_highlights_unread_and_marks_one_read_without_javascript(app, signed_in, member):
    [older, newer] = _notify(app, member.id, count=2)
    html = signed_in.get("/notifications").get_data(as_text=True)
    assert html.count("notification--unread") == 2 and "2 unread" in html
    assert html.index(f'id="notification-{newer}"') < html.index(f'id="notification-{older}"')  # newest first
    response = signed_in.post(
        f"/notifications/{older}/read", data={"csrf_token": csrf_token(signed_in, "/notifications")}
    )
    assert response.status_code == 302 and response.headers["Location"] == "/notifications"
    assert _read_at(app, older) is not None and _read_at(app, newer) is None
    html = signed_in.get("/notifications").get_data(as_text=True)
    assert html.count("notification--unread") == 1


def test_mark_all_read(app, signed_in, member):
    ids = _notify(app, member.id, count=3)
    response = signed_in.post("/notifications/read-all", data={"csrf_token": csrf_token(signed_in, "/notifications")})
    assert response.status_code == 302
    assert all(_read_at(app, notification_id) is not None for notification_id in ids)
    assert "3 notifications marked read." in signed_in.get("/notifications").get_data(as_text=True)


def test_opening_a_notification_follows_its_link_and_marks_it_read(app, signed_in, member):
    [notification_id] = _notify(app, member.id, link="/files/")
    html = signed_in.get("/notifications").get_data(as_text=True)
    assert f'action="/notifications/{notification_id}/open"' in html
    # A GET (a prefetch, a link scanner) changes nothing.
    assert signed_in.get(f"/notifications/{notification_id}/open").status_code == 405
    assert _read_at(app, notification_id) is None
    token = csrf_token(signed_in, "/notifications")
    assert signed_in.post(f"/notifications/{notification_id}/open").status_code == 400  # no CSRF token
    response = signed_in.post(f"/notifications/{notification_id}/open", data={"csrf_token": token})
    assert response.status_code == 302 and response.headers["Location"] == "/files/"
    assert _read_at(app, notification_id) is not None


def test_another_users_notification_is_not_found(app, client, auth, member, make_user):
    other = make_user(email="other@example.com")
    [notification_id] = _notify(app, member.id)
    auth.login(other)
    token = csrf_token(client, "/notifications")
    assert client.post(f"/notifications/{notification_id}/read", data={"csrf_token": token}).status_code == 404
    assert client.post(f"/notifications/{notification_id}/open", data={"csrf_token": token}).status_code == 404
    assert f"notification-{notification_id}" not in client.get("/notifications").get_data(as_text=True)
    assert _read_at(app, notification_id) is None


def test_the_list_is_paginated(app, signed_in, member):
    _notify(app, member.id, count=23)
    first = signed_in.get("/notifications").get_data(as_text=True)
    assert first.count('class="notification ') == 20 and "Page 1 of 2" in first
    second = signed_in.get("/notifications?page=2").get_data(as_text=True)
    assert second.count('class="notification ') == 3 and 'rel="prev"' in second


def test_the_pages_need_a_sign_in(client):
    for path in ("/notifications", "/account/notifications"):
        response = client.get(path)
        assert response.status_code == 302 and "/auth/login" in response.headers["Location"]


# /account/notifications ------------------------------------------------------------------------


def test_preferences_show_security_email_as_always_on(signed_in):
    html = signed_in.get("/account/notifications").get_data(as_text=True)
    row = re.search(r'<tr data-kind="security.new_sign_in">.*?</tr>', html, re.DOTALL).group(0)
    assert re.search(r'name="security.new_sign_in:email" checked disabled', row)
    assert "always sent by email" in row
    upload_row = re.search(r'<tr data-kind="upload.ready">.*?</tr>', html, re.DOTALL).group(0)
    assert re.search(r'name="upload.ready:in_app" checked', upload_row)
    assert not re.search(r'name="upload.ready:email"\s+checked', upload_row)


def test_preferences_are_saved_by_a_plain_form_post(app, signed_in, member):
    token = csrf_token(signed_in, "/account/notifications")
    # Everything unticked except one: a disabled security box is never submitted, and stays on.
    response = signed_in.post("/account/notifications", data={"csrf_token": token, "upload.ready:email": "on"})
    assert response.status_code == 302 and response.headers["Location"] == "/account/notifications"
    with app.app_context():
        chosen = service.preferences(member.id)
    assert (chosen["upload.ready"].in_app, chosen["upload.ready"].email) == (False, True)
    assert (chosen["export.ready"].in_app, chosen["export.ready"].email) == (False, False)
    assert chosen["security.new_sign_in"].email is True and chosen["security.password_changed"].email is True
    assert "Notification settings saved." in signed_in.get("/account/notifications").get_data(as_text=True)


def test_the_account_page_links_to_the_centre_and_the_settings(signed_in):
    html = signed_in.get("/account/").get_data(as_text=True)
    assert 'href="/notifications"' in html and 'href="/account/notifications"' in html


def test_polling_the_bell_never_resumes_a_remembered_session(app, client, auth, member):
    auth.login(member, remember=True)
    with app.app_context():
        row = db.session.scalars(select(UserSession)).one()
        row.last_seen_at = utcnow() - timedelta(days=1)  # idle: the session is over
        db.session.commit()
    assert client.get("/notifications/bell").status_code == 286  # anonymous: polling stops
    with app.app_context():
        assert len(db.session.scalars(select(UserSession)).all()) == 1  # no session started from the cookie
    assert client.get("/files/").status_code == 200  # a page the user opens does resume it
    with app.app_context():
        assert len(db.session.scalars(select(UserSession)).all()) == 2
