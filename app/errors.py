"""Domain exceptions and the one mapper that turns any error into an HTML page or problem+json.

Services raise the domain exceptions below and never build HTTP responses. Under `/api/`
every error, including unknown paths, 405, 413, 429 and 500, answers
`application/problem+json` (RFC 9457); elsewhere a friendly HTML page is rendered, unless
the client asks for JSON rather than HTML (a page's script calling a hypermedia endpoint,
e.g. the upload widget's `/files/presign`): that gets the same problem+json.

Languages: a problem's `title` is the English name of its type (stable, like `type` itself:
clients and the API documentation may match on it), its `detail` and field messages are in
the request's language. The HTML page words each status itself, translated
(templates/errors/error.html), and shows a specific `detail` under that.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import orjson
from flask import Flask, Response, current_app, g, render_template, request
from markupsafe import escape
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import HTTPException, InternalServerError

from app.core.api_paths import is_api_request
from app.core.circuit import Throttle
from app.core.ratelimit import breached_limit_headers
from app.i18n import N_, _, locale_code, translate_stored
from app.logging import get_logger, redacted_path, request_route

log = get_logger("hearth.errors")

PROBLEM_MIMETYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "https://hearth.dev/problems/"


class DomainError(Exception):
    """Base of the errors services raise; each maps to one HTTP status."""

    status = 400
    title = "Bad request"
    slug = "bad-request"

    def __init__(self, detail: str | None = None, **extra: Any):
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.extra = extra

    def response_headers(self) -> list[tuple[str, str]]:
        """Headers the answer carries besides the body (a 429's Retry-After); none by default."""
        return []


class NotFound(DomainError):
    status, title, slug = 404, "Not found", "not-found"


class PermissionDenied(DomainError):
    status, title, slug = 403, "Forbidden", "forbidden"


class Unauthorized(DomainError):
    status, title, slug = 401, "Unauthorized", "unauthorized"


class Conflict(DomainError):
    status, title, slug = 409, "Conflict", "conflict"


class PreconditionFailed(DomainError):
    """A conditional write (If-Match) whose version of the resource is no longer current."""

    status, title, slug = 412, "Precondition failed", "precondition-failed"


class TooManyRequests(DomainError):
    """A per-user limit of the domain is reached (e.g. exports queued or running at once):
    429 with `Retry-After`, the seconds after which trying again may succeed."""

    status, title, slug = 429, "Too many requests", "too-many-requests"

    def __init__(self, detail: str | None = None, retry_after: int = 60, **extra: Any):
        super().__init__(detail, **extra)
        self.retry_after = max(1, int(retry_after))

    def response_headers(self) -> list[tuple[str, str]]:
        return [("Retry-After", str(self.retry_after))]


class ServiceUnavailable(DomainError):
    """Something the request needs is down for a moment (the database, file storage): 503 with
    `Retry-After`, the seconds after which trying again may succeed."""

    status, title, slug = 503, "Service unavailable", "service-unavailable"
    retry_after = 5

    def __init__(self, detail: str | None = None, retry_after: int | None = None, **extra: Any):
        super().__init__(detail, **extra)
        if retry_after is not None:
            self.retry_after = max(1, int(retry_after))

    def response_headers(self) -> list[tuple[str, str]]:
        return [("Retry-After", str(self.retry_after)), ("Cache-Control", "no-store")]


class DatabaseUnavailable(ServiceUnavailable):
    """The database refused or lost the connection (stopped, restarting, out of connections),
    or no pooled connection came free in time. Raised by no service: the mapper turns such
    SQLAlchemy errors into it (`handle_database_error`)."""

    title, slug = "Database unavailable", "database-unavailable"


class StorageUnavailable(ServiceUnavailable):
    """File storage (S3, or the local disk) could not be reached or failed to answer."""

    title, slug = "Storage unavailable", "storage-unavailable"
    retry_after = 30


class StorageFull(DomainError):
    """File storage has no room for the object (the local disk is full): 507."""

    status, title, slug = 507, "Insufficient storage", "insufficient-storage"


class ValidationFailed(DomainError):
    """Input that does not satisfy a schema or a business rule; `errors` lists each field."""

    status, title, slug = 422, "Validation failed", "validation-failed"

    def __init__(self, detail: str | None = None, errors: list[dict[str, Any]] | None = None):
        super().__init__(detail or _("The request contains invalid fields."), errors=errors or [])


# Flask-WTF's reasons for refusing a form (CSRFError, a 400), written in English by the library:
# marked here so the error page can say them in the reader's language (`translate_stored`).
CSRF_REASONS = (
    N_("The CSRF token is missing."),
    N_("The CSRF session token is missing."),
    N_("The CSRF token has expired."),
    N_("The CSRF token is invalid."),
    N_("The CSRF tokens do not match."),
)

# Ties go to HTML, so `*/*` (or no Accept header at all) keeps the error page.
_NEGOTIATED = ("text/html", PROBLEM_MIMETYPE, "application/json")


def wants_problem_json() -> bool:
    """API paths always get problem+json, whatever the Accept header says."""
    return is_api_request()


def _answers_problem_json() -> bool:
    """The mapper's choice: problem+json on API paths, and elsewhere for a client that
    prefers JSON to HTML (a page's script); the HTML error page otherwise."""
    if wants_problem_json():
        return True
    return request.accept_mimetypes.best_match(_NEGOTIATED, default="text/html") != "text/html"


def problem_response(
    status: int, title: str, detail: str, slug: str | None = None, headers: Any = None, **extra: Any
) -> Response:
    body = {
        "type": PROBLEM_TYPE_BASE + (slug or str(status)),
        "title": title,
        "status": status,
        "detail": detail,
        "instance": request.path,
        "request_id": g.get("request_id"),
        **extra,
    }
    response = Response(orjson.dumps(body), status=status, mimetype=PROBLEM_MIMETYPE)
    if headers:
        response.headers.extend(headers)
    return response


def _html_response(status: int, title: str, detail: str | None, headers: Any = None) -> Response:
    """The error page in the site's layout (templates/errors/error.html words each status for
    people); `detail` only when it says something specific. Should the layout itself fail
    (a broken template context, the database gone while loading the user), a standalone page
    without it, so an error never turns into a bare 500."""
    try:
        html = render_template("errors/error.html", status=status, title=title, detail=detail)
    except Exception as error:  # the last resort: logged, then the plain page below
        if is_database_unavailable(error):  # the layout's user lookup, during an outage
            warn_database_unavailable(error)
        else:
            log.exception("error_page_failed", status=status, route=request_route(), path=redacted_path())
        html = _fallback_page(status, title)
    response = Response(html, status=status, mimetype="text/html")
    if headers:
        response.headers.extend(headers)
    return response


def _fallback_page(status: int, title: str) -> str:
    """An error page that needs no template, user, session or database: in the request's
    language if its catalogue is at hand, else in English (the translation may be what failed)."""
    home = escape(request.script_root + "/")
    heading = escape(title)
    try:
        language = locale_code()
        words = (
            _("Error %(status)s", status=status),
            _("Something went wrong on our side. Please try again in a moment."),
            _("Back to the home page"),
        )
    except Exception:  # the last resort must not fail: English
        language = "en"
        words = (
            f"Error {status}",
            "Something went wrong on our side. Please try again in a moment.",
            "Back to the home page",
        )
    error, sentence, back = (escape(word) for word in words)
    return (
        f'<!doctype html><html lang="{escape(language)}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{status} {heading} · Hearth</title></head><body><main>"
        f"<p>{error}</p><h1>{heading}</h1>"
        f"<p>{sentence}</p>"
        f'<p><a href="{home}">{back}</a></p></main></body></html>'
    )


def _respond(
    status: int,
    title: str,
    detail: str,
    slug: str | None = None,
    headers: Any = None,
    page_detail: str | None = None,
    **extra: Any,
) -> Response:
    """problem+json with `detail`, or the HTML page, which shows `page_detail` (if any) under
    its own words for the status."""
    if status == 401 and wants_problem_json():
        headers = [*(headers or []), ("WWW-Authenticate", "Bearer")]
    if _answers_problem_json():
        return problem_response(status, title, detail, slug, headers, **extra)
    return _html_response(status, title, page_detail, headers)


def handle_domain_error(error: DomainError) -> Response:
    # A domain error's detail is written for people (a service's message), unless it is only the title.
    page_detail = error.detail if error.detail != error.title else None
    return _respond(
        error.status,
        error.title,
        error.detail,
        error.slug,
        headers=error.response_headers() or None,
        page_detail=page_detail,
        **error.extra,
    )


def handle_http_exception(error: HTTPException) -> Response:
    if error.code is None and error.response is not None:  # abort(<response>), e.g. a sign-in redirect
        return error.response
    status = error.code or 500
    if status < 400:  # redirects raised as exceptions (e.g. RequestRedirect) pass through
        return error.get_response()
    # Keep headers the exception carries (Allow on 405, Retry-After on 503, ...); a 429's
    # Retry-After comes with the limit's other headers below.
    dropped = ("content-type", "retry-after") if status == 429 else ("content-type",)
    headers = [(k, v) for k, v in error.get_headers() if k.lower() not in dropped]
    detail = error.description or error.name
    # Werkzeug's stock description ("The requested URL was not found on the server…") never
    # reaches a page; one given to abort() or set by a subclass of ours does.
    page_detail = (
        translate_stored(detail) if error.description and error.description != _stock_description(error) else None
    )
    if status == 429:
        headers += breached_limit_headers(error)
        detail = _("Too many requests. Wait for the time given in Retry-After, then try again.")
        page_detail = None
    slug = error.name.lower().replace(" ", "-")
    return _respond(status, error.name, detail, slug=slug, headers=headers, page_detail=page_detail)


def _stock_description(error: HTTPException) -> str | None:
    """The description Werkzeug's own class of `error` carries (English, for no one in particular)."""
    for cls in type(error).__mro__:
        if cls.__module__ == "werkzeug.exceptions" and "description" in vars(cls):
            return cls.description
    return None


class QuietOutagesFlask(Flask):
    """Flask, except that an unhandled database outage (raised outside a view, e.g. in an
    after-request hook) is not logged with a traceback per request: `handle_unexpected` answers
    it with the 503 and its once-per-window warning."""

    def log_exception(self, exc_info: Any) -> None:
        if exc_info[1] is not None and is_database_unavailable(exc_info[1]):
            return
        super().log_exception(exc_info)


def handle_unexpected(error: Exception) -> Response:
    original = getattr(error, "original_exception", None) or error
    if is_database_unavailable(original):  # raised outside the view (an after-request hook)
        return handle_database_error(original)
    log.error("unhandled_exception", exc_info=original, route=request_route(), path=redacted_path())
    detail = _("Something went wrong on our side. The error has been logged.")
    page_detail = None
    if current_app.debug:
        detail = page_detail = f"{type(original).__name__}: {original}"
    return _respond(500, "Internal server error", detail, slug="internal-server-error", page_detail=page_detail)


# Database unavailable -------------------------------------------------------------------------

DATABASE_WARNING_KEY = "hearth.errors.database_warning"
DATABASE_WARN_EVERY = 10.0
# SQLSTATEs of a server that is there but cannot serve (class 08: connection exceptions;
# 57P01-03: shutting down, crashed, starting up; 53300: too many connections).
_UNAVAILABLE_SQLSTATES = ("57P01", "57P02", "57P03", "53300")
# What libpq says when the server is there but cannot take connections yet or any more.
_SERVER_NOT_READY = (
    "the database system is starting up",
    "the database system is shutting down",
    "the database system is in recovery mode",
    "the database system is not yet accepting connections",
    "too many clients already",
    "connection slots are reserved",
)
# What libpq and psycopg say when the connection cannot be made or was lost.
_CONNECTION_LOST = (
    "connection refused",
    "connection reset",
    "server closed the connection",
    "the connection is closed",
    "the connection is lost",
    "connection timeout expired",
    "timeout expired",
    "could not connect",
    "could not receive data",
    "could not send data",
    "no route to host",
    "network is unreachable",
    "broken pipe",
    "eof detected",
    "no such file or directory",  # the Unix socket of a stopped server
)
# SQLite's ways of saying the file cannot be used at all (not a constraint or a syntax error).
_UNAVAILABLE_SQLITE_MESSAGES = ("unable to open database file", "disk i/o error", "database disk image is malformed")


def is_database_unavailable(error: BaseException) -> bool:
    """Whether `error` means "the database cannot be reached now", not "this statement is wrong":
    a pool timeout; a disconnect SQLAlchemy noticed; an OperationalError or InterfaceError
    whose driver error is a connection failure (no SQLSTATE: the client's own; class 08 or
    57P0x: the server's), or SQLite failing to open or read its file."""
    if isinstance(error, PoolTimeout):
        return True
    if not isinstance(error, DBAPIError):
        return False
    if error.connection_invalidated:
        return True
    if not isinstance(error, (OperationalError, InterfaceError)):
        return False
    original = error.orig
    if isinstance(original, sqlite3.Error):
        return str(original).lower().startswith(_UNAVAILABLE_SQLITE_MESSAGES)
    sqlstate = getattr(original, "sqlstate", None) or getattr(original, "pgcode", None)
    if sqlstate:
        return sqlstate.startswith("08") or sqlstate in _UNAVAILABLE_SQLSTATES
    # psycopg's own errors carry no SQLSTATE, connection failures included (a connection
    # refused, a server rejecting it while it starts): read the message. A server rejecting
    # the connection for good (no such database, a wrong password) or a client-side refusal of
    # the statement (too many parameters) is a fault to fix, not an outage to wait out.
    message = str(original).lower()
    if "fatal:" in message:
        return any(reason in message for reason in _SERVER_NOT_READY)
    return any(symptom in message for symptom in _CONNECTION_LOST)


def handle_database_error(error: Exception) -> Response:
    """503 with Retry-After while the database is unavailable; any other database error goes
    on to Flask's unhandled-exception path (logged with its traceback, then a 500), as before."""
    if not is_database_unavailable(error):
        raise error
    warn_database_unavailable(error)
    return database_unavailable_response()


def warn_database_unavailable(error: BaseException) -> None:
    """One warning per DATABASE_WARN_EVERY seconds per process, however many requests meet the
    outage, and no traceback: the outage is the news, not where it was noticed."""
    throttle: Throttle = current_app.extensions[DATABASE_WARNING_KEY]
    occurrences = throttle.due()
    if occurrences:
        # The driver's own message: SQLAlchemy's adds the statement and its parameters.
        cause = error.orig if isinstance(error, DBAPIError) else error
        log.warning(
            "database_unavailable",
            error=f"{type(cause).__name__}: {cause}".splitlines()[0][:300],
            route=request_route(),
            requests=occurrences,
            retry_after_seconds=DatabaseUnavailable.retry_after,
        )


def database_unavailable_response() -> Response:
    """The 503 for a database outage: problem+json, or a page that reads nothing from the
    database (no layout: it would load the signed-in user)."""
    unavailable = DatabaseUnavailable(_("The database is unavailable for a moment. Please try again shortly."))
    headers = unavailable.response_headers()
    if _answers_problem_json():
        return problem_response(unavailable.status, unavailable.title, unavailable.detail, unavailable.slug, headers)
    try:
        html = render_template("errors/unavailable.html", status=unavailable.status)
    except Exception:  # the last resort: logged, then the plain page
        log.exception("error_page_failed", status=503, route=request_route(), path=redacted_path())
        html = _fallback_page(unavailable.status, unavailable.title)
    response = Response(html, status=unavailable.status, mimetype="text/html")
    response.headers.extend(headers)
    return response


def register_error_handlers(app: Flask) -> None:
    app.extensions[DATABASE_WARNING_KEY] = Throttle(DATABASE_WARN_EVERY)
    # A database outage is a 503 and one warning, never a 500 with a traceback per request.
    app.register_error_handler(DBAPIError, handle_database_error)
    app.register_error_handler(PoolTimeout, handle_database_error)
    app.register_error_handler(DomainError, handle_domain_error)
    app.register_error_handler(HTTPException, handle_http_exception)
    # Unhandled exceptions reach Flask's handle_exception, which signals
    # got_request_exception (Sentry listens) and then calls this handler with a 500.
    app.register_error_handler(InternalServerError, handle_unexpected)
