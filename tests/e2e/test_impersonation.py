"""Impersonation in Chromium: an administrator views the site as a user from the user's admin
page, sees the banner on every page (and it fits a phone), is refused an edit (the profile
form answers 403), stops from the banner and is back as themselves."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from app.core.database import utcnow
from tests.support import PASSWORD

pytestmark = pytest.mark.e2e


def _sign_in(page, email: str) -> None:
    page.goto("/auth/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()


def test_an_admin_views_as_a_user_is_refused_an_edit_and_stops(new_page, app, make_user):
    make_user(email="boss@example.com", display_name="Boss", role="admin", email_verified_at=utcnow())
    viewed = make_user(email="casey@example.com", display_name="Casey", email_verified_at=utcnow())
    page, events = new_page(viewport={"width": 1280, "height": 900})
    _sign_in(page, "boss@example.com")

    page.goto(f"/admin/users/{viewed.id}")
    page.get_by_role("button", name="View as Casey").click()

    banner = page.get_by_role("region", name="Viewing as another user")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("Viewing as Casey (casey@example.com), read-only.")
    page.goto("/account/")
    expect(banner).to_be_visible()
    expect(page.get_by_label("Display name")).to_have_value("Casey")
    page.set_viewport_size({"width": 390, "height": 800})
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    expect(page.get_by_role("button", name="Stop viewing as Casey")).to_be_visible()
    page.set_viewport_size({"width": 1280, "height": 900})

    page.get_by_label("Display name").fill("Changed by the admin")
    with page.expect_navigation() as refused:
        page.get_by_role("button", name="Save profile").click()
    assert refused.value.status == 403
    expect(page.get_by_text("read-only", exact=False).first).to_be_visible()

    page.get_by_role("button", name="Stop viewing as Casey").click()
    expect(page).to_have_url(re.compile(rf"/admin/users/{viewed.id}$"))
    expect(page.get_by_role("region", name="Viewing as another user")).to_have_count(0)
    page.goto("/account/")
    expect(page.get_by_label("Display name")).to_have_value("Boss")
    page.goto(f"/admin/users/{viewed.id}")
    expect(page.locator("#user-roles")).to_be_visible()  # the admin's own pages again
    assert events.csp_violations == [] and events.page_errors == []


@pytest.mark.parametrize("javascript", [True, False])
def test_a_stale_admin_confirms_it_is_them_and_the_action_goes_ahead(new_page, app, make_user, javascript):
    """Step-up in the browser: the role form, re-authentication, then the same form posted
    again (at once with JavaScript, by the Continue button without)."""
    from datetime import timedelta

    from sqlalchemy import update

    from app.auth.models import UserSession
    from app.extensions import db

    boss = make_user(email="boss@example.com", display_name="Boss", role="admin", email_verified_at=utcnow())
    viewed = make_user(email="casey@example.com", display_name="Casey", email_verified_at=utcnow())
    page, events = new_page(java_script_enabled=javascript)
    _sign_in(page, "boss@example.com")
    with app.app_context():
        db.session.execute(
            update(UserSession)
            .where(UserSession.user_id == boss.id)
            .values(authenticated_at=utcnow() - timedelta(hours=1))
        )
        db.session.commit()

    page.goto(f"/admin/users/{viewed.id}")
    page.get_by_role("checkbox", name="viewer").check()
    page.get_by_role("button", name="Save roles").click()
    expect(page.get_by_role("heading", name="Confirm it is you")).to_be_visible()
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Confirm with your password").click()
    if not javascript:
        page.get_by_role("button", name="Continue").click()

    expect(page).to_have_url(re.compile(rf"/admin/users/{viewed.id}$"))
    expect(page.locator("#user-roles")).to_have_text("user, viewer")
    assert events.csp_violations == [] and events.page_errors == []
