"""Real pages: a signed-in `GET /files/` and `GET /admin/users`, full stack vs a bare Flask page
doing the same queries and rendering the same HTML (bench/README.md, "Real pages").

Three parts, each used by a different process:

* `BarePages` (imported by bench/bare_app.py; plain Flask, Jinja and SQLAlchemy Core, no import
  of Hearth): what a hand-written Flask app with a database-backed session does for these two
  pages. It reads Hearth's signed session cookie with Flask's own serializer, looks the session
  up by id together with its user in ONE statement (revoked, expired, idle, disabled or a
  stale epoch: no page), runs the page's statements (the same SQL Hearth runs: a count and one
  page of rows; for the users also their roles and every role name) and renders
  bench/templates/pages/*.html: Hearth's page as it renders, written out, with the rows, the
  pager, the user's name and the CSRF token filled in, each row's badge, time and size through
  the small helpers below (`install_helpers`), as Hearth's go through its template filters.
* `python -m bench.pages anatomy` (run by `scenario_pages` with the bench's environment): both
  apps in one process, called through WSGI as gunicorn would; the SQL statements each runs per
  page, and their CPU per request in-process (thread CPU time, alternating rounds).
* `scenario_pages(ctx, ...)` (bench/run.py): signs the admin in through the real sign-in form
  (GET /auth/login for the CSRF token, POST the form, GET / to consume the welcome flash),
  checks that both apps answer the same page, then loads both pages of both apps with that
  session cookie under closed-loop load, in alternating rounds (`ctx.compare`).

    BENCH_COOKIE=... python -m bench.pages anatomy
"""

from __future__ import annotations

import functools
import hashlib
import http.client
import io
import json
import logging
import os
import re
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from flask.json.tag import TaggedJSONSerializer
from itsdangerous import BadSignature, URLSafeTimedSerializer
from markupsafe import Markup, escape
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    func,
    select,
)
from sqlalchemy.orm import Session

# Hearth's pages, and the bare app's counterparts.
FILES_PATH = "/files/"
ADMIN_USERS_PATH = "/admin/users"
BARE_FILES_PATH = "/bench/bare/files"
BARE_ADMIN_USERS_PATH = "/bench/bare/admin-users"
PAGES = {"files": (FILES_PATH, BARE_FILES_PATH), "admin_users": (ADMIN_USERS_PATH, BARE_ADMIN_USERS_PATH)}
# Rows per page, as Hearth's views have them (app/files/routes.py, app/admin/users.py).
FILES_PER_PAGE = 20
USERS_PER_PAGE = 25
FINAL_STATUSES = frozenset({"ready", "rejected", "failed"})
LOGIN_PATH = "/auth/login"

# Hearth's tables, as far as these pages read them: a read-only description (Hearth's migrations
# own them), every column, so the bare app selects what Hearth's ORM selects.
hearth_tables = MetaData()
users = Table(
    "users",
    hearth_tables,
    Column("id", Integer, primary_key=True),
    Column("email", String(320)),
    Column("display_name", String(120)),
    Column("password_hash", String(255)),
    Column("is_active", Boolean),
    Column("session_epoch", Integer),
    Column("failed_login_count", Integer),
    Column("locked_until", DateTime(timezone=True)),
    Column("lockout_notified_at", DateTime(timezone=True)),
    Column("email_verified_at", DateTime(timezone=True)),
    Column("last_login_at", DateTime(timezone=True)),
    Column("avatar_upload_id", String(36)),
    Column("deleted_at", DateTime(timezone=True)),
    Column("created_at", DateTime(timezone=True)),
    Column("updated_at", DateTime(timezone=True)),
)
user_sessions = Table(
    "user_sessions",
    hearth_tables,
    Column("id", String(43), primary_key=True),
    Column("user_id", Integer),
    Column("user_agent", String(300)),
    Column("ip", String(64)),
    Column("created_at", DateTime(timezone=True)),
    Column("last_seen_at", DateTime(timezone=True)),
    Column("expires_at", DateTime(timezone=True)),
    Column("revoked_at", DateTime(timezone=True)),
)
uploads = Table(
    "uploads",
    hearth_tables,
    Column("id", String(36), primary_key=True),
    Column("user_id", Integer),
    Column("kind", String(16)),
    Column("status", String(16)),
    Column("filename", String(255)),
    Column("content_type", String(127)),
    Column("declared_size", BigInteger),
    Column("size", BigInteger),
    Column("key", String(512)),
    Column("thumbnail_key", String(512)),
    Column("details", JSON),
    Column("error", Text),
    Column("created_at", DateTime(timezone=True)),
    Column("updated_at", DateTime(timezone=True)),
)
roles = Table(
    "roles",
    hearth_tables,
    Column("id", Integer, primary_key=True),
    Column("name", String(64)),
    Column("description", String(200)),
)
user_roles = Table("user_roles", hearth_tables, Column("user_id", Integer), Column("role_id", Integer))

# The session and its user, by the session's id: one statement.
_SIGNED_IN = select(
    user_sessions.c.user_id,
    user_sessions.c.last_seen_at,
    user_sessions.c.expires_at,
    user_sessions.c.revoked_at,
    users,
).join(users, users.c.id == user_sessions.c.user_id)
_FILES = select(uploads).order_by(uploads.c.created_at.desc(), uploads.c.id)
_LISTED_USERS = select(users).where(users.c.deleted_at.is_(None))
_USERS_BY_EMAIL = _LISTED_USERS.order_by(users.c.email.asc(), users.c.id)
_COUNT_USERS = select(func.count()).select_from(_LISTED_USERS.subquery())
_ROLES_OF = select(user_roles.c.user_id, roles.c.id, roles.c.name, roles.c.description).join(
    roles, roles.c.id == user_roles.c.role_id
)
_ROLE_NAMES = select(roles.c.name).order_by(roles.c.name)


def session_cookie_name() -> str:
    """Hearth's session cookie: `__Host-session` where cookies are Secure (staging, production)."""
    return "__Host-session" if os.environ.get("APP_ENV") in ("production", "staging") else "session"


def user_status(row: Any) -> str:
    if row.deleted_at is not None:
        return "deleted"
    return "active" if row.is_active else "disabled"


# The bare pages' template helpers: what a hand-written app with the same markup would write.
# Hearth has its own in app/core/templating.py (this module imports nothing of Hearth); these
# do the same work per call: an icon and a badge are built once per status and label and then
# looked up (Hearth: `lru_cache`, plus the request's language), a `<time>` computes its words
# and its UTC title on every call, a size its unit. English only: the bare app has no
# translations, so its words are written in its templates (Hearth looks each up per request).

_ICON_PATHS = {
    "success": '<path d="M3.5 8.5l3 3 6-7" fill="none" stroke="currentColor" stroke-width="2" '
    'stroke-linecap="round" stroke-linejoin="round"/>',
    "info": '<circle cx="8" cy="8" r="6" fill="none" stroke="currentColor" stroke-width="1.75"/>'
    '<path d="M8 4.75V8l2.25 1.5" fill="none" stroke="currentColor" stroke-width="1.75" stroke-linecap="round"/>',
    "warning": '<path d="M8 2L1.5 13.5h13z" fill="none" stroke="currentColor" stroke-width="1.6" '
    'stroke-linejoin="round"/><path d="M8 6.5v3.25M8 11.6v.1" stroke="currentColor" stroke-width="1.75" '
    'stroke-linecap="round"/>',
    "danger": '<circle cx="8" cy="8" r="6" fill="none" stroke="currentColor" stroke-width="1.75"/>'
    '<path d="M5.75 5.75l4.5 4.5m0-4.5l-4.5 4.5" stroke="currentColor" stroke-width="1.75" stroke-linecap="round"/>',
    "neutral": '<circle cx="8" cy="8" r="5.5" fill="none" stroke="currentColor" stroke-width="1.75"/>'
    '<path d="M5.5 8h5" stroke="currentColor" stroke-width="1.75" stroke-linecap="round"/>',
    "close": '<path d="M4 4l8 8m0-8l-8 8" stroke="currentColor" stroke-width="2" stroke-linecap="round"/>',
    "menu": '<path d="M2 4h12M2 8h12M2 12h12" stroke="currentColor" stroke-width="1.75" stroke-linecap="round"/>',
}
_TONES = {
    **dict.fromkeys(("ready", "succeeded", "success", "active", "verified", "enabled", "done"), "success"),
    **dict.fromkeys(("pending", "queued", "scheduled", "running", "processing", "uploading"), "info"),
    **dict.fromkeys(("retrying", "unverified", "locked", "warning"), "warning"),
    **dict.fromkeys(("failed", "rejected", "dead", "error"), "danger"),
}
# The pages' words for upload kinds and statuses and for account statuses (filters, rows).
UPLOAD_KINDS = {"avatar": "Avatar", "document": "Document", "video": "Video"}
UPLOAD_STATUSES = {
    "pending": "Pending",
    "uploaded": "Uploaded",
    "processing": "Processing",
    "ready": "Ready",
    "rejected": "Rejected",
    "failed": "Failed",
}
EXPLAINED_STATUSES = frozenset({"rejected", "failed"})
USER_STATUSES = {"active": "Active", "disabled": "Disabled", "deleted": "Deleted", "all": "All"}


@functools.lru_cache(maxsize=64)
def icon(name: str, css_class: str = "icon") -> Markup:
    """An inline SVG icon, decorative."""
    return Markup(
        f'<svg class="{escape(css_class)}" aria-hidden="true" focusable="false" viewBox="0 0 16 16" '
        f'width="16" height="16">{_ICON_PATHS.get(name, _ICON_PATHS["neutral"])}</svg>'
    )


@functools.lru_cache(maxsize=512)
def badge(status: str, label: str | None = None) -> Markup:
    """A status as a badge: its tone's colour and icon, then its words (the `badge` filter)."""
    tone = _TONES.get(status, "neutral")
    text = label or status.replace("_", " ").capitalize()
    return Markup(f'<span class="badge badge--{tone}" data-status="{escape(status)}">{icon(tone)}{escape(text)}</span>')


_MINUTE, _HOUR, _DAY = 60, 3600, 86400


def _ago(seconds: float) -> str:
    """Seconds since a moment (negative: until it) in words, to one unit (moment.js's thresholds)."""
    ahead = seconds < 0
    seconds = abs(seconds)
    if seconds < 45:
        return "just now"
    if seconds < 45 * _MINUTE:
        count, unit = max(1, round(seconds / _MINUTE)), "minute"
    elif seconds < 22 * _HOUR:
        count, unit = round(seconds / _HOUR), "hour"
    elif seconds < 26 * _DAY:
        count, unit = round(seconds / _DAY), "day"
    elif seconds < 320 * _DAY:
        count, unit = max(1, round(seconds / (30 * _DAY))), "month"
    else:
        count, unit = max(1, round(seconds / (365 * _DAY))), "year"
    amount = f"{count} {unit}{'' if count == 1 else 's'}"
    return f"in {amount}" if ahead else f"{amount} ago"


def time_tag(value: datetime | None) -> Markup:
    """A moment as `<time>`: words ("3 years ago"), the instant, the UTC time as its title; or
    an em dash (the `time_tag` filter)."""
    if not value:
        return Markup("—")
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    words = _ago((datetime.now(UTC) - value).total_seconds())
    iso = value.isoformat()
    utc = value.astimezone(UTC).isoformat() if value.utcoffset() else iso
    return Markup(f'<time datetime="{iso}" title="{utc[:10]} {utc[11:19]} UTC">{words}</time>')


_SIZE_UNITS = ((1024**4, "TB"), (1024**3, "GB"), (1024**2, "MB"), (1024, "KB"))


def filesize(value: int | None) -> str:
    """Bytes for people: "512 B", "2.9 MB", or an em dash (the `filesize` filter)."""
    if value is None:
        return "—"
    for factor, unit in _SIZE_UNITS:
        if value >= factor:
            return f"{value / factor:.1f} {unit}"
    return f"{int(value)} B"


@functools.lru_cache(maxsize=1)
def toast_templates() -> Markup:
    """The empty toast of each level, for the layout's `<template>`s (built once)."""
    parts = []
    for level, tone in (("success", "success"), ("info", "info"), ("warning", "warning"), ("error", "danger")):
        role = "alert" if level == "error" else "status"
        parts.append(
            f'<template data-toast-template="{level}"><div class="toast toast--{level}" role="{role}" '
            f'data-level="{level}">{icon(tone, "icon toast__icon")}<p class="toast__message"></p>'
            f'<button type="button" class="toast__close ghost" aria-label="Dismiss">{icon("close")}</button>'
            "</div></template>"
        )
    return Markup("".join(parts))


def install_helpers(app: Any) -> None:
    """The bare app's template helpers: filters for what rows call, globals for the layout."""
    app.jinja_env.filters.update(badge=badge, time_tag=time_tag, filesize=filesize)
    app.jinja_env.globals.update(icon=icon, toast_templates=toast_templates)


class BarePages:
    """The bare app's two signed-in pages (module docstring). Built once per app."""

    def __init__(self, secret_key: str, idle_minutes: int) -> None:
        self.idle = timedelta(minutes=idle_minutes)
        self.cookie_name = session_cookie_name()
        # Flask's own cookie-session serializer (flask.sessions.SecureCookieSessionInterface),
        # built once rather than per request.
        self.serializer = URLSafeTimedSerializer(
            secret_key,
            salt="cookie-session",
            serializer=TaggedJSONSerializer(),
            signer_kwargs={"key_derivation": "hmac", "digest_method": hashlib.sha1},
        )

    def signed_in(self, session: Session, cookies: dict[str, str]) -> tuple[Any, str] | None:
        """(the user's row, the session's CSRF token) for a live session, else None."""
        raw = cookies.get(self.cookie_name)
        if not raw:
            return None
        try:
            data = self.serializer.loads(raw, max_age=int(self.idle.total_seconds()))
        except BadSignature:
            return None
        sid, user_ref = data.get("sid"), data.get("_user_id")
        if not sid or not user_ref:
            return None
        user_id, _, epoch = user_ref.partition(":")
        row = session.execute(_SIGNED_IN.where(user_sessions.c.id == sid)).first()
        now = datetime.now(UTC)
        if (
            row is None
            or str(row.user_id) != user_id
            or row.revoked_at is not None
            or row.expires_at <= now
            or now - row.last_seen_at > self.idle
            or not row.is_active
            or row.deleted_at is not None
            or str(row.session_epoch) != epoch
        ):
            return None
        return row, data.get("csrf_token", "")

    @staticmethod
    def files(session: Session, user_id: int, page: int) -> dict[str, Any]:
        """One page of the user's uploads, newest first, and the page count."""
        page = max(1, page)
        statement = _FILES.where(uploads.c.user_id == user_id)
        total = session.execute(select(func.count()).select_from(statement.order_by(None).subquery())).scalar_one()
        rows = session.execute(statement.limit(FILES_PER_PAGE).offset((page - 1) * FILES_PER_PAGE)).all()
        return {
            "uploads": rows,
            "final_statuses": FINAL_STATUSES,
            "explained_statuses": EXPLAINED_STATUSES,
            "kinds": UPLOAD_KINDS,
            "statuses": UPLOAD_STATUSES,
            "page": page,
            "pages": max(1, -(-total // FILES_PER_PAGE)),
        }

    @staticmethod
    def admin_users(session: Session, page: int) -> dict[str, Any]:
        """One page of users (not deleted) by email, their role names, and every role's name."""
        page = max(1, page)
        total = session.execute(_COUNT_USERS).scalar_one()
        rows = session.execute(_USERS_BY_EMAIL.limit(USERS_PER_PAGE).offset((page - 1) * USERS_PER_PAGE)).all()
        names: dict[int, list[str]] = defaultdict(list)
        for role in session.execute(_ROLES_OF.where(user_roles.c.user_id.in_([row.id for row in rows]))):
            names[role.user_id].append(role.name)
        listed = [
            {
                "id": row.id,
                "email": row.email,
                "display_name": row.display_name,
                "email_verified_at": row.email_verified_at,
                "status": user_status(row),
                "role_names": sorted(names[row.id]),
                "created_at": row.created_at,
                "last_login_at": row.last_login_at,
            }
            for row in rows
        ]
        return {
            "users": listed,
            "roles": list(session.execute(_ROLE_NAMES).scalars()),
            "status_words": USER_STATUSES,
            "page": page,
            "pages": max(1, -(-total // USERS_PER_PAGE)),
            "total": total,
        }


# Checks -------------------------------------------------------------------------------------

_CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)">')
_FINGERPRINT = re.compile(r"\.[0-9a-f]{12}\.(css|js|svg)\b")
_BETWEEN_TAGS = re.compile(r">\s+<")
_SPACES = re.compile(r"\s+")


def normalised(page: str) -> str:
    """A page with what legitimately differs between the two apps taken out: the CSRF token
    (Hearth's is signed, the bare page writes the session's raw one), static files'
    fingerprints, and whitespace between and inside tags."""
    token = _CSRF_META.search(page)
    if token:
        page = page.replace(token.group(1), "CSRF-TOKEN")
    page = _FINGERPRINT.sub(r".\1", page)
    return _SPACES.sub(" ", _BETWEEN_TAGS.sub("><", page)).strip()


def first_difference(a: str, b: str, context: int = 200) -> str:
    at = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
    start, end = max(0, at - context), at + context
    return f"at {at}:\n  full: {a[start:end]!r}\n  bare: {b[start:end]!r}"


# The scenario (bench/run.py) ----------------------------------------------------------------


def _exchange(server: Any, method: str, path: str, jar: dict[str, str], form: dict | None = None) -> tuple[int, bytes]:
    """One request with the jar's cookies; the Set-Cookie headers of the answer go into the jar."""
    connection = http.client.HTTPConnection(server.url("/").split("//")[1].split("/")[0], timeout=10)
    try:
        headers = {"Cookie": cookie_header(jar)} if jar else {}
        body = None
        if form is not None:
            body = urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        for name, value in response.getheaders():
            if name.lower() == "set-cookie":
                cookie, _, _attributes = value.partition(";")
                key, _, content = cookie.partition("=")
                if content:
                    jar[key.strip()] = content
                else:
                    jar.pop(key.strip(), None)
        return response.status, response.read()
    finally:
        connection.close()


def cookie_header(jar: dict[str, str]) -> str:
    return "; ".join(f"{name}={value}" for name, value in jar.items())


def sign_in(server: Any, email: str, password: str) -> str:
    """Sign in through the real form, as a browser does; returns the `Cookie` header to send.

    GET the form (its CSRF token, and the session cookie it belongs to), POST it, then GET the
    page it redirects to, which shows (and so consumes) the welcome flash: the cookie returned
    is that of a signed-in session with nothing pending, as every later page view has."""
    jar: dict[str, str] = {}
    status, body = _exchange(server, "GET", LOGIN_PATH, jar)
    token = re.search(rb'name="csrf_token"[^>]*value="([^"]+)"', body)
    if status != 200 or token is None:
        raise SystemExit(f"GET {LOGIN_PATH} answered {status} without a CSRF token: {body[:300]!r}")
    form = {"csrf_token": token.group(1).decode(), "email": email, "password": password}
    status, body = _exchange(server, "POST", LOGIN_PATH, jar, form)
    if status != 302:
        raise SystemExit(f"POST {LOGIN_PATH} as {email} answered {status}: {body[:300]!r}")
    status, body = _exchange(server, "GET", "/", jar)
    if status != 200 or b"Welcome back" not in body:
        raise SystemExit(f"GET / after signing in answered {status} without the welcome flash")
    return cookie_header(jar)


def verify(full: Any, bare: Any, cookie: str, expected_rows: dict[str, int]) -> dict[str, Any]:
    """Both apps answer each page signed in, with the same HTML (`normalised`) and a full page
    of rows."""
    jar = dict(part.split("=", 1) for part in cookie.split("; "))
    checks: dict[str, Any] = {}
    for name, (full_path, bare_path) in PAGES.items():
        pages = {}
        for key, server, path in (("full", full, full_path), ("bare", bare, bare_path)):
            status, body = _exchange(server, "GET", path, dict(jar))
            if status != 200:
                raise SystemExit(f"{key} {path} answered {status} with the signed-in cookie: {body[:300]!r}")
            pages[key] = body.decode()
        if "Sign out" not in pages["full"]:
            raise SystemExit(f"{full_path} does not show a signed-in page")
        full_page, bare_page = normalised(pages["full"]), normalised(pages["bare"])
        if full_page != bare_page:
            raise SystemExit(f"{full_path} and {bare_path} differ {first_difference(full_page, bare_page)}")
        row = '<tr id="upload-' if name == "files" else "<tr data-user="
        rows = pages["full"].count(row)
        if rows != expected_rows[name]:
            raise SystemExit(f"{full_path} shows {rows} rows, expected {expected_rows[name]}")
        checks[name] = {"rows": rows, "bytes_full": len(pages["full"]), "bytes_bare": len(pages["bare"])}
    return checks


def scenario_pages(
    ctx: Any,
    env: dict[str, str],
    workdir: Path,
    target: Callable[..., Any],
    full_vs_bare: Callable[[str, list[dict], list[dict]], dict],
    full_key: str = "full",
    bare_key: str = "bare",
) -> dict[str, Any]:
    """The real pages, full stack vs bare, signed in as the seeded admin (module docstring).

    `target(label, server, path, headers)` and `full_vs_bare(path, full_runs, bare_runs)` are
    bench/run.py's `Target` and `full_vs_bare`, so these rows read like the other comparisons."""
    full, bare = ctx.servers[full_key], ctx.servers[bare_key]
    cookie = sign_in(full, ctx.seed["admin_email"], ctx.seed["password"])
    expected = {
        "files": min(FILES_PER_PAGE, ctx.seed["admin_uploads"]),
        "admin_users": min(USERS_PER_PAGE, ctx.seed["listed"]),
    }
    result: dict[str, Any] = {"checks": verify(full, bare, cookie, expected), "pages": {}}
    print("  checks passed: both apps answer the same signed-in /files/ and /admin/users", flush=True)
    # A quick run counts the statements and takes a rough in-process figure; a full one, 5 rounds.
    sizing = {"BENCH_PAGES_REQUESTS": "60", "BENCH_PAGES_ROUNDS": "3"} if getattr(ctx.args, "quick", False) else {}
    done = subprocess.run(
        [sys.executable, "-m", "bench.pages", "anatomy"],
        cwd=workdir,
        env={**env, "BENCH_COOKIE": cookie, **sizing},
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode != 0:
        raise SystemExit(f"bench.pages anatomy failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
    anatomy_report = json.loads(done.stdout.strip().splitlines()[-1])
    headers = (("Cookie", cookie),)
    for name, (full_path, bare_path) in PAGES.items():
        targets = [target("full stack", full, full_path, headers), target("bare Flask", bare, bare_path, headers)]
        ctx.warm(targets)
        runs = ctx.compare(targets, ctx.args.rounds, ctx.args.duration, f"page {name}")
        page = full_vs_bare(full_path, runs["full stack"], runs["bare Flask"])
        inside = anatomy_report[name]
        page["bare_path"] = bare_path
        page["in_process"] = {
            "full_cpu_us": inside["full"]["cpu_us_per_request"],
            "bare_cpu_us": inside["bare"]["cpu_us_per_request"],
            "ratio_cpu": inside["ratio_cpu"],
        }
        page["sql"] = {
            key: {"per_request": inside[key]["sql_per_request"], "statements": inside[key]["sql"]}
            for key in ("full", "bare")
        }
        result["pages"][name] = page
        print(
            f"  page {name}: CPU ratio {page['ratio_cpu']:.2f} (in-process {inside['ratio_cpu']:.2f}), "
            f"SQL per request full {inside['full']['sql_per_request']} / bare {inside['bare']['sql_per_request']}",
            flush=True,
        )
    return result


# In-process anatomy -------------------------------------------------------------------------


def _environ(path: str, cookie: str) -> dict[str, Any]:
    """A GET as gunicorn's worker hands it to the app, from wrk: loopback, the bench's host name,
    no User-Agent (like the sign-in's; Flask-Login's session protection compares the two)."""
    route, _, query = path.partition("?")
    return {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": route,
        "QUERY_STRING": query,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "REMOTE_PORT": "50000",
        "HTTP_HOST": "127.0.0.1:8000",
        "HTTP_COOKIE": cookie,
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": sys.stderr,
        "wsgi.url_scheme": "http",
        "wsgi.version": (1, 0),
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "SCRIPT_NAME": "",
    }


def _get(app: Callable, path: str, cookie: str) -> tuple[str, bytes]:
    answered: list[str] = []
    body = app(_environ(path, cookie), lambda status, headers, exc_info=None: answered.append(status))
    try:
        data = b"".join(body)
    finally:
        if hasattr(body, "close"):
            body.close()
    return answered[0], data


def anatomy(cookie: str, requests: int = 200, rounds: int = 5) -> dict[str, Any]:
    """For each page, in one process: the SQL statements each app runs per request, and each
    app's thread CPU per request (median of `rounds` alternating passes of `requests`)."""
    # Here, not at the top: importing the apps builds them (and their engines), which only
    # this subprocess should do; bench/run.py and the bare app import this module too.
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    from bench.bare_app import app as bare_app
    from bench.fullstack_app import app as full_app

    statements: list[str] = []
    counting = False

    @event.listens_for(Engine, "before_cursor_execute")
    def _count(conn, cursor, statement, parameters, context, executemany) -> None:
        if counting:
            statements.append(" ".join(statement.split()))

    apps = {"full": full_app, "bare": bare_app}
    report: dict[str, Any] = {}
    for name, paths in PAGES.items():
        page: dict[str, Any] = {}
        for key, path in zip(("full", "bare"), paths, strict=True):
            for _ in range(50):  # warm: templates compiled, statements cached, pool filled
                status, _ = _get(apps[key], path, cookie)
            if not status.startswith("200"):
                raise SystemExit(f"{key} {path} answered {status} in-process")
            statements.clear()
            counting = True
            _get(apps[key], path, cookie)
            counting = False
            page[key] = {"path": path, "sql_per_request": len(statements), "sql": list(statements)}
        cpu: dict[str, list[float]] = {"full": [], "bare": []}
        for round_index in range(rounds):
            order = ("full", "bare") if round_index % 2 == 0 else ("bare", "full")
            for key in order:
                started = time.thread_time_ns()
                for _ in range(requests):
                    _get(apps[key], page[key]["path"], cookie)
                cpu[key].append((time.thread_time_ns() - started) / requests / 1000)
        for key in ("full", "bare"):
            page[key]["cpu_us_per_request"] = round(statistics.median(cpu[key]), 1)
            page[key]["cpu_us_rounds"] = [round(value, 1) for value in cpu[key]]
        # Each round's pair measured back to back: the median of their ratios resists a
        # neighbour's burst better than the ratio of medians.
        page["ratio_cpu"] = round(statistics.median(b / f for f, b in zip(cpu["full"], cpu["bare"], strict=True)), 3)
        report[name] = page
    return report


def main() -> None:
    if sys.argv[1:2] != ["anatomy"]:
        raise SystemExit("usage: python -m bench.pages anatomy  (BENCH_COOKIE: the signed-in Cookie header)")
    # The request log to nowhere, as if written to a file: its cost counts, its lines don't show.
    with open(os.devnull, "w") as devnull:
        for handler in logging.getLogger().handlers:
            if isinstance(handler, logging.StreamHandler):
                handler.setStream(devnull)
        requests = int(os.environ.get("BENCH_PAGES_REQUESTS", "200"))
        rounds = int(os.environ.get("BENCH_PAGES_ROUNDS", "5"))
        result = anatomy(os.environ["BENCH_COOKIE"], requests=requests, rounds=rounds)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
