"""`python -m drills [--short] [--only NAME[,NAME]] [--report PATH]`: the fault drills of issue 17.

Starts a private cluster (cluster.harness with `private_services=True`: its own redis-server and
PostgreSQL, so the faults never touch the machine's), seeds the virtual users, registers a
webhook receiver, starts the load, runs each drill in turn under it, prints the table, writes
it (between the markers of `--report PATH`, else drills/results/latest.md), and exits 1 if any
expectation broke.
"""

from __future__ import annotations

import argparse
import json
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from cluster.harness import Cluster, ClusterConfig, ClusterError
from drills import accounting
from drills.load import Account, LoadGenerator, Mix, VirtualUser
from drills.report import Check, DrillResult, Machine, Run, render, write_block
from drills.scenarios import DRILLS, Context, Timings, api_token, register_webhook
from drills.stats import summarize

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_RESULTS = Path(__file__).resolve().parent / "results" / "latest.md"
FULL_USERS, SHORT_USERS = 20, 8
WARM_UP = 6.0  # seconds of load before the first drill
# What the cluster's Hearth processes run with, beyond the harness's own settings, and why.
DRILL_ENV = {
    # A job whose consumer died is taken back after its lease: 10 s instead of 60 so the kill
    # drill finishes in minutes; the sweeper (every minute, on the sync consumers) requeues it.
    "JOBS_LEASE_SECONDS": "10",
    # A job whose message Redis lost is sent again once it has waited this long (default 60 s),
    # by the sweeper's next run; the drills' queues are never that far behind.
    "JOBS_QUEUED_GRACE_SECONDS": "20",
    # One access token for the whole run (the admin's checks the uploads at the end).
    "ACCESS_TOKEN_MINUTES": "60",
    # Each virtual user asks for an export every ~40 s; their builds may overlap.
    "EXPORT_MAX_CONCURRENT_PER_USER": "10",
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m drills", description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true", help="CI's form: each fault once, short (~5 min)")
    parser.add_argument("--only", help=f"comma-separated drills to run, of: {', '.join(DRILLS)}")
    parser.add_argument("--report", type=Path, help="markdown file whose drills block to rewrite (docs/reliability.md)")
    parser.add_argument("--users", type=int, help=f"virtual users (default {FULL_USERS}, short {SHORT_USERS})")
    parser.add_argument("--workdir", type=Path, help="keep the cluster's logs here (default: a temporary directory)")
    args = parser.parse_args(argv)
    if args.only:
        unknown = [name for name in args.only.split(",") if name not in DRILLS]
        if unknown:
            parser.error(f"unknown drill(s) {', '.join(unknown)}; known: {', '.join(DRILLS)}")
    return args


def say(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {message}", flush=True)  # noqa: T201 - a command's progress


def seed_users(cluster: Cluster, count: int, password: str) -> list[str]:
    """The virtual users' accounts, made by drills/seed.py with the cluster's environment."""
    env = {**cluster.hearth_env(), "DRILLS_PASSWORD": password, "DRILLS_USERS": str(count)}
    result = subprocess.run(
        [sys.executable, "-m", "drills.seed"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"seeding the drills' users failed:\n{result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])["emails"]


def broken(name: str, error: BaseException) -> DrillResult:
    result = DrillResult(name, f"{name} (broke off)", summarize([]))
    result.checks = [Check("the drill ran to its end", False, f"{type(error).__name__}: {error}")]
    return result


def restore(cluster: Cluster) -> None:
    """After a drill broke off: every service and process the drills stop, running again."""
    steps = [cluster.redis_thaw, cluster.redis_start, cluster.postgres_start, cluster.s3_start]
    for i in range(cluster.config.instances):
        if not cluster.web_running(i):
            steps.append(lambda i=i: cluster.start_web(i))
        steps.append(lambda i=i: cluster.undrain_web(i))
        for queue in cluster.config.queues:
            if not cluster.consumer_running(queue, i):
                steps.append(lambda queue=queue, i=i: cluster.start_consumer(queue, i))
    for step in steps:
        try:
            step()
        except (ClusterError, OSError) as error:
            say(f"  could not restore ({error!r})")


def _exit_on_sigterm(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    # A CI timeout stops this process with SIGTERM, whose default action would skip the
    # `finally` below and leave the cluster's processes (each in a session of its own) running.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    args = parse_args(argv)
    mode = "short" if args.short else "full"
    timings = Timings.short() if args.short else Timings.full()
    users = args.users or (SHORT_USERS if args.short else FULL_USERS)
    names = args.only.split(",") if args.only else list(DRILLS)
    started = datetime.now(UTC)
    began = time.monotonic()
    token = secrets.token_hex(4)
    with tempfile.TemporaryDirectory(prefix="hearth-drills-") as scratch:
        workdir = args.workdir or Path(scratch)
        config = ClusterConfig(
            port=0,
            database=f"hearth_drills_{token}",
            redis_prefix=f"hearth-drills-{token}",
            workdir=workdir,
            private_services=True,
            smtp=True,
            env=dict(DRILL_ENV),
        )
        say(f"starting a private cluster in {workdir} ({mode} mode, {users} virtual users, drills: {', '.join(names)})")
        cluster = Cluster(config)
        receiver = accounting.WebhookReceiver().start()
        load: LoadGenerator | None = None
        try:
            cluster.start()
            say(
                f"cluster up at {cluster.url} ({config.instances} instances × {config.web_workers} workers "
                f"× {config.web_threads} threads)"
            )
            password = secrets.token_urlsafe(16)
            emails = seed_users(cluster, users + 1, password)
            accounts = [Account(email, password) for email in emails]
            admin_token = api_token(cluster.url, Account(cluster.admin_email, cluster.admin_password))
            register_webhook(cluster.url, admin_token, receiver.url)
            load = LoadGenerator(cluster.url, accounts[:users], Mix())
            # The drills' own user, outside the load's loop (the S3 drill confirms uploads with
            # it at chosen moments); its requests are counted with the load's.
            prober = VirtualUser(users, accounts[users], cluster.url, load.recorder, Mix(), 1, threading.Event())
            prober.sign_in()
            prober.api_sign_in()
            load.start()
            # Every user signs in twice as it starts: let that burst of argon2 pass first.
            say(f"load started; warming up {WARM_UP:.0f} s")
            time.sleep(WARM_UP)
            ctx = Context(
                cluster, load, accounting.engine_for(cluster.database_url), receiver, timings, prober, admin_token, say
            )
            results = []
            for name in names:
                say(f"drill {name}")
                try:
                    result = DRILLS[name](ctx)
                except (ClusterError, SQLAlchemyError, OSError, RuntimeError) as error:
                    # A drill that could not finish is a failed drill, not a lost run: record it,
                    # put the cluster back together, and go on with the next.
                    say(f"drill {name} broke off: {error!r}")
                    result = broken(name, error)
                    restore(cluster)
                say(f"drill {name}: {'pass' if result.passed else 'FAIL'} ({result.seconds:.0f} s)")
                for check in result.checks:
                    if not check.passed:
                        say(f"  FAIL {check.name}: {check.detail}")
                results.append(result)
        finally:
            if load is not None:
                load.stop()
            receiver.stop()
            say("stopping the cluster")
            cluster.stop()
        topology = (
            f"nginx → {config.instances} gunicorn instances "
            f"({config.web_workers} workers × {config.web_threads} threads), "
            f"one consumer per queue per instance, private PostgreSQL 15 and Redis, moto S3"
        )
        run = Run(mode, started, Machine.this(), topology, users, results, time.monotonic() - began)
        if not run.passed and args.workdir is None:
            # The temporary workdir goes away: keep the logs of a failed run for whoever reads it.
            kept = DEFAULT_RESULTS.parent / "logs"
            shutil.rmtree(kept, ignore_errors=True)
            shutil.copytree(workdir / "logs", kept)
            say(f"logs of the failed run kept in {kept}")
    markdown = render(run)
    print(markdown)  # noqa: T201 - the table, always shown
    target = args.report or DEFAULT_RESULTS
    write_block(target, markdown)
    say(f"written to {target}")
    return 0 if run.passed else 1


if __name__ == "__main__":
    sys.exit(main())
