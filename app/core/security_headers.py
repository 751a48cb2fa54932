"""Flask-Talisman with its response headers computed once.

Talisman rebuilds every header (CSP string included) on every response. Hearth's policy
uses no nonces, so the headers are the same for every response of a view without
per-view Talisman options: they are computed on the first response and then copied.
HSTS still depends on the request (HTTPS or X-Forwarded-Proto: https), as in Talisman.

Talisman 1.1 has no Cross-Origin-Opener-Policy option, so `same-origin` is added here, to
every response: a page Hearth opens in (or is opened from) another site's window shares no
browsing context group with it, so that window can neither script it nor read
`window.opener` (tabnabbing, cross-window leaks).
"""

from __future__ import annotations

import flask
from flask import Response
from flask_talisman import Talisman

HSTS_HEADER = "Strict-Transport-Security"
EXTRA_HEADERS = (("Cross-Origin-Opener-Policy", "same-origin"),)


class PrecomputedTalisman(Talisman):
    """Talisman whose static headers are computed once per app instead of per response."""

    def init_app(self, app: flask.Flask, **options) -> None:
        super().init_app(app, **options)
        # Without force_https or nonces, Talisman's two before_request hooks do nothing.
        idle = {self._force_https.__func__} if not self.force_https else set()
        if not self.content_security_policy_nonce_in:
            idle.add(self._make_nonce.__func__)
        app.before_request_funcs[None] = [
            hook
            for hook in app.before_request_funcs[None]
            if not (getattr(hook, "__self__", None) is self and hook.__func__ in idle)
        ]
        self._static_headers: list[tuple[str, str]] | None = None
        self._hsts_value: str | None = None
        if self.session_cookie_secure and not app.debug:
            app.config["SESSION_COOKIE_SECURE"] = True

    def _set_response_headers(self, response: Response) -> Response:
        view = flask.current_app.view_functions.get(flask.request.endpoint or "")
        if self.content_security_policy_nonce_in or hasattr(view, "talisman_view_options"):
            response = super()._set_response_headers(response)
            response.headers.update(EXTRA_HEADERS)
            return response
        if self._static_headers is None:
            self._compute_static_headers()
        response.headers.update(self._static_headers)
        if self._hsts_value and (flask.request.is_secure or flask.request.headers.get("X-Forwarded-Proto") == "https"):
            response.headers[HSTS_HEADER] = self._hsts_value
        return response

    def _compute_static_headers(self) -> None:
        sample = Response()
        super()._set_response_headers(sample)
        self._static_headers = [
            (key, value)
            for key, value in sample.headers.items()
            if key not in (HSTS_HEADER, "Content-Type", "Content-Length")
        ] + list(EXTRA_HEADERS)
        if self.strict_transport_security:
            value = f"max-age={self.strict_transport_security_max_age}"
            if self.strict_transport_security_include_subdomains:
                value += "; includeSubDomains"
            if self.strict_transport_security_preload:
                value += "; preload"
            self._hsts_value = value
