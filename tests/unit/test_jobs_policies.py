"""The four queues and their retry policies (docs/architecture.md §9)."""

from __future__ import annotations

import smtplib

import pytest

from app.jobs.queues import QUEUES, QUEUES_KEY
from tasks.emails import is_permanent_refusal


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


@pytest.mark.parametrize(
    ("error", "final"),
    [
        (smtplib.SMTPRecipientsRefused({"a@example.com": (550, b"5.1.1 unknown")}), True),
        (smtplib.SMTPRecipientsRefused({"a@example.com": (550, b"no"), "b@example.com": (450, b"busy")}), False),
        (smtplib.SMTPRecipientsRefused({"a@example.com": (451, b"greylisted")}), False),
        (smtplib.SMTPSenderRefused(553, b"5.7.1 sender not allowed", "hearth@example.com"), True),
        (smtplib.SMTPDataError(554, b"5.7.1 message refused as spam"), True),
        (smtplib.SMTPDataError(452, b"4.3.1 insufficient storage"), False),
        (smtplib.SMTPAuthenticationError(535, b"5.7.8 bad credentials"), False),
        (smtplib.SMTPServerDisconnected("gone"), False),
        (ConnectionRefusedError(), False),
        (TimeoutError(), False),
    ],
)
def test_only_a_mail_servers_5xx_reply_is_final(error, final):
    # A 5xx is the server's last word on the message (RFC 5321 §4.2.1); wrong credentials can be fixed.
    assert is_permanent_refusal(error) is final
