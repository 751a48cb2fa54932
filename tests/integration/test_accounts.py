"""Sign-up, email verification, password reset and the account page, with emails delivered
to a real SMTP server on loopback (jobs run inline at commit)."""

from __future__ import annotations

import re

import pytest

from app.audit.models import AuditEvent
from app.extensions import db
from app.users.models import User
from tests.conftest import count_rows
from tests.support import PASSWORD, csrf_token


@pytest.fixture()
def mail_app(make_app, smtp, app):
    return make_app(smtp_url=smtp.url)


@pytest.fixture()
def browser(mail_app):
    return mail_app.test_client()


def _post(client, path, form_path=None, **data):
    return client.post(path, data={"csrf_token": csrf_token(client, form_path or path), **data})


def _text(delivery) -> str:
    """The plain-text part of a delivered message (every email also has an HTML part)."""
    [part] = [p for p in delivery.message.walk() if p.get_content_type() == "text/plain"]
    return part.get_payload(decode=True).decode()


def _link(delivery) -> str:
    return re.search(r"http://localhost(?::\d+)?(/\S+)", _text(delivery)).group(1)


def _user(app, email) -> User:
    with app.app_context():
        user = db.session.scalar(db.select(User).where(User.email == email))
        db.session.expunge(user)
        return user


def _audit(app, name) -> int:
    with app.app_context():
        return db.session.scalar(db.select(db.func.count()).select_from(AuditEvent).where(AuditEvent.event == name))


def _signup(client, email="new@example.com", password=PASSWORD, name="Newcomer"):
    return _post(client, "/auth/signup", email=email, display_name=name, password=password)


def test_sign_up_creates_an_unverified_user_with_the_user_role_and_emails_a_link(browser, smtp, app):
    response = _signup(browser, email="New@Example.com")
    assert response.status_code == 200 and "Check your inbox" in response.get_data(as_text=True)
    user = _user(app, "new@example.com")
    assert user.email_verified_at is None and user.password_hash.startswith("$argon2id$")
    with app.app_context():
        assert db.session.get(User, user.id).role_names == ["user"]
    [delivery] = smtp.deliveries
    assert delivery.recipients == ["new@example.com"] and "/auth/verify/" in _link(delivery)
    assert _audit(app, "signup") == 1


def test_every_email_is_plain_text_with_an_html_alternative_whose_links_are_anchors(browser, smtp):
    _signup(browser)
    [delivery] = smtp.deliveries
    message = delivery.message
    assert message.get_content_type() == "multipart/alternative"
    assert [part.get_content_type() for part in message.get_payload()] == ["text/plain", "text/html"]
    html = message.get_payload()[1].get_payload(decode=True).decode()
    link = re.search(r"http://localhost(?::\d+)?/auth/verify/\S+", _text(delivery)).group(0)
    assert f'<a href="{link}"' in html and "Newcomer" in html and '<html lang="en">' in html


@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("short", "at least 12"),
        ("new@example.com", "must not be your email"),
        ("Qwerty123456", "too common"),
    ],
)
def test_sign_up_enforces_the_password_policy(browser, password, message):
    response = _signup(browser, password=password)
    assert response.status_code == 422 and message in response.get_data(as_text=True)


def test_sign_up_with_a_taken_email_answers_the_same_and_warns_the_owner(browser, smtp, make_user, app):
    make_user(email="taken@example.com")
    taken = _signup(browser, email="taken@example.com", name="Someone")
    fresh = _signup(browser, email="fresh@example.com", name="Someone")
    assert taken.status_code == fresh.status_code == 200

    def strip(response, email):
        return re.sub(r'value="[^"]*"|[\w-]{16,}\.[\w-]{4,}\.[\w-]{16,}', "", response.get_data(as_text=True)).replace(
            email, "X"
        )

    assert strip(taken, "taken@example.com") == strip(fresh, "fresh@example.com")
    subjects = {d.recipients[0]: d.message["Subject"] for d in smtp.deliveries}
    assert subjects == {
        "taken@example.com": "You already have a Hearth account",
        "fresh@example.com": "Confirm your email address for Hearth",
    }


def test_the_verification_link_works_once_and_signs_its_account_in(browser, smtp, app, auth):
    _signup(browser)
    link = _link(smtp.deliveries[0])
    before = browser.get_cookie("session")
    verified = browser.get(link)
    assert verified.status_code == 302 and verified.headers["Location"] == "/account/"
    account = browser.get("/account/")
    assert account.status_code == 200 and "Email confirmed" in account.get_data(as_text=True)
    assert auth(browser).is_signed_in_as("new@example.com")
    after = browser.get_cookie("session")
    assert before is None or after.value != before.value  # a new session, as after a password sign-in
    assert _user(app, "new@example.com").email_verified_at is not None
    assert _audit(app, "email_verified") == 1
    with app.app_context():
        [sign_in] = db.session.scalars(db.select(AuditEvent).where(AuditEvent.event == "login_succeeded")).all()
        assert sign_in.data["channel"] == "email_link"
    assert browser.get(link).status_code == 400  # single use


def test_a_verification_link_followed_while_signed_in_as_that_account_keeps_the_session(browser, smtp, app, auth):
    _signup(browser)
    auth(browser).login("new@example.com")
    verified = browser.get(_link(smtp.deliveries[0]))
    assert verified.headers["Location"] == "/account/"
    assert "Email confirmed" in browser.get("/account/").get_data(as_text=True)
    assert _user(app, "new@example.com").email_verified_at is not None
    assert auth(browser).is_signed_in_as("new@example.com")
    assert _audit(app, "login_succeeded") == 1  # the password sign-in only
    assert count_rows(app, "user_sessions") == 1  # no new session


def test_a_verification_link_for_another_account_confirms_it_but_never_switches_accounts(
    browser, smtp, app, auth, make_user
):
    """Anyone can email a link: following one must not swap the account this browser works in."""
    make_user(email="resident@example.com")
    _signup(browser)
    link = _link(smtp.deliveries[0])
    auth(browser).login("resident@example.com")
    verified = browser.get(link)
    assert verified.status_code == 302 and verified.headers["Location"] == "/account/"
    page = browser.get("/account/").get_data(as_text=True)
    assert "for another account than the one signed in here" in page
    assert auth(browser).is_signed_in_as("resident@example.com")
    assert _user(app, "new@example.com").email_verified_at is not None  # the link still did its job
    assert browser.get(link).status_code == 400


def test_a_verification_link_never_signs_a_disabled_account_in(browser, smtp, app, auth):
    _signup(browser)
    with app.app_context():
        db.session.execute(db.update(User).where(User.email == "new@example.com").values(is_active_account=False))
        db.session.commit()
    verified = browser.get(_link(smtp.deliveries[0]))
    assert verified.status_code == 302 and verified.headers["Location"] == "/auth/login"
    assert browser.get("/account/").status_code == 302  # not signed in
    assert _audit(app, "login_succeeded") == 0


def test_unverified_users_can_sign_in_but_see_the_banner_and_can_resend(browser, smtp, app, auth):
    _signup(browser)
    assert auth(browser).login("new@example.com").headers["Location"] == "/files/"
    assert auth(browser).is_signed_in_as("new@example.com")
    home = browser.get("/").get_data(as_text=True)
    assert "Please confirm" in home and "Send the link again" in home
    token = re.search(r'name="csrf_token" value="([^"]+)"', home).group(1)
    resent = browser.post("/auth/verify/resend", data={"csrf_token": token})
    assert resent.status_code == 302 and resent.headers["Location"] == "/account/"
    assert len(smtp.deliveries) == 2
    assert [d.recipients for d in smtp.deliveries] == [["new@example.com"], ["new@example.com"]]
    assert _link(smtp.deliveries[1]) != _link(smtp.deliveries[0])  # a new link
    statuses = [browser.post("/auth/verify/resend", data={"csrf_token": token}).status_code for _ in range(3)]
    assert statuses[-1] == 429  # resending is rate limited


def test_verified_email_guard(make_app, make_user, app, auth):
    from app.auth.guards import verified_email_required
    from app.core.database import utcnow

    test_app = make_app()

    @test_app.get("/_needs_verified")
    @verified_email_required
    def needs_verified():
        return "ok"

    make_user(email="unverified@example.com")
    make_user(email="verified@example.com", email_verified_at=utcnow())
    for email, status in (("unverified@example.com", 403), ("verified@example.com", 200)):
        client = test_app.test_client()
        auth(client).login(email)
        assert client.get("/_needs_verified").status_code == status


def test_password_reset_answers_the_same_for_unknown_emails(browser, smtp, make_user):
    make_user(email="known@example.com")
    known = _post(browser, "/auth/reset", email="known@example.com")
    unknown = _post(browser, "/auth/reset", email="unknown@example.com")
    assert known.status_code == unknown.status_code == 200
    tokens_and_addresses = r"\S+@example.com|[\w-]{16,}\.[\w-]{4,}\.[\w-]{16,}"
    assert re.sub(tokens_and_addresses, "X", known.get_data(as_text=True)) == re.sub(
        tokens_and_addresses, "X", unknown.get_data(as_text=True)
    )
    assert [d.recipients for d in smtp.deliveries] == [["known@example.com"]]


def test_password_reset_sets_the_password_once_and_ends_every_session_and_token(
    mail_app, browser, smtp, make_user, app, auth
):
    make_user(email="forgot@example.com")
    other = mail_app.test_client()
    auth(other).login("forgot@example.com")
    api_pair = other.post("/api/v1/auth/token", json={"email": "forgot@example.com", "password": PASSWORD}).json
    _post(browser, "/auth/reset", email="forgot@example.com")
    link = _link(smtp.deliveries[-1])
    weak = _post(browser, link, password="short")
    assert weak.status_code == 422
    done = _post(browser, link, password="a completely new passphrase")
    assert done.status_code == 302 and done.headers["Location"] == "/auth/login"
    assert browser.get(link).status_code == 400  # used
    auth(browser).login("forgot@example.com", PASSWORD, expect=401)  # the old password is gone
    assert auth(browser).login("forgot@example.com", "a completely new passphrase").headers["Location"] == "/files/"
    assert auth(browser).is_signed_in_as("forgot@example.com")
    assert "Sign out" not in other.get("/").get_data(as_text=True)  # the other browser is out
    assert other.post("/api/v1/auth/refresh", json={"refresh_token": api_pair["refresh_token"]}).status_code == 401
    assert other.get("/api/v1/me", headers={"Authorization": f"Bearer {api_pair['access_token']}"}).status_code == 401


def test_reset_tokens_expire_after_an_hour(browser, smtp, make_user, app):
    from datetime import timedelta

    from app.auth.models import AccountToken

    make_user(email="late@example.com")
    _post(browser, "/auth/reset", email="late@example.com")
    link = _link(smtp.deliveries[-1])
    with app.app_context():
        token = db.session.scalar(db.select(AccountToken))
        assert timedelta(minutes=59) < token.expires_at - token.created_at <= timedelta(hours=1)
        token.expires_at = token.created_at
        db.session.commit()
    assert browser.get(link).status_code == 400


def test_account_page_edits_profile_and_reverifies_a_new_email(browser, smtp, make_user, app, auth):
    make_user(email="me@example.com", display_name="Me")
    auth(browser).login("me@example.com")
    page = browser.get("/account/")
    assert page.status_code == 200 and "This browser" in page.get_data(as_text=True)
    response = _post(
        browser,
        "/account/profile",
        "/account/",
        display_name="Renamed",
        email="moved@example.com",
        current_password=PASSWORD,
    )
    assert response.status_code == 302 and response.headers["Location"] == "/account/"
    assert "Confirm the new address with the link we sent to it." in browser.get("/account/").get_data(as_text=True)
    user = _user(app, "me@example.com")  # the email only changes once confirmed
    assert user.display_name == "Renamed"
    [delivery] = [d for d in smtp.deliveries if d.recipients == ["moved@example.com"]]
    [notice] = [d for d in smtp.deliveries if d.recipients == ["me@example.com"]]
    assert "/auth/email/undo/" in _link(notice)
    browser.get(_link(delivery))
    assert _user(app, "moved@example.com").id == user.id
    assert auth(browser).is_signed_in_as("moved@example.com")


def test_account_password_change_needs_the_current_password_and_keeps_this_browser(
    mail_app, browser, make_user, app, auth
):
    make_user(email="pw@example.com")
    other = mail_app.test_client()
    auth(other).login("pw@example.com")
    auth(browser).login("pw@example.com")
    wrong = _post(browser, "/account/password", "/account/", current_password="nope nope nope", new_password="x" * 20)
    assert wrong.status_code == 422 and "not correct" in wrong.get_data(as_text=True)
    ok = _post(
        browser, "/account/password", "/account/", current_password=PASSWORD, new_password="another fine passphrase"
    )
    assert ok.status_code == 302 and ok.headers["Location"] == "/account/"
    assert auth(browser).is_signed_in_as("pw@example.com")  # still signed in here
    assert other.get("/account/").status_code == 302  # the other session is gone
    auth(other).login("pw@example.com", PASSWORD, expect=401)  # the old password no longer works
    auth(other).login("pw@example.com", "another fine passphrase")


def test_sessions_are_listed_and_can_be_revoked_one_by_one(mail_app, browser, make_user, app, auth):
    make_user(email="multi@example.com")
    phone = mail_app.test_client()
    auth(phone).login("multi@example.com")
    auth(browser).login("multi@example.com")
    html = browser.get("/account/").get_data(as_text=True)
    sids = sorted(set(re.findall(r"/account/sessions/([^/]+)/revoke", html)))
    assert len(sids) == 1  # the other browser; this one is marked "This browser"
    token = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
    response = browser.post(
        f"/account/sessions/{sids[0]}/revoke", data={"csrf_token": token}, headers={"HX-Request": "true"}
    )
    assert response.status_code == 200 and response.get_data(as_text=True) == ""
    assert phone.get("/account/").status_code == 302
    assert browser.get("/account/").status_code == 200
    # someone else's session id is not found
    assert browser.post(f"/account/sessions/{sids[0]}/revoke", data={"csrf_token": token}).status_code == 404


def test_api_sign_ins_are_listed_and_revocable(browser, make_user, auth):
    make_user(email="dev@example.com")
    pair = browser.post(
        "/api/v1/auth/token",
        json={"email": "dev@example.com", "password": PASSWORD},
        headers={"User-Agent": "deploy-bot/1.0"},
    ).json
    auth(browser).login("dev@example.com")
    html = browser.get("/account/").get_data(as_text=True)
    assert "deploy-bot/1.0" in html
    family = re.search(r"/account/api-sign-ins/([^/]+)/revoke", html).group(1)
    token = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
    revoked = browser.post(f"/account/api-sign-ins/{family}/revoke", data={"csrf_token": token})
    assert revoked.status_code == 302 and revoked.headers["Location"] == "/account/"
    assert "deploy-bot/1.0" not in browser.get("/account/").get_data(as_text=True)
    assert browser.post("/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]}).status_code == 401
    assert browser.get("/api/v1/me", headers={"Authorization": f"Bearer {pair['access_token']}"}).status_code == 401


def test_sessions_end_after_the_idle_limit(browser, make_user, app, auth):
    from datetime import timedelta

    from app.auth.models import UserSession

    make_user(email="idle@example.com")
    auth(browser).login("idle@example.com")
    assert browser.get("/account/").status_code == 200
    with app.app_context():
        row = db.session.scalar(db.select(UserSession))
        row.last_seen_at = row.last_seen_at - timedelta(minutes=121)
        db.session.commit()
    assert browser.get("/account/").status_code == 302


def test_sessions_end_at_the_absolute_limit(browser, make_user, app, auth):
    from app.auth.models import UserSession
    from app.core.database import utcnow

    make_user(email="old@example.com")
    auth(browser).login("old@example.com")
    with app.app_context():
        db.session.scalar(db.select(UserSession)).expires_at = utcnow()
        db.session.commit()
    assert browser.get("/account/").status_code == 302


def test_logout_revokes_the_session_record(browser, make_user, app, auth):
    from app.auth.models import UserSession

    make_user(email="bye@example.com")
    auth(browser).login("bye@example.com")
    signed_out = auth(browser).logout()
    assert signed_out.status_code == 302 and signed_out.headers["Location"] == "/"
    with app.app_context():
        assert db.session.scalar(db.select(UserSession)).revoked_at is not None
    assert browser.get("/account/").status_code == 302


@pytest.mark.parametrize(
    "path",
    [
        "/auth/signup",
        "/auth/reset",
        "/account/profile",
        "/account/password",
        "/account/sign-out-everywhere",
        "/auth/verify/resend",
        "/auth/login",
        "/auth/logout",
    ],
)
def test_every_unsafe_form_route_refuses_a_missing_csrf_token(browser, make_user, path, auth, smtp):
    make_user(email="csrf@example.com")
    auth(browser).login("csrf@example.com")
    assert browser.post(path, data={"email": "x@example.com"}).status_code == 400
    assert auth(browser).is_signed_in_as("csrf@example.com")  # not signed out, nothing changed
    assert smtp.deliveries == []  # and nothing was sent


def test_the_job_payload_with_the_link_is_dropped_once_sent(browser, smtp, app):
    from app.jobs.models import Job

    _signup(browser)
    with app.app_context():
        job = db.session.scalar(db.select(Job))
        assert job.status == "succeeded" and job.payload == {}
        assert job.args_summary == {"to": "new@example.com", "template": "verify_email"}
