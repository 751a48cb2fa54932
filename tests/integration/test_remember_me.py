"""Remember-me ("keep me signed in") is bound to a server-side record (issue 10, finding 4): a
copied remember-me cookie replayed on its own is anonymous (and cleared) once its browser signed
out, was revoked on /account/, was signed out everywhere or reached the absolute limit; the idle
limit still lets the cookie start a new, recorded session bounded by the record's own expiry."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from app.audit.models import AuditEvent
from app.auth.models import RememberToken, UserSession
from app.core.database import utcnow
from app.extensions import db
from app.users.models import User
from tests.support import PASSWORD, csrf_token

REMEMBER = "remember_token"  # the test environment's name (`__Host-remember` in production)


def _signed_in(client) -> bool:
    return client.get("/account/").status_code == 200


def _replay(app, remember_value: str):
    """A fresh browser holding only the copied remember-me cookie."""
    thief = app.test_client()
    thief.set_cookie(REMEMBER, remember_value)
    return thief


def _tokens(app) -> list[RememberToken]:
    with app.app_context():
        rows = db.session.scalars(db.select(RememberToken).order_by(RememberToken.id)).all()
        db.session.expunge_all()
        return rows


def _sessions(app) -> list[UserSession]:
    with app.app_context():
        rows = db.session.scalars(db.select(UserSession).order_by(UserSession.created_at)).all()
        db.session.expunge_all()
        return rows


@pytest.fixture()
def browser(app, make_user, auth):
    """A browser signed in as rem@example.com with "Keep me signed in"."""
    make_user(email="rem@example.com", display_name="Remembered")
    client = app.test_client()
    auth(client).login("rem@example.com", remember=True)
    return client


def test_the_cookie_holds_a_random_token_stored_only_hashed_and_bound_to_the_session(app, browser):
    value = browser.get_cookie(REMEMBER).value
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", value)  # 256 random bits, not "<id>:<epoch>|<hmac>"
    [token] = _tokens(app)
    [session_row] = _sessions(app)
    assert token.token_hash != value and len(token.token_hash) == 64
    assert token.session_id == session_row.id and token.revoked_at is None
    assert timedelta(days=13, hours=23) < token.expires_at - utcnow() <= timedelta(days=14)


def test_the_remember_cookie_signs_back_in_with_a_new_recorded_session_and_a_rotated_token(app, browser):
    first = browser.get_cookie(REMEMBER).value
    browser.delete_cookie("session")  # the browser dropped the idle session cookie
    page = browser.get("/account/")
    assert page.status_code == 200 and "Remembered" in page.get_data(as_text=True)
    rotated = browser.get_cookie(REMEMBER).value
    assert rotated != first
    old, new = _sessions(app)
    [token] = _tokens(app)
    assert token.session_id == new.id and old.revoked_at is not None and new.revoked_at is None
    assert new.expires_at <= token.expires_at
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count()).where(AuditEvent.event == "signed_in_remembered")) == 1
    assert _signed_in(browser)  # and the new session simply continues


def test_after_the_idle_limit_the_cookie_starts_a_session_bounded_by_the_remember_record(app, browser):
    with app.app_context():
        row = db.session.scalar(db.select(UserSession))
        row.last_seen_at = utcnow() - timedelta(minutes=121)
        token = db.session.scalar(db.select(RememberToken))
        token.expires_at = utcnow() + timedelta(hours=1)  # less than SESSION_ABSOLUTE_HOURS away
        db.session.commit()
    assert _signed_in(browser)  # the idle session ended, the remember-me token started a new one
    idle, resumed = _sessions(app)
    [token] = _tokens(app)
    assert idle.revoked_at is not None and token.revoked_at is None
    assert resumed.expires_at == token.expires_at


def test_a_copied_cookie_dies_with_sign_out(app, browser):
    stolen = browser.get_cookie(REMEMBER).value
    browser.post("/auth/logout", data={"csrf_token": csrf_token(browser, "/")})
    assert browser.get_cookie(REMEMBER) is None
    thief = _replay(app, stolen)
    assert not _signed_in(thief)
    assert thief.get_cookie(REMEMBER) is None  # the dead cookie is cleared
    assert all(token.revoked_at is not None for token in _tokens(app))


def test_a_copied_cookie_dies_when_its_browser_is_revoked_on_the_account_page(app, browser, auth):
    stolen = browser.get_cookie(REMEMBER).value
    [victim_session] = _sessions(app)
    laptop = app.test_client()
    auth(laptop).login("rem@example.com")
    token = csrf_token(laptop, "/account/")
    assert laptop.post(f"/account/sessions/{victim_session.id}/revoke", data={"csrf_token": token}).status_code == 302
    assert not _signed_in(_replay(app, stolen))
    assert not _signed_in(browser)  # the revoked browser itself is signed out, remember-me included
    assert _signed_in(laptop)


def test_a_copied_cookie_dies_with_sign_out_everywhere(app, browser):
    stolen = browser.get_cookie(REMEMBER).value
    response = browser.post("/account/sign-out-everywhere", data={"csrf_token": csrf_token(browser, "/account/")})
    assert response.status_code == 302
    assert not _signed_in(_replay(app, stolen))
    assert _signed_in(browser)  # this browser continues with a new session


def test_a_copied_cookie_dies_with_a_password_change_and_disabling(app, browser, make_user, auth):
    stolen = browser.get_cookie(REMEMBER).value
    response = browser.post(
        "/account/password",
        data={
            "csrf_token": csrf_token(browser, "/account/"),
            "current_password": PASSWORD,
            "new_password": "another fine passphrase",
        },
    )
    assert response.status_code == 302
    assert not _signed_in(_replay(app, stolen))

    make_user(email="off@example.com")
    other = app.test_client()
    auth(other).login("off@example.com", remember=True)
    copied = other.get_cookie(REMEMBER).value
    with app.app_context():
        db.session.scalar(db.select(User).where(User.email == "off@example.com")).is_active_account = False
        db.session.commit()
    assert not _signed_in(_replay(app, copied))


def test_a_copied_cookie_dies_when_the_session_reaches_the_absolute_limit(app, browser):
    stolen = browser.get_cookie(REMEMBER).value
    with app.app_context():
        db.session.scalar(db.select(UserSession)).expires_at = utcnow()  # in use right up to its end
        db.session.commit()
    thief = _replay(app, stolen)
    assert not _signed_in(thief) and thief.get_cookie(REMEMBER) is None
    assert not _signed_in(browser)
    [token] = _tokens(app)
    assert token.revoked_at is not None


def test_the_absolute_limit_seen_by_the_browser_itself_ends_remember_me_too(app, browser):
    with app.app_context():
        db.session.scalar(db.select(UserSession)).expires_at = utcnow()
        db.session.commit()
    assert not _signed_in(browser)  # not silently resumed by the remember-me cookie
    assert browser.get_cookie(REMEMBER) is None
    assert not _signed_in(browser)


def test_the_remember_record_expires_after_its_own_fourteen_days(app, browser):
    stolen = browser.get_cookie(REMEMBER).value
    browser.delete_cookie("session")
    with app.app_context():
        db.session.scalar(db.select(RememberToken)).expires_at = utcnow() - timedelta(seconds=1)
        db.session.commit()
    assert not _signed_in(browser) and browser.get_cookie(REMEMBER) is None
    assert not _signed_in(_replay(app, stolen))


def test_a_rotated_token_replayed_later_revokes_that_browsers_remember_me(app, browser):
    stolen = browser.get_cookie(REMEMBER).value
    browser.delete_cookie("session")
    assert _signed_in(browser)  # rotates the token: the copy is now the previous one
    with app.app_context():
        db.session.scalar(db.select(RememberToken)).rotated_at = utcnow() - timedelta(minutes=5)
        db.session.commit()
    assert not _signed_in(_replay(app, stolen))
    [token] = _tokens(app)
    assert token.revoked_at is not None  # two copies were in use: neither works any more
    assert not _signed_in(browser)
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count()).where(AuditEvent.event == "remember_token_reused")) == 1


def test_a_request_racing_the_rotation_is_anonymous_but_keeps_the_browsers_sign_in(app, browser):
    first = browser.get_cookie(REMEMBER).value
    browser.delete_cookie("session")
    assert _signed_in(browser)
    racing = _replay(app, first)  # the same browser's other tab, sent before the new cookie arrived
    assert not _signed_in(racing)
    assert racing.get_cookie(REMEMBER) is not None  # not cleared: it may hold the new one by now
    [token] = _tokens(app)
    assert token.revoked_at is None and _signed_in(browser)


def test_an_old_flask_login_remember_cookie_signs_nobody_in(app, make_user):
    from flask_login.utils import encode_cookie

    user = make_user(email="legacy@example.com")
    with app.test_request_context():
        legacy = encode_cookie(f"{user.id}:{user.session_epoch}")  # what Flask-Login used to issue
    client = _replay(app, legacy)
    assert not _signed_in(client)
    assert client.get_cookie(REMEMBER) is None
    assert _sessions(app) == []


def test_signing_in_without_remember_me_sets_no_remember_cookie(app, make_user, auth):
    make_user(email="plain@example.com")
    client = app.test_client()
    auth(client).login("plain@example.com")
    assert client.get_cookie(REMEMBER) is None and _tokens(app) == []
    client.delete_cookie("session")
    assert not _signed_in(client)


def test_resetting_the_password_from_the_emailed_link_deletes_this_browsers_remember_cookie(app, browser):
    """The reset signs this browser out: the session and the remember-me cookie both go (the
    records are revoked by the reset itself), so the next visit is anonymous."""
    from app.auth.emailed_tokens import RESET_PASSWORD, issue_token

    with app.app_context():
        user = db.session.scalar(db.select(User).where(User.email == "rem@example.com"))
        raw = issue_token(user.id, RESET_PASSWORD)
        db.session.commit()
    path = f"/auth/reset/{raw}"
    response = browser.post(path, data={"csrf_token": csrf_token(browser, path), "password": "a brand new passphrase"})
    assert response.status_code == 302
    assert browser.get_cookie(REMEMBER) is None
    assert not _signed_in(browser)
