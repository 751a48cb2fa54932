"""The bench's gunicorn servers: start, wait, talk to, account CPU for, stop."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOOPBACK = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    """One gunicorn master (and its workers) serving `target` with `env` on top of the bench's."""

    name: str
    target: str
    port: int
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
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

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.process.pid)

    def context_switches(self) -> tuple[int, int]:
        return context_switches(self.process.pid)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


def start_server(server: Server, env: dict, workdir: Path, stack: contextlib.ExitStack) -> None:
    server_env = {
        **env,
        **server.env,
        "GUNICORN_BIND": f"{LOOPBACK}:{server.port}",
        "PROMETHEUS_MULTIPROC_DIR": str(workdir / f"metrics-{server.name}"),
    }
    log_file = open(server.log_path, "ab")  # noqa: SIM115  (closed by the exit stack)
    stack.callback(log_file.close)
    # No control socket: several bench servers (and anyone else's gunicorn) would share its path.
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


def stop_servers(servers: list[Server], log) -> None:
    """Quick shutdown (SIGINT) of every gunicorn master at once, then SIGKILL stragglers."""
    running = [s for s in servers if s.alive()]
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


def fetch(
    server: Server,
    path: str,
    *,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    body: dict | None = None,
    timeout: float = 5.0,
) -> tuple[int, dict, bytes]:
    conn = http.client.HTTPConnection(LOOPBACK, server.port, timeout=timeout)
    try:
        payload = json.dumps(body).encode() if body is not None else None
        sent = dict(headers or {})
        if payload is not None:
            sent["Content-Type"] = "application/json"
        conn.request(method, path, body=payload, headers=sent)
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def wait_ready(server: Server, path: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            tail = server.log_path.read_text(errors="replace")[-3000:]
            raise SystemExit(f"{server.name} exited with {server.process.returncode}:\n{tail}")
        with contextlib.suppress(OSError, http.client.HTTPException):
            if fetch(server, path, timeout=2)[0] == 200:
                return
        time.sleep(0.2)
    raise SystemExit(f"{server.name} did not answer on port {server.port} within {timeout:.0f}s")


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


def context_switches(master_pid: int) -> tuple[int, int]:
    """(voluntary, involuntary) context switches of a gunicorn master and its live workers, all
    their threads: a thread that blocks (on I/O, or waiting for the GIL) switches voluntarily;
    one preempted for another runnable thread or process, involuntarily."""
    voluntary = involuntary = 0
    for pid in [master_pid, *worker_pids(master_pid)]:
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
        except FileNotFoundError:
            continue
        for task in tasks:
            try:
                with open(f"/proc/{pid}/task/{task}/status") as handle:
                    for line in handle:
                        if line.startswith("voluntary_ctxt_switches:"):
                            voluntary += int(line.split()[1])
                        elif line.startswith("nonvoluntary_ctxt_switches:"):
                            involuntary += int(line.split()[1])
            except FileNotFoundError:
                continue
    return voluntary, involuntary


def worker_pids(master_pid: int) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    stat = handle.read().rsplit(")", 1)[1].split()
            except (FileNotFoundError, ProcessLookupError, IndexError):
                continue
            if int(stat[1]) == master_pid:
                pids.append(int(entry))
    return pids
