"""API authentication: token pairs, rotation with reuse detection, revocation, JWT checks."""

from __future__ import annotations

import time

import jwt
import pytest

from app.extensions import db
from app.users.models import User
from tests.support import PASSWORD


def _me(client, access):
    return client.get("/api/v1/me", headers={"Authorization": f"Bearer {access}"})


@pytest.fixture()
def api_user(make_user):
    return make_user(email="api@example.com", display_name="Integrator", roles=("manager",))


def test_a_token_pair_is_issued_for_valid_credentials(client, api_user, app, api_auth):
    response = api_auth.request_tokens("api@example.com")
    assert response.status_code == 200
    body = response.json
    assert body["token_type"] == "Bearer" and body["expires_in"] == 15 * 60
    assert len(body["refresh_token"]) >= 43  # 256 bits, base64url
    settings = app.extensions["hearth.settings"]
    claims = jwt.decode(body["access_token"], settings.jwt_secret, algorithms=["HS256"], audience="hearth-api")
    assert {"iss", "aud", "sub", "iat", "exp", "jti"} <= set(claims)
    assert claims["exp"] - claims["iat"] == 900 and claims["sub"] == str(api_user.id)
    assert jwt.get_unverified_header(body["access_token"])["alg"] == "HS256"
    me = _me(client, body["access_token"])
    assert me.status_code == 200
    assert me.json["email"] == "api@example.com" and me.json["roles"] == ["manager"]
    assert "users:read" in me.json["permissions"] and "users:delete" not in me.json["permissions"]


def test_refresh_tokens_are_stored_only_as_hashes(client, api_user, app, api_auth):
    refresh = api_auth.request_tokens("api@example.com").json["refresh_token"]
    from app.auth.models import RefreshToken

    with app.app_context():
        stored = db.session.scalars(db.select(RefreshToken.token_hash)).all()
    assert refresh not in stored and len(stored) == 1 and len(stored[0]) == 64


def test_wrong_credentials_are_a_problem_401_with_www_authenticate(client, api_user, api_auth):
    for email, password in (("api@example.com", "wrong password!"), ("nobody@example.com", PASSWORD)):
        response = api_auth.request_tokens(email, password)
        assert response.status_code == 401
        assert response.mimetype == "application/problem+json"
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert response.json["detail"] == "Invalid email or password."


def test_a_refused_api_sign_in_still_counts_toward_the_lockout(client, api_user, app, api_auth):
    """The failure is committed in a unit of its own before the 401, not rolled back with it."""
    from app.audit.models import AuditEvent
    from app.auth.models import LoginFailures

    assert api_auth.request_tokens("api@example.com", "wrong password!").status_code == 401
    assert api_auth.request_tokens("nobody@example.com", PASSWORD).status_code == 401
    with app.app_context():
        [pair] = db.session.scalars(db.select(LoginFailures)).all()
        assert pair.user_id == api_user.id and pair.failures == 1
        assert db.session.get(User, api_user.id).failed_login_count == 1
        failed = db.session.scalars(db.select(AuditEvent).where(AuditEvent.event == "login_failed")).all()
        assert sorted(e.data.get("reason") for e in failed) == ["bad_password", "unknown_email"]


def test_missing_fields_are_422(client):
    response = client.post("/api/v1/auth/token", json={"email": "x@example.com"})
    assert response.status_code == 422 and response.json["errors"][0]["field"] == "password"


def test_refresh_rotates_and_reuse_revokes_the_family(client, api_user, api_auth):
    first = api_auth.request_tokens("api@example.com").json
    second = client.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert second.status_code == 200
    rotated = second.json
    assert rotated["refresh_token"] != first["refresh_token"]
    # the old refresh token presented again: reuse -> the whole family dies
    replay = client.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert replay.status_code == 401 and replay.headers["WWW-Authenticate"] == "Bearer"
    assert client.post("/api/v1/auth/refresh", json={"refresh_token": rotated["refresh_token"]}).status_code == 401


def test_logout_revokes_the_family(client, api_user, api_auth):
    pair = api_auth.request_tokens("api@example.com").json
    assert client.post("/api/v1/auth/logout", json={"refresh_token": pair["refresh_token"]}).status_code == 204
    assert client.post("/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]}).status_code == 401


def test_unknown_refresh_tokens_are_401(client):
    response = client.post("/api/v1/auth/refresh", json={"refresh_token": "x" * 43})
    assert response.status_code == 401 and response.mimetype == "application/problem+json"


def test_disabling_or_signing_out_everywhere_kills_unexpired_access_tokens(client, api_user, app, api_auth):
    from app.auth.service import sign_out_everywhere

    access = api_auth.request_tokens("api@example.com").json["access_token"]
    assert _me(client, access).status_code == 200
    with app.app_context():
        sign_out_everywhere(db.session.get(User, api_user.id), reason="test")
    assert _me(client, access).status_code == 401
    fresh = api_auth.request_tokens("api@example.com").json["access_token"]
    with app.app_context():
        db.session.get(User, api_user.id).is_active_account = False
        db.session.commit()
    assert _me(client, fresh).status_code == 401


def _forge(app, **overrides):
    settings = app.extensions["hearth.settings"]
    now = int(time.time())
    claims = {
        "iss": "hearth",
        "aud": "hearth-api",
        "sub": "1",
        "iat": now,
        "exp": now + 600,
        "jti": "x",
        "epoch": 0,
        **overrides.pop("claims", {}),
    }
    key = overrides.pop("key", settings.jwt_secret)
    return jwt.encode(
        claims, key, algorithm=overrides.pop("alg", "HS256"), headers=overrides.pop("headers", {"typ": "at+jwt"})
    )


def test_alg_none_wrong_audience_wrong_key_and_expired_tokens_are_refused(client, api_user, app, api_auth):
    import base64
    import json

    def b64(data):
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    now = int(time.time())
    # A live sign-in for the forged tokens: each refused one below fails for its own reason.
    access = api_auth.tokens("api@example.com")["access_token"]
    family = jwt.decode(access, options={"verify_signature": False})["fam"]
    live = {"sub": str(api_user.id), "fam": family}
    claims = {
        "iss": "hearth",
        "aud": "hearth-api",
        "sub": str(api_user.id),
        "iat": now,
        "exp": now + 600,
        "jti": "x",
        "epoch": 0,
        "fam": family,
    }
    alg_none = f"{b64({'alg': 'none', 'typ': 'at+jwt'})}.{b64(claims)}."
    good = _forge(app, claims=live)
    assert _me(client, good).status_code == 200  # the forging helper itself makes valid tokens
    refused = {
        "alg none": alg_none,
        "wrong audience": _forge(app, claims={**live, "aud": "someone-else"}),
        "wrong issuer": _forge(app, claims={**live, "iss": "evil"}),
        "wrong key": _forge(app, claims=live, key="k" * 48),
        "expired": _forge(app, claims={**live, "iat": now - 3600, "exp": now - 60}),
        "no jti": jwt.encode(
            {k: v for k, v in claims.items() if k != "jti"},
            app.extensions["hearth.settings"].jwt_secret,
            algorithm="HS256",
            headers={"typ": "at+jwt"},
        ),
        "wrong typ": _forge(app, claims=live, headers={"typ": "JWT"}),
        # an attacker's key offered in the header (jwk/jku) is never used to verify
        "embedded jwk": _forge(
            app,
            claims=live,
            key="a" * 48,
            headers={"typ": "at+jwt", "jwk": {"kty": "oct", "k": "YWFh"}, "jku": "https://evil"},
        ),
        "garbage": "not.a.token",
    }
    for label, token in refused.items():
        response = _me(client, token)
        assert response.status_code == 401, label
        assert response.headers["WWW-Authenticate"] == "Bearer", label


def test_the_api_never_accepts_the_session_cookie(client, api_user, auth):
    auth.login("api@example.com")
    assert "Integrator" in client.get("/").get_data(as_text=True)  # signed in in the browser
    assert client.get("/api/v1/me").status_code == 401  # but the API wants a bearer token


def test_the_token_endpoint_is_rate_limited_per_ip(client, api_auth):
    statuses = [api_auth.request_tokens("x@example.com", "whatever!").status_code for _ in range(11)]
    assert statuses[:10] == [401] * 10 and statuses[10] == 429


def test_auth_endpoints_are_documented_with_their_security(client):
    spec = client.get("/api/openapi.json").json
    assert spec["paths"]["/api/v1/me"]["get"]["security"] == [{"bearerAuth": []}]
    assert "401" in spec["paths"]["/api/v1/me"]["get"]["responses"]
    assert "security" not in spec["paths"]["/api/v1/auth/token"]["post"]
    assert spec["paths"]["/api/v1/auth/token"]["post"]["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/TokenRequest"
    }


def test_a_token_verified_before_is_still_refused_once_expired_or_altered(client, api_user, monkeypatch, api_auth):
    import app.auth.tokens as tokens

    access = api_auth.request_tokens("api@example.com").json["access_token"]
    assert _me(client, access).status_code == 200  # verified once, remembered by the app
    head, payload, signature = access.split(".")
    altered = f"{head}.{payload}.{signature[:-2]}{'AA' if signature[-2:] != 'AA' else 'BA'}"
    assert _me(client, altered).status_code == 401  # other bytes: verified in full, and refused

    class Later:
        @staticmethod
        def time() -> float:
            return time.time() + 15 * 60 + tokens.LEEWAY_SECONDS + 1

    monkeypatch.setattr(tokens, "time", Later)
    assert _me(client, access).status_code == 401


def test_an_api_sign_in_is_one_commit(client, api_user, app, api_auth):
    from sqlalchemy import event

    with app.app_context():
        engine = db.engine
    commits: list[int] = []

    def on_commit(connection) -> None:
        commits.append(1)

    event.listen(engine, "commit", on_commit)
    try:
        assert api_auth.request_tokens("api@example.com").status_code == 200
    finally:
        event.remove(engine, "commit", on_commit)
    assert len(commits) == 1  # last_login_at, the refresh token and both audit rows together
