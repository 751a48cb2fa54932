"""Health probes (docs/architecture.md §13)."""

from __future__ import annotations

import os
import socket
import time

import pytest
from flask_migrate import upgrade


def test_live_answers_ok(client):
    response = client.get("/health/live")
    assert response.status_code == 200
    assert response.json == {"status": "ok"}


def test_ready_reports_each_dependency_in_the_seed_shape(client, app):
    response = client.get("/health/ready")
    assert response.status_code == 200
    body = response.json
    assert set(body) == {"status", "checks", "version", "uptime", "instance"}
    assert body["status"] == "ok"
    assert body["checks"]["database"]["status"] == "ok"
    assert isinstance(body["checks"]["database"]["latency"], int)
    assert body["checks"]["queue"] == {"status": "ok", "pendingJobs": 0}
    has_redis = app.extensions["hearth.settings"].redis_url is not None
    assert ("redis" in body["checks"]) is has_redis
    if has_redis:
        assert body["checks"]["redis"]["status"] == "ok"
    assert isinstance(body["uptime"], int)
    # Which process answered: behind a load balancer, which instance (and worker) it was.
    assert body["instance"] == {"host": socket.gethostname(), "pid": os.getpid()}


def test_ready_is_503_quickly_when_redis_is_unreachable(make_app):
    # Port 1 refuses connections: the short Redis timeouts must keep the probe fast.
    app = make_app(redis_url="redis://127.0.0.1:1/0", jobs_immediate=False)
    started = time.perf_counter()
    response = app.test_client().get("/health/ready")
    elapsed = time.perf_counter() - started
    assert response.status_code == 503
    body = response.json
    assert body["status"] == "error"
    assert body["checks"]["redis"]["status"] == "error"
    assert body["checks"]["queue"]["status"] == "error"
    assert elapsed < 3


def test_ready_is_503_when_the_database_is_down(make_app, scratch_dir):
    app = make_app(database_url=f"sqlite:///{scratch_dir}/missing-dir/nowhere.db")
    response = app.test_client().get("/health/ready")
    assert response.status_code == 503
    assert response.json["checks"]["database"]["status"] == "error"


def test_startup_is_ok_when_migrations_are_at_head(client):
    response = client.get("/health/startup")
    assert response.status_code == 200
    body = response.json
    assert body["checks"]["config"]["status"] == "ok"
    assert body["checks"]["migrations"]["status"] == "ok"


def test_startup_is_503_with_the_reason_when_the_database_is_behind(make_app, new_database):
    app = make_app(database_url=new_database())
    response = app.test_client().get("/health/startup")
    assert response.status_code == 503
    migrations = response.json["checks"]["migrations"]
    assert migrations["status"] == "error"
    assert migrations["current"] is None
    assert "flask db upgrade" in migrations["reason"]
    with app.app_context():
        upgrade()
    assert app.test_client().get("/health/startup").status_code == 200


def test_probes_are_exempt_from_rate_limits(make_app):
    client = make_app(rate_limit_default="2 per minute").test_client()
    statuses = {client.get("/health/live").status_code for _ in range(10)}
    assert statuses == {200}
    assert client.get("/").status_code == 200
    assert client.get("/").status_code == 200
    assert client.get("/").status_code == 429


def test_a_restarted_postgresql_is_survived(client, app):
    """pool_pre_ping replaces pooled connections the server has dropped (as on a restart)."""
    from sqlalchemy import text

    from app.extensions import db

    with app.app_context():
        if db.engine.dialect.name != "postgresql":
            pytest.skip("PostgreSQL only (services profile)")
        database = db.engine.url.database
    assert client.get("/health/ready").status_code == 200  # a pooled connection now exists
    import psycopg

    from tests.conftest import POSTGRES_ADMIN_URL

    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        killed = admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid()",
            (database,),
        ).fetchone()[0]
    assert killed >= 1
    assert client.get("/health/ready").status_code == 200
    with app.app_context():
        assert db.session.execute(text("SELECT 1")).scalar() == 1
