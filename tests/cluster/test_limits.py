"""Rate limits and the login lockout count across instances.

The rules (app/auth/routes.py, app/api/v1/auth.py, app/auth/lockout.py, app/config.py):
- the sign-in routes (`POST /auth/login`, `POST /api/v1/auth/token`) allow 10 requests a minute
  per client address, counted in Redis: the 11th from one address is 429, whichever instance
  gets it (the issue's "11 failures spread over both instances");
- LOGIN_LOCKOUT_THRESHOLD (5) wrong passwords from one client lock that client out of that
  account (its right password is refused too), counted in the database;
- LOGIN_ACCOUNT_LOCKOUT_THRESHOLD (20) wrong passwords from any clients lock the account for
  everyone (a distributed attack).
Each test spreads the attempts over both instances, so per-instance counting would stay
below every threshold and the lock would not happen.
"""

from __future__ import annotations

import uuid

import pytest

from tests.cluster.clients import Browser

SIGN_IN_LIMIT = 10  # per minute per client address
CLIENT_THRESHOLD = 5  # LOGIN_LOCKOUT_THRESHOLD's default
ACCOUNT_THRESHOLD = 20  # LOGIN_ACCOUNT_LOCKOUT_THRESHOLD's default
WRONG = "not the password at all, no"


def _form_attempt(client: Browser, instance: int, email: str, password: str) -> int:
    return client.login(instance, email, password).status_code


def _api_attempt(client, instance: int, email: str, password: str) -> int:
    return client.token_response(instance, email, password).status_code


@pytest.mark.parametrize("channel", ["browser", "api"])
def test_the_sign_in_limit_is_one_budget_across_both_instances(channel, api, browser):
    client = browser() if channel == "browser" else api()
    attempt = _form_attempt if channel == "browser" else _api_attempt
    nobody = f"nobody-{uuid.uuid4().hex[:8]}@cluster.example.org"  # no account: no lockout involved
    statuses = [attempt(client, i % 2, nobody, WRONG) for i in range(SIGN_IN_LIMIT)]
    assert statuses == [401] * SIGN_IN_LIMIT  # five on each instance: per instance, far from 10
    assert attempt(client, 0, nobody, WRONG) == 429
    assert attempt(client, 1, nobody, WRONG) == 429
    # The control: the budget is this address's; another client still gets an answer.
    other = browser() if channel == "browser" else api()
    assert attempt(other, 1, nobody, WRONG) == 401


def test_five_failures_spread_over_both_instances_lock_that_client_out_everywhere(api, browser, make_user):
    locked, spared = make_user(), make_user()
    attacker = api()
    for i in range(CLIENT_THRESHOLD):  # 3 on instance 0, 2 on instance 1
        assert _api_attempt(attacker, i % 2, locked.email, WRONG) == 401
    # The right password from that client is now refused by both instances, on both channels.
    assert _api_attempt(attacker, 0, locked.email, locked.password) == 401
    assert _api_attempt(attacker, 1, locked.email, locked.password) == 401
    same_address = Browser(attacker.host, attacker.urls, ip=attacker.ip)
    assert _form_attempt(same_address, 1, locked.email, locked.password) == 401
    # Only that client: the owner elsewhere signs in.
    assert _api_attempt(api(), 1, locked.email, locked.password) == 200
    # The control: one failure fewer locks nothing (another address: this one's sign-in budget is spent).
    guesser = api()
    for i in range(CLIENT_THRESHOLD - 1):
        assert _api_attempt(guesser, i % 2, spared.email, WRONG) == 401
    assert _api_attempt(guesser, 1, spared.email, spared.password) == 200


def test_twenty_failures_from_many_clients_over_both_instances_lock_the_account(api, make_user):
    locked, spared = make_user(), make_user()
    for i in range(ACCOUNT_THRESHOLD):  # each from an address of its own, alternating instances
        assert _api_attempt(api(), i % 2, locked.email, WRONG) == 401
    assert _api_attempt(api(), 0, locked.email, locked.password) == 401
    assert _api_attempt(api(), 1, locked.email, locked.password) == 401
    # The control: nineteen do not.
    for i in range(ACCOUNT_THRESHOLD - 1):
        assert _api_attempt(api(), i % 2, spared.email, WRONG) == 401
    assert _api_attempt(api(), 1, spared.email, spared.password) == 200
