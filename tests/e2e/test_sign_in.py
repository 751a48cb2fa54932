"""Signing in and the first run in a real browser: the administrator `make run` creates, and a
newcomer from sign-up through the development mailbox to their files."""

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
    assert page.url == live_server_url + "/admin/"  # staff land on the admin
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


def test_first_run_sign_up_follow_the_emailed_link_and_land_signed_in(new_page, dev_server):
    """Sign up, open the message in /dev/mail, click its link: the address is confirmed, the
    newcomer is signed in on their account page, and their files are one click away."""
    page, events = new_page()
    page.goto(dev_server + "/auth/signup")
    page.get_by_label("Email").fill("newcomer@example.com")
    page.get_by_label("Display name").fill("Newcomer")
    page.get_by_label("Password").fill("a long and unguessable passphrase")
    page.get_by_role("button", name="Create account").click()
    expect(page.get_by_role("heading", name="Check your inbox")).to_be_visible()
    page.goto(dev_server + "/dev/mail/")
    page.get_by_role("link", name="Confirm your email address for Hearth").click()
    page.get_by_role("link", name="Confirm my email address").click()
    expect(page.get_by_text("Email confirmed")).to_be_visible()
    assert page.url == dev_server + "/account/"
    expect(page.get_by_role("button", name="Sign out", exact=True)).to_be_visible()
    expect(page.get_by_label("Email", exact=True)).to_have_value("newcomer@example.com")
    page.get_by_role("link", name="Files", exact=True).first.click()
    assert page.url == dev_server + "/files/"
    expect(page.get_by_text("Upload a file")).to_be_visible()
    assert not events.csp_violations and not events.page_errors
