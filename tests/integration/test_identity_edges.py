"""Edges of strong identity (issue 16) found by review: an emailed link never stands in for
the second factor; other scripts' digits in a code are a form error, not a 500; an
administrator viewing as someone never sees a secret of theirs; an API key cannot move the
account to another address."""

from __future__ import annotations

import re

import pyotp
import pytest

from app.apikeys import service as api_keys
from app.auth import second_factor
from app.auth.emailed_tokens import VERIFY_EMAIL, issue_token
from app.extensions import db
from app.users.models import User
from tests.support import PASSWORD, bearer, csrf_token


def _with_app(app, user_id: int) -> str:
    """Give the user a confirmed authenticator app; its secret."""
    with app.test_request_context():
        user = db.session.get(User, user_id)
        enrolment = second_factor.begin_totp_enrolment(user)
        second_factor.confirm_totp(user, pyotp.TOTP(enrolment.secret).now())
        return enrolment.secret


def test_an_email_link_confirms_but_does_not_sign_in_an_account_with_two_factor(app, client, make_user):
    user = make_user(email="linked@example.com", email_verified_at=None)
    _with_app(app, user.id)
    with app.app_context():
        raw = issue_token(user.id, VERIFY_EMAIL, email="linked@example.com")
        db.session.commit()
    response = client.get(f"/auth/verify/{raw}")
    assert response.status_code == 302 and response.headers["Location"].endswith("/auth/login")
    assert client.get("/account/security").status_code == 302  # still signed out
    with app.app_context():
        assert db.session.get(User, user.id).email_verified_at is not None


@pytest.mark.parametrize("code", ["١٢٣٤٥٦", "１２３４５６", "12345６"])
def test_other_scripts_digits_are_a_wrong_code_not_a_500(app, client, auth, api_auth, make_user, code):
    user = make_user(email="digits@example.com")
    _with_app(app, user.id)
    response = auth.login(user)
    assert response.headers["Location"].endswith("/auth/2fa")
    step = client.post("/auth/2fa", data={"csrf_token": csrf_token(client, "/auth/2fa"), "code": code})
    assert step.status_code == 422
    token = api_auth.client.post("/api/v1/auth/token", json={"email": user.email, "password": PASSWORD, "otp": code})
    assert token.status_code in (401, 422), token.get_json()


def test_an_administrator_viewing_as_a_user_never_sees_their_unconfirmed_app_secret(app, people, target, auth):
    with app.test_request_context():
        enrolment = second_factor.begin_totp_enrolment(db.session.get(User, target.id))
    admin = auth(app.test_client()).signed_in("admin@example.com")
    started = admin.post(f"/admin/users/{target.id}/impersonate", data={"csrf_token": csrf_token(admin, "/admin/")})
    assert started.status_code == 302
    page = admin.get("/account/security")
    assert page.status_code == 200
    assert enrolment.secret not in page.get_data(as_text=True)
    # The user themself still sees it.
    own = auth(app.test_client()).signed_in(target.email)
    assert enrolment.secret in own.get("/account/security").get_data(as_text=True)


def test_an_api_key_cannot_change_the_email_address(app, client, make_user):
    user = make_user(email="scripted@example.com")
    with app.test_request_context():
        _row, key = api_keys.create(db.session.get(User, user.id), "script", ["self:read", "self:write"], 30)
    moved = client.patch(
        "/api/v1/me",
        json={"email": "elsewhere@example.com", "current_password": PASSWORD},
        headers=bearer(key),
    )
    assert moved.status_code == 403 and moved.get_json()["type"].endswith("/api-key-not-allowed")
    renamed = client.patch("/api/v1/me", json={"display_name": "Script owner"}, headers=bearer(key))
    assert renamed.status_code == 200, renamed.get_json()


def test_turning_two_factor_on_ends_every_other_sign_in(app, client, auth, api_auth, make_user):
    user = make_user(email="careful@example.com")
    other_browser = auth(app.test_client()).signed_in(user)
    tokens = api_auth.tokens(user)
    auth.login(user)
    assert client.post("/account/security/totp", data={"csrf_token": csrf_token(client, "/account/security")})
    page = client.get("/account/security").get_data(as_text=True)
    secret = re.search(r'<code id="totp-secret">([A-Z2-7]+)</code>', page).group(1)
    confirmed = client.post(
        "/account/security/totp/confirm",
        data={"csrf_token": csrf_token(client, "/account/security"), "code": pyotp.TOTP(secret).now()},
    )
    assert confirmed.status_code == 302
    # This browser goes on; the other one and the API sign-in from before proved only the password.
    assert client.get("/account/security").status_code == 200
    assert other_browser.get("/account/security").status_code == 302
    refreshed = api_auth.client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert refreshed.status_code == 401
    assert api_auth.client.get("/api/v1/me", headers=bearer(tokens["access_token"])).status_code == 401


def test_turning_two_factor_on_through_the_api_keeps_that_sign_in(app, client, api_auth, make_user):
    user = make_user(email="scripted2fa@example.com")
    older = api_auth.tokens(user)
    tokens = api_auth.tokens(user)
    headers = bearer(tokens["access_token"])
    begun = client.post("/api/v1/me/totp", headers=headers)
    assert begun.status_code in (200, 201), begun.get_json()
    code = pyotp.TOTP(begun.get_json()["secret"]).now()
    assert client.post("/api/v1/me/totp/confirm", json={"code": code}, headers=headers).status_code == 200
    assert client.get("/api/v1/me", headers=headers).status_code == 200
    assert client.get("/api/v1/me", headers=bearer(older["access_token"])).status_code == 401
