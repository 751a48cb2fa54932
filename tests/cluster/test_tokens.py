"""API tokens across instances: a pair issued by one instance works on the other, rotation
and reuse detection hold whichever instance sees the reuse, and a revoked sign-in is refused
by every instance within a second. Access tokens are checked against their sign-in's state
(`fam`), cached in each process's L1 and dropped everywhere over the Redis bus when revoked,
so the tests first warm that cache on the instance that must then refuse."""

from __future__ import annotations

import base64
import json
import re

from tests.cluster.clients import poll

WITHIN = 1.0  # seconds: the bound for a revocation to reach every instance
WARM_REQUESTS = 8  # fresh connections: enough to reach each gunicorn worker of an instance


def _warm(api, token: str) -> None:
    """Use the token on every worker of both instances, so each has the sign-in cached as live."""
    for _ in range(WARM_REQUESTS):
        for instance in (0, 1):
            assert api.me(instance, token) == 200


def _refused_everywhere_within(api, token: str, within: float = WITHIN) -> float | None:
    return poll(lambda: api.me(0, token) == 401 and api.me(1, token) == 401, within, consecutive=3)


def test_an_access_token_from_one_instance_works_on_the_other(api, make_user):
    account = make_user()
    client = api()
    pair = client.tokens(0, account.email)
    me = client.call(1, "GET", "/api/v1/me", pair["access_token"])
    assert me.status_code == 200 and me.json()["email"] == account.email
    assert client.me(1, "not-a-token") == 401  # the control: instance 1 does check tokens


def test_refresh_rotates_on_the_other_instance_and_reuse_there_revokes_the_sign_in(api, make_user):
    account = make_user()
    client = api()
    first = client.tokens(0, account.email)
    rotated = client.refresh(1, first["refresh_token"])
    assert rotated.status_code == 200
    second = rotated.json()
    assert second["refresh_token"] != first["refresh_token"]
    _warm(client, second["access_token"])

    # The used refresh token presented again, to the instance that did not rotate it.
    assert client.refresh(0, first["refresh_token"]).status_code == 401
    # Reuse detection revoked the whole sign-in: the newest refresh token fails on both ...
    assert client.refresh(1, second["refresh_token"]).status_code == 401
    assert client.refresh(0, second["refresh_token"]).status_code == 401
    # ... and so do its access tokens, on every worker of both instances, within a second.
    took = _refused_everywhere_within(client, second["access_token"])
    assert took is not None, "the revoked sign-in's access token was still accepted after 1 s"
    # The control: another sign-in of the same account is untouched.
    assert client.me(1, client.tokens(1, account.email)["access_token"]) == 200


def test_an_api_sign_in_revoked_on_the_account_page_of_one_instance_fails_on_both_within_a_second(
    api, browser, make_user
):
    account = make_user()
    client = api()
    pair = client.tokens(1, account.email)
    other = client.tokens(1, account.email)  # a second sign-in, which must keep working
    _warm(client, pair["access_token"])
    _warm(client, other["access_token"])

    ada = browser()
    assert ada.login(0, account.email).status_code == 302
    page = ada.get(0, "/account/").text
    families = set(re.findall(r"/account/api-sign-ins/([^/\"]+)/revoke", page))
    assert len(families) == 2  # the two sign-ins, made on instance 1
    family = _family_of(pair["access_token"])
    assert family in families
    revoked = ada.post_form(0, f"/account/api-sign-ins/{family}/revoke", {}, csrf_from="/account/")
    assert revoked.status_code == 302

    took = _refused_everywhere_within(client, pair["access_token"])
    assert took is not None, "the revoked API sign-in still worked after 1 s"
    assert client.refresh(1, pair["refresh_token"]).status_code == 401
    assert client.me(0, other["access_token"]) == 200 and client.me(1, other["access_token"]) == 200


def test_an_api_logout_on_one_instance_refuses_the_access_token_on_the_other_within_a_second(api, make_user):
    account = make_user()
    client = api()
    pair = client.tokens(0, account.email)
    _warm(client, pair["access_token"])
    logout = client.call(1, "POST", "/api/v1/auth/logout", json={"refresh_token": pair["refresh_token"]})
    assert logout.status_code == 204
    took = _refused_everywhere_within(client, pair["access_token"])
    assert took is not None, "the logged-out access token was still accepted after 1 s"


def _family_of(access_token: str) -> str:
    """The sign-in (refresh-token family) an access token names in its `fam` claim."""
    payload = access_token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return claims["fam"]
