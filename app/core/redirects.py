"""The one rule for where a redirect may lead when the target comes from the request (a `next`
parameter or field, the Referer): a path on this site, never anywhere else.

Browsers are lenient where a naive check is not: they drop tabs and newlines anywhere in a
URL and C0 controls and spaces around it, and read `\\` as `/`, so `/\\evil.example`,
`\\/evil.example` and `/<tab>/evil.example` all mean `//evil.example`, another site. Anything
near those tricks is refused rather than repaired; a refused target gets the caller's fallback.
"""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

from flask import request

# C0 controls, DEL and C1 controls: never part of a path we link to.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# A slash or backslash hidden behind percent-encoding (also double-encoded: %252F).
_ENCODED_SLASH = re.compile(r"%(2f|5c)", re.IGNORECASE)
_MAX_DECODINGS = 4


def same_site_path(target: str | None, host: str) -> str | None:
    """`target` as a path on this site (served as `host`), or None when it could lead elsewhere.

    A site-relative path (`/admin/users?page=2`) is kept as given. An absolute http(s) URL
    naming exactly `host` (a Referer) becomes its path, query and fragment."""
    if not target or target != target.strip() or _CONTROL.search(target):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        if parts.scheme not in ("http", "https") or parts.netloc.lower() != host.lower():
            return None
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        target += f"#{parts.fragment}" if parts.fragment else ""
        parts = urlsplit(target)
    return target if _is_plain_path(target, parts.path) else None


def _is_plain_path(target: str, path: str) -> bool:
    """One leading `/`, then no `/` or `\\` straight after it, no backslash at all, and no
    slash, backslash or control character hidden by percent-encoding in the path."""
    if not target.startswith("/") or target.startswith(("//", "/\\")) or "\\" in target:
        return False
    for _ in range(_MAX_DECODINGS):
        if _ENCODED_SLASH.search(path):
            return False
        decoded = unquote(path)
        if decoded == path:
            return not _CONTROL.search(path)
        path = decoded
    return False  # still encoded after several rounds: nothing a real link looks like


def safe_next(target: str | None, fallback: str) -> str:
    """Where to redirect after an action: `target` if it is a path on this site, else `fallback`."""
    return same_site_path(target, request.host) or fallback
