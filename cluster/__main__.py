"""`make cluster`: Hearth as two instances behind nginx on this machine, until Ctrl-C.

    python -m cluster [--port 8080] [--database hearth_cluster] [--instances 2]

nginx on 127.0.0.1:PORT (and [::1]) balancing the gunicorn instances, one huey consumer per queue
per instance, the machine's PostgreSQL (database created if missing, migrated) and Redis (both
started if down), S3 (moto) and an SMTP sink on loopback. The first administrator is seeded as
`make run` does; its generated password is kept in instance/cluster/admin-credentials.txt and
shown in the box. Logs: instance/cluster/logs/<process>.log.

Ctrl-C (or SIGTERM, SIGHUP, Ctrl-\\) stops everything that was started and exits 0. As in
scripts/run.py, on a terminal this process becomes the terminal's foreground group, so Ctrl-C
reaches it alone and `make` does not report an interrupted recipe; the Hearth processes run in
sessions of their own and are stopped by this process (SIGTERM, SIGKILL after 30 s).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path

from cluster.harness import ROOT, Cluster, ClusterConfig, ClusterError
from scripts.run import Terminal

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
WATCH_SECONDS = 1.0


class Stop(Exception):
    """Raised in the main thread by the first stop signal."""


def box(lines: list[str]) -> str:
    width = max(len(line) for line in lines)
    rule = "─" * (width + 4)
    return "\n".join([f"╭{rule}╮", *(f"│  {line.ljust(width)}  │" for line in lines), f"╰{rule}╯"])


def summary(cluster: Cluster) -> str:
    """What is running where, and the admin's sign-in."""
    lines = [f"Hearth cluster at {cluster.url}", ""]
    if cluster.admin_password:
        lines += [
            f"Admin email     {cluster.admin_email}",
            f"Admin password  {cluster.admin_password}",
            f"(also in {cluster.admin_credentials_file})",
        ]
    else:
        lines += [
            "Sign in with the administrator made on the first run",
            "(lost its password? flask --app wsgi users set-password EMAIL,",
            f" with DATABASE_URL={cluster.database_dsn}).",
        ]
    lines += ["", f"{'process':<20} {'pid':>7}  what"]
    for name, pid, what in cluster.processes():
        lines.append(f"{name:<20} {pid if pid else '-':>7}  {what}")
    lines += [
        "",
        f"database  {cluster.database_dsn}",
        f"redis     {cluster.redis_url} (prefix {cluster.redis_prefix})",
        f"logs      {cluster.logs}/",
        "",
        "Ctrl-C stops every process listed here.",
    ]
    return box(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT") or 8080))
    parser.add_argument("--database", default="hearth_cluster")
    parser.add_argument("--instances", type=int, default=2)
    parser.add_argument("--workdir", type=Path, default=ROOT / "instance" / "cluster")
    args = parser.parse_args(argv)

    config = ClusterConfig(
        port=args.port,
        instances=args.instances,
        database=args.database,
        redis_prefix="hearth-cluster",  # the same every run: jobs queued before a stop run after
        workdir=args.workdir,
        extra_admin=False,  # like `make run`: the first run's admin, never another one
    )
    terminal = Terminal()
    terminal.take()
    stopping = False

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping
        if stopping:
            return  # already stopping: a second Ctrl-C must not interrupt the clean-up
        stopping = True
        raise Stop(signal.Signals(signum).name)

    signal.signal(signal.SIGTSTP, signal.SIG_IGN)  # a suspended group make cannot see: see scripts/run.py
    for signum in STOP_SIGNALS:
        signal.signal(signum, on_signal)
    cluster = Cluster(config)
    try:
        sys.stdout.write(f"Starting Hearth cluster (logs in {cluster.logs}/) ...\n")
        sys.stdout.flush()
        cluster.start()
        sys.stdout.write(f"\n{summary(cluster)}\n\n")
        sys.stdout.flush()
        reported: set[str] = set()
        while True:
            time.sleep(WATCH_SECONDS)
            for name, pid, _what in cluster.processes():
                if pid is None and name not in reported:
                    reported.add(name)
                    sys.stdout.write(f"{name} has exited: see {cluster.log_path(name)}\n")
                    sys.stdout.flush()
    except Stop:
        stopping = True
        sys.stdout.write("\nStopping the cluster ...\n")
        sys.stdout.flush()
        cluster.stop()
        sys.stdout.write("Hearth cluster stopped.\n")
        return 0
    except ClusterError as error:
        stopping = True
        cluster.stop()
        sys.stderr.write(f"make cluster: {error}\n")
        return 1
    finally:
        stopping = True
        terminal.give_back()


if __name__ == "__main__":
    sys.exit(main())
