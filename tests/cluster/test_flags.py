"""A feature flag toggled on one instance is seen by the cluster's other processes within a
second.

Nothing Hearth serves over HTTP reads a flag through the cache yet (the admin page reads the
database), so the reader here is an observer process: a Hearth app built from the cluster's
own environment (`cluster.hearth_env()`), exactly as each web worker builds it, asking
`feature_enabled` in a loop and printing every change it sees. Its L1 and its subscription to
the invalidation bus are a worker's. The flag is toggled through the admin page of instance 0
(then back through instance 1). A direct database write, which publishes nothing, shows the
control: the observer keeps its cached value, so only the bus makes the change arrive.
"""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster.clients import Browser

ROOT = Path(__file__).resolve().parents[2]
WITHIN = 1.0
OBSERVER = """
import json, sys, time
from wsgi import app
from app.cache.aside import state
from app.flags.service import feature_enabled

name = sys.argv[1]
with app.app_context():
    bus = state().bus
    bus.ensure_listening()
    if not bus.ready.wait(10):
        sys.exit("the invalidation bus did not subscribe")
    last = None
    while True:
        seen = feature_enabled(name)
        if seen != last:
            print(json.dumps({"enabled": seen}), flush=True)
            last = seen
        time.sleep(0.005)
"""


class Observer:
    """The observer process and the states it printed, each with when it arrived here."""

    def __init__(self, env: dict[str, str], flag: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", OBSERVER, flag],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self.seen: queue.Queue[tuple[bool, float]] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            try:
                self.seen.put((json.loads(line)["enabled"], time.monotonic()))
            except (ValueError, KeyError):
                continue

    def next_state(self, timeout: float) -> tuple[bool, float] | None:
        try:
            return self.seen.get(timeout=timeout)
        except queue.Empty:
            return None

    def stop(self) -> None:
        self.process.kill()
        self.process.wait(10)


@pytest.fixture()
def flag_name() -> str:
    return f"cluster_{uuid.uuid4().hex[:10]}"


@pytest.fixture()
def observer(cluster, flag_name) -> Iterator[Observer]:
    watching = Observer(cluster.hearth_env(), flag_name)
    yield watching
    watching.stop()


def _admin_browser(cluster, browser) -> Browser:
    admin = browser()
    assert admin.login(0, cluster.admin_email, cluster.admin_password).status_code == 302
    return admin


def _toggle(admin: Browser, instance: int, name: str, enabled: bool) -> float:
    """Toggle on `instance`; when its answer arrived (monotonic)."""
    done = admin.post_form(
        instance, f"/admin/flags/{name}/toggle", {"enabled": "1" if enabled else "0"}, "/admin/flags"
    )
    assert done.status_code == 302, (done.status_code, done.text[:300])
    return time.monotonic()


def test_a_flag_toggled_on_one_instance_is_seen_elsewhere_within_a_second(cluster, browser, sql, flag_name, observer):
    admin = _admin_browser(cluster, browser)
    created = admin.post_form(0, "/admin/flags", {"name": flag_name, "description": "cluster test", "enabled": "0"})
    assert created.status_code == 302
    first = observer.next_state(30)
    assert first is not None, "the observer process printed nothing within 30 s"
    assert first[0] is False  # off, and now cached in its L1 (and L2)

    answered = _toggle(admin, 0, flag_name, True)
    seen = observer.next_state(WITHIN + 1)
    assert seen is not None and seen[0] is True, "the observer never saw the flag on"
    assert seen[1] - answered <= WITHIN, f"seen {seen[1] - answered:.3f} s after instance 0 answered"

    answered = _toggle(admin, 1, flag_name, False)
    seen = observer.next_state(WITHIN + 1)
    assert seen is not None and seen[0] is False, "the observer never saw the flag off"
    assert seen[1] - answered <= WITHIN, f"seen {seen[1] - answered:.3f} s after instance 1 answered"

    # The control: a write that publishes no invalidation is not seen (the value is cached).
    assert sql("UPDATE feature_flags SET enabled = TRUE WHERE name = :name RETURNING name", name=flag_name)
    assert observer.next_state(WITHIN + 0.2) is None
