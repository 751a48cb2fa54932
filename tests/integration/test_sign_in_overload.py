"""A storm of sign-ins cannot hold every request thread (issue 11): past the argon2 pool's
running slots and PASSWORD_HASH_QUEUE waiting ones, a sign-in is refused at once with 503 and
Retry-After, as a problem on the API and as the sign-in form again in the browser."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from flask import Flask

from app.users import passwords

PASSWORD = "correct horse battery staple"


@contextmanager
def argon2_slot_taken(app: Flask) -> Iterator[None]:
    """Hold the app's only argon2 slot (PASSWORD_HASH_CONCURRENCY=1, no line) until the block ends."""
    with app.app_context():
        pool = passwords._pool()
    release, started = threading.Event(), threading.Event()

    def hold() -> None:
        started.set()
        release.wait(10)

    holder = threading.Thread(target=pool.run, args=(hold,))
    holder.start()
    assert started.wait(5)
    try:
        yield
    finally:
        release.set()
        holder.join(5)


def _app(make_app) -> Flask:
    return make_app(password_hash_concurrency=1, password_hash_queue=0)


def test_an_api_sign_in_past_the_line_gets_503_with_retry_after_then_succeeds(make_app, make_user):
    make_user(email="storm@example.com")
    app = _app(make_app)
    client = app.test_client()
    with argon2_slot_taken(app):
        busy = client.post("/api/v1/auth/token", json={"email": "storm@example.com", "password": PASSWORD})
    assert busy.status_code == 503
    assert busy.mimetype == "application/problem+json"
    assert busy.headers["Retry-After"] == "1"
    assert "try again" in busy.json["detail"]
    # Nothing was counted against the account: the password was never checked.
    ok = client.post("/api/v1/auth/token", json={"email": "storm@example.com", "password": PASSWORD})
    assert ok.status_code == 200 and ok.json["access_token"]


def test_a_browser_sign_in_past_the_line_gets_the_form_again_with_the_email_kept(make_app, make_user):
    make_user(email="storm2@example.com")
    app = _app(make_app)
    client = app.test_client()
    html = client.get("/auth/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', html).group(1)
    form = {"csrf_token": token, "email": "storm2@example.com", "password": PASSWORD}
    with argon2_slot_taken(app):
        busy = client.post("/auth/login", data=form)
    assert busy.status_code == 503 and busy.headers["Retry-After"] == "1"
    page = busy.get_data(as_text=True)
    assert "Please try again in a second" in page
    assert 'value="storm2@example.com"' in page
    assert client.post("/auth/login", data=form).status_code == 302  # signed in once the line is free


def test_a_waiting_place_in_the_line_is_honoured(make_app, make_user):
    """With one waiting place, a sign-in arriving while the slot is busy waits and succeeds."""
    make_user(email="patient@example.com")
    app = make_app(password_hash_concurrency=1, password_hash_queue=1)
    client = app.test_client()
    results: list[int] = []
    with argon2_slot_taken(app):
        waiter = threading.Thread(
            target=lambda: results.append(
                client.post(
                    "/api/v1/auth/token", json={"email": "patient@example.com", "password": PASSWORD}
                ).status_code
            )
        )
        waiter.start()
        waiter.join(0.3)
        assert waiter.is_alive()  # waiting in line, not refused
    waiter.join(10)
    assert results == [200]


def test_a_refused_sign_in_does_no_database_work(make_app, make_user):
    """Refused before the account is even looked up: a storm's refusals cost next to nothing."""
    from sqlalchemy import event

    make_user(email="cheap@example.com")
    app = _app(make_app)
    client = app.test_client()
    statements: list[str] = []
    with app.app_context():
        from app.extensions import db

        engine = db.engine

    def count(_conn, _cursor, statement, *_args):
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        with argon2_slot_taken(app):
            busy = client.post("/api/v1/auth/token", json={"email": "cheap@example.com", "password": PASSWORD})
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert busy.status_code == 503
    assert not [statement for statement in statements if "users" in statement.lower()]
