"""Two-factor authentication (issue 16): an authenticator app (TOTP) enrolled and confirmed on
/account/security, ten single-use recovery codes, the /auth/2fa sign-in step (replays refused,
wrong codes counted toward the lockout), removal, the REQUIRE_2FA_FOR_ROLES policy, and the
same through the API (/api/v1/me/totp and `otp` in /api/v1/auth/token)."""

from __future__ import annotations

import re
import time

import pyotp
import pytest
from sqlalchemy import select

from app.audit.models import AuditEvent
from app.auth import sign_in_flow
from app.auth.models import RecoveryCode, TotpCredential
from app.extensions import db
from app.notifications.models import Notification
from app.users.models import User
from tests.support import PASSWORD, FakeClock, bearer, csrf_token

SECRET = re.compile(r'<code id="totp-secret">([A-Z2-7]+)</code>')
RECOVERY = re.compile(r"<li><code>([a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4})</code></li>")


def _post(client, path, form_path="/account/security", **data):
    return client.post(path, data={"csrf_token": csrf_token(client, form_path), **data})


def _code(secret: str, steps_ahead: int = 0) -> str:
    """The app's code `steps_ahead` 30 s steps from now (the server accepts one step of drift)."""
    return pyotp.TOTP(secret).at(time.time(), counter_offset=steps_ahead)


def _enrol(client) -> tuple[str, list[str]]:
    """Set up an authenticator app for the signed-in `client`: its secret and recovery codes."""
    assert _post(client, "/account/security/totp").status_code == 302
    page = client.get("/account/security").get_data(as_text=True)
    [secret] = SECRET.findall(page)
    confirmed = _post(client, "/account/security/totp/confirm", code=_code(secret))
    assert confirmed.status_code == 302, confirmed.get_data(as_text=True)[:300]
    codes = RECOVERY.findall(client.get("/account/security").get_data(as_text=True))
    assert len(codes) == 10
    return secret, codes


def _user(app, user_id) -> User:
    with app.app_context():
        user = db.session.get(User, user_id)
        db.session.expunge(user)
        return user


def _events(app, name: str) -> list[AuditEvent]:
    with app.app_context():
        return list(db.session.scalars(select(AuditEvent).where(AuditEvent.event == name).order_by(AuditEvent.id)))


def _password_step(auth, user, **options):
    response = auth.login(user, **options)
    assert response.headers["Location"].endswith("/auth/2fa"), response.headers["Location"]
    return response


def _second_step(client, code: str):
    return _post(client, "/auth/2fa", form_path="/auth/2fa", code=code)


@pytest.fixture()
def enrolled(make_user, auth, client, app):
    """A user with an authenticator app, signed out again: (user, secret, recovery codes)."""
    user = make_user(email="two@example.com")
    auth.login(user)
    secret, codes = _enrol(client)
    auth.logout()
    return user, secret, codes


# Enrolment ----------------------------------------------------------------------------------


def test_enrolment_shows_a_qr_code_and_the_key_and_is_inactive_until_confirmed(client, auth, make_user, app):
    user = make_user()
    auth.login(user)
    page = client.get("/account/security")
    assert page.status_code == 200 and "Set up an authenticator app" in page.get_data(as_text=True)
    _post(client, "/account/security/totp")
    html = client.get("/account/security").get_data(as_text=True)
    [secret] = SECRET.findall(html)
    assert '<svg role="img"' in html and "qr-code" in html  # drawn here, no outside service
    assert "https://" not in html.split('<svg role="img"')[1].split("</svg>")[0]
    assert _user(app, user.id).two_factor_enabled is False
    with app.app_context():
        stored = db.session.get(TotpCredential, user.id)
        assert stored.confirmed_at is None and secret not in stored.secret_encrypted
    wrong = _post(client, "/account/security/totp/confirm", code="000000" if _code(secret) != "000000" else "111111")
    assert wrong.status_code == 422 and _user(app, user.id).two_factor_enabled is False
    assert _post(client, "/account/security/totp/confirm", code=_code(secret)).status_code == 302
    assert _user(app, user.id).two_factor_enabled is True
    assert [e.subject_user_id for e in _events(app, "totp_enabled")] == [user.id]


def test_recovery_codes_are_shown_once_stored_hashed_and_downloadable_once(client, auth, make_user, app):
    user = make_user()
    auth.login(user)
    _secret, codes = _enrol(client)
    assert len(set(codes)) == 10
    # Shown on the first view only.
    assert RECOVERY.findall(client.get("/account/security").get_data(as_text=True)) == []
    with app.app_context():
        hashes = db.session.scalars(select(RecoveryCode.code_hash).where(RecoveryCode.user_id == user.id)).all()
    assert len(hashes) == 10 and not {c.replace("-", "") for c in codes} & set(hashes)
    download = client.get("/account/security/recovery-codes.txt")
    assert download.status_code == 200 and download.mimetype == "text/plain"
    assert "attachment" in download.headers["Content-Disposition"]
    assert all(code in download.get_data(as_text=True) for code in codes)
    assert client.get("/account/security/recovery-codes.txt").status_code == 302  # once


def test_regenerating_recovery_codes_retires_the_old_set(client, auth, enrolled, app):
    user, secret, old_codes = enrolled
    _password_step(auth, user)
    assert _second_step(client, _code(secret, 1)).status_code == 302
    assert _post(client, "/account/security/recovery-codes").status_code == 302
    new_codes = RECOVERY.findall(client.get("/account/security").get_data(as_text=True))
    assert len(new_codes) == 10 and not set(new_codes) & set(old_codes)
    auth.logout()
    _password_step(auth, user)
    assert _second_step(client, old_codes[0]).status_code == 422
    assert _second_step(client, new_codes[0]).status_code == 302


# Sign-in ------------------------------------------------------------------------------------


def test_the_password_alone_does_not_sign_in_an_account_with_two_factor(client, auth, enrolled, app):
    user, secret, _codes = enrolled
    _password_step(auth, user)
    assert client.get("/account/").status_code == 302  # not signed in yet
    assert [e.subject_user_id for e in _events(app, "login_password_ok_pending_2fa")] == [user.id]
    assert [e for e in _events(app, "login_succeeded") if e.data.get("method") == "totp"] == []
    assert _second_step(client, _code(secret, 1)).status_code == 302
    assert auth.is_signed_in_as(user)
    [succeeded] = [e for e in _events(app, "login_succeeded") if e.data.get("method") == "totp"]
    assert succeeded.subject_user_id == user.id


def test_a_used_code_is_refused_within_its_window(client, auth, enrolled, app):
    user, secret, _codes = enrolled
    code = _code(secret, 1)
    _password_step(auth, user)
    assert _second_step(client, code).status_code == 302
    auth.logout()
    _password_step(auth, user)
    replay = _second_step(client, code)
    assert replay.status_code == 422 and "not valid" in replay.get_data(as_text=True)
    assert not auth.is_signed_in_as(user)


def test_a_recovery_code_works_once_and_the_owner_is_told(client, auth, enrolled, app):
    user, _secret, codes = enrolled
    _password_step(auth, user)
    assert _second_step(client, codes[3].upper().replace("-", " ")).status_code == 302  # as typed
    assert auth.is_signed_in_as(user)
    with app.app_context():
        kinds = db.session.scalars(select(Notification.kind).where(Notification.user_id == user.id)).all()
    assert "security.recovery_code_used" in kinds
    [used] = _events(app, "recovery_code_used")
    assert used.data["remaining"] == 9
    auth.logout()
    _password_step(auth, user)
    assert _second_step(client, codes[3]).status_code == 422


def test_wrong_codes_lock_this_client_out_like_wrong_passwords(client, auth, enrolled, app):
    user, secret, _codes = enrolled
    _password_step(auth, user)
    for _ in range(5):
        assert _second_step(client, "123456" if _code(secret) != "123456" else "654321").status_code == 422
    locked = _second_step(client, _code(secret, 1))
    assert locked.status_code == 429
    assert not auth.is_signed_in_as(user)
    assert len(_events(app, "second_factor_failed")) == 5


def test_a_password_step_does_not_reset_the_count_of_wrong_codes(client, auth, enrolled, app):
    user, secret, _codes = enrolled
    wrong = "123456" if _code(secret) != "123456" else "654321"
    for _ in range(2):
        _password_step(auth, user)
        _second_step(client, wrong)
        _second_step(client, wrong)
    _password_step(auth, user)
    assert _second_step(client, wrong).status_code == 422  # the fifth wrong answer locks
    assert _second_step(client, _code(secret, 1)).status_code == 429


def test_the_pending_sign_in_expires_after_five_minutes(client, auth, enrolled, monkeypatch):
    user, _secret, _codes = enrolled
    clock = FakeClock(now=time.time())
    monkeypatch.setattr(sign_in_flow, "time", clock)
    _password_step(auth, user)
    clock.advance(5 * 60 + 1)
    expired = client.get("/auth/2fa")
    assert expired.status_code == 302 and expired.headers["Location"].startswith("/auth/login")


def test_keep_me_signed_in_and_next_survive_the_second_step(client, auth, enrolled, app):
    user, secret, _codes = enrolled
    _password_step(auth, user, remember=True, next_url="/account/")
    done = _second_step(client, _code(secret, 1))
    assert done.headers["Location"] == "/account/"
    assert "remember_token=" in done.headers.get("Set-Cookie", "") or any(
        "remember_token" in value for value in done.headers.getlist("Set-Cookie")
    )


# Removal ------------------------------------------------------------------------------------


def test_removing_the_app_needs_a_code_or_the_password(client, auth, enrolled, app):
    user, secret, _codes = enrolled
    _password_step(auth, user)
    _second_step(client, _code(secret, 1))
    assert _post(client, "/account/security/totp/disable").status_code == 422
    assert _post(client, "/account/security/totp/disable", password="wrong password!!").status_code == 422
    assert _user(app, user.id).two_factor_enabled is True
    assert _post(client, "/account/security/totp/disable", password=PASSWORD).status_code == 302
    assert _user(app, user.id).two_factor_enabled is False
    with app.app_context():
        assert db.session.get(TotpCredential, user.id) is None
        assert db.session.scalars(select(RecoveryCode).where(RecoveryCode.user_id == user.id)).all() == []
    assert [e.subject_user_id for e in _events(app, "totp_disabled")] == [user.id]
    auth.logout()
    auth.login(user)  # the password alone again
    assert auth.is_signed_in_as(user)


def test_codes_and_secrets_are_never_logged(client, auth, make_user, captured_logs):
    user = make_user()
    auth.login(user)
    secret, codes = _enrol(client)
    auth.logout()
    _password_step(auth, user)
    _second_step(client, codes[0])
    text = captured_logs.buffer.getvalue().decode()
    assert secret not in text and not any(code in text for code in codes)


# REQUIRE_2FA_FOR_ROLES ------------------------------------------------------------------------


@pytest.fixture()
def policy_app(make_app, app):
    """Production's policy (REQUIRE_2FA_FOR_ROLES defaults to "admin" there)."""
    return make_app(require_2fa_for_roles="admin")


def test_production_and_staging_require_two_factor_of_admins_by_default(make_app, app):
    for app_env in ("production", "staging"):
        production = make_app(
            app_env=app_env,
            database_url="postgresql://127.0.0.1:1/nowhere",
            redis_url="redis://127.0.0.1:1/0",
            smtp_url="smtp://127.0.0.1:1",
            public_url="https://hearth.example.com",
        )
        assert production.extensions["hearth.settings"].require_2fa_for_roles == ["admin"]
    assert app.extensions["hearth.settings"].require_2fa_for_roles == []


def test_an_admin_without_a_second_factor_is_sent_to_set_one_up(policy_app, people, auth):
    browser = auth(policy_app.test_client())
    browser.login(people["admin"])
    for path in ("/admin/", "/account/", "/files/"):
        refused = browser.client.get(path)
        assert refused.status_code == 302 and refused.headers["Location"] == "/account/security", path
    assert browser.client.get("/account/security").status_code == 200
    _secret, _codes = _enrol(browser.client)
    assert browser.client.get("/admin/").status_code == 200
    assert browser.logout().status_code == 302


def test_the_policy_spares_other_roles_and_sign_out(policy_app, people, auth):
    user = auth(policy_app.test_client())
    user.login(people["user"])
    assert user.client.get("/account/").status_code == 200
    admin = auth(policy_app.test_client())
    admin.login(people["admin"])
    assert _post(admin.client, "/auth/logout").status_code == 302  # the token of the one page open to it
    assert admin.client.get("/account/").headers["Location"].startswith("/auth/login")


def test_the_api_refuses_password_tokens_to_an_admin_without_a_second_factor(policy_app, people, api_auth):
    client = policy_app.test_client()
    refused = api_auth(client).request_tokens(people["admin"])
    assert refused.status_code == 403 and refused.mimetype == "application/problem+json"
    assert refused.json["type"].endswith("/two-factor-setup-required") and "/account/security" in refused.json["detail"]
    assert api_auth(client).request_tokens(people["user"]).status_code == 200
    # A wrong password is still the same 401: the refusal reveals nothing before it.
    assert api_auth(client).request_tokens(people["admin"], "wrong password!!").status_code == 401


def test_an_admin_with_a_second_factor_gets_tokens_with_a_code(policy_app, people, auth, api_auth):
    browser = auth(policy_app.test_client())
    browser.login(people["admin"])
    secret, _codes = _enrol(browser.client)
    response = policy_app.test_client().post(
        "/api/v1/auth/token", json={"email": people["admin"].email, "password": PASSWORD, "otp": _code(secret, 1)}
    )
    assert response.status_code == 200


# API ----------------------------------------------------------------------------------------


def _token(client, user, **extra):
    return client.post("/api/v1/auth/token", json={"email": user.email, "password": PASSWORD, **extra})


def test_the_api_enrols_confirms_signs_in_with_otp_and_removes(client, make_user, api_auth, app):
    user = make_user(email="api2fa@example.com")
    headers = api_auth.headers(user)
    started = client.post("/api/v1/me/totp", headers=headers)
    assert started.status_code == 200 and started.json["otpauth_uri"].startswith("otpauth://totp/")
    secret = started.json["secret"]
    assert secret in started.json["otpauth_uri"] and _user(app, user.id).two_factor_enabled is False
    wrong = client.post("/api/v1/me/totp/confirm", json={"code": "12345x"}, headers=headers)
    assert wrong.status_code == 422
    confirmed = client.post("/api/v1/me/totp/confirm", json={"code": _code(secret)}, headers=headers)
    assert confirmed.status_code == 200 and len(confirmed.json["recovery_codes"]) == 10
    codes = confirmed.json["recovery_codes"]
    assert client.post("/api/v1/me/totp", headers=headers).status_code == 409

    missing = _token(client, user)
    assert missing.status_code == 401 and missing.json["type"].endswith("/otp-required")
    bad = _token(client, user, otp="999999" if _code(secret) != "999999" else "888888")
    assert bad.status_code == 401 and bad.json["type"].endswith("/invalid-otp")
    next_code = _code(secret, 1)  # computed once: a step boundary between two calls would give two codes
    good = _token(client, user, otp=next_code)
    assert good.status_code == 200
    replay = _token(client, user, otp=next_code)
    assert replay.status_code == 401 and replay.json["type"].endswith("/invalid-otp")
    assert _token(client, user, otp=codes[0]).status_code == 200
    assert _token(client, user, otp=codes[0]).status_code == 401

    fresh = bearer(good.json["access_token"])
    assert client.delete("/api/v1/me/totp", json={}, headers=fresh).status_code == 422
    assert client.delete("/api/v1/me/totp", json={"password": PASSWORD}, headers=fresh).status_code == 204
    assert _user(app, user.id).two_factor_enabled is False
    assert _token(client, user).status_code == 200


def test_wrong_otps_count_toward_the_lockout(client, make_user, api_auth):
    user = make_user(email="guess@example.com")
    headers = api_auth.headers(user)
    secret = client.post("/api/v1/me/totp", headers=headers).json["secret"]
    client.post("/api/v1/me/totp/confirm", json={"code": _code(secret)}, headers=headers)
    wrong = "123456" if _code(secret) != "123456" else "654321"
    for _ in range(5):
        assert _token(client, user, otp=wrong).status_code == 401
    assert _token(client, user, otp=_code(secret, 1)).status_code == 401  # locked: the generic refusal


# An administrator's reset (lost device and codes) ---------------------------------------------


def test_an_admin_resets_a_lost_second_factor_and_the_owner_is_told(client, auth, enrolled, people, app):
    user, _secret, _codes = enrolled
    auth.login(people["admin"])
    page = client.get(f"/admin/users/{user.id}").get_data(as_text=True)
    assert f"/admin/users/{user.id}/two-factor-reset" in page
    asked = _post(client, f"/admin/users/{user.id}/two-factor-reset", form_path=f"/admin/users/{user.id}")
    assert asked.status_code == 200 and _user(app, user.id).two_factor_enabled  # a confirmation first
    done = _post(
        client, f"/admin/users/{user.id}/two-factor-reset", form_path=f"/admin/users/{user.id}", confirmed="yes"
    )
    assert done.status_code in (200, 302)
    reset = _user(app, user.id)
    assert not reset.two_factor_enabled and reset.session_epoch >= 1
    with app.app_context():
        assert db.session.get(TotpCredential, user.id) is None
        assert db.session.scalar(select(RecoveryCode.id).where(RecoveryCode.user_id == user.id)) is None
        told = db.session.scalars(select(Notification.kind).where(Notification.user_id == user.id)).all()
    assert "security.two_factor_reset" in told
    [event] = _events(app, "two_factor_reset")
    assert (event.actor_user_id, event.subject_user_id) == (people["admin"].id, user.id)
    # The password alone signs in again (no second step), and a recovery code is worth nothing.
    auth.logout()
    response = auth.login(user)
    assert not response.headers["Location"].endswith("/auth/2fa")


def test_a_manager_cannot_reset_an_admin_s_second_factor(client, auth, people, app):
    admin = people["admin"]
    auth.login(admin)
    _enrol(client)
    auth.logout()
    auth.login(people["manager"])
    response = _post(
        client, f"/admin/users/{admin.id}/two-factor-reset", form_path=f"/admin/users/{admin.id}", confirmed="yes"
    )
    assert response.status_code in (302, 403)
    assert _user(app, admin.id).two_factor_enabled


def test_the_command_line_resets_a_second_factor(app, enrolled):
    user, _secret, _codes = enrolled
    result = app.test_cli_runner().invoke(args=["users", "reset-2fa", user.email])
    assert result.exit_code == 0, result.output
    assert not _user(app, user.id).two_factor_enabled
    again = app.test_cli_runner().invoke(args=["users", "reset-2fa", user.email])
    assert again.exit_code != 0 and "no second factor" in again.output
