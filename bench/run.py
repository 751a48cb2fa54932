"""`make bench`: Hearth's full stack against a bare Flask app, same server, same load.

Steps (every one undone on exit, Ctrl-C or error included):

1. make sure wrk is there (Debian package; falls back to bench/loadgen.py), and that
   PostgreSQL and Redis answer on loopback (started as in docs of the machines if not);
2. create a fresh database `hearth_bench_<random>`, run `flask db upgrade` on it for the
   full stack's schema, then create and seed the bench's own `fortune` table;
3. start two gunicorn servers with the same `gunicorn.conf.py` (gthread, sized for 2 cores):
   `bench.fullstack_app:app` (Hearth's production profile: PostgreSQL + Redis, every
   middleware, request log to bench/results/fullstack.log) and `bench.bare_app:app`;
4. check both answer the same bodies (and that Hearth's middleware really ran);
5. warm up, then measure each endpoint on each app for several rounds, alternating which
   app goes first so drift hits both alike;
6. print req/s, p50, p99, CPU per request and the ratio full/bare, and write
   bench/results/latest.json.

    .venv/bin/python bench/run.py [--rounds 3 --duration 8 --connections 32 ...]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import platform
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
RESULTS = BENCH_DIR / "results"
sys.path.insert(0, str(ROOT))

from bench.workload import (  # noqa: E402
    ADDED_AT_REQUEST_TIME,
    BARE_ENGINE_OPTIONS,
    FORTUNES,
    FORTUNES_PATH,
    JSON_PATH,
    JSON_PAYLOAD,
)

BAR = 0.75  # the target: full stack >= 0.75x bare Flask, for pages and JSON
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
REDIS_URL = "redis://127.0.0.1:6379/0"
ENDPOINTS = {"fortunes": FORTUNES_PATH, "json": JSON_PATH}
APPS = {"full-stack": "bench.fullstack_app:app", "bare": "bench.bare_app:app"}
LOOPBACK = "127.0.0.1"


def log(message: str) -> None:
    print(message, flush=True)


# Tools and services -------------------------------------------------------------------------


def ensure_wrk(choice: str) -> str | None:
    """The wrk binary, installing Debian's package when we may; None means use loadgen.py."""
    if choice == "python":
        return None
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() == 0:
        prefix: list[str] = []
    elif shutil.which("sudo") and subprocess.run(["sudo", "-n", "true"], capture_output=True).returncode == 0:
        prefix = ["sudo", "-n"]
    else:
        prefix = None
    if prefix is not None:
        log("installing wrk from Debian's packages (apt-get install -y wrk)...")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        install = [*prefix, "apt-get", "install", "-y", "-qq", "wrk"]
        if subprocess.run(install, env=env, capture_output=True).returncode != 0:
            subprocess.run([*prefix, "apt-get", "update", "-qq"], env=env, capture_output=True)
            subprocess.run(install, env=env, capture_output=True)
        found = shutil.which("wrk")
        if found:
            return found
    if choice == "wrk":
        raise SystemExit("wrk is not installed and could not be installed (try: apt-get install -y wrk)")
    log("wrk unavailable: falling back to the Python load generator (bench/loadgen.py)")
    return None


def ensure_postgres() -> None:
    import psycopg

    try:
        psycopg.connect(PG_ADMIN_URL, connect_timeout=3).close()
        return
    except psycopg.OperationalError:
        pass
    versions = sorted(os.listdir("/etc/postgresql")) if os.path.isdir("/etc/postgresql") else []
    if not versions:
        raise SystemExit(f"PostgreSQL does not answer at {PG_ADMIN_URL} and no cluster to start")
    log(f"PostgreSQL is down, starting cluster {versions[-1]}/main...")
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main", "start"], check=False)
    for _ in range(30):
        with contextlib.suppress(psycopg.OperationalError):
            psycopg.connect(PG_ADMIN_URL, connect_timeout=3).close()
            return
        time.sleep(0.5)
    raise SystemExit(f"PostgreSQL does not answer at {PG_ADMIN_URL}")


def ensure_redis():
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_timeout=3, socket_connect_timeout=3)
    try:
        client.ping()
        return client
    except redis.RedisError:
        pass
    if not shutil.which("redis-server"):
        raise SystemExit(f"Redis does not answer at {REDIS_URL} and redis-server is not installed")
    log("Redis is down, starting it (no persistence, loopback only)...")
    subprocess.run(
        [
            "redis-server",
            "--daemonize",
            "yes",
            "--bind",
            LOOPBACK,
            "--port",
            "6379",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        check=True,
        capture_output=True,
    )
    for _ in range(30):
        with contextlib.suppress(redis.RedisError):
            client.ping()
            return client
        time.sleep(0.2)
    raise SystemExit(f"Redis does not answer at {REDIS_URL}")


def create_database(stack: contextlib.ExitStack) -> str:
    import psycopg

    name = f"hearth_bench_{secrets.token_hex(4)}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        log(f"dropped database {name}")

    stack.callback(drop)
    return name


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def unreachable_rate_limits() -> str:
    """Hearth's default rate limits with every amount raised to 10⁹: the same limits, hence the
    same Redis round trips per request as production, but never a 429 under the bench's load."""
    from limits import parse_many

    from app.config import Settings

    default = Settings.model_fields["rate_limit_default"].default
    return ";".join(f"{10**9} per {item.multiples} {item.GRANULARITY.name}" for item in parse_many(default))


def bench_environment(database: str, redis_prefix: str, args: argparse.Namespace, workdir: Path) -> dict:
    """The production profile, and nothing inherited that could change Hearth's behaviour."""
    from app.config import Settings

    hearth_vars = {name.upper() for name in Settings.model_fields}
    env = {key: value for key, value in os.environ.items() if key not in hearth_vars}
    for key in ("FLASK_APP", "FLASK_DEBUG", "PROMETHEUS_MULTIPROC_DIR", "GUNICORN_CMD_ARGS"):
        env.pop(key, None)
    env.update(
        APP_ENV="production",
        DATABASE_URL=f"postgresql://postgres@127.0.0.1:5432/{database}",
        REDIS_URL=REDIS_URL,
        REDIS_PREFIX=redis_prefix,
        SECRET_KEY=secrets.token_urlsafe(36)[:48],
        JWT_SECRET=secrets.token_urlsafe(36)[:48],
        SMTP_URL="smtp://127.0.0.1:2525",  # required in production, never used by these routes
        RATE_LIMIT_DEFAULT=unreachable_rate_limits(),
        LOG_LEVEL="INFO",
        WEB_CONCURRENCY=str(args.workers),
        GUNICORN_THREADS=str(args.threads),
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    )
    return env


# Servers ------------------------------------------------------------------------------------


@dataclass
class Server:
    name: str
    target: str
    port: int
    log_path: Path
    gunicorn_args: tuple[str, ...] = ()
    process: subprocess.Popen | None = None
    boots_before: int = 0

    def url(self, path: str) -> str:
        return f"http://{LOOPBACK}:{self.port}{path}"

    def boots(self) -> int:
        try:
            return self.log_path.read_text(errors="replace").count("Booting worker")
        except FileNotFoundError:
            return 0


def start_server(server: Server, env: dict, workdir: Path, stack: contextlib.ExitStack) -> None:
    server_env = {
        **env,
        "GUNICORN_BIND": f"{LOOPBACK}:{server.port}",
        "PROMETHEUS_MULTIPROC_DIR": str(workdir / f"metrics-{server.name}"),
    }
    log_file = open(server.log_path, "wb")  # noqa: SIM115  (closed by the exit stack)
    stack.callback(log_file.close)
    # No control socket: two bench servers (and anyone else's gunicorn) would share its path.
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "-c",
        str(ROOT / "gunicorn.conf.py"),
        "--no-control-socket",
        *server.gunicorn_args,
        server.target,
    ]
    server.process = subprocess.Popen(
        command, cwd=workdir, env=server_env, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True
    )


def stop_servers(servers: list[Server]) -> None:
    """Quick shutdown (SIGINT) of every gunicorn master at once, then SIGKILL stragglers."""
    running = [s for s in servers if s.process is not None and s.process.poll() is None]
    for server in running:
        server.process.send_signal(signal.SIGINT)
    for server in running:
        try:
            server.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            # Its own session (start_new_session), so this group is only gunicorn and its workers.
            os.killpg(server.process.pid, signal.SIGKILL)
            server.process.wait(timeout=5)
        log(f"stopped {server.name} (pid {server.process.pid})")


def fetch(server: Server, path: str, timeout: float = 5.0) -> tuple[int, dict, bytes]:
    conn = http.client.HTTPConnection(LOOPBACK, server.port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def wait_ready(server: Server, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            tail = server.log_path.read_text(errors="replace")[-3000:]
            raise SystemExit(f"{server.name} exited with {server.process.returncode}:\n{tail}")
        with contextlib.suppress(OSError, http.client.HTTPException):
            if fetch(server, FORTUNES_PATH, timeout=2)[0] == 200:
                return
        time.sleep(0.2)
    raise SystemExit(f"{server.name} did not answer on port {server.port} within {timeout:.0f}s")


def verify(full: Server, bare: Server, redis_client, redis_prefix: str, variant: bool) -> dict:
    """Same bodies from both apps, correct fortunes, and proof that Hearth's stack ran (only
    warnings for a `--fullstack-app` variant, which may have dropped part of the stack)."""

    def missing(problem: str) -> None:
        if not variant:
            raise SystemExit(problem)
        log(f"note (variant): {problem}")

    checks = {}
    bodies = {}
    for server in (full, bare):
        for endpoint, path in ENDPOINTS.items():
            status, headers, body = fetch(server, path)
            if status != 200:
                raise SystemExit(f"{server.name} {path} answered {status}: {body[:500]!r}")
            bodies[server.name, endpoint] = (headers, body)
    page = bodies["bare", "fortunes"][1].decode()
    if bodies["full-stack", "fortunes"][1] != bodies["bare", "fortunes"][1]:
        raise SystemExit("the fortunes pages of the two apps differ")
    rows = re.findall(r"<tr><td>(\d+)</td><td>(.*?)</td></tr>", page)
    messages = [message for _, message in rows]
    if len(rows) != len(FORTUNES) + 1 or ADDED_AT_REQUEST_TIME[1] not in messages:
        raise SystemExit(f"fortunes page has {len(rows)} rows, expected {len(FORTUNES) + 1}")
    if "<script>" in page or "&lt;script&gt;alert(" not in page:
        raise SystemExit("the <script> fortune is not HTML-escaped")
    import html

    if [html.unescape(m) for m in messages] != sorted(html.unescape(m) for m in messages):
        raise SystemExit("fortunes are not sorted by message")
    for name in ("full-stack", "bare"):
        if json.loads(bodies[name, "json"][1]) != JSON_PAYLOAD:
            raise SystemExit(f"{name} JSON endpoint answered {bodies[name, 'json'][1]!r}")
    full_headers = bodies["full-stack", "fortunes"][0]
    for header in ("x-request-id", "content-security-policy", "x-frame-options"):
        if header not in full_headers:
            missing(f"the full stack did not send {header}: is Hearth's pipeline installed?")
    # Rate-limit headers are only sent with a 429, so the proof the limiter ran is its keys.
    rate_keys = list(redis_client.scan_iter(match=f"*{redis_prefix}:rl*", count=1000))
    if not rate_keys:
        missing("no rate-limit keys in Redis: the limiter is not counting in Redis")
    checks["fortunes_rows"] = len(rows)
    checks["escaped_script"] = True
    checks["sorted"] = True
    checks["full_stack_headers"] = sorted(full_headers)
    checks["bare_headers"] = sorted(bodies["bare", "fortunes"][0])
    checks["response_bytes"] = {
        f"{name}/{endpoint}": len(body) + sum(len(k) + len(v) + 4 for k, v in headers.items())
        for (name, endpoint), (headers, body) in bodies.items()
    }
    checks["redis_keys_after_check"] = len(rate_keys)
    return checks


# Load ---------------------------------------------------------------------------------------


def cpu_seconds(master_pid: int) -> float:
    """CPU time of a gunicorn master and all its workers, alive or already reaped."""
    ticks = os.sysconf("SC_CLK_TCK")

    def fields(pid: int) -> list[str] | None:
        try:
            with open(f"/proc/{pid}/stat") as handle:
                return handle.read().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            return None

    master = fields(master_pid)
    if master is None:
        return 0.0
    total = sum(int(value) for value in master[11:15])  # utime stime cutime cstime
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            child = fields(int(entry))
            if child is not None and int(child[1]) == master_pid:  # field 4: ppid
                total += sum(int(value) for value in child[11:15])
    return total / ticks


def run_load(wrk: str | None, url: str, seconds: int, args: argparse.Namespace, wrk_log) -> dict:
    if wrk is None:
        from bench.loadgen import run

        return run(url, args.connections, seconds, processes=args.wrk_threads)
    command = [
        wrk,
        f"-t{args.wrk_threads}",
        f"-c{args.connections}",
        f"-d{seconds}s",
        "--latency",
        "--timeout",
        "5s",
        "-s",
        str(BENCH_DIR / "report.lua"),
        url,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    wrk_log.write(f"$ {' '.join(command)}\n{done.stdout}{done.stderr}\n")
    wrk_log.flush()
    for line in done.stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            return json.loads(line.removeprefix("BENCH_JSON "))
    raise SystemExit(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")


def measure(server: Server, endpoint: str, seconds: int, wrk, args, wrk_log) -> dict:
    cpu_before = cpu_seconds(server.process.pid)
    result = run_load(wrk, server.url(ENDPOINTS[endpoint]), seconds, args, wrk_log)
    cpu = cpu_seconds(server.process.pid) - cpu_before
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    result["server_cpu_s"] = round(cpu, 3)
    result["cpu_us_per_request"] = round(cpu / result["requests"] * 1e6, 1) if result["requests"] else None
    result["errors"] = sum(
        result[key] for key in ("connect_errors", "read_errors", "write_errors", "timeouts", "status_errors")
    )
    if server.process.poll() is not None:
        raise SystemExit(f"{server.name} died during the load (see {server.log_path})")
    return result


def summarize(runs: list[dict]) -> dict:
    requests = sum(run["requests"] for run in runs)
    seconds = sum(run["duration_us"] for run in runs) / 1e6
    cpu = sum(run["server_cpu_s"] for run in runs)
    return {
        "rps": round(requests / seconds, 1),
        "rps_min": round(min(run["rps"] for run in runs), 1),
        "rps_max": round(max(run["rps"] for run in runs), 1),
        "p50_ms": round(statistics.median(run["p50_us"] for run in runs) / 1000, 2),
        "p90_ms": round(statistics.median(run["p90_us"] for run in runs) / 1000, 2),
        "p99_ms": round(statistics.median(run["p99_us"] for run in runs) / 1000, 2),
        "cpu_us_per_request": round(cpu / requests * 1e6, 1) if requests else None,
        "requests": requests,
        "errors": sum(run["errors"] for run in runs),
        "rounds": runs,
    }


def print_table(results: dict) -> None:
    header = (
        f"{'endpoint':<10} {'app':<11} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'CPU us/req':>10} {'errors':>6}   full/bare req/s"
    )
    log("")
    log(header)
    log("-" * len(header))
    for endpoint, per_app in results.items():
        for name in APPS:
            row = per_app[name]
            ratio = ""
            if name == "full-stack":
                verdict = "meets" if per_app["ratio_rps"] >= BAR else "BELOW"
                rounds = per_app["ratio_rps_rounds"]
                spread = f", rounds {min(rounds):.2f}-{max(rounds):.2f}" if len(rounds) > 1 else ""
                ratio = f"{per_app['ratio_rps']:.2f}x  ({verdict} the {BAR:.2f}x bar{spread})"
            log(
                f"{endpoint:<10} {name:<11} {row['rps']:>9.1f} {row['p50_ms']:>8.2f} {row['p99_ms']:>8.2f} "
                f"{row['cpu_us_per_request'] or 0:>10.0f} {row['errors']:>6}   {ratio}"
            )
    log("")


# Main ---------------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Hearth full stack vs bare Flask (see bench/README.md)")
    parser.add_argument("--rounds", type=int, default=3, help="measured rounds per app and endpoint")
    parser.add_argument("--duration", type=int, default=8, help="seconds per measured run")
    parser.add_argument("--warmup", type=int, default=3, help="seconds of unmeasured load first")
    parser.add_argument("--connections", type=int, default=32, help="concurrent keep-alive connections")
    parser.add_argument("--wrk-threads", type=int, default=2, help="wrk threads (or loadgen processes)")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn workers (2 x 2 cores)")
    parser.add_argument("--threads", type=int, default=4, help="gthread threads per worker")
    parser.add_argument("--load-tool", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument("--endpoints", default="fortunes,json", help="comma-separated subset")
    parser.add_argument(
        "--max-requests",
        type=int,
        default=None,
        help="override gunicorn.conf.py's max_requests for both apps (0: never recycle)",
    )
    parser.add_argument(
        "--fullstack-app",
        default=APPS["full-stack"],
        metavar="MODULE:APP",
        help="experiment: measure a variant of the full stack instead (importable module)",
    )
    parser.add_argument("--strict", action="store_true", help="exit 1 when a ratio is below the bar")
    parser.add_argument("--quick", action="store_true", help="1 round of 3 s, 1 s warmup (smoke test)")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.duration, args.warmup = 1, 3, 1
    args.endpoints = [name.strip() for name in args.endpoints.split(",") if name.strip()]
    unknown = set(args.endpoints) - set(ENDPOINTS)
    if unknown:
        parser.error(f"unknown endpoints: {', '.join(sorted(unknown))}")
    args.wrk_threads = max(1, min(args.wrk_threads, args.connections))
    return args


def _raise_on_signal(signum, _frame) -> None:
    raise SystemExit(128 + signum)


def main() -> int:
    args = parse_args()
    signal.signal(signal.SIGTERM, _raise_on_signal)
    signal.signal(signal.SIGHUP, _raise_on_signal)
    RESULTS.mkdir(parents=True, exist_ok=True)
    started = time.time()
    load_before = os.getloadavg()[0]
    if load_before > 1.0:
        log(
            f"note: the machine is busy (load average {load_before:.1f} on {os.cpu_count()} CPUs); "
            "other processes compete with the servers, so expect noisy figures"
        )

    from app import _engine_options

    hearth_options = _engine_options("postgresql+psycopg://bench")
    if hearth_options != BARE_ENGINE_OPTIONS:
        raise SystemExit(
            f"bench/workload.py BARE_ENGINE_OPTIONS {BARE_ENGINE_OPTIONS} differ from Hearth's "
            f"engine options {hearth_options}: update the copy so both apps pool alike"
        )
    wrk = ensure_wrk(args.load_tool)
    ensure_postgres()
    redis_client = ensure_redis()

    with contextlib.ExitStack() as stack:
        # Cleanup runs in reverse: servers stop, then Redis keys and the database go.
        workdir = Path(tempfile.mkdtemp(prefix="hearth-bench-"))
        stack.callback(shutil.rmtree, workdir, ignore_errors=True)
        redis_prefix = f"hearth-bench-{secrets.token_hex(4)}"

        def clear_redis() -> None:
            keys = list(redis_client.scan_iter(match=f"*{redis_prefix}*", count=1000))
            if keys:
                redis_client.delete(*keys)

        stack.callback(clear_redis)
        database = create_database(stack)
        env = bench_environment(database, redis_prefix, args, workdir)
        log(
            f"database {database}, redis prefix {redis_prefix}, "
            f"gunicorn gthread {args.workers} workers x {args.threads} threads, "
            f"load: {'wrk' if wrk else 'bench/loadgen.py'} {args.connections} connections"
        )

        # The full stack's schema, through its own migrations, as a deploy would.
        migrate = subprocess.run(
            [sys.executable, "-m", "flask", "--app", "wsgi", "db", "upgrade"],
            cwd=workdir,
            env=env,
            capture_output=True,
            text=True,
        )
        if migrate.returncode != 0:
            raise SystemExit(f"flask db upgrade failed:\n{migrate.stdout}\n{migrate.stderr}")
        from sqlalchemy import create_engine

        from bench.workload import seed

        engine = create_engine(env["DATABASE_URL"].replace("postgresql://", "postgresql+psycopg://", 1))
        seed(engine)
        engine.dispose()

        targets = {**APPS, "full-stack": args.fullstack_app}
        extra_args = ("--max-requests", str(args.max_requests)) if args.max_requests is not None else ()
        servers = {
            name: Server(name, target, free_port(), RESULTS / f"{name.replace('-', '')}.log", extra_args)
            for name, target in targets.items()
        }
        stack.callback(stop_servers, list(servers.values()))
        for server in servers.values():
            start_server(server, env, workdir, stack)
        for server in servers.values():
            wait_ready(server)
        checks = verify(
            servers["full-stack"], servers["bare"], redis_client, redis_prefix, args.fullstack_app != APPS["full-stack"]
        )
        log(f"both apps answer the same bodies; full stack headers: {', '.join(checks['full_stack_headers'])}")

        wrk_log = stack.enter_context(open(RESULTS / "wrk.log", "w"))
        for server in servers.values():
            server.boots_before = server.boots()
        if args.warmup:
            for endpoint in args.endpoints:
                for server in servers.values():
                    run_load(wrk, server.url(ENDPOINTS[endpoint]), args.warmup, args, wrk_log)
        runs: dict[tuple[str, str], list[dict]] = {}
        names = list(APPS)
        for round_index in range(args.rounds):
            for endpoint in args.endpoints:
                order = names if round_index % 2 == 0 else names[::-1]
                for name in order:
                    result = measure(servers[name], endpoint, args.duration, wrk, args, wrk_log)
                    runs.setdefault((endpoint, name), []).append(result)
                    log(
                        f"round {round_index + 1}/{args.rounds} {endpoint:<8} {name:<10} "
                        f"{result['rps']:>8.1f} req/s  p50 {result['p50_us'] / 1000:6.2f} ms  "
                        f"p99 {result['p99_us'] / 1000:6.2f} ms  {result['cpu_us_per_request']} us CPU/req"
                        + (f"  {result['errors']} ERRORS" if result["errors"] else "")
                    )

        results = {}
        for endpoint in args.endpoints:
            per_app = {name: summarize(runs[endpoint, name]) for name in names}
            per_app["ratio_rps"] = round(per_app["full-stack"]["rps"] / per_app["bare"]["rps"], 3)
            # Each round measures both apps back to back: its ratio is a paired estimate.
            per_app["ratio_rps_rounds"] = [
                round(full["rps"] / bare["rps"], 3)
                for full, bare in zip(runs[endpoint, "full-stack"], runs[endpoint, "bare"], strict=True)
            ]
            per_app["ratio_p50"] = round(per_app["full-stack"]["p50_ms"] / per_app["bare"]["p50_ms"], 3)
            per_app["ratio_p99"] = round(per_app["full-stack"]["p99_ms"] / per_app["bare"]["p99_ms"], 3)
            per_app["meets_bar"] = per_app["ratio_rps"] >= BAR
            results[endpoint] = per_app
        worker_restarts = {name: s.boots() - s.boots_before for name, s in servers.items()}

        print_table(results)
        if any(run_["errors"] for rs in runs.values() for run_ in rs):
            log("WARNING: some requests failed (see bench/results/wrk.log and the server logs)")
        if any(worker_restarts.values()):
            log(f"worker restarts during the load (gunicorn max_requests): {worker_restarts}")
        report = {
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
            "elapsed_s": None,
            "bar": BAR,
            "meets_bar": all(r["meets_bar"] for r in results.values()),
            "config": {
                "profile": "production (PostgreSQL + Redis)",
                "gunicorn": {
                    "worker_class": "gthread",
                    "workers": args.workers,
                    "threads": args.threads,
                    "config": "gunicorn.conf.py",
                    "max_requests_override": args.max_requests,
                },
                "fullstack_app": args.fullstack_app,
                "load_tool": "wrk" if wrk else "bench/loadgen.py",
                "connections": args.connections,
                "load_threads": args.wrk_threads,
                "warmup_s": args.warmup,
                "duration_s": args.duration,
                "rounds": args.rounds,
                "endpoints": {name: ENDPOINTS[name] for name in args.endpoints},
                "rate_limit_default": env["RATE_LIMIT_DEFAULT"],
                "log_level": env["LOG_LEVEL"],
            },
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "platform": platform.platform(),
                "loadavg_1m_before": round(load_before, 2),
                "loadavg_1m_after": round(os.getloadavg()[0], 2),
            },
            "checks": checks,
            "worker_restarts": worker_restarts,
            "results": results,
        }
        report["elapsed_s"] = round(time.time() - started, 1)
        (RESULTS / "latest.json").write_text(json.dumps(report, indent=2) + "\n")
        log(
            f"wrote {RESULTS / 'latest.json'} ({report['elapsed_s']:.0f} s); "
            f"server logs in {RESULTS}/fullstack.log and bare.log"
        )
        # Ctrl-C during cleanup would leave a database or servers behind.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    return 1 if args.strict and not report["meets_bar"] else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("\ninterrupted; cleaned up", file=sys.stderr)
        sys.exit(130)
