"""Structured JSON logging (seed §11) with structlog and orjson.

Every line is one JSON object on stdout. Context bound with `bind_contextvars` (request id,
job id) is merged into every line of that request or job, including lines from stdlib
loggers such as SQLAlchemy, huey and gunicorn. Keys that look like secrets are redacted
before rendering, whoever logged them.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import sys
from typing import IO, Any

import orjson
import structlog

SENSITIVE_KEYS = frozenset(
    {
        "password",
        "passwd",
        "secret",
        "token",
        "access_token",
        "refresh_token",
        "authorization",
        "cookie",
        "api_key",
        "jwt",
        "secret_key",
        "jwt_secret",
        "smtp_url",
        "csrf_token",
    }
)
REDACTED = "[redacted]"


def _scrub(mapping: dict[str, Any], depth: int = 0) -> dict[str, Any]:
    for key, value in mapping.items():
        if isinstance(key, str) and key.lower() in SENSITIVE_KEYS:
            mapping[key] = REDACTED
        elif isinstance(value, dict) and depth < 3:
            mapping[key] = _scrub(dict(value), depth + 1)
    return mapping


def _redact(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    """Blank values whose key looks secret, at any nesting level, whoever logged them."""
    # Fast path for the common event (flat, lower-case keys, nothing secret): set operations.
    for key in event.keys() & SENSITIVE_KEYS:
        event[key] = REDACTED
    if any(type(value) is dict for value in event.values()) or not all(key.islower() for key in event):
        return _scrub(event)
    return event


def _orjson_dumps(obj: Any, default: Any = None) -> bytes:
    return orjson.dumps(obj, default=default or str)


def _shared_processors() -> list[Any]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _redact,
    ]


class LogSink:
    """Where every log line goes: stdout, or a buffer a test swaps in with `redirect`.

    structlog caches loggers on first use, so the destination must be swappable without
    reconfiguring structlog.
    """

    def __init__(self) -> None:
        self.stream: IO[bytes] | None = None

    def write(self, data: bytes) -> None:
        (self.stream or sys.stdout.buffer).write(data)

    def flush(self) -> None:
        (self.stream or sys.stdout.buffer).flush()

    def redirect(self, stream: IO[bytes] | None) -> None:
        self.stream = stream


SINK = LogSink()


class _TextToSink(logging.Handler):
    """Stdlib log records, rendered as JSON by structlog's formatter, written to the sink."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            SINK.write(self.format(record).encode() + b"\n")
        except Exception:  # logging must never break the request that logs
            self.handleError(record)


def configure_logging(level: str = "INFO") -> None:
    """Route structlog and stdlib logging to JSON lines on the sink (stdout) at `level`."""
    numeric_level = logging.getLevelName(level)
    structlog.configure(
        processors=[
            *_shared_processors(),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(serializer=_orjson_dumps),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric_level),
        logger_factory=structlog.BytesLoggerFactory(SINK),
        cache_logger_on_first_use=True,
    )
    handler = _TextToSink()
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            # ExtraAdder first, so stdlib `extra=` fields are redacted too.
            foreign_pre_chain=[structlog.stdlib.ExtraAdder(), structlog.stdlib.add_logger_name, *_shared_processors()],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                structlog.processors.JSONRenderer(serializer=lambda obj, **_: orjson.dumps(obj, default=str).decode()),
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric_level)
    # Werkzeug's own access log would duplicate Hearth's request line.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)


def get_logger(name: str | None = None) -> Any:
    return structlog.get_logger(name)


def hash_identifier(value: object, key: str) -> str:
    """A stable, non-reversible stand-in for a user id in logs (seed §11: user ID hashed)."""
    return hmac.new(key.encode(), str(value).encode(), hashlib.sha256).hexdigest()[:16]
