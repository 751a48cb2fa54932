"""Facts about the running process: version and uptime."""

from __future__ import annotations

import time

from flask import current_app


def app_version() -> str:
    from app import __version__

    return __version__


def uptime_seconds() -> int:
    return int(time.time() - current_app.extensions["hearth.started_at"])
