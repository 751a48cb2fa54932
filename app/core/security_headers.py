"""Security headers (pipeline step 1), computed once per app and copied onto every response.

Hearth's policy uses no nonces, so every header is the same for every response: the list is
built when the app is created and appended to each response (a few µs), where Flask-Talisman
rebuilt the CSP string and every header per response. A view may carry its own policy with
`own_content_security_policy` (the storage download sets `sandbox`). HSTS depends on the
request: only over HTTPS (directly or X-Forwarded-Proto: https behind the proxy), never in
development.

`Cross-Origin-Opener-Policy: same-origin` on every response: a page Hearth opens in (or is
opened from) another site's window shares no browsing context group with it, so that window
can neither script it nor read `window.opener` (tabnabbing, cross-window leaks).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from flask import Request, Response
from werkzeug.datastructures import Headers

from app.config import Settings

HSTS_HEADER = "Strict-Transport-Security"
CSP_HEADER = "Content-Security-Policy"
CSP_ATTR = "own_content_security_policy"
HSTS_VALUE = "max-age=31536000; includeSubDomains; preload"

ViewT = TypeVar("ViewT", bound=Callable[..., Any])


def own_content_security_policy(policy: str) -> Callable[[ViewT], ViewT]:
    """Give a view its own Content-Security-Policy instead of the app's."""

    def decorator(view: ViewT) -> ViewT:
        setattr(view, CSP_ATTR, policy)
        return view

    return decorator


class SecurityHeaders:
    """The app's security headers, precomputed."""

    def __init__(self, settings: Settings, content_security_policy: dict[str, str]):
        csp = "; ".join(f"{directive} {value}" for directive, value in content_security_policy.items())
        self.plain = [
            (CSP_HEADER, csp),
            ("X-Frame-Options", "DENY"),
            ("X-Content-Type-Options", "nosniff"),
            ("Referrer-Policy", "same-origin"),
            ("Permissions-Policy", "browsing-topics=()"),
            ("Cross-Origin-Opener-Policy", "same-origin"),
        ]
        self.secure = self.plain if settings.is_development else [*self.plain, (HSTS_HEADER, HSTS_VALUE)]
        # Werkzeug checks every header value it is given (no newline: no header injection);
        # these are constants, so they are checked once, here, and appended as they are below.
        Headers(self.secure)

    def apply(self, request: Request, response: Response, view: Any) -> None:
        """Add the headers (views never set these themselves: a view's own policy is chosen
        with `own_content_security_policy`)."""
        environ = request.environ
        https = environ["wsgi.url_scheme"] == "https" or environ.get("HTTP_X_FORWARDED_PROTO") == "https"
        headers = self.secure if https else self.plain
        own_policy = getattr(view, CSP_ATTR, None)
        if own_policy is not None:
            headers = [(CSP_HEADER, own_policy), *headers[1:]]
        # Appended to Werkzeug's header list directly: `Headers.add` would re-check each
        # constant value with a regular expression on every response (~10 µs a request).
        response.headers._list.extend(headers)
