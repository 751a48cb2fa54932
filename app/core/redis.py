"""The app's Redis client, with short connect and socket timeouts so a hung Redis slows
nothing for long."""

from __future__ import annotations

from flask import current_app
from redis import Redis

EXTENSION_KEY = "hearth.redis"


def redis_client() -> Redis | None:
    """The shared client, or None on the embedded profile (no REDIS_URL)."""
    app = current_app._get_current_object()
    if EXTENSION_KEY not in app.extensions:
        settings = app.extensions["hearth.settings"]
        app.extensions[EXTENSION_KEY] = (
            Redis.from_url(
                settings.redis_url,
                socket_timeout=settings.redis_timeout_seconds,
                socket_connect_timeout=settings.redis_timeout_seconds,
            )
            if settings.redis_url
            else None
        )
    return app.extensions[EXTENSION_KEY]
