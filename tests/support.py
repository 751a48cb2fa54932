"""Real components for tests: an SMTP server (aiosmtpd) and huey worker processes."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(
    predicate: Callable[[], Any], timeout: float = 20.0, interval: float = 0.05, message: str = "condition"
) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}")


@dataclass
class Delivery:
    recipients: list[str]
    message: Message
    received_at: float


@dataclass
class MailServer:
    """aiosmtpd on loopback. Recipients starting with `reject` are refused with 550;
    `slow` recipients hang in DATA until `release_slow` is set (once)."""

    port: int
    deliveries: list[Delivery] = field(default_factory=list)
    rcpt_attempts: list[tuple[str, float]] = field(default_factory=list)
    slow_started: threading.Event = field(default_factory=threading.Event)
    release_slow: threading.Event = field(default_factory=threading.Event)
    _slow_held: bool = False

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        self.rcpt_attempts.append((address, time.monotonic()))
        if address.startswith("reject"):
            return "550 5.1.1 Mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if any(rcpt.startswith("slow") for rcpt in envelope.rcpt_tos) and not self._slow_held:
            self._slow_held = True
            self.slow_started.set()
            while not self.release_slow.is_set():
                await asyncio.sleep(0.05)
            return "451 4.3.0 Aborted"
        self.deliveries.append(
            Delivery(list(envelope.rcpt_tos), message_from_bytes(envelope.content), time.monotonic())
        )
        return "250 Message accepted"

    def wait_for_deliveries(self, count: int, timeout: float = 30.0) -> list[Delivery]:
        wait_until(lambda: len(self.deliveries) >= count, timeout, message=f"{count} deliveries")
        return self.deliveries


class Worker:
    """A real `flask worker <queue>` process configured by environment variables."""

    def __init__(self, queue: str, env: dict[str, str], log_path: Path):
        self.queue, self.env, self.log_path = queue, env, log_path
        self.process: subprocess.Popen | None = None

    def start(self) -> Worker:
        self._log = open(self.log_path, "ab")  # noqa: SIM115  (kept open for the process's lifetime)
        self.process = subprocess.Popen(
            [str(PROJECT_ROOT / ".venv/bin/flask"), "--app", "wsgi", "worker", self.queue, "--workers", "2"],
            cwd=PROJECT_ROOT,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        return self

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self._log.close()

    def log_lines(self) -> list[dict[str, Any]]:
        import orjson

        lines = []
        for raw in self.log_path.read_bytes().splitlines():
            try:
                lines.append(orjson.loads(raw))
            except orjson.JSONDecodeError:
                continue
        return lines


def worker_env(settings: dict[str, Any]) -> dict[str, str]:
    """Environment for a worker process seeing the same database, broker and SMTP as a test app."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("FLASK_", "APP_"))}
    for name, value in settings.items():
        if name.startswith("_"):
            continue
        if value is None:
            env.pop(name.upper(), None)
        elif isinstance(value, bool):
            env[name.upper()] = "true" if value else "false"
        else:
            env[name.upper()] = str(value)
    return env


def start_mail_server() -> tuple[MailServer, Controller]:
    server = MailServer(port=free_port())
    controller = Controller(server, hostname="127.0.0.1", port=server.port)
    controller.start()
    return server, controller


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
