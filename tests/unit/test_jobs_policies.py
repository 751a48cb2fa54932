"""The four queues and their retry policies (docs/architecture.md §9)."""

from __future__ import annotations

import pytest

from app.jobs.queues import QUEUES, QUEUES_KEY


def test_the_seed_queues_with_their_concurrency_and_retries():
    assert {name: (spec.workers, spec.retries, spec.exponential) for name, spec in QUEUES.items()} == {
        "emails": (10, 3, True),
        "uploads": (5, 2, False),
        "sync": (3, 5, True),
        "reports": (2, 1, False),
    }


def test_max_attempts_is_one_more_than_retries():
    assert QUEUES["emails"].max_attempts == 4 and QUEUES["reports"].max_attempts == 2


@pytest.mark.parametrize(("attempt", "delay"), [(1, 10), (2, 20), (3, 40), (5, 160)])
def test_exponential_backoff_doubles(attempt, delay):
    assert QUEUES["sync"].backoff_seconds(attempt, base=10, cap=3600) == delay


def test_backoff_is_capped_and_flat_queues_stay_flat():
    assert QUEUES["sync"].backoff_seconds(20, base=10, cap=300) == 300
    assert QUEUES["uploads"].backoff_seconds(2, base=10, cap=300) == 10


def test_every_queue_has_a_huey_instance_of_its_own_in_each_app():
    from app import create_app

    first, second = (create_app().extensions[QUEUES_KEY].hueys for _ in range(2))
    assert set(first) == set(second) == set(QUEUES)
    assert len({id(huey) for huey in [*first.values(), *second.values()]}) == 8
