"""A Hearth cluster on loopback: nginx balancing N gunicorn instances, one huey consumer per
queue per instance, on PostgreSQL, Redis, S3 (moto) and an SMTP sink.

`make cluster` runs one (cluster/__main__.py); the consistency tests (tests/cluster) and the
fault drills (drills/) start their own and act on its parts:

    with Cluster(ClusterConfig(port=0, database=f"hearth_cluster_{token}", workdir=tmp)) as cluster:
        requests.get(f"{cluster.url}/health/ready")
        cluster.signal_web(0, signal.SIGKILL)

Every process runs in a session (process group) of its own, with its output in
`workdir/logs/<name>.log`, so a signal reaches exactly that process and its children (a
gunicorn master and its workers) and nothing else. Start order: services, database and admin,
web instances, consumers, nginx last (it is the door: once it answers, everything behind it is
ready). `stop()` sends SIGTERM to everything it started, nginx first, and SIGKILL to whatever is
still there after STOP_TIMEOUT seconds.

Hearth runs with APP_ENV=development, because production demands an https PUBLIC_URL and
Secure cookies that plain-http clients would not send back. Everything else is set as in
production: PostgreSQL, Redis queues and cache, S3 storage, SMTP, TRUSTED_PROXIES=1, one
SECRET_KEY/JWT_SECRET for every process, production password hashing. What development still
changes: /dev/mail exists, with a copy of each email kept in the cluster's own DEV_MAIL_DIR
(workdir/mail), templates and static files are re-checked for changes, webhooks may target
private addresses, cookies are not Secure, no HSTS.
"""

from __future__ import annotations

import contextlib
import email
import email.message
import email.policy
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import psycopg
from aiosmtpd.controller import Controller

from app.cli import AdminCredentials, read_admin_credentials, write_admin_credentials
from cluster.static import collect_static

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
NGINX_TEMPLATE = Path(__file__).resolve().parent / "nginx.conf"
QUEUES = ("emails", "uploads", "sync", "reports")
# Above gunicorn's graceful_timeout (20 s) and a consumer's JOBS_SHUTDOWN_TIMEOUT_SECONDS (25 s):
# stop() must not cut short the graceful stop it asked for.
STOP_TIMEOUT = 30.0
START_TIMEOUT = 60.0
POSTGRES_BIN = Path("/usr/lib/postgresql/15/bin")
NGINX_CANDIDATES = ("/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx")
S3_BUCKET = "hearth-cluster"
S3_KEY = "cluster"  # moto accepts any credentials; these only have to be the same everywhere
ADMIN_CREDENTIALS = "admin-credentials.txt"
# Settings a developer's shell may hold that must not leak into the cluster's processes.
HEARTH_ENV_PREFIXES = (
    "APP_ENV",
    "DATABASE_URL",
    "REDIS_",
    "SECRET_KEY",
    "JWT_",
    "PUBLIC_URL",
    "TRUSTED_",
    "STORAGE_",
    "S3_",
    "SMTP_URL",
    "MAIL_FROM",
    "DEV_MAIL_DIR",
    "JOBS_",
    "CACHE_",
    "RATE_LIMIT",
    "WEB_CONCURRENCY",
    "GUNICORN_",
    "PROMETHEUS_MULTIPROC_DIR",
    "PORT",
    "ADMIN_",
    "LOG_LEVEL",
    "SENTRY_",
    "METRICS_TOKEN",
    "PASSWORD_HASH_",
    "FLASK_",
)


class ClusterError(RuntimeError):
    """A part of the cluster did not start or stop; the message names its log file."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now (the kernel's pick)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _ipv6_loopback_free(port: int) -> bool:
    """Whether [::1]:port can be listened on (IPv6 may be disabled on the host)."""
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(("::1", port))
    except OSError:
        return False
    return True


def _port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _http_status(url: str, timeout: float = 2.0) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310  (our own loopback URL)
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except (urllib.error.URLError, OSError):
        return None


def nginx_binary() -> str:
    """Debian's nginx (`make nginx-package` installs it)."""
    found = shutil.which("nginx")
    if found:
        return found
    for candidate in NGINX_CANDIDATES:
        if os.access(candidate, os.X_OK):
            return candidate
    raise ClusterError("nginx is not installed: run `make nginx-package` (Debian's nginx package)")


def _default_workdir() -> Path:
    return Path(tempfile.mkdtemp(prefix="hearth-cluster-"))


def _default_prefix() -> str:
    return f"hearth-cluster-{uuid.uuid4().hex[:8]}"


@dataclass
class ClusterConfig:
    """What to start; every default is safe to run next to other clusters on the same machine."""

    port: int = 8080  # nginx on 127.0.0.1:port (and [::1]); 0: a free port
    instances: int = 2
    web_workers: int = 2  # WEB_CONCURRENCY per gunicorn instance
    web_threads: int = 4  # GUNICORN_THREADS
    database: str = "hearth_cluster"  # created if missing, then migrated
    postgres_url: str = "postgresql://postgres@127.0.0.1:5432"  # the server, without a database
    redis_url: str = "redis://127.0.0.1:6379/0"
    # Unique by default: huey queues and caches are keyed by it, and two clusters sharing one
    # would take each other's jobs.
    redis_prefix: str = field(default_factory=_default_prefix)
    workdir: Path = field(default_factory=_default_workdir)
    private_services: bool = False  # own redis-server and PostgreSQL (for drills that stop them)
    smtp: bool = True  # an aiosmtpd sink that records what it receives
    env: dict[str, str] = field(default_factory=dict)  # extra env for every Hearth process
    # Additions to the plan's API.
    queues: tuple[str, ...] = QUEUES  # consumers started per instance
    drop_database: bool = False  # DROP DATABASE at stop() (only one the harness created)
    ensure_shared_services: bool = True  # start the machine's PostgreSQL/Redis if they are down
    sign_in_rate: str = "2r/s"  # nginx's per-client sign-in limit (limit_req_zone rate)
    sign_in_burst: int = 5
    ipv6: bool = True  # also listen on [::1]:port when the host has IPv6 loopback
    # When an admin existed before and its password is not in workdir/admin-credentials.txt,
    # seed one more of the cluster's own (so admin_password is always known); False: leave
    # admin_email/admin_password empty, as `make run` does.
    extra_admin: bool = True
    gunicorn_config: Path = ROOT / "gunicorn.conf.py"  # the web instances' `gunicorn -c` file


@dataclass
class _Process:
    """One started process (its own session), its command, environment and log file."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log: Path
    user: str | None = None
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            out.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} starting: {' '.join(self.argv)}\n".encode())
            out.flush()
            self.popen = subprocess.Popen(  # noqa: S603  (our own commands)
                self.argv,
                cwd=ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: signals hit exactly it
                user=self.user,
                group=self.user,
                extra_groups=[] if self.user else None,
            )

    @property
    def pid(self) -> int:
        if self.popen is None:
            raise ClusterError(f"{self.name} was never started")
        return self.popen.pid

    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def send(self, sig: int, group: bool = False) -> None:
        """Send `sig` to the process (or its whole process group)."""
        if not self.running():
            return
        with contextlib.suppress(ProcessLookupError):
            if group:
                os.killpg(self.pid, sig)
            else:
                os.kill(self.pid, sig)

    def wait(self, timeout: float) -> bool:
        if self.popen is None:
            return True
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        return True

    def stop(self, sig: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT) -> None:
        """`sig` to the process, SIGKILL to its group after `timeout`; then reap the group."""
        if self.popen is None:
            return
        if self.running():
            # A frozen process (SIGSTOP) would never act on the signal.
            self.send(signal.SIGCONT, group=True)
            self.send(sig)
        self.finish(timeout)

    def finish(self, timeout: float) -> None:
        """Wait up to `timeout` for a process already told to stop, without signalling it again
        (a second SIGTERM makes a huey consumer drop its running jobs), then SIGKILL its group."""
        if self.popen is None:
            return
        if self.running() and not self.wait(timeout):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)
            self.wait(5)
        # Children left behind (a gunicorn worker whose master was SIGKILLed) are in its group.
        # Once the group is empty its number may belong to someone else's new group: only while
        # no live process has that number (ours is reaped) can the group be nothing but ours.
        if not Path(f"/proc/{self.pid}").exists():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signal.SIGKILL)

    def log_contains(self, text: str, since: int = 0) -> bool:
        try:
            with self.log.open("rb") as handle:
                handle.seek(since)
                return text.encode() in handle.read()
        except OSError:
            return False

    def log_size(self) -> int:
        try:
            return self.log.stat().st_size
        except OSError:
            return 0


class _SmtpSink:
    """aiosmtpd on loopback, in a thread of this process, keeping every message it receives."""

    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []
        self.lock = threading.Lock()
        self.port = free_port()
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802  (aiosmtpd's name)
        message = email.message_from_bytes(envelope.original_content or envelope.content, policy=email.policy.default)
        with self.lock:
            self.messages.append(message)  # type: ignore[arg-type]
        return "250 OK"

    def start(self) -> None:
        self.controller.start()

    def stop(self) -> None:
        with contextlib.suppress(Exception):  # already stopped: nothing to do
            self.controller.stop()


class Cluster:
    """Start with `start()` (or `with Cluster(config) as cluster:`), stop with `stop()`."""

    def __init__(self, config: ClusterConfig | None = None):
        self.config = config or ClusterConfig()
        self.workdir = Path(self.config.workdir).resolve()
        self.logs = self.workdir / "logs"
        self.port = self.config.port or free_port()
        self.url = f"http://localhost:{self.port}"
        self.web_ports = [free_port() for _ in range(self.config.instances)]
        self.instance_urls = [f"http://127.0.0.1:{port}" for port in self.web_ports]
        self.redis_prefix = self.config.redis_prefix
        self.admin_email = ""
        self.admin_password = ""
        self.admin_credentials_file = self.workdir / ADMIN_CREDENTIALS
        self.secret_key = secrets.token_urlsafe(48)
        self.jwt_secret = secrets.token_urlsafe(48)
        self.s3_port = free_port()
        self.s3_endpoint = f"http://127.0.0.1:{self.s3_port}"
        self.s3_bucket = S3_BUCKET
        self._smtp: _SmtpSink | None = None
        self._web: list[_Process] = []
        self._consumers: dict[tuple[str, int], _Process] = {}
        self._nginx: _Process | None = None
        self._s3: _Process | None = None
        self._redis: _Process | None = None
        self._postgres: _Process | None = None
        self._postgres_dir: Path | None = None
        self._database_created = False
        self._started = False
        self._drained: set[int] = set()
        self.redis_port: int | None = None
        self.postgres_port: int | None = None
        if self.config.private_services:
            self.redis_port = free_port()
            self.postgres_port = free_port()
            self.redis_url = f"redis://127.0.0.1:{self.redis_port}/0"
            self.postgres_url = f"postgresql://postgres@127.0.0.1:{self.postgres_port}"
        else:
            self.redis_url = self.config.redis_url
            self.postgres_url = self.config.postgres_url.rstrip("/")
        self.database_dsn = f"{self.postgres_url}/{self.config.database}"  # for psycopg
        self.database_url = "postgresql+psycopg" + self.database_dsn[len("postgresql") :]  # for SQLAlchemy

    # Context manager -------------------------------------------------------------------------

    def __enter__(self) -> Cluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # Start and stop ----------------------------------------------------------------------------

    def start(self) -> None:
        """Start everything and wait until it is ready; on any failure stop what started."""
        for directory in (self.workdir, self.logs, self.workdir / "nginx" / "tmp"):
            directory.mkdir(parents=True, exist_ok=True)
        if _port_open(self.port):
            raise ClusterError(f"port {self.port} is in use: choose another (--port / PORT=)")
        self._started = True
        try:
            self._start_services()
            self._prepare_database()
            self._seed_admin()
            for index in range(self.config.instances):
                self.start_web(index, wait=False)
            for index in range(self.config.instances):
                for queue in self.config.queues:
                    self.start_consumer(queue, index, wait=False)
            for index in range(self.config.instances):
                self.wait_web_ready(index)
            for index in range(self.config.instances):
                for queue in self.config.queues:
                    self.wait_consumer_ready(queue, index)
            self._start_nginx()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Graceful stop of everything started (nginx first, then web and consumers together, then
        S3, SMTP and private services); SIGKILL whatever is left after STOP_TIMEOUT s. Safe to call twice."""
        if not self._started:
            return
        # `_started` stays set until the end: a stop interrupted halfway (Ctrl-C while a failed
        # start cleans up) is finished by the next call; every step is safe to repeat.
        if self._nginx is not None:
            self._nginx.stop(signal.SIGQUIT, 5)  # SIGQUIT: nginx's graceful shutdown
        group = [*self._web, *self._consumers.values()]
        for process in group:  # all at once: each may take its graceful time
            if process.running():
                process.send(signal.SIGCONT, group=True)
                process.send(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        for process in group:
            process.finish(max(0.1, deadline - time.monotonic()))
        if self._s3 is not None:
            self._s3.stop(signal.SIGTERM, 5)
        if self._smtp is not None:
            self._smtp.stop()
        if self.config.drop_database and self._database_created and self._postgres_ready():
            with contextlib.suppress(Exception):  # best effort: the database may be gone already
                self._admin_execute(f'DROP DATABASE IF EXISTS "{self.config.database}" WITH (FORCE)')
        if self._redis is not None:
            self._redis.stop(signal.SIGTERM, 5)
        if self._postgres is not None:
            self._postgres.stop(signal.SIGINT, STOP_TIMEOUT)  # SIGINT: PostgreSQL's fast shutdown
        if self._postgres_dir is not None:
            shutil.rmtree(self._postgres_dir, ignore_errors=True)
        self._started = False

    # Environment -------------------------------------------------------------------------------

    def hearth_env(self) -> dict[str, str]:
        """The environment every Hearth process (web, consumer, flask command) runs with."""
        env = {key: value for key, value in os.environ.items() if not key.startswith(HEARTH_ENV_PREFIXES)}
        env.update(
            {
                "APP_ENV": "development",
                "PUBLIC_URL": self.url,
                "TRUSTED_PROXIES": "1",
                "DATABASE_URL": self.database_dsn,
                "REDIS_URL": self.redis_url,
                "REDIS_PREFIX": self.redis_prefix,
                "SECRET_KEY": self.secret_key,
                "JWT_SECRET": self.jwt_secret,
                "STORAGE_BACKEND": "s3",
                "S3_BUCKET": self.s3_bucket,
                "S3_ENDPOINT_URL": self.s3_endpoint,
                "S3_REGION": "us-east-1",
                "S3_ACCESS_KEY_ID": S3_KEY,
                "S3_SECRET_ACCESS_KEY": S3_KEY,
                "WEB_CONCURRENCY": str(self.config.web_workers),
                "GUNICORN_THREADS": str(self.config.web_threads),
                "LOG_LEVEL": "INFO",
                "FLASK_APP": "wsgi",
                "PYTHONUNBUFFERED": "1",
                # Never the repository's instance/ for queues: there are none with Redis, but be sure.
                "JOBS_SQLITE_DIR": str(self.workdir / "huey"),
                # /dev/mail's copies (development) stay with this cluster, not in the repo's instance/.
                "DEV_MAIL_DIR": str(self.workdir / "mail"),
            }
        )
        if self._smtp is not None:
            env["SMTP_URL"] = f"smtp://127.0.0.1:{self._smtp.port}"
        env.update(self.config.env)
        return env

    def log_path(self, name: str) -> Path:
        """`web0`, `consumer-emails-1`, `nginx`, `s3`, `redis`, `postgres`, `migrate`, `seed-admin`.
        nginx's own errors are in `nginx-error`."""
        return self.logs / f"{name}.log"

    # Services ----------------------------------------------------------------------------------

    def _start_services(self) -> None:
        if self.config.private_services:
            self._start_private_redis()
            self._start_private_postgres()
        elif self.config.ensure_shared_services:
            self._ensure_shared_services()
        self._start_s3()
        if self.config.smtp:
            self._smtp = _SmtpSink()
            self._smtp.start()

    def _ensure_shared_services(self) -> None:
        """The machine's PostgreSQL and Redis, started (never stopped) as docs/environment says."""
        host = self.postgres_url.rsplit("@", 1)[-1].split("/")[0]
        pg_host, _, pg_port = host.partition(":")
        if pg_host in ("127.0.0.1", "localhost") and not self._postgres_ready():
            versions = sorted(os.listdir("/etc/postgresql")) if os.path.isdir("/etc/postgresql") else []
            if versions:
                subprocess.run(  # noqa: S603
                    ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main", "start"],  # noqa: S607
                    check=False,
                    capture_output=True,
                )
            self._wait(self._postgres_ready, f"PostgreSQL on {host}", "postgres")
        redis_host = self.redis_url.split("//", 1)[-1].split("/")[0].rsplit("@", 1)[-1]
        r_host, _, r_port = redis_host.partition(":")
        if r_host in ("127.0.0.1", "localhost") and not _port_open(int(r_port or 6379)):
            subprocess.run(  # noqa: S603
                [  # noqa: S607
                    "redis-server",
                    "--daemonize",
                    "yes",
                    "--bind",
                    "127.0.0.1",
                    "--port",
                    r_port or "6379",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ],
                check=False,
                capture_output=True,
            )
            self._wait(lambda: _port_open(int(r_port or 6379)), f"Redis on {redis_host}", "redis")
        del pg_port

    def _start_private_redis(self) -> None:
        self._redis = _Process(
            "redis",
            [
                "redis-server",
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.redis_port),
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            dict(os.environ),
            self.log_path("redis"),
        )
        self.redis_start()

    def _start_private_postgres(self) -> None:
        # Its own directory under /tmp, not in the workdir: PostgreSQL runs as user postgres,
        # which cannot enter a root-only workdir (pytest's tmp_path is mode 0700).
        self._postgres_dir = Path(tempfile.mkdtemp(prefix="hearth-cluster-pg-"))
        data = self._postgres_dir / "data"
        shutil.chown(self._postgres_dir, "postgres", "postgres")
        env = {**os.environ, "HOME": str(self._postgres_dir), "LC_ALL": "C.UTF-8"}
        result = subprocess.run(  # noqa: S603
            [str(POSTGRES_BIN / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8"],
            user="postgres",
            group="postgres",
            extra_groups=[],
            env=env,
            cwd=self._postgres_dir,
            capture_output=True,
            text=True,
            check=False,
        )
        self.log_path("postgres").write_text(result.stdout + result.stderr)
        if result.returncode != 0:
            raise ClusterError(f"initdb failed: see {self.log_path('postgres')}")
        self._postgres = _Process(
            "postgres",
            [
                str(POSTGRES_BIN / "postgres"),
                "-D",
                str(data),
                "-p",
                str(self.postgres_port),
                "-k",
                str(self._postgres_dir),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",  # a throwaway cluster: durability against power loss is not the point
                "-c",
                "max_connections=200",
            ],
            env,
            self.log_path("postgres"),
            user="postgres",
        )
        self.postgres_start()

    def _postgres_ready(self) -> bool:
        try:
            with psycopg.connect(f"{self.postgres_url}/postgres", connect_timeout=2) as connection:
                connection.execute("SELECT 1")
        except psycopg.Error:
            return False
        return True

    def _admin_execute(self, statement: str, params: tuple[Any, ...] = ()) -> list[Any]:
        """One statement on the server's `postgres` database (CREATE/DROP DATABASE need autocommit)."""
        with psycopg.connect(f"{self.postgres_url}/postgres", autocommit=True, connect_timeout=5) as connection:
            cursor = connection.execute(statement, params)  # type: ignore[arg-type]
            return cursor.fetchall() if cursor.description else []

    def _start_s3(self) -> None:
        self._s3 = _Process(
            "s3",
            [sys.executable, "-m", "cluster.s3", str(self.s3_port)],
            {**os.environ, "PYTHONUNBUFFERED": "1"},
            self.log_path("s3"),
        )
        self.s3_start()
        client = boto3.client(
            "s3",
            endpoint_url=self.s3_endpoint,
            region_name="us-east-1",
            aws_access_key_id=S3_KEY,
            aws_secret_access_key=S3_KEY,
        )
        client.create_bucket(Bucket=self.s3_bucket)

    # Service faults (drills) ---------------------------------------------------------------------

    def _private(self, process: _Process | None, what: str) -> _Process:
        if process is None:
            raise ClusterError(f"{what} is the machine's shared one: start the cluster with private_services=True")
        return process

    def redis_stop(self, sig: int = signal.SIGKILL) -> None:
        """Kill the private redis-server (SIGKILL by default: gone at once, like a crash)."""
        self._private(self._redis, "Redis").stop(sig, 5)

    def redis_start(self) -> None:
        redis = self._private(self._redis, "Redis")
        if redis.running():
            return
        redis.start()
        self._wait(lambda: _port_open(self.redis_port or 0), "Redis", "redis")

    def redis_freeze(self) -> None:
        """SIGSTOP: connections are accepted by the kernel but nothing answers."""
        self._private(self._redis, "Redis").send(signal.SIGSTOP)

    def redis_thaw(self) -> None:
        self._private(self._redis, "Redis").send(signal.SIGCONT)

    def postgres_stop(self) -> None:
        """Fast shutdown of the private PostgreSQL (sessions are ended, new ones refused)."""
        self._private(self._postgres, "PostgreSQL").stop(signal.SIGINT, STOP_TIMEOUT)

    def postgres_start(self) -> None:
        postgres = self._private(self._postgres, "PostgreSQL")
        if postgres.running():
            return
        postgres.start()
        self._wait(self._postgres_ready, "PostgreSQL", "postgres")

    def s3_stop(self) -> None:
        """Close S3's port (connection refused); objects are kept for s3_start()."""
        s3 = self._s3
        if s3 is None or not s3.running():
            return
        s3.send(signal.SIGUSR1)
        self._wait(lambda: not _port_open(self.s3_port), "S3 to close", "s3")

    def s3_start(self) -> None:
        s3 = self._s3
        if s3 is None:
            raise ClusterError("S3 was never set up")
        if not s3.running():
            s3.start()
        elif not _port_open(self.s3_port):
            s3.send(signal.SIGUSR2)
        self._wait(lambda: _port_open(self.s3_port), "S3 (moto)", "s3")

    # Database and admin --------------------------------------------------------------------------

    def _prepare_database(self) -> None:
        name = self.config.database
        if not name.replace("_", "").isalnum():
            raise ClusterError(f"database name {name!r}: letters, digits and _ only")
        exists = self._admin_execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
        if not exists:
            self._admin_execute(f'CREATE DATABASE "{name}"')
            self._database_created = True
        self._flask("migrate", "db", "upgrade")

    def _flask(self, log_name: str, *args: str, env: dict[str, str] | None = None) -> None:
        """Run `flask --app wsgi <args>` to completion with the cluster's environment."""
        log = self.log_path(log_name)
        with log.open("ab") as out:
            result = subprocess.run(  # noqa: S603
                [str(BIN / "flask"), "--app", "wsgi", *args],
                cwd=ROOT,
                env={**self.hearth_env(), **(env or {})},
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=300,
                check=False,
            )
        if result.returncode != 0:
            raise ClusterError(f"`flask {' '.join(args)}` failed (exit {result.returncode}): see {log}")

    def _seed_admin(self) -> None:
        """The first administrator, as `make run` makes it; when one existed before and its
        password is not in the workdir's credentials file, one more admin of the cluster's own."""
        path = self.workdir / ADMIN_CREDENTIALS
        self._flask("seed-admin", "seed-admin", "--credentials-file", str(path))
        credentials = read_admin_credentials(path)
        if credentials is None and self.config.extra_admin:
            email_address = f"cluster-admin-{uuid.uuid4().hex[:8]}@example.com"
            password = secrets.token_urlsafe(18)
            self._flask("seed-admin", "seed-admin", env={"ADMIN_EMAIL": email_address, "ADMIN_PASSWORD": password})
            write_admin_credentials(path, AdminCredentials(email_address, password))
            credentials = read_admin_credentials(path)
        self.admin_credentials_file = path
        if credentials is None:
            if self.config.extra_admin:
                raise ClusterError(f"no admin credentials in {path}")
            return
        self.admin_email, self.admin_password = credentials.email, credentials.password

    # Web instances -------------------------------------------------------------------------------

    def _web_process(self, index: int) -> _Process:
        while len(self._web) <= index:
            i = len(self._web)
            metrics = self.workdir / f"metrics-{i}"
            env = {
                **self.hearth_env(),
                "GUNICORN_BIND": f"127.0.0.1:{self.web_ports[i]}",
                "PROMETHEUS_MULTIPROC_DIR": str(metrics),
            }
            # gunicorn (>= 25.1) opens a control socket for `gunicornc` at ~/.gunicorn/gunicorn.ctl
            # by default: one path for every instance on the machine, each taking it from the
            # previous one. Each instance gets its own (a Unix socket path has ~107 bytes at most).
            control = self.workdir / f"web{i}.ctl"
            control_args = ["--control-socket", str(control)] if len(str(control)) < 100 else ["--no-control-socket"]
            self._web.append(
                _Process(
                    f"web{i}",
                    [str(BIN / "gunicorn"), "-c", str(self.config.gunicorn_config), *control_args, "wsgi:app"],
                    env,
                    self.log_path(f"web{i}"),
                )
            )
        return self._web[index]

    def start_web(self, i: int, wait: bool = True) -> None:
        """(Re)start web instance `i` on its port; `wait`: until /health/ready answers 200."""
        process = self._web_process(i)
        if process.running():
            raise ClusterError(f"web{i} is running (pid {process.pid})")
        metrics = Path(process.env["PROMETHEUS_MULTIPROC_DIR"])
        shutil.rmtree(metrics, ignore_errors=True)  # empty before every start (prometheus_client)
        metrics.mkdir(parents=True)
        process.start()
        if wait:
            self.wait_web_ready(i)

    def wait_web_ready(self, i: int, timeout: float = START_TIMEOUT) -> None:
        process = self._web[i]
        url = f"{self.instance_urls[i]}/health/ready"

        def ready() -> bool:
            if not process.running():
                raise ClusterError(f"web{i} exited (code {process.popen.returncode}): see {process.log}")
            return _http_status(url) == 200

        self._wait(ready, f"web{i} ({url})", f"web{i}", timeout)

    def web_pid(self, i: int) -> int:
        """The gunicorn master's pid of instance `i`."""
        return self._web[i].pid

    def web_running(self, i: int) -> bool:
        return self._web[i].running()

    def signal_web(self, i: int, sig: int) -> None:
        """`sig` to instance `i`'s gunicorn master (SIGKILL: to its workers too, as a crash
        of the whole instance would be; the master alone would leave them serving)."""
        self._web[i].send(sig, group=sig == signal.SIGKILL)

    def stop_web(self, i: int, timeout: float = STOP_TIMEOUT) -> None:
        """SIGTERM (graceful) and wait for the instance to exit; SIGKILL after `timeout`."""
        self._web[i].stop(signal.SIGTERM, timeout)

    def drain_web(self, i: int) -> None:
        """Take instance `i` out of nginx's rotation (`down`, then a graceful nginx reload):
        step one of a rolling restart. Requests it is serving finish."""
        self._drained.add(i)
        self._reload_nginx()

    def undrain_web(self, i: int) -> None:
        self._drained.discard(i)
        self._reload_nginx()

    def rolling_restart(self, timeout: float = STOP_TIMEOUT) -> None:
        """Each instance in turn: drain, SIGTERM, start, wait ready, undrain (docs: no error)."""
        for i in range(self.config.instances):
            self.drain_web(i)
            self.stop_web(i, timeout)
            self.start_web(i)
            self.undrain_web(i)

    # Consumers -----------------------------------------------------------------------------------

    def _consumer_process(self, queue: str, i: int) -> _Process:
        key = (queue, i)
        if key not in self._consumers:
            name = f"consumer-{queue}-{i}"
            self._consumers[key] = _Process(
                name, [str(BIN / "flask"), "--app", "wsgi", "worker", queue], self.hearth_env(), self.log_path(name)
            )
        return self._consumers[key]

    def start_consumer(self, queue: str, i: int, wait: bool = True) -> None:
        """(Re)start the consumer of `queue` of instance `i`; `wait`: until it logged worker_starting."""
        process = self._consumer_process(queue, i)
        if process.running():
            raise ClusterError(f"{process.name} is running (pid {process.pid})")
        process.log_offset = process.log_size()  # type: ignore[attr-defined]
        process.start()
        if wait:
            self.wait_consumer_ready(queue, i)

    def wait_consumer_ready(self, queue: str, i: int, timeout: float = START_TIMEOUT) -> None:
        process = self._consumers[(queue, i)]
        since = getattr(process, "log_offset", 0)

        def ready() -> bool:
            if not process.running():
                raise ClusterError(f"{process.name} exited (code {process.popen.returncode}): see {process.log}")
            return process.log_contains("worker_starting", since)

        self._wait(ready, process.name, process.name, timeout)

    def consumer_pid(self, queue: str, i: int) -> int:
        return self._consumers[(queue, i)].pid

    def consumer_running(self, queue: str, i: int) -> bool:
        return self._consumers[(queue, i)].running()

    def signal_consumer(self, queue: str, i: int, sig: int) -> None:
        """`sig` to the consumer process (SIGKILL: with any child it started, e.g. an upload's
        sandboxed decoder)."""
        self._consumers[(queue, i)].send(sig, group=sig == signal.SIGKILL)

    def wait_exit(self, name: str, timeout: float = STOP_TIMEOUT) -> bool:
        """Wait for process `name` (`web0`, `consumer-emails-1`) to exit; True if it did."""
        for process in [*self._web, *self._consumers.values()]:
            if process.name == name:
                return process.wait(timeout)
        raise ClusterError(f"no process {name!r}")

    # nginx ---------------------------------------------------------------------------------------

    def render_nginx_conf(self) -> str:
        """cluster/nginx.conf with this cluster's ports and paths."""
        listen = [f"listen 127.0.0.1:{self.port};"]
        if self.config.ipv6 and (self._ipv6 if hasattr(self, "_ipv6") else _ipv6_loopback_free(self.port)):
            self._ipv6 = True
            listen.append(f"listen [::1]:{self.port};")
        else:
            self._ipv6 = False
        upstreams = [
            f"server 127.0.0.1:{port} max_fails=1 fail_timeout=2s{' down' if i in self._drained else ''};"
            for i, port in enumerate(self.web_ports)
        ]
        prefix = self.workdir / "nginx"
        values = {
            "user_line": "user root root;" if os.geteuid() == 0 else "# (not root: workers run as this user)",
            "prefix": str(prefix),
            "logs": str(self.logs),
            "upstreams": "\n        ".join(upstreams),
            "listen_lines": "\n        ".join(listen),
            "server_name": "localhost",
            "public": str(self.workdir / "public"),
            "sign_in_rate": self.config.sign_in_rate,
            "sign_in_burst": str(self.config.sign_in_burst),
        }
        return render_template(NGINX_TEMPLATE.read_text(), values)

    def _write_nginx_conf(self) -> Path:
        path = self.workdir / "nginx" / "nginx.conf"
        for sub in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (self.workdir / "nginx" / "tmp" / sub).mkdir(parents=True, exist_ok=True)
        path.write_text(self.render_nginx_conf())
        return path

    def _start_nginx(self) -> None:
        collect_static(self.workdir / "public" / "static")
        conf = self._write_nginx_conf()
        binary = nginx_binary()
        prefix = str(self.workdir / "nginx")
        error_log = str(self.logs / "nginx-error.log")
        check = subprocess.run(  # noqa: S603
            [binary, "-t", "-q", "-p", prefix, "-e", error_log, "-c", str(conf)],
            capture_output=True,
            text=True,
            check=False,
        )
        if check.returncode != 0:
            raise ClusterError(f"nginx -t failed: {check.stderr.strip()} (config {conf})")
        self._nginx = _Process(
            "nginx",
            [binary, "-p", prefix, "-e", error_log, "-c", str(conf), "-g", "daemon off;"],
            dict(os.environ),
            self.log_path("nginx"),
        )
        self._nginx.start()
        url = f"http://127.0.0.1:{self.port}/health/live"

        def answering() -> bool:
            if not self._nginx.running():
                raise ClusterError(f"nginx exited: see {self.logs / 'nginx-error.log'} and {self._nginx.log}")
            return _http_status(url) == 200

        self._wait(answering, f"nginx ({url})", "nginx")

    def _reload_nginx(self) -> None:
        """New config, then SIGHUP: nginx starts new workers with it; old ones finish their requests."""
        self._write_nginx_conf()
        if self._nginx is not None and self._nginx.running():
            self._nginx.send(signal.SIGHUP)
            time.sleep(0.5)  # the new workers take over within milliseconds; be generous

    def nginx_pid(self) -> int:
        if self._nginx is None:
            raise ClusterError("nginx is not started")
        return self._nginx.pid

    # SMTP ----------------------------------------------------------------------------------------

    def smtp_messages(self) -> list[email.message.EmailMessage]:
        """Every message the sink received so far (oldest first)."""
        if self._smtp is None:
            return []
        with self._smtp.lock:
            return list(self._smtp.messages)

    def smtp_clear(self) -> None:
        if self._smtp is not None:
            with self._smtp.lock:
                self._smtp.messages.clear()

    # Introspection -------------------------------------------------------------------------------

    def processes(self) -> Iterator[tuple[str, int | None, str]]:
        """(name, pid or None, what it is) for the box `make cluster` prints."""
        if self._nginx is not None:
            yield "nginx", self._nginx.pid if self._nginx.running() else None, f"{self.url} → web instances"
        for i, process in enumerate(self._web):
            yield process.name, process.pid if process.running() else None, f"gunicorn {self.instance_urls[i]}"
        for process in self._consumers.values():
            yield process.name, process.pid if process.running() else None, "huey consumer"
        if self._s3 is not None:
            yield "s3", self._s3.pid if self._s3.running() else None, f"moto {self.s3_endpoint}"
        if self._smtp is not None:
            yield "smtp", os.getpid(), f"aiosmtpd sink smtp://127.0.0.1:{self._smtp.port} (this process)"
        if self._redis is not None:
            yield "redis", self._redis.pid if self._redis.running() else None, self.redis_url
        if self._postgres is not None:
            yield "postgres", self._postgres.pid if self._postgres.running() else None, self.postgres_url

    # Helpers -------------------------------------------------------------------------------------

    def _wait(self, condition: Any, what: str, log_name: str, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return
            time.sleep(0.1)
        raise ClusterError(f"{what} not ready after {timeout:.0f} s: see {self.log_path(log_name)}")


def render_template(template: str, values: dict[str, str]) -> str:
    """Replace every `{{ name }}` of `template`; a name without a value is an error."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise ClusterError(f"nginx template: no value for {{{{ {name} }}}}")
        return values[name]

    return re.sub(r"\{\{\s*(\w+)\s*\}\}", value, template)
