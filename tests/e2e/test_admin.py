"""The admin area in Chromium, signed in as the administrator `make run` seeds: search, role
change seen by that user, disabling, retrying a failed job without a reload, back/forward
over filtered tables, the bulk role picker that never assumes a role, and a screenshot of every
admin page in test-artifacts/admin/."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest
from playwright.sync_api import expect

from app.core.database import utcnow
from app.extensions import db
from app.jobs.models import Job, JobStatus

pytestmark = pytest.mark.e2e

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "admin"
PASSWORD = "correct horse battery staple"


@pytest.fixture()
def admin(app):
    from app.users.service import ensure_admin

    with app.app_context():
        account = ensure_admin(None, None)  # what `make run` does with no ADMIN_* set
        email, password = account.user.email, account.generated_password
        db.session.remove()
    return email, password


def _sign_in(page, email, password):
    page.goto("/auth/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()


def _failed_job(app, user_id=None) -> str:
    job_id = str(uuid.uuid4())
    with app.app_context():
        db.session.add(
            Job(
                id=job_id,
                queue="emails",
                task="tasks.emails.send_email",
                payload={
                    "to": "zed@example.com",
                    "template": "test_message",
                    "context": {"address": "zed@example.com"},
                },
                args_summary={"to": "zed@example.com", "template": "test_message"},
                status=JobStatus.failed,
                attempts=4,
                max_attempts=4,
                user_id=user_id,
                error="SMTPServerDisconnected: Connection unexpectedly closed",
                traceback="Traceback (most recent call last):\n  ...\nSMTPServerDisconnected",
                finished_at=utcnow(),
            )
        )
        db.session.commit()
    return job_id


def _shot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_find_a_user_change_their_role_and_it_takes_effect_for_them(new_page, admin, make_user):
    zed = make_user(email="zed@example.com", display_name="Zed Example")
    make_user(email="amy@example.com", display_name="Amy Example")
    page, events = new_page()
    _sign_in(page, *admin)
    page.get_by_role("link", name="Admin", exact=True).click()
    page.get_by_role("navigation", name="Admin").get_by_role("link", name="Users").click()
    page.get_by_label("Search").fill("zed")
    expect(page).to_have_url(re.compile(r"/admin/users\?q=zed"))
    rows = page.locator("tr[data-user]")
    expect(rows).to_have_count(1)
    page.get_by_role("link", name="zed@example.com").click()

    # Zed, signed in elsewhere, has no admin area yet.
    them, _ = new_page()
    _sign_in(them, "zed@example.com", PASSWORD)
    expect(them.get_by_role("link", name="Admin", exact=True)).to_have_count(0)

    page.get_by_label("manager").check()
    page.get_by_role("button", name="Save roles").click()
    expect(page.get_by_text("zed@example.com now has: manager, user.")).to_be_visible()
    expect(page.locator("#user-roles")).to_have_text("manager, user")

    them.reload()
    them.get_by_role("link", name="Admin", exact=True).click()
    expect(them.get_by_role("heading", name="Dashboard")).to_be_visible()
    them.goto(f"/admin/users/{zed.id}")
    expect(them.get_by_role("button", name="Save roles")).to_have_count(0)  # a manager can't change roles
    events.assert_clean()


def test_disable_a_user_after_confirming(new_page, admin, make_user):
    zed = make_user(email="zed@example.com", display_name="Zed Example")
    them, _ = new_page()
    _sign_in(them, "zed@example.com", PASSWORD)
    page, events = new_page()
    _sign_in(page, *admin)
    page.goto(f"/admin/users/{zed.id}")
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.accept()))
    page.get_by_role("button", name="Disable").click()
    expect(page.get_by_text("zed@example.com is disabled and signed out everywhere.")).to_be_visible()
    assert dialogs and "Disable zed@example.com?" in dialogs[0]
    expect(page.get_by_role("button", name="Enable")).to_be_visible()
    them.goto("/account/")
    expect(them).to_have_url(re.compile(r"/auth/login"))
    events.assert_clean()


def test_retry_a_failed_job_and_watch_it_change_without_reloading(new_page, admin, app):
    job_id = _failed_job(app)
    page, events = new_page()
    _sign_in(page, *admin)
    page.goto("/admin/jobs?status=failed")
    row = page.locator(f'tr[data-job="{job_id}"]')
    expect(row).to_have_attribute("data-status", "failed")
    page.evaluate("window.hearthNoReload = 'still here'")
    row.get_by_label(f"Actions for job {job_id[:8]}").click()  # the row's action menu
    row.get_by_role("button", name="Retry").click()
    expect(page.locator(f'tr[data-job="{job_id}"]')).to_have_attribute("data-status", "succeeded", timeout=10_000)
    assert page.evaluate("window.hearthNoReload") == "still here"  # the row changed, the page did not reload
    page.goto(f"/admin/jobs/{job_id}")
    expect(page.locator("#job-status")).to_have_attribute("data-status", "succeeded")
    expect(page.get_by_text("job_retried")).to_be_visible()
    events.assert_clean()


def test_back_and_forward_restore_a_filtered_table(new_page, admin, make_user):
    make_user(email="zed@example.com", display_name="Zed Example")
    make_user(email="zoe@example.com", display_name="Zoe Example", is_active_account=False)
    make_user(email="amy@example.com", display_name="Amy Example")
    page, events = new_page()
    _sign_in(page, *admin)
    page.goto("/admin/users")
    rows = page.locator("tr[data-user]")
    expect(rows).to_have_count(4)  # the admin and the two active users; zoe is disabled, still listed
    page.get_by_label("Search").fill("z")
    expect(page).to_have_url(re.compile(r"q=z"))
    expect(rows).to_have_count(2)
    page.get_by_label("Status").select_option("disabled")
    expect(rows).to_have_count(1)
    expect(page.locator('tr[data-user="zoe@example.com"]')).to_be_visible()
    assert "status=disabled" in page.url and "q=z" in page.url
    page.go_back()
    expect(rows).to_have_count(2)
    assert "q=z" in page.url and "status=disabled" not in page.url
    page.go_back()
    expect(rows).to_have_count(4)
    page.go_forward()
    expect(rows).to_have_count(2)
    page.go_forward()
    expect(rows).to_have_count(1)
    expect(page.get_by_label("Status")).to_have_value("disabled")
    events.assert_clean()


def test_screenshots_of_every_admin_page(new_page, admin, app, make_user):
    someone = make_user(email="zed@example.com", display_name="Zed Example")
    job_id = _failed_job(app, user_id=someone.id)
    page, events = new_page(viewport={"width": 1280, "height": 900})
    _sign_in(page, *admin)
    for name, path, heading in (
        ("dashboard", "/admin/", "Dashboard"),
        ("users", "/admin/users", "Users"),
        ("user-detail", f"/admin/users/{someone.id}", "Zed Example"),
        ("roles", "/admin/roles", "Roles"),
        ("uploads", "/admin/uploads", "Uploads"),
        ("jobs", "/admin/jobs", "Jobs"),
        ("job-detail", f"/admin/jobs/{job_id}", "Job"),
        ("dead-letter", "/admin/jobs?status=failed", "Jobs"),
        ("audit", "/admin/audit", "Audit trail"),
    ):
        page.goto(path)
        expect(page.get_by_role("heading", level=1)).to_contain_text(heading)
        _shot(page, name)
        assert (ARTIFACTS / f"{name}.png").stat().st_size > 10_000
    events.assert_clean()


def test_bulk_assign_role_asks_for_a_role_and_never_assumes_one(new_page, admin, make_user):
    zed = make_user(email="zed@example.com", display_name="Zed Example")
    page, events = new_page()
    _sign_in(page, *admin)
    page.goto("/admin/users")
    role = page.locator("#bulk-role")
    expect(role).to_be_hidden()  # only "Assign role" needs one
    page.get_by_label("Select zed@example.com").check()
    page.locator("#bulk-action").select_option("assign_role")
    expect(role).to_be_visible()
    expect(role).to_have_value("")  # "Choose a role…", not admin
    page.get_by_role("button", name="Apply").click()
    assert role.evaluate("el => el.required && el.validity.valueMissing")  # the browser holds the form back
    expect(page).to_have_url(re.compile(r"/admin/users$"))
    role.select_option("viewer")
    page.get_by_role("button", name="Apply").click()
    expect(page.get_by_text("Gave the 'viewer' role to 1 user.")).to_be_visible()
    page.goto(f"/admin/users/{zed.id}")
    expect(page.locator("#user-roles")).to_have_text("user, viewer")
    events.assert_clean()
