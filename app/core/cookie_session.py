"""Cookie sessions for browser routes only.

The JSON API authenticates with bearer tokens, so requests under /api/ neither read nor
write the session cookie: an API call can never ride on a browser's ambient credentials,
and it skips the cost of verifying and re-signing a cookie. Elsewhere this is Flask's signed
cookie session with its serializer built once per app instead of twice per request.

A signed-in (permanent) session's cookie is re-issued, pushing its expiry PERMANENT_SESSION_LIFETIME
ahead, when the server-side record's `last_seen_at` moves (app.auth.session_records, at most once a
minute), rather than on every response: the cookie then expires exactly when the record goes
idle, as before, without re-signing the cookie on each request. A changed session is saved as
always.
"""

from __future__ import annotations

from flask import Flask, Request, Response, g, request
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface, SessionMixin
from itsdangerous import URLSafeTimedSerializer

from app.core.api_paths import is_api_path

REFRESH_COOKIE = "hearth_refresh_session_cookie"  # `g` attribute: re-issue the cookie now


def refresh_session_cookie() -> None:
    """Re-issue this browser's session cookie with a new expiry on this response."""
    setattr(g, REFRESH_COOKIE, True)


class BrowserSessionInterface(SecureCookieSessionInterface):
    def __init__(self) -> None:
        self._serializers: dict[int, tuple[bytes | str, URLSafeTimedSerializer | None]] = {}

    def get_signing_serializer(self, app: Flask) -> URLSafeTimedSerializer | None:
        cached = self._serializers.get(id(app))
        if cached is not None and cached[0] == app.secret_key:
            return cached[1]
        serializer = super().get_signing_serializer(app)
        self._serializers[id(app)] = (app.secret_key, serializer)
        return serializer

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if is_api_path(request.path) or "HTTP_COOKIE" not in request.environ:
            return self.session_class()  # nothing to read (and no signer to build) without a cookie
        return super().open_session(app, request)

    def should_set_cookie(self, app: Flask, session: SessionMixin) -> bool:
        """A changed session, or a permanent one whose record just moved (module docstring).
        Replaces Flask's SESSION_REFRESH_EACH_REQUEST, which re-signed it on every response."""
        return session.modified or (session.permanent and g.get(REFRESH_COOKIE, False))

    def save_session(self, app: Flask, session: SecureCookieSession, response: Response) -> None:
        if is_api_path(request.path):
            return
        if not session and not session.modified:
            # Nothing to write or delete (Flask's own method reads six settings first). A page
            # that looked at the session still varies on the cookie.
            if session.accessed:
                response.vary.add("Cookie")
            return
        super().save_session(app, session, response)
