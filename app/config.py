"""Typed, fail-fast configuration (docs/architecture.md §12).

One `Settings` class reads the environment (and `.env`); every other module reads from it.
A bad or missing value raises `ConfigError`, a `SystemExit` whose message names every
offending variable, so any entry point (gunicorn, `flask`, huey workers) stops with a
non-zero exit code and one readable message instead of a stack trace.
"""

from __future__ import annotations

import json
import os
import secrets
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent
INSTANCE_PATH = PROJECT_ROOT / "instance"
SECRET_FIELDS = ("secret_key", "jwt_secret")
MIN_SECRET_LENGTH = 32
# argon2id's cost by default (app.users.passwords): RFC 9106's low-memory profile, which is
# argon2-cffi's own default. DUMMY_HASH is precomputed for exactly these.
DEFAULT_PASSWORD_HASH_TIME_COST = 3
DEFAULT_PASSWORD_HASH_MEMORY_KIB = 64 * 1024
DEFAULT_PASSWORD_HASH_PARALLELISM = 4
# OWASP's minimum argon2id memory (KiB) for each number of passes (5 or more: the last),
# refused below outside development/test (Password Storage Cheat Sheet).
OWASP_ARGON2_MIN_MEMORY_KIB = {1: 47104, 2: 19456, 3: 12288, 4: 9216, 5: 7168}


class AppEnv(StrEnum):
    development = "development"
    staging = "staging"
    production = "production"
    test = "test"


class StorageBackend(StrEnum):
    local = "local"
    s3 = "s3"


class ConfigError(SystemExit):
    """Raised when the configuration is invalid: exits with code 1, one message, no traceback."""

    def __init__(self, problems: list[tuple[str, str]]):
        self.problems = problems
        lines = [f"  {name}: {reason}" for name, reason in problems]
        message = "Hearth cannot start, the configuration is invalid:\n" + "\n".join(lines)
        super().__init__(message)
        self.code = message  # SystemExit prints a string code to stderr and exits 1

    def __str__(self) -> str:
        return str(self.code)


def _is_relaxed(info: ValidationInfo) -> bool:
    """Development and test may run without hand-made secrets or services."""
    return info.data.get("app_env") in (AppEnv.development, AppEnv.test)


def _split_csv(value: Any) -> Any:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class Settings(BaseSettings):
    """Every setting Hearth reads. Field order matters: later validators look at `app_env`."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False)

    app_env: AppEnv = AppEnv.development
    port: int = Field(default=5000, ge=1, le=65535)
    database_url: str | None = None
    redis_url: str | None = None
    redis_prefix: str = Field(default="hearth", pattern=r"^[A-Za-z0-9_.:-]{1,64}$")
    redis_timeout_seconds: float = Field(default=0.25, gt=0, le=10)
    secret_key: str | None = None
    jwt_secret: str | None = None
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    log_level: str = "INFO"
    # Where people reach Hearth (scheme, host, optional port and path prefix). Every link in
    # emails, webhooks and exports is built from it, never from the request's Host header.
    public_url: str | None = None
    # Host names requests may carry (a leading dot allows subdomains); default: PUBLIC_URL's
    # host, plus localhost in development/test. Others get 400 before any view runs.
    trusted_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    trusted_proxies: int = Field(default=0, ge=0, le=5)
    max_content_length: int = Field(default=2 * 1024 * 1024, ge=1024)
    rate_limit_default: str = "300 per minute"
    # How often each process sends its app-wide budget counts to Redis and reads everyone's
    # (app.core.ratelimit): other processes' requests are seen at most this late; 0 sends
    # every request's count at once (one Redis round trip per request).
    rate_limit_sync_ms: int = Field(default=100, ge=0, le=5000)
    storage_backend: StorageBackend = StorageBackend.local
    storage_local_path: str | None = None
    s3_bucket: str | None = None
    s3_endpoint_url: str | None = None
    s3_region: str = "us-east-1"
    # Unset: boto3's default credential chain (environment, instance profile, ...).
    s3_access_key_id: str | None = None
    s3_secret_access_key: str | None = None
    # Create the bucket if it is missing: development/test only, never in production.
    s3_create_bucket: bool = False
    upload_url_ttl_seconds: int = Field(default=900, ge=60, le=3600)
    upload_avatar_max_mb: float = Field(default=5, gt=0)
    upload_document_max_mb: float = Field(default=25, gt=0)
    upload_video_max_mb: float = Field(default=500, gt=0)
    upload_avatar_types: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["image/jpeg", "image/png", "image/webp", "image/gif"]
    )
    upload_document_types: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: [
            "application/pdf",
            "text/plain",
            "text/csv",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            "application/vnd.openxmlformats-officedocument.presentationml.presentation",
            "application/vnd.oasis.opendocument.text",
            "application/vnd.oasis.opendocument.spreadsheet",
        ]
    )
    upload_video_types: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["video/mp4", "video/webm", "video/quicktime"]
    )
    upload_quota_mb: float = Field(default=1024, gt=0, description="Per-user storage quota")
    # Images declaring more pixels are rejected from their header, before any decoding
    # (decompression bombs); 40 MP decodes in about 500 MB.
    upload_image_max_pixels: int = Field(default=40_000_000, ge=1_000_000)
    # Address-space limit of the child process that decodes one upload (app/uploads/sandbox.py).
    upload_processing_memory_mb: int = Field(default=1024, ge=256)
    # Exports (the `reports` queue): how long a finished file is kept, and how many exports
    # one user may have queued or running at once (more: 429 with Retry-After).
    export_retention_hours: int = Field(default=24, ge=1, le=24 * 30)
    export_max_concurrent_per_user: int = Field(default=2, ge=1, le=20)
    # Outbound webhooks (app/webhooks, docs/webhooks.md). Private targets: http:// URLs and
    # hosts resolving to loopback, private, link-local or metadata addresses. Unset: allowed in
    # development and test only (local receivers), refused in staging and production.
    webhook_allow_private_targets: bool | None = Field(default=None, validate_default=True)
    # An endpoint whose every delivery has failed for this long is disabled (its creator told).
    webhook_disable_after_hours: float = Field(default=24, gt=0, le=24 * 30)
    # Finished deliveries (and their log) are deleted this many days after they finished.
    webhook_delivery_retention_days: int = Field(default=30, ge=1, le=3650)
    # Seconds to connect, and for the whole attempt (connect, TLS, request, answer).
    webhook_connect_timeout: float = Field(default=3.0, gt=0, le=60)
    webhook_timeout: float = Field(default=10.0, gt=0, le=120)
    smtp_url: str | None = None
    # /dev/mail's copies (development only); a cluster on one machine gives each its own.
    dev_mail_dir: str | None = None
    mail_from: str = "Hearth <no-reply@localhost>"
    sentry_dsn: str | None = None
    sentry_traces_sample_rate: float = Field(default=0.0, ge=0, le=1)
    metrics_token: str | None = None
    jobs_immediate: bool = False
    jobs_sqlite_dir: str | None = None
    jobs_lease_seconds: float = Field(default=60.0, gt=0)
    jobs_queued_grace_seconds: float = Field(default=60.0, ge=0)
    # `flask worker` on SIGTERM (or SIGINT): stop taking jobs, give running ones this long to
    # finish, then exit (what is still running is re-run after its lease). Keep it below the
    # supervisor's kill timeout (Kubernetes: 30 s by default; systemd TimeoutStopSec: 90 s).
    jobs_shutdown_timeout_seconds: float = Field(default=25.0, ge=0, le=3600)
    jobs_backoff_base_seconds: float = Field(default=10.0, gt=0)
    jobs_backoff_max_seconds: float = Field(default=3600.0, gt=0)
    # Succeeded jobs are deleted this many days after they finished (failed ones stay: the dead letter).
    jobs_retention_days: int = Field(default=14, ge=1, le=3650)
    cache_default_timeout: int = Field(default=300, ge=1)
    # L1 (in-process) and L2 (Redis, or in-process when embedded) caching, docs/architecture.md §8.
    cache_enabled: bool = True
    cache_local_ttl_seconds: float = Field(default=30.0, gt=0, le=3600)
    # Benchmarks only: every read misses (the value is still computed and stored).
    cache_force_miss: bool = False
    jwt_issuer: str = "hearth"
    jwt_audience: str = "hearth-api"
    access_token_minutes: int = Field(default=15, ge=1, le=60)
    refresh_token_days: int = Field(default=30, ge=1, le=365)
    # Wrong passwords from one client lock that client out of that account; only this many
    # failures across all clients (a distributed attack) lock the account itself.
    login_lockout_threshold: int = Field(default=5, ge=1, le=100)
    login_account_lockout_threshold: int = Field(default=20, ge=2, le=10000)
    # argon2 hashes/verifications run at once per process (app.users.passwords); 0: the cores
    # shared among the gunicorn workers (WEB_CONCURRENCY), at least 1. The rest queue.
    password_hash_concurrency: int = Field(default=0, ge=0, le=64)
    # argon2 computations that may wait in line per process, beyond those running; more are
    # refused at once (503 + Retry-After), so a storm of sign-ins cannot hold every request thread.
    password_hash_queue: int = Field(default=1, ge=0, le=1024)
    # Added to the CPU niceness of the threads running argon2 (Linux), so requests arriving during
    # a storm of sign-ins are served first (19: the lowest priority, which still gets every idle
    # cycle); 0 runs them at the request threads' priority.
    password_hash_niceness: int = Field(default=19, ge=0, le=19)
    # argon2id's cost: passes, lanes (threads) and memory in KiB. New hashes use them, and a
    # hash made with other parameters is re-hashed at the next sign-in. Outside development/test
    # at least OWASP's minimum; tests use the cheapest argon2 allows (1 pass, 1 lane, 8 KiB).
    password_hash_time_cost: int = Field(default=DEFAULT_PASSWORD_HASH_TIME_COST, ge=1, le=100)
    password_hash_parallelism: int = Field(default=DEFAULT_PASSWORD_HASH_PARALLELISM, ge=1, le=64)
    password_hash_memory_kib: int = Field(default=DEFAULT_PASSWORD_HASH_MEMORY_KIB, ge=8, le=4 * 1024 * 1024)
    # gunicorn's worker processes (gunicorn.conf.py reads the same variable); None: its default.
    web_concurrency: int | None = Field(default=None, ge=1, le=1024)
    session_idle_minutes: int = Field(default=120, ge=5, le=60 * 24 * 7)
    session_absolute_hours: int = Field(default=24 * 7, ge=1, le=24 * 90)
    # Strong identity (docs/security.md). Holders of these roles must set up a second factor
    # (TOTP or a passkey) before any other page, and get no password-grant API tokens without
    # one. Unset: "admin" in staging and production, none in development and test.
    require_2fa_for_roles: Annotated[list[str] | None, NoDecode] = Field(default=None, validate_default=True)
    # Sensitive actions (roles, disabling users, API keys, 2FA off, webhooks, impersonation)
    # need a sign-in, password or second factor within this many minutes.
    fresh_auth_minutes: int = Field(default=10, ge=1, le=24 * 60)
    # WebAuthn relying party: its id is a registrable domain (the host of PUBLIC_URL by
    # default), its origin where the pages are served (PUBLIC_URL's origin by default).
    webauthn_rp_id: str | None = None
    webauthn_rp_name: str = "Hearth"
    webauthn_origin: str | None = None
    # Personal API keys: the longest lifetime a key may ask for, and each key's own rate limit.
    api_key_max_days: int = Field(default=365, ge=1, le=3650)
    api_key_rate_limit: str = "600 per minute"
    # "View as" (impersonation): how long an administrator may act as another user, read-only.
    impersonation_minutes: int = Field(default=15, ge=1, le=60)

    @field_validator("log_level")
    @classmethod
    def _known_log_level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
        return level

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _origins_from_csv(cls, value: Any) -> Any:
        origins = _split_csv(value)
        for origin in origins or []:
            parts = urlsplit(origin)
            if origin != "*" and (parts.scheme not in ("http", "https") or not parts.netloc or parts.path):
                raise ValueError(f"{origin!r} is not an origin like https://app.example.com")
        return origins

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str | None, info: ValidationInfo) -> str | None:
        if not value:
            if not _is_relaxed(info):
                raise ValueError("required outside development/test (https://hearth.example.com)")
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
            raise ValueError(f"{value!r} is not a URL like https://hearth.example.com")
        if parts.scheme != "https" and not _is_relaxed(info):
            raise ValueError("must be an https:// URL outside development/test")
        return value.rstrip("/")

    @field_validator("trusted_hosts", mode="before")
    @classmethod
    def _hosts_from_csv(cls, value: Any) -> Any:
        hosts = _split_csv(value)
        for host in hosts or []:
            if "/" in host or "@" in host or any(char.isspace() for char in host):
                raise ValueError(f"{host!r} is not a host name like hearth.example.com or .example.com")
        return [host.lower() for host in hosts] if isinstance(hosts, list) else hosts

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            if not _is_relaxed(info):
                raise ValueError("required outside development/test (a PostgreSQL URL)")
            return value
        scheme = urlsplit(value).scheme
        if not scheme.startswith(("sqlite", "postgresql", "postgres")):
            raise ValueError("must be a sqlite:// or postgresql:// URL")
        if scheme.startswith("sqlite") and not _is_relaxed(info):
            # Many web and worker processes on several hosts share one database in production.
            raise ValueError("must be a postgresql:// URL outside development/test")
        if scheme in ("postgres", "postgresql"):
            # SQLAlchemy defaults to psycopg2; Hearth ships psycopg 3.
            value = "postgresql+psycopg" + value[len(scheme) :]
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str | None, info: ValidationInfo) -> str | None:
        if not value:
            if not _is_relaxed(info):
                # Without Redis each process would keep its own limits and cache, and the
                # queues would be SQLite files on one host: not a production setup.
                raise ValueError("required outside development/test (cache, rate limits and job queues)")
            return None
        if urlsplit(value).scheme not in ("redis", "rediss", "unix"):
            raise ValueError("must be a redis://, rediss:// or unix:// URL")
        return value

    @field_validator("secret_key", "jwt_secret")
    @classmethod
    def _strong_secret(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            if not _is_relaxed(info):
                raise ValueError("required outside development/test")
            return value
        if len(value) < MIN_SECRET_LENGTH:
            raise ValueError(f"must be at least {MIN_SECRET_LENGTH} characters")
        return value

    @field_validator("rate_limit_default", "api_key_rate_limit")
    @classmethod
    def _parsable_limits(cls, value: str) -> str:
        from limits import parse_many

        try:
            parse_many(value)
        except ValueError as exc:
            raise ValueError(f"not a rate limit string like '300 per minute' ({exc})") from None
        return value

    @field_validator("upload_avatar_types", "upload_document_types", "upload_video_types", mode="before")
    @classmethod
    def _types_from_csv(cls, value: Any) -> Any:
        types = _split_csv(value)
        for item in types or []:
            if "/" not in item or item.startswith(("image/svg", "text/html")):
                raise ValueError(f"{item!r} is not an allowed MIME type (SVG and HTML are never accepted)")
        return types

    @field_validator("s3_create_bucket")
    @classmethod
    def _no_bucket_creation_in_production(cls, value: bool, info: ValidationInfo) -> bool:
        if value and not _is_relaxed(info):
            raise ValueError("only allowed in development/test; production buckets are provisioned, not created")
        return value

    @field_validator("s3_bucket")
    @classmethod
    def _bucket_for_s3(cls, value: str | None, info: ValidationInfo) -> str | None:
        if info.data.get("storage_backend") == StorageBackend.s3 and not value:
            raise ValueError("required when STORAGE_BACKEND=s3")
        return value

    @field_validator("smtp_url")
    @classmethod
    def _smtp_url(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            if not _is_relaxed(info):
                raise ValueError("required outside development/test (smtp://user:pass@host:587)")
            return value
        if urlsplit(value).scheme not in ("smtp", "smtps", "smtp+starttls"):
            raise ValueError("must be an smtp://, smtp+starttls:// or smtps:// URL")
        return value

    @field_validator("password_hash_memory_kib")
    @classmethod
    def _argon2_memory(cls, value: int, info: ValidationInfo) -> int:
        lanes = info.data.get("password_hash_parallelism")
        if lanes is not None and value < 8 * lanes:
            raise ValueError(f"argon2 needs at least 8 KiB per lane: {8 * lanes} for {lanes} lanes")
        passes = info.data.get("password_hash_time_cost")
        if passes is not None and not _is_relaxed(info):
            minimum = OWASP_ARGON2_MIN_MEMORY_KIB[min(passes, max(OWASP_ARGON2_MIN_MEMORY_KIB))]
            if value < minimum:
                raise ValueError(
                    f"below OWASP's minimum outside development/test: at least {minimum} KiB with "
                    f"PASSWORD_HASH_TIME_COST={passes}"
                )
        return value

    @field_validator("webhook_allow_private_targets")
    @classmethod
    def _private_webhook_targets(cls, value: bool | None, info: ValidationInfo) -> bool:
        return _is_relaxed(info) if value is None else value

    @field_validator("require_2fa_for_roles", mode="before")
    @classmethod
    def _roles_needing_2fa(cls, value: Any, info: ValidationInfo) -> list[str]:
        if value is None:
            return [] if _is_relaxed(info) else ["admin"]
        return _split_csv(value)

    @field_validator("metrics_token")
    @classmethod
    def _metrics_token(cls, value: str | None) -> str | None:
        if value is not None and len(value) < 16:
            raise ValueError("must be at least 16 characters")
        return value or None

    # Derived values -------------------------------------------------------------------

    @property
    def is_development(self) -> bool:
        return self.app_env == AppEnv.development

    @property
    def is_production_like(self) -> bool:
        return self.app_env in (AppEnv.staging, AppEnv.production)

    @property
    def public_base_url(self) -> str:
        """PUBLIC_URL, or the local development server when it is unset (development/test)."""
        return self.public_url or f"http://localhost:{self.port}"

    @property
    def allowed_hosts(self) -> list[str]:
        """TRUSTED_HOSTS, or PUBLIC_URL's host (plus loopback names in development/test)."""
        if self.trusted_hosts:
            return list(self.trusted_hosts)
        hosts = [urlsplit(self.public_base_url).hostname or "localhost"]
        if not self.is_production_like:
            hosts += ["localhost", "127.0.0.1", "[::1]"]
        return list(dict.fromkeys(hosts))

    @property
    def sqlalchemy_url(self) -> str:
        return self.database_url or f"sqlite:///{INSTANCE_PATH / 'hearth.db'}"

    @property
    def local_storage_root(self) -> Path:
        return Path(self.storage_local_path) if self.storage_local_path else INSTANCE_PATH / "storage"

    @property
    def dev_mailbox(self) -> Path:
        """Where development keeps a copy of every email for /dev/mail (DEV_MAIL_DIR)."""
        return Path(self.dev_mail_dir) if self.dev_mail_dir else INSTANCE_PATH / "mail"


def _dev_secrets(path: Path) -> dict[str, str]:
    """Secrets made once for development and kept under `instance/` (never committed)."""
    if path.exists():
        return json.loads(path.read_text())
    path.parent.mkdir(parents=True, exist_ok=True)
    generated = {name: secrets.token_urlsafe(48) for name in SECRET_FIELDS}
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(generated, handle)
    return generated


def _problems(error: ValidationError) -> list[tuple[str, str]]:
    problems = []
    for item in error.errors():
        name = str(item["loc"][0]).upper() if item["loc"] else "CONFIG"
        message = item["msg"].removeprefix("Value error, ")
        problems.append((name, message))
    return problems


def load_settings(overrides: dict[str, Any] | None = None) -> Settings:
    """Read and validate the configuration, raising `ConfigError` naming every bad variable."""
    overrides = dict(overrides or {})
    try:
        settings = Settings(**overrides)
    except ValidationError as error:
        raise ConfigError(_problems(error)) from None
    missing = [name for name in SECRET_FIELDS if getattr(settings, name) is None]
    if missing:
        # Only development/test get here (validators require secrets elsewhere).
        if settings.app_env == AppEnv.test:
            generated = {name: secrets.token_urlsafe(48) for name in missing}
        else:
            generated = _dev_secrets(INSTANCE_PATH / "secrets.json")
        settings = settings.model_copy(update={name: generated[name] for name in missing})
    return settings
