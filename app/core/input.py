"""Edge validation: hostile input is refused before any view, form, schema or query sees it.

Registered once by `create_app` (`init_input_validation`), so no view has to remember it:

- **Text.** A NUL byte in the path, a query or form parameter (name or value), an uploaded
  file's name or a stored header is refused: 400 page, or a 422 problem under /api/.
  PostgreSQL cannot store NUL in text and nothing legitimate sends it. Lone surrogates (which
  UTF-8 cannot encode) never reach Python from these: invalid UTF-8 in a query string or a
  form stays percent-encoded (`EdgeRequest` extends Werkzeug's rule to raw query bytes), and
  the path and multipart fields replace it with U+FFFD. They can only arrive as JSON
  escapes, which the JSON loader below refuses.
- **JSON.** Request bodies parse with `load_json` (orjson: no recursion, refuses lone
  surrogates and invalid UTF-8), nested at most MAX_JSON_DEPTH levels, with no NUL in any
  string or key. Both `request.get_json()` and the API's schemas use it.
- **Numbers.** Ids are 32-bit Integer columns: an `<int:...>` path parameter above MAX_ID
  does not match (404: no such row can exist), and `args.get(..., type=int)` /
  `form.get(..., type=int)` treat a number beyond ±MAX_ID like any unparseable value (the
  default). The API's query and body schemas bound their integers with `le=` the same way.

The common request pays for a few substring tests (see docs/security.md, "Hostile input").
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson
from flask import Flask, Request, current_app, json, request
from werkzeug.datastructures import ImmutableMultiDict
from werkzeug.exceptions import BadRequest
from werkzeug.routing import IntegerConverter, Map

from app.errors import ValidationFailed, wants_problem_json
from app.i18n import _, _l

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

# The range of an Integer column (int4 on PostgreSQL): no id beyond it can exist.
MAX_ID = 2**31 - 1
# A BigInteger column (byte sizes).
MAX_BIGINT = 2**63 - 1
# Deeper than any document the API accepts; orjson's own limit (1024) keeps parsing safe,
# this one keeps every later walk (validation, logging, our own checks) shallow.
MAX_JSON_DEPTH = 32

FORM_MIMETYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
# The header values the app keeps (session and token records). The others are only compared
# or parsed, and gunicorn refuses control characters in any header before the app sees it.
STORED_HEADERS = (("HTTP_USER_AGENT", "User-Agent"), ("REMOTE_ADDR", "X-Forwarded-For"))
# What a refusal says, in the request's language (a field's message, then the whole sentence
# for each place a parameter can be).
NOT_ALLOWED = _l("Contains a character that is not allowed (a NUL byte or an unpaired surrogate).")
HOSTILE_PARAMETER = {
    "path": _l(
        "The path parameter %(name)r contains a character that is not allowed (a NUL byte or an unpaired surrogate)."
    ),
    "query": _l(
        "The query parameter %(name)r contains a character that is not allowed (a NUL byte or an unpaired surrogate)."
    ),
    "form": _l(
        "The form field %(name)r contains a character that is not allowed (a NUL byte or an unpaired surrogate)."
    ),
    "header": _l("The header %(name)s contains a character that is not allowed (a NUL byte or an unpaired surrogate)."),
}


class InvalidJSON(ValueError):
    """A request body that is not acceptable JSON; `kind` is the problem's error type."""

    def __init__(self, kind: str, message: str, field: str = "body"):
        super().__init__(message)
        self.kind, self.message, self.field = kind, message, field

    def field_error(self) -> dict[str, str]:
        return {"field": self.field, "location": "body", "message": self.message, "type": self.kind}


def load_json(data: bytes | str) -> Any:
    """Parse a request body, refusing what the app could not store or would recurse on."""
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as error:
        if "depth limit" in str(error):
            raise InvalidJSON("json_too_deep", _too_deep()) from None
        raise InvalidJSON("json_invalid", _("The body is not valid JSON: %(error)s", error=str(error))) from None
    raw = data if isinstance(data, bytes) else data.encode()
    # Cheap scans first: fewer brackets than the limit cannot nest deeper than it, and a NUL
    # can only be written as the \u0000 escape (raw control characters are invalid JSON).
    deep = raw.count(b"[") + raw.count(b"{") > MAX_JSON_DEPTH
    if deep or b"\\u0000" in raw:
        _check_tree(value)
    return value


def _too_deep() -> str:
    return _("Nested deeper than %(levels)s levels.", levels=MAX_JSON_DEPTH)


def _check_tree(value: Any) -> None:
    """Depth and NUL check of a parsed document, without recursion (no stack to exhaust)."""
    stack: list[tuple[Any, int, str]] = [(value, 0, "")]
    while stack:
        node, depth, path = stack.pop()
        if isinstance(node, dict | list):
            if depth >= MAX_JSON_DEPTH:
                raise InvalidJSON("json_too_deep", _too_deep())
            items = node.items() if isinstance(node, dict) else enumerate(node)
            for key, child in items:
                name = f"{path}.{key}" if path else str(key)
                if isinstance(key, str) and "\x00" in key:
                    raise InvalidJSON(
                        "forbidden_character",
                        _("A key contains a character that is not allowed (a NUL byte or an unpaired surrogate)."),
                        path or "body",
                    )
                stack.append((child, depth + 1, name))
        elif isinstance(node, str) and "\x00" in node:
            raise InvalidJSON(
                "forbidden_character",
                _("The value contains a character that is not allowed (a NUL byte or an unpaired surrogate)."),
                path or "body",
            )


class _RequestJSON:
    """The JSON module of request bodies: `load_json`. Its errors are ValueErrors, so
    `get_json(silent=True)` answers None for them as for any invalid JSON."""

    loads = staticmethod(load_json)
    dumps = staticmethod(json.dumps)


def _bounded(value: Any) -> bool:
    return -MAX_ID <= value <= MAX_ID


class BoundedMultiDict(ImmutableMultiDict):
    """Query and form parameters where `type=int` also fails (gives the default, or is
    skipped by `getlist`) for numbers no Integer column can hold."""

    def get(self, key: Any, default: Any = None, type: Any = None) -> Any:
        value = super().get(key, default, type)
        if type is int and value is not default and not _bounded(value):
            return default
        return value

    def getlist(self, key: Any, type: Any = None) -> list[Any]:
        values = super().getlist(key, type)
        return [value for value in values if _bounded(value)] if type is int else values


def _ignore(_request: Request, _value: Any) -> None:
    """Flask assigns `app.json` to every request it creates; request bodies keep the edge loader
    (responses, the session serializer and tests keep `app.json`)."""


class EdgeRequest(Request):
    parameter_storage_class = BoundedMultiDict
    json_module = property(lambda _request: _RequestJSON, _ignore)

    def __init__(self, environ: WSGIEnvironment, populate_request: bool = True, shallow: bool = False) -> None:
        super().__init__(environ, populate_request, shallow)
        # Raw query bytes that are not UTF-8 (gunicorn refuses them, Werkzeug's own server
        # passes them on) make Werkzeug raise wherever the query is decoded (`args`,
        # `full_path`, `url`). Percent-encoded, they read as invalid escapes already do.
        if not self.query_string.isascii():
            self.query_string = self.query_string.decode("utf-8", "werkzeug.url_quote").encode()


def at_most_regex(limit: int) -> str:
    """A regex for the decimal numbers 0..limit: any shorter number, or the same length with
    the limit's first i digits, then a smaller digit, then anything; or the limit itself."""
    digits = str(limit)
    options = [rf"\d{{1,{len(digits) - 1}}}"] if len(digits) > 1 else []
    for index, digit in enumerate(digits):
        if digit != "0":
            rest = len(digits) - index - 1
            options.append(f"{digits[:index]}[0-{int(digit) - 1}]" + (rf"\d{{{rest}}}" if rest else ""))
    options.append(digits)
    return "(?:" + "|".join(options) + ")"


class BoundedIntegerConverter(IntegerConverter):
    """`<int:...>` for ids: 0..MAX_ID, so a larger number never reaches a query.

    The bound is in the regex, not only in `to_python`: a rule whose converter refuses a value
    after matching still counts as a match for its methods, so a PATCH beyond the range would
    answer 405 (the GET rule's methods) instead of 404."""

    regex = at_most_regex(MAX_ID)

    def __init__(self, map: Map, fixed_digits: int = 0, min: int | None = None, max: int | None = MAX_ID) -> None:
        super().__init__(map, fixed_digits=fixed_digits, min=min, max=max)


def _hostile_parameter(req: Request) -> tuple[str, str] | None:
    """(location, name) of the first parameter carrying a NUL byte, or None."""
    if "\x00" in req.path:
        names = [name for name, value in (req.view_args or {}).items() if "\x00" in str(value)]
        return "path", names[0] if names else "path"
    environ = req.environ
    query = req.query_string
    # Only "%00" (or a raw NUL) decodes to NUL, so most query strings are never parsed here.
    if query and (b"%00" in query or b"\x00" in query):
        for key, value in req.args.items(multi=True):
            if "\x00" in key or "\x00" in value:
                return "query", key.replace("\x00", "?")
    if environ.get("CONTENT_TYPE", "").startswith(FORM_MIMETYPES) and not _view_reads_its_own_body(req):
        # A multipart part without a parsable name has the key None.
        for key, value in req.form.items(multi=True):
            if "\x00" in (key or "") or "\x00" in value:
                return "form", (key or "").replace("\x00", "?")
        for key, upload in req.files.items(multi=True):
            if "\x00" in (key or "") or "\x00" in (upload.filename or ""):
                return "form", (key or "").replace("\x00", "?")
    for key, header in STORED_HEADERS:
        if "\x00" in environ.get(key, ""):
            return "header", header
    return None


def _view_reads_its_own_body(req: Request) -> bool:
    """Views with their own body limit (the local storage upload) check their policy before
    any byte of the body is read; reading the form here would defeat that."""
    view = current_app.view_functions.get(req.endpoint or "")
    return view is not None and hasattr(view, "max_body_bytes")


def refuse_hostile_input() -> None:
    """The before-request hook: a 422 problem under /api/, a 400 page elsewhere."""
    found = _hostile_parameter(request._get_current_object())
    if found is None:
        return
    location, name = found
    detail = str(HOSTILE_PARAMETER[location]) % {"name": name}
    if wants_problem_json():
        error = {"field": name, "location": location, "message": str(NOT_ALLOWED), "type": "forbidden_character"}
        raise ValidationFailed(detail, errors=[error])
    raise BadRequest(description=detail)


def init_input_validation(app: Flask) -> None:
    """Bounded id converters (before any blueprint adds a rule), bounded integer parameters
    and the JSON loader. The text check, `refuse_hostile_input`, runs in app.pipeline."""
    app.url_map.converters["int"] = BoundedIntegerConverter
    app.request_class = EdgeRequest
