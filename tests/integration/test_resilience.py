"""What Hearth does when a part of it fails (issue 17's fault drills, in the small): circuit
breakers on Redis (cache, L1 invalidation bus, job dispatch), the database unavailable (503 with
Retry-After, one log line), graceful worker shutdown, outcomes recorded through a database
blip, and uploads when storage is unreachable or full."""

from __future__ import annotations

import contextlib
import io
import os
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import request
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from app.cache.aside import EXTENSION_KEY as CACHE_STATE_KEY
from app.core import circuit
from app.core.circuit import Circuit
from app.core.unit_of_work import unit_of_work
from app.errors import StorageFull, StorageUnavailable, is_database_unavailable
from app.extensions import db
from app.jobs import service as jobs_service
from app.jobs.models import Job, JobStatus
from app.jobs.queues import QUEUES_KEY
from app.logging import get_logger
from app.mail.service import queue_email
from app.uploads import service as uploads_service
from app.uploads.models import Upload, UploadStatus
from tasks.runtime import DurableTask, record_outcome, run_attempt
from tests.conftest import SERVICES
from tests.support import PASSWORD, FakeClock, Worker, csrf_token, free_port, wait_until, worker_env

services_only = pytest.mark.skipif(not SERVICES, reason="needs PostgreSQL and Redis (TEST_PROFILE=services)")


@pytest.fixture()
def clock(monkeypatch) -> FakeClock:
    """The clock of every circuit breaker and throttle (app.core.circuit), moved by the test."""
    fake = FakeClock()
    monkeypatch.setattr(circuit, "time", fake)
    return fake


# The breaker itself ---------------------------------------------------------------------------


def test_a_circuit_lets_one_probe_through_per_window_and_warns_once_per_period(clock, captured_logs):
    breaker = Circuit(
        "test",
        retry_after=2.0,
        warn_every=30.0,
        log=get_logger("hearth.test"),
        unavailable_event="thing_unavailable",
        recovered_event="thing_recovered",
    )
    assert breaker.allows()
    breaker.record_failure("call", ConnectionError("refused"))
    assert not breaker.allows() and not breaker.allows()
    clock.advance(2.1)
    assert breaker.allows()  # the probe
    assert not breaker.allows()  # everyone else waits for the probe's answer
    breaker.record_failure("call", ConnectionError("refused"))
    clock.advance(2.1)
    assert breaker.allows()
    breaker.record_failure("call", ConnectionError("refused"))
    assert len(captured_logs.events("thing_unavailable")) == 1  # within warn_every: one line
    clock.advance(30)
    assert breaker.allows()
    breaker.record_failure("call", ConnectionError("refused"))
    warnings = captured_logs.events("thing_unavailable")
    assert len(warnings) == 2 and warnings[1]["failures"] == 3  # the lines stand for every failure
    clock.advance(2.1)
    assert breaker.allows()
    breaker.record_success()
    assert breaker.allows() and breaker.allows()  # closed again, for everyone
    [recovered] = captured_logs.events("thing_recovered")
    assert recovered["failures"] == 4 and recovered["skipped"] == 3


# L1 invalidation bus -------------------------------------------------------------------------


def test_a_hung_redis_costs_the_l1_publisher_one_timeout_per_window(
    make_app, app, hung_redis_url, clock, captured_logs
):
    hung_app = make_app(redis_url=hung_redis_url, redis_timeout_seconds=0.2)
    bus = hung_app.extensions[CACHE_STATE_KEY].bus
    for index in range(20):
        bus.local.set("users", str(index), "cached")
    started = time.monotonic()
    for index in range(20):
        bus.drop("users", str(index))
    elapsed = time.monotonic() - started
    assert len(bus.local) == 0  # every drop still happened here, at once
    # One publish waited for the client timeout (with redis-py's own retries); the breaker
    # then skipped the other 19: without it, 20 publishes would each wait.
    assert elapsed < 1.5, elapsed
    assert bus.circuit.failures == 1 and bus.circuit.skipped == 19
    [warning] = captured_logs.events("l1_invalidation_not_published")
    assert warning["retry_after_seconds"] == 2.0 and warning["namespace"] == "users"
    clock.advance(2.1)  # the window ends: one more try (a probe), still one warning per period
    bus.drop("users", "again")
    assert bus.circuit.failures == 2
    assert len(captured_logs.events("l1_invalidation_not_published")) == 1


@services_only
def test_l1_invalidations_are_published_again_once_redis_answers(make_app, app, clock, captured_logs):
    from redis import Redis

    from tests.conftest import REDIS_URL

    live_app = make_app()
    bus = live_app.extensions[CACHE_STATE_KEY].bus
    bus.circuit.record_failure("publish", ConnectionError("down a moment ago"))
    listener = Redis.from_url(REDIS_URL).pubsub(ignore_subscribe_messages=True)
    listener.subscribe(bus.channel)
    bus.drop("users", "skipped")  # the breaker is open: not published
    clock.advance(2.1)
    bus.drop("users", "sent")
    received = []
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not any(b"sent" in item for item in received):
        message = listener.get_message(timeout=0.5)
        if message:
            received.append(message["data"])
    assert [item for item in received if b"users" in item] == [b"users\x1fsent"]
    assert captured_logs.events("l1_invalidation_published_again")


# Job dispatch ------------------------------------------------------------------------------


def _queue_mails(count: int) -> list[str]:
    ids = []
    for index in range(count):
        with unit_of_work():
            ids.append(queue_email(f"r{index}@example.com", "test_message", {"address": "x"}).id)
    return ids


def test_a_hung_redis_costs_job_dispatch_one_timeout_per_window(make_app, app, hung_redis_url, clock, captured_logs):
    hung_app = make_app(redis_url=hung_redis_url, redis_timeout_seconds=0.2, jobs_immediate=False)
    queues = hung_app.extensions[QUEUES_KEY]
    with hung_app.app_context():
        _queue_mails(1)  # the first pays the timeouts (dispatch, and the cache and bus on the way)
        started = time.monotonic()
        job_ids = _queue_mails(10)
        elapsed = time.monotonic() - started
        statuses = {db.session.get(Job, job_id).status for job_id in job_ids}
    # Without the breaker each of the 10 would wait for the client timeout again.
    assert elapsed < 1.0, elapsed
    assert statuses == {JobStatus.queued}  # the rows stay: the sweeper sends them later
    assert queues.circuit.failures == 1 and queues.circuit.skipped == 10
    [warning] = captured_logs.events("job_dispatch_failed")
    assert "sweeper" in warning["detail"]


def test_jobs_whose_dispatch_was_skipped_are_sent_by_the_sweeper_once_redis_is_back(
    make_app, app, base_settings, tmp_path, clock, captured_logs
):
    from redis.exceptions import ConnectionError as RedisConnectionError

    queue_app = make_app(
        jobs_immediate=False,
        jobs_sqlite_dir=str(tmp_path / "huey"),
        redis_prefix=base_settings["redis_prefix"] + "-" + tmp_path.name[-12:],
        jobs_queued_grace_seconds=0,
    )
    queues = queue_app.extensions[QUEUES_KEY]
    queues.circuit.record_failure("dispatch", RedisConnectionError("down a moment ago"))
    with queue_app.app_context():
        [job_id] = _queue_mails(1)
        assert queues.pending_count() == 0  # skipped: the breaker is open
        # The sweeper's own re-send meets the same open breaker: the row waits for the next sweep.
        assert job_id in jobs_service.sweep().requeued
        assert queues.pending_count() == 0
        clock.advance(2.1)  # Redis is back and the window over
        assert job_id in jobs_service.sweep().requeued
        assert queues.pending_count() == 1
        assert db.session.get(Job, job_id).status == JobStatus.queued
    assert captured_logs.events("job_dispatch_recovered")


# Database unavailable ------------------------------------------------------------------------


@pytest.fixture()
def unreachable_database_url(tmp_path) -> str:
    """A database that cannot be opened: a closed TCP port (PostgreSQL), a path in a missing
    folder (SQLite)."""
    if SERVICES:
        return f"postgresql://postgres@127.0.0.1:{free_port()}/hearth"
    return f"sqlite:///{tmp_path}/missing-folder/hearth.db"


def _no_traceback_logged(lines: list[dict[str, Any]]) -> None:
    for line in lines:
        assert "exception" not in line and "exc_info" not in line, line
        assert "Traceback" not in str(line), line


def test_an_unavailable_database_answers_503_with_retry_after_and_one_log_line(
    make_app, app, make_user, auth, unreachable_database_url, captured_logs
):
    make_user(email="down@example.com")
    auth.login("down@example.com")  # on the healthy app: a real session cookie for the same secret
    cookie = auth.client.get_cookie("session")
    down = make_app(database_url=unreachable_database_url)
    client = down.test_client()

    for _ in range(3):
        response = client.post("/api/v1/auth/token", json={"email": "down@example.com", "password": "x" * 12})
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "5"
        assert response.content_type == "application/problem+json"
        assert response.json["type"] == "https://hearth.dev/problems/database-unavailable"
        assert response.json["title"] == "Database unavailable"

    token = csrf_token(client)  # the sign-in page needs no database
    page = client.post("/auth/login", data={"csrf_token": token, "email": "down@example.com", "password": "x" * 12})
    assert page.status_code == 503 and page.headers["Retry-After"] == "5"
    assert "Temporarily unavailable" in page.get_data(as_text=True)

    # A signed-in browser: the session record and the user are loaded before the view.
    client.set_cookie("session", cookie.value)
    page = client.get("/account/")
    html = page.get_data(as_text=True)
    assert page.status_code == 503 and page.headers["Retry-After"] == "5"
    assert page.headers["Cache-Control"] == "no-store"
    assert "Temporarily unavailable" in html and "site-header" not in html  # not the layout

    assert client.get("/health/ready").status_code == 503
    assert client.get("/health/live").status_code == 200

    [warning] = captured_logs.events("database_unavailable")  # one line for 5 failed requests
    assert warning["retry_after_seconds"] == 5 and "SQL" not in warning["error"]
    assert not captured_logs.events("unhandled_exception")
    assert not captured_logs.events("error_page_failed")
    _no_traceback_logged(captured_logs.lines)


def test_the_database_warning_repeats_only_every_ten_seconds(
    make_app, app, unreachable_database_url, clock, captured_logs
):
    client = make_app(database_url=unreachable_database_url).test_client()
    for _ in range(3):
        assert (
            client.post("/api/v1/auth/token", json={"email": "a@example.com", "password": "x" * 12}).status_code == 503
        )
    clock.advance(10.1)
    assert client.post("/api/v1/auth/token", json={"email": "a@example.com", "password": "x" * 12}).status_code == 503
    first, second = captured_logs.events("database_unavailable")
    assert first["requests"] == 1 and second["requests"] == 3


def test_other_database_errors_are_still_a_500_with_their_traceback(make_app, app, captured_logs):
    failing = make_app()

    def duplicate():
        raise IntegrityError("INSERT …", {}, Exception("duplicate key value violates unique constraint"))

    failing.add_url_rule("/api/test-duplicate", "duplicate", duplicate)
    response = failing.test_client().get("/api/test-duplicate")
    assert response.status_code == 500
    assert response.json["type"] == "https://hearth.dev/problems/internal-server-error"
    assert captured_logs.events("unhandled_exception")
    assert not captured_logs.events("database_unavailable")


def test_which_database_errors_mean_unavailable():
    refused = OperationalError("SELECT 1", {}, Exception("connection refused"))  # no SQLSTATE: the client's
    assert is_database_unavailable(refused)
    assert is_database_unavailable(PoolTimeout("QueuePool limit of size 10 overflow 10 reached"))

    class ServerError(Exception):
        def __init__(self, sqlstate: str):
            super().__init__(sqlstate)
            self.sqlstate = sqlstate

    assert is_database_unavailable(OperationalError("x", {}, ServerError("57P01")))  # admin shutdown
    assert is_database_unavailable(OperationalError("x", {}, ServerError("08006")))  # connection failure
    assert not is_database_unavailable(OperationalError("x", {}, ServerError("57014")))  # statement timeout
    assert not is_database_unavailable(IntegrityError("x", {}, ServerError("23505")))
    assert not is_database_unavailable(ValueError("no"))
    # psycopg's own errors carry no SQLSTATE: a server refusing for good, or a statement the
    # client refuses, is a fault to fix (a 500 with its traceback), not an outage.
    server = 'connection failed: connection to server at "127.0.0.1", port 5432 failed: '
    assert not is_database_unavailable(
        OperationalError("x", {}, Exception(server + 'FATAL:  database "x" does not exist'))
    )
    assert not is_database_unavailable(
        OperationalError("x", {}, Exception(server + "FATAL:  password authentication failed"))
    )
    assert is_database_unavailable(
        OperationalError("x", {}, Exception(server + "FATAL:  the database system is starting up"))
    )
    assert is_database_unavailable(OperationalError("x", {}, Exception(server + "Connection refused")))
    too_many = "sending query and params failed: number of parameters must be between 0 and 65535"
    assert not is_database_unavailable(OperationalError("x", {}, Exception(too_many)))


def test_an_outage_met_after_the_view_is_a_503_without_a_traceback(
    make_app, app, unreachable_database_url, captured_logs
):
    down = make_app(database_url=unreachable_database_url)

    @down.after_request
    def touch_the_database(response):  # as an after-request hook that reads a row would
        if request.path == "/api/v1/status" and response.status_code == 200:
            with db.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        return response

    client = down.test_client()
    for _ in range(2):
        answer = client.get("/api/v1/status")
        assert answer.status_code == 503 and answer.headers["Retry-After"] == "5"
    assert len(captured_logs.events("database_unavailable")) == 1
    _no_traceback_logged(captured_logs.lines)


def _terminate_backends(database_url: str, pid: int | None = None) -> int:
    """pg_terminate_backend: a real disconnect, as when PostgreSQL restarts."""
    import psycopg

    from tests.conftest import POSTGRES_ADMIN_URL

    name = database_url.rsplit("/", 1)[1]
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as connection:
        if pid is not None:
            return connection.execute("SELECT count(pg_terminate_backend(%s))", (pid,)).fetchone()[0]
        return connection.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        ).fetchone()[0]


@services_only
def test_the_pool_recovers_from_terminated_connections_without_a_restart(app, client, people, api_auth, captured_logs):
    headers = api_auth.headers("admin@example.com")
    assert client.get("/api/v1/users", headers=headers).status_code == 200
    assert _terminate_backends(app.extensions["hearth.settings"].sqlalchemy_url) >= 1
    for _ in range(3):  # pool_pre_ping finds the dead connections and opens new ones
        assert client.get("/api/v1/users", headers=headers).status_code == 200
    assert client.get("/health/ready").status_code == 200
    assert not captured_logs.events("unhandled_exception")


@services_only
def test_a_connection_lost_mid_request_is_a_503_and_the_next_request_works(make_app, app, captured_logs):
    lossy = make_app()
    url = lossy.extensions["hearth.settings"].sqlalchemy_url

    def write_while_disconnected():
        with unit_of_work():
            pid = db.session.execute(text("SELECT pg_backend_pid()")).scalar_one()
            _terminate_backends(url, pid)
            db.session.execute(text("SELECT 1"))  # on the terminated connection
        return "unreachable"

    def read():
        return str(db.session.execute(text("SELECT 41 + 1")).scalar_one())

    lossy.add_url_rule("/api/test-lost", "lost", write_while_disconnected, methods=["POST"])
    lossy.add_url_rule("/api/test-read", "read", read)
    client = lossy.test_client()
    response = client.post("/api/test-lost")
    # The unit of work's rollback on the dead connection raised nothing of its own.
    assert response.status_code == 503 and response.headers["Retry-After"] == "5"
    assert response.json["type"] == "https://hearth.dev/problems/database-unavailable"
    assert client.get("/api/test-read").get_data(as_text=True) == "42"
    assert len(captured_logs.events("database_unavailable")) == 1
    assert not captured_logs.events("unhandled_exception")
    _no_traceback_logged(captured_logs.lines)


class TcpProxy:
    """A loopback TCP proxy in front of PostgreSQL that the test can stop (connections reset,
    new ones refused: the server is down, as far as the app can tell) and start again."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target, self.port = target, free_port()
        self._listener: socket.socket | None = None
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self.start()

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def stop(self) -> None:
        assert self._listener is not None
        _close(self._listener)
        with self._lock:
            open_sockets, self._sockets = self._sockets, []
        for sock in open_sockets:
            _close(sock)

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                downstream, _address = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                downstream.close()
                continue
            with self._lock:
                self._sockets += [downstream, upstream]
            for source, sink in ((downstream, upstream), (upstream, downstream)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            _close(source)
            _close(sink)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed by the other side
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


@pytest.fixture()
def proxied_database(app) -> Iterator[tuple[TcpProxy, str]]:
    from sqlalchemy.engine import make_url

    url = make_url(app.extensions["hearth.settings"].sqlalchemy_url)
    proxy = TcpProxy((url.host or "127.0.0.1", url.port or 5432))
    yield proxy, url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    proxy.stop()


@services_only
def test_service_comes_back_after_a_database_outage_without_a_restart(make_app, people, proxied_database):
    proxy, url = proxied_database
    client = make_app(database_url=url).test_client()
    sign_in = {"email": "admin@example.com", "password": PASSWORD}  # reads the database, never a cache
    assert client.post("/api/v1/auth/token", json=sign_in).status_code == 200
    proxy.stop()  # PostgreSQL "stopped": connections reset, new ones refused
    down = client.post("/api/v1/auth/token", json=sign_in)
    assert down.status_code == 503 and down.headers["Retry-After"] == "5"
    assert client.get("/health/ready").status_code == 503 and client.get("/health/live").status_code == 200
    proxy.start()  # and back: the same app serves again, no restart
    started = time.monotonic()
    wait_until(lambda: client.post("/api/v1/auth/token", json=sign_in).status_code == 200, 10, message="recovery")
    assert time.monotonic() - started < 10
    assert client.get("/health/ready").status_code == 200


# Recording a job's outcome through a database blip -------------------------------------------


def test_record_outcome_retries_while_the_database_is_unavailable(captured_logs):
    calls, sleeps = [], []

    def flaky() -> str:
        calls.append(1)
        if len(calls) <= 2:
            raise OperationalError("UPDATE jobs …", {}, Exception("connection refused"))
        return "recorded"

    assert record_outcome(flaky, "job-1", 60, sleep=sleeps.append) == "recorded"
    assert len(calls) == 3 and sleeps == [0.25, 0.5]  # backoff
    [warning] = captured_logs.events("job_outcome_not_recorded_retrying")
    assert warning["job_id"] == "job-1"

    def broken() -> str:
        raise IntegrityError("UPDATE jobs …", {}, Exception("a constraint"))

    with pytest.raises(IntegrityError):  # not an outage: raised at once, not retried
        record_outcome(broken, "job-2", 60, sleep=sleeps.append)

    def down() -> str:
        raise OperationalError("UPDATE jobs …", {}, Exception("connection refused"))

    with pytest.raises(OperationalError):  # an outage longer than the lease: given up, as before
        record_outcome(down, "job-3", 0.1, sleep=lambda seconds: None)


@services_only
def test_an_outcome_is_recorded_after_the_body_left_a_transaction_a_lost_connection_broke(app, captured_logs):
    def record() -> int:
        with unit_of_work():
            return db.session.execute(text("SELECT 1")).scalar()

    with app.app_context():
        # The task's body read outside a unit of work, and then its connection was lost.
        pid = db.session.execute(text("SELECT pg_backend_pid()")).scalar()
        assert _terminate_backends(app.extensions["hearth.settings"].sqlalchemy_url, pid) == 1
        with pytest.raises(OperationalError):
            db.session.execute(text("SELECT 1"))
        # The first try meets PendingRollbackError; the failed unit rolled it back; the next works.
        assert record_outcome(record, "job-4", 60, sleep=lambda seconds: None) == 1
    assert captured_logs.events("job_outcome_recorded_after_retry")


@services_only
def test_a_job_done_while_the_database_blinks_is_recorded_once_it_is_back(make_app, proxied_database, captured_logs):
    proxy, url = proxied_database
    worker_app = make_app(database_url=url, jobs_lease_seconds=10)
    ran: list[str] = []

    def deliver(*, job_id: str) -> None:
        ran.append(job_id)
        proxy.stop()  # the work is done (the email sent); now the database goes away for a second
        threading.Timer(1.0, proxy.start).start()

    task = DurableTask("tests.resilience.deliver", "emails", deliver, lambda payload: {})
    job_id = str(uuid.uuid4())
    with worker_app.app_context():
        db.session.add(
            Job(
                id=job_id,
                queue="emails",
                task=task.name,
                payload={},
                args_summary={},
                status=JobStatus.queued,
                attempts=0,
                max_attempts=3,
            )
        )
        db.session.commit()
    run_attempt(worker_app, task, job_id)
    with worker_app.app_context():
        job = db.session.get(Job, job_id)
        assert job.status == JobStatus.succeeded and job.attempts == 1
    assert ran == [job_id]  # done once; recorded, so the sweeper will not send it again
    assert len(captured_logs.events("job_outcome_not_recorded_retrying")) == 1
    assert captured_logs.events("job_outcome_recorded_after_retry")


def test_a_re_sent_email_has_the_same_message_id(app):
    """A job re-run after its success went unrecorded sends the same message again: the same
    Message-ID (from the job id), so receiving systems can recognise the duplicate."""
    from app.mail.service import render_message

    with app.test_request_context():
        first = render_message("a@example.com", "test_message", {"address": "a"}, message_key="job-42")
        again = render_message("a@example.com", "test_message", {"address": "a"}, message_key="job-42")
        other = render_message("a@example.com", "test_message", {"address": "a"}, message_key="job-43")
    assert first["Message-ID"] == again["Message-ID"] != other["Message-ID"]


# flask worker: graceful on SIGTERM and SIGINT ---------------------------------------------------


class HeldMailServer:
    """aiosmtpd on loopback that holds every message in DATA until `release` is set, then
    accepts it: a delivery that takes as long as the test wants, and succeeds."""

    def __init__(self) -> None:
        self.port = free_port()
        self.started, self.release = threading.Event(), threading.Event()
        self.accepted: list[bytes] = []

    async def handle_DATA(self, server, session, envelope) -> str:
        import asyncio

        self.started.set()
        while not self.release.is_set():
            await asyncio.sleep(0.05)
        self.accepted.append(envelope.content)
        return "250 Message accepted"


@pytest.fixture()
def held_smtp() -> Iterator[HeldMailServer]:
    from aiosmtpd.controller import Controller

    server = HeldMailServer()
    controller = Controller(server, hostname="127.0.0.1", port=server.port)
    controller.start()
    yield server
    server.release.set()
    controller.stop()


@pytest.fixture()
def queue_settings(app, base_settings, held_smtp, tmp_path) -> dict[str, Any]:
    return {
        **base_settings,
        "jobs_immediate": False,
        "smtp_url": f"smtp://127.0.0.1:{held_smtp.port}",
        "jobs_sqlite_dir": str(tmp_path / "huey"),
        "redis_prefix": base_settings["redis_prefix"] + "-" + tmp_path.name[-12:],
        "jobs_lease_seconds": 30,
    }


@pytest.fixture()
def worker(queue_settings, tmp_path) -> Iterator[Worker]:
    started = Worker("emails", worker_env(queue_settings), tmp_path / "worker.log").start()
    yield started
    started.stop()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stopped_worker_finishes_its_running_job_then_exits_0(make_app, queue_settings, held_smtp, worker, signum):
    queue_app = make_app(**queue_settings)
    with queue_app.app_context(), unit_of_work():
        job_id = queue_email("someone@example.com", "test_message", {"address": "someone"}).id
    assert held_smtp.started.wait(30), "the worker never started delivering"
    worker.process.send_signal(signum)
    time.sleep(1.0)
    assert worker.process.poll() is None  # waiting for the running job, not gone with it
    held_smtp.release.set()
    assert worker.process.wait(timeout=30) == 0
    with queue_app.app_context():
        job = db.session.get(Job, job_id)
        assert job.status == JobStatus.succeeded and job.attempts == 1
    assert len(held_smtp.accepted) == 1
    events = [line.get("event") for line in worker.log_lines()]
    assert "worker_stopped" in events


# Uploads when storage fails -----------------------------------------------------------------


def test_uploads_with_s3_unreachable_are_a_503_and_stay_pending(make_app, app, make_user, api_auth, captured_logs):
    make_user(email="s3down@example.com")
    s3_down = make_app(
        storage_backend="s3",
        s3_bucket="hearth-down",
        s3_endpoint_url=f"http://127.0.0.1:{free_port()}",
        s3_access_key_id="testing",
        s3_secret_access_key="testing",
    )
    client = s3_down.test_client()
    headers = api_auth(client).headers("s3down@example.com")
    started = client.post(
        "/api/v1/uploads/presigned",
        headers=headers,
        json={"filename": "a.pdf", "content_type": "application/pdf", "size": 100, "kind": "document"},
    )
    assert started.status_code == 201  # presigning is a signature: no call to S3
    upload_id = started.json["upload_id"]
    for _ in range(2):
        confirmed = client.post(f"/api/v1/uploads/{upload_id}/confirm", headers=headers)
        assert confirmed.status_code == 503 and confirmed.headers["Retry-After"] == "30"
        assert confirmed.json["type"] == "https://hearth.dev/problems/storage-unavailable"
    with s3_down.app_context():
        assert db.session.get(Upload, upload_id).status == UploadStatus.pending
        # Processing (the uploads queue) meets the same: the job fails and is retried; never `ready`.
        upload = db.session.get(Upload, upload_id)
        upload.status = UploadStatus.uploaded
        upload.content_type = "image/jpeg"
        db.session.commit()
        with pytest.raises(StorageUnavailable):
            uploads_service.process(upload_id)
        assert db.session.get(Upload, upload_id).status != UploadStatus.ready
    assert len(captured_logs.events("storage_unavailable")) == 1  # one line per window
    assert not captured_logs.events("unhandled_exception")


@pytest.fixture()
def full_disk(tmp_path) -> Iterator[Path]:
    """A real 64 KiB tmpfs: writes past it fail with ENOSPC, as on a full disk."""
    mount = tmp_path / "full"
    mount.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], capture_output=True, check=False
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({result.stderr.decode().strip() or 'not permitted'})")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def _files_under(root: Path) -> list[Path]:
    return [path for path in root.rglob("*") if path.is_file()]


def test_uploads_to_a_full_local_disk_are_a_507_and_leave_nothing_behind(
    make_app, app, make_user, api_auth, full_disk, captured_logs
):
    owner = make_user(email="full@example.com")
    full_app = make_app(storage_backend="local", storage_local_path=str(full_disk))
    client = full_app.test_client()
    headers = api_auth(client).headers("full@example.com")
    data = b"%PDF-1.4\n" + os.urandom(200 * 1024)  # larger than the whole disk
    started = client.post(
        "/api/v1/uploads/presigned",
        headers=headers,
        json={"filename": "big.pdf", "content_type": "application/pdf", "size": len(data), "kind": "document"},
    )
    assert started.status_code == 201
    post = started.json["upload"]
    form = {**post["fields"], "file": (io.BytesIO(data), "big.pdf")}
    sent = client.post(
        post["url"], data=form, content_type="multipart/form-data", headers={"Accept": "application/json"}
    )
    assert sent.status_code == 507
    assert sent.json["type"] == "https://hearth.dev/problems/insufficient-storage"
    assert _files_under(full_disk) == []  # the spooled part was removed
    confirmed = client.post(f"/api/v1/uploads/{started.json['upload_id']}/confirm", headers=headers)
    assert confirmed.status_code == 409  # nothing arrived: still pending, never uploaded or ready
    with full_app.app_context():
        assert db.session.get(Upload, started.json["upload_id"]).status == UploadStatus.pending

    # The form path (no JavaScript): the app itself streams the file to storage.
    with full_app.test_request_context():
        with pytest.raises(StorageFull):
            uploads_service.receive_upload(owner.id, "big.pdf", "application/pdf", "document", io.BytesIO(data))
        assert db.session.query(Upload).filter_by(filename="big.pdf").count() == 1  # only the first
    assert _files_under(full_disk) == []
    assert captured_logs.events("storage_full")
    assert not captured_logs.events("unhandled_exception")


def test_an_overwrite_that_meets_a_full_disk_keeps_the_old_object_and_its_type(make_app, app, full_disk):
    from app.storage.base import get_storage

    full_app = make_app(storage_backend="local", storage_local_path=str(full_disk))
    with full_app.app_context():
        storage = get_storage()
        storage.put("files/photo.jpg", b"original bytes", "image/jpeg")
        with pytest.raises(StorageFull):  # e.g. processing writes the cleaned image back
            storage.put("files/photo.jpg", os.urandom(200 * 1024), "image/png")
        assert storage.read("files/photo.jpg") == b"original bytes"
        assert storage.head("files/photo.jpg").content_type == "image/jpeg"
    assert sorted(path.name for path in _files_under(full_disk)) == ["photo.jpg", "photo.jpg.content-type"]
