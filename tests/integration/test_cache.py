"""Caching (docs/architecture.md §8): cache-aside hit and miss, the invalidator of every cached function on
the write paths that touch it, L1 invalidation across instances over Redis pub/sub,
stampede protection, and a Redis killed mid-test with requests still answered."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
import uuid

import pytest
from sqlalchemy import select

from app.cache import CacheKey, bump, cached, invalidate
from app.cache.aside import state
from app.cache.models import CacheGeneration
from app.core.unit_of_work import unit_of_work
from app.extensions import cache, db
from app.jobs.models import Job, JobStatus
from app.uploads.models import Upload
from app.users.models import User
from tests.conftest import SERVICES
from tests.support import PROJECT_ROOT, FakeClock, free_port, wait_until, worker_env

NEW_PASSWORD = "a different passphrase, 42 moons"


def _computing(counter: list, value):
    def compute():
        counter.append(1)
        return value

    return compute


# Cache-aside ----------------------------------------------------------------------------------


def test_cache_aside_computes_on_a_miss_and_serves_hits(app):
    calls: list = []
    with app.test_request_context():
        key = CacheKey("test", "answer")
        assert cached(key, _computing(calls, 42), timeout=60) == 42
        assert cached(key, _computing(calls, 0), timeout=60) == 42
        assert len(calls) == 1
        invalidate(key)  # outside a transaction: at once
        assert cached(key, _computing(calls, 43), timeout=60) == 43
        bump("test")
        assert cached(key, _computing(calls, 44), timeout=60) == 44
        assert len(calls) == 3


def test_invalidation_waits_for_the_commit_and_is_dropped_on_rollback(app):
    calls: list = []
    with app.test_request_context():
        key = CacheKey("test", "tx")
        cached(key, _computing(calls, "old"), timeout=60)
        db.session.add(User(email="tx@example.com", display_name="Tx", password_hash="x"))
        invalidate(key)
        assert cached(key, _computing(calls, "new"), timeout=60) == "old"  # not committed yet
        db.session.rollback()
        assert cached(key, _computing(calls, "new"), timeout=60) == "old"
        db.session.add(User(email="tx@example.com", display_name="Tx", password_hash="x"))
        invalidate(key)
        db.session.commit()
        assert cached(key, _computing(calls, "new"), timeout=60) == "new"


def test_a_disabled_cache_always_computes(make_app):
    calls: list = []
    app = make_app(cache_enabled=False)
    with app.test_request_context():
        for _ in range(3):
            cached(CacheKey("test", "off"), _computing(calls, 1), timeout=60)
    assert len(calls) == 3


# Each cached function and the writes that invalidate it ------------------------------------


def test_permission_sets_follow_role_grants_role_edits_and_role_deletion(app, client, people, api_auth):
    from app.rbac import management as role_management
    from app.rbac.service import permissions_of
    from app.users import management as user_management

    user_id = people["user"].id
    with app.app_context():
        admin = db.session.get(User, people["admin"].id)
        assert permissions_of(user_id) == frozenset()
        assert permissions_of(user_id) == frozenset()  # now cached
        user_management.update_user(admin, permissions_of(admin.id), db.session.get(User, user_id), roles=["manager"])
        assert "users:write" in permissions_of(user_id)  # a grant
        manager = role_management.get_role("manager")
        role_management.update_role(admin, manager, ["users:read"])
        assert permissions_of(user_id) == frozenset({"users:read"})  # a role edit reaches its members
        role_management.create_role(admin, "extra", "", ["audit:read"])
        user_management.update_user(
            admin, permissions_of(admin.id), db.session.get(User, user_id), roles=["manager", "extra"]
        )
        assert "audit:read" in permissions_of(user_id)
        user_management.update_user(admin, permissions_of(admin.id), db.session.get(User, user_id), roles=["manager"])
        role_management.delete_role(admin, role_management.get_role("extra"))
        assert permissions_of(user_id) == frozenset({"users:read"})
    # And over HTTP: the API sees the change on the next request.
    headers = api_auth.headers("user@example.com")
    assert client.get("/api/v1/users", headers=headers).status_code == 200
    with app.app_context():
        admin = db.session.get(User, people["admin"].id)
        user_management.update_user(admin, permissions_of(admin.id), db.session.get(User, user_id), roles=["user"])
    assert client.get("/api/v1/users", headers=headers).status_code == 403


def test_user_profile_follows_every_write_to_the_user(app, client, people, api_auth):
    headers = api_auth.headers("admin@example.com")
    target = people["user"].id
    first = client.get(f"/api/v1/users/{target}", headers=headers).json
    assert client.get(f"/api/v1/users/{target}", headers=headers).json == first  # cached
    client.patch(f"/api/v1/users/{target}", json={"display_name": "Renamed"}, headers=headers)
    assert client.get(f"/api/v1/users/{target}", headers=headers).json["display_name"] == "Renamed"
    api_auth.headers("user@example.com")  # signing in writes last_login_at
    assert client.get(f"/api/v1/users/{target}", headers=headers).json["last_login_at"] is not None
    own = api_auth.headers("user@example.com")
    client.patch("/api/v1/me", json={"display_name": "Self-named"}, headers=own)
    assert client.get(f"/api/v1/users/{target}", headers=headers).json["display_name"] == "Self-named"
    client.delete(f"/api/v1/users/{target}", headers=headers)
    assert client.get(f"/api/v1/users/{target}", headers=headers).json["status"] == "deleted"


def test_user_list_pages_follow_new_changed_and_deleted_users(app, client, people, make_user, api_auth):
    headers = api_auth.headers("admin@example.com")

    def emails(query=""):
        return [item["email"] for item in client.get(f"/api/v1/users?{query}", headers=headers).json["items"]]

    everyone = ["admin@example.com", "manager@example.com", "user@example.com", "viewer@example.com"]
    assert emails() == everyone
    assert emails() == everyone  # a hit
    make_user(email="new@example.com")
    assert "new@example.com" in emails()
    client.patch(f"/api/v1/users/{people['user'].id}", json={"is_active": False}, headers=headers)
    assert emails("status=disabled") == ["user@example.com"]
    assert "user@example.com" not in emails("status=active")
    with app.app_context():
        user = db.session.scalar(select(User).where(User.email == "new@example.com"))
        user.display_name = "Changed directly through the ORM"
        db.session.commit()
    items = client.get("/api/v1/users?q=new@", headers=headers).json["items"]
    assert items[0]["display_name"] == "Changed directly through the ORM"


def test_dashboard_counts_follow_user_upload_and_job_writes(app, people, make_user):
    from app.jobs.management import overview
    from app.uploads.service import totals_by_status
    from app.users.management import counts_by_status, signups_since

    with app.app_context():
        before = counts_by_status()
        assert counts_by_status() == before
        signups = signups_since(7)
        make_user(email="fresh@example.com", is_active_account=False)
        assert counts_by_status()["disabled"] == before["disabled"] + 1
        assert signups_since(7) == signups + 1

        assert totals_by_status() == ({s: 0 for s in totals_by_status()[0]}, 0)
        db.session.add(
            Upload(
                id="up-1",
                user_id=people["user"].id,
                kind="document",
                status="ready",
                filename="a.pdf",
                content_type="application/pdf",
                declared_size=10,
                size=10,
                key="k/1",
            )
        )
        db.session.commit()
        counts, stored = totals_by_status()
        assert counts["ready"] == 1 and stored == 10

        emails = {queue.name: queue for queue in overview()}["emails"]
        assert emails.counts["succeeded"] == 0
        from app.mail.service import queue_email

        with unit_of_work():  # runs inline in tests at its commit: queued, then running, then succeeded
            queue_email("x@example.com", "test_message", {"address": "x@example.com"})
        emails = {queue.name: queue for queue in overview()}["emails"]
        assert emails.counts["succeeded"] == 1


# L1 across instances --------------------------------------------------------------------------


@pytest.mark.skipif(not SERVICES, reason="the embedded profile is one process: no other instance to tell")
def test_a_role_change_on_one_instance_reaches_another_instances_l1_within_a_second(make_app, app, people):
    from app.rbac.service import permissions_of
    from app.users import management as user_management

    other = make_app()
    user_id = people["user"].id
    with other.app_context():
        assert permissions_of(user_id) == frozenset()
        wait_until(lambda: state().bus.ready.is_set(), 5, message="the other instance to subscribe")
        permissions_of(user_id)
        hits = state().l1_hits
        assert permissions_of(user_id) == frozenset() and state().l1_hits == hits + 1  # served from its L1
    with app.app_context():
        admin = db.session.get(User, people["admin"].id)
        user_management.update_user(admin, permissions_of(admin.id), db.session.get(User, user_id), roles=["manager"])
        changed_at = time.monotonic()

    def seen_by_other():
        with other.app_context():
            return "users:read" in permissions_of(user_id)

    wait_until(seen_by_other, 1.0, interval=0.01, message="the other instance to drop its L1 copy")
    assert time.monotonic() - changed_at < 1.0


# Across processes on the embedded profile (and the CLI on both) ----------------------------------


def _flask_command(base_settings, *args: str) -> subprocess.CompletedProcess:
    """Run `flask <args>` in a real process of its own, on the test app's database (and Redis)."""
    return subprocess.run(
        [str(PROJECT_ROOT / ".venv/bin/flask"), "--app", "wsgi", *args],
        cwd=PROJECT_ROOT,
        env=worker_env(base_settings),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_password_set_by_the_cli_ends_the_web_processes_tokens_at_once(app, client, people, base_settings, api_auth):
    """Finding 15 of issue 10: on the embedded profile the web process kept its cached
    sign-in state (so the old token worked) for up to 5 minutes after `flask users set-password`."""
    headers = api_auth.headers("user@example.com")
    assert client.get("/api/v1/me", headers=headers).status_code == 200
    assert client.get("/api/v1/me", headers=headers).status_code == 200  # the token check is cached now
    result = _flask_command(base_settings, "users", "set-password", "user@example.com", "--password", NEW_PASSWORD)
    assert result.returncode == 0, result.stdout + result.stderr
    assert client.get("/api/v1/me", headers=headers).status_code == 401


def test_grants_restored_by_the_cli_apply_in_the_web_process_at_once(
    app, client, people, make_user, base_settings, api_auth
):
    from app.rbac import management as role_management

    with app.app_context():
        admin = db.session.get(User, people["admin"].id)
        role_management.update_role(admin, role_management.get_role("manager"), ["users:read", "users:write"])
    headers = api_auth.headers("manager@example.com")
    assert client.get("/api/v1/admin/jobs", headers=headers).status_code == 403
    assert client.get("/api/v1/admin/jobs", headers=headers).status_code == 403  # the permission set is cached now
    result = _flask_command(base_settings, "roles", "sync", "--restore")
    assert result.returncode == 0, result.stdout + result.stderr
    assert client.get("/api/v1/admin/jobs", headers=headers).status_code == 200


@pytest.mark.skipif(SERVICES, reason="the production profile has the Redis bus instead (tested above)")
def test_embedded_processes_drop_their_caches_for_each_others_commits_but_not_their_own(make_app, app):
    """Two apps on one SQLite database, each with its own L1 and L2 (as two processes have)."""
    other = make_app(redis_prefix=f"other-process-{uuid.uuid4().hex[:8]}")
    key, unrelated = CacheKey("test", "shared"), CacheKey("test", "unrelated")
    computed: list = []

    def read(which: CacheKey, value: str) -> str:
        return cached(which, _computing(computed, value), timeout=300, local=True)

    with app.app_context():
        invalidate(CacheKey("test", "warm-up"))  # the row, which each test's clean-up deletes
    with app.app_context():
        assert read(key, "old") == "old"
    with other.app_context():
        assert state().local is not app.extensions["hearth.cache"].local  # really separate caches
        assert read(key, "old") == "old" and read(unrelated, "kept") == "kept"
        db.session.execute(select(1))  # inside a unit of work: bumped with its commit
        invalidate(key)
        db.session.commit()
    assert len(computed) == 3
    with app.app_context():
        assert read(key, "new") == "new"  # the other process's commit emptied this one's caches
    with other.app_context():
        assert read(unrelated, "unused") == "kept"  # its own commit did not empty its caches
        assert state().watch.clears == 1  # the first look only
    with app.app_context():
        invalidate(key)  # outside any transaction: bumped on its own
    with other.app_context():
        assert read(key, "newer") == "newer" and read(unrelated, "again") == "again"
    assert len(computed) == 6
    with app.app_context():
        assert read(key, "latest") == "latest"
    # A rolled-back change bumps nothing: nobody drops anything.
    with other.app_context():
        db.session.execute(select(1))
        invalidate(unrelated)
        db.session.rollback()
    with app.app_context():
        assert read(key, "unused") == "latest"
    with other.app_context():
        assert read(key, "unused") == "newer" and read(unrelated, "unused") == "again"
    assert len(computed) == 7
    with other.app_context():
        db.engine.dispose()


@pytest.mark.skipif(not SERVICES, reason="the embedded profile is the one that needs it")
def test_the_production_profile_writes_and_reads_no_generation_row(app, people):
    from app.core.database import utcnow

    with app.app_context():
        assert state().watch is None
        db.session.get(User, people["user"].id).last_login_at = utcnow()  # invalidates the user's cache
        db.session.commit()
        assert db.session.scalar(select(db.func.count()).select_from(CacheGeneration)) == 0


# Stampede protection --------------------------------------------------------------------------


def _hammer(app, key: CacheKey, compute, threads: int = 16, results: list | None = None) -> list:
    """`threads` threads reading `key` at once; their answers, appended to `results` as they come."""
    results = [] if results is None else results
    start = threading.Barrier(threads)

    def worker():
        with app.app_context():
            start.wait()
            results.append(cached(key, compute, timeout=1))

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(10)
    return results


@pytest.fixture()
def aside_clock(monkeypatch) -> FakeClock:
    """app.cache.aside's clock, moved by the test (its waits yield without moving it)."""
    from app.cache import aside

    clock = FakeClock(sleep_advances=False)
    monkeypatch.setattr(aside, "time", clock)
    return clock


def test_a_missing_hot_key_is_computed_once_while_the_others_wait(app, aside_clock):
    calls: list = []

    def slow():
        calls.append(1)
        # Computing until all 15 others are waiting for this result (polling the store).
        wait_until(lambda: len(aside_clock.sleepers) == 15, 10, 0.001, "the other 15 to wait")
        return "fresh"

    results = _hammer(app, CacheKey("test", f"cold-{uuid.uuid4().hex}"), slow)
    assert results == ["fresh"] * 16
    assert len(calls) == 1


def test_a_waiter_computes_itself_once_the_miss_wait_is_over(app, monkeypatch):
    from app.cache import aside

    clock = FakeClock()  # each poll moves it by the poll interval: the wait ends on its own
    monkeypatch.setattr(aside, "time", clock)
    key = CacheKey("test", f"stuck-{uuid.uuid4().hex}")
    release, computing = threading.Event(), threading.Event()

    def stuck():
        computing.set()
        release.wait(10)
        return "late"

    holder = threading.Thread(target=lambda: _hammer(app, key, stuck, threads=1))
    holder.start()
    assert computing.wait(5)  # the lock holder never finishes while the other waits
    started = clock.time()
    with app.app_context():
        assert cached(key, lambda: "own", timeout=60) == "own"
    assert clock.time() - started == pytest.approx(aside.MISS_WAIT, abs=aside.MISS_POLL * 1.5)
    release.set()
    holder.join(5)


def test_an_expired_hot_key_is_refreshed_once_while_the_others_get_the_stale_value(app, aside_clock):
    key = CacheKey("test", f"hot-{uuid.uuid4().hex}")
    with app.app_context():
        cached(key, lambda: "stale", timeout=1)
    aside_clock.advance(1.1)  # past its freshness, within its grace period
    calls: list = []
    results: list = []

    def slow():
        calls.append(1)
        # Refreshing until the 15 others have their answer: they never wait for this one.
        wait_until(lambda: len(results) == 15, 10, 0.001, "the other 15 to be answered")
        return "fresh"

    _hammer(app, key, slow, results=results)
    assert len(calls) == 1
    assert results.count("stale") == 15 and results.count("fresh") == 1
    with app.app_context():
        assert cached(key, slow, timeout=1) == "fresh"
    assert len(calls) == 1


# Redis outage -------------------------------------------------------------------------------


@pytest.fixture()
def private_redis():
    """A redis-server of the test's own, so it can be killed and restarted mid-test."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed")
    port = free_port()

    def start():
        process = subprocess.Popen(
            [binary, "--port", str(port), "--save", "", "--appendonly", "no", "--bind", "127.0.0.1"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        import redis

        wait_until(lambda: _pings(redis.Redis(port=port)), 10, message="redis-server to start")
        return process

    handle = {"process": start()}

    class Server:
        url = f"redis://127.0.0.1:{port}/0"

        def kill(self):
            handle["process"].kill()
            handle["process"].wait()

        def restart(self):
            handle["process"] = start()

    yield Server()
    handle["process"].kill()
    handle["process"].wait()


def _pings(client) -> bool:
    try:
        return client.ping()
    except Exception:
        return False


@pytest.fixture()
def circuit_clock(monkeypatch) -> FakeClock:
    """The clock of the Redis cache's circuit breaker (app.core.circuit), moved by the test."""
    from app.core import circuit

    clock = FakeClock()
    monkeypatch.setattr(circuit, "time", clock)
    return clock


def test_with_redis_killed_requests_are_answered_from_the_database_and_caching_resumes(
    make_app, app, people, private_redis, captured_logs, api_auth, circuit_clock
):
    from flask import render_template_string

    from app.cache import backend
    from app.extensions import cache

    outage_app = make_app(redis_url=private_redis.url)
    store = outage_app.extensions["cache"][cache]
    client = outage_app.test_client()
    headers = api_auth(client).headers("admin@example.com")
    assert client.get("/api/v1/users", headers=headers).status_code == 200  # cached in Redis now

    private_redis.kill()
    for _ in range(5):
        response = client.get("/api/v1/users", headers=headers)
        assert response.status_code == 200 and len(response.json["items"]) == 4
    assert client.get(f"/api/v1/users/{people['user'].id}", headers=headers).status_code == 200
    # One failed call opened the circuit: within its window no request asked Redis again.
    assert store.circuit.failures == 1

    calls: list = []

    @cache.memoize(60)
    def memoized(x):
        calls.append(x)
        return x * 2

    with outage_app.test_request_context():
        assert cache.get("anything") is None and cache.set("anything", 1) is False
        assert memoized(2) == 4 and memoized(2) == 4 and len(calls) == 2  # computed, never a 500
        assert render_template_string("{% cache 60, 'fragment' %}frag{% endcache %}") == "frag"
    warnings = captured_logs.events("cache_unavailable")
    assert len(warnings) == 1  # rate-limited: one line for the whole outage so far
    assert "database" in warnings[0]["detail"]

    private_redis.restart()
    with outage_app.test_request_context():
        assert cache.get("after") is None and store.circuit.failures == 1  # the window is still open
    circuit_clock.advance(backend.RETRY_AFTER + 0.1)
    with outage_app.test_request_context():
        assert cache.set("after", "back") in (True, None)
        assert cache.get("after") == "back"  # caching resumed by itself
    assert client.get("/api/v1/users", headers=headers).status_code == 200
    assert captured_logs.events("cache_recovered")


class _Untouchable:
    def __getattr__(self, name: str):
        raise AssertionError(f"Redis was called ({name}) while the circuit is open")


def test_a_hung_redis_costs_at_most_the_client_timeout(make_app, hung_redis_url, circuit_clock, monkeypatch):
    from app.extensions import cache

    hung_app = make_app(redis_url=hung_redis_url, redis_timeout_seconds=0.2)
    store = hung_app.extensions["cache"][cache]
    with hung_app.test_request_context():
        started = time.monotonic()
        assert cache.get("x") is None
        assert time.monotonic() - started < 1.0  # one client timeout (0.2 s), then the circuit opens
        monkeypatch.setattr(store, "_read_client", _Untouchable())
        for _ in range(20):  # the circuit is open: Redis is not asked again, so nothing waits
            assert cache.get("x") is None
    assert store.circuit.failures == 1


def test_job_rows_are_counted_again_after_a_retry(app, people):
    from app.jobs import management as job_management

    with app.app_context():
        db.session.add(
            Job(
                id="j-1",
                queue="emails",
                task="tasks.emails.send_email",
                payload={"to": "a@example.com", "template": "test_message", "context": {"address": "a@example.com"}},
                args_summary={},
                status=JobStatus.failed,
                attempts=4,
                max_attempts=4,
            )
        )
        db.session.commit()
        before = {queue.name: queue for queue in job_management.overview()}["emails"].counts
        assert before["failed"] == 1
        job_management.retry(db.session.get(User, people["admin"].id), db.session.get(Job, "j-1"))
        after = {queue.name: queue for queue in job_management.overview()}["emails"].counts
        assert after["failed"] == 0 and after["succeeded"] == 1


def test_a_cached_api_list_runs_no_sql_and_a_disabled_token_still_fails_at_once(app, client, people, api_auth):
    from sqlalchemy import event

    headers = api_auth.headers("admin@example.com")
    user_headers = api_auth.headers("user@example.com")
    assert client.get("/api/v1/users", headers=headers).status_code == 200
    assert client.get("/api/v1/users", headers=user_headers).status_code == 403
    with app.app_context():
        engine = db.engine
    statements: list[str] = []

    def count(conn, cursor, statement, *args):
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        assert client.get("/api/v1/users", headers=headers).status_code == 200
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert [s for s in statements if not s.strip().upper().startswith(("ROLLBACK", "BEGIN"))] == []
    # The token check is cached too, yet disabling the user ends their token on the next request.
    client.patch(f"/api/v1/users/{people['user'].id}", json={"is_active": False}, headers=headers)
    assert client.get("/api/v1/users", headers=user_headers).status_code == 401


def _sql_during(app, action) -> list[str]:
    """The SQL statements `action()` runs (transaction control left out)."""
    from sqlalchemy import event

    with app.app_context():
        engine = db.engine
    statements: list[str] = []

    def count(conn, cursor, statement, *args):
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        action()
    finally:
        event.remove(engine, "before_cursor_execute", count)
    return [s for s in statements if not s.strip().upper().startswith(("ROLLBACK", "BEGIN", "COMMIT"))]


def test_a_cached_list_page_is_the_same_response_as_the_computed_one_byte_for_byte(
    app, client, people, make_user, api_auth
):
    for n in range(4):
        make_user(email=f"page{n}@example.com")
    headers = api_auth.headers("admin@example.com")
    url = "/api/v1/users?per_page=2&page=2&sort=-email"
    computed = client.get(url, headers=headers)
    responses: list = []
    assert _sql_during(app, lambda: responses.append(client.get(url, headers=headers))) == []
    cached_response = responses[0]
    assert computed.status_code == cached_response.status_code == 200
    assert cached_response.get_data() == computed.get_data()
    for header in ("ETag", "Link", "X-Total-Count", "Content-Type"):
        assert cached_response.headers[header] == computed.headers[header], header
    assert computed.json["meta"] == {"page": 2, "per_page": 2, "total": 8, "pages": 4}
    # The stored ETag still answers If-None-Match with a 304.
    etag = cached_response.headers["ETag"]
    assert client.get(url, headers={**headers, "If-None-Match": etag}).status_code == 304


def test_a_sign_in_does_not_empty_the_cached_user_lists(app, client, people, api_auth):
    from app.cache.aside import state
    from app.users.cache import USERS_NAMESPACE

    headers = api_auth.headers("admin@example.com")
    assert client.get("/api/v1/users", headers=headers).status_code == 200  # computed and cached
    with app.app_context():
        version = cache.get(f"v:{USERS_NAMESPACE}")
        computed = state().computed
    api_auth.headers("user@example.com")  # writes the user's last_login_at
    with app.app_context():
        assert cache.get(f"v:{USERS_NAMESPACE}") == version
    assert _sql_during(app, lambda: client.get("/api/v1/users", headers=headers)) == []
    with app.app_context():
        assert state().computed == computed
    # The user's own profile is not cached across the sign-in: it shows the new last_login_at.
    profile = client.get(f"/api/v1/users/{people['user'].id}", headers=headers).json
    assert profile["last_login_at"] is not None


def test_user_lists_follow_changes_they_show_but_not_sign_in_bookkeeping(app, people):
    from app.core.database import utcnow
    from app.users.cache import USERS_NAMESPACE

    def version():
        return cache.get(f"v:{USERS_NAMESPACE}") or 0

    with app.app_context():
        user = db.session.get(User, people["user"].id)
        before = version()
        user.last_login_at = utcnow()
        user.failed_login_count = 0  # unchanged: not a change at all
        user.session_epoch += 1
        db.session.commit()
        assert version() == before
        user.display_name = "Shown in the list"
        db.session.commit()
        assert version() == before + 1
        user.roles = []
        db.session.commit()
        assert version() == before + 2
        user.last_login_at = utcnow()
        user.is_active_account = False
        db.session.commit()
        assert version() == before + 3
