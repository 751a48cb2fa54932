"""Cookie sessions for browser routes only.

The JSON API authenticates with bearer tokens, so requests under /api/ neither read nor
write the session cookie: an API call can never ride on a browser's ambient credentials,
and it skips the cost of verifying and re-signing a cookie. Elsewhere this is Flask's signed
cookie session with its serializer built once per app instead of twice per request.
"""

from __future__ import annotations

from flask import Flask, Request, Response
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from itsdangerous import URLSafeTimedSerializer

API_PREFIX = "/api/"


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
        if request.path.startswith(API_PREFIX):
            return self.session_class()
        return super().open_session(app, request)

    def save_session(self, app: Flask, session: SecureCookieSession, response: Response) -> None:
        from flask import request

        if request.path.startswith(API_PREFIX):
            return
        super().save_session(app, session, response)
