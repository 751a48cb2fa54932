"""The page sweep: every page Hearth serves (public, user and staff), in both colour schemes, at
390, 768, 1024 and 1280 px, checked three ways in Chromium under the app's real CSP:

- the document is never wider than the viewport (`scrollWidth <= innerWidth`); a failure names
  the elements where the overflow starts;
- axe-core (vendored in tests/e2e/vendor/, the WCAG 2.0/2.1/2.2 A and AA rules) finds no
  critical or serious violation; a failure names the rule, its impact and the elements (with
  the colours and ratio for contrast);
- no CSP violation and no uncaught script error while the page was shown.

Every page is photographed at every width in both schemes:
`test-artifacts/screenshots/<audience>-<page>-<width>-<scheme>.png` (HEARTH_TEST_ARTIFACTS
moves the `test-artifacts` folder). One test per audience and scheme signs in once, opens each
page once and only resizes the viewport between widths; it collects every problem of every
page and width, then fails once with the whole list (also written beside the screenshots as
`sweep-<audience>-<scheme>.txt`).

axe reaches each page through `BrowserContext.add_init_script` (tests/e2e/axe.py): the page's
Content-Security-Policy stays exactly the one the app sends. The data is made per test by the
factories and services (`make_user`, a real avatar upload with its thumbnail, upload and job
rows in each state, flags, emailed tokens), so every run sees the same pages.
"""

from __future__ import annotations

import io
import os
import threading
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyotp
import pytest
from flask import Flask
from PIL import Image
from werkzeug.serving import make_server

from app.apikeys import service as api_keys
from app.auth import second_factor
from app.auth.emailed_tokens import RESET_PASSWORD, UNDO_EMAIL_CHANGE, UNLOCK_ACCOUNT, issue_token
from app.core.database import utcnow
from app.core.unit_of_work import unit_of_work
from app.extensions import db
from app.flags import service as flags
from app.jobs.models import Job, JobStatus
from app.mail import service as mail_service
from app.notifications.service import notify, unsubscribe_url
from app.storage import get_storage
from app.uploads import service as uploads
from app.uploads.models import Upload, UploadStatus
from app.users.models import User
from app.webhooks import service as webhooks_service
from tests.e2e.axe import add_axe, serious_violations
from tests.support import PASSWORD, PROJECT_ROOT

pytestmark = pytest.mark.e2e

WIDTHS = (390, 768, 1024, 1280)
HEIGHT = 900
SCHEMES = ("light", "dark")
ARTIFACTS = Path(os.environ.get("HEARTH_TEST_ARTIFACTS") or PROJECT_ROOT / "test-artifacts") / "screenshots"

# The elements where a sideways overflow starts: wider than the viewport, inside a parent that
# is not (so a wide table names itself, not every ancestor it pushes out).
OVERFLOW_JS = """
() => {
  const limit = window.innerWidth;
  const name = (el) => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') +
    [...el.classList].slice(0, 3).map((c) => '.' + c).join('');
  const path = (el) => {
    const parts = [];
    for (let node = el; node && node !== document.body && parts.length < 4; node = node.parentElement) {
      parts.unshift(name(node));
    }
    return parts.join(' > ');
  };
  const starts = [];
  for (const el of document.body.querySelectorAll('*')) {
    const right = el.getBoundingClientRect().right + window.scrollX;
    if (right <= limit + 0.5) continue;
    const parent = el.parentElement;
    const parentRight = parent ? parent.getBoundingClientRect().right + window.scrollX : 0;
    if (parent && parent !== document.body && parentRight > limit + 0.5) continue;
    starts.push(`${path(el)} (right edge ${Math.round(right)}px)`);
    if (starts.length >= 4) break;
  }
  return {scrollWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth, starts};
}
"""

NEXT_FRAME_JS = "() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)))"


@dataclass(frozen=True)
class Visit:
    """One page of the sweep: a GET of `path` answering `status`, or `open(page)` for a page
    only a form submission shows. `ready` is a selector that appears once the page is done
    (script-rendered content)."""

    name: str
    path: str = ""
    status: int = 200
    ready: str | None = None
    open: Callable[[Any], int] | None = None


@dataclass
class SweepReport:
    """Every problem the sweep met. One finding (an overflow, an axe rule on a page) is one
    entry, with the widths it showed at and the elements involved."""

    audience: str
    scheme: str
    pages: list[str] = field(default_factory=list)
    # page -> finding -> element (or detail) -> widths
    findings: dict[str, dict[str, dict[str, list[int]]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    )

    def add(self, page: str, width: int, finding: str, element: str = "") -> None:
        self.findings[page][finding][element].append(width)

    def __bool__(self) -> bool:
        return bool(self.findings)

    def text(self, shown: int = 10) -> str:
        count = sum(len(found) for found in self.findings.values())
        lines = [
            f"Sweep {self.audience}/{self.scheme}: {count} finding(s) on {len(self.findings)} of "
            f"{len(self.pages)} page(s)"
        ]
        for page in self.pages:
            if page not in self.findings:
                continue
            lines.append(f"\n[{self.audience}/{self.scheme}] {page}")
            for finding, elements in self.findings[page].items():
                widths = sorted({width for seen in elements.values() for width in seen})
                at = f" @{','.join(map(str, widths))}px" if any(widths) else ""
                lines.append(f"  {finding}{at}" + (f" — {len(elements)} element(s):" if any(elements) else ""))
                for element, seen in list(elements.items())[:shown]:
                    if element:
                        lines.append(f"      {element}" + (f"  @{','.join(map(str, seen))}" if seen != widths else ""))
                if len(elements) > shown:
                    lines.append(f"      … and {len(elements) - shown} more")
        return "\n".join(lines)


class Sweeper:
    """Checks and photographs one page at every width, in one context (one audience, one scheme)."""

    def __init__(self, page: Any, events: Any, report: SweepReport) -> None:
        self.page = page
        self.events = events
        self.report = report
        self.seen_csp = self.seen_errors = 0

    def check(self, visit: Visit, base_url: str) -> None:
        page, report = self.page, self.report
        label = f"{visit.name} ({visit.path})" if visit.path else visit.name
        report.pages.append(label)
        page.set_viewport_size({"width": WIDTHS[-1], "height": HEIGHT})
        self.seen_csp, self.seen_errors = len(self.events.csp_violations), len(self.events.page_errors)
        if visit.open is not None:
            status = visit.open(page)
        else:
            response = page.goto(visit.path if visit.path.startswith("http") else base_url + visit.path)
            status = response.status if response is not None else 0
        if status != visit.status:
            report.add(label, 0, f"answered {status}, expected {visit.status}")
        page.wait_for_load_state("networkidle")
        if visit.ready:
            page.locator(visit.ready).first.wait_for(state="visible")
        for width in WIDTHS:
            page.set_viewport_size({"width": width, "height": HEIGHT})
            page.evaluate(NEXT_FRAME_JS)
            layout = page.evaluate(OVERFLOW_JS)
            if layout["scrollWidth"] > layout["innerWidth"]:
                report.add(label, width, "scrolls sideways", f"document {layout['scrollWidth']}px wide")
                for start in layout["starts"]:
                    report.add(label, width, "scrolls sideways", f"overflow starts at {start}")
            self.note_browser_errors(label)  # axe's own blocked styles (see tests/e2e/axe.py) are not the page's
            for violation in serious_violations(page):
                finding = f"axe {violation.rule} ({violation.impact}): {violation.help}"
                report.add(label, width, finding, violation.target + violation.detail)
            self.seen_csp = len(self.events.csp_violations)
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            shot = ARTIFACTS / f"{report.audience}-{visit.name}-{width}-{report.scheme}.png"
            page.screenshot(path=str(shot), full_page=True, animations="disabled", caret="hide")
        self.note_browser_errors(label)

    def note_browser_errors(self, label: str) -> None:
        """CSP violations and uncaught errors since the last look."""
        for message in self.events.csp_violations[self.seen_csp :]:
            self.report.add(label, 0, "CSP violation", message)
        for message in self.events.page_errors[self.seen_errors :]:
            self.report.add(label, 0, "uncaught script error", message)
        self.seen_csp, self.seen_errors = len(self.events.csp_violations), len(self.events.page_errors)


def run_sweep(
    new_page: Callable[..., Any], base_url: str, audience: str, scheme: str, visits: list[Visit], sign_in=None
) -> None:
    page, events = new_page(color_scheme=scheme, viewport={"width": WIDTHS[-1], "height": HEIGHT})
    add_axe(page.context)
    if sign_in is not None:
        sign_in(page)
    report = SweepReport(audience, scheme)
    sweeper = Sweeper(page, events, report)
    for visit in visits:
        sweeper.check(visit, base_url)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / f"sweep-{audience}-{scheme}.txt").write_text(report.text() + "\n")
    if report:
        pytest.fail(report.text(), pytrace=False)


# Signing in and data --------------------------------------------------------------------------


def sign_in_as(email: str, password: str = PASSWORD) -> Callable[[Any], None]:
    def sign_in(page: Any) -> None:
        page.goto("/auth/login")
        page.locator("input[name=email]").fill(email)
        password_field = page.locator("input[name=password]")
        password_field.fill(password)
        with page.expect_navigation():
            password_field.press("Enter")
        assert "/auth/login" not in page.url, f"{email} could not sign in"

    return sign_in


def post_form(start: str, path: str) -> Callable[[Any], int]:
    """From the page at `start`, submit a plain form to `path` as a browser without JavaScript
    would (with that page's CSRF token) and return the status of the page it answers with."""

    def submit(page: Any) -> int:
        page.goto(start)
        with page.expect_navigation() as navigation:
            page.evaluate(
                """(action) => {
                    const form = document.createElement('form');
                    form.method = 'post';
                    form.action = action;
                    const token = document.createElement('input');
                    token.type = 'hidden';
                    token.name = 'csrf_token';
                    token.value = document.querySelector('meta[name=csrf-token]').content;
                    form.appendChild(token);
                    document.body.appendChild(form);
                    form.submit();  // no submit event: the confirm dialog of admin.js stays out of it
                }""",
                path,
            )
        response = navigation.value
        return response.status if response is not None else 0

    return submit


def fill_and_submit(path: str, field_name: str, value: str) -> Callable[[Any], int]:
    """Open the form at `path`, fill one field and submit it with Enter."""

    def submit(page: Any) -> int:
        page.goto(path)
        box = page.locator(f"input[name={field_name}]")
        box.fill(value)
        with page.expect_navigation() as navigation:
            box.press("Enter")
        response = navigation.value
        return response.status if response is not None else 0

    return submit


def _jpeg(width: int = 640, height: int = 480) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (30, 120, 200)).save(buffer, format="JPEG")
    return buffer.getvalue()


def _ready_avatar(user_id: int, filename: str) -> str:
    """An avatar through the real flow (request, bytes to storage, confirm, processing): ready,
    with a real thumbnail."""
    data = _jpeg()
    ticket = uploads.request_upload(user_id, filename, "image/jpeg", len(data), "avatar")
    get_storage().put(uploads.staging_key(ticket.upload), data, "image/jpeg")
    uploads.confirm(uploads.get_upload(ticket.upload.id))
    return ticket.upload.id


LONG_ERROR = (
    "SMTPRecipientsRefused: {'zed.with.a.really.long.address+newsletter-2024-q3@subdomain.example.com': "
    "(550, b'5.1.1 The email account that you tried to reach does not exist. Please try double-checking "
    "the recipient\\'s email address for typos or unnecessary spaces. Learn more at "
    "https://support.example.com/mail/answer/6596/very/long/path/that/does/not/wrap/easily?with=query&and=more')}"
)
LONG_TRACEBACK = (
    "Traceback (most recent call last):\n"
    + "".join(
        f'  File "/srv/hearth/.venv/lib/python3.11/site-packages/some/deeply/nested/package/module_{n}.py", '
        f"line {100 + n}, in function_with_a_long_name_{n}\n"
        "    result = call_something_else(argument_one, argument_two)\n"
        for n in range(8)
    )
    + LONG_ERROR
)


def _user_uploads(app, user_id: int) -> dict[str, str]:
    """A few uploads in the states a list shows: ready (real thumbnail), pending, processing,
    failed (with its reason) and rejected."""
    with app.test_request_context():  # a presigned POST of local storage is a URL of the app
        ids = {"ready": _ready_avatar(user_id, "holiday-in-the-mountains-with-a-long-file-name.jpg")}
        rows = [
            (UploadStatus.pending, "document", "quarterly-report.pdf", "application/pdf", None),
            (UploadStatus.processing, "avatar", "portrait.png", "image/png", None),
            (UploadStatus.failed, "avatar", "scan.jpg", "image/jpeg", "The image could not be read."),
            (UploadStatus.rejected, "document", "notes.pdf", "application/pdf", "The file's content is not a PDF."),
        ]
        with unit_of_work():
            for status, kind, filename, content_type, error in rows:
                upload_id = str(uuid.uuid4())
                db.session.add(
                    Upload(
                        id=upload_id,
                        user_id=user_id,
                        kind=kind,
                        status=status,
                        filename=filename,
                        content_type=content_type,
                        declared_size=2_934_812,
                        size=None if status == UploadStatus.pending else 2_934_812,
                        key=f"users/{user_id}/{kind}/{upload_id}/{filename}",
                        details={},
                        error=error,
                    )
                )
                ids[str(status)] = upload_id
    return ids


def _jobs(app, user_id: int) -> dict[str, str]:
    """A failed job with a long error and traceback, a queued and a running one (the upload
    processing above added a succeeded one)."""
    now = utcnow()
    ids = {}
    with app.app_context(), unit_of_work():
        for status, extra in (
            (
                JobStatus.failed,
                {"error": LONG_ERROR, "traceback": LONG_TRACEBACK, "attempts": 4, "finished_at": now},
            ),
            (JobStatus.queued, {"attempts": 0}),
            (JobStatus.running, {"attempts": 1, "started_at": now, "progress": 40, "progress_message": "sending"}),
        ):
            job_id = str(uuid.uuid4())
            db.session.add(
                Job(
                    id=job_id,
                    queue="emails",
                    task="tasks.emails.send_email",
                    payload={"to": "zed@example.com", "template": "test_message", "context": {}},
                    args_summary={"to": "zed@example.com", "template": "test_message"},
                    status=status,
                    max_attempts=4,
                    user_id=user_id,
                    enqueued_at=now - timedelta(minutes=5),
                    **extra,
                )
            )
            ids[str(status)] = job_id
    return ids


def _notifications(app, user_id: int) -> None:
    """Notices of several kinds (a long file name among them), one of them read."""
    with app.app_context(), unit_of_work() as session:
        notify(user_id, "security.new_sign_in", params={"device": "Firefox on Linux", "address": "203.0.113.7"})
        notify(user_id, "account.role_changed", params={"roles": "manager, user"})
        notify(
            user_id,
            "upload.rejected",
            params={
                "filename": "a-very-long-file-name-without-any-spaces-at-all-2024-q3-final-final.pdf",
                "reason": "The file's content is not a PDF.",
            },
            link="/files/",
        )
        read = notify(user_id, "export.ready", params={"export_name": "Account data", "size": "2.8 MB"}, link="/files/")
        session.flush()
        read.read_at = utcnow()


def _flags(app, actor_id: int) -> None:
    with app.app_context():
        actor = db.session.get(User, actor_id)
        flags.create_flag(actor, "new_dashboard", "The redesigned dashboard for everyone", enabled=True)
        flags.create_flag(actor, "beta_exports", "CSV exports of uploads and jobs", enabled=False)


@dataclass(frozen=True)
class DevServer:
    app: Flask
    url: str
    mailbox: Path


@pytest.fixture()
def dev_server(make_app, monkeypatch, tmp_path) -> Iterator[DevServer]:
    """A development app (it alone serves /dev/mail) on the session's database, on loopback:
    the browser's session cookie for 127.0.0.1 holds there too."""
    mailbox = tmp_path / "mail"
    dev_app = make_app(app_env="development", dev_mail_dir=str(mailbox))
    server = make_server("127.0.0.1", 0, dev_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="hearth-e2e-dev-server", daemon=True)
    thread.start()
    try:
        yield DevServer(dev_app, f"http://127.0.0.1:{server.server_port}", mailbox)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _identity(app, user_id: int, confirm_app: bool) -> None:
    """An authenticator app (confirmed, or waiting for its first code: the QR code is shown) and
    an API key, so the security page shows each of its sections with something in it."""
    with app.test_request_context():
        user = db.session.get(User, user_id)
        enrolment = second_factor.begin_totp_enrolment(user)
        if confirm_app:
            second_factor.confirm_totp(user, pyotp.TOTP(enrolment.secret).now())
        api_keys.create(user, "Nightly backup", ["self:read"], 30)


def _password_step(email: str) -> Callable[[Any], int]:
    """Sign in with the password of an account with two-factor: the second step's page."""

    def submit(page: Any) -> int:
        page.goto("/auth/login")
        page.locator("input[name=email]").fill(email)
        box = page.locator("input[name=password]")
        box.fill(PASSWORD)
        with page.expect_navigation() as navigation:
            box.press("Enter")
        assert page.url.endswith("/auth/2fa"), page.url
        return navigation.value.status if navigation.value is not None else 0

    return submit


# The sweeps ------------------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", SCHEMES)
def test_every_public_page_fits_and_passes_axe(new_page, live_server_url, app, make_user, scheme):
    someone = make_user(email="zed@example.com", display_name="Zed Example", email_verified_at=utcnow())
    tia = make_user(email="tia@example.com", display_name="Tia Example", email_verified_at=utcnow())
    _identity(app, tia.id, confirm_app=True)
    with app.app_context():
        reset = issue_token(someone.id, RESET_PASSWORD)
        unlock = issue_token(someone.id, UNLOCK_ACCOUNT)
        undo = issue_token(someone.id, UNDO_EMAIL_CHANGE, email="zed.before@example.com")
        unsubscribe = unsubscribe_url(someone.id, "export.ready").partition("/notifications/")[2]
    visits = [
        Visit("landing", "/"),
        Visit("sign-in", "/auth/login"),
        Visit("sign-in-error", open=_wrong_password, status=401),
        Visit("sign-up", "/auth/signup"),
        Visit("reset-request", "/auth/reset"),
        Visit("check-inbox", open=fill_and_submit("/auth/reset", "email", "zed@example.com")),
        Visit("reset-password", f"/auth/reset/{reset}"),
        Visit("unlock", f"/auth/unlock/{unlock}"),
        Visit("undo-email-change", f"/auth/email/undo/{undo}"),
        Visit("link-invalid", "/auth/verify/not-a-real-token", status=400),
        Visit("unsubscribe", f"/notifications/{unsubscribe}"),
        Visit("unsubscribed", open=post_form(f"/notifications/{unsubscribe}", f"/notifications/{unsubscribe}")),
        Visit("unsubscribe-invalid", "/notifications/unsubscribe/not-a-real-token", status=400),
        Visit("api-docs", "/api/docs", ready="#api-reference, .swagger-ui .info"),
        Visit("not-found", "/no/such/page", status=404),
        Visit("method-not-allowed", "/auth/logout", status=405),
        # Last: the browser is then half-way through a sign-in.
        Visit("two-factor-step", open=_password_step("tia@example.com")),
    ]
    run_sweep(new_page, live_server_url, "public", scheme, visits)


def _wrong_password(page: Any) -> int:
    page.goto("/auth/login")
    page.locator("input[name=email]").fill("zed@example.com")
    box = page.locator("input[name=password]")
    box.fill("not the password")
    with page.expect_navigation() as navigation:
        box.press("Enter")
    return navigation.value.status if navigation.value is not None else 0


@pytest.mark.parametrize("scheme", SCHEMES)
def test_every_user_page_fits_and_passes_axe(new_page, live_server_url, app, make_user, dev_server, scheme):
    user = make_user(email="uma@example.com", display_name="Uma Example", email_verified_at=utcnow())
    _user_uploads(app, user.id)
    _notifications(app, user.id)
    _identity(app, user.id, confirm_app=False)
    with dev_server.app.app_context(), unit_of_work():
        mail_service.queue_email("uma@example.com", "test_message", {"address": "uma@example.com"}, user_id=user.id)
    [message] = [path.stem for path in dev_server.mailbox.glob("*.eml")]
    dev_url = dev_server.url
    visits = [
        Visit("files", "/files/"),
        Visit("account", "/account/"),
        Visit("security", "/account/security"),
        Visit("reauthenticate", "/auth/reauthenticate?next=/account/security"),
        Visit("notifications", "/notifications"),
        Visit("notification-settings", "/account/notifications"),
        Visit("dev-mail", f"{dev_url}/dev/mail/"),
        Visit("dev-mail-message", f"{dev_url}/dev/mail/{message}"),
        Visit("landing-signed-in", "/"),
        Visit("forbidden", "/admin/", status=403),
    ]
    run_sweep(new_page, live_server_url, "user", scheme, visits, sign_in=sign_in_as("uma@example.com"))


@pytest.mark.parametrize("scheme", SCHEMES)
def test_every_staff_page_fits_and_passes_axe(new_page, live_server_url, app, make_user, scheme):
    admin = make_user(email="admin@example.com", display_name="Ada Admin", role="admin", email_verified_at=utcnow())
    zed = make_user(
        email="zed.with.a.really.long.address+newsletter@subdomain.example.com",
        display_name="Zed Example",
        email_verified_at=utcnow(),
    )
    make_user(email="amy@example.com", display_name="Amy Example", role="manager", is_active_account=False)
    upload_ids = _user_uploads(app, zed.id)
    job_ids = _jobs(app, zed.id)
    _identity(app, zed.id, confirm_app=True)
    _flags(app, admin.id)
    with app.app_context():
        webhook, _secret = webhooks_service.create_endpoint(
            db.session.get(User, admin.id), "https://example.com/hooks", ["user.created"], "CRM"
        )
        webhook_id = webhook.id
    visits = [
        Visit("dashboard", "/admin/"),
        Visit("users", "/admin/users"),
        Visit("user-detail", f"/admin/users/{zed.id}"),
        Visit("roles", "/admin/roles"),
        Visit("uploads", "/admin/uploads"),
        Visit("upload-detail", f"/admin/uploads/{upload_ids['failed']}"),
        Visit("jobs", "/admin/jobs"),
        Visit("job-detail", f"/admin/jobs/{job_ids['failed']}"),
        Visit("flags", "/admin/flags"),
        Visit("audit", "/admin/audit"),
        Visit("webhooks", "/admin/webhooks"),
        Visit("webhooks-new", "/admin/webhooks/new"),
        Visit("webhook-detail", f"/admin/webhooks/{webhook_id}"),
        Visit("confirm", open=post_form(f"/admin/users/{zed.id}", f"/admin/users/{zed.id}/disable")),
        # Last: the browser then views the site as Zed (the banner on every page).
        Visit("impersonating", open=post_form(f"/admin/users/{zed.id}", f"/admin/users/{zed.id}/impersonate")),
        Visit("impersonating-account", "/account/"),
    ]
    run_sweep(new_page, live_server_url, "staff", scheme, visits, sign_in=sign_in_as("admin@example.com"))
