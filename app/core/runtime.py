"""Facts about the running process (version, uptime), and settling it once it is built."""

from __future__ import annotations

import gc
import time

from flask import current_app

from app.version import __version__


def app_version() -> str:
    return __version__


def uptime_seconds() -> int:
    return int(time.time() - current_app.extensions["hearth.started_at"])


def settle_after_startup() -> None:
    """Call once a long-lived process (a web worker, a queue consumer) has built its app.

    Everything made so far (modules, the app, its routes, templates and mappers: ~150,000
    objects) lives as long as the process, yet every full garbage collection would walk it
    again: ~100 ms with the GIL held, which every request in flight on the worker waits out
    (the p99 of a busy worker). `gc.freeze()` moves those objects out of the collector's sight;
    what requests allocate is collected as before. (No `gc.collect()` first: it would cost
    start-up that walk once more, to free the little garbage that start-up leaves.) Collection
    is turned back on, for `wsgi.py` turns it off while the app is built.
    """
    gc.freeze()
    gc.enable()
