"""Outbound webhooks (app.webhooks) against a real HTTP receiver on loopback.

The app queues jobs for real (JOBS_IMMEDIATE off, nobody consuming); each test runs the
delivery's attempts itself with the worker's own code (tasks.runtime.run_attempt), so every
attempt, its answer and the job's outcome can be observed. Signatures are checked with the
`standardwebhooks` library, as a receiver would. Real `flask worker` processes (and a worker
killed mid-delivery) are in test_webhook_delivery.py."""

from __future__ import annotations

import json
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from sqlalchemy import event, select, update
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from app.audit.models import AuditEvent
from app.auth.accounts import sign_up
from app.core.database import utcnow
from app.core.unit_of_work import unit_of_work
from app.errors import Conflict, ValidationFailed
from app.extensions import db
from app.jobs.models import Job, JobStatus
from app.notifications.models import Notification
from app.users import management
from app.users.models import User
from app.users.service import ensure_admin
from app.webhooks import delivery as webhook_delivery
from app.webhooks import service, targets
from app.webhooks.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint
from tasks.runtime import run_attempt
from tasks.webhooks import deliver_webhook
from tests.support import wait_until

# Receiver ------------------------------------------------------------------------------------


@dataclass
class Reply:
    status: int = 200
    body: bytes = b'{"ok": true}'
    headers: dict[str, str] = field(default_factory=dict)
    hang: float = 0.0  # seconds to wait before answering
    drip: float = 0.0  # send the status line a byte at a time, this many seconds apart
    hold: threading.Event | None = None  # answer only once this is set


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


class Receiver:
    """A threaded HTTP server on loopback answering POSTs with the queued `replies` (then 200),
    keeping every request it received."""

    def __init__(self) -> None:
        self.replies: list[Reply] = []
        self.received: list[Received] = []
        self.arrived = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                headers = {name.lower(): value for name, value in self.headers.items()}
                receiver.received.append(Received(self.path, headers, body, time.monotonic()))
                receiver.arrived.set()
                reply = receiver.replies.pop(0) if receiver.replies else Reply()
                if reply.hold is not None:
                    reply.hold.wait(30)
                if reply.hang:
                    time.sleep(reply.hang)
                try:
                    if reply.drip:
                        for byte in f"HTTP/1.1 {reply.status} OK\r\n".encode():
                            self.wfile.write(bytes([byte]))
                            self.wfile.flush()
                            time.sleep(reply.drip)
                        return
                    self.send_response(reply.status)
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(reply.body)))
                    self.end_headers()
                    self.wfile.write(reply.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout under test)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, path: str = "/hooks/hearth", host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def start(self) -> Receiver:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def receiver() -> Iterator[Receiver]:
    server = Receiver().start()
    yield server
    server.stop()


# App and helpers -------------------------------------------------------------------------------


@pytest.fixture()
def hooks_app(make_app, base_settings, tmp_path, app):
    """Jobs really queued (huey storage of its own, nobody consuming): tests run the attempts."""
    return make_app(
        jobs_immediate=False,
        jobs_sqlite_dir=str(tmp_path / "huey"),
        redis_prefix=base_settings["redis_prefix"] + "-" + tmp_path.name[-12:],
        jobs_backoff_base_seconds=0.05,
        webhook_connect_timeout=1,
        webhook_timeout=2,
    )


@pytest.fixture()
def admin(make_user):
    return make_user(email="admin@example.com", roles=("admin",), display_name="Admin", email_verified_at=utcnow())


def create(app, actor, url: str, events=("user.created",), description: str = "CRM sync") -> tuple[str, str]:
    with app.app_context():
        endpoint, secret = service.create_endpoint(actor, url, list(events), description)
        return endpoint.id, secret


def emit(app, event_type: str, data: dict[str, Any]) -> list[str]:
    with app.app_context():
        with unit_of_work():
            made = service.emit(event_type, data)
        return [delivery.id for delivery in made]


def delivery_row(app, delivery_id: str) -> WebhookDelivery:
    with app.app_context():
        row = db.session.get(WebhookDelivery, delivery_id)
        db.session.expunge(row)
        return row


def endpoint_row(app, endpoint_id: str) -> WebhookEndpoint:
    with app.app_context():
        row = db.session.get(WebhookEndpoint, endpoint_id)
        db.session.expunge(row)
        return row


def job_row(app, job_id: str) -> Job:
    with app.app_context():
        row = db.session.get(Job, job_id)
        db.session.expunge(row)
        return row


def attempt(app, delivery_id: str) -> WebhookDelivery:
    """One attempt at the delivery's job, as a worker runs it (a retry's delay taken as passed)."""
    job_id = delivery_row(app, delivery_id).job_id
    with app.app_context():
        db.session.execute(update(Job).where(Job.id == job_id).values(next_attempt_at=None))
        db.session.commit()
    run_attempt(app, deliver_webhook, job_id)
    return delivery_row(app, delivery_id)


def verified(secret: str, received: Received) -> dict[str, Any]:
    return Webhook(secret).verify(received.body, received.headers)


def deliveries_of(app, endpoint_id: str) -> list[WebhookDelivery]:
    with app.app_context():
        rows = db.session.scalars(select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint_id)).all()
        for row in rows:
            db.session.expunge(row)
        return list(rows)


# Delivery, signatures, retries ------------------------------------------------------------------


def test_a_sign_up_sends_user_created_signed_for_the_standardwebhooks_library(hooks_app, admin, receiver):
    endpoint_id, secret = create(hooks_app, admin, receiver.url())
    assert secret.startswith("whsec_")
    with hooks_app.app_context():
        sign_up("new.person@example.com", "New Person", "a long and unusual passphrase 42")
    [row] = deliveries_of(hooks_app, endpoint_id)
    assert row.status == DeliveryStatus.pending and row.event_type == "user.created"

    done = attempt(hooks_app, row.id)
    [received] = receiver.received
    body = verified(secret, received)
    assert received.headers["webhook-id"] == row.id
    assert abs(int(received.headers["webhook-timestamp"]) - time.time()) < 30
    assert received.headers["content-type"] == "application/json"
    assert received.path == "/hooks/hearth"
    assert body["type"] == "user.created"
    assert body["timestamp"].endswith("+00:00")
    data = body["data"]
    assert data["email"] == "new.person@example.com" and data["display_name"] == "New Person"
    assert data["status"] == "active" and data["roles"] == ["user"] and data["email_verified"] is False
    assert isinstance(data["id"], int) and data["created_at"]
    assert "password" not in received.body.decode() and "argon2" not in received.body.decode()
    # A wrong secret does not verify: the signature is real.
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + "A" * 44).verify(received.body, received.headers)
    assert done.status == DeliveryStatus.succeeded and done.attempts == 1
    assert done.response_status == 200 and done.response_snippet == '{"ok": true}' and done.duration_ms > 0
    assert done.finished_at is not None and done.error is None
    assert job_row(hooks_app, done.job_id).status == JobStatus.succeeded


def test_a_500_then_a_200_is_retried_with_the_same_id_and_the_log_shows_both_attempts(hooks_app, admin, receiver):
    _endpoint_id, secret = create(hooks_app, admin, receiver.url(), events=["user.updated"])
    [delivery_id] = emit(hooks_app, "user.updated", {"id": 7})
    receiver.replies.append(Reply(500, b"upstream exploded"))

    first = attempt(hooks_app, delivery_id)
    assert first.status == DeliveryStatus.pending and first.attempts == 1
    assert first.response_status == 500 and first.response_snippet == "upstream exploded"
    assert first.error == "The receiver answered 500."
    job = job_row(hooks_app, first.job_id)
    assert job.status == JobStatus.retrying
    assert first.next_attempt_at == job.next_attempt_at is not None  # read from the job, never guessed

    second = attempt(hooks_app, delivery_id)
    assert second.status == DeliveryStatus.succeeded and second.attempts == 2
    assert second.next_attempt_at is None and second.error is None
    assert [line["response_status"] for line in second.attempt_log] == [500, 200]
    assert [line["attempt"] for line in second.attempt_log] == [1, 2]
    assert second.attempt_log[0]["error"] == "The receiver answered 500." and second.attempt_log[1]["error"] is None
    first_call, second_call = receiver.received
    assert first_call.headers["webhook-id"] == second_call.headers["webhook-id"] == delivery_id
    assert first_call.body == second_call.body
    verified(secret, second_call)
    assert job_row(hooks_app, second.job_id).status == JobStatus.succeeded


@pytest.fixture()
def post_durations(monkeypatch) -> list[float]:
    """How long each delivery's HTTP part took (targets.post: DNS, connect, send, answer), the
    part WEBHOOK_TIMEOUT bounds; timing the whole attempt would add its database work, which
    a loaded machine can stretch past any upper bound."""
    durations: list[float] = []
    post = targets.post

    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.monotonic()
        try:
            return post(*args, **kwargs)
        finally:
            durations.append(time.monotonic() - started)

    monkeypatch.setattr(targets, "post", timed)
    return durations


def test_a_receiver_that_hangs_is_cut_at_the_total_timeout_and_retried(hooks_app, admin, receiver, post_durations):
    create(hooks_app, admin, receiver.url(), events=["user.updated"])
    [delivery_id] = emit(hooks_app, "user.updated", {"id": 7})
    receiver.replies.append(Reply(hang=8))
    row = attempt(hooks_app, delivery_id)
    [took] = post_durations
    assert 1.9 <= took < 5, took  # WEBHOOK_TIMEOUT=2
    assert row.status == DeliveryStatus.pending and row.response_status is None
    assert row.error == "The receiver did not answer within 2 seconds."
    assert job_row(hooks_app, row.job_id).status == JobStatus.retrying


def test_a_receiver_dripping_its_answer_is_still_cut_at_the_total_timeout(hooks_app, admin, receiver):
    # Each byte arrives well within any per-read timeout; only a total deadline stops it.
    create(hooks_app, admin, receiver.url(), events=["user.updated"])
    [delivery_id] = emit(hooks_app, "user.updated", {"id": 7})
    receiver.replies.append(Reply(drip=0.3))
    started = time.monotonic()
    row = attempt(hooks_app, delivery_id)
    assert time.monotonic() - started < 4
    assert row.error == "The receiver did not answer within 2 seconds."


def test_a_410_is_final_and_the_job_fails_at_once(hooks_app, admin, receiver):
    create(hooks_app, admin, receiver.url(), events=["user.updated"])
    [delivery_id] = emit(hooks_app, "user.updated", {"id": 7})
    receiver.replies.append(Reply(410, b"gone"))
    row = attempt(hooks_app, delivery_id)
    assert row.status == DeliveryStatus.failed and row.attempts == 1 and row.finished_at is not None
    assert row.response_status == 410 and row.error == "The receiver answered 410."
    job = job_row(hooks_app, row.job_id)
    assert job.status == JobStatus.failed and job.attempts == 1
    assert endpoint_row(hooks_app, row.endpoint_id).failing_since is not None


@pytest.mark.parametrize("status", [408, 429, 502, 503])
def test_408_429_and_5xx_are_retried(hooks_app, admin, receiver, status):
    create(hooks_app, admin, receiver.url(), events=["user.updated"])
    [delivery_id] = emit(hooks_app, "user.updated", {"id": 7})
    receiver.replies.append(Reply(status))
    row = attempt(hooks_app, delivery_id)
    assert row.status == DeliveryStatus.pending
    assert job_row(hooks_app, row.job_id).status == JobStatus.retrying


def test_a_retry_after_header_sets_the_next_attempt(hooks_app, admin, receiver):
    create(hooks_app, admin, receiver.url(), events=["user.updated"])
    [delivery_id] = emit(hooks_app, "user.updated", {"id": 7})
    receiver.replies.append(Reply(429, headers={"Retry-After": "120"}))
    before = utcnow()
    row = attempt(hooks_app, delivery_id)
    # The queue's own backoff here is 0.05 s: the receiver's 120 s wins.
    assert row.next_attempt_at >= before + timedelta(seconds=119)


def test_a_redirect_is_not_followed_and_is_final(hooks_app, admin, receiver):
    create(hooks_app, admin, receiver.url(), events=["user.updated"])
    [delivery_id] = emit(hooks_app, "user.updated", {"id": 7})
    receiver.replies.append(Reply(302, headers={"Location": receiver.url("/elsewhere")}))
    row = attempt(hooks_app, delivery_id)
    assert [call.path for call in receiver.received] == ["/hooks/hearth"]
    assert row.status == DeliveryStatus.failed and "redirects are not followed" in row.error


def test_a_connection_refused_is_retried(hooks_app, admin):
    from tests.support import free_port

    create(hooks_app, admin, f"http://127.0.0.1:{free_port()}/hook", events=["user.updated"])
    [delivery_id] = emit(hooks_app, "user.updated", {"id": 7})
    row = attempt(hooks_app, delivery_id)
    assert row.status == DeliveryStatus.pending
    assert row.error == "Could not connect to the receiver (ConnectionRefusedError)."


def test_the_last_attempt_failing_fails_the_delivery(hooks_app, admin, receiver):
    create(hooks_app, admin, receiver.url(), events=["user.updated"])
    [delivery_id] = emit(hooks_app, "user.updated", {"id": 7})
    max_attempts = job_row(hooks_app, delivery_row(hooks_app, delivery_id).job_id).max_attempts
    assert max_attempts == 6  # the sync queue: 5 retries
    receiver.replies.extend(Reply(503) for _ in range(max_attempts))
    for _ in range(max_attempts):
        row = attempt(hooks_app, delivery_id)
    assert row.status == DeliveryStatus.failed and row.attempts == 6 and len(row.attempt_log) == 6
    assert job_row(hooks_app, row.job_id).status == JobStatus.failed


def test_the_connection_goes_to_the_address_resolved_once(hooks_app, admin, receiver, monkeypatch):
    # A name the test's resolver knows; the system resolver must never be asked (a second
    # lookup inside an HTTP library could answer differently after the check).
    lookups: list[str] = []

    def resolver(host: str, port: int) -> list[str]:
        lookups.append(host)
        return ["127.0.0.1"]

    real_getaddrinfo = targets.socket.getaddrinfo

    def no_system_lookup(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "receiver.test":
            raise AssertionError("the system resolver was asked")
        return real_getaddrinfo(host, *args, **kwargs)  # Redis, PostgreSQL: not under test

    monkeypatch.setattr(targets, "resolve", resolver)
    _endpoint_id, secret = create(hooks_app, admin, receiver.url(host="receiver.test"), events=["user.updated"])
    [delivery_id] = emit(hooks_app, "user.updated", {"id": 7})
    monkeypatch.setattr(targets.socket, "getaddrinfo", no_system_lookup)
    row = attempt(hooks_app, delivery_id)
    assert row.status == DeliveryStatus.succeeded
    assert lookups == ["receiver.test"]  # registration resolves nothing when private targets are allowed
    [received] = receiver.received
    assert received.headers["host"] == f"receiver.test:{receiver.port}"
    verified(secret, received)


# Secrets -----------------------------------------------------------------------------------------


def test_rotation_sends_both_signatures_until_the_old_secret_expires(hooks_app, admin, receiver):
    endpoint_id, old = create(hooks_app, admin, receiver.url(), events=["user.updated"])
    with hooks_app.app_context():
        new = service.rotate_secret(admin, service.get_endpoint(endpoint_id))
    assert new != old and new.startswith("whsec_")
    [delivery_id] = emit(hooks_app, "user.updated", {"id": 7})
    attempt(hooks_app, delivery_id)
    received = receiver.received[-1]
    assert len(received.headers["webhook-signature"].split(" ")) == 2
    assert verified(old, received)["data"] == {"id": 7}
    assert verified(new, received)["data"] == {"id": 7}
    assert endpoint_row(hooks_app, endpoint_id).previous_secret_expires_at > utcnow() + timedelta(hours=23)

    with hooks_app.app_context():  # a day later
        db.session.execute(
            update(WebhookEndpoint)
            .where(WebhookEndpoint.id == endpoint_id)
            .values(previous_secret_expires_at=utcnow() - timedelta(seconds=1))
        )
        db.session.commit()
    [delivery_id] = emit(hooks_app, "user.updated", {"id": 8})
    attempt(hooks_app, delivery_id)
    received = receiver.received[-1]
    assert len(received.headers["webhook-signature"].split(" ")) == 1
    verified(new, received)
    with pytest.raises(WebhookVerificationError):
        verified(old, received)
    with hooks_app.app_context():
        assert webhook_delivery.sweep()["secrets_dropped"] == 1
    assert endpoint_row(hooks_app, endpoint_id).previous_secret_encrypted is None


def test_secrets_are_stored_encrypted_and_never_logged_or_audited(hooks_app, admin, receiver, captured_logs):
    endpoint_id, secret = create(hooks_app, admin, receiver.url(), events=["user.updated"])
    with hooks_app.app_context():
        rotated = service.rotate_secret(admin, service.get_endpoint(endpoint_id))
    [delivery_id] = emit(hooks_app, "user.updated", {"id": 7})
    attempt(hooks_app, delivery_id)
    row = endpoint_row(hooks_app, endpoint_id)
    for value in (secret, rotated):
        raw = value.removeprefix("whsec_")
        assert raw not in row.secret_encrypted and raw not in (row.previous_secret_encrypted or "")
        assert raw not in json.dumps(captured_logs.lines)
        with hooks_app.app_context():
            audit = db.session.scalars(select(AuditEvent)).all()
            assert raw not in json.dumps([event.data for event in audit], default=str)
    assert "secret" not in repr(row)


# SSRF ------------------------------------------------------------------------------------------


@pytest.fixture()
def strict_app(make_app, base_settings, tmp_path, app):
    """Production's rule: https only, public addresses only."""
    return make_app(
        jobs_immediate=False,
        jobs_sqlite_dir=str(tmp_path / "huey"),
        redis_prefix=base_settings["redis_prefix"] + "-" + tmp_path.name[-12:],
        webhook_allow_private_targets=False,
    )


def _url_error(app, actor, url: str) -> str:
    with app.app_context(), pytest.raises(ValidationFailed) as refused:
        service.create_endpoint(actor, url, ["user.created"], "")
    [error] = refused.value.extra["errors"]
    assert error["field"] == "url"
    return error["message"]


def test_private_targets_are_allowed_only_in_development_and_test(make_app):
    assert make_app().extensions["hearth.settings"].webhook_allow_private_targets is True
    assert make_app(app_env="development").extensions["hearth.settings"].webhook_allow_private_targets is True


@pytest.mark.parametrize(
    ("url", "resolved", "message"),
    [
        ("http://hooks.example.com/x", ["93.184.215.14"], "must start with https://"),
        ("https://127.0.0.1/x", None, "internal address (127.0.0.1)"),
        ("https://[::1]/x", None, "internal address (::1)"),
        ("https://169.254.169.254/latest/meta-data", None, "internal address (169.254.169.254)"),
        ("https://[fd00:ec2::254]/", None, "internal address (fd00:ec2::254)"),
        ("https://10.1.2.3/x", None, "internal address"),
        ("https://intranet.example.com/x", ["93.184.215.14", "192.168.1.20"], "internal address (192.168.1.20)"),
        ("https://mapped.example.com/x", ["::ffff:127.0.0.1"], "internal address"),
        ("https://cgnat.example.com/x", ["100.64.0.1"], "internal address"),
        ("https://user:pw@hooks.example.com/x", ["93.184.215.14"], "user name or password"),
        ("https://nowhere.invalid/x", [], "could not be resolved"),
    ],
)
def test_private_targets_are_refused_at_registration_when_not_allowed(
    strict_app, admin, monkeypatch, url, resolved, message
):
    monkeypatch.setattr(targets, "resolve", lambda host, port: list(resolved or []))
    assert message in _url_error(strict_app, admin, url)


def test_a_public_https_target_is_accepted_when_private_ones_are_not(strict_app, admin, monkeypatch):
    monkeypatch.setattr(
        targets, "resolve", lambda host, port: ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"]
    )
    endpoint_id, _secret = create(strict_app, admin, "https://hooks.example.com/hearth?token=abc")
    assert endpoint_row(strict_app, endpoint_id).url == "https://hooks.example.com/hearth?token=abc"


def test_a_name_resolving_to_loopback_only_at_delivery_time_is_refused(strict_app, admin, receiver, monkeypatch):
    answers = {"rebind.example.com": ["93.184.215.14"]}
    monkeypatch.setattr(targets, "resolve", lambda host, port: answers[host])
    create(strict_app, admin, f"https://rebind.example.com:{receiver.port}/hook")
    answers["rebind.example.com"] = ["93.184.215.14", "127.0.0.1"]  # DNS rebinding
    with strict_app.app_context():
        with unit_of_work():
            [made] = service.emit("user.created", {"id": 1})
        delivery_id = made.id
    row = attempt(strict_app, delivery_id)
    assert receiver.received == []
    assert row.status == DeliveryStatus.failed and row.response_status is None
    assert row.error == (
        "rebind.example.com resolves to an internal address (127.0.0.1): webhooks are only sent to public addresses."
    )
    assert job_row(strict_app, row.job_id).status == JobStatus.failed  # final: no retry


# The outbox ------------------------------------------------------------------------------------


def test_a_rolled_back_change_sends_nothing(hooks_app, admin, receiver):
    create(hooks_app, admin, receiver.url())
    with hooks_app.app_context():
        made: list[WebhookDelivery] = []

        def change() -> None:
            with unit_of_work():
                made.extend(service.emit("user.created", {"id": 1}))
                raise RuntimeError("the change failed")

        with pytest.raises(RuntimeError):
            change()
        assert len(made) == 1  # it was written, then rolled back with the change
        assert db.session.scalars(select(WebhookDelivery)).all() == []
        assert db.session.scalars(select(Job).where(Job.task == "tasks.webhooks.deliver_webhook")).all() == []


def test_a_sign_up_refused_sends_nothing(hooks_app, admin, receiver):
    create(hooks_app, admin, receiver.url())
    with hooks_app.app_context(), pytest.raises(ValidationFailed):
        sign_up("new.person@example.com", "", "a long and unusual passphrase 42")
    with hooks_app.app_context():
        assert db.session.scalars(select(WebhookDelivery)).all() == []


def test_emit_without_a_subscribed_endpoint_runs_no_query(hooks_app, admin, receiver):
    create(hooks_app, admin, receiver.url(), events=["export.ready"])
    statements: list[str] = []
    with hooks_app.app_context():
        with unit_of_work():
            service.emit("user.created", {"id": 1})  # warms the cached routes

        def count(conn, cursor, statement, *args: Any) -> None:
            statements.append(statement)

        event.listen(db.engine, "before_cursor_execute", count)
        try:
            with unit_of_work():
                assert service.emit("user.created", {"id": 2}) == []
        finally:
            event.remove(db.engine, "before_cursor_execute", count)
    assert statements == []


def test_endpoint_changes_reach_emit_at_once(hooks_app, admin, receiver):
    assert emit(hooks_app, "user.created", {"id": 1}) == []  # cached: nobody subscribed
    endpoint_id, _secret = create(hooks_app, admin, receiver.url())
    assert len(emit(hooks_app, "user.created", {"id": 1})) == 1
    with hooks_app.app_context():
        service.update_endpoint(admin, service.get_endpoint(endpoint_id), events=["user.deleted"])
    assert emit(hooks_app, "user.created", {"id": 1}) == []
    assert len(emit(hooks_app, "user.deleted", {"id": 1})) == 1
    with hooks_app.app_context():
        service.update_endpoint(admin, service.get_endpoint(endpoint_id), is_active=False)
    assert emit(hooks_app, "user.deleted", {"id": 1}) == []


def test_emit_refuses_an_unknown_event(hooks_app):
    with hooks_app.app_context(), unit_of_work(), pytest.raises(ValueError, match="unknown webhook event"):
        service.emit("user.exploded", {})


def test_the_services_that_change_users_emit_their_events(hooks_app, admin, make_user, receiver):
    endpoint_id, _secret = create(
        hooks_app, admin, receiver.url(), events=["user.updated", "user.disabled", "user.deleted", "role.changed"]
    )
    someone = make_user(email="someone@example.com", display_name="Someone")
    with hooks_app.app_context():
        actor = db.session.get(User, admin.id)
        held = frozenset({"users:write", "users:delete", "roles:manage", "users:read"}) | frozenset(
            p.name for role in actor.roles for p in role.permissions
        )

        def target() -> User:
            return db.session.get(User, someone.id)

        management.update_user(actor, held, target(), roles=["user", "viewer"])
        management.update_user(actor, held, target(), display_name="Someone Else")
        management.update_user(actor, held, target(), is_active=False)
        management.delete_user(actor, held, target())
        rows = db.session.scalars(
            select(WebhookDelivery)
            .where(WebhookDelivery.endpoint_id == endpoint_id)
            .order_by(WebhookDelivery.created_at)
        ).all()
        sent = [(row.event_type, row.payload["data"]) for row in rows]
    assert [name for name, _data in sent] == ["role.changed", "user.updated", "user.disabled", "user.deleted"]
    assert sent[0][1] == {"user_id": someone.id, "roles_before": ["user"], "roles_after": ["user", "viewer"]}
    assert sent[1][1]["display_name"] == "Someone Else" and sent[1][1]["status"] == "active"
    assert sent[2][1]["status"] == "disabled"
    assert sent[3][1]["status"] == "deleted" and sent[3][1]["deleted_at"]
    assert all("password_hash" not in data for _name, data in sent)


# Redeliver, test event, management ------------------------------------------------------------


def test_redeliver_sends_the_same_body_as_a_new_delivery(hooks_app, admin, receiver):
    endpoint_id, secret = create(hooks_app, admin, receiver.url(), events=["user.updated"])
    [delivery_id] = emit(hooks_app, "user.updated", {"id": 7})
    receiver.replies.append(Reply(410))
    attempt(hooks_app, delivery_id)
    with hooks_app.app_context():
        again = service.redeliver(admin, service.get_delivery(endpoint_id, delivery_id))
        again_id = again.id
    assert again_id != delivery_id
    row = attempt(hooks_app, again_id)
    assert row.status == DeliveryStatus.succeeded and row.redelivery_of == delivery_id
    first, second = receiver.received
    assert first.body == second.body and second.headers["webhook-id"] == again_id
    verified(secret, second)
    with hooks_app.app_context():
        audit = db.session.scalars(select(AuditEvent).where(AuditEvent.event == "webhook_redelivered")).one()
        assert audit.data["delivery"] == delivery_id and audit.data["redelivery"] == again_id


def test_a_test_event_reaches_the_endpoint_whatever_it_subscribed_to(hooks_app, admin, receiver):
    endpoint_id, secret = create(hooks_app, admin, receiver.url(), events=["export.ready"])
    with hooks_app.app_context():
        made = service.send_test(admin, service.get_endpoint(endpoint_id))
        made_id = made.id
    row = attempt(hooks_app, made_id)
    assert row.status == DeliveryStatus.succeeded and row.event_type == "webhook.test"
    body = verified(secret, receiver.received[0])
    assert body["type"] == "webhook.test"
    assert body["data"] == {"endpoint_id": endpoint_id, "message": "This is a test event from Hearth."}


def test_a_disabled_endpoint_gets_no_test_redelivery_or_pending_delivery(hooks_app, admin, receiver):
    endpoint_id, _secret = create(hooks_app, admin, receiver.url(), events=["user.updated"])
    [delivery_id] = emit(hooks_app, "user.updated", {"id": 7})
    with hooks_app.app_context():
        endpoint = service.update_endpoint(admin, service.get_endpoint(endpoint_id), is_active=False)
        assert endpoint.disabled_reason == "Disabled by an administrator." and endpoint.disabled_at
        with pytest.raises(Conflict):
            service.send_test(admin, service.get_endpoint(endpoint_id))
        with pytest.raises(Conflict):
            service.redeliver(admin, service.get_delivery(endpoint_id, delivery_id))
    row = attempt(hooks_app, delivery_id)
    assert receiver.received == []
    assert (
        row.status == DeliveryStatus.failed and row.error == "The endpoint was disabled before this delivery was sent."
    )
    assert endpoint_row(hooks_app, endpoint_id).failing_since is None  # not the receiver's failure


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"url": ""}, "url", "Enter the URL"),
        ({"url": "ftp://example.com/x"}, "url", "https:// or http://"),
        ({"url": "https://" + "a" * 2000 + ".com"}, "url", "at most 2000"),
        ({"events": []}, "events", "at least one event"),
        ({"events": ["user.created", "user.exploded"]}, "events", "user.exploded"),
        ({"events": ["webhook.test"]}, "events", "webhook.test"),
        ({"events": "user.created"}, "events", "at least one event"),
        ({"description": "x" * 501}, "description", "at most 500"),
        ({"description": 7}, "description", "text"),
    ],
)
def test_bad_input_is_refused_naming_the_field(hooks_app, admin, receiver, fields, field, message):
    values = {"url": receiver.url(), "events": ["user.created"], "description": "ok", **fields}
    with hooks_app.app_context(), pytest.raises(ValidationFailed) as refused:
        service.create_endpoint(admin, values["url"], values["events"], values["description"])
    [error] = refused.value.extra["errors"]
    assert error["field"] == field and message in error["message"]


def test_events_are_kept_in_catalogue_order_without_duplicates(hooks_app, admin, receiver):
    endpoint_id, _secret = create(
        hooks_app, admin, receiver.url(), events=["export.ready", "user.created", "export.ready"]
    )
    assert endpoint_row(hooks_app, endpoint_id).events == ["user.created", "export.ready"]
    with hooks_app.app_context():
        names = [name for name, _description in service.event_types()]
    assert "webhook.test" not in names and {"user.created", "role.changed", "export.ready"} <= set(names)


def test_every_change_is_audited_without_the_urls_query(hooks_app, admin, receiver):
    endpoint_id, _secret = create(hooks_app, admin, receiver.url() + "?token=s3cr3t-token")
    with hooks_app.app_context():
        endpoint = service.get_endpoint(endpoint_id)
        service.update_endpoint(admin, endpoint, description="Renamed")
        service.rotate_secret(admin, endpoint)
        service.send_test(admin, endpoint)
        service.delete_endpoint(admin, service.get_endpoint(endpoint_id))
        audit = db.session.scalars(select(AuditEvent).order_by(AuditEvent.id)).all()
        actions = [event.event for event in audit if event.event.startswith("webhook_")]
        data = json.dumps([event.data for event in audit], default=str)
    assert actions == [
        "webhook_created",
        "webhook_updated",
        "webhook_secret_rotated",
        "webhook_test_sent",
        "webhook_deleted",
    ]
    assert "s3cr3t-token" not in data
    assert all(event.target == f"webhook:{endpoint_id}" for event in audit if event.event.startswith("webhook_"))


def test_deleting_an_endpoint_revokes_its_pending_jobs_and_removes_its_deliveries(hooks_app, admin, receiver):
    endpoint_id, _secret = create(hooks_app, admin, receiver.url(), events=["user.updated"])
    [delivery_id] = emit(hooks_app, "user.updated", {"id": 7})
    job_id = delivery_row(hooks_app, delivery_id).job_id
    with hooks_app.app_context():
        service.delete_endpoint(admin, service.get_endpoint(endpoint_id))
        assert db.session.get(WebhookDelivery, delivery_id) is None
    assert job_row(hooks_app, job_id).status == JobStatus.revoked
    run_attempt(hooks_app, deliver_webhook, job_id)  # a late message: the claim refuses it
    assert receiver.received == []


def test_listing_and_reading_deliveries(hooks_app, admin, receiver):
    endpoint_id, _secret = create(hooks_app, admin, receiver.url(), events=["user.updated"])
    other_id, _secret = create(hooks_app, admin, receiver.url(), events=["user.updated"])
    made = emit(hooks_app, "user.updated", {"id": 7})
    assert len(made) == 2
    with hooks_app.app_context():
        page = service.list_deliveries(endpoint_id, 1, 10)
        assert page.total == 1 and page.items[0].endpoint_id == endpoint_id
        mine = page.items[0].id
        assert service.get_delivery(endpoint_id, mine).id == mine
        other = next(delivery_id for delivery_id in made if delivery_id != mine)
        from app.errors import NotFound

        with pytest.raises(NotFound):
            service.get_delivery(endpoint_id, other)
        assert service.list_endpoints(1, 10).total == 2
        with pytest.raises(NotFound):
            service.get_endpoint("no-such-endpoint")
    assert other_id


# Failing endpoints -----------------------------------------------------------------------------


def _set_failing_since(app, endpoint_id: str, hours_ago: float) -> None:
    with app.app_context():
        db.session.execute(
            update(WebhookEndpoint)
            .where(WebhookEndpoint.id == endpoint_id)
            .values(failing_since=utcnow() - timedelta(hours=hours_ago))
        )
        db.session.commit()


def test_failing_since_starts_at_a_final_failure_and_a_success_clears_it(hooks_app, admin, receiver):
    endpoint_id, _secret = create(hooks_app, admin, receiver.url(), events=["user.updated"])
    [first] = emit(hooks_app, "user.updated", {"id": 1})
    receiver.replies.append(Reply(400))
    attempt(hooks_app, first)
    since = endpoint_row(hooks_app, endpoint_id).failing_since
    assert since is not None
    [second] = emit(hooks_app, "user.updated", {"id": 2})
    receiver.replies.append(Reply(400))
    attempt(hooks_app, second)
    assert endpoint_row(hooks_app, endpoint_id).failing_since == since  # the run's start is kept
    [third] = emit(hooks_app, "user.updated", {"id": 3})
    attempt(hooks_app, third)
    assert endpoint_row(hooks_app, endpoint_id).failing_since is None


def test_an_endpoint_failing_every_delivery_for_the_window_is_disabled_and_its_owner_told(hooks_app, admin, receiver):
    endpoint_id, _secret = create(hooks_app, admin, receiver.url(), events=["user.updated"])
    _set_failing_since(hooks_app, endpoint_id, hours_ago=23)
    [delivery_id] = emit(hooks_app, "user.updated", {"id": 1})
    receiver.replies.append(Reply(404))
    attempt(hooks_app, delivery_id)
    assert endpoint_row(hooks_app, endpoint_id).is_active  # 23 h: not yet

    _set_failing_since(hooks_app, endpoint_id, hours_ago=24.5)
    [delivery_id] = emit(hooks_app, "user.updated", {"id": 2})
    receiver.replies.append(Reply(404))
    attempt(hooks_app, delivery_id)
    endpoint = endpoint_row(hooks_app, endpoint_id)
    assert not endpoint.is_active and endpoint.disabled_at is not None
    assert endpoint.disabled_reason == "Disabled automatically: every delivery failed for 24 hours."
    with hooks_app.app_context():
        [notice] = db.session.scalars(select(Notification).where(Notification.kind == "webhook.disabled")).all()
        assert notice.user_id == admin.id
        assert receiver.url() in notice.title and "24 hours" in notice.body
        assert db.session.scalars(select(AuditEvent).where(AuditEvent.event == "webhook_disabled")).one()
    assert emit(hooks_app, "user.updated", {"id": 3}) == []  # nothing more is queued

    with hooks_app.app_context():  # re-enabling resumes
        service.update_endpoint(admin, service.get_endpoint(endpoint_id), is_active=True)
    endpoint = endpoint_row(hooks_app, endpoint_id)
    assert endpoint.is_active and endpoint.failing_since is None and endpoint.disabled_reason is None
    [delivery_id] = emit(hooks_app, "user.updated", {"id": 4})
    assert attempt(hooks_app, delivery_id).status == DeliveryStatus.succeeded


def test_the_sweep_fails_deliveries_whose_job_ended_without_them(hooks_app, admin, receiver):
    endpoint_id, _secret = create(hooks_app, admin, receiver.url(), events=["user.updated"])
    [delivery_id] = emit(hooks_app, "user.updated", {"id": 1})
    job_id = delivery_row(hooks_app, delivery_id).job_id
    with hooks_app.app_context():
        # The sweeper failed the job: its worker died on the last attempt.
        db.session.execute(update(Job).where(Job.id == job_id).values(status=JobStatus.failed))
        db.session.execute(
            update(WebhookDelivery).where(WebhookDelivery.id == delivery_id).values(status=DeliveryStatus.delivering)
        )
        db.session.commit()
        assert webhook_delivery.sweep()["failed"] == 1
    row = delivery_row(hooks_app, delivery_id)
    assert row.status == DeliveryStatus.failed
    assert row.error == "The delivery stopped before it finished (its job ended without it)."
    assert endpoint_row(hooks_app, endpoint_id).failing_since is not None


def test_a_receiver_answer_is_kept_to_one_kilobyte(hooks_app, admin, receiver):
    create(hooks_app, admin, receiver.url(), events=["user.updated"])
    [delivery_id] = emit(hooks_app, "user.updated", {"id": 1})
    receiver.replies.append(Reply(200, b"x" * 50_000))
    row = attempt(hooks_app, delivery_id)
    assert row.status == DeliveryStatus.succeeded and len(row.response_snippet) == 1024


def test_the_receiver_sees_its_answer_within_the_timeout(hooks_app, admin, receiver):
    # A sanity check of the receiver itself: a normal answer is not mistaken for a timeout.
    create(hooks_app, admin, receiver.url(), events=["user.updated"])
    [delivery_id] = emit(hooks_app, "user.updated", {"id": 1})
    receiver.replies.append(Reply(hang=0.3))
    assert attempt(hooks_app, delivery_id).status == DeliveryStatus.succeeded
    wait_until(lambda: receiver.arrived.is_set(), timeout=1)


def test_uploads_announce_a_file_rejected_after_processing_failed(hooks_app, admin, make_user, receiver):
    from app.uploads import service as uploads
    from app.uploads.models import Upload, UploadStatus

    endpoint_id, _secret = create(hooks_app, admin, receiver.url(), events=["upload.rejected", "upload.ready"])
    owner = make_user(email="owner@example.com")
    with hooks_app.app_context():
        db.session.add(
            Upload(
                id="u-1",
                user_id=owner.id,
                kind="document",
                status=UploadStatus.processing,
                filename="report.pdf",
                content_type="application/pdf",
                declared_size=2048,
                size=2048,
                key="users/x/document/u-1/report.pdf",
                details={},
            )
        )
        db.session.commit()
        uploads.mark_failed("u-1", "The file could not be read.")
    [row] = deliveries_of(hooks_app, endpoint_id)
    assert row.event_type == "upload.rejected"
    assert row.payload["data"] == {
        "id": "u-1",
        "user_id": owner.id,
        "filename": "report.pdf",
        "kind": "document",
        "content_type": "application/pdf",
        "size": 2048,
        "status": "failed",
        "reason": "Processing failed: The file could not be read.",
    }


def test_exports_announce_a_finished_export(hooks_app, admin, receiver):
    from app.exports import service as exports
    from tasks.reports import build_export

    endpoint_id, _secret = create(hooks_app, admin, receiver.url(), events=["export.ready"])
    with hooks_app.app_context():
        export = exports.request_export(admin, "users_csv", {})
        export_id, job_id = export.id, export.job_id
    run_attempt(hooks_app, build_export, job_id)
    [row] = deliveries_of(hooks_app, endpoint_id)
    data = row.payload["data"]
    assert row.event_type == "export.ready"
    assert data["id"] == export_id and data["user_id"] == admin.id and data["kind"] == "users_csv"
    assert data["size"] > 0 and data["filename"].endswith(".csv") and data["expires_at"]


def test_changing_only_the_urls_query_is_audited_without_it(hooks_app, admin, receiver):
    endpoint_id, _secret = create(hooks_app, admin, receiver.url() + "?token=old-token")
    with hooks_app.app_context():
        service.update_endpoint(admin, service.get_endpoint(endpoint_id), url=receiver.url() + "?token=new-token")
        [audit] = db.session.scalars(select(AuditEvent).where(AuditEvent.event == "webhook_updated")).all()
        assert audit.data["after"]["url"] == receiver.url() + "?…"
        assert "token" not in json.dumps(audit.data)
    assert endpoint_row(hooks_app, endpoint_id).url.endswith("?token=new-token")


# URLs, answers and deadlines the receiver controls --------------------------------------------


def test_a_url_with_non_ascii_in_its_query_is_delivered_percent_encoded(hooks_app, admin, receiver):
    # Accepted at registration, it used to crash every attempt (UnicodeEncodeError in
    # http.client) until the endpoint was disabled.
    endpoint_id, secret = create(hooks_app, admin, receiver.url("/hooks/hearth?team=café&q=a b"))
    assert endpoint_row(hooks_app, endpoint_id).url.endswith("?team=café&q=a b")  # kept as typed
    [delivery_id] = emit(hooks_app, "user.created", {"id": 1})
    row = attempt(hooks_app, delivery_id)
    assert row.status == DeliveryStatus.succeeded and row.error is None
    [received] = receiver.received
    assert received.path == "/hooks/hearth?team=caf%C3%A9&q=a%20b"
    verified(secret, received)


@pytest.mark.parametrize("character", ["\x01", "\x7f", "\u0085"])
def test_a_url_with_a_control_character_is_refused_at_registration(hooks_app, admin, receiver, character):
    message = _url_error(hooks_app, admin, receiver.url(f"/hooks/hearth?x=1{character}2"))
    assert message == "The URL must not contain control characters (a tab, a line break, …)."


def test_a_200_with_a_meaningless_retry_after_succeeds(hooks_app, admin, receiver):
    # "²".isdigit() is True but float("²") fails: reading it used to turn the 200 into a crash.
    create(hooks_app, admin, receiver.url(), events=["user.updated"])
    [delivery_id] = emit(hooks_app, "user.updated", {"id": 7})
    receiver.replies.append(Reply(200, headers={"Retry-After": "²"}))
    row = attempt(hooks_app, delivery_id)
    assert row.status == DeliveryStatus.succeeded and row.response_status == 200
    assert job_row(hooks_app, row.job_id).status == JobStatus.succeeded


@pytest.mark.parametrize(
    "value", ["²", "Fri, 31 Dec 99999999999999999999 23:59:59 GMT", "Sat, 31 Dec 99999 23:59:59 GMT"]
)
def test_a_503_with_a_garbage_retry_after_is_retried_on_the_queues_backoff(hooks_app, admin, receiver, value):
    create(hooks_app, admin, receiver.url(), events=["user.updated"])
    [delivery_id] = emit(hooks_app, "user.updated", {"id": 7})
    receiver.replies.append(Reply(503, headers={"Retry-After": value}))
    before = utcnow()
    row = attempt(hooks_app, delivery_id)
    assert row.status == DeliveryStatus.pending and row.error == "The receiver answered 503."
    job = job_row(hooks_app, row.job_id)
    assert job.status == JobStatus.retrying
    assert job.next_attempt_at <= before + timedelta(seconds=30)  # the backoff (0.05 s here), not the header


@pytest.fixture()
def blackhole(receiver) -> Iterator[str]:
    """127.0.0.2 at the receiver's port, listening with its backlog full: the kernel drops each
    new SYN, so a connect there hangs until the client's own timeout (a receiver that is down
    behind a firewall)."""
    listener = socket.socket()
    listener.bind(("127.0.0.2", receiver.port))
    listener.listen(0)
    filler = socket.create_connection(("127.0.0.2", receiver.port), timeout=1)  # fills the queue
    yield "127.0.0.2"
    filler.close()
    listener.close()


@pytest.fixture()
def quick_connect_app(make_app, base_settings, tmp_path, app):
    """A short connect timeout (0.3 s) under a long total one (5 s)."""
    return make_app(
        jobs_immediate=False,
        jobs_sqlite_dir=str(tmp_path / "huey"),
        redis_prefix=base_settings["redis_prefix"] + "-" + tmp_path.name[-12:],
        jobs_backoff_base_seconds=0.05,
        webhook_connect_timeout=0.3,
        webhook_timeout=5,
    )


def test_an_attempt_tries_at_most_three_addresses(
    quick_connect_app, admin, receiver, blackhole, monkeypatch, post_durations
):
    # Three unresponsive addresses, then one that answers: the attempt gives up after three.
    monkeypatch.setattr(targets, "resolve", lambda host, port: [blackhole] * 3 + ["127.0.0.1"])
    create(quick_connect_app, admin, receiver.url(host="many.test"), events=["user.updated"])
    [delivery_id] = emit(quick_connect_app, "user.updated", {"id": 7})
    row = attempt(quick_connect_app, delivery_id)
    [took] = post_durations
    assert took < 2, took
    assert receiver.received == []
    assert row.status == DeliveryStatus.pending and row.error == "The receiver did not answer within 0.3 seconds."


def test_unresponsive_addresses_share_the_attempts_total_timeout(
    hooks_app, admin, receiver, blackhole, monkeypatch, post_durations
):
    # WEBHOOK_CONNECT_TIMEOUT=1 each would be 3 s for three addresses: the total (2 s) wins.
    monkeypatch.setattr(targets, "resolve", lambda host, port: [blackhole] * 3)
    create(hooks_app, admin, receiver.url(host="down.test"), events=["user.updated"])
    [delivery_id] = emit(hooks_app, "user.updated", {"id": 7})
    row = attempt(hooks_app, delivery_id)
    [took] = post_durations
    assert 1.9 <= took < 2.6, took
    assert row.status == DeliveryStatus.pending and row.error == "The receiver did not answer within 2 seconds."
    assert job_row(hooks_app, row.job_id).status == JobStatus.retrying


def test_a_name_that_resolves_slowly_is_cut_at_the_total_timeout(
    hooks_app, admin, receiver, monkeypatch, post_durations
):
    def slow(host: str, port: int) -> list[str]:
        time.sleep(4)  # getaddrinfo has no timeout of its own
        return ["127.0.0.1"]

    create(hooks_app, admin, receiver.url(host="slow-dns.test"), events=["user.updated"])
    monkeypatch.setattr(targets, "resolve", slow)
    [delivery_id] = emit(hooks_app, "user.updated", {"id": 7})
    row = attempt(hooks_app, delivery_id)
    [took] = post_durations
    assert 1.9 <= took < 3, took  # WEBHOOK_TIMEOUT=2
    assert receiver.received == []
    assert row.status == DeliveryStatus.pending and row.error == "The host name slow-dns.test could not be resolved."


# HTTPS ------------------------------------------------------------------------------------------


@dataclass
class Certificates:
    ca_pem: str  # the CA that signed the receiver's certificate
    cert_file: str
    key_file: str


def _certificates(directory, host: str) -> Certificates:
    """A throwaway CA and a certificate it signed for `host` (TLS server use)."""
    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Hearth test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    cert_file, key_file = directory / f"{host}.pem", directory / f"{host}.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return Certificates(ca.public_bytes(serialization.Encoding.PEM).decode(), str(cert_file), str(key_file))


@pytest.fixture()
def tls_receiver(tmp_path) -> Iterator[Any]:
    """Start a receiver speaking TLS on loopback with a certificate for the given host name:
    `tls_receiver("receiver.test")` -> (receiver, certificates)."""
    started: list[Receiver] = []

    def start(host: str) -> tuple[Receiver, Certificates]:
        certificates = _certificates(tmp_path, host)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(certificates.cert_file, certificates.key_file)
        server = Receiver()
        server.server.socket = context.wrap_socket(server.server.socket, server_side=True)
        started.append(server.start())
        return server, certificates

    yield start
    for server in started:
        server.stop()


def _https_endpoint(app, actor, server: Receiver, monkeypatch) -> str:
    """An endpoint at https://receiver.test:<port>/hooks/hearth (the name resolving to loopback)
    and one delivery queued to it."""
    monkeypatch.setattr(targets, "resolve", lambda host, port: ["127.0.0.1"])
    create(app, actor, f"https://receiver.test:{server.port}/hooks/hearth", events=["user.updated"])
    [delivery_id] = emit(app, "user.updated", {"id": 7})
    return delivery_id


def test_https_to_a_certificate_the_system_does_not_trust_is_a_recorded_failure(
    hooks_app, admin, tls_receiver, monkeypatch
):
    server, _unused = tls_receiver("receiver.test")
    delivery_id = _https_endpoint(hooks_app, admin, server, monkeypatch)
    row = attempt(hooks_app, delivery_id)  # the production trust store: the test CA is unknown
    assert server.received == []
    assert row.status == DeliveryStatus.pending and row.response_status is None
    assert row.error.startswith("The TLS connection to the receiver failed (")
    assert "certificate" in row.error
    assert row.attempt_log[-1]["error"] == row.error
    assert job_row(hooks_app, row.job_id).status == JobStatus.retrying


def test_https_is_delivered_when_the_ca_is_trusted(hooks_app, admin, tls_receiver, monkeypatch):
    server, certificates = tls_receiver("receiver.test")
    monkeypatch.setattr(targets, "tls_context", lambda: ssl.create_default_context(cadata=certificates.ca_pem))
    delivery_id = _https_endpoint(hooks_app, admin, server, monkeypatch)
    row = attempt(hooks_app, delivery_id)
    assert row.status == DeliveryStatus.succeeded and row.response_status == 200
    [received] = server.received
    assert received.path == "/hooks/hearth" and received.headers["host"] == f"receiver.test:{server.port}"


def test_https_checks_the_host_name_against_the_certificate(hooks_app, admin, tls_receiver, monkeypatch):
    server, certificates = tls_receiver("other.test")  # a trusted certificate, for another name
    monkeypatch.setattr(targets, "tls_context", lambda: ssl.create_default_context(cadata=certificates.ca_pem))
    delivery_id = _https_endpoint(hooks_app, admin, server, monkeypatch)
    row = attempt(hooks_app, delivery_id)
    assert server.received == []
    assert row.status == DeliveryStatus.pending
    assert row.error.startswith("The TLS connection to the receiver failed (") and "receiver.test" in row.error


def test_the_production_tls_context_uses_the_system_trust_store_and_checks_host_names():
    context = targets.tls_context()
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname


# ensure_admin (flask users create-admin, the seed) -----------------------------------------------


def test_ensure_admin_announces_the_account_it_creates_and_the_role_it_grants(hooks_app, admin, make_user, receiver):
    endpoint_id, _secret = create(hooks_app, admin, receiver.url(), events=["user.created", "role.changed"])
    someone = make_user(email="someone@example.com")
    with hooks_app.app_context():
        created = ensure_admin("new.admin@example.com", None)
        granted = ensure_admin("someone@example.com", None)
        ensure_admin("someone@example.com", None)  # already an admin: nothing changes, nothing sent
        created_id = created.user.id
    assert created.created and not granted.created
    sent = sorted((row.event_type, row.payload["data"]) for row in deliveries_of(hooks_app, endpoint_id))
    assert [name for name, _data in sent] == ["role.changed", "user.created"]
    assert sent[0][1] == {"user_id": someone.id, "roles_before": ["user"], "roles_after": ["admin", "user"]}
    user = sent[1][1]
    assert user["id"] == created_id and user["email"] == "new.admin@example.com"
    assert user["roles"] == ["admin"] and user["email_verified"] is True and user["created_at"]
    assert "password_hash" not in user


def test_a_request_http_client_cannot_build_is_a_refusal_not_an_escaped_error(receiver):
    # parse() makes every accepted URL sendable; post() still turns what http.client refuses
    # to send into an outcome the attempt records (final: it would fail the same way again).
    unsendable = targets.Target("http", "127.0.0.1", receiver.port, "/café")
    with pytest.raises(targets.TargetRefused, match=r"could not be made from this URL \(UnicodeEncodeError\)"):
        targets.post(unsendable, b"{}", {}, allow_private=True, connect_timeout=1, total_timeout=2)
    spaced = targets.Target("http", "127.0.0.1", receiver.port, "/a b")
    with pytest.raises(targets.TargetRefused, match=r"could not be made from this URL \(InvalidURL\)"):
        targets.post(spaced, b"{}", {}, allow_private=True, connect_timeout=1, total_timeout=2)
    assert receiver.received == []


def test_finished_deliveries_past_their_retention_are_pruned_daily(hooks_app, admin, receiver):
    from tasks import PERIODIC_TASKS

    create(hooks_app, admin, receiver.url(), events=["user.updated"])
    old, recent, waiting = (
        emit(hooks_app, "user.updated", {"id": 1})
        + emit(hooks_app, "user.updated", {"id": 2})
        + (emit(hooks_app, "user.updated", {"id": 3}))
    )
    for delivery_id in (old, recent):
        assert attempt(hooks_app, delivery_id).status == DeliveryStatus.succeeded
    retention = hooks_app.extensions["hearth.settings"].webhook_delivery_retention_days
    with hooks_app.app_context():
        long_ago = utcnow() - timedelta(days=retention, hours=1)
        for delivery_id in (old, waiting):  # one finished long ago; one pending as long
            db.session.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.id == delivery_id)
                .values(created_at=long_ago, finished_at=long_ago if delivery_id == old else None)
            )
        db.session.commit()
        assert "prune_webhook_deliveries" in {task.name for task in PERIODIC_TASKS}
        assert webhook_delivery.prune() == 1
        assert db.session.get(WebhookDelivery, old) is None
        assert db.session.get(WebhookDelivery, recent) is not None
        assert db.session.get(WebhookDelivery, waiting).status == DeliveryStatus.pending
