"""A job enqueued on either instance runs exactly once, whichever of the competing consumers
(one `emails` consumer per instance) takes it: its job row is claimed with a lease before the
task runs, so another delivery of the same message finds it running or finished and skips it.

Each test asks for 20 password-reset emails alternately on both instances and checks three
ways: each job row `succeeded` after one attempt, the SMTP sink received exactly one message
with each job's Message-ID (derived from the job id), and the consumers' logs show each job
started once in all. The second test first makes every message be delivered twice (the
sweeper re-sends jobs it believes lost), so both consumers hold copies of every job and only
the job-row guard keeps each from running twice.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from tests.cluster.clients import poll

EMAILS = 20
SEND_EMAIL = "tasks.emails.send_email"
ROOT = Path(__file__).resolve().parents[2]
FLASK = Path(sys.executable).parent / "flask"


def _log_events(cluster, event: str, job_ids: set[str]) -> dict[str, Counter]:
    """For each `emails` consumer, how many times it logged `event` for each of `job_ids`."""
    found: dict[str, Counter] = {}
    for instance in range(len(cluster.instance_urls)):
        name = f"consumer-emails-{instance}"
        counts: Counter = Counter()
        for line in cluster.log_path(name).read_text(errors="replace").splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if entry.get("event") == event and entry.get("job_id") in job_ids:
                counts[entry["job_id"]] += 1
        found[name] = counts
    return found


def _in_all(per_consumer: dict[str, Counter]) -> Counter:
    total: Counter = Counter()
    for counts in per_consumer.values():
        total.update(counts)
    return total


def _ask_for_resets(admin, account) -> None:
    for i in range(EMAILS):
        asked = admin.call(i % 2, "POST", f"/api/v1/admin/users/{account.id}/password-reset")
        assert asked.status_code == 202, (asked.status_code, asked.text[:300])


def _reset_jobs(sql, account) -> list:
    return sql(
        "SELECT id, status, attempts FROM jobs "
        "WHERE task = :task AND user_id = :user AND args_summary->>'template' = 'password_reset'",
        task=SEND_EMAIL,
        user=account.id,
    )


def _check_each_ran_once(cluster, sql, account) -> set[str]:
    """Wait for the 20 jobs to finish, then check rows, mails and logs; the job ids."""

    def all_finished() -> bool:
        rows = _reset_jobs(sql, account)
        return len(rows) == EMAILS and all(row.status in ("succeeded", "failed") for row in rows)

    assert poll(all_finished, 90, interval=0.25) is not None, [tuple(row) for row in _reset_jobs(sql, account)]
    time.sleep(1.0)  # a duplicate run would be in flight right after the first: let it land
    rows = _reset_jobs(sql, account)
    assert sorted((row.status, row.attempts) for row in rows) == [("succeeded", 1)] * EMAILS

    job_ids = {row.id for row in rows}
    message_ids = Counter(
        str(message["Message-ID"]).strip("<>").split("@", 1)[0]
        for message in cluster.smtp_messages()
        if account.email in str(message["To"] or "")
    )
    assert {job_id: message_ids[job_id] for job_id in job_ids} == dict.fromkeys(job_ids, 1)
    assert max(message_ids.values()) == 1, message_ids  # its sign-up verification included
    started = _log_events(cluster, "job_started", job_ids)
    assert _in_all(started) == Counter(dict.fromkeys(job_ids, 1)), started
    return job_ids


def test_emails_asked_for_on_both_instances_are_each_sent_exactly_once(cluster, admin, make_user, sql):
    account = make_user()
    _ask_for_resets(admin, account)
    _check_each_ran_once(cluster, sql, account)


def test_every_message_delivered_twice_still_runs_each_job_once(cluster, admin, make_user, sql):
    account = make_user()
    consumers = range(len(cluster.instance_urls))
    for i in consumers:  # hold the jobs in the queue while their messages are doubled
        cluster.signal_consumer("emails", i, signal.SIGTERM)
    try:
        for i in consumers:
            assert cluster.wait_exit(f"consumer-emails-{i}"), f"consumer-emails-{i} did not stop"
        _ask_for_resets(admin, account)
        assert [row.status for row in _reset_jobs(sql, account)] == ["queued"] * EMAILS
        # The sweeper, told every queued job is overdue, sends each one's message again.
        swept = subprocess.run(
            [str(FLASK), "--app", "wsgi", "jobs", "sweep"],
            cwd=ROOT,
            env={**cluster.hearth_env(), "JOBS_QUEUED_GRACE_SECONDS": "0"},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert swept.returncode == 0, swept.stdout[-2000:] + swept.stderr[-2000:]
    finally:
        for i in consumers:
            if not cluster.consumer_running("emails", i):
                cluster.start_consumer("emails", i)
    job_ids = _check_each_ran_once(cluster, sql, account)

    # Every job's second message was delivered to a consumer and skipped there.
    def duplicates_skipped() -> bool:
        return _in_all(_log_events(cluster, "job_skipped", job_ids)) == Counter(dict.fromkeys(job_ids, 1))

    assert poll(duplicates_skipped, 30, interval=0.25) is not None, _log_events(cluster, "job_skipped", job_ids)
