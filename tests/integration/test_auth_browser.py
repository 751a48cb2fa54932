"""Browser sign-in: CSRF, fixation, generic failures, lockout, safe redirects, logout and
copied-cookie revocation through the session epoch."""

from __future__ import annotations

import re
from urllib.parse import quote

import pytest

from app.audit.models import AuditEvent
from app.extensions import db
from app.users import passwords
from app.users.models import User
from tests.support import PASSWORD, PRODUCTION_HASHING, csrf_token


def _events(app, name):
    with app.app_context():
        return db.session.scalars(db.select(AuditEvent).where(AuditEvent.event == name).order_by(AuditEvent.id)).all()


def test_the_login_page_is_a_real_form(client):
    html = client.get("/auth/login").get_data(as_text=True)
    assert 'autocomplete="current-password"' in html and 'name="csrf_token"' in html


def test_login_without_the_csrf_token_is_refused(client, make_user, app):
    make_user(email="a@example.com")
    response = client.post("/auth/login", data={"email": "a@example.com", "password": PASSWORD})
    assert response.status_code == 400
    assert client.get("/account/").status_code == 302  # not signed in
    assert not _events(app, "login_succeeded")


def test_a_user_signs_in_and_the_session_changes(client, auth, make_user, app):
    make_user(email="a@example.com", display_name="Ada")
    client.get("/auth/login")
    before = client.get_cookie("session")
    response = auth.login("A@Example.com")
    assert response.status_code == 302 and response.headers["Location"] == "/files/"
    after = client.get_cookie("session")
    assert after is not None and (before is None or after.value != before.value)
    assert "Ada" in client.get("/").get_data(as_text=True)
    assert _events(app, "login_succeeded")


def test_planted_session_data_does_not_survive_sign_in(make_app, make_user, auth):
    make_user(email="fix@example.com")
    app = make_app()

    @app.get("/_plant")
    def plant():
        from flask import session

        session["planted"] = "attacker"
        return "planted"

    @app.get("/_read")
    def read():
        from flask import session

        return session.get("planted", "gone")

    client = app.test_client()
    client.get("/_plant")
    assert client.get("/_read").get_data(as_text=True) == "attacker"
    auth(client).login("fix@example.com")
    assert client.get("/_read").get_data(as_text=True) == "gone"


def test_wrong_password_and_unknown_email_look_the_same(app, auth, make_user, monkeypatch):
    make_user(email="known@example.com")
    with app.app_context():
        app_hasher = passwords._app_hasher()
    checked: list[str] = []  # the argon2 parameters of every hash verified

    class Recording(type(app_hasher.hasher)):
        def verify(self, digest, password):
            checked.append(digest.split("$")[3])
            return super().verify(digest, password)

    real = app_hasher.hasher
    monkeypatch.setattr(app_hasher, "hasher", Recording(real.time_cost, real.memory_cost, real.parallelism))
    bodies, verified = {}, {}
    for label, email in (("known", "known@example.com"), ("unknown", "nobody@example.com")):
        checked.clear()
        response = auth.login(email, "not the right password", expect=401)
        verified[label] = list(checked)
        # Per render: the CSRF token, hidden values and the passkey button's one-time challenge.
        masked = r'value="[^"]*"|data-passkey-options="[^"]*"|[\w-]{16,}\.[\w-]{4,}\.[\w-]{16,}'
        bodies[label] = re.sub(masked, "", response.get_data(as_text=True))
    assert "Invalid email or password." in bodies["known"]
    assert bodies["known"].replace("known@example.com", "X") == bodies["unknown"].replace("nobody@example.com", "X")
    # Both paths verify exactly one argon2 hash with the app's parameters: the same cost, so
    # the answer's timing does not tell whether the address has an account.
    parameters = f"m={real.memory_cost},t={real.time_cost},p={real.parallelism}"
    assert verified == {"known": [parameters], "unknown": [parameters]}


def test_five_failures_lock_this_client_out_even_with_the_right_password(auth, make_user, app):
    from app.auth.models import LoginFailures

    make_user(email="lock@example.com")
    for _ in range(5):
        auth.login("lock@example.com", "wrong password!!", expect=401)
    auth.login("lock@example.com", expect=401)  # locked: the right password fails
    with app.app_context():
        user = db.session.scalar(db.select(User).where(User.email == "lock@example.com"))
        pair = db.session.get(LoginFailures, (user.id, "127.0.0.1"))
        assert pair.locked_until is not None and pair.failures == 5
        assert user.locked_until is None and user.failed_login_count == 5  # the account itself is not
    assert _events(app, "client_locked_out") and _events(app, "login_refused_locked")


def test_a_refused_sign_in_will_not_record_inside_a_callers_unit_of_work(app, make_user):
    """What a refusal records must commit although the sign-in raises: inside a caller's unit
    the caller's rollback would undo it, so the check refuses to run there at all."""
    from app.auth.models import LoginFailures
    from app.auth.service import authenticate
    from app.core.unit_of_work import unit_of_work

    make_user(email="nested@example.com")
    with app.test_request_context("/auth/login", method="POST"):
        with pytest.raises(RuntimeError, match="must commit before the error"), unit_of_work():
            authenticate("nested@example.com", "wrong password!!", channel="browser")
        assert db.session.scalars(db.select(LoginFailures)).all() == []
    assert _events(app, "login_failed") == []


def test_lockout_grows_exponentially():
    from app.auth.lockout import lockout_seconds

    assert [lockout_seconds(n, 5) for n in (4, 5, 6, 7, 20)] == [0, 30, 60, 120, 3600]


def test_the_per_ip_limit_answers_429(make_app, make_user, auth):
    client = make_app().test_client()
    login = auth(client).login
    statuses = [login("nobody@example.com", "whatever password", expect=None).status_code for _ in range(11)]
    assert statuses[:10] == [401] * 10 and statuses[10] == 429


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example.com/",
        "//evil.example.com",
        "/\\evil.example.com",
        "\\/evil.example.com",
        "https:evil.example.com",
        "%2F%2Fevil.example.com",
        "/%5Cevil.example.com",
        "/\t/evil.example.com",
        "/%09/evil.example.com",
        "javascript:alert(1)",
    ],
)
def test_next_redirects_stay_on_this_site(auth, make_user, target):
    make_user(email="n@example.com")
    response = auth.login("n@example.com", next_url=quote(target, safe=""))
    assert response.status_code == 302 and response.headers["Location"] == "/files/"


@pytest.mark.parametrize("target", ["/api/docs", "/files/?kind=document&page=2"])
def test_next_redirects_to_a_local_path(auth, make_user, target):
    make_user(email="n2@example.com")
    assert auth.login("n2@example.com", next_url=quote(target, safe="")).headers["Location"] == target


@pytest.mark.parametrize(
    ("role", "landing"), [("user", "/files/"), ("viewer", "/files/"), ("manager", "/admin/"), ("admin", "/admin/")]
)
def test_sign_in_lands_on_the_files_for_users_and_the_admin_for_staff(auth, people, role, landing):
    assert auth.login(people[role]).headers["Location"] == landing
    # a signed-in visit to the sign-in page goes the same way
    assert auth.client.get("/auth/login").headers["Location"] == landing


def test_logout_is_post_only_and_needs_csrf(client, auth, make_user):
    make_user(email="out@example.com")
    auth.login("out@example.com")
    assert client.get("/auth/logout").status_code == 405
    assert client.post("/auth/logout").status_code == 400
    assert client.get("/account/").status_code == 200  # still signed in
    response = client.post("/auth/logout", data={"csrf_token": csrf_token(client, "/")})
    assert response.status_code == 302
    assert "Sign in" in client.get("/").get_data(as_text=True)
    assert client.get("/account/").status_code == 302  # signed out


def test_a_disabled_user_cannot_sign_in(client, auth, make_user):
    make_user(email="off@example.com", is_active_account=False)
    auth.login("off@example.com", expect=401)
    assert client.get("/account/").status_code == 302


def test_sign_out_everywhere_kills_copied_session_and_remember_cookies(make_app, make_user, app, auth):
    from app.auth.service import sign_out_everywhere

    make_user(email="copy@example.com", display_name="Copy")
    test_app = make_app()
    victim = test_app.test_client()
    auth(victim).login("copy@example.com", remember=True)
    stolen_session = victim.get_cookie("session").value
    stolen_remember = victim.get_cookie("remember_token").value
    attacker = test_app.test_client()
    attacker.set_cookie("session", stolen_session)
    assert "Copy" in attacker.get("/").get_data(as_text=True)
    with app.app_context():
        user = db.session.scalar(db.select(User).where(User.email == "copy@example.com"))
        sign_out_everywhere(user, reason="test")
    assert "Copy" not in attacker.get("/").get_data(as_text=True)
    replay = test_app.test_client()
    replay.set_cookie("remember_token", stolen_remember)
    assert "Copy" not in replay.get("/").get_data(as_text=True)


def test_remember_cookie_is_httponly_lax_and_short_lived(make_user, make_app, auth):
    make_user(email="rem@example.com")
    client = make_app().test_client()
    response = auth(client).login("rem@example.com", remember=True)
    cookie = next(
        value for key, value in response.headers.items() if key == "Set-Cookie" and value.startswith("remember_token")
    )
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    expires = re.search(r"Expires=([^;]+)", cookie).group(1)
    from email.utils import parsedate_to_datetime

    from app.core.database import utcnow

    lifetime = parsedate_to_datetime(expires) - utcnow()
    assert 13 <= lifetime.days <= 14


def test_production_cookies_are_host_prefixed_secure_and_sessions_bounded(make_app):
    app = make_app(
        app_env="production",
        database_url="postgresql://hearth@127.0.0.1:1/hearth",
        redis_url="redis://127.0.0.1:1/0",
        smtp_url="smtp://127.0.0.1:1",
        public_url="https://hearth.example.com",
    )
    assert app.config["SESSION_COOKIE_NAME"] == "__Host-session" and app.config["SESSION_COOKIE_SECURE"] is True
    assert app.config["REMEMBER_COOKIE_NAME"] == "__Host-remember" and app.config["REMEMBER_COOKIE_SECURE"] is True
    assert app.config["REMEMBER_COOKIE_DURATION"].days == 14
    assert app.config["PERMANENT_SESSION_LIFETIME"].total_seconds() == 120 * 60
    assert app.config["WTF_CSRF_TIME_LIMIT"] is None  # CSRF tokens last as long as the session


def test_a_hung_redis_never_turns_a_login_into_a_500(make_app, make_user, hung_redis_url, auth):
    make_user(email="redis@example.com")
    browser = auth(make_app(redis_url=hung_redis_url, jobs_immediate=False).test_client())
    browser.login("redis@example.com", "wrong password!!", expect=401)
    browser.login("redis@example.com")
    assert browser.client.get("/account/").status_code == 200


@pytest.mark.parametrize(
    "path", ["/account/sessions/abc/revoke", "/account/api-sign-ins/abc/revoke", "/auth/reset/some-token"]
)
def test_more_unsafe_routes_refuse_a_missing_csrf_token(client, auth, make_user, path):
    make_user(email="c2@example.com")
    auth.login("c2@example.com")
    assert client.post(path, data={"password": "x"}).status_code == 400
    assert auth.is_signed_in_as("c2@example.com")  # nothing was revoked or reset


def test_hashes_with_old_parameters_are_upgraded_at_login(make_app, make_user, app, auth):
    """With the production parameters (the session's apps hash cheaply)."""
    from argon2 import PasswordHasher

    weak = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(PASSWORD)
    user = make_user(email="old-hash@example.com", password_hash=weak)
    browser = auth(make_app(**PRODUCTION_HASHING).test_client())
    browser.login("old-hash@example.com")
    with app.app_context():
        upgraded = db.session.get(User, user.id).password_hash
    assert upgraded != weak and upgraded.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    browser.logout()
    browser.login("old-hash@example.com")  # the upgraded hash holds the same password
    with app.app_context():
        assert db.session.get(User, user.id).password_hash == upgraded  # and is not upgraded again


def test_signing_out_also_ends_a_remember_me_sign_in(client, auth, make_user):
    make_user(email="rm@example.com", display_name="Remembered")
    auth.login("rm@example.com", remember=True)
    assert client.get_cookie("remember_token") is not None
    assert auth.logout().status_code == 302
    assert client.get_cookie("remember_token") is None
    assert "Remembered" not in client.get("/").get_data(as_text=True)


def test_audit_log_lines_carry_hashed_ids(auth, make_user, captured_logs):
    user = make_user(email="audit@example.com")
    auth.login("audit@example.com")
    [line] = [entry for entry in captured_logs.events("audit") if entry["audit_event"] == "login_succeeded"]
    assert line["actor"] and line["actor"] != user.id and str(user.id) != line["actor"]
    assert "actor_id" not in line
