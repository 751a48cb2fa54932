"""Job accounting and duplicate counting: what the cluster's database, the SMTP sink and a local
webhook receiver say happened, independently of what the load generator saw.

- Jobs: the `jobs` rows (app/jobs/models.py) created in a drill's window: how many, how many
  ended `succeeded` / `failed`, how many are not finished (lost, once the drill has waited),
  how many ran more than once (`attempts > 1`: a re-run after a crash or a failure).
- Emails: the sink's messages grouped by Message-ID, which app/mail/service.py derives from the
  job id; a Message-ID seen twice is the same email sent twice.
- Webhooks: a receiver on loopback, registered for upload, export and user events; each
  delivery carries a `webhook-id` stable across retries (docs/webhooks.md). The same id twice
  is a delivery made twice: the non-idempotent effect a crash between "sent" and "recorded"
  repeats. The same upload's `upload.ready` event delivered under two ids would be processing
  that ran twice, and is counted too.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

FINAL = ("succeeded", "failed", "revoked")


def engine_for(database_url: str) -> Engine:
    """A pool-less engine: the drills connect rarely, and must not hold connections across a
    PostgreSQL restart."""
    return create_engine(database_url, poolclass=NullPool, connect_args={"connect_timeout": 3})


@dataclass
class JobCounts:
    enqueued: int = 0
    succeeded: int = 0
    failed: int = 0
    unfinished: int = 0
    reruns: int = 0
    by_queue: dict[str, int] = field(default_factory=dict)
    unfinished_ids: list[str] = field(default_factory=list)
    ids: set[str] = field(default_factory=set)
    failures: Counter[str] = field(default_factory=Counter)  # "task: error" of the failed ones

    @property
    def completed(self) -> int:
        return self.succeeded + self.failed


def job_counts(engine: Engine, start: float, end: float) -> JobCounts:
    """The jobs created in [start, end) (epoch seconds), by outcome."""
    query = text(
        "SELECT id, queue, status, attempts, task, error FROM jobs "
        "WHERE created_at >= to_timestamp(:start) AND created_at < to_timestamp(:end)"
    )
    counts = JobCounts()
    queues: Counter[str] = Counter()
    with engine.connect() as connection:
        for job_id, queue, status, attempts, task, error in connection.execute(query, {"start": start, "end": end}):
            counts.enqueued += 1
            counts.ids.add(job_id)
            queues[queue] += 1
            if status == "succeeded":
                counts.succeeded += 1
            elif status in ("failed", "revoked"):
                counts.failed += 1
                counts.failures[f"{task.rpartition('.')[2]}: {(error or status)[:100]}"] += 1
            else:
                counts.unfinished += 1
                counts.unfinished_ids.append(job_id)
            if (attempts or 0) > 1:
                counts.reruns += 1
    counts.by_queue = dict(sorted(queues.items()))
    return counts


def wait_for_jobs(
    engine: Engine, start: float, end: float, timeout: float, poll: float = 2.0
) -> tuple[JobCounts, float]:
    """Wait until every job created in [start, end) has finished, at most `timeout` seconds.
    Answers the counts and how long it waited."""
    began = time.monotonic()
    while True:
        try:
            counts = job_counts(engine, start, end)
        except SQLAlchemyError:
            counts = None  # the database is not back yet: keep waiting
        waited = time.monotonic() - began
        if counts is not None and (counts.unfinished == 0 or waited >= timeout):
            return counts, waited
        if waited >= timeout:
            return job_counts(engine, start, end), waited
        time.sleep(poll)


def last_finished(engine: Engine, start: float, created_before: float) -> float | None:
    """When the last of the jobs created in [start, created_before) finished (epoch seconds);
    None while any of them has not, or when there are none."""
    query = text(
        "SELECT count(*) FILTER (WHERE finished_at IS NULL), extract(epoch FROM max(finished_at)), count(*) "
        "FROM jobs WHERE created_at >= to_timestamp(:start) AND created_at < to_timestamp(:end)"
    )
    with engine.connect() as connection:
        pending, latest, total = connection.execute(query, {"start": start, "end": created_before}).one()
    if pending or not total:
        return None
    return float(latest)


def running_jobs(engine: Engine) -> list[tuple[str, str, str]]:
    """(id, queue, lease_owner) of every job running now. lease_owner is
    "<host>:<pid>:<nonce>" (tasks/runtime.py `_worker_identity`)."""
    query = text("SELECT id, queue, lease_owner FROM jobs WHERE status = 'running' AND lease_owner IS NOT NULL")
    with engine.connect() as connection:
        return [(row[0], row[1], row[2]) for row in connection.execute(query)]


def upload_statuses(engine: Engine, ids: Iterable[str]) -> dict[str, tuple[str, int | None]]:
    """status and recorded size of the given uploads."""
    wanted = list(ids)
    if not wanted:
        return {}
    query = text("SELECT id, status, size FROM uploads WHERE id = ANY(:ids)")
    with engine.connect() as connection:
        return {row[0]: (row[1], row[2]) for row in connection.execute(query, {"ids": wanted})}


def job_statuses(engine: Engine, ids: Iterable[str]) -> dict[str, str]:
    """The status of each of the given jobs."""
    wanted = list(ids)
    if not wanted:
        return {}
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT id, status FROM jobs WHERE id = ANY(:ids)"), {"ids": wanted})
        return {row[0]: row[1] for row in rows}


def ready_uploads(engine: Engine, since: float, limit: int) -> list[tuple[str, int | None]]:
    """(id, recorded size) of the uploads created since `since` and recorded ready, oldest first."""
    query = text(
        "SELECT id, size FROM uploads WHERE status = 'ready' AND created_at >= to_timestamp(:since) "
        "ORDER BY created_at LIMIT :limit"
    )
    with engine.connect() as connection:
        return [(row[0], row[1]) for row in connection.execute(query, {"since": since, "limit": limit})]


def owner_pid(lease_owner: str) -> int | None:
    """The pid in a lease owner "<host>:<pid>:<nonce>"."""
    parts = lease_owner.split(":")
    if len(parts) < 3:
        return None
    try:
        return int(parts[-2])
    except ValueError:
        return None


# Emails ------------------------------------------------------------------------------------


def message_job_id(message_id: str | None) -> str | None:
    """The job id in a Message-ID "<job-id@domain>" (app/mail/service.py)."""
    if not message_id:
        return None
    return message_id.strip().strip("<>").partition("@")[0] or None


def email_duplicates(messages: Iterable[Message], job_ids: set[str] | None = None) -> dict[str, int]:
    """Message-IDs received more than once → how many times (only those of `job_ids`, if given)."""
    seen: Counter[str] = Counter()
    for message in messages:
        message_id = message.get("Message-ID")
        if message_id is None:
            continue
        if job_ids is not None and message_job_id(message_id) not in job_ids:
            continue
        seen[message_id] += 1
    return {message_id: n for message_id, n in seen.items() if n > 1}


def email_count(messages: Iterable[Message], job_ids: set[str]) -> int:
    return sum(1 for m in messages if message_job_id(m.get("Message-ID")) in job_ids)


# Webhooks ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Delivery:
    at: float
    webhook_id: str
    event: str
    subject: str | None  # the event's object (an upload or export id)


class WebhookReceiver:
    """A webhook endpoint on 127.0.0.1 that answers 204 to everything and remembers each
    delivery. Signatures are not checked: what is counted is how often each id arrives."""

    def __init__(self) -> None:
        self.deliveries: list[Delivery] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    payload: Any = json.loads(raw or b"{}")
                except ValueError:
                    payload = {}
                data = payload.get("data") or {} if isinstance(payload, dict) else {}
                subject = data.get("id") if isinstance(data, dict) else None
                receiver.deliveries.append(
                    Delivery(time.time(), self.headers.get("webhook-id") or "", str(payload.get("type", "")), subject)
                )
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, name="webhook-receiver", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def start(self) -> WebhookReceiver:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def between(self, start: float, end: float) -> list[Delivery]:
        return [d for d in self.deliveries if start <= d.at < end]


def webhook_duplicates(deliveries: Iterable[Delivery]) -> dict[str, int]:
    """webhook-ids delivered more than once, and (as "<event>:<subject>") events about the same
    object delivered under more than one id."""
    items = list(deliveries)
    by_id = Counter(d.webhook_id for d in items if d.webhook_id)
    duplicates = {f"id:{key}": n for key, n in by_id.items() if n > 1}
    first_of_id = {d.webhook_id: d for d in items}
    by_subject = Counter(
        f"{d.event}:{d.subject}" for d in first_of_id.values() if d.subject and d.event != "webhook.test"
    )
    duplicates.update({f"event:{key}": n for key, n in by_subject.items() if n > 1})
    return duplicates
