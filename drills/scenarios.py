"""The drills: each injects one fault into the cluster while the load runs, then checks the
issue's expectations against what the load generator, the database, the SMTP sink and the
webhook receiver recorded.

Every drill has the same shape: a stretch of load before the fault, the fault (one or more
phases), a stretch after it; then it waits for every job created in its window to finish (at
most `Timings.job_wait`), and measures. Recovery is counted from the end of the fault: for
requests, until the last failing request sent after it; for jobs, until the last job created
up to the end of the fault finished.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from cluster.harness import Cluster
from drills import accounting
from drills.load import Account, HttpClient, LoadGenerator, Recorder, VirtualUser, json_body
from drills.report import Check, DrillResult
from drills.stats import (
    PAGE_KINDS,
    READ_KINDS,
    SIGN_IN_KINDS,
    Phase,
    Sample,
    by_kind,
    by_phase,
    format_counts,
    format_ms,
    hearth_samples,
    in_window,
    percentile,
    recovery_after,
    summarize,
)

LATENCY_LIMIT = 1.0  # seconds: p95 under a Redis fault
JOBS_AFTER_RECOVERY = 120.0  # seconds: every job done within 2 minutes of the fault's end
POSTGRES_RECOVERY = 10.0  # seconds: full service after PostgreSQL is back
SIGN_IN_SUCCESS = 0.9  # share of sign-ins that must succeed while Redis is down or frozen
UPLOAD_KINDS = frozenset({"upload_presign", "upload_confirm", "upload_form"})

# cluster/nginx.conf: an instance that refused a connection is out of the rotation this long.
NGINX_FAIL_TIMEOUT = 2


@dataclass(frozen=True)
class Timings:
    """How long each part of a drill lasts (seconds) and how many kills: full or short."""

    baseline: float
    before: float
    fault: float
    after: float
    kills: int
    kill_gap: float
    job_wait: float

    @classmethod
    def full(cls) -> Timings:
        return cls(baseline=180, before=15, fault=30, after=30, kills=20, kill_gap=3, job_wait=240)

    @classmethod
    def short(cls) -> Timings:
        return cls(baseline=30, before=5, fault=10, after=10, kills=5, kill_gap=1, job_wait=150)


@dataclass
class Context:
    """What every drill works with."""

    cluster: Cluster
    load: LoadGenerator
    engine: Engine
    receiver: accounting.WebhookReceiver
    timings: Timings
    prober: VirtualUser  # a signed-in user of the drills' own, outside the load
    admin_token: str
    say: Callable[[str], None] = print
    notes: list[str] = field(default_factory=list)

    @property
    def users(self) -> int:
        return len(self.load.users)

    def wait(self, seconds: float) -> None:
        time.sleep(max(0.0, seconds))


class Clock:
    """Marks the phases of a drill as it goes: `begin("killed")` ends the previous phase."""

    def __init__(self, first: str = "before"):
        self.start = time.time()
        self.marks: list[tuple[str, float]] = [(first, self.start)]

    def begin(self, name: str) -> float:
        now = time.time()
        self.marks.append((name, now))
        return now

    def phases(self, end: float) -> list[Phase]:
        bounds = [at for _, at in self.marks[1:]] + [end]
        return [Phase(name, at, bound) for (name, at), bound in zip(self.marks, bounds, strict=True)]


# Measuring ---------------------------------------------------------------------------------


def measure(
    ctx: Context,
    name: str,
    title: str,
    clock: Clock,
    fault_end: float | None,
    checks_for: Callable[[DrillResult, list[Sample], accounting.JobCounts], list[Check]],
) -> DrillResult:
    """Stop the drill's window, wait for its jobs, and build the result with its checks."""
    end = time.time()
    phases = clock.phases(end)
    samples = hearth_samples(in_window(ctx.load.samples, clock.start, end))
    ctx.say(f"  [{name}] window closed ({end - clock.start:.0f} s, {len(samples)} requests); waiting for its jobs")
    counts, waited = accounting.wait_for_jobs(ctx.engine, clock.start, end, ctx.timings.job_wait)
    ctx.say(
        f"  [{name}] jobs: {counts.enqueued} enqueued, {counts.succeeded} succeeded, {counts.failed} failed, "
        f"{counts.unfinished} unfinished (waited {waited:.0f} s)"
    )
    messages = ctx.cluster.smtp_messages()
    deliveries = ctx.receiver.between(clock.start, time.time())
    webhook_dups = accounting.webhook_duplicates(deliveries)
    result = DrillResult(
        name=name,
        title=title,
        overall=summarize(samples),
        phases=by_phase(samples, phases),
        kinds=by_kind(samples),
        jobs_enqueued=counts.enqueued,
        jobs_succeeded=counts.succeeded,
        jobs_failed=counts.failed,
        jobs_unfinished=counts.unfinished,
        reruns=counts.reruns,
        duplicates={
            "emails": sum(n - 1 for n in accounting.email_duplicates(messages, counts.ids).values()),
            "webhook deliveries": sum(n - 1 for key, n in webhook_dups.items() if key.startswith("id:")),
            "webhook events": sum(n - 1 for key, n in webhook_dups.items() if key.startswith("event:")),
        },
        seconds=end - clock.start,
    )
    result.notes.append(
        f"jobs by queue {counts.by_queue}; {accounting.email_count(messages, counts.ids)} emails and "
        f"{len(deliveries)} webhook deliveries received by the end of the wait; "
        f"{sum(1 for at in ctx.load.recorder.stale_resends if clock.start <= at < end)} requests resent on a new "
        "connection after the server closed an idle keep-alive one"
    )
    result.notes.append(
        "by kind: "
        + "; ".join(
            f"{kind} {summary.requests} (p95 {format_ms(summary.p95)}"
            + (f", errors {format_counts(summary.errors_by_status())}" if summary.errors else "")
            + (f", 4xx {format_counts(summary.other_by_status())}" if summary.other_by_status() else "")
            + ")"
            for kind, summary in result.kinds.items()
        )
    )
    if counts.failures:
        result.notes.append("failed jobs: " + "; ".join(f"{n} × {what}" for what, n in counts.failures.most_common(5)))
    if counts.unfinished_ids:
        result.notes.append(f"unfinished jobs: {', '.join(counts.unfinished_ids[:10])}")
    if webhook_dups:
        result.notes.append(f"duplicate webhook keys: {dict(list(webhook_dups.items())[:5])}")
    if fault_end is not None:
        result.recovery_s = recovery_after(samples, fault_end)
        finished = accounting.last_finished(ctx.engine, clock.start, fault_end)
        result.jobs_recovery_s = None if finished is None else max(0.0, finished - fault_end)
    result.checks = checks_for(result, samples, counts)
    return result


def no_errors(samples: Iterable[Sample], what: str = "requests") -> Check:
    items = list(samples)
    bad = [s for s in items if s.is_failure]
    shed = sum(1 for s in items if s.is_shed)
    detail = _status_detail(bad) + (f" ({shed} sign-ins shed with 503 + Retry-After: not counted)" if shed else "")
    return Check(f"no 5xx or connection errors on {what}", not bad, detail)


def jobs_all_done(counts: accounting.JobCounts, failures_allowed: bool = False) -> list[Check]:
    checks = [
        Check(
            "no job lost (every job created in the window finished)",
            counts.unfinished == 0,
            f"{counts.unfinished} unfinished of {counts.enqueued}",
        )
    ]
    if not failures_allowed:
        checks.append(
            Check(
                "every job succeeded",
                counts.failed == 0 and counts.unfinished == 0,
                f"{counts.succeeded} of {counts.enqueued} succeeded, {counts.failed} failed",
            )
        )
    return checks


def no_duplicate_effects(result: DrillResult) -> Check:
    """The same upload or export announced under two webhook ids is work done twice."""
    n = result.duplicates.get("webhook events", 0)
    return Check("no non-idempotent effect twice (one webhook event per upload/export)", n == 0, f"{n} repeated events")


def _status_detail(samples: list[Sample]) -> str:
    if not samples:
        return "none"
    counts: dict[str, int] = {}
    for s in samples:
        key = f"{s.kind} {s.status or s.detail}"
        counts[key] = counts.get(key, 0) + 1
    return ", ".join(f"{n} × {key}" for key, n in sorted(counts.items(), key=lambda kv: -kv[1])[:8])


def _p95_check(samples: list[Sample], phase: Phase | None = None) -> Check:
    """p95 of every request but sign-ins (argon2 makes those slow on purpose; the sign-in check
    looks after them) in `phase`, or in the whole window."""
    chosen = [s for s in samples if s.kind not in SIGN_IN_KINDS and (phase is None or phase.holds(s.at))]
    p95 = percentile([s.latency for s in chosen], 0.95)
    signs = percentile(
        [s.latency for s in samples if s.kind in SIGN_IN_KINDS and (phase is None or phase.holds(s.at))], 0.95
    )
    ok = p95 is not None and p95 < LATENCY_LIMIT
    where = f" while {phase.name}" if phase is not None else ""
    return Check(
        f"p95 < {LATENCY_LIMIT:g} s{where} (requests other than sign-ins)",
        ok,
        f"p95 {format_ms(p95)} ({len(chosen)} requests); sign-ins p95 {format_ms(signs)}",
    )


def _sign_in_check(samples: list[Sample], phases: list[Phase]) -> Check:
    attempts = [s for s in samples if s.kind in SIGN_IN_KINDS and any(p.holds(s.at) for p in phases)]
    ok_statuses = {"sign_in": (302, 303), "api_sign_in": (200,)}
    succeeded = [s for s in attempts if s.status in ok_statuses[s.kind]]
    share = len(succeeded) / len(attempts) if attempts else 0.0
    passed = bool(attempts) and share >= SIGN_IN_SUCCESS and not any(s.status == 500 for s in attempts)
    return Check(
        f"sign-ins work during the fault (≥ {SIGN_IN_SUCCESS:.0%} succeed, no 500)",
        passed,
        f"{len(succeeded)} of {len(attempts)} succeeded"
        + (
            f"; others: {_status_detail([s for s in attempts if s not in succeeded])}"
            if len(succeeded) < len(attempts)
            else ""
        ),
    )


# Process helpers ---------------------------------------------------------------------------


def children_of(pid: int) -> set[int]:
    """The pids whose parent is `pid` (from /proc)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold spaces, so split after the last ')'.
        fields = stat.rpartition(")")[2].split()
        if len(fields) > 1 and int(fields[1]) == pid:
            found.add(int(entry.name))
    return found


def probe(url: str, timeout: float = 3.0) -> tuple[int, dict[str, Any] | None]:
    """GET `url` from 127.0.0.1: its status and JSON body (0 and None when nothing answered)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:  # noqa: S310 - loopback URLs of the harness
            body = answer.read()
            status = answer.status
    except urllib.error.HTTPError as error:
        body, status = error.read(), error.code
    except (OSError, urllib.error.URLError):
        return 0, None
    try:
        return status, json.loads(body)
    except ValueError:
        return status, None


def ready_instance(cluster: Cluster) -> tuple[int, int | None]:
    """/health/ready through nginx: status and the answering process's pid (A's `instance` field)."""
    status, body = probe(f"http://127.0.0.1:{cluster.port}/health/ready")
    instance = (body or {}).get("instance") if isinstance(body, dict) else None
    pid = instance.get("pid") if isinstance(instance, dict) else None
    return status, int(pid) if pid is not None else None


@contextmanager
def nudging(cluster: Cluster, name: str, sig: int, every: float = 0.5) -> Iterator[None]:
    """Send `sig` to the cluster's process `name` every `every` seconds while the block runs.

    Works around cluster/s3.py: its main thread waits on `threading.Event.wait()` without a
    timeout for the signal handler to wake it, and a signal the kernel delivers to one of moto's
    busy request threads leaves that wait asleep (CPython runs handlers in the main thread only,
    when it next runs bytecode). Measured: under upload traffic one SIGUSR1 had not closed S3
    after 60 s, while repeating it every 0.5 s closed it within a second. s3.py ignores a
    repeated "close" or "open", so the extra signals are harmless.
    """
    pid = next((p for n, p, _ in cluster.processes() if n == name and p is not None), None)
    done = threading.Event()

    def nudge() -> None:
        while pid is not None and not done.wait(every):
            with suppress(ProcessLookupError):
                os.kill(pid, sig)

    thread = threading.Thread(target=nudge, name=f"nudge-{name}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join(2)


def consumers(cluster: Cluster) -> list[tuple[str, int]]:
    return [(queue, i) for i in range(cluster.config.instances) for queue in cluster.config.queues]


def hearth_pids(cluster: Cluster) -> dict[str, int]:
    pids = {f"web{i}": cluster.web_pid(i) for i in range(cluster.config.instances)}
    pids.update({f"consumer-{q}-{i}": cluster.consumer_pid(q, i) for q, i in consumers(cluster)})
    return pids


# The drills --------------------------------------------------------------------------------


def baseline(ctx: Context) -> DrillResult:
    clock = Clock("steady")
    ctx.wait(ctx.timings.baseline)

    def checks(result: DrillResult, samples: list[Sample], counts: accounting.JobCounts) -> list[Check]:
        return [
            no_errors(samples),
            _p95_check(samples),
            Check(
                "no 429 (the load stays inside every per-client limit)",
                result.overall.rate_limited == 0,
                f"{result.overall.rate_limited} × 429",
            ),
            *jobs_all_done(counts),
            no_duplicate_effects(result),
        ]

    minutes = ctx.timings.baseline / 60
    return measure(
        ctx,
        "baseline",
        f"steady {minutes:g} min" if minutes >= 1 else f"steady {ctx.timings.baseline:.0f} s",
        clock,
        None,
        checks,
    )


def redis(ctx: Context) -> DrillResult:
    t = ctx.timings
    clock = Clock()
    ctx.wait(t.before)
    clock.begin("killed")
    ctx.cluster.redis_stop()
    ctx.say("  Redis killed")
    ctx.wait(t.fault)
    clock.begin("restarting")
    ctx.cluster.redis_start()
    ctx.say("  Redis started again")
    ctx.wait(t.before)
    clock.begin("frozen")
    ctx.cluster.redis_freeze()
    ctx.say("  Redis frozen (SIGSTOP)")
    ctx.wait(t.fault)
    ctx.cluster.redis_thaw()
    fault_end = clock.begin("after")
    ctx.say("  Redis thawed")
    ctx.wait(t.after)

    def checks(result: DrillResult, samples: list[Sample], counts: accounting.JobCounts) -> list[Check]:
        phases = clock.phases(time.time())
        faulty = [p for p in phases if p.name in ("killed", "frozen")]
        reads = [s for s in samples if s.kind in PAGE_KINDS | READ_KINDS and s.at >= faulty[0].start]
        return [
            Check(
                "no 5xx on pages and API reads from the kill on",
                not any(s.is_error for s in reads),
                _status_detail([s for s in reads if s.is_error]),
            ),
            *(_p95_check(samples, phase) for phase in faulty),
            _sign_in_check(samples, faulty),
            *jobs_all_done(counts),
            Check(
                f"every job done within {JOBS_AFTER_RECOVERY:.0f} s of recovery",
                result.jobs_recovery_s is not None and result.jobs_recovery_s <= JOBS_AFTER_RECOVERY,
                "not all done" if result.jobs_recovery_s is None else f"{result.jobs_recovery_s:.1f} s",
            ),
            no_duplicate_effects(result),
        ]

    title = f"Redis killed {t.fault:.0f} s, then frozen {t.fault:.0f} s"
    return measure(ctx, "redis", title, clock, fault_end, checks)


class HealthProbe(threading.Thread):
    """Probes each instance's /health/ready and /health/live directly, every half second."""

    def __init__(self, cluster: Cluster):
        super().__init__(name="health-probe", daemon=True)
        self.cluster = cluster
        self.stop_event = threading.Event()
        self.results: list[tuple[float, int, str, int]] = []  # (at, instance, probe, status)

    def run(self) -> None:
        while not self.stop_event.is_set():
            for i, base in enumerate(self.cluster.instance_urls):
                for name in ("ready", "live"):
                    self.results.append((time.time(), i, name, probe(f"{base}/health/{name}")[0]))
            self.stop_event.wait(0.5)

    def stop(self) -> None:
        self.stop_event.set()
        self.join(5)


def postgres(ctx: Context) -> DrillResult:
    t = ctx.timings
    pids_before = hearth_pids(ctx.cluster)
    clock = Clock()
    ctx.wait(t.before)
    down = clock.begin("down")
    ctx.cluster.postgres_stop()
    ctx.say("  PostgreSQL stopped")
    health = HealthProbe(ctx.cluster)
    health.start()
    ctx.wait(t.fault - (time.time() - down))
    health.stop()
    up_at = clock.begin("restarting")
    ctx.cluster.postgres_start()
    fault_end = clock.begin("after")
    ctx.say(f"  PostgreSQL started again ({fault_end - up_at:.1f} s)")
    ctx.wait(t.after)
    pids_after = hearth_pids(ctx.cluster)
    running = all(ctx.cluster.web_running(i) for i in range(ctx.cluster.config.instances)) and all(
        ctx.cluster.consumer_running(q, i) for q, i in consumers(ctx.cluster)
    )

    def checks(result: DrillResult, samples: list[Sample], counts: accounting.JobCounts) -> list[Check]:
        fives = [s for s in samples if s.is_error]
        not_503 = [s for s in fives if s.status != 503 or not s.retry_after]
        settled = down + 3.0  # give readiness a moment to notice
        ready = [r for r in health.results if r[2] == "ready" and r[0] >= settled]
        live = [r for r in health.results if r[2] == "live"]
        after = [s for s in samples if s.at >= fault_end + POSTGRES_RECOVERY]
        return [
            Check(
                "no 500 at all",
                not any(s.status == 500 for s in samples),
                f"{sum(1 for s in samples if s.status == 500)} × 500",
            ),
            Check(
                "every 5xx is 503 with Retry-After",
                not not_503,
                f"{len(fives)} × 5xx/conn, of which not 503+Retry-After: {_status_detail(not_503)}",
            ),
            Check(
                "/health/ready 503 on every instance while down",
                bool(ready) and all(r[3] == 503 for r in ready),
                _probe_detail(ready),
            ),
            Check(
                "/health/live 200 on every instance while down",
                bool(live) and all(r[3] == 200 for r in live),
                _probe_detail(live),
            ),
            Check(
                f"full service within {POSTGRES_RECOVERY:.0f} s of restart",
                (result.recovery_s or 0) <= POSTGRES_RECOVERY and not any(s.is_failure for s in after),
                f"requests error-free {result.recovery_s or 0:.1f} s after PostgreSQL was back",
            ),
            Check(
                "no Hearth process restarted",
                pids_before == pids_after and running,
                "same pids, all running"
                if pids_before == pids_after and running
                else f"before {pids_before}, after {pids_after}",
            ),
            *jobs_all_done(counts),
            no_duplicate_effects(result),
        ]

    return measure(ctx, "postgres", f"PostgreSQL stopped {t.fault:.0f} s", clock, fault_end, checks)


def _probe_detail(results: list[tuple[float, int, str, int]]) -> str:
    counts: dict[str, int] = {}
    for _, i, name, status in results:
        key = f"web{i} {name} {status or 'conn'}"
        counts[key] = counts.get(key, 0) + 1
    return ", ".join(f"{n} × {key}" for key, n in sorted(counts.items())) or "no probes"


def consumer_kills(ctx: Context) -> DrillResult:
    t = ctx.timings
    cluster = ctx.cluster
    clock = Clock()
    ctx.wait(t.before)
    clock.begin("killing")
    killed: list[tuple[str, str, int]] = []  # (job id, consumer name, pid)
    deadline = time.time() + max(60.0, t.kills * 10.0)
    while len(killed) < t.kills and time.time() < deadline:
        target = _running_consumer(ctx, {job for job, _, _ in killed})
        if target is None:
            time.sleep(0.05)
            continue
        job_id, queue, i, pid = target
        cluster.signal_consumer(queue, i, signal.SIGKILL)
        cluster.wait_exit(f"consumer-{queue}-{i}", 10)
        killed.append((job_id, f"consumer-{queue}-{i}", pid))
        ctx.say(f"  kill {len(killed)}: consumer-{queue}-{i} (pid {pid}) while running job {job_id}")
        # Started again at once, ready a few seconds later: the next target is always a
        # consumer running a job, so never one still starting.
        cluster.start_consumer(queue, i, wait=False)
        ctx.wait(t.kill_gap)
    for queue, i in consumers(cluster):
        cluster.wait_consumer_ready(queue, i)
    fault_end = clock.begin("after")
    ctx.wait(t.after)

    def checks(result: DrillResult, samples: list[Sample], counts: accounting.JobCounts) -> list[Check]:
        statuses = accounting.job_statuses(ctx.engine, [job for job, _, _ in killed])
        done = [job for job, status in statuses.items() if status == "succeeded"]
        return [
            Check(
                f"{t.kills} consumers SIGKILLed while running a job",
                len(killed) >= t.kills,
                f"{len(killed)} kills mid-job",
            ),
            Check(
                "every job running at a kill completed later",
                len(done) == len(killed),
                f"{len(done)} of {len(killed)} succeeded: {statuses}"
                if len(done) < len(killed)
                else f"{len(done)} of {len(killed)}",
            ),
            *jobs_all_done(counts),
            no_duplicate_effects(result),
            no_errors(samples),
        ]

    result = measure(ctx, "consumers", f"consumers SIGKILLed {t.kills}× mid-job", clock, fault_end, checks)
    queues = {}
    for _, name, _ in killed:
        queues[name.split("-")[1]] = queues.get(name.split("-")[1], 0) + 1
    result.notes.append(f"kills by queue: {queues}")
    return result


def _running_consumer(ctx: Context, skip: set[str]) -> tuple[str, str, int, int] | None:
    """A job running now on one of the cluster's consumers (not one already killed once, whose
    retry policy might not allow another lost attempt): (job id, queue, instance, pid)."""
    by_pid = {
        ctx.cluster.consumer_pid(q, i): (q, i) for q, i in consumers(ctx.cluster) if ctx.cluster.consumer_running(q, i)
    }
    for job_id, _queue, owner in accounting.running_jobs(ctx.engine):
        pid = accounting.owner_pid(owner)
        if job_id not in skip and pid in by_pid:
            queue, i = by_pid[pid]
            return job_id, queue, i, pid
    return None


def web_kill(ctx: Context) -> DrillResult:
    t = ctx.timings
    cluster = ctx.cluster
    clock = Clock()
    ctx.wait(t.before)
    killed_at = clock.begin("killed")
    old_master = cluster.web_pid(0)
    cluster.signal_web(0, signal.SIGKILL)
    ctx.say(f"  web0 (master {old_master}) SIGKILLed with its workers")
    ctx.wait(t.fault)
    clock.begin("restarting")
    cluster.wait_exit("web0", 5)
    cluster.start_web(0)
    fault_end = clock.begin("after")
    new_master = cluster.web_pid(0)
    ctx.say(f"  web0 started again (master {new_master})")
    ctx.wait(t.after)
    # Rejoined: a request through nginx answered by one of the new master's workers, or at least
    # the instance ready when probed directly (when /health/ready has no `instance` field).
    workers = children_of(new_master)
    answered_by: set[int] = set()
    statuses = []
    for _ in range(20):
        status, pid = ready_instance(cluster)
        statuses.append(status)
        if pid is not None:
            answered_by.add(pid)
    direct = probe(f"{cluster.instance_urls[0]}/health/ready")[0]

    def checks(result: DrillResult, samples: list[Sample], counts: accounting.JobCounts) -> list[Check]:
        errors = [s for s in samples if s.is_failure]
        late = [s for s in errors if s.at > killed_at + 2.0]
        if answered_by:
            rejoined = Check(
                "the restarted instance rejoins (nginx sends it requests)",
                bool(answered_by & workers),
                f"answered by pids {sorted(answered_by)}; new workers {sorted(workers)}",
            )
        else:
            rejoined = Check(
                "the restarted instance rejoins (direct /health/ready 200; no `instance` field to see nginx's choice)",
                direct == 200,
                f"direct probe {direct}",
            )
        return [
            Check(
                f"errors only from requests in flight at the kill (≤ {ctx.users}, none after 2 s)",
                len(errors) <= ctx.users and not late,
                f"{len(errors)} errors ({_status_detail(errors)}); {len(late)} later than 2 s",
            ),
            rejoined,
            *jobs_all_done(counts),
            no_duplicate_effects(result),
        ]

    return measure(ctx, "web-kill", "one gunicorn instance SIGKILLed, restarted", clock, fault_end, checks)


def graceful(ctx: Context) -> DrillResult:
    t = ctx.timings
    cluster = ctx.cluster
    clock = Clock()
    ctx.wait(t.before)
    clock.begin("restarts")
    exits: dict[str, bool] = {}
    for i in range(cluster.config.instances):
        # A bare SIGTERM, as systemd sends it: the workers stop listening at once (connections
        # are refused and nginx retries them on the other instance, whatever the method) and
        # finish the requests they hold; nginx closes its idle keep-alive connections (1 s)
        # before a stopping worker would (2 s), so no request is written on a closing one.
        cluster.signal_web(i, signal.SIGTERM)
        exits[f"web{i}"] = cluster.wait_exit(f"web{i}", 35)
        cluster.start_web(i)  # returns once it answers /health/ready
        ctx.wait(NGINX_FAIL_TIMEOUT + 1)  # back in nginx's rotation before the next one stops
        ctx.say(f"  web{i}: SIGTERM, exited {'cleanly' if exits[f'web{i}'] else 'NOT within 35 s'}, started")
    for i in range(cluster.config.instances):
        # The zero-downtime reload (systemctl reload): new workers, the old ones finish theirs.
        cluster.signal_web(i, signal.SIGHUP)
        ctx.wait(3)
        ctx.say(f"  web{i}: SIGHUP (reload)")
    busy: dict[str, str] = {}  # consumer → the job it was running when told to stop
    for queue, i in consumers(cluster):
        name = f"consumer-{queue}-{i}"
        pid = cluster.consumer_pid(queue, i)
        for job_id, _queue, owner in accounting.running_jobs(ctx.engine):
            if accounting.owner_pid(owner) == pid:
                busy[name] = job_id
        cluster.signal_consumer(queue, i, signal.SIGTERM)
        exits[name] = cluster.wait_exit(name, 35)
        cluster.start_consumer(queue, i, wait=False)
    for queue, i in consumers(cluster):
        cluster.wait_consumer_ready(queue, i)
    ctx.say(f"  consumers: SIGTERM, exit, start, each in turn ({sum(exits.values())} of {len(exits)} exited in time)")
    fault_end = clock.begin("after")
    ctx.wait(t.after)

    def checks(result: DrillResult, samples: list[Sample], counts: accounting.JobCounts) -> list[Check]:
        slow = [name for name, ok in exits.items() if not ok]
        finished = accounting.job_statuses(ctx.engine, busy.values())
        return [
            no_errors(samples),
            Check("every process exited on SIGTERM within its grace period", not slow, ", ".join(slow) or "all"),
            Check(
                "jobs running at a consumer's SIGTERM finished",
                all(status == "succeeded" for status in finished.values()),
                f"{len(busy)} consumers were running a job: {finished}" if busy else "no consumer was running a job",
            ),
            *jobs_all_done(counts),
            no_duplicate_effects(result),
        ]

    return measure(
        ctx,
        "graceful",
        "each gunicorn SIGTERMed and started, then reloaded (SIGHUP); each consumer SIGTERMed and started",
        clock,
        fault_end,
        checks,
    )


def s3(ctx: Context) -> DrillResult:
    t = ctx.timings
    cluster = ctx.cluster
    prober = ctx.prober
    clock = Clock()
    prepared = [upload for upload in (prober.presign_and_send() for _ in range(3)) if upload]
    ctx.wait(t.before)
    down = clock.begin("unreachable")
    with nudging(cluster, "s3", signal.SIGUSR1):
        cluster.s3_stop()
    ctx.say(f"  S3 unreachable ({len(prepared)} uploads sent but not confirmed)")
    ctx.wait(2)
    during = [prober.confirm(upload) for upload in prepared]
    half = accounting.upload_statuses(ctx.engine, prepared)
    prober.form_upload()
    prober.export()
    ctx.wait(t.fault - (time.time() - down))
    with nudging(cluster, "s3", signal.SIGUSR2):
        cluster.s3_start()
    fault_end = clock.begin("after")
    ctx.say("  S3 back")
    ctx.wait(2)
    again = [prober.confirm(upload) for upload in prepared]
    ctx.wait(t.after)

    def checks(result: DrillResult, samples: list[Sample], counts: accounting.JobCounts) -> list[Check]:
        outage = [s for s in samples if down <= s.at < fault_end and s.kind in UPLOAD_KINDS]
        unclear = [s for s in outage if s.status >= 400 and not (s.status < 500 or s.status in (503, 507))]
        api_unclear = [s for s in outage if s.kind != "upload_form" and s.status >= 400 and not s.detail]
        ready_now = accounting.upload_statuses(ctx.engine, prepared)
        intact, checked = _ready_uploads_intact(ctx, clock.start)
        after = [s for s in samples if s.at >= fault_end + 5 and s.kind in UPLOAD_KINDS]
        return [
            Check(
                "no 500 at all",
                not any(s.status == 500 for s in samples),
                _status_detail([s for s in samples if s.status == 500]),
            ),
            Check(
                "uploads during the outage fail with a clear problem (4xx or 503/507, problem JSON on the API)",
                bool(during) and all(r.status != 200 for r in during) and not unclear and not api_unclear,
                f"confirms while down: {[r.status for r in during]}; "
                f"upload requests while down: {_status_detail(outage)}",
            ),
            Check(
                "nothing half-written recorded ready",
                all(status != "ready" for status, _ in half.values()) and intact,
                f"prepared uploads while down: {sorted(status for status, _ in half.values())}; "
                f"{checked} ready uploads of the window downloaded intact"
                if intact
                else f"a ready upload is missing or short: {checked}",
            ),
            Check(
                "service recovers when S3 is back (confirm works, uploads error-free 5 s on)",
                all(r.status == 200 for r in again)
                and not any(s.is_failure for s in after)
                and all(st == "ready" for st, _ in ready_now.values()),
                f"confirms after: {[r.status for r in again]}; "
                f"prepared now {sorted(st for st, _ in ready_now.values())}",
            ),
            # A job that met the outage is retried after its Retry-After without spending a retry.
            Check(
                "no job lost, none failed",
                counts.unfinished == 0 and counts.failed == 0,
                f"{counts.unfinished} unfinished, {counts.failed} failed",
            ),
        ]

    return measure(ctx, "s3", f"S3 unreachable {t.fault:.0f} s", clock, fault_end, checks)


def _ready_uploads_intact(ctx: Context, since: float, limit: int = 25) -> tuple[bool, Any]:
    """Download each upload recorded ready since `since` (at most `limit`) through the API and
    compare its length with the recorded size: ready must mean "all the bytes are there"."""
    rows = accounting.ready_uploads(ctx.engine, since, limit)
    api = HttpClient(ctx.cluster.url, "127.0.0.1", Recorder(), -1)
    headers = {"Authorization": f"Bearer {ctx.admin_token}", "Accept": "application/json"}
    broken = []
    for upload_id, size in rows:
        answer = api.request("check", "GET", f"/api/v1/uploads/{upload_id}/download", headers=headers)
        if answer.status != 200:
            broken.append((upload_id, f"download link {answer.status}"))
            continue
        url = answer.json()["url"]
        try:
            with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - moto on loopback
                data = response.read()
        except (OSError, urllib.error.URLError) as error:
            broken.append((upload_id, repr(error)))
            continue
        if len(data) != size:
            broken.append((upload_id, f"{len(data)} bytes, recorded {size}"))
    api.close()
    return (not broken, len(rows)) if not broken else (False, broken)


DRILLS: dict[str, Callable[[Context], DrillResult]] = {
    "baseline": baseline,
    "redis": redis,
    "postgres": postgres,
    "consumers": consumer_kills,
    "web-kill": web_kill,
    "graceful": graceful,
    "s3": s3,
}


def register_webhook(base_url: str, admin_token: str, receiver_url: str) -> str:
    """Register the drills' receiver for the events uploads and exports cause; its id."""
    client = HttpClient(base_url, "127.0.0.1", Recorder(), -1)
    body, headers = json_body(
        {
            "url": receiver_url,
            "events": ["upload.ready", "upload.rejected", "export.ready"],
            "description": "fault drills",
        }
    )
    answer = client.request(
        "setup", "POST", "/api/v1/webhooks", body, {**headers, "Authorization": f"Bearer {admin_token}"}
    )
    client.close()
    if answer.status != 201:
        raise RuntimeError(f"registering the webhook receiver: {answer.status} {answer.body[:300]!r}")
    return str(answer.json()["id"])


def api_token(base_url: str, account: Account) -> str:
    client = HttpClient(base_url, "127.0.0.1", Recorder(), -1)
    body, headers = json_body({"email": account.email, "password": account.password})
    answer = client.request("setup", "POST", "/api/v1/auth/token", body, headers)
    client.close()
    if answer.status != 200:
        raise RuntimeError(f"signing {account.email} in: {answer.status} {answer.body[:300]!r}")
    return str(answer.json()["access_token"])
