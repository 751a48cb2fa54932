"""The bell in a real browser: htmx polls it, a poll that finds nothing new is a 304, and a new
notification shows up without a reload; opening it from /notifications marks it read."""

from __future__ import annotations

import time

import pytest
from playwright.sync_api import expect

from app.core.database import utcnow
from app.core.unit_of_work import unit_of_work
from app.notifications.service import notify

pytestmark = pytest.mark.e2e

PASSWORD = "correct horse battery staple"


def test_the_bell_count_rises_live_and_unchanged_polls_cost_a_304(
    page, events, live_server_url, app, make_user, captured_logs
):
    user = make_user(email="e2e-bell@example.com", display_name="Bell Reader", email_verified_at=utcnow())
    polls: list[tuple[int, str | None]] = []  # (status, If-None-Match sent) of each bell poll
    page.on(
        "response",
        lambda response: (
            "/notifications/bell" in response.url
            and polls.append((response.status, response.request.all_headers().get("if-none-match")))
        ),
    )
    page.goto(live_server_url + "/auth/login")
    page.get_by_label("Email").fill(user.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_text("Welcome back, Bell Reader.")).to_be_visible()
    page.goto(live_server_url + "/files/")
    bell = page.locator("#nav-bell")
    expect(bell).to_have_attribute("aria-label", "Notifications")
    # htmx polls every 20 s; the second poll with nothing new revalidates the browser's copy: 304.
    deadline = time.monotonic() + 60
    while len(polls) < 2 and time.monotonic() < deadline:
        page.wait_for_timeout(500)
    assert len(polls) >= 2, polls
    assert polls[1][1], polls  # the browser kept the first answer and sent its ETag
    # The browser shows its kept copy (Playwright sees 200); the server's log has the 304.
    answered = [line["status"] for line in captured_logs.events("request") if line["path"] == "/notifications/bell"]
    assert answered[:2] == [200, 304], answered
    with app.app_context(), unit_of_work():
        notify(user.id, "upload.ready", params={"filename": "holiday.jpg"}, link="/files/")
    expect(page.locator("#nav-bell")).to_have_attribute("aria-label", "Notifications, 1 unread", timeout=30_000)
    expect(page.locator("#nav-bell .nav-bell__count")).to_have_text("1")
    page.locator("#nav-bell").click()
    page.get_by_role("button", name="File ready: holiday.jpg", exact=True).click()
    expect(page).to_have_url(live_server_url + "/files/")
    expect(page.locator("#nav-bell")).to_have_attribute("aria-label", "Notifications")
    events.assert_clean()
