"""Webhook deliveries through real `flask worker sync` processes and a real HTTP receiver on
loopback: an event committed is delivered by the queue, and a worker SIGKILLed in the middle
of a delivery loses nothing (the sweeper re-sends the job; the receiver may see the same
`webhook-id` twice, never zero times)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook

from app.core.database import utcnow
from app.core.unit_of_work import unit_of_work
from app.extensions import db
from app.jobs import service as jobs_service
from app.jobs.models import Job, JobStatus
from app.jobs.periodic import scheduled_tasks
from app.webhooks import service
from app.webhooks.models import DeliveryStatus, WebhookDelivery
from tests.integration.test_webhooks import Receiver, Reply
from tests.support import Worker, pid_alive, wait_until, worker_env

LEASE_SECONDS = 1.5


@pytest.fixture()
def receiver() -> Iterator[Receiver]:
    server = Receiver().start()
    yield server
    server.stop()


@pytest.fixture()
def queue_settings(app, base_settings, tmp_path) -> dict[str, Any]:
    """Settings shared by the producing test app and the worker processes: a real queue."""
    return {
        **base_settings,
        "jobs_immediate": False,
        "jobs_sqlite_dir": str(tmp_path / "huey"),
        "redis_prefix": base_settings["redis_prefix"] + "-" + tmp_path.name[-12:],
        "jobs_lease_seconds": LEASE_SECONDS,
        "jobs_backoff_base_seconds": 0.3,
        "jobs_queued_grace_seconds": 0.5,
        "webhook_timeout": 30,
    }


@pytest.fixture()
def queue_app(make_app, queue_settings):
    return make_app(**queue_settings)


@pytest.fixture()
def workers(queue_settings, tmp_path) -> Iterator[Any]:
    started: list[Worker] = []

    def start(queue: str = "sync") -> Worker:
        worker = Worker(queue, worker_env(queue_settings), tmp_path / f"worker-{len(started)}.log").start()
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


@pytest.fixture()
def admin(make_user):
    return make_user(email="admin@example.com", roles=("admin",), email_verified_at=utcnow())


def _subscribe_and_emit(app, actor, url: str) -> tuple[str, str]:
    with app.app_context():
        _endpoint, secret = service.create_endpoint(actor, url, ["user.updated"], "")
        with unit_of_work():
            [delivery] = service.emit("user.updated", {"id": 42})
        return delivery.id, secret


def _delivery(app, delivery_id: str) -> WebhookDelivery:
    with app.app_context():
        row = db.session.get(WebhookDelivery, delivery_id)
        db.session.expunge(row)
        return row


def _job(app, job_id: str) -> Job:
    with app.app_context():
        row = db.session.get(Job, job_id)
        db.session.expunge(row)
        return row


def test_a_committed_event_is_delivered_by_a_sync_worker(queue_app, admin, receiver, workers):
    delivery_id, secret = _subscribe_and_emit(queue_app, admin, receiver.url())
    workers("sync")
    wait_until(lambda: receiver.received, timeout=30, message="the delivery to arrive")
    [received] = receiver.received
    assert Webhook(secret).verify(received.body, received.headers)["data"] == {"id": 42}
    assert received.headers["webhook-id"] == delivery_id
    row = wait_until(
        lambda: (row := _delivery(queue_app, delivery_id)).status == DeliveryStatus.succeeded and row,
        timeout=30,
        message="the delivery to be recorded",
    )
    assert row.attempts == 1 and row.response_status == 200
    job = wait_until(
        lambda: (job := _job(queue_app, row.job_id)).status == JobStatus.succeeded and job, message="the job"
    )
    assert job.queue == "sync" and job.args_summary == {"delivery_id": delivery_id}


def test_a_worker_killed_mid_delivery_is_recovered_by_the_sweeper_and_the_event_arrives(
    queue_app, admin, receiver, workers
):
    held = threading.Event()
    receiver.replies.append(Reply(hold=held))  # the first attempt hangs inside the receiver
    delivery_id, secret = _subscribe_and_emit(queue_app, admin, receiver.url())
    first = workers("sync")
    wait_until(lambda: receiver.received, timeout=30, message="the first attempt to reach the receiver")
    row = _delivery(queue_app, delivery_id)
    assert row.status == DeliveryStatus.delivering and row.attempts == 1
    running = _job(queue_app, row.job_id)
    assert running.status == JobStatus.running and str(first.process.pid) in running.lease_owner

    first.kill()
    assert not pid_alive(first.process.pid)
    held.set()  # the receiver's answer goes nowhere: the worker is gone
    # Nothing finishes a delivery whose worker died: it stays mid-attempt until the lease expires.
    wait_until(
        lambda: _job(queue_app, row.job_id).lease_expires_at < utcnow(),
        timeout=LEASE_SECONDS * 4,
        message="the lease to expire",
    )
    assert _delivery(queue_app, delivery_id).status == DeliveryStatus.delivering
    with queue_app.app_context():
        requeued = jobs_service.sweep().requeued
        periodic_tasks = {task.task_name for task in scheduled_tasks().values()}
    # The killed worker's scheduler may have queued a periodic run it never began (a worker
    # started at minute 20 queues the every-10-minutes cleanup); the sweeper re-sends that too.
    assert [job_id for job_id in requeued if _job(queue_app, job_id).task not in periodic_tasks] == [row.job_id]

    workers("sync")
    wait_until(lambda: len(receiver.received) >= 2, timeout=30, message="the delivery to arrive again")
    done = wait_until(
        lambda: (done := _delivery(queue_app, delivery_id)).status == DeliveryStatus.succeeded and done,
        timeout=30,
        message="the delivery to succeed",
    )
    # The same webhook-id both times: the receiver can tell it is the same event.
    assert [call.headers["webhook-id"] for call in receiver.received] == [delivery_id, delivery_id]
    assert Webhook(secret).verify(receiver.received[-1].body, receiver.received[-1].headers)["data"] == {"id": 42}
    assert done.attempts == 2
    # The killed attempt shows with no outcome; the second with the receiver's answer.
    assert [line.get("response_status") for line in done.attempt_log] == [None, 200]
    assert "error" not in done.attempt_log[0]
    # The job row is finished after the task returns, a moment after the delivery row.
    wait_until(lambda: _job(queue_app, done.job_id).status == JobStatus.succeeded, message="the job to finish")
