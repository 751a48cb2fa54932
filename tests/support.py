"""Helpers for tests: signing in (browser and API), password hashing costs, a controllable
clock, and real components (an SMTP server on aiosmtpd, huey worker processes)."""

from __future__ import annotations

import asyncio
import functools
import os
import re
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from argon2 import PasswordHasher
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from app.config import Settings

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "correct horse battery staple"  # every factory-made user's, unless told otherwise

# argon2id costs (Settings.password_hash_*). Test apps use the cheapest argon2 allows (a few
# µs instead of ~240 ms a hash); the tests that pin the production cost ask for it explicitly.
HASH_COST_FIELDS = ("password_hash_time_cost", "password_hash_memory_kib", "password_hash_parallelism")
CHEAP_HASHING = {"password_hash_time_cost": 1, "password_hash_memory_kib": 8, "password_hash_parallelism": 1}
PRODUCTION_HASHING = {name: Settings.model_fields[name].default for name in HASH_COST_FIELDS}


@functools.cache
def hashed(password: str, time_cost: int, memory_kib: int, parallelism: int) -> str:
    """argon2id hash of `password` with these costs, made once per process (factories share it)."""
    return PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism).hash(password)


def hash_for(settings: Settings, password: str = PASSWORD) -> str:
    """`password` hashed with the hashing costs of an app's `settings`."""
    return hashed(password, *(getattr(settings, name) for name in HASH_COST_FIELDS))


# Signing in ------------------------------------------------------------------------------------

_CSRF = re.compile(r'name="csrf-token" content="([^"]+)"|name="csrf_token" (?:type="hidden" )?value="([^"]+)"')


def csrf_token(client: FlaskClient, path: str = "/auth/login") -> str:
    """The CSRF token of the page at `path` (its form field, or the page's meta tag)."""
    html = client.get(path).get_data(as_text=True)
    match = _CSRF.search(html)
    assert match, f"no CSRF token on {path}"
    return match.group(1) or match.group(2)


def _email(user: Any) -> str:
    return user if isinstance(user, str) else user.email


class BrowserAuth:
    """Signs one test client in and out through the real forms (flaskr's `auth` fixture).
    `auth(other_client)` is the same helper for another browser."""

    def __init__(self, client: FlaskClient) -> None:
        self.client = client

    def __call__(self, client: FlaskClient) -> BrowserAuth:
        return BrowserAuth(client)

    def login(
        self,
        user: Any = "user@example.com",
        password: str = PASSWORD,
        *,
        remember: bool = False,
        next_url: str | None = None,
        expect: int | None = 302,
    ) -> TestResponse:
        """POST the sign-in form as `user` (a User or an email); asserts the answer is `expect`
        (a redirect: signed in) unless `expect` is None."""
        data = {"csrf_token": csrf_token(self.client), "email": _email(user), "password": password}
        if remember:
            data["remember"] = "y"
        url = "/auth/login" + (f"?next={next_url}" if next_url else "")
        response = self.client.post(url, data=data)
        if expect is not None:
            assert response.status_code == expect, (response.status_code, response.get_data(as_text=True)[:500])
        return response

    def signed_in(self, user: Any = "user@example.com", password: str = PASSWORD, **options: Any) -> FlaskClient:
        """The client, signed in as `user`."""
        self.login(user, password, **options)
        return self.client

    def is_signed_in_as(self, user: Any) -> bool:
        """Whether the account page opens, for `user` (its email in the profile form)."""
        page = self.client.get("/account/")
        return page.status_code == 200 and f'value="{_email(user)}"' in page.get_data(as_text=True)

    def logout(self) -> TestResponse:
        """POST the sign-out form (with the CSRF token of a signed-in page)."""
        return self.client.post("/auth/logout", data={"csrf_token": csrf_token(self.client, "/account/")})


class ApiAuth:
    """Bearer tokens from the real token endpoint (POST /api/v1/auth/token) for one test client.
    `api_auth(other_client)` is the same helper for another client (another app)."""

    def __init__(self, client: FlaskClient) -> None:
        self.client = client

    def __call__(self, client: FlaskClient) -> ApiAuth:
        return ApiAuth(client)

    def request_tokens(self, user: Any = "user@example.com", password: str = PASSWORD) -> TestResponse:
        """The token endpoint's answer, whatever it is."""
        return self.client.post("/api/v1/auth/token", json={"email": _email(user), "password": password})

    def tokens(self, user: Any = "user@example.com", password: str = PASSWORD) -> dict[str, Any]:
        """A fresh token pair for `user` (asserting it was issued)."""
        response = self.request_tokens(user, password)
        assert response.status_code == 200, response.get_json()
        return response.json

    def headers(self, user: Any = "user@example.com", password: str = PASSWORD) -> dict[str, str]:
        """`Authorization: Bearer <a fresh access token of user>`."""
        return bearer(self.tokens(user, password)["access_token"])


def bearer(access_token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {access_token}"}


# Time ------------------------------------------------------------------------------------------


class FakeClock:
    """Stands in for the `time` module inside one app module (`monkeypatch.setattr(module,
    "time", clock)`): `time()` and `monotonic()` read a clock the test moves with `advance`.
    `sleep` yields to other threads for a moment of real time and, if `sleep_advances`, moves
    the clock as far (so loops with a deadline end); `sleepers` names the threads that slept.
    Everything else is the real module."""

    def __init__(self, now: float = 1_700_000_000.0, *, sleep_advances: bool = True) -> None:
        self.now = now
        self.sleep_advances = sleep_advances
        self.sleepers: set[str] = set()
        self._lock = threading.Lock()

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleepers.add(threading.current_thread().name)
        time.sleep(min(seconds, 0.005))
        if self.sleep_advances:
            self.advance(seconds)

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(
    predicate: Callable[[], Any], timeout: float = 20.0, interval: float = 0.05, message: str = "condition"
) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}")


@dataclass
class Delivery:
    recipients: list[str]
    message: Message
    received_at: float


@dataclass
class MailServer:
    """aiosmtpd on loopback. Recipients starting with `reject` are refused for good (550),
    those starting with `defer` for now (450); `slow` recipients hang in DATA until
    `release_slow` is set (once)."""

    port: int
    deliveries: list[Delivery] = field(default_factory=list)
    rcpt_attempts: list[tuple[str, float]] = field(default_factory=list)
    slow_started: threading.Event = field(default_factory=threading.Event)
    release_slow: threading.Event = field(default_factory=threading.Event)
    _slow_held: bool = False

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        self.rcpt_attempts.append((address, time.monotonic()))
        if address.startswith("reject"):
            return "550 5.1.1 Mailbox unavailable"
        if address.startswith("defer"):
            return "450 4.2.1 Mailbox busy, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if any(rcpt.startswith("slow") for rcpt in envelope.rcpt_tos) and not self._slow_held:
            self._slow_held = True
            self.slow_started.set()
            while not self.release_slow.is_set():
                await asyncio.sleep(0.05)
            return "451 4.3.0 Aborted"
        self.deliveries.append(
            Delivery(list(envelope.rcpt_tos), message_from_bytes(envelope.content), time.monotonic())
        )
        return "250 Message accepted"

    def wait_for_deliveries(self, count: int, timeout: float = 30.0) -> list[Delivery]:
        wait_until(lambda: len(self.deliveries) >= count, timeout, message=f"{count} deliveries")
        return self.deliveries


class Worker:
    """A real `flask worker <queue>` process configured by environment variables."""

    def __init__(self, queue: str, env: dict[str, str], log_path: Path):
        self.queue, self.env, self.log_path = queue, env, log_path
        self.process: subprocess.Popen | None = None

    def start(self) -> Worker:
        self._log = open(self.log_path, "ab")  # noqa: SIM115  (kept open for the process's lifetime)
        self.process = subprocess.Popen(
            [str(PROJECT_ROOT / ".venv/bin/flask"), "--app", "wsgi", "worker", self.queue, "--workers", "2"],
            cwd=PROJECT_ROOT,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        return self

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self._log.close()

    def log_lines(self) -> list[dict[str, Any]]:
        import orjson

        lines = []
        for raw in self.log_path.read_bytes().splitlines():
            try:
                lines.append(orjson.loads(raw))
            except orjson.JSONDecodeError:
                continue
        return lines


def worker_env(settings: dict[str, Any]) -> dict[str, str]:
    """Environment for a worker process seeing the same database, broker and SMTP as a test app."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("FLASK_", "APP_"))}
    for name, value in settings.items():
        if name.startswith("_"):
            continue
        if value is None:
            env.pop(name.upper(), None)
        elif isinstance(value, bool):
            env[name.upper()] = "true" if value else "false"
        else:
            env[name.upper()] = str(value)
    return env


def start_mail_server() -> tuple[MailServer, Controller]:
    server = MailServer(port=free_port())
    controller = Controller(server, hostname="127.0.0.1", port=server.port)
    controller.start()
    return server, controller


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def statements_of_get(app: Any, client: FlaskClient, path: str) -> tuple[list[str], TestResponse]:
    """The SQL statements one GET of `path` runs (transaction control and pings left out), and
    its answer (asserted 200): what the page-cost tests count."""
    from sqlalchemy import event

    from app.extensions import db

    with app.app_context():
        engine = db.engine
    statements: list[str] = []

    def count(conn, cursor, statement, *args):
        statements.append(" ".join(statement.split()))

    event.listen(engine, "before_cursor_execute", count)
    try:
        response = client.get(path)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert response.status_code == 200, response.status_code
    return [s for s in statements if not s.upper().startswith(("ROLLBACK", "BEGIN", "COMMIT", "SELECT 1"))], response
