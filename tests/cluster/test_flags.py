"""A feature flag toggled on one instance is seen by the other within a second.

`GET /api/v1/flags` reads the flags like `feature_enabled` does: from the process's L1 (30 s)
and L2. The flag is toggled through the admin page of instance 0 (then back through instance
1) while instance 1 is asked over and over, on fresh connections so every one of its worker
processes answers, each with its own L1. A direct database write, which publishes nothing,
is the control: instance 1 keeps answering its cached value, so only the invalidation bus
makes the change arrive.
"""

from __future__ import annotations

import time
import uuid

from tests.cluster.clients import Browser, poll

WITHIN = 1.0
READS_TO_WARM = 8  # fresh connections: both of the instance's worker processes cache the flags


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


def test_a_flag_toggled_on_one_instance_is_seen_on_the_other_within_a_second(cluster, browser, admin, sql):
    name = f"cluster_{uuid.uuid4().hex[:10]}"

    def on_instance_1() -> bool | None:
        answer = admin.call(1, "GET", "/api/v1/flags")
        assert answer.status_code == 200, (answer.status_code, answer.text[:300])
        return answer.json()["flags"].get(name)

    pages = _admin_browser(cluster, browser)
    created = pages.post_form(0, "/admin/flags", {"name": name, "description": "cluster test", "enabled": "0"})
    assert created.status_code == 302
    assert poll(lambda: on_instance_1() is False, WITHIN) is not None, "instance 1 never listed the new flag"
    for _ in range(READS_TO_WARM):
        assert on_instance_1() is False  # off, and now cached in instance 1's workers

    _toggle(pages, 0, name, True)
    took = poll(lambda: on_instance_1() is True, WITHIN, consecutive=READS_TO_WARM)
    assert took is not None, "instance 1 did not see the flag on within 1 s"

    _toggle(pages, 1, name, False)
    took = poll(lambda: admin.call(0, "GET", "/api/v1/flags").json()["flags"][name] is False, WITHIN, consecutive=4)
    assert took is not None, "instance 0 did not see the flag off within 1 s"
    for _ in range(READS_TO_WARM):
        assert on_instance_1() is False

    # The control: a write that publishes no invalidation is not seen (the value is cached).
    assert sql("UPDATE feature_flags SET enabled = TRUE WHERE name = :name RETURNING name", name=name)
    assert poll(lambda: on_instance_1() is True, WITHIN) is None
