"""Shared fixtures. The same suite runs in two profiles:

- embedded (default): a SQLite file per test session, in-process cache and rate limits,
  SQLite-backed huey in a temporary folder;
- services (`TEST_PROFILE=services`): a PostgreSQL database created for this run and
  dropped afterwards, Redis with a key prefix of its own (flushed afterwards).

`make_app(**overrides)` builds extra apps on the same database for tests that need other
settings; `app` is the session's default app with migrations applied. Every test app hashes
passwords with the cheapest argon2 parameters (CHEAP_HASHING); a test that pins the production
cost builds its app with `make_app(**PRODUCTION_HASHING)`.

Factories and helpers: `make_user(role="manager", **columns)` (app.users.factories, as the demo
seed), `people` (one account per built-in role) and `target`; `auth` signs a browser in and out
through the real forms, `api_auth` gets bearer headers from the real token endpoint.
"""

from __future__ import annotations

import os
import secrets
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import flask_migrate  # noqa: F401  (imported before any app: every test app binds Flask-Migrate; app.core.migrations)
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import text

from app import create_app
from app.cache.aside import EXTENSION_KEY as CACHE_STATE_KEY
from app.config import Settings
from app.core.database import utcnow
from app.extensions import db
from tests.support import CHEAP_HASHING, PASSWORD, PRODUCTION_HASHING, ApiAuth, BrowserAuth, hash_for

PROFILE = os.environ.get("TEST_PROFILE", "embedded")
SERVICES = PROFILE == "services"
POSTGRES_ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
RUN_ID = uuid.uuid4().hex[:10]

# Test apps are configured explicitly: nothing leaks in from the developer's shell or .env.
for _field in Settings.model_fields:
    os.environ.pop(_field.upper(), None)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--reverse-order",
        action="store_true",
        help="run the tests in reverse order (use with -p no:randomly): another check for order dependence",
    )


def pytest_report_header(config: pytest.Config) -> str:
    return f"hearth test profile: {PROFILE}"


@pytest.hookimpl(trylast=True)  # after pytest-randomly's shuffle, when both are on
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--reverse-order"):
        items.reverse()


def _create_postgres_database(name: str) -> str:
    import psycopg

    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    return POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"


def _drop_postgres_database(name: str) -> None:
    import psycopg

    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def scratch_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("hearth")


@pytest.fixture(scope="session")
def new_database(scratch_dir: Path) -> Iterator[Callable[[], str]]:
    """Factory for empty databases of the profile's engine; all are dropped at the end."""
    created: list[str] = []

    def make() -> str:
        name = f"hearth_test_{RUN_ID}_{len(created)}"
        created.append(name)
        if SERVICES:
            return _create_postgres_database(name)
        return f"sqlite:///{scratch_dir / (name + '.db')}"

    yield make
    if SERVICES:
        for name in created:
            _drop_postgres_database(name)


@pytest.fixture(scope="session")
def base_settings(new_database: Callable[[], str], scratch_dir: Path) -> dict[str, Any]:
    """Explicit settings for every test app (never read from the developer's environment)."""
    settings: dict[str, Any] = {
        "_env_file": None,
        "app_env": "test",
        "database_url": new_database(),
        "secret_key": secrets.token_urlsafe(48),
        "jwt_secret": secrets.token_urlsafe(48),
        "log_level": "INFO",
        "rate_limit_default": "10000 per minute",
        "jobs_immediate": True,
        "jobs_sqlite_dir": str(scratch_dir / "huey"),
        "storage_local_path": str(scratch_dir / "storage"),
        "redis_url": None,
        "redis_prefix": f"hearth-test-{RUN_ID}",
        "smtp_url": None,
        **CHEAP_HASHING,
    }
    if SERVICES:
        settings["redis_url"] = REDIS_URL
    return settings


@pytest.fixture(scope="session")
def make_app(base_settings: dict[str, Any]) -> Callable[..., Flask]:
    """Build an app with `overrides` on top of the session's settings. Production-like apps
    (APP_ENV=production/staging) hash with the production cost, the only one they accept."""

    def make(**overrides: Any) -> Flask:
        if overrides.get("app_env") in ("production", "staging"):
            overrides = {**PRODUCTION_HASHING, **overrides}
        return create_app({**base_settings, **overrides})

    return make


@pytest.fixture(scope="session")
def app(make_app: Callable[..., Flask]) -> Iterator[Flask]:
    from flask_migrate import upgrade

    application = make_app()
    with application.app_context():
        upgrade()
    yield application
    if SERVICES:
        _flush_redis(application)
    with application.app_context():
        db.engine.dispose()


def _flush_redis(application: Flask) -> None:
    from redis import Redis

    settings = application.extensions["hearth.settings"]
    client = Redis.from_url(REDIS_URL)
    for key in client.scan_iter(match=f"{settings.redis_prefix}*"):
        client.delete(key)
    for key in client.scan_iter(match=f"*{settings.redis_prefix.replace('-', '')}*"):
        client.delete(key)


def reset_rate_limits(application: Flask) -> None:
    """Forget every rate-limit counter of `application` (memory or this run's Redis keys)."""
    settings = application.extensions["hearth.settings"]
    # The app-wide budget also remembers, in-process, the counts Redis last returned (it syncs
    # every RATE_LIMIT_SYNC_MS): forget those too, or a deleted key still looks full.
    application.extensions["hearth.rate_limit"].reset()
    # Flask-Limiter counts in memory while it thinks Redis is down (a test that hung Redis
    # leaves it so for a while): forget those counts too.
    fallback = getattr(application.extensions["hearth.limiter"], "_fallback_storage", None)
    if fallback is not None:
        fallback.reset()
    if settings.redis_url:
        from redis import Redis

        client = Redis.from_url(settings.redis_url)
        for key in client.scan_iter(match=f"*{settings.redis_prefix}:rl*"):
            client.delete(key)
    else:
        application.extensions["hearth.limiter"].reset()


@pytest.fixture(autouse=True)
def clean_database(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every test starts from empty tables (rows are deleted after each test that used the app)
    and, on the services profile, with no rate-limit counts in Redis: an app a test builds for
    itself (make_app) shares the run's Redis prefix, and nothing cleans up after a test that
    never touched the session `app`."""
    if SERVICES:
        from redis import Redis

        client = Redis.from_url(REDIS_URL)
        for key in client.scan_iter(match=f"*hearth-test-{RUN_ID}:rl*"):
            client.delete(key)
    yield
    if "app" not in request.fixturenames:
        return
    application: Flask = request.getfixturevalue("app")
    with application.app_context():
        db.session.remove()
        with db.engine.begin() as connection:
            for table in reversed(db.metadata.sorted_tables):
                connection.execute(table.delete())
        reset_rate_limits(application)
        cache = application.extensions.get("cache")
        if cache:
            from app.extensions import cache as cache_ext

            cache_ext.clear()
        application.extensions[CACHE_STATE_KEY].local.clear()


@pytest.fixture()
def db_session(app: Flask) -> Iterator[Any]:
    with app.app_context():
        yield db.session
        db.session.remove()


@pytest.fixture()
def make_user(app: Flask) -> Callable[..., Any]:
    """Factory: `make_user(role="manager", email=..., **User columns)`, committed and detached.
    Built by app.users.factories (as the demo seed builds its accounts); the password is
    PASSWORD unless `password=` says otherwise, hashed once per process with the app's costs."""
    from app.rbac.service import sync_roles
    from app.users.factories import new_user
    from app.users.models import User

    counter = iter(range(1, 1_000_000))
    settings = app.extensions["hearth.settings"]

    def make(
        email: str | None = None,
        password: str = PASSWORD,
        roles: tuple[str, ...] = ("user",),
        *,
        role: str | None = None,
        display_name: str = "Test User",
        **fields: Any,
    ) -> User:
        with app.app_context():
            sync_roles()
            user = new_user(
                email or f"user{next(counter)}@example.com",
                fields.pop("password_hash", None) or hash_for(settings, password),
                display_name=display_name,
                roles=(role,) if role else roles,
                **fields,
            )
            db.session.commit()
            db.session.refresh(user)
            db.session.expunge(user)
            return user

    return make


ROLES = ("admin", "manager", "user", "viewer")


@pytest.fixture()
def people(make_user: Callable[..., Any]) -> dict[str, Any]:
    """One verified account per built-in role: `people["manager"]` is manager@example.com,
    called "Manager", holding only that role."""
    return {
        role: make_user(email=f"{role}@example.com", display_name=role.title(), role=role, email_verified_at=utcnow())
        for role in ROLES
    }


@pytest.fixture()
def target(make_user: Callable[..., Any]) -> Any:
    """A plain user for the others to act on: target@example.com, called "Target"."""
    return make_user(email="target@example.com", display_name="Target")


@pytest.fixture()
def client(app: Flask) -> FlaskClient:
    """The session app's test client. Replaces pytest-flask's, which keeps the last request's
    context pushed until the test ends (`with app.test_client()`): every later request of the
    test, from any client, then ran in that app context, sharing its `g` and so the user
    Flask-Login cached there (a fresh browser looked signed in). Real requests never share `g`."""
    return app.test_client()


@pytest.fixture()
def auth(client: FlaskClient) -> BrowserAuth:
    """`auth.login(user=..., password=...)` / `auth.logout()` for `client`; `auth(other).login(...)`
    for another browser."""
    return BrowserAuth(client)


@pytest.fixture()
def api_auth(client: FlaskClient) -> ApiAuth:
    """`api_auth.headers(user)`: bearer headers from the token endpoint; `api_auth(other)` for
    another client."""
    return ApiAuth(client)


def database_is(app: Flask, dialect: str) -> bool:
    with app.app_context():
        return db.engine.dialect.name == dialect


def count_rows(app: Flask, table: str) -> int:
    with app.app_context():
        return db.session.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar_one()


class CapturedLogs:
    """JSON log lines written while the fixture is active."""

    def __init__(self) -> None:
        import io

        self.buffer = io.BytesIO()

    @property
    def lines(self) -> list[dict[str, Any]]:
        import orjson

        return [orjson.loads(line) for line in self.buffer.getvalue().splitlines() if line.strip()]

    def events(self, name: str) -> list[dict[str, Any]]:
        return [line for line in self.lines if line.get("event") == name]


@pytest.fixture()
def captured_logs() -> Iterator[CapturedLogs]:
    from app.logging import SINK, configure_logging

    configure_logging("INFO")
    captured = CapturedLogs()
    SINK.redirect(captured.buffer)
    try:
        yield captured
    finally:
        SINK.redirect(None)


@pytest.fixture(autouse=True)
def _push_request_context() -> None:
    """Replaces pytest-flask's fixture of this name, which keeps one request context (and so
    one `g`) pushed for the whole test: the test client would then share `g` between
    requests, which real requests never do. Tests push the contexts they need explicitly."""


@pytest.fixture()
def smtp() -> Iterator[Any]:
    """A real SMTP server (aiosmtpd) on loopback; `.deliveries` holds what it received."""
    from tests.support import start_mail_server

    server, controller = start_mail_server()
    yield server
    server.release_slow.set()
    controller.stop()


@pytest.fixture()
def hung_redis_url():
    """A TCP server that accepts connections and never answers: a hung Redis."""
    import socket
    import threading

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    accepted = []

    def accept_forever():
        while True:
            try:
                accepted.append(server.accept())
            except OSError:
                return

    threading.Thread(target=accept_forever, daemon=True).start()
    yield f"redis://127.0.0.1:{server.getsockname()[1]}/0"
    server.close()
