"""Structured JSON logging (docs/architecture.md §11) with structlog and orjson.

Every line is one JSON object on stdout. Context bound with `bind_contextvars` (a job's id
and request id) is merged into every line of that job, and a request's id (kept on `g` by
the pipeline: binding and unbinding it would cost every request, though few of them log
anything but the request line) into every line written during that request, including lines
from stdlib loggers such as SQLAlchemy, huey and gunicorn. Keys that look like secrets are redacted
before rendering, whoever logged them.

URLs carry live secrets (reset, verification, unlock and download tokens in the path, the
upload policy in the query string), so the raw path is never logged: the request line logs
the URL rule (`route="/auth/reset/<token>"`) and `redacted_path()`, where only path
parameters known to be plain identifiers keep their value. As a safety net, every line
written during a request (Flask's "Exception on <path>", tracebacks, library messages) has
that request's secret URL parts replaced by `<redacted>` after rendering.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import sys
from typing import IO, Any

import orjson
import structlog
from flask import g, has_request_context, request

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

# Path parameters that are plain identifiers, safe to log. Any other parameter (`token`,
# `sid`, and whatever a new route names) is logged as <redacted>: unknown means secret.
LOGGABLE_PATH_PARAMETERS = frozenset({"user_id", "upload_id", "job_id", "name", "filename", "family_id"})
REDACTED_URL_PART = "<redacted>"
# In an unmatched path (404, 405) nothing says which segment is a token; tokens are long.
TOKEN_LIKE_LENGTH = 16
# Secret URL parts shorter than this are not scrubbed from free text (it would mangle it).
MIN_SCRUBBED_LENGTH = 8
_RULE_VARIABLE = re.compile(r"<(?:[^<>:]+:)?([A-Za-z_][A-Za-z0-9_]*)>")
_SECRETS_KEY = "_log_url_secrets"
IMPERSONATOR_KEY = "hearth_log_impersonator"  # `g` attribute: see `bind_impersonator`


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


def request_route() -> str:
    """The URL rule the request matched (`/auth/reset/<token>`), or `unmatched`."""
    return request.url_rule.rule if request.url_rule is not None else "unmatched"


def redacted_path() -> str:
    """The request path with every secret part replaced by `<redacted>`: the matched rule with
    only `LOGGABLE_PATH_PARAMETERS` filled in, or, unmatched, every token-long segment hidden."""
    rule = request.url_rule
    if rule is None:
        return "/".join(
            REDACTED_URL_PART if len(segment) >= TOKEN_LIKE_LENGTH else segment for segment in request.path.split("/")
        )
    if "<" not in rule.rule:  # no variables: nothing to hide
        return rule.rule
    values = request.view_args or {}

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in LOGGABLE_PATH_PARAMETERS and name in values:
            return str(values[name])
        return REDACTED_URL_PART

    return _RULE_VARIABLE.sub(fill, rule.rule)


def _request_url_secrets() -> tuple[str, ...]:
    """This request's secret URL parts (computed once per request): secret path parameters,
    token-long segments of an unmatched path, and token-long query-string values."""
    cached = g.get(_SECRETS_KEY)
    if cached is not None:
        return cached
    if request.url_rule is not None:
        parts = [
            str(value) for name, value in (request.view_args or {}).items() if name not in LOGGABLE_PATH_PARAMETERS
        ]
    else:
        parts = [segment for segment in request.path.split("/") if len(segment) >= TOKEN_LIKE_LENGTH]
    if request.query_string:  # parsing an absent query string would still cost a MultiDict
        parts += [value for value in request.args.values() if len(value) >= TOKEN_LIKE_LENGTH]
    found = (
        tuple(sorted({part for part in parts if len(part) >= MIN_SCRUBBED_LENGTH}, key=len, reverse=True))
        if parts
        else ()
    )
    setattr(g, _SECRETS_KEY, found)
    return found


def _scrub_url_secrets(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    """Replace the current request's secret URL parts in every rendered string of the line."""
    if not has_request_context():
        return event
    secrets = _request_url_secrets()
    if not secrets:
        return event
    for key, value in event.items():
        if isinstance(value, str) and any(secret in value for secret in secrets):
            for secret in secrets:
                value = value.replace(secret, REDACTED_URL_PART)
            event[key] = value
    return event


def current_request_id() -> str | None:
    """The id of the request or job this code runs for (None outside both)."""
    if has_request_context():
        request_id = g.get("request_id")
        if request_id is not None:
            return request_id
    return structlog.contextvars.get_contextvars().get("request_id")


def _add_request_id(_logger: Any, _method: str, event: dict[str, Any]) -> dict[str, Any]:
    if "request_id" not in event and has_request_context():
        request_id = g.get("request_id")
        if request_id is not None:
            event["request_id"] = request_id
        impersonator = g.get(IMPERSONATOR_KEY)
        if impersonator is not None:
            event["impersonator"] = impersonator
    return event


def bind_impersonator(impersonator_id: int, secret_key: str) -> None:
    """Mark this request as made by an administrator viewing as another user ("view as",
    app.auth.impersonation): every line logged during it, the request line included, carries
    `impersonator` (the administrator's id, hashed like `user`)."""
    setattr(g, IMPERSONATOR_KEY, hash_identifier(impersonator_id, secret_key))


def request_impersonator() -> str | None:
    """The hashed id of the administrator this request is made by on someone's behalf, if any."""
    return g.get(IMPERSONATOR_KEY)


def _orjson_dumps(obj: Any, default: Any = None) -> bytes:
    return orjson.dumps(obj, default=default or str)


def _shared_processors() -> list[Any]:
    return [
        structlog.contextvars.merge_contextvars,
        _add_request_id,
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
            _scrub_url_secrets,  # after the traceback is rendered: it is text that may hold the path
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
                _scrub_url_secrets,
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
    # WeasyPrint narrates every PDF (fonts, layout steps) at INFO: ~11 lines per report.
    logging.getLogger("weasyprint").setLevel(logging.WARNING)


def get_logger(name: str | None = None) -> Any:
    return structlog.get_logger(name)


def hash_identifier(value: object, key: str) -> str:
    """A stable, non-reversible stand-in for a user id in logs (docs/architecture.md §11)."""
    return hmac.new(key.encode(), str(value).encode(), hashlib.sha256).hexdigest()[:16]
