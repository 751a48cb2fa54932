"""HTTP caching, the L3 edge of docs/architecture.md §8: validators and Cache-Control.

- `strong_etag(data)` is the one ETag function of the JSON API (`app.api.openapi` applies it to
  every GET representation, and to the GET representation again when a PATCH or DELETE
  carries `If-Match`); `if_match_holds` evaluates `If-Match` (RFC 9110 §13.1.1).
- `apply_default_cache_control` (pipeline step 6) gives every response that has not chosen its own `Cache-Control`
  the safe default, `private, no-store`. Views marked `@publicly_cacheable(max_age=…)` get
  `public, max-age=…` instead, but only on responses that are the same for every visitor:
  a GET answered 200/304, nobody signed in, no credentials sent, no cookie being set.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Request, Response, current_app, g, request, session

from app.core.api_paths import is_api_path, is_api_request

PRIVATE = "private, no-store"
PUBLIC_ATTR = "__public_max_age__"
# app.core.compression turns a strong ETag "x" into "x:br" / "x:gzip" on the encoding it chose.
COMPRESSED_ETAG_SEPARATOR = ":"
_SHAREABLE_STATUSES = frozenset({200, 304})

ViewT = TypeVar("ViewT", bound=Callable[..., Any])


def strong_etag(data: bytes) -> str:
    """The (unquoted) strong entity tag of a representation's bytes: 128 bits of BLAKE2b."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def if_match_holds(current: str | None) -> bool:
    """Whether this request's `If-Match` is satisfied by `current`, the unquoted ETag of the
    resource's current representation (None if it has none).

    `*` matches any existing representation; otherwise one listed tag must equal `current` by
    strong comparison (a weak `W/"…"` tag never matches). A tag from a compressed response
    (`"x:br"`) names the same representation as `"x"`, so it matches too.
    """
    condition = request.if_match
    if condition.star_tag:
        return current is not None
    if current is None:
        return False
    codings = current_app.config.get("COMPRESS_ALGORITHM") or ()
    return condition.contains(current) or any(
        condition.contains(f"{current}{COMPRESSED_ETAG_SEPARATOR}{coding}") for coding in codings
    )


def publicly_cacheable(max_age: int) -> Callable[[ViewT], ViewT]:
    """Mark a view deliberately public: its anonymous responses may be stored by browsers and
    CDNs for `max_age` seconds. Signed-in visitors still get `private, no-store`."""

    def decorator(view: ViewT) -> ViewT:
        setattr(view, PUBLIC_ATTR, max_age)
        return view

    return decorator


def _public_max_age() -> int | None:
    view = current_app.view_functions.get(request.endpoint or "")
    return getattr(view, PUBLIC_ATTR, None)


def is_public_page() -> bool:
    """True while rendering a view marked `publicly_cacheable` (base.html then leaves the
    per-visitor CSRF token out of the page for anonymous visitors)."""
    return _public_max_age() is not None


def _signed_in() -> bool:
    """Whoever this request acts for, without loading a user that no code asked for."""
    if g.get("api_user_id") is not None:
        return True
    user = g.get("_login_user") or g.get("api_user")
    return user is not None and user.is_authenticated


def _session_cookie_pending() -> bool:
    """Whether Flask will send a session Set-Cookie (it saves the session after these hooks)."""
    if is_api_request():  # the API never writes the session (app.core.cookie_session)
        return False
    if session.modified:
        return True
    return bool(session) and current_app.session_interface.should_set_cookie(current_app, session)


def _shareable(response: Response) -> bool:
    """Nothing in this response is particular to one visitor."""
    return (
        request.method in ("GET", "HEAD")
        and response.status_code in _SHAREABLE_STATUSES
        and "Authorization" not in request.headers
        and "Set-Cookie" not in response.headers
        and not _signed_in()
        and not _session_cookie_pending()
    )


def apply_default_cache_control(req: Request, response: Response, view: Any, present: set[str]) -> None:
    """Pipeline step 6 (app.pipeline): a view's own Cache-Control wins (static files, probes,
    downloads); deliberately public views get `public, max-age=N` when shareable; all else
    `private, no-store`. `present` holds the response's header names, lower-cased (kept up to
    date here for the steps after this one)."""
    if "cache-control" in present:
        return
    present.add("cache-control")
    max_age = getattr(view, PUBLIC_ATTR, None)
    if max_age is None or not _shareable(response):
        response.headers.add("Cache-Control", PRIVATE)
        return
    response.headers.add("Cache-Control", f"public, max-age={max_age}")
    if not is_api_path(req.path):
        # Signed-in visitors see another page: a cache must not give them this anonymous copy.
        # (String work: response.vary parses and rebuilds the header.)
        if "vary" not in present:
            response.headers.add("Vary", "Cookie")
            present.add("vary")
        else:
            vary = response.headers["Vary"]
            if "cookie" not in vary.lower():
                response.headers["Vary"] = f"{vary}, Cookie"
