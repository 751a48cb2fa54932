"""Who is calling: the client address as the app should trust it.

With `TRUSTED_PROXIES=N`, werkzeug's `ProxyFix` (installed by `create_app`) replaces the peer
address by the N-th entry from the right of `X-Forwarded-For`: the address the outermost
trusted proxy saw. Entries a client adds itself sit further left and are never read, so a
client cannot pick its own address, as long as N is the real number of proxies in front of
Hearth. Every per-client rule (the app-wide budget and route limits, lockouts, audit and
session records) reads the address through `client_address()`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from threading import Lock

from flask import Flask, current_app, request

from app.config import Settings
from app.logging import get_logger

log = get_logger("hearth.net")

PROXY_CHECK_KEY = "hearth.proxy_check"
# Probes and metrics scrapes come straight from the orchestrator or Prometheus, not through
# the proxy: their missing header says nothing about the proxy count.
DIRECT_PREFIXES = ("/health/", "/metrics")


def client_address() -> str:
    """The caller's IP; `ProxyFix` (TRUSTED_PROXIES) has already applied X-Forwarded-For."""
    return request.remote_addr or "unknown"


@dataclass
class ProxyCheck:
    """Per app (so per process): has the "requests bypass the proxy" warning been logged?"""

    trusted_proxies: int
    warned: bool = False
    lock: Lock = field(default_factory=Lock)


def watch_forwarded_for(app: Flask, settings: Settings) -> None:
    """In staging and production with TRUSTED_PROXIES > 0, warn once per process when a
    request arrives with fewer X-Forwarded-For entries than trusted proxies. Then ProxyFix
    keeps the peer's address: either the setting is higher than the real proxy count (every
    client shares the proxy's address, one budget for all) or clients reach Hearth without
    the proxy (and can choose their address by sending the header themselves)."""
    if not (settings.is_production_like and settings.trusted_proxies > 0):
        return  # nothing to check: no per-request cost
    app.extensions[PROXY_CHECK_KEY] = ProxyCheck(settings.trusted_proxies)
    app.before_request(_check_forwarded_for)


def _check_forwarded_for() -> None:
    check: ProxyCheck = current_app.extensions[PROXY_CHECK_KEY]
    if check.warned or request.path.startswith(DIRECT_PREFIXES):
        return
    header = request.headers.get("X-Forwarded-For", "")
    entries = len([entry for entry in header.split(",") if entry.strip()])
    if entries >= check.trusted_proxies:
        return
    with check.lock:
        if check.warned:
            return
        check.warned = True
    log.warning(
        "trusted_proxies_mismatch",
        trusted_proxies=check.trusted_proxies,
        forwarded_for_entries=entries,
        peer=request.environ.get("werkzeug.proxy_fix.orig", {}).get("REMOTE_ADDR", request.remote_addr),
        detail=(
            "a request arrived with fewer X-Forwarded-For entries than TRUSTED_PROXIES: per-IP rate limits, "
            "lockouts and logs see the peer's address. Set TRUSTED_PROXIES to the number of proxies in front "
            "of Hearth and let clients reach it only through them. Logged once per process."
        ),
    )
