"""Two-factor authentication in Chromium: a user sets up an authenticator app on
/account/security, reading the key from the page (no QR code is scanned: the test computes
the codes with pyotp), signs out, and signs back in with a code, then with a recovery code."""

from __future__ import annotations

import time

import pyotp
import pytest
from playwright.sync_api import expect

from tests.support import PASSWORD

pytestmark = pytest.mark.e2e


def _sign_in(page, live_server_url, email):
    page.goto(live_server_url + "/auth/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()


def _second_factor(page, code):
    expect(page.get_by_role("heading", name="Two-factor authentication")).to_be_visible()
    page.get_by_label("Code", exact=True).fill(code)
    page.get_by_role("button", name="Verify").click()
    expect(page.get_by_text("Welcome back, Two Factor.")).to_be_visible()


def _sign_out(page):
    page.get_by_role("button", name="Sign out").first.click()
    expect(page.get_by_text("You have been signed out.")).to_be_visible()


def test_a_user_sets_up_an_authenticator_app_and_signs_in_with_a_code_and_a_recovery_code(
    page, events, live_server_url, make_user
):
    user = make_user(email="e2e-2fa@example.com", display_name="Two Factor")
    _sign_in(page, live_server_url, user.email)
    expect(page.get_by_text("Welcome back, Two Factor.")).to_be_visible()

    page.goto(live_server_url + "/account/")
    page.get_by_role("link", name="Security").click()
    page.get_by_role("button", name="Set up an authenticator app").click()
    expect(page.get_by_role("img", name="QR code for your authenticator app")).to_be_visible()
    secret = page.locator("#totp-secret").inner_text().replace(" ", "")
    totp = pyotp.TOTP(secret)
    page.get_by_label("Code from the app").fill(totp.now())
    page.get_by_role("button", name="Turn on two-factor authentication").click()
    expect(page.get_by_text("Save these recovery codes now")).to_be_visible()
    codes = [text.strip() for text in page.locator("#recovery-codes li").all_inner_texts()]
    assert len(codes) == 10
    _sign_out(page)

    # The code of the next time step: the one that confirmed the app is used up.
    _sign_in(page, live_server_url, user.email)
    _second_factor(page, totp.at(time.time(), counter_offset=1))
    _sign_out(page)

    _sign_in(page, live_server_url, user.email)
    _second_factor(page, codes[0])
    expect(page.get_by_role("button", name="Sign out").first).to_be_visible()
    assert events.csp_violations == [] and events.page_errors == []
