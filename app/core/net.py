"""Who is calling: the client address as the app should trust it."""

from flask import request


def client_address() -> str:
    """The caller's IP; `ProxyFix` (TRUSTED_PROXIES) has already applied X-Forwarded-For."""
    return request.remote_addr or "unknown"
