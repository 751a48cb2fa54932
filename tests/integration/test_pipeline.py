"""The global request pipeline: headers, CORS, request id, compression, body limit, rate
limits and request logging."""

from __future__ import annotations

import re
import secrets
import uuid

import brotli
import pytest

UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def _csp(response) -> dict[str, str]:
    policy = response.headers["Content-Security-Policy"]
    return {part.split(" ", 1)[0]: part.split(" ", 1)[1] for part in (p.strip() for p in policy.split(";")) if part}


# Security headers ---------------------------------------------------------------------------


def test_pages_carry_the_security_headers(client):
    response = client.get("/", headers={"X-Forwarded-Proto": "https"})
    csp = _csp(response)
    assert csp["script-src"] == "'self'"
    assert "unsafe-inline" not in response.headers["Content-Security-Policy"]
    assert "unsafe-eval" not in response.headers["Content-Security-Policy"]
    assert csp["frame-ancestors"] == "'none'"
    assert csp["object-src"] == "'none'"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "same-origin"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains; preload"


def test_api_errors_carry_the_security_headers_too(client):
    response = client.get("/api/v1/nothing-here")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]


@pytest.mark.parametrize(
    ("method", "path", "headers"),
    [
        ("GET", "/", {}),
        ("GET", "/auth/login", {}),
        ("GET", "/api/v1/status", {}),
        ("GET", "/api/v1/nothing-here", {}),  # 404 problem
        ("GET", "/static/css/hearth.css", {}),
        ("GET", "/storage/download/not-a-token", {}),  # a view with its own Talisman options
        ("POST", "/api/v1/auth/token", {"Content-Length": str(10**9)}),  # 413 before any view
    ],
)
def test_every_response_keeps_its_window_away_from_other_origins(client, method, path, headers):
    """Finding 16 of issue 10: Cross-Origin-Opener-Policy on every response."""
    response = client.open(path, method=method, headers=headers)
    assert response.headers["Cross-Origin-Opener-Policy"] == "same-origin", (path, response.status_code)


def test_development_sends_no_hsts(make_app):
    response = make_app(app_env="development").test_client().get("/", headers={"X-Forwarded-Proto": "https"})
    assert "Strict-Transport-Security" not in response.headers


# CORS ---------------------------------------------------------------------------------------


@pytest.fixture()
def cors_client(make_app):
    return make_app(cors_origins="https://app.example.com").test_client()


def test_cors_allows_configured_origins_on_the_api(cors_client):
    response = cors_client.get("/api/v1/status", headers={"Origin": "https://app.example.com"})
    assert response.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert "X-Request-ID" in response.headers["Access-Control-Expose-Headers"]


def test_cors_preflight_on_the_api(cors_client):
    response = cors_client.options(
        "/api/v1/status",
        headers={
            "Origin": "https://app.example.com",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "Authorization",
        },
    )
    assert response.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert "authorization" in response.headers["Access-Control-Allow-Headers"].lower()


def test_cors_ignores_other_origins_and_non_api_paths(cors_client):
    other = cors_client.get("/api/v1/status", headers={"Origin": "https://evil.example.net"})
    assert "Access-Control-Allow-Origin" not in other.headers
    page = cors_client.get("/", headers={"Origin": "https://app.example.com"})
    assert "Access-Control-Allow-Origin" not in page.headers


# Request id ---------------------------------------------------------------------------------


def test_a_request_id_is_minted_and_echoed(client):
    first = client.get("/api/v1/status").headers["X-Request-ID"]
    second = client.get("/api/v1/status").headers["X-Request-ID"]
    assert UUID4.match(first) and UUID4.match(second) and first != second


def test_a_sane_incoming_request_id_is_kept(client):
    incoming = "edge-7f3a9c1e.42"
    assert client.get("/", headers={"X-Request-ID": incoming}).headers["X-Request-ID"] == incoming


@pytest.mark.parametrize(
    "incoming", ["short", "has spaces in it", "x" * 300, "inject\\r\\nheader", "<script>alert(1)</script>"]
)
def test_an_insane_incoming_request_id_is_replaced(client, incoming):
    echoed = client.get("/", headers={"X-Request-ID": incoming}).headers["X-Request-ID"]
    assert echoed != incoming and UUID4.match(echoed)


def test_the_request_id_is_on_error_responses(client):
    response = client.get("/api/v1/missing", headers={"X-Request-ID": "trace-0000000001"})
    assert response.headers["X-Request-ID"] == "trace-0000000001"
    assert response.json["request_id"] == "trace-0000000001"


def test_every_log_line_of_a_request_carries_its_request_id(make_app, captured_logs):
    app = make_app()

    @app.get("/_log_twice")
    def log_twice():
        import logging

        from app.logging import get_logger

        get_logger("test").info("business_event", order=1)
        logging.getLogger("some.library").warning("stdlib line")
        return "ok"

    app.test_client().get("/_log_twice", headers={"X-Request-ID": "req-abcdef123456"})
    lines = [line for line in captured_logs.lines if line.get("request_id") == "req-abcdef123456"]
    events = {line["event"] for line in lines}
    assert {"business_event", "stdlib line", "request"} <= events


# Request logging ----------------------------------------------------------------------------


def test_one_json_line_per_request_with_the_seed_fields(client, captured_logs):
    client.get("/api/v1/status", headers={"X-Request-ID": "req-0123456789"})
    [line] = captured_logs.events("request")
    assert line["method"] == "GET"
    assert line["route"] == line["path"] == "/api/v1/status"
    assert line["status"] == 200
    assert isinstance(line["duration_ms"], float)
    assert line["request_id"] == "req-0123456789"
    assert line["remote_addr"] == "127.0.0.1"
    assert "user" in line and line["user"] is None


def test_user_ids_are_logged_hashed(make_app, make_user, captured_logs, app):
    user = make_user()
    test_app = make_app()

    @test_app.get("/_as_user")
    def as_user():
        from flask_login import login_user

        from app.users.service import load_user

        login_user(load_user(f"{user.id}:{user.session_epoch}"))
        return "ok"

    test_app.test_client().get("/_as_user")
    [line] = captured_logs.events("request")
    assert line["user"] is not None
    assert line["user"] != str(user.id) and len(line["user"]) == 16


def test_probes_and_static_files_are_not_logged(client, captured_logs):
    client.get("/health/live")
    client.get("/static/css/hearth.css")
    assert captured_logs.events("request") == []


def test_secrets_never_reach_the_logs(client, captured_logs):
    from app.logging import get_logger

    get_logger("test").info("login_attempt", password="hunter2hunter2", token="abc.def.ghi", email="a@example.com")
    [line] = captured_logs.events("login_attempt")
    assert line["password"] == "[redacted]" and line["token"] == "[redacted]"
    assert "hunter2" not in captured_logs.buffer.getvalue().decode()


def test_the_request_line_logs_the_route_and_a_path_without_its_tokens(client, captured_logs):
    """Finding 13 of issue 10: the request line logged the raw path, live tokens included."""
    token = secrets.token_urlsafe(32)
    client.get(f"/auth/reset/{token}")
    client.get(f"/auth/verify/{token}")
    client.get(f"/storage/download/{token}")
    client.get("/api/v1/users/4242")  # identifiers stay readable
    assert [(line["route"], line["path"]) for line in captured_logs.events("request")] == [
        ("/auth/reset/<token>", "/auth/reset/<redacted>"),
        ("/auth/verify/<token>", "/auth/verify/<redacted>"),
        ("/storage/download/<token>", "/storage/download/<redacted>"),
        ("/api/v1/users/<int:user_id>", "/api/v1/users/4242"),
    ]
    assert token not in captured_logs.buffer.getvalue().decode()


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("GET", "/auth/reset/{token}/more"),  # 404, no rule matched
        ("DELETE", "/auth/verify/{token}"),  # 405
        ("POST", "/storage/upload?policy={token}"),  # the signed policy rides in the query string
        ("GET", "/nowhere?next=/auth/reset/{token}"),
    ],
    ids=["unmatched-404", "405", "upload-policy", "query-string"],
)
def test_unmatched_paths_and_query_strings_leave_no_token_in_the_logs(client, captured_logs, method, url):
    token = secrets.token_urlsafe(32)
    response = client.open(url.format(token=token), method=method)
    assert response.status_code in (403, 404, 405)
    [line] = captured_logs.events("request")
    assert "<redacted>" in line["path"] or "?" in url
    assert token not in captured_logs.buffer.getvalue().decode()


def test_an_error_in_a_tokened_route_logs_no_token(make_app, captured_logs):
    app = make_app()
    token = secrets.token_urlsafe(32)

    @app.get("/_boom/<token>")
    def boom(token: str):
        raise RuntimeError(f"cannot use {token}")

    assert app.test_client().get(f"/_boom/{token}").status_code == 500
    [error] = captured_logs.events("unhandled_exception")
    assert error["route"] == "/_boom/<token>" and error["path"] == "/_boom/<redacted>"
    assert "RuntimeError: cannot use <redacted>" in error["exception"]
    # Flask's own "Exception on <path> [GET]" line, tracebacks and the request line included.
    assert any(line["event"] == "Exception on /_boom/<redacted> [GET]" for line in captured_logs.lines)
    assert token not in captured_logs.buffer.getvalue().decode()


# Compression --------------------------------------------------------------------------------


def test_large_bodies_are_compressed_with_brotli_or_gzip(client):
    br = client.get("/", headers={"Accept-Encoding": "br"})
    assert br.headers["Content-Encoding"] == "br"
    assert b"<h1>Hearth</h1>" in brotli.decompress(br.data)
    gz = client.get("/", headers={"Accept-Encoding": "gzip"})
    assert gz.headers["Content-Encoding"] == "gzip"


def test_small_bodies_are_not_compressed(client):
    response = client.get("/api/v1/status", headers={"Accept-Encoding": "gzip, br"})
    assert "Content-Encoding" not in response.headers


# Body limit ---------------------------------------------------------------------------------


def test_oversize_bodies_are_refused_with_413_on_the_api(make_app):
    client = make_app(max_content_length=2048).test_client()
    response = client.post("/api/v1/status", data=b"x" * 5000, content_type="application/json")
    assert response.status_code == 413
    assert response.mimetype == "application/problem+json"
    assert response.json["status"] == 413


def test_oversize_bodies_are_refused_with_a_page_in_the_browser(make_app):
    client = make_app(max_content_length=2048).test_client()
    response = client.post("/", data={"field": "x" * 5000})
    assert response.status_code == 413
    assert response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    assert "Error 413" in page and "That’s too large" in page


# Rate limiting ------------------------------------------------------------------------------


def test_rate_limit_answers_429_with_retry_after_and_ratelimit_headers(make_app):
    client = make_app(rate_limit_default="3 per minute", redis_prefix=f"rl-{uuid.uuid4().hex[:8]}").test_client()
    ok = [client.get("/api/v1/status") for _ in range(3)]
    assert [r.status_code for r in ok] == [200, 200, 200]
    # Successful responses carry no rate-limit headers: they would cost Redis round trips.
    assert "RateLimit-Limit" not in ok[0].headers and "Retry-After" not in ok[0].headers
    limited = client.get("/api/v1/status")
    assert limited.status_code == 429
    assert limited.mimetype == "application/problem+json"
    assert 0 < int(limited.headers["Retry-After"]) <= 60
    assert limited.headers["RateLimit-Limit"] == "3"
    assert limited.headers["RateLimit-Remaining"] == "0"
    assert 0 < int(limited.headers["RateLimit-Reset"]) <= 60
    page = client.get("/")
    assert page.status_code == 429 and page.mimetype == "text/html"


def test_rate_limits_are_kept_in_redis_on_the_services_profile(make_app):
    prefix = f"rl-{uuid.uuid4().hex[:8]}"
    app = make_app(rate_limit_default="5 per minute", redis_prefix=prefix)
    if not app.extensions["hearth.settings"].redis_url:
        pytest.skip("embedded profile keeps limits in memory")
    from redis import Redis

    app.test_client().get("/api/v1/status")
    client = Redis.from_url(app.extensions["hearth.settings"].redis_url)
    keys = list(client.scan_iter(match=f"*{prefix}:rl*"))
    assert keys, "the limiter should have written its counter to Redis"
    for key in keys:
        client.delete(key)


def _forget_redis_keys(app, prefix: str) -> None:
    settings = app.extensions["hearth.settings"]
    if settings.redis_url:
        from redis import Redis

        client = Redis.from_url(settings.redis_url)
        for key in client.scan_iter(match=f"*{prefix}*"):
            client.delete(key)


def test_behind_trusted_proxies_each_real_client_has_its_own_budget_and_cannot_spoof_another(make_app):
    """Finding 16 of issue 10: with TRUSTED_PROXIES set, per-IP limits apply per real client.
    The test client's own address (127.0.0.1) plays nginx, which appends the peer's address."""
    prefix = f"rl-{uuid.uuid4().hex[:8]}"
    app = make_app(trusted_proxies=1, rate_limit_default="3 per minute", redis_prefix=prefix)
    client = app.test_client()

    def status(forwarded_for: str) -> int:
        return client.get("/api/v1/status", headers={"X-Forwarded-For": forwarded_for}).status_code

    try:
        assert [status("203.0.113.1") for _ in range(3)] == [200, 200, 200]
        assert status("203.0.113.1") == 429
        assert status("203.0.113.2") == 200  # another client behind the same proxy
        # The limited client sends its own X-Forwarded-For; nginx appends the real address.
        assert status("198.51.100.7, 203.0.113.1") == 429
        assert status("203.0.113.2, 203.0.113.1") == 429
        assert [status("203.0.113.2") for _ in range(2)] == [200, 200]
        assert status("203.0.113.2") == 429
    finally:
        _forget_redis_keys(app, prefix)


def test_behind_trusted_proxies_route_limits_are_per_real_client_too(make_app):
    prefix = f"rl-{uuid.uuid4().hex[:8]}"
    app = make_app(trusted_proxies=1, redis_prefix=prefix)
    client = app.test_client()

    def token_request(forwarded_for: str) -> int:  # "10 per minute" on /api/v1/auth/token
        return client.post("/api/v1/auth/token", json={}, headers={"X-Forwarded-For": forwarded_for}).status_code

    try:
        assert {token_request("203.0.113.1") for _ in range(10)} == {422}
        assert token_request("203.0.113.1") == 429
        assert token_request("10.9.8.7, 203.0.113.1") == 429
        assert token_request("203.0.113.2") == 422
    finally:
        _forget_redis_keys(app, prefix)


@pytest.fixture()
def production_app(make_app, app):
    """An app configured as production behind one proxy, on services that do not exist
    (the requests below touch neither the database nor the cache)."""

    def make(**overrides):
        return make_app(
            app_env="production",
            database_url="postgresql://hearth@127.0.0.1:1/hearth",
            redis_url="redis://127.0.0.1:1/0",
            smtp_url="smtp://127.0.0.1:1",
            public_url="https://hearth.example.com",
            **overrides,
        )

    return make


def test_production_warns_once_when_requests_bypass_the_trusted_proxies(production_app, captured_logs):
    app = production_app(trusted_proxies=1)
    client = app.test_client()
    base = "https://hearth.example.com"
    client.get(f"{base}/nowhere", headers={"X-Forwarded-For": "203.0.113.1"})
    client.get(f"{base}/health/live")  # probes come straight from the orchestrator
    assert captured_logs.events("trusted_proxies_mismatch") == []
    client.get(f"{base}/nowhere")
    client.get(f"{base}/nowhere")
    [warning] = captured_logs.events("trusted_proxies_mismatch")
    assert warning["level"] == "warning" and warning["trusted_proxies"] == 1 and warning["forwarded_for_entries"] == 0
    assert "TRUSTED_PROXIES" in warning["detail"]
    # Once per process, kept on the app: another app (process) warns on its own.
    other = production_app(trusted_proxies=2).test_client()
    other.get(f"{base}/nowhere", headers={"X-Forwarded-For": "203.0.113.1"})  # one entry, two proxies
    assert [line["forwarded_for_entries"] for line in captured_logs.events("trusted_proxies_mismatch")] == [0, 1]


def test_no_proxy_warning_without_trusted_proxies_or_outside_production(production_app, make_app, captured_logs):
    production_app().test_client().get("https://hearth.example.com/nowhere")
    make_app(trusted_proxies=1).test_client().get("/nowhere")
    assert captured_logs.events("trusted_proxies_mismatch") == []


# CSRF ---------------------------------------------------------------------------------------


def test_browser_posts_need_the_csrf_token_but_api_posts_do_not(make_app):
    app = make_app()

    @app.post("/_form")
    def form():
        return "saved"

    client = app.test_client()
    refused = client.post("/_form", data={"name": "x"})
    assert refused.status_code == 400 and refused.mimetype == "text/html"
    # The login page: the landing page is publicly cached and carries no per-visitor token.
    page = client.get("/auth/login").get_data(as_text=True)
    token = re.search(r'<meta name="csrf-token" content="([^"]+)"', page).group(1)
    assert client.post("/_form", data={"name": "x", "csrf_token": token}).status_code == 200
    assert client.post("/_form", headers={"X-CSRFToken": token}).status_code == 200
    # htmx sends the token from hx-headers on <body>:
    assert f'"X-CSRFToken": "{token}"' in page


# A hung Redis -------------------------------------------------------------------------------


def test_a_hung_redis_slows_requests_only_by_the_short_timeout(make_app, hung_redis_url):
    import gc
    import time

    client = make_app(redis_url=hung_redis_url, jobs_immediate=False).test_client()
    timings = []
    # What is timed is waiting on Redis. A full collection of the suite's heap (hundreds of
    # apps by the end of a run) took 0.5 s inside one of these requests in CI: not measured.
    gc.collect()
    gc.disable()
    try:
        for path in ["/api/v1/status", "/api/v1/status", "/", "/health/ready"]:
            started = time.perf_counter()
            response = client.get(path)
            timings.append(time.perf_counter() - started)
            assert response.status_code == (503 if path == "/health/ready" else 200)
    finally:
        gc.enable()
    assert max(timings) < 1.5, timings  # 0.25 s socket timeouts, never the OS default
    assert sum(timings[1:3]) < 0.5, timings  # the limiter falls back to memory after one timeout


def test_route_limits_come_on_top_of_the_app_wide_budget(make_app):
    from flask import Blueprint

    from app.core.ratelimit import rate_limited

    bp = Blueprint("limited", __name__)

    @bp.post("/api/test/login")
    @rate_limited("2 per minute")
    def login():
        return {"ok": True}

    app = make_app(rate_limit_default="100 per minute", redis_prefix=f"rl-{uuid.uuid4().hex[:8]}")
    app.register_blueprint(bp)
    from app.core.ratelimit import install_route_limits
    from app.extensions import app_limiter

    install_route_limits(app, app_limiter(app))
    install_route_limits(app, app_limiter(app))  # idempotent: the limit is not counted twice
    client = app.test_client()
    assert [client.post("/api/test/login").status_code for _ in range(3)] == [200, 200, 429]
    limited = client.post("/api/test/login")
    assert limited.mimetype == "application/problem+json"
    assert limited.headers["RateLimit-Limit"] == "2" and int(limited.headers["Retry-After"]) > 0
    assert client.get("/api/v1/status").status_code == 200  # other routes keep their budget


# What the pipeline costs (issue 11) ---------------------------------------------------------


def _redis_budget(make_app, limits: str, sync_ms: int, prefix: str):
    app = make_app(rate_limit_default=limits, redis_prefix=prefix, rate_limit_sync_ms=sync_ms)
    budget = app.extensions["hearth.rate_limit"]
    if budget.redis is None:
        pytest.skip("embedded profile counts in memory")
    return app, budget


def _count_round_trips(budget) -> list[bytes]:
    sent: list[bytes] = []
    round_trip = budget.redis._round_trip

    def counting(connection, command):
        sent.append(command)
        return round_trip(connection, command)

    budget.redis._round_trip = counting
    return sent


def _redis_count(app, prefix: str, window: str) -> int:
    from redis import Redis

    client = Redis.from_url(app.extensions["hearth.settings"].redis_url)
    [key] = [key for key in client.scan_iter(match=f"{prefix}:rl:app:{window}:*")]
    return int(client.get(key))


def test_the_app_wide_budget_counts_every_window_in_one_round_trip_per_sync_interval(make_app):
    """One script call carries every window; between syncs a request costs no round trip,
    and within one process the count stays exact (the third request of "2 per day" is refused)."""
    prefix = f"rl-{uuid.uuid4().hex[:8]}"
    app, budget = _redis_budget(make_app, "1000 per minute; 5000 per hour; 2 per day", 5_000, prefix)
    sent = _count_round_trips(budget)
    client = app.test_client()
    try:
        assert [client.get("/api/v1/status").status_code for _ in range(4)] == [200, 200, 429, 429]
        assert len(sent) == 1  # the first request synced; the interval (5 s) has not passed
        assert sent[0].split(b"\r\n")[2] == b"EVALSHA" and sent[0].count(prefix.encode()) == 3
        assert _redis_count(app, prefix, "2/1/day") == 1
        budget._next_sync = 0.0  # the interval is over: the next request sends what was counted
        refused = client.get("/api/v1/status")
        assert refused.status_code == 429 and len(sent) == 2
        assert _redis_count(app, prefix, "2/1/day") == 5
        assert _redis_count(app, prefix, "1000/1/minute") == 5
        assert 0 < int(refused.headers["Retry-After"]) <= 86_400
    finally:
        del budget.redis._round_trip
        _forget_redis_keys(app, prefix)


def test_with_no_sync_interval_processes_share_one_exact_count(make_app):
    prefix = f"rl-{uuid.uuid4().hex[:8]}"
    first, _ = _redis_budget(make_app, "3 per minute", 0, prefix)
    second, _ = _redis_budget(make_app, "3 per minute", 0, prefix)
    try:
        statuses = [app.test_client().get("/api/v1/status").status_code for app in (first, second, first, second)]
        assert statuses == [200, 200, 200, 429]
    finally:
        _forget_redis_keys(first, prefix)


def test_another_processes_requests_count_from_its_next_sync(make_app):
    """Two processes (apps) sharing Redis: each learns the other's count when it next syncs,
    and a client over its budget is then refused by both, without a round trip."""
    prefix = f"rl-{uuid.uuid4().hex[:8]}"
    first, first_budget = _redis_budget(make_app, "4 per minute", 5_000, prefix)
    second, second_budget = _redis_budget(make_app, "4 per minute", 5_000, prefix)
    try:
        assert [first.test_client().get("/api/v1/status").status_code for _ in range(3)] == [200] * 3
        first_budget._next_sync = 0.0
        first.test_client().get("/api/v1/status")  # first sends its 3 (4 in all): its budget is spent
        assert second.test_client().get("/api/v1/status").status_code == 429  # second's first sync: count 5
        sent = _count_round_trips(second_budget)
        assert [second.test_client().get("/api/v1/status").status_code for _ in range(3)] == [429] * 3
        assert sent == []  # refused from what it knows
    finally:
        del second_budget.redis._round_trip
        _forget_redis_keys(first, prefix)


def test_the_budget_falls_back_to_memory_when_redis_fails_and_tries_again_later(make_app, captured_logs):
    prefix = f"rl-{uuid.uuid4().hex[:8]}"
    app, budget = _redis_budget(make_app, "2 per minute", 0, prefix)
    client = app.test_client()

    def broken(hits):
        raise ConnectionError("redis went away")

    healthy = budget.redis.add
    budget.redis.add = broken
    try:
        assert [client.get("/api/v1/status").status_code for _ in range(3)] == [200, 200, 429]
    finally:
        budget.redis.add = healthy
    assert len(captured_logs.events("rate_limit_storage_unavailable")) == 1  # then memory, quietly
    budget.redis_down_until = 0.0  # the retry time has come
    assert client.get("/api/v1/status").status_code == 200  # counted in Redis again
    assert _redis_count(app, prefix, "2/1/minute") == 1
    _forget_redis_keys(app, prefix)


def test_bodies_below_the_threshold_are_never_compressed_but_say_they_vary(client):
    response = client.get("/api/v1/status", headers={"Accept-Encoding": "br, gzip"})
    assert "Content-Encoding" not in response.headers
    assert "Accept-Encoding" in response.headers["Vary"]


def test_a_refused_coding_is_not_used(client):
    response = client.get("/", headers={"Accept-Encoding": "br;q=0, gzip"})
    assert response.headers["Content-Encoding"] == "gzip"
    response = client.get("/", headers={"Accept-Encoding": "br;q=0, gzip;q=0"})
    assert "Content-Encoding" not in response.headers


def test_static_files_are_compressed_too(client):
    response = client.get("/static/vendor/htmx-2.0.11.min.js", headers={"Accept-Encoding": "gzip"})
    assert response.status_code == 200
    assert response.headers["Content-Encoding"] == "gzip"
    import gzip

    assert b"htmx" in gzip.decompress(response.data)


def test_cors_answers_vary_by_origin(cors_client):
    response = cors_client.get("/api/v1/status", headers={"Origin": "https://app.example.com"})
    assert "Origin" in response.headers["Vary"]


def test_a_view_can_carry_its_own_content_security_policy(client):
    response = client.get("/storage/download/not-a-token")
    assert response.headers["Content-Security-Policy"] == "sandbox; default-src 'none'"
    assert response.headers.getlist("Content-Security-Policy") == ["sandbox; default-src 'none'"]


def test_the_budget_reloads_its_script_after_redis_forgets_it(make_app):
    """SCRIPT FLUSH (or a restarted Redis): NOSCRIPT, then EVAL, and the count goes on."""
    prefix = f"rl-{uuid.uuid4().hex[:8]}"
    app, budget = _redis_budget(make_app, "2 per minute", 0, prefix)
    client = app.test_client()
    try:
        assert client.get("/api/v1/status").status_code == 200
        budget.redis._connection().send_command("SCRIPT", "FLUSH")
        assert budget.redis._connection().read_response() in (b"OK", "OK")
        assert [client.get("/api/v1/status").status_code for _ in range(2)] == [200, 429]
        assert budget.redis_down_until == 0.0  # never fell back to memory
    finally:
        _forget_redis_keys(app, prefix)


def test_a_dropped_redis_connection_is_reopened_on_the_next_request(make_app):
    prefix = f"rl-{uuid.uuid4().hex[:8]}"
    app, budget = _redis_budget(make_app, "3 per minute", 0, prefix)
    client = app.test_client()
    try:
        assert client.get("/api/v1/status").status_code == 200
        budget.redis._connection()._sock.close()  # what a Redis restart does to the socket
        assert client.get("/api/v1/status").status_code == 200  # served from memory meanwhile
        budget.redis_down_until = 0.0
        assert client.get("/api/v1/status").status_code == 200  # a fresh connection
        assert budget.redis._connection()._sock is not None
    finally:
        _forget_redis_keys(app, prefix)


# Browser-only hooks -------------------------------------------------------------------------


def test_browser_hooks_run_around_browser_views_and_never_for_the_api(make_app):
    from app.pipeline import add_browser_hooks

    app = make_app()
    calls: list[str] = []

    def before() -> None:
        calls.append("before")

    def first_after(response):
        calls.append("first after")
        return response

    def second_after(response):
        calls.append("second after")
        response.headers["X-Seen-By-Browser-Hook"] = "yes"
        return response

    add_browser_hooks(app, before=before, after=first_after)
    add_browser_hooks(app, after=second_after)
    client = app.test_client()
    api = client.get("/api/v1/status")
    assert calls == [] and "X-Seen-By-Browser-Hook" not in api.headers
    page = client.get("/health/live")
    # Registration order before the view, reverse order after it (as Flask runs its own hooks).
    assert calls == ["before", "second after", "first after"]
    assert page.headers["X-Seen-By-Browser-Hook"] == "yes"


def test_the_session_hooks_are_not_flask_hooks_any_more(app):
    """The API pays for no session, remember-me or Flask-Login hook (issue 11): the only
    app-wide request hooks left are the pipeline's."""
    pipeline = app.extensions["hearth.pipeline"]
    assert app.before_request_funcs[None][0] == pipeline.before
    assert app.after_request_funcs[None] == [pipeline.after]
    assert not app.teardown_request_funcs.get(None)


def test_a_response_that_never_read_the_session_does_not_vary_on_cookies(client):
    client.get("/auth/login")  # a form: the visitor now holds a session cookie (its CSRF token)
    assert client.get_cookie("session") is not None
    response = client.get("/health/live")
    assert "Cookie" not in response.headers.get("Vary", "")
    page = client.get("/auth/login")  # reads the session (the CSRF token, the signed-in user)
    assert "Cookie" in page.headers["Vary"]
