"""The checks behind the probes. Each returns a status and how long it took."""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass
from typing import Any

from flask import current_app
from sqlalchemy import text

from app.core.migrations import ensure_migrations
from app.core.redis import redis_client
from app.core.runtime import app_version, uptime_seconds
from app.extensions import db
from app.jobs.queues import app_queues
from app.logging import get_logger

log = get_logger("hearth.health")
OK, ERROR = "ok", "error"


@dataclass(frozen=True)
class Report:
    healthy: bool
    body: dict[str, Any]


def _timed(check) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        extra = check() or {}
    except Exception as exc:  # a probe reports failures, it never raises them
        log.warning("health_check_failed", check=check.__name__, error=repr(exc))
        return {"status": ERROR, "latency": round((time.perf_counter() - started) * 1000), "error": type(exc).__name__}
    return {"status": OK, "latency": round((time.perf_counter() - started) * 1000), **extra}


def _database() -> None:
    # A pooled connection of its own (returned at once): the probe reads, it is no unit of work.
    with db.engine.connect() as connection:
        connection.execute(text("SELECT 1"))


def _redis() -> None:
    redis_client().ping()


def _queue() -> dict[str, int]:
    return {"pendingJobs": app_queues().pending_count()}


def readiness() -> Report:
    """Database, Redis (when configured) and the job queues; unhealthy if any is down."""
    checks = {"database": _timed(_database)}
    if current_app.extensions["hearth.settings"].redis_url:
        checks["redis"] = _timed(_redis)
    queue = _timed(_queue)
    checks["queue"] = {"status": queue["status"], "pendingJobs": queue.get("pendingJobs", 0)}
    healthy = all(check["status"] == OK for check in checks.values())
    return Report(
        healthy,
        {
            "status": OK if healthy else ERROR,
            "checks": checks,
            "version": app_version(),
            "uptime": uptime_seconds(),
            "instance": instance(),
        },
    )


def instance() -> dict[str, Any]:
    """Which process answered (behind a load balancer: which instance, and which worker of it)."""
    return {"host": socket.gethostname(), "pid": os.getpid()}


def _migration_heads() -> tuple[set[str], set[str]]:
    # Alembic is imported here, on the first start-up probe, not when the process starts.
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    ensure_migrations(current_app)
    migrate = current_app.extensions["migrate"]
    script = ScriptDirectory.from_config(migrate.migrate.get_config(migrate.directory))
    with db.engine.connect() as connection:
        current = set(MigrationContext.configure(connection).get_current_heads())
    return current, set(script.get_heads())


AT_HEAD_KEY = "hearth.health.migrations_at_head"


def startup() -> Report:
    """Config is valid (or this process would not exist) and migrations are at head.

    Once the database has been seen at head, this process trusts it: its code, and so its
    head revision, cannot change while it runs.
    """
    checks: dict[str, Any] = {"config": {"status": OK}}
    at_head = current_app.extensions.get(AT_HEAD_KEY)
    if at_head is not None:
        checks["migrations"] = {"status": OK, "revision": at_head}
        return Report(True, {"status": OK, "checks": checks, "version": app_version(), "uptime": uptime_seconds()})
    try:
        current, heads = _migration_heads()
    except Exception as exc:  # database unreachable: not started yet
        checks["migrations"] = {"status": ERROR, "reason": f"database unreachable ({type(exc).__name__})"}
    else:
        if current == heads:
            revision = current_app.extensions[AT_HEAD_KEY] = ",".join(sorted(heads))
            checks["migrations"] = {"status": OK, "revision": revision}
        else:
            checks["migrations"] = {
                "status": ERROR,
                "current": ",".join(sorted(current)) or None,
                "head": ",".join(sorted(heads)),
                "reason": "the database is behind the code: run `flask db upgrade`",
            }
    healthy = all(check["status"] == OK for check in checks.values())
    return Report(
        healthy,
        {"status": OK if healthy else ERROR, "checks": checks, "version": app_version(), "uptime": uptime_seconds()},
    )
