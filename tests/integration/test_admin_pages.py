"""The /admin pages: every page and action with every role (allowed and refused), audit rows,
CSRF, the last-admin rule, the users export button, and job retry/revoke changing what huey
really runs."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select

from app.audit.models import AuditEvent
from app.core.database import utcnow
from app.core.unit_of_work import unit_of_work
from app.extensions import db
from app.jobs.models import Job, JobStatus
from app.jobs.queues import QUEUES_KEY
from app.rbac.catalog import ROLES as CATALOG_ROLES
from app.rbac.models import Role
from app.uploads.models import Upload, UploadStatus
from app.users.models import User
from tests.conftest import ROLES
from tests.support import csrf_token

BUILT_IN_GRID = sorted(f"{role}|{permission}" for role, (_, granted) in CATALOG_ROLES.items() for permission in granted)


def post(client, path, **data):
    """A form POST with a valid CSRF token, already confirmed, as a browser after the dialog."""
    return client.post(path, data={"csrf_token": csrf_token(client, "/"), "confirmed": "yes", **data})


TOAST = re.compile(r'<div class="toast toast--(\w+)"[^>]*>.*?<p class="toast__message">([^<]+)</p>', re.S)


def toasts(html: str) -> dict[str, list[str]]:
    """The messages a page shows as toasts (flashed by the action before it), by level; the
    empty toast templates hearth.js clones are left out."""
    shown: dict[str, list[str]] = {}
    for level, message in TOAST.findall(html):
        shown.setdefault(level, []).append(message)
    return shown


@pytest.fixture()
def clients(app, people, auth):
    """A new browser signed in as `people[role]`."""

    def client_for(role):
        return auth(app.test_client()).signed_in(f"{role}@example.com")

    return client_for


def _user(app, email) -> User:
    with app.app_context():
        user = db.session.scalar(select(User).where(User.email == email))
        _ = user.role_names
        db.session.expunge(user)
        return user


def _events(app, name) -> list[AuditEvent]:
    with app.app_context():
        events = db.session.scalars(select(AuditEvent).where(AuditEvent.event == name).order_by(AuditEvent.id)).all()
        for event in events:
            db.session.expunge(event)
        return list(events)


def _job(app, status=JobStatus.failed, **fields) -> str:
    failed = status == JobStatus.failed
    values = {
        "id": str(uuid.uuid4()),
        "queue": "emails",
        "task": "tasks.emails.send_email",
        "payload": {"to": "j@example.com", "template": "test_message", "context": {"address": "j@example.com"}},
        "args_summary": {"to": "j@example.com", "template": "test_message"},
        "attempts": 4 if failed else 0,
        "max_attempts": 4,
        "error": "SMTPServerDisconnected: Connection unexpectedly closed" if failed else None,
        "traceback": "Traceback (most recent call last):\n  ...\nSMTPServerDisconnected" if failed else None,
        "finished_at": utcnow() if status in (JobStatus.failed, JobStatus.succeeded) else None,
    }
    with app.app_context():
        job = Job(status=status, **{**values, **fields})
        db.session.add(job)
        db.session.commit()
        return job.id


def _job_status(app, job_id) -> str:
    with app.app_context():
        return db.session.get(Job, job_id).status


# Pages: who may open what ------------------------------------------------------------------

PAGES = [
    ("/admin/", {"admin": 200, "manager": 200, "user": 403, "viewer": 403}),
    ("/admin/users", {"admin": 200, "manager": 200, "user": 403, "viewer": 403}),
    ("/admin/users/{target}", {"admin": 200, "manager": 200, "user": 403, "viewer": 403}),
    ("/admin/roles", {"admin": 200, "manager": 403, "user": 403, "viewer": 403}),
    ("/admin/uploads", {"admin": 200, "manager": 200, "user": 403, "viewer": 403}),
    ("/admin/jobs", {"admin": 200, "manager": 200, "user": 403, "viewer": 403}),
    ("/admin/jobs/{job}", {"admin": 200, "manager": 200, "user": 403, "viewer": 403}),
    ("/admin/audit", {"admin": 200, "manager": 403, "user": 403, "viewer": 403}),
]


@pytest.mark.parametrize(("path", "expected"), PAGES, ids=[p for p, _ in PAGES])
def test_each_page_needs_its_permission(app, clients, make_user, path, expected):
    target = make_user(email="target@example.com")
    job_id = _job(app)
    url = path.format(target=target.id, job=job_id)
    for role, status in expected.items():
        assert clients(role).get(url).status_code == status, (role, url)
    anonymous = app.test_client().get(url)
    assert anonymous.status_code == 302 and "/auth/login" in anonymous.headers["Location"]


def test_a_manager_sees_only_what_it_may_use(app, clients, make_user):
    target = make_user(email="target@example.com")
    _job(app)
    manager = clients("manager")
    nav = manager.get("/admin/").get_data(as_text=True)
    assert 'href="/admin/users"' in nav and 'href="/admin/jobs"' in nav
    assert 'href="/admin/roles"' not in nav and 'href="/admin/audit"' not in nav
    detail = manager.get(f"/admin/users/{target.id}").get_data(as_text=True)
    assert "Disable" in detail and "Force sign-out" in detail
    assert "Save roles" not in detail and ">Delete<" not in detail and "Audit trail" not in detail
    jobs = manager.get("/admin/jobs").get_data(as_text=True)
    assert ">Retry<" not in jobs and "Retry all failed" not in jobs and "Run now" not in jobs and "Purge" not in jobs
    admin_jobs = clients("admin").get("/admin/jobs").get_data(as_text=True)
    assert ">Retry<" in admin_jobs and "Run now" in admin_jobs
    # The plain user gets no Admin link at all.
    assert 'href="/admin/"' not in clients("user").get("/files/").get_data(as_text=True)
    assert 'href="/admin/"' in manager.get("/files/").get_data(as_text=True)


# Actions: allowed and refused per role ----------------------------------------------------

ACTIONS = [
    # (path, form, allowed roles)
    ("/admin/users/{target}/disable", {}, {"admin", "manager"}),
    ("/admin/users/{disabled}/enable", {}, {"admin", "manager"}),
    ("/admin/users/{target}/verify", {}, {"admin", "manager"}),
    ("/admin/users/{target}/password-reset", {}, {"admin", "manager"}),
    ("/admin/users/{target}/sign-out", {}, {"admin", "manager"}),
    ("/admin/users/{target}/roles", {"roles": ["manager"]}, {"admin"}),
    ("/admin/users/{target}/delete", {}, {"admin"}),
    ("/admin/users/bulk", {"action": "disable", "user_ids": ["{target}"]}, {"admin", "manager"}),
    ("/admin/users/bulk", {"action": "assign_role", "role": "viewer", "user_ids": ["{target}"]}, {"admin"}),
    ("/admin/users/export", {"kind": "users_csv", "status": "active"}, {"admin", "manager"}),
    ("/admin/roles", {"name": "support", "grant": ["users:read"]}, {"admin"}),
    # The whole grid as the page posts it (built-in grants unchanged), plus one new tick.
    ("/admin/roles/matrix", {"grant": [*BUILT_IN_GRID, "temp|audit:read"]}, {"admin"}),
    ("/admin/roles/temp/delete", {}, {"admin"}),
    ("/admin/uploads/{upload}/delete", {}, {"admin"}),
    ("/admin/uploads/{upload}/reprocess", {}, {"admin"}),
    ("/admin/jobs/{job}/retry", {}, {"admin"}),
    ("/admin/jobs/{queued}/revoke", {}, {"admin"}),
    ("/admin/jobs/retry-failed", {}, {"admin"}),
    ("/admin/jobs/purge", {"days": "0"}, {"admin"}),
    ("/admin/jobs/periodic/sweep_jobs/run", {}, {"admin"}),
]


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(("path", "form", "allowed"), ACTIONS, ids=[f"{a[0]} {a[1]}" for a in ACTIONS])
def test_each_action_is_allowed_or_refused_by_role(app, clients, make_user, monkeypatch, role, path, form, allowed):
    from app.rbac import management as role_management

    monkeypatch.setattr(
        app.extensions[QUEUES_KEY], "dispatch", lambda *args: None
    )  # nothing runs: only the action counts
    ids = {
        "target": make_user(email="target@example.com", display_name="Target").id,
        "disabled": make_user(email="off@example.com", is_active_account=False).id,
        "job": _job(app),
        "queued": _job(app, status=JobStatus.queued),
        "upload": "up-1",
    }
    with app.app_context():
        role_management.create_role(_user(app, "admin@example.com"), "temp", "", [])
        db.session.add(
            Upload(
                id="up-1",
                user_id=ids["target"],
                kind="document",
                status="ready",
                filename="a.pdf",
                content_type="application/pdf",
                declared_size=10,
                size=10,
                key="k/up-1",
            )
        )
        db.session.commit()
    data = {k: [v.format(**ids) for v in vs] if isinstance(vs, list) else vs for k, vs in form.items()}
    client = clients(role)
    before = _count_audit(app)
    response = post(client, path.format(**ids), **data)
    if role in allowed:
        assert response.status_code == 302, response.get_data(as_text=True)[:500]
        flashed = toasts(client.get(response.headers["Location"]).get_data(as_text=True))
        assert "success" in flashed and "error" not in flashed, flashed
        assert _count_audit(app) > before  # every admin action leaves an audit row
    else:
        assert response.status_code == 403
        assert _count_audit(app) == before


def _count_audit(app) -> int:
    with app.app_context():
        return db.session.scalar(select(db.func.count()).select_from(AuditEvent)) or 0


@pytest.mark.parametrize(
    "path",
    [
        "/admin/users/{target}/disable",
        "/admin/users/{target}/roles",
        "/admin/users/{target}/sign-out",
        "/admin/users/bulk",
        "/admin/roles",
        "/admin/roles/matrix",
        "/admin/jobs/{job}/retry",
        "/admin/jobs/purge",
    ],
)
def test_actions_refuse_a_missing_csrf_token(app, clients, make_user, path):
    target = make_user(email="target@example.com")
    job_id = _job(app)
    response = clients("admin").post(path.format(target=target.id, job=job_id), data={"confirmed": "yes"})
    assert response.status_code == 400
    assert _user(app, "target@example.com").is_active_account
    assert _job_status(app, job_id) == JobStatus.failed


def test_without_javascript_a_destructive_action_asks_first(app, clients, make_user):
    target = make_user(email="target@example.com")
    admin = clients("admin")
    page = admin.post(f"/admin/users/{target.id}/disable", data={"csrf_token": csrf_token(admin, "/")})
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "Are you sure?" in html and 'name="confirmed" value="yes"' in html
    assert _user(app, "target@example.com").is_active_account  # nothing happened yet
    response = post(admin, f"/admin/users/{target.id}/disable")
    assert response.status_code == 302 and not _user(app, "target@example.com").is_active_account


# What the actions do, and what they write to the audit trail ------------------------------


def test_disabling_signs_the_user_out_and_audits_before_and_after(app, clients, make_user, auth):
    target = make_user(email="target@example.com")
    victim = auth(app.test_client()).signed_in("target@example.com")
    assert victim.get("/account/").status_code == 200
    post(clients("admin"), f"/admin/users/{target.id}/disable", next="/admin/users")
    assert victim.get("/account/").status_code == 302  # the session died
    [event] = _events(app, "user_disabled")
    admin = _user(app, "admin@example.com")
    assert event.actor_user_id == admin.id and event.target == f"user:{target.id}"
    assert event.data["before"] == {"is_active": True} and event.data["after"] == {"is_active": False}
    assert event.request_id and event.ip == "127.0.0.1"


def test_a_role_change_takes_effect_for_that_user(app, clients, make_user, auth):
    target = make_user(email="target@example.com")
    them = auth(app.test_client()).signed_in("target@example.com")
    assert them.get("/admin/users").status_code == 403
    post(clients("admin"), f"/admin/users/{target.id}/roles", roles=["manager", "user"])
    assert them.get("/admin/users").status_code == 200
    [event] = _events(app, "roles_changed")
    assert event.data == {"before": {"roles": ["user"]}, "after": {"roles": ["manager", "user"]}}


def test_force_sign_out_ends_sessions_and_refresh_tokens(app, clients, make_user, auth, api_auth):
    target = make_user(email="target@example.com")
    tokens = api_auth.tokens(target)
    them = auth(app.test_client()).signed_in("target@example.com")
    post(clients("manager"), f"/admin/users/{target.id}/sign-out")
    assert them.get("/account/").status_code == 302
    api = app.test_client()
    assert api.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}).status_code == 401
    me = api.get("/api/v1/me", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert me.status_code == 401
    [event] = _events(app, "user_signed_out_by_admin")
    assert event.data["after"]["session_epoch"] == event.data["before"]["session_epoch"] + 1


def test_mark_verified_and_send_reset(app, clients, make_user, monkeypatch):
    target = make_user(email="target@example.com")
    admin = clients("admin")
    post(admin, f"/admin/users/{target.id}/verify")
    assert _user(app, "target@example.com").email_verified_at is not None
    post(admin, f"/admin/users/{target.id}/password-reset")
    with app.app_context():
        job = db.session.scalars(select(Job).where(Job.task == "tasks.emails.send_email")).one()
        assert job.args_summary == {"to": "target@example.com", "template": "password_reset"}
        assert job.user_id == target.id
    assert [e.event for e in _events(app, "password_reset_sent_by_admin")] == ["password_reset_sent_by_admin"]


def test_bulk_disable_and_bulk_assign_role_report_what_they_skipped(app, clients, make_user):
    a = make_user(email="a@example.com")
    b = make_user(email="b@example.com")
    admin = _user(app, "admin@example.com")
    client = clients("admin")
    response = post(client, "/admin/users/bulk", action="disable", user_ids=[str(a.id), str(b.id), str(admin.id)])
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Disabled 2 users." in page and "You cannot disable your own account." in page
    assert not _user(app, "a@example.com").is_active_account and not _user(app, "b@example.com").is_active_account
    assert _user(app, "admin@example.com").is_active_account
    post(client, "/admin/users/bulk", action="assign_role", role="viewer", user_ids=[str(a.id), str(b.id)])
    assert "viewer" in _user(app, "a@example.com").role_names and "viewer" in _user(app, "b@example.com").role_names
    assert len(_events(app, "roles_changed")) == 2


def test_a_manager_cannot_bulk_assign_roles(app, clients, make_user):
    a = make_user(email="a@example.com")
    client = clients("manager")
    response = post(client, "/admin/users/bulk", action="assign_role", role="admin", user_ids=[str(a.id)])
    assert response.status_code == 403
    assert _user(app, "a@example.com").role_names == ["user"]


# The last administrator ---------------------------------------------------------------------


@pytest.fixture()
def keeper(app, make_user):
    """Someone with every permission but not the admin role: the only one who could lock the
    site out by demoting or disabling the last admin."""
    from app.rbac import management as role_management
    from app.rbac.catalog import PERMISSIONS

    with app.app_context():
        role_management.create_role(_user(app, "admin@example.com"), "keeper", "", list(PERMISSIONS))
    return make_user(email="keeper@example.com", roles=("keeper",))


def test_the_last_admin_cannot_be_demoted_disabled_or_deleted(app, clients, people, keeper, auth):
    admin = _user(app, "admin@example.com")
    client = auth(app.test_client()).signed_in("keeper@example.com")
    for path, form in (
        (f"/admin/users/{admin.id}/roles", {"roles": ["user"]}),
        (f"/admin/users/{admin.id}/disable", {}),
        (f"/admin/users/{admin.id}/delete", {}),
        ("/admin/users/bulk", {"action": "disable", "user_ids": [str(admin.id)]}),
    ):
        response = post(client, path, **form)
        page = client.get(response.headers["Location"]).get_data(as_text=True)
        assert "last active administrator" in page, path
    after = _user(app, "admin@example.com")
    assert after.role_names == ["admin"] and after.is_active


def test_with_a_second_admin_one_can_be_demoted(app, clients, people, keeper, make_user, auth):
    make_user(email="admin2@example.com", roles=("admin",))
    admin = _user(app, "admin@example.com")
    post(auth(app.test_client()).signed_in("keeper@example.com"), f"/admin/users/{admin.id}/roles", roles=["user"])
    assert _user(app, "admin@example.com").role_names == ["user"]


def _grid(html: str) -> list[str]:
    """What the grid form posts as it stands: ticked boxes and read-only ticks (hidden fields)."""
    return re.findall(r'name="grant" value="([^"]+)" checked', html) + re.findall(
        r'type="hidden" name="grant" value="([^"]+)"', html
    )


def _role_permissions(app, name: str) -> set[str]:
    with app.app_context():
        return {p.name for p in db.session.scalar(select(Role).where(Role.name == name)).permissions}


@pytest.mark.parametrize("taken", ["roles:manage", "audit:read"])
def test_the_admin_role_loses_no_permission_in_the_grid(app, clients, taken):
    client = clients("admin")
    html = client.get("/admin/roles").get_data(as_text=True)
    # Its ticks are read-only (sent as hidden fields); a hand-made post is refused all the same.
    assert re.search(rf'value="admin\|{taken}" checked\s+disabled', html)
    response = post(client, "/admin/roles/matrix", grant=[g for g in _grid(html) if g != f"admin|{taken}"])
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "always keeps every permission" in page and "error" in toasts(page)
    assert _role_permissions(app, "admin") == set(CATALOG_ROLES["admin"][1])
    assert _events(app, "role_updated") == []


def test_the_grid_saves_every_changed_role_or_none(app, clients):
    client = clients("admin")
    grid = _grid(client.get("/admin/roles").get_data(as_text=True))
    # "manager" is saved before "viewer" is refused: one unit of work, so neither change is kept.
    response = post(client, "/admin/roles/matrix", grant=[*grid, "manager|audit:read", "viewer|no:such"])
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Unknown permission(s): no:such." in page and "error" in toasts(page)
    assert "audit:read" not in _role_permissions(app, "manager")
    assert _events(app, "role_updated") == []


def test_a_holder_of_only_roles_manage_cannot_disarm_the_admins_in_the_browser(app, people, make_user, auth):
    """Finding 2 of issue 10, through /admin/roles: the grid save, and deleting a role."""
    from app.rbac import management as role_management

    with app.app_context():
        role_management.create_role(_user(app, "admin@example.com"), "gatekeeper", "", ["roles:manage"])
        role_management.create_role(_user(app, "admin@example.com"), "reader", "", ["users:read"])
    make_user(email="gate@example.com", roles=("gatekeeper",))
    client = auth(app.test_client()).signed_in("gate@example.com")
    html = client.get("/admin/roles").get_data(as_text=True)
    # Roles holding permissions they lack are shown read-only, with no Delete button.
    for role in ("admin", "manager", "reader"):
        assert not re.search(rf'value="{role}\|[^"]+"(?: checked)?\s+aria-label', html), role
    assert "holds permissions you do not have: cannot be deleted" in html
    assert re.search(r'value="viewer\|roles:manage"\s+aria-label', html)  # theirs to grant

    for grant in (
        ["admin|roles:manage"],  # the attack: strip the admin role down to roles:manage
        [g for g in _grid(html) if not g.startswith("manager|")],
        [*_grid(html), "reader|roles:manage"],
    ):
        response = post(client, "/admin/roles/matrix", grant=grant)
        page = client.get(response.headers["Location"]).get_data(as_text=True)
        assert "holds permissions you do not have" in page and "error" in toasts(page)
    response = post(client, "/admin/roles/reader/delete")
    assert "holds permissions you do not have" in client.get(response.headers["Location"]).get_data(as_text=True)

    assert _role_permissions(app, "admin") == set(CATALOG_ROLES["admin"][1])
    assert _role_permissions(app, "manager") == set(CATALOG_ROLES["manager"][1])
    assert _role_permissions(app, "reader") == {"users:read"}
    assert _events(app, "role_updated") == [] and _events(app, "role_deleted") == []
    assert auth(app.test_client()).signed_in("admin@example.com").get("/admin/audit").status_code == 200

    # The page as shown still saves what is theirs to change: the read-only ticks are no change.
    response = post(client, "/admin/roles/matrix", grant=[*_grid(html), "viewer|roles:manage"])
    assert "success" in toasts(client.get(response.headers["Location"]).get_data(as_text=True))
    assert _role_permissions(app, "viewer") == {"roles:manage"}
    assert [event.target for event in _events(app, "role_updated")] == ["role:viewer"]


def test_the_admin_role_keeps_roles_manage_and_roles_in_use_are_not_deleted(app, clients, make_user):
    client = clients("admin")
    # Untick everything in the grid: the admin role must keep every permission.
    response = post(client, "/admin/roles/matrix", grant=["manager|users:read"])
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "always keeps" in page
    assert _role_permissions(app, "admin") == set(CATALOG_ROLES["admin"][1])
    post(client, "/admin/roles", name="support", grant=["users:read"])
    make_user(email="s@example.com", roles=("support",))
    response = post(client, "/admin/roles/support/delete")
    assert "take it away from them first" in client.get(response.headers["Location"]).get_data(as_text=True)
    response = post(client, "/admin/roles/user/delete")
    assert "built-in" in client.get(response.headers["Location"]).get_data(as_text=True)


def test_the_permission_grid_saves_and_audits_each_changed_role(app, clients):
    client = clients("admin")
    html = client.get("/admin/roles").get_data(as_text=True)
    ticked = re.findall(r'name="grant" value="([^"]+)" checked', html)
    ticked += re.findall(r'type="hidden" name="grant" value="([^"]+)"', html)
    post(client, "/admin/roles/matrix", grant=[*ticked, "viewer|audit:read"])
    with app.app_context():
        viewer = db.session.scalar(select(Role).where(Role.name == "viewer"))
        assert [p.name for p in viewer.permissions] == ["audit:read"]
    [event] = _events(app, "role_updated")
    assert event.target == "role:viewer" and event.data["after"] == {"permissions": ["audit:read"]}
    # The viewer now reads the audit trail (and sees it in the admin).
    assert clients("viewer").get("/admin/audit").status_code == 200


# Lists: filters in the query string, partial swaps, CSV ------------------------------------


def test_user_list_filters_sort_and_htmx_partials(app, clients, make_user):
    make_user(email="alice@example.com", display_name="Alice")
    make_user(email="bob@example.com", display_name="Bob", is_active_account=False)
    client = clients("admin")
    page = client.get("/admin/users?q=ali").get_data(as_text=True)
    assert "alice@example.com" in page and "bob@example.com" not in page and "<html" in page
    partial = client.get("/admin/users?status=disabled", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "bob@example.com" in partial and "alice@example.com" not in partial and "<html" not in partial
    # The header's export form follows the filters the swap applied (out of band).
    assert re.search(r'<form method="post" action="/admin/users/export" id="users-export"[^>]*hx-swap-oob', partial)
    assert '<input type="hidden" name="status" value="disabled">' in partial
    # History restores get the whole page again.
    restore = client.get(
        "/admin/users?status=disabled", headers={"HX-Request": "true", "HX-History-Restore-Request": "true"}
    )
    assert "<html" in restore.get_data(as_text=True)
    ordered = client.get("/admin/users?sort=-email").get_data(as_text=True)
    assert ordered.index("viewer@example.com") < ordered.index("alice@example.com")
    assert "No users match" in client.get("/admin/users?q=nobody-at-all").get_data(as_text=True)
    verified = client.get("/admin/users?verified=no").get_data(as_text=True)
    assert "alice@example.com" in verified and "admin@example.com" not in verified


# The users export runs on the `reports` queue now (tests/integration/test_exports_pages.py);
# its streaming and formula-injection defence are the renderer's (app/exports/renderers).


def test_job_list_search_by_id_task_user_and_arguments(app, clients, make_user):
    owner = make_user(email="owner@example.com")
    mine = _job(app, user_id=owner.id)
    other = _job(app, status=JobStatus.succeeded, args_summary={"upload_id": "abc-123"})
    client = clients("admin")

    def listed(query):
        html = client.get(f"/admin/jobs?{query}").get_data(as_text=True)
        return {job_id for job_id in (mine, other) if f'data-job="{job_id}"' in html}

    assert listed(f"q={mine[:8]}") == {mine}
    assert listed("q=owner@") == {mine}
    assert listed("q=abc-123") == {other}
    assert listed("q=send_email") == {mine, other}
    assert listed("status=failed") == {mine}
    assert listed("queue=emails&status=succeeded") == {other}
    assert listed(f"user={owner.id}") == {mine}
    rows = client.get("/admin/jobs?status=failed&fragment=rows", headers={"HX-Request": "true"})
    assert 'id="job-table"' in rows.get_data(as_text=True) and "every 3s" in rows.get_data(as_text=True)


def test_job_detail_shows_the_traceback_request_and_user(app, clients, make_user):
    owner = make_user(email="owner@example.com")
    job_id = _job(app, user_id=owner.id, request_id="req-abc-123")
    html = clients("admin").get(f"/admin/jobs/{job_id}").get_data(as_text=True)
    assert "Traceback (most recent call last)" in html and "req-abc-123" in html and "owner@example.com" in html
    assert "payload" not in html.lower() or "j@example.com" in html  # only the summary is shown


def test_upload_admin_lists_everyones_files_and_reprocesses(app, clients, make_user, monkeypatch):
    owner = make_user(email="owner@example.com")
    with app.app_context():
        for status in ("ready", "failed"):
            db.session.add(
                Upload(
                    id=f"up-{status}",
                    user_id=owner.id,
                    kind="document",
                    status=status,
                    filename=f"{status}.pdf",
                    content_type="application/pdf",
                    declared_size=10,
                    size=10,
                    key=f"k/{status}",
                )
            )
        db.session.commit()
    client = clients("admin")
    html = client.get("/admin/uploads?owner=owner@").get_data(as_text=True)
    assert "ready.pdf" in html and "failed.pdf" in html
    assert "failed.pdf" not in client.get("/admin/uploads?status=ready").get_data(as_text=True)
    assert "Processing jobs" in client.get("/admin/uploads/up-failed").get_data(as_text=True)

    calls = []
    monkeypatch.setattr(app.extensions[QUEUES_KEY], "dispatch", lambda job_id, task, delay: calls.append(task))
    post(client, "/admin/uploads/up-failed/reprocess")
    assert calls == ["tasks.uploads.process_upload"]
    with app.app_context():
        assert db.session.get(Upload, "up-failed").status == UploadStatus.uploaded
    [event] = _events(app, "upload_reprocessed")
    assert event.target == "upload:up-failed" and event.data["before"] == {"status": "failed"}


def test_audit_filters(app, clients, make_user):
    target = make_user(email="target@example.com")
    client = clients("admin")
    post(client, f"/admin/users/{target.id}/verify")
    post(client, f"/admin/users/{target.id}/sign-out")

    def rows(query):
        html = client.get(f"/admin/audit?{query}").get_data(as_text=True)
        return set(re.findall(r'<tr data-event="([a-z_]+)">', html)), html

    verified, signed_out = "email_marked_verified", "user_signed_out_by_admin"
    assert rows(f"action={verified}")[0] == {verified}
    assert {verified, signed_out} <= rows(f"target=user:{target.id}&actor=admin@")[0]
    assert rows("actor=viewer@")[0] == set()
    today = utcnow().date()
    assert {verified, signed_out} <= rows(f"since={today}&until={today}")[0]
    assert rows(f"until={today - timedelta(days=1)}")[0] == set()
    assert "Dates must look like" in rows("since=yesterday")[1]


def test_dashboard_counts(app, clients, make_user):
    make_user(email="off@example.com", is_active_account=False)
    _job(app)
    html = clients("admin").get("/admin/").get_data(as_text=True)
    assert "Latest failures" in html and "SMTPServerDisconnected" in html
    assert re.search(r"<dt>Disabled</dt><dd><a [^>]+>1</a>", html)
    assert re.search(r"<dt>New \(7 days\)</dt><dd><a [^>]+>5</a>", html)
    counts = clients("admin").get("/admin/queue-counts").get_data(as_text=True)
    assert re.search(r'data-queue="emails".*?data-status="failed"><a [^>]+>1</a>', counts, re.S)


# Jobs: retry and revoke change what huey runs ---------------------------------------------


@pytest.fixture()
def real_queue(make_app, base_settings, smtp, tmp_path):
    """An app whose jobs go to a real SQLite-backed huey of its own instead of running inline
    (the session's app keeps its inline queues: queues are per app)."""
    queue_app = make_app(jobs_immediate=False, jobs_sqlite_dir=str(tmp_path / "huey"), smtp_url=smtp.url)
    hueys = queue_app.extensions[QUEUES_KEY].hueys.values()
    for huey in hueys:  # on Redis the queues outlive any app: start from empty ones, leave them so
        huey.storage.flush_all()
    yield queue_app, queue_app.extensions[QUEUES_KEY].hueys["emails"]
    for huey in hueys:
        huey.storage.flush_all()


def _run_next_message(app, huey) -> None:
    message = huey.dequeue()
    assert message is not None, "huey has nothing queued"
    with app.app_context():
        huey.execute(message)


def test_retrying_a_failed_job_sends_it_to_huey_and_it_runs(app, real_queue, smtp, people, auth):
    queue_app, huey = real_queue
    job_id = _job(app)
    client = auth(queue_app.test_client()).signed_in("admin@example.com")
    assert huey.pending_count() == 0
    row = client.post(
        f"/admin/jobs/{job_id}/retry", headers={"HX-Request": "true", "X-CSRFToken": csrf_token(client, "/")}
    )
    assert row.status_code == 200 and f'data-job="{job_id}"' in row.get_data(as_text=True)
    assert 'data-status="queued"' in row.get_data(as_text=True)
    assert huey.pending_count() == 1
    _run_next_message(queue_app, huey)
    assert _job_status(app, job_id) == JobStatus.succeeded
    assert [d.recipients for d in smtp.deliveries] == [["j@example.com"]]
    [event] = _events(app, "job_retried")
    assert event.target == f"job:{job_id}" and event.data["before"] == {"status": "failed"}


def test_a_revoked_job_is_never_run_by_huey(app, real_queue, smtp, people, auth):
    queue_app, huey = real_queue
    from app.mail.service import queue_email

    with queue_app.app_context(), unit_of_work():
        job_id = queue_email("r@example.com", "test_message", {"address": "r@example.com"}).id
    assert huey.pending_count() == 1
    client = auth(queue_app.test_client()).signed_in("admin@example.com")
    response = post(client, f"/admin/jobs/{job_id}/revoke")
    assert response.status_code == 302 and _job_status(app, job_id) == JobStatus.revoked
    _run_next_message(queue_app, huey)  # huey still delivers the message...
    assert _job_status(app, job_id) == JobStatus.revoked  # ...but the worker refuses to run it
    assert smtp.deliveries == []
    # A revoked job can be retried, and then it does run.
    post(client, f"/admin/jobs/{job_id}/retry")
    _run_next_message(queue_app, huey)
    assert _job_status(app, job_id) == JobStatus.succeeded and len(smtp.deliveries) == 1


def test_retry_all_failed_and_purge(app, clients):
    failed = [_job(app) for _ in range(3)]
    old = _job(app, status=JobStatus.succeeded)
    with app.app_context():
        db.session.get(Job, old).finished_at = utcnow() - timedelta(days=10)
        db.session.commit()
    recent = _job(app, status=JobStatus.succeeded)
    client = clients("admin")
    response = post(client, "/admin/jobs/retry-failed", queue="emails")
    assert "3 failed jobs in the emails queue queued again." in client.get(response.headers["Location"]).get_data(
        as_text=True
    )
    assert all(_job_status(app, job_id) == JobStatus.succeeded for job_id in failed)  # inline mode ran them
    post(client, "/admin/jobs/purge", days="7")
    with app.app_context():
        assert db.session.get(Job, old) is None and db.session.get(Job, recent) is not None
    assert _events(app, "jobs_purged")[0].data["count"] == 1


def test_revoking_a_running_job_is_refused_in_the_row(app, clients):
    job_id = _job(app, status=JobStatus.running)
    client = clients("admin")
    row = client.post(
        f"/admin/jobs/{job_id}/revoke", headers={"HX-Request": "true", "X-CSRFToken": csrf_token(client, "/")}
    )
    assert row.status_code == 200 and "Only pending or scheduled jobs can be revoked" in row.get_data(as_text=True)
    assert _job_status(app, job_id) == JobStatus.running


def test_periodic_tasks_are_listed_and_run_now_records_the_run(app, clients):
    client = clients("admin")
    html = client.get("/admin/jobs").get_data(as_text=True)
    assert 'data-periodic="sweep_jobs"' in html and "every minute" in html and "never run" in html
    post(client, "/admin/jobs/periodic/cleanup_pending_uploads/run")
    html = client.get("/admin/jobs").get_data(as_text=True)
    row = re.search(r'data-periodic="cleanup_pending_uploads".*?</tr>', html, re.S).group(0)
    assert "succeeded" in row and "never run" not in row
    with app.app_context():
        job = db.session.scalars(select(Job).where(Job.task == "tasks.maintenance.cleanup_pending_uploads")).one()
        assert job.status == JobStatus.succeeded and job.args_summary == {"periodic_task": "cleanup_pending_uploads"}


# Roles: no escalation, edits survive a sync, deleted holders --------------------------------


def test_nobody_grants_a_permission_they_do_not_hold(app, people, make_user, auth):
    from app.rbac import management as role_management

    with app.app_context():
        role_management.create_role(_user(app, "admin@example.com"), "gatekeeper", "", ["roles:manage", "users:read"])
    make_user(email="gate@example.com", roles=("gatekeeper",))
    target = make_user(email="target@example.com")
    client = auth(app.test_client()).signed_in("gate@example.com")
    response = post(client, f"/admin/users/{target.id}/roles", roles=["admin", "user"])
    assert "would give permissions you do not hold" in client.get(response.headers["Location"]).get_data(as_text=True)
    assert _user(app, "target@example.com").role_names == ["user"]
    # Nor can they widen their own role in the grid, or create a role beyond their permissions.
    html = client.get("/admin/roles").get_data(as_text=True)
    grid = re.findall(r'name="grant" value="([^"]+)" checked', html) + re.findall(
        r'type="hidden" name="grant" value="([^"]+)"', html
    )
    response = post(client, "/admin/roles/matrix", grant=[*grid, "viewer|users:read", "gatekeeper|users:delete"])
    assert "cannot grant permissions you do not hold" in client.get(response.headers["Location"]).get_data(as_text=True)
    with app.app_context():
        viewer = db.session.scalar(select(Role).where(Role.name == "viewer"))
        assert viewer.permissions == []  # all or nothing: the allowed part of the grid was not saved either
    response = post(client, "/admin/roles", name="wider", grant=["audit:read"])
    assert "cannot grant permissions you do not hold" in client.get(response.headers["Location"]).get_data(as_text=True)
    # Granting what they hold themselves is fine.
    post(client, f"/admin/users/{target.id}/roles", roles=["user", "viewer"])
    assert _user(app, "target@example.com").role_names == ["user", "viewer"]


def test_an_edited_built_in_role_survives_seed_admin_until_restored(app, clients):
    from app.rbac.service import sync_roles
    from app.users.service import ensure_admin

    client = clients("admin")
    html = client.get("/admin/roles").get_data(as_text=True)
    ticked = set(re.findall(r'name="grant" value="([^"]+)" checked', html))
    ticked |= set(re.findall(r'type="hidden" name="grant" value="([^"]+)"', html))
    post(client, "/admin/roles/matrix", grant=sorted(ticked - {"manager|jobs:read"}))

    def manager_permissions():
        with app.app_context():
            role = db.session.scalar(select(Role).where(Role.name == "manager"))
            return {p.name for p in role.permissions}

    assert "jobs:read" not in manager_permissions()
    with app.app_context():
        ensure_admin(None, None)  # what every `make run` does
    assert "jobs:read" not in manager_permissions()
    runner = app.test_cli_runner()
    assert runner.invoke(args=["roles", "sync"]).exit_code == 0
    assert "jobs:read" not in manager_permissions()
    result = runner.invoke(args=["roles", "sync", "--restore"])
    assert result.exit_code == 0 and "restored" in result.output
    assert "jobs:read" in manager_permissions()
    with app.app_context():
        sync_roles()


def test_a_role_held_only_by_deleted_accounts_can_be_deleted(app, clients, make_user):
    client = clients("admin")
    post(client, "/admin/roles", name="legacy", grant=["users:read"])
    gone = make_user(email="gone@example.com", roles=("legacy",))
    post(client, f"/admin/users/{gone.id}/delete")
    response = post(client, "/admin/roles/legacy/delete")
    assert "Role &#39;legacy&#39; deleted." in client.get(response.headers["Location"]).get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(Role).where(Role.name == "legacy")) is None


@pytest.mark.parametrize(
    "back", ["/\\evil.example.com", "\\/evil.example.com", "/%2F/evil.example.com", "https://evil.example.com/admin/"]
)
def test_after_an_action_the_admin_never_goes_back_off_the_site(app, clients, make_user, back):
    target = make_user(email="target@example.com")
    admin = clients("admin")
    response = post(admin, f"/admin/users/{target.id}/disable", next=back)
    assert response.status_code == 302 and response.headers["Location"] == f"/admin/users/{target.id}"
    # the Referer is held to the same rule when no `next` is given
    response = admin.post(
        f"/admin/users/{target.id}/enable",
        data={"csrf_token": csrf_token(admin, "/"), "confirmed": "yes"},
        headers={"Referer": back},
    )
    assert response.status_code == 302 and response.headers["Location"] == f"/admin/users/{target.id}"


def test_after_an_action_the_admin_goes_back_to_the_page_it_came_from(app, clients, make_user):
    target = make_user(email="target@example.com")
    admin = clients("admin")
    response = post(admin, f"/admin/users/{target.id}/disable", next="/admin/users?page=2&sort=-email")
    assert response.headers["Location"] == "/admin/users?page=2&sort=-email"
    response = admin.post(
        f"/admin/users/{target.id}/enable",
        data={"csrf_token": csrf_token(admin, "/"), "confirmed": "yes"},
        headers={"Referer": "http://localhost/admin/users?status=disabled"},
    )
    assert response.headers["Location"] == "/admin/users?status=disabled"


# Which job actions a page offers: the service's rule, never a status list in a template ----


def _job_buttons(client, job_id) -> dict[str, set[str]]:
    """The action buttons of the job's detail page, its row in the list and its row alone."""
    pages = {
        "detail": client.get(f"/admin/jobs/{job_id}").get_data(as_text=True),
        "list": client.get(f"/admin/jobs?q={job_id}").get_data(as_text=True),
    }
    buttons = {name: {label for label in ("Retry", "Revoke") if f">{label}<" in html} for name, html in pages.items()}
    status = client.get(f"/admin/jobs/{job_id}?fragment=status").get_data(as_text=True)
    buttons["polls"] = {"yes"} if 'hx-trigger="every 2s"' in status else set()
    return buttons


@pytest.mark.parametrize("status", list(JobStatus))
def test_a_job_offers_exactly_the_actions_its_status_allows(app, clients, status):
    from app.jobs.management import RETRYABLE, REVOCABLE
    from app.jobs.models import FINAL_STATUSES

    job_id = _job(app, status=status)
    expected = {"Retry"} if status in RETRYABLE else {"Revoke"} if status in REVOCABLE else set()
    polls = set() if status in FINAL_STATUSES else {"yes"}
    assert _job_buttons(clients("admin"), job_id) == {"detail": expected, "list": expected, "polls": polls}


def test_the_job_buttons_follow_the_services_sets(app, clients, monkeypatch):
    from app.jobs import management

    monkeypatch.setattr(management, "RETRYABLE", frozenset({JobStatus.succeeded}))
    monkeypatch.setattr(management, "REVOCABLE", frozenset({JobStatus.running}))
    client = clients("admin")
    succeeded, running = _job(app, status=JobStatus.succeeded), _job(app, status=JobStatus.running)
    failed = _job(app, status=JobStatus.failed)
    assert _job_buttons(client, succeeded) == {"detail": {"Retry"}, "list": {"Retry"}, "polls": set()}
    assert _job_buttons(client, running) == {"detail": {"Revoke"}, "list": {"Revoke"}, "polls": {"yes"}}
    assert _job_buttons(client, failed) == {"detail": set(), "list": set(), "polls": set()}
    # the row an htmx action swaps in asks the same rule
    row = client.post(
        f"/admin/jobs/{failed}/retry", headers={"HX-Request": "true", "X-CSRFToken": csrf_token(client, "/")}
    ).get_data(as_text=True)
    assert "Only failed or revoked jobs can be retried" in row and ">Retry<" not in row


def test_the_reprocess_button_follows_the_upload_services_rule(app, clients, make_user, monkeypatch):
    from app.uploads import service as upload_service

    owner = make_user(email="owner@example.com")
    with app.app_context():
        for status in UploadStatus:
            db.session.add(
                Upload(
                    id=f"up-{status}",
                    user_id=owner.id,
                    kind="document",
                    status=status,
                    filename=f"{status}.pdf",
                    content_type="application/pdf",
                    declared_size=10,
                    size=10,
                    key=f"k/{status}",
                )
            )
        db.session.commit()
    client = clients("admin")

    def offered() -> set[str]:
        return {s for s in UploadStatus if ">Reprocess<" in client.get(f"/admin/uploads/up-{s}").get_data(as_text=True)}

    assert offered() == upload_service.REPROCESSABLE
    monkeypatch.setattr(upload_service, "REPROCESSABLE", frozenset({UploadStatus.pending}))
    assert offered() == {UploadStatus.pending}
