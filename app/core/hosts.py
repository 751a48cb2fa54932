"""Trusted hosts: requests must name one of Hearth's own hosts.

Links that leave the request (emails, webhooks, exports) are built from PUBLIC_URL, so a
forged Host or X-Forwarded-Host header cannot poison them; refusing unknown hosts outright
also protects anything else that reads `request.host` (redirects, CSRF's same-origin check,
caches keyed on the URL). Health probes are exempt: orchestrators call them by pod IP.
The check runs first in app.pipeline, with the `HostMatcher` built here once per app.
"""

from __future__ import annotations

from flask import current_app

EXEMPT_PREFIX = "/health/"


class HostMatcher:
    """Exact host names and `.suffix` patterns, compared without the port, case-insensitively."""

    def __init__(self, patterns: list[str]):
        self.exact = frozenset(p.lower() for p in patterns if not p.startswith("."))
        self.suffixes = tuple(p.lower() for p in patterns if p.startswith("."))

    def allows(self, host_header: str) -> bool:
        host = host_header.lower()
        # "[v6]:port" keeps its brackets; "name:port" loses the port.
        host = host[: host.find("]") + 1] if host.startswith("[") else host.partition(":")[0]
        if not host:
            return False
        return host in self.exact or (bool(self.suffixes) and host.endswith(self.suffixes))


def app_path(endpoint: str, **values: object) -> str:
    """The path of `endpoint` (no host, no script root), e.g. a notification's link. Works in
    workers too: nothing is taken from a request. `endpoint` is the full name."""
    adapter = current_app.url_map.bind("hearth.invalid", script_name="/")
    return adapter.build(endpoint, {k: v for k, v in values.items() if v is not None})


def public_url_for(endpoint: str, **values: object) -> str:
    """An absolute URL on PUBLIC_URL, for links that leave the request (emails, webhooks,
    exports). Works in workers too: nothing is taken from a request. `endpoint` is the full
    name (`auth.verify_email`)."""
    return current_app.extensions["hearth.settings"].public_base_url + app_path(endpoint, **values)
