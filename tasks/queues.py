"""One huey instance per queue (seed §9): RedisHuey storage when REDIS_URL is set, SqliteHuey
storage under `instance/` otherwise.

The instances exist from import so task modules can decorate with them, but they hold an
in-memory storage until `configure_queues` (called by `create_app`) points them at the real
broker: importing this module opens no file and no connection.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from huey import Huey
from huey.storage import MemoryStorage, RedisStorage, SqliteStorage
from redis import ConnectionPool

from app.config import INSTANCE_PATH, Settings
from app.jobs.queues import QUEUES

if TYPE_CHECKING:
    from flask import Flask


class QueueHuey(Huey):
    """A huey instance whose storage is chosen when the app is configured, not at import."""

    def __init__(self, name: str):
        super().__init__(name, results=False, immediate=True)

    def get_immediate_storage(self) -> MemoryStorage:
        return MemoryStorage(self.name)


HUEYS: dict[str, QueueHuey] = {name: QueueHuey(name) for name in QUEUES}
emails = HUEYS["emails"]
uploads = HUEYS["uploads"]
sync = HUEYS["sync"]
reports = HUEYS["reports"]

_bound_app: Flask | None = None


def bound_app() -> Flask:
    """The app the queues were configured for: workers run tasks inside its context."""
    if _bound_app is None:
        raise RuntimeError("configure_queues() has not been called")
    return _bound_app


def sqlite_queue_path(settings: Settings, queue: str) -> Path:
    directory = Path(settings.jobs_sqlite_dir) if settings.jobs_sqlite_dir else INSTANCE_PATH
    return directory / f"huey-{queue}.db"


def configure_queues(settings: Settings, app: Flask) -> None:
    """Point every queue at its broker, and let the outbox dispatch to them."""
    global _bound_app
    from app.jobs.service import set_dispatcher
    from tasks.runtime import dispatch_to_huey

    _bound_app = app
    pool = None
    if settings.redis_url and not settings.jobs_immediate:
        # Non-blocking dequeue: a BRPOP would outlast the short socket timeout every client gets.
        pool = ConnectionPool.from_url(
            settings.redis_url,
            socket_timeout=settings.redis_timeout_seconds,
            socket_connect_timeout=settings.redis_timeout_seconds,
        )
    for name, huey in HUEYS.items():
        if settings.jobs_immediate:
            huey._immediate = True
            huey.storage = MemoryStorage(name)
        elif pool is not None:
            huey._immediate = False
            huey.storage = RedisStorage(f"{settings.redis_prefix}.{name}", blocking=False, connection_pool=pool)
        else:
            path = sqlite_queue_path(settings, name)
            path.parent.mkdir(parents=True, exist_ok=True)
            huey._immediate = False
            huey.storage = SqliteStorage(name, filename=str(path))
    set_dispatcher(dispatch_to_huey)
