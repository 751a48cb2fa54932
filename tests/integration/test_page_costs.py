"""What a signed-in page costs: its SQL statements do not grow with its rows (no N+1), the
session record and its user come in one statement, and the session cookie is re-signed only
when the record's `last_seen_at` moves (bench/README.md, "Real pages")."""

from __future__ import annotations

from datetime import timedelta

import pytest

from app.auth.models import UserSession
from app.core.database import utcnow
from app.extensions import db
from app.uploads.models import Upload
from tests.support import statements_of_get


def _statements(app, client, path: str) -> list[str]:
    return statements_of_get(app, client, path)[0]


def _add_uploads(app, user_id: int, count: int, start: int = 0) -> None:
    with app.app_context():
        for n in range(start, start + count):
            db.session.add(
                Upload(
                    id=f"up-{n}",
                    user_id=user_id,
                    kind="document",
                    status="ready" if n % 3 else "processing",
                    filename=f"report-{n}.pdf",
                    content_type="application/pdf",
                    declared_size=1000 + n,
                    size=1000 + n if n % 3 else None,
                    key=f"k/up-{n}",
                )
            )
        db.session.commit()


@pytest.fixture()
def admin(make_user):
    return make_user(email="admin@example.com", roles=("admin",))


def test_the_files_page_runs_the_same_three_statements_for_three_rows_or_twenty(app, client, admin, auth):
    auth.login("admin@example.com")
    client.get("/")  # shows (and so consumes) the welcome flash
    _add_uploads(app, admin.id, 3)
    client.get("/files/")  # the permission set the layout asks for is cached from here on
    few = _statements(app, client, "/files/")
    _add_uploads(app, admin.id, 17, start=3)
    many = _statements(app, client, "/files/")
    assert len(many) == len(few) == 3, many
    session_and_user, count, rows = many
    assert "FROM user_sessions JOIN users" in session_and_user
    assert count.startswith("SELECT count(*)") and "FROM uploads" in rows


def test_the_admin_users_page_runs_the_same_five_statements_for_any_number_of_users(
    app, client, admin, make_user, auth
):
    auth.login("admin@example.com")
    client.get("/")  # shows (and so consumes) the welcome flash
    for n in range(2):
        make_user(email=f"few{n}@example.com", roles=("user", "viewer"))
    client.get("/admin/users")
    few = _statements(app, client, "/admin/users")
    for n in range(20):
        make_user(email=f"many{n:02d}@example.com", roles=("user", "manager") if n % 2 else ("user",))
    html = client.get("/admin/users").get_data(as_text=True)
    assert html.count("<tr data-user=") == 23  # the page shows them all, each with its roles
    assert "manager, user" in html
    many = _statements(app, client, "/admin/users")
    # The session and its user; the count; one page of users; their roles; every role's name.
    assert len(many) == len(few) == 5, many
    assert "FROM user_sessions JOIN users" in many[0]


def _session_cookie(response) -> str | None:
    return next((h for h in response.headers.getlist("Set-Cookie") if h.startswith("session=")), None)


def test_the_session_cookie_is_resent_only_when_the_session_record_is_touched(app, client, admin, auth):
    auth.login("admin@example.com")
    client.get("/")  # shows (and so consumes) the welcome flash
    assert _session_cookie(client.get("/files/")) is None  # nothing changed: no new cookie
    with app.app_context():
        row = db.session.query(UserSession).one()
        row.last_seen_at = utcnow() - timedelta(minutes=5)
        db.session.commit()
    touched = client.get("/files/")
    cookie = _session_cookie(touched)
    assert cookie is not None and "Expires=" in cookie  # the idle limit counts from now again
    with app.app_context():
        assert utcnow() - db.session.query(UserSession).one().last_seen_at < timedelta(minutes=1)
    assert _session_cookie(client.get("/files/")) is None


def test_a_changed_session_is_still_saved_on_every_request(app, client, admin, auth):
    auth.login("admin@example.com")
    client.get("/")  # shows (and so consumes) the welcome flash
    with client.session_transaction() as session:
        session["_flashes"] = [("info", "Saved")]
    response = client.get("/files/")
    assert "Saved" in response.get_data(as_text=True)
    assert _session_cookie(response) is not None  # the flash was consumed: the cookie changes
