"""Every admin table (and the user's own files table) fits the screen with the longest values
Hearth accepts: 254-character emails, 255-character file names without a space, failed jobs
with 2,000-character errors and tracebacks, audit rows whose changes are long lists.

Each page is loaded at 1280, 1024, 768 and 390 px; the document must never be wider than the
viewport (`scrollWidth <= innerWidth`) and no table may be wider than the box it sits in (a
table that scrolled inside its own box would hide columns as surely as a page that scrolls).
Under 640 px rows become cards. Truncated values keep the whole value in `title`, and a row's
actions open from its menu without JavaScript."""

from __future__ import annotations

import os
import re
import secrets
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from playwright.sync_api import expect

from app.audit.service import record
from app.auth.models import UserSession
from app.core.database import utcnow
from app.core.unit_of_work import unit_of_work
from app.extensions import db
from app.flags import service as flags
from app.jobs.models import Job, JobStatus
from app.uploads.models import Upload, UploadStatus
from app.users.models import User

pytestmark = pytest.mark.e2e

PASSWORD = "correct horse battery staple"
ARTIFACTS = Path(os.environ.get("HEARTH_TEST_ARTIFACTS") or Path(__file__).resolve().parents[2] / "test-artifacts")
ARTIFACTS = ARTIFACTS / "admin-tables"
WIDTHS = (1280, 1024, 768, 390)
# The longest address the users table accepts (254 characters, RFC 5321), with no break
# opportunity before the @.
LONG_EMAIL = "x" * 64 + "@" + ("d" * 58 + ".") * 3 + "example.com"
LONG_NAME = "Maximiliane-Alexandrina Wolfeschlegelsteinhausenbergerdorff " * 2
LONG_FILE = ("quarterly-report-final-final-v" + "9" * 200 + "-approved")[:251] + ".pdf"
LONG_ERROR = "The file could not be read as an image: " + "0x" + "f" * 1900
LONG_TRACE = (
    "Traceback (most recent call last):\n"
    + "".join(
        f'  File "/srv/hearth/app/uploads/{"very_long_module_name_" * 6}{n}.py", line {n}, in process\n'
        f"    {'details |= _image_details(upload, data) ' * 4}\n"
        for n in range(40)
    )
    + "PIL.UnidentifiedImageError: cannot identify image file <_io.BytesIO object at 0x7f3a2b1c9d80>\n"
)
USER_AGENT = (
    "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0 " + "ExtraToken/1.0 " * 12
).strip()


@pytest.fixture()
def admin(app):
    from app.users.service import ensure_admin

    with app.app_context():
        account = ensure_admin(None, None)
        email, password, user_id = account.user.email, account.generated_password, account.user.id
        db.session.remove()
    return email, password, user_id


@pytest.fixture()
def crowded(app, admin, make_user):
    """A site whose every table holds its longest values; returns the ids pages are opened at."""
    _, _, admin_id = admin
    long_user = make_user(email=LONG_EMAIL, display_name=LONG_NAME[:100])
    for n in range(12):
        make_user(email=f"{'member' * 8}{n}@{'long-department-name' * 4}.example.org", display_name=f"Member {n}")
    now = utcnow()
    ids: dict[str, str | int] = {"user": long_user.id}
    with app.app_context():
        db.session.add(
            UserSession(
                id=secrets.token_urlsafe(32),
                user_id=long_user.id,
                user_agent=USER_AGENT,
                ip="2001:0db8:85a3:0000:0000:8a2e:0370:7334",
                created_at=now - timedelta(days=2),
                last_seen_at=now - timedelta(minutes=5),
                expires_at=now + timedelta(days=10),
            )
        )
        for n, (status, error) in enumerate(
            [
                (UploadStatus.failed, "Processing failed: " + LONG_ERROR),
                (UploadStatus.rejected, "The image is 12000×12000 pixels (144 megapixels); the limit is 40."),
                (UploadStatus.ready, None),
                # Being processed again after a failure: its old reason must not show.
                (UploadStatus.processing, "Processing failed: an earlier attempt"),
            ]
        ):
            for owner in (long_user.id, admin_id):
                upload_id = str(uuid.uuid4())
                db.session.add(
                    Upload(
                        id=upload_id,
                        user_id=owner,
                        kind=("avatar", "document", "video", "avatar")[n],
                        status=status,
                        filename=f"{n}-{LONG_FILE}"[:255],
                        content_type="application/pdf",
                        declared_size=3_076_096 * (n + 1),
                        size=3_076_096 * (n + 1),
                        key=f"users/{owner}/document/{upload_id}/file.pdf",
                        details={"pages": 12, "producer": "x" * 300},
                        error=error,
                    )
                )
                ids.setdefault(f"upload_{status}", upload_id)
        summary = {"upload_id": str(uuid.uuid4()), "to": LONG_EMAIL, "template": "password_reset" * 6}
        for status in (JobStatus.failed, JobStatus.retrying, JobStatus.running, JobStatus.queued, JobStatus.succeeded):
            job_id = str(uuid.uuid4())
            failed = status in (JobStatus.failed, JobStatus.retrying)
            db.session.add(
                Job(
                    id=job_id,
                    queue="uploads",
                    task="tasks.uploads.process_upload_with_a_rather_long_task_name",
                    payload={},
                    args_summary=summary,
                    status=status,
                    attempts=3 if status == JobStatus.failed else 1,
                    max_attempts=3,
                    user_id=long_user.id,
                    request_id="req-" + "f" * 120,
                    error=LONG_ERROR if failed else None,
                    traceback=LONG_TRACE if failed else None,
                    progress=40 if status == JobStatus.running else None,
                    progress_message="making the thumbnail" if status == JobStatus.running else None,
                    duration_ms=1234.5 if status != JobStatus.queued else None,
                    started_at=now if status != JobStatus.queued else None,
                    finished_at=now if status in (JobStatus.failed, JobStatus.succeeded) else None,
                    next_attempt_at=now + timedelta(minutes=3) if status == JobStatus.retrying else None,
                )
            )
            ids.setdefault(f"job_{status}", job_id)
        db.session.commit()
        actor = db.session.get(User, admin_id)
        with unit_of_work():
            for _ in range(8):
                record(
                    "roles_changed",
                    actor_id=admin_id,
                    subject_id=long_user.id,
                    before={"roles": ["user"], "display_name": LONG_NAME},
                    after={"roles": ["user", "manager", "support-team-lead-" + "x" * 40], "note": "y" * 400},
                    reason="z" * 300,
                )
            record("job_retried", actor_id=admin_id, target=f"job:{ids['job_failed']}", request_id_note="r" * 200)
        flags.create_flag(actor, "a_feature_flag_with_the_longest_name_allowed_" + "x" * 18, "d" * 200, enabled=True)
        flags.create_flag(actor, "new_dashboard", "The redesigned dashboard", enabled=False)
        db.session.remove()
    return ids


OVERFLOWS_JS = """
() => {
  const limit = window.innerWidth;
  const name = (el) => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') +
    [...el.classList].slice(0, 3).map((c) => '.' + c).join('');
  const wraps = [...document.querySelectorAll('.table-wrap')]
    .filter((wrap) => wrap.scrollWidth > wrap.clientWidth + 1)
    .map((wrap) => `${name(wrap.querySelector('table') || wrap)}: ${wrap.scrollWidth} > ${wrap.clientWidth}`);
  const sticksOut = (el) => el && el.getBoundingClientRect().right > limit + 0.5;
  const wide = [...document.body.querySelectorAll('*')]
    .filter((el) => sticksOut(el) && !sticksOut(el.parentElement))
    .slice(0, 5)
    .map(name);
  return {scrollWidth: document.documentElement.scrollWidth, innerWidth: limit, wraps, wide};
}
"""


def _sign_in(page, email, password):
    page.goto("/auth/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page).not_to_have_url(re.compile(r"/auth/login"))  # signed in (the menu may be folded)


def _pages(ids) -> list[tuple[str, str]]:
    return [
        ("dashboard", "/admin/"),
        ("users", "/admin/users"),
        ("user detail", f"/admin/users/{ids['user']}"),
        ("roles", "/admin/roles"),
        ("uploads", "/admin/uploads"),
        ("upload detail", f"/admin/uploads/{ids['upload_failed']}"),
        ("jobs", "/admin/jobs"),
        ("dead letter", "/admin/jobs?status=failed"),
        ("failed job", f"/admin/jobs/{ids['job_failed']}"),
        ("running job", f"/admin/jobs/{ids['job_running']}"),
        ("flags", "/admin/flags"),
        ("audit", "/admin/audit"),
        ("files", "/files/"),
    ]


def test_no_admin_page_is_wider_than_the_screen_with_the_longest_values(new_page, admin, crowded):
    email, password, _ = admin
    page, events = new_page(viewport={"width": 1280, "height": 900})
    _sign_in(page, email, password)
    problems = []
    for name, path in _pages(crowded):
        page.set_viewport_size({"width": 1280, "height": 900})
        response = page.goto(path)
        assert response.status == 200, (name, response.status)
        for width in WIDTHS:
            page.set_viewport_size({"width": width, "height": 900})
            page.evaluate("() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)))")
            found = page.evaluate(OVERFLOWS_JS)
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / f"{name.replace(' ', '-')}-{width}.png"), full_page=True)
            if found["scrollWidth"] > found["innerWidth"] or found["wraps"]:
                problems.append(f"{name} at {width} px: {found}")
    assert problems == [], "\n".join(problems)
    events.assert_clean()


def test_under_640_px_rows_are_labelled_cards(new_page, admin, crowded):
    email, password, _ = admin
    page, _ = new_page(viewport={"width": 390, "height": 900})
    _sign_in(page, email, password)
    page.goto("/admin/uploads")
    row = page.locator("#upload-table tbody tr").first
    status = row.locator('td[data-label="Status"]')
    assert status.evaluate("el => getComputedStyle(el).display") == "grid"
    assert status.evaluate("el => getComputedStyle(el, '::before').content") == '"Status"'
    assert page.locator("#upload-table thead").evaluate("el => el.getBoundingClientRect().height") <= 1
    # Priority columns are back in the card, one labelled line each.
    expect(row.locator('td[data-label="Owner"]')).to_be_visible()


def test_long_values_are_truncated_with_the_whole_value_on_hover_and_focus(new_page, admin, crowded):
    email, password, _ = admin
    page, _ = new_page(viewport={"width": 1280, "height": 900})
    _sign_in(page, email, password)
    page.goto("/admin/users")
    link = page.locator(f'tr[data-user="{LONG_EMAIL}"] a.truncate')
    expect(link).to_have_attribute("title", LONG_EMAIL)
    assert link.evaluate("el => el.scrollWidth > el.clientWidth")  # cut, with an ellipsis
    page.goto("/admin/jobs")
    args = page.locator(f'tr[data-job="{crowded["job_failed"]}"] td[data-label="Task"] .truncate')
    cut_height = args.evaluate("el => el.getBoundingClientRect().height")
    args.focus()
    assert args.evaluate("el => el.scrollWidth <= el.clientWidth + 1")  # focused: shown whole
    assert args.evaluate("el => el.getBoundingClientRect().height") > cut_height


def test_row_actions_open_from_a_menu_without_javascript(browser, live_server_url, admin, crowded):
    email, password, _ = admin
    context = browser.new_context(base_url=live_server_url, java_script_enabled=False)
    try:
        page = context.new_page()
        _sign_in(page, email, password)
        page.goto("/admin/jobs?status=failed")
        row = page.locator(f'tr[data-job="{crowded["job_failed"]}"]')
        retry = row.get_by_role("button", name="Retry")
        expect(retry).to_be_hidden()
        row.get_by_label(f"Actions for job {crowded['job_failed'][:8]}").click()
        expect(retry).to_be_visible()
        retry.click()  # a plain POST, then back to the list
        expect(page.get_by_text(f"Job {crowded['job_failed'][:8]} is queued again.")).to_be_visible()
    finally:
        context.close()
