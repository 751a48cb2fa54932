"""Revoking an API sign-in revokes its access tokens at once (issue 10, finding 14): each
access token names its refresh-token family (`fam`), checked against a cached per-family state
that every revocation invalidates; a cache hit costs no database query."""

from __future__ import annotations

import re
import time

import jwt
import pytest
from sqlalchemy import event

from app.extensions import db
from tests.support import ApiAuth


@pytest.fixture()
def api_user(make_user):
    return make_user(email="api@example.com", display_name="Integrator")


def _pair(client) -> dict:
    return ApiAuth(client).tokens("api@example.com")


def _me(client, access: str) -> int:
    return client.get("/api/v1/me", headers={"Authorization": f"Bearer {access}"}).status_code


def _claims(access: str) -> dict:
    return jwt.decode(access, options={"verify_signature": False})


def test_access_tokens_name_their_sign_in(client, api_user, app):
    from app.auth.models import RefreshToken

    pair = _pair(client)
    with app.app_context():
        family = db.session.scalar(db.select(RefreshToken.family_id))
    assert _claims(pair["access_token"])["fam"] == family


def test_api_logout_revokes_the_access_token_at_once(client, api_user):
    pair = _pair(client)
    other = _pair(client)  # another sign-in of the same user is not touched
    assert _me(client, pair["access_token"]) == 200  # checked once: the family's state is now cached
    assert client.post("/api/v1/auth/logout", json={"refresh_token": pair["refresh_token"]}).status_code == 204
    response = client.get("/api/v1/me", headers={"Authorization": f"Bearer {pair['access_token']}"})
    assert response.status_code == 401 and response.json["detail"] == "The access token has been revoked."
    assert _me(client, other["access_token"]) == 200


def test_refresh_token_reuse_revokes_every_access_token_of_the_sign_in(client, api_user):
    first = _pair(client)
    rotated = client.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}).json
    assert _me(client, first["access_token"]) == 200 and _me(client, rotated["access_token"]) == 200
    # the rotated-away refresh token comes back: it leaked, so the whole sign-in dies
    assert client.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}).status_code == 401
    assert _me(client, first["access_token"]) == 401
    assert _me(client, rotated["access_token"]) == 401


def test_revoking_the_api_sign_in_on_the_account_page_revokes_its_access_token(client, api_user, auth):
    pair = _pair(client)
    assert _me(client, pair["access_token"]) == 200
    auth.login("api@example.com")
    page = client.get("/account/").get_data(as_text=True)
    family = re.search(r"/account/api-sign-ins/([^/]+)/revoke", page).group(1)
    assert family == _claims(pair["access_token"])["fam"]
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    assert client.post(f"/account/api-sign-ins/{family}/revoke", data={"csrf_token": csrf}).status_code == 302
    assert _me(client, pair["access_token"]) == 401


def test_a_revocation_on_one_instance_reaches_the_others_at_once(make_app, api_user, app):
    """Two app instances on one database (and, on the services profile, one Redis): the one
    that did not revoke must not answer from its own cached state."""
    reader, writer = make_app().test_client(), make_app().test_client()
    pair = _pair(writer)
    assert _me(reader, pair["access_token"]) == 200
    assert writer.post("/api/v1/auth/logout", json={"refresh_token": pair["refresh_token"]}).status_code == 204
    # the bus delivers the drop asynchronously on the services profile: allow it milliseconds
    deadline = time.monotonic() + 2
    while _me(reader, pair["access_token"]) != 401:
        assert time.monotonic() < deadline, "the other instance still accepts a revoked token"
        time.sleep(0.02)


def test_tokens_without_a_live_family_of_their_own_user_are_refused(client, api_user, make_user, app):
    settings = app.extensions["hearth.settings"]
    someone = make_user(email="someone@example.com")
    family = _claims(_pair(client)["access_token"])["fam"]
    now = int(time.time())
    base = {"iss": "hearth", "aud": "hearth-api", "iat": now, "exp": now + 600, "jti": "x"}

    def forge(**claims) -> str:
        return jwt.encode({**base, **claims}, settings.jwt_secret, algorithm="HS256", headers={"typ": "at+jwt"})

    assert _me(client, forge(sub=str(api_user.id), epoch=0, fam=family)) == 200  # the control
    assert _me(client, forge(sub=str(api_user.id), epoch=0)) == 401  # no family: cannot be revoked
    assert _me(client, forge(sub=str(api_user.id), epoch=0, fam="f" * 36)) == 401  # unknown family
    assert _me(client, forge(sub=str(someone.id), epoch=0, fam=family)) == 401  # someone else's
    assert _me(client, forge(sub=str(api_user.id), epoch=0, fam=["not", "a", "string"])) == 401


def test_a_cache_hit_costs_no_database_query(client, api_user, app):
    from app.auth.cache import family_accepted

    family = _claims(_pair(client)["access_token"])["fam"]
    statements: list[str] = []
    with app.app_context():
        engine = db.engine

        def count(conn, cursor, statement, parameters, context, executemany):
            statements.append(statement)

        event.listen(engine, "before_cursor_execute", count)
        try:
            assert family_accepted(family, api_user.id)  # a miss: one query
            missed = len(statements)
            assert family_accepted(family, api_user.id)  # a hit
            assert not family_accepted(family, api_user.id + 1)
        finally:
            event.remove(engine, "before_cursor_execute", count)
    assert missed == 1 and len(statements) == 1
