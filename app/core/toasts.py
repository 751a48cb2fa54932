"""One feedback channel for pages and htmx swaps.

A full page shows flashed messages as toasts (base.html). An htmx swap has no layout to show
them in, and a flash left in the session would surface, stale, on the next full page; so for
htmx requests the messages travel in the response's `HX-Trigger` header instead
(`{"toast": {"message": "…", "level": "success"}}`), which static/js/hearth.js shows through
the same toast component.

`toast(message, level)` is the call for views; the after-request hook also converts any
`flash()` made during an htmx request (views and helpers that flash without knowing how they
were called).
"""

from __future__ import annotations

from typing import Any

import orjson
from flask import Flask, Response, flash, g, session

from app.core.templating import is_htmx_request
from app.pipeline import add_browser_hooks

LEVELS = ("success", "info", "warning", "error")
_PENDING = "hearth_toasts"
# htmx follows none of these itself: the browser loads a full page next, which shows flashes.
_FULL_PAGE_NEXT = ("HX-Redirect", "HX-Refresh", "HX-Location")


def _level(category: str) -> str:
    """Flask's default category ("message") and anything unknown read as "info"."""
    return category if category in LEVELS else "info"


def toast(message: str, level: str = "success") -> None:
    """Tell the user something: an HX-Trigger toast for an htmx request, else a flash for the
    next page."""
    if is_htmx_request():
        g.setdefault(_PENDING, []).append({"message": str(message), "level": _level(level)})
    else:
        flash(message, _level(level))


def _merged_trigger(existing: str | None, toasts: list[dict[str, str]]) -> str:
    """The HX-Trigger header with `toasts` added to whatever events it already names (a JSON
    object, or htmx's comma-separated list of event names)."""
    events: dict[str, Any] = {}
    if existing:
        text = existing.strip()
        if text.startswith("{"):
            try:
                events = orjson.loads(text)
            except orjson.JSONDecodeError:
                events = {}
        else:
            events = {name.strip(): None for name in text.split(",") if name.strip()}
    earlier = events.get("toast")
    if isinstance(earlier, dict):
        toasts = [earlier, *toasts]
    elif isinstance(earlier, list):
        toasts = [*earlier, *toasts]
    # One toast is the object itself; several go as a list (htmx hands it over as `detail.value`).
    events["toast"] = toasts[0] if len(toasts) == 1 else toasts
    return orjson.dumps(events).decode()


def send_toasts(response: Response) -> Response:
    """After an htmx request: pending toasts, and flashes nobody rendered, go out as HX-Trigger.

    Left alone: non-htmx requests (their page shows flashes), redirects (the browser follows
    them inside the same htmx request, which then converts them) and responses that make the
    browser load a full page (HX-Redirect, HX-Refresh, HX-Location)."""
    if not is_htmx_request():
        return response
    toasts: list[dict[str, str]] = list(g.pop(_PENDING, []))
    if 300 <= response.status_code < 400 or any(header in response.headers for header in _FULL_PAGE_NEXT):
        for item in toasts:  # the next page shows them
            flash(item["message"], item["level"])
        return response
    if "_flashes" in session:
        toasts += [
            {"message": str(message), "level": _level(category)} for category, message in session.pop("_flashes")
        ]
    if toasts:
        response.headers["HX-Trigger"] = _merged_trigger(response.headers.get("HX-Trigger"), toasts)
    return response


def init_toasts(app: Flask) -> None:
    """`send_toasts` after every browser request (never the JSON API: the pipeline's hooks)."""
    add_browser_hooks(app, after=send_toasts)
