"""The drills' pure parts: figures, the report, the load generator's client and accounting."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from drills.accounting import Delivery, email_duplicates, message_job_id, owner_pid, webhook_duplicates
from drills.load import (
    HttpClient,
    LoadGenerator,
    Mix,
    NotLoopback,
    Recorder,
    csrf_token,
    ensure_loopback,
    multipart_body,
    pool_address,
    user_address,
)
from drills.report import BEGIN, END, Check, DrillResult, Machine, Run, render, replace_block
from drills.stats import (
    Phase,
    Sample,
    by_kind,
    by_phase,
    format_counts,
    format_ms,
    percentile,
    recovery_after,
    summarize,
)


def sample(at: float, status: int = 200, latency: float = 0.1, kind: str = "page", retry_after: bool = False) -> Sample:
    return Sample(at, kind, status, latency, retry_after=retry_after)


# Figures -----------------------------------------------------------------------------------


def test_percentile_is_nearest_rank() -> None:
    values = [float(n) for n in range(100, 0, -1)]
    assert percentile(values, 0.50) == 50.0
    assert percentile(values, 0.95) == 95.0
    assert percentile(values, 0.99) == 99.0
    assert percentile([3.0, 1.0, 2.0, 4.0], 0.5) == 2.0
    assert percentile([7.0], 0.99) == 7.0
    assert percentile([], 0.5) is None


def test_summary_counts_5xx_and_connection_errors_as_errors_but_not_4xx() -> None:
    samples = [sample(0, 200), sample(1, 503), sample(2, 0), sample(3, 429), sample(4, 404), sample(5, 500)]
    summary = summarize(samples)
    assert summary.requests == 6
    assert summary.errors == 3
    assert summary.rate_limited == 1
    assert summary.errors_by_status() == {"conn": 1, "500": 1, "503": 1}
    assert summary.other_by_status() == {"404": 1, "429": 1}


def test_phases_split_samples_by_time_and_leave_out_the_rest() -> None:
    samples = [sample(0.5, latency=0.1), sample(1.5, 503, latency=2.0), sample(2.5, latency=0.3), sample(9.0)]
    phases = [Phase("before", 0, 1), Phase("during", 1, 2), Phase("after", 2, 3)]
    summaries = by_phase(samples, phases)
    assert [s.requests for s in summaries.values()] == [1, 1, 1]
    assert summaries["during"].errors == 1
    assert summaries["during"].p95 == 2.0


def test_by_kind_groups_samples() -> None:
    kinds = by_kind([sample(0, kind="api_read"), sample(1, kind="page"), sample(2, kind="api_read", status=500)])
    assert list(kinds) == ["api_read", "page"]
    assert kinds["api_read"].errors == 1


def test_recovery_counts_from_the_fault_end_to_the_last_error_after_it() -> None:
    samples = [sample(5.0, 503), sample(10.5, 503, latency=0.5), sample(12.0, 0, latency=1.0), sample(13.0)]
    assert recovery_after(samples, 10.0) == pytest.approx(3.0)
    assert recovery_after([sample(5.0, 503), sample(11.0)], 10.0) == 0.0
    assert recovery_after(samples, 10.0, kinds=frozenset({"api_read"})) == 0.0


def test_formatting() -> None:
    assert format_ms(1.2964) == "1,296 ms"
    assert format_ms(None) == "–"
    assert format_counts({"conn": 3, "503": 12}) == "3 × conn, 12 × 503"
    assert format_counts({}) == "0"


# Report ------------------------------------------------------------------------------------


def run_of(*results: DrillResult) -> Run:
    return Run(
        "short",
        datetime(2026, 1, 2, 3, 4, tzinfo=UTC),
        Machine(2, 23.5, "Debian GNU/Linux 12"),
        "nginx → 2",
        8,
        list(results),
    )


def test_report_renders_a_row_per_drill_with_its_figures_and_verdict() -> None:
    good = DrillResult("baseline", "steady 30 s", summarize([sample(0, latency=0.05), sample(1, latency=0.15)]))
    good.jobs_enqueued = good.jobs_succeeded = 12
    good.checks = [Check("no errors", True)]
    bad = DrillResult(
        "postgres", "PostgreSQL stopped 10 s", summarize([sample(0), sample(1, 500), sample(2, 503), sample(3, 429)])
    )
    bad.phases = {"before": summarize([sample(0)]), "down": summarize([sample(1, 500, latency=0.2)])}
    bad.jobs_enqueued, bad.jobs_succeeded, bad.jobs_unfinished, bad.reruns = 9, 8, 1, 2
    bad.duplicates = {"emails": 1, "webhook deliveries": 0}
    bad.recovery_s, bad.jobs_recovery_s = 2.5, 40.0
    bad.checks = [Check("no 500 at all", False, "1 × 500"), Check("ready 503", True)]
    text = render(run_of(good, bad))
    assert "**short** mode" in text and "2 cores, 23.5 GB RAM, Debian GNU/Linux 12" in text
    assert "EXPECTATIONS BROKEN" in text
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    assert rows[0].startswith("| drill | requests | errors by status | p50 / p95 / p99 |")
    assert rows[1].startswith("| steady 30 s | 2 | 0 | 50 ms / 150 ms / 150 ms |") and rows[1].endswith("| pass |")
    assert "| 1 × 500, 1 × 503; 1 × 429 |" in rows[2]
    assert "(down p95 200 ms)" in rows[2]
    assert "| 9 → 8 (**1 unfinished**) | 2 | 1 emails | requests 2.5 s, jobs 40.0 s | **FAIL** (1 of 2) |" in rows[2]
    assert "- **FAIL**: no 500 at all — 1 × 500" in text


def test_report_says_all_met_when_every_check_passed() -> None:
    result = DrillResult("baseline", "steady", summarize([sample(0)]))
    result.checks = [Check("fine", True)]
    assert "all expectations met" in render(run_of(result))


def test_replace_block_rewrites_only_between_the_markers() -> None:
    document = f"# Reliability\n\nProse before.\n\n{BEGIN}\nold table\n{END}\n\nProse after.\n"
    updated = replace_block(document, "new table\n")
    assert updated == f"# Reliability\n\nProse before.\n\n{BEGIN}\nnew table\n{END}\n\nProse after.\n"
    assert replace_block(updated, "new table") == updated


def test_replace_block_appends_a_marked_block_when_there_is_none() -> None:
    assert replace_block("", "t") == f"{BEGIN}\nt\n{END}\n"
    assert replace_block("# R\n", "t") == f"# R\n\n{BEGIN}\nt\n{END}\n"


# Load generator ----------------------------------------------------------------------------


def test_only_loopback_targets_are_allowed() -> None:
    assert ensure_loopback("127.0.0.1") == "127.0.0.1"
    assert ensure_loopback("localhost").startswith("127.")
    with pytest.raises(NotLoopback):
        ensure_loopback("10.1.2.3")
    with pytest.raises(NotLoopback):
        LoadGenerator("http://10.1.2.3:8080", [])  # refused before anything is built
    with pytest.raises(NotLoopback):
        HttpClient("https://127.0.0.1:8443", "127.0.0.2", Recorder(), 0)


def test_each_user_and_each_pooled_request_has_its_own_loopback_address() -> None:
    users = {user_address(i) for i in range(50)}
    pool = {pool_address(i, n) for i in range(20) for n in range(300)}
    assert len(users) == 50 and "127.0.0.1" not in users
    assert len(pool) == 20 * 300 and not users & pool
    assert all(address.startswith("127.") and all(0 <= int(p) <= 255 for p in address.split(".")) for address in pool)


def test_mix_paces_writes_per_user_and_keeps_sign_ins_under_the_route_limit() -> None:
    intervals = Mix(sign_in_per_s=100, upload_per_s=0.5).intervals(20)
    assert intervals["sign_in"] == 12.0  # never above 10 a minute per address
    assert intervals["upload"] == 40.0  # 20 users / 0.5 per s


def test_csrf_token_is_read_from_the_form() -> None:
    assert csrf_token(b'<input id="csrf_token" name="csrf_token" type="hidden" value="abc.def">') == "abc.def"
    assert csrf_token(b'<input value="xyz" name="csrf_token">') == "xyz"
    assert csrf_token(b"<form></form>") is None


def test_multipart_body_puts_the_file_last() -> None:
    body, headers = multipart_body({"key": "k", "policy": "p"}, "file", "a.txt", "text/plain", b"hello")
    boundary = headers["Content-Type"].split("boundary=")[1]
    parts = body.split(f"--{boundary}".encode())
    assert b'name="key"' in parts[1] and b'name="policy"' in parts[2]
    assert b'name="file"; filename="a.txt"' in parts[3] and b"hello" in parts[3]
    assert parts[-1] == b"--\r\n"


def test_client_sends_from_its_source_address_keeps_cookies_and_records_samples() -> None:
    seen: list[tuple[str, str | None]] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            seen.append((self.client_address[0], self.headers.get("Cookie")))
            status = 503 if self.path == "/busy" else 200
            body = b'{"type": "https://hearth.dev/problems/database-unavailable"}' if status == 503 else b"ok"
            self.send_response(status)
            self.send_header("Content-Type", "application/problem+json" if status == 503 else "text/plain")
            if status == 503:
                self.send_header("Retry-After", "1")
            self.send_header("Set-Cookie", "session=abc; Path=/; HttpOnly")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        recorder = Recorder()
        client = HttpClient(f"http://localhost:{server.server_address[1]}", "127.0.0.7", recorder, 3)
        assert client.request("page", "GET", "/").status == 200
        assert client.request("api_read", "GET", "/busy").status == 503
        client.close()
    finally:
        server.shutdown()
        server.server_close()
    assert seen == [("127.0.0.7", None), ("127.0.0.7", "session=abc")]
    first, second = recorder.samples
    assert (first.kind, first.status, first.user, first.retry_after) == ("page", 200, 3, False)
    assert (second.status, second.retry_after, second.detail) == (503, True, "database-unavailable")


def test_a_refused_connection_is_a_sample_with_status_zero() -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound, never listening: connections are refused
        recorder = Recorder()
        answer = HttpClient(f"http://127.0.0.1:{port}", "127.0.0.9", recorder, 0).request("page", "GET", "/")
    assert answer.status == 0
    assert recorder.samples[0].status == 0 and recorder.samples[0].is_error
    assert recorder.samples[0].detail == "ConnectionRefusedError"


# Accounting --------------------------------------------------------------------------------


def message(message_id: str) -> EmailMessage:
    mail = EmailMessage()
    mail["Message-ID"] = message_id
    return mail


def test_email_duplicates_group_by_message_id_of_the_window_jobs() -> None:
    messages = [
        message("<job-1@localhost>"),
        message("<job-2@localhost>"),
        message("<job-1@localhost>"),
        message("<job-9@localhost>"),
        message("<job-9@localhost>"),
    ]
    assert email_duplicates(messages) == {"<job-1@localhost>": 2, "<job-9@localhost>": 2}
    assert email_duplicates(messages, {"job-1", "job-2"}) == {"<job-1@localhost>": 2}
    assert message_job_id("<3f2a@hearth.example>") == "3f2a"
    assert message_job_id(None) is None


def test_webhook_duplicates_count_repeated_ids_and_repeated_events() -> None:
    deliveries = [
        Delivery(1, "msg_a", "upload.ready", "u1"),
        Delivery(2, "msg_a", "upload.ready", "u1"),  # the same delivery sent twice
        Delivery(3, "msg_b", "upload.ready", "u2"),
        Delivery(4, "msg_c", "upload.ready", "u2"),  # the same upload announced twice
        Delivery(5, "msg_d", "export.ready", "e1"),
    ]
    assert webhook_duplicates(deliveries) == {"id:msg_a": 2, "event:upload.ready:u2": 2}


def test_owner_pid_reads_the_lease_owner() -> None:
    assert owner_pid("host-1:4242:ab12cd34") == 4242
    assert owner_pid("weird") is None
    assert owner_pid("h:x:y") is None
