"""The administrator `make run` creates signs in and out in a real browser."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from app.extensions import db

pytestmark = pytest.mark.e2e


@pytest.fixture()
def admin(app):
    from app.users.service import ensure_admin

    with app.app_context():
        account = ensure_admin(None, None)  # what `make run` does with no ADMIN_* set
        email, password = account.user.email, account.generated_password
        db.session.remove()
    return email, password


def test_the_seeded_admin_signs_in_and_out(page, events, live_server_url, admin):
    email, password = admin
    page.goto(live_server_url + "/")
    page.get_by_role("link", name="Sign in").first.click()
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_text("Welcome back, Administrator.")).to_be_visible()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_text("You have been signed out.")).to_be_visible()
    assert not events.csp_violations and not events.console_errors


def test_a_wrong_password_shows_a_form_error(page, events, live_server_url, admin):
    email, _ = admin
    page.goto(live_server_url + "/auth/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill("definitely not it")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text("Invalid email or password.")
    assert not events.csp_violations
