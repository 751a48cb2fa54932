"""Daily statistics (app.stats): a day's rollup counts what the source tables hold (checked
against counts computed here, row by row, and against PostgreSQL's percentile_cont), re-running
it replaces the day with the same rows, today is computed live and never stored, series are
zero-filled, `flask stats backfill|rollup` and the nightly task roll days up, and the
dashboard draws the stored figures as charts with a table each, without re-reading them per view."""

from __future__ import annotations

import re
import statistics
import uuid
from collections import Counter
from datetime import UTC, date, datetime, time, timedelta

import pytest
from sqlalchemy import event, func, select, text

from app.audit.models import AuditEvent
from app.core.database import utcnow
from app.errors import ValidationFailed
from app.exports.models import Export
from app.exports.renderers.queries import SIGN_IN_EVENTS
from app.extensions import db
from app.jobs.models import FINAL_STATUSES, Job, JobStatus
from app.rbac import management as role_management
from app.stats import service as stats
from app.stats.models import DailyStat
from app.stats.queries import SIGN_IN_OUTCOMES
from app.uploads.models import Upload
from app.users.models import User
from app.webhooks.models import WebhookDelivery, WebhookEndpoint
from tasks import PERIODIC_TASKS
from tests.conftest import database_is

# --- seeding ------------------------------------------------------------------------------------


def _at(day: date, hour: int = 12, minute: int = 0, second: int = 0, micro: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute, second, micro), tzinfo=UTC)


def _midnight(day: date) -> datetime:
    return _at(day, 0)


def _last_instant(day: date) -> datetime:
    return _at(day, 23, 59, 59, 999_000)


def _job(queue: str, status: str, finished_at: datetime | None, duration_ms: float | None = None) -> Job:
    return Job(
        id=str(uuid.uuid4()),
        queue=queue,
        task=f"tasks.{queue}.work",
        status=status,
        duration_ms=duration_ms,
        created_at=(finished_at or utcnow()) - timedelta(minutes=1),
        finished_at=finished_at,
    )


def _upload(user_id: int, kind: str, status: str, created_at: datetime, size: int | None, declared: int) -> Upload:
    key = uuid.uuid4().hex
    return Upload(
        id=key,
        user_id=user_id,
        kind=kind,
        status=status,
        filename=f"{key}.bin",
        content_type="application/octet-stream",
        declared_size=declared,
        size=size,
        key=f"k/{key}",
        created_at=created_at,
    )


def seed_day(app, make_user, day: date) -> dict[str, int]:
    """Activity on `day`, with more just before and after it (the instants at the edges of the
    UTC day decide which day a row belongs to). Returns the users' ids by name."""
    before, after = _last_instant(day - timedelta(days=1)), _midnight(day + timedelta(days=1))
    users = {
        "first": make_user(created_at=_midnight(day)),
        "last": make_user(created_at=_last_instant(day)),
        "noon": make_user(created_at=_at(day)),
        "before": make_user(created_at=before),
        "after": make_user(created_at=after),
    }
    ids = {name: user.id for name, user in users.items()}
    with app.app_context():
        events = [
            ("login_succeeded", ids["first"], _midnight(day)),
            ("login_succeeded", ids["first"], _at(day, 9)),
            ("login_succeeded", ids["noon"], _at(day, 13)),
            ("signed_in_remembered", ids["last"], _last_instant(day)),
            ("login_failed", ids["noon"], _at(day, 8)),
            ("login_failed", None, _at(day, 8, 5)),
            ("login_refused_locked", ids["noon"], _at(day, 8, 10)),
            ("login_refused_disabled", ids["before"], _at(day, 10)),
            ("api_tokens_issued", ids["first"], _at(day, 9)),  # follows a login_succeeded: not a sign-in
            ("login_succeeded", ids["before"], before),
            ("login_succeeded", ids["after"], after),
        ]
        db.session.add_all(
            AuditEvent(event=name, actor_user_id=user_id, subject_user_id=user_id, created_at=at, data={})
            for name, user_id, at in events
        )
        owner = ids["first"]
        db.session.add_all(
            [
                _upload(owner, "document", "ready", _at(day, 1), 100, 120),
                _upload(owner, "document", "ready", _at(day, 2), 200, 220),
                _upload(owner, "document", "pending", _at(day, 3), None, 50),  # counts its declared size
                _upload(owner, "avatar", "ready", _at(day, 4), 10, 10),
                _upload(owner, "avatar", "rejected", _last_instant(day), None, 7),
                _upload(owner, "document", "ready", before, 999, 999),
                _upload(owner, "video", "ready", after, 999, 999),
            ]
        )
        db.session.add_all(
            [
                *[_job("emails", JobStatus.succeeded, _at(day, 5, n), ms) for n, ms in enumerate((10, 20, 40, 45))],
                _job("emails", JobStatus.failed, _at(day, 6), 100),
                _job("sync", JobStatus.revoked, _at(day, 7)),
                _job("reports", JobStatus.succeeded, _midnight(day), 1000),
                _job("reports", JobStatus.succeeded, _last_instant(day), 3000),
                _job("emails", JobStatus.running, None),  # no outcome yet
                _job("emails", JobStatus.succeeded, before, 5),
                _job("emails", JobStatus.failed, after, 5),
            ]
        )
        db.session.add_all(
            Export(id=str(uuid.uuid4()), user_id=owner, kind=kind, filters={}, status="ready", created_at=at)
            for kind, at in (
                ("account_data", _at(day, 1)),
                ("account_data", _at(day, 2)),
                ("users_csv", _at(day, 3)),
                ("users_csv", before),
            )
        )
        endpoint = WebhookEndpoint(
            id=str(uuid.uuid4()), url="https://hooks.example.com/in", events=["user.created"], secret_encrypted="x"
        )
        db.session.add(endpoint)
        db.session.flush()  # no relationship orders the two inserts
        db.session.add_all(
            WebhookDelivery(
                id=str(uuid.uuid4()),
                endpoint_id=endpoint.id,
                event_type="user.created",
                payload={},
                status=status,
                created_at=at,
            )
            for status, at in (
                ("succeeded", _at(day, 1)),
                ("succeeded", _at(day, 2)),
                ("failed", _at(day, 3)),
                ("pending", after),
            )
        )
        db.session.commit()
    return ids


def _on(value: datetime | None, day: date) -> bool:
    return value is not None and value.astimezone(UTC).date() == day


def counted_directly(app, day: date) -> dict[str, dict[str, float]]:
    """Every metric of `day`, from the rows themselves read into Python (no GROUP BY, no day
    function): what the rollup must agree with."""
    with app.app_context():
        session = db.session
        users = session.scalars(select(User)).all()
        events = session.scalars(select(AuditEvent)).all()
        uploads = session.scalars(select(Upload)).all()
        jobs = session.scalars(select(Job)).all()
        exports = session.scalars(select(Export)).all()
        deliveries = session.scalars(select(WebhookDelivery)).all()
        signed_in = {"login_succeeded", "signed_in_remembered"}
        day_events = [e for e in events if _on(e.created_at, day)]
        upload_counts, upload_bytes = Counter(), Counter()
        for upload in (u for u in uploads if _on(u.created_at, day)):
            upload_counts[f"{upload.kind}:{upload.status}"] += 1
            upload_bytes[f"{upload.kind}:{upload.status}"] += (
                upload.size if upload.size is not None else upload.declared_size
            )
        finished = [j for j in jobs if j.status in FINAL_STATUSES and _on(j.finished_at, day)]
        durations: dict[str, list[float]] = {}
        for job in finished:
            if job.duration_ms is not None:
                durations.setdefault(job.queue, []).append(job.duration_ms)
        return {
            "signups": {"": sum(1 for u in users if _on(u.created_at, day))},
            "active_users": {"": len({e.subject_user_id for e in day_events if e.event in signed_in})},
            "sign_ins": dict(Counter(SIGN_IN_OUTCOMES[e.event] for e in day_events if e.event in SIGN_IN_OUTCOMES)),
            "uploads": dict(upload_counts),
            "upload_bytes": dict(upload_bytes),
            "jobs": dict(Counter(f"{j.queue}:{j.status}" for j in finished)),
            "job_duration_p50_ms": {q: round(statistics.median(v), 1) for q, v in durations.items()},
            "job_duration_p95_ms": {
                q: round(v[0] if len(v) == 1 else statistics.quantiles(v, n=100, method="inclusive")[94], 1)
                for q, v in durations.items()
            },
            "exports": dict(Counter(e.kind for e in exports if _on(e.created_at, day))),
            "webhook_deliveries": dict(Counter(d.status for d in deliveries if _on(d.created_at, day))),
        }


def _flat(figures: dict[str, dict[str, float]]) -> dict[str, float]:
    return {
        f"{metric}[{dimension}]": value for metric, values in figures.items() for dimension, value in values.items()
    }


def stored_rows(app, day: date | None = None) -> list[tuple[date, str, str, float]]:
    with app.app_context():
        statement = select(DailyStat.day, DailyStat.metric, DailyStat.dimension, DailyStat.value).order_by(
            DailyStat.day, DailyStat.metric, DailyStat.dimension
        )
        if day is not None:
            statement = statement.where(DailyStat.day == day)
        return [tuple(row) for row in db.session.execute(statement)]


def stored_figures(app, day: date) -> dict[str, dict[str, float]]:
    figures: dict[str, dict[str, float]] = {}
    for _day, metric, dimension, value in stored_rows(app, day):
        figures.setdefault(metric, {})[dimension] = value
    return figures


def rollup(app, day: date) -> int:
    with app.app_context():
        return stats.rollup_day(day)


@pytest.fixture()
def day() -> date:
    return utcnow().date() - timedelta(days=5)


# --- the rollup -------------------------------------------------------------------------------


def test_every_sign_in_event_has_an_outcome():
    assert set(SIGN_IN_OUTCOMES) == set(SIGN_IN_EVENTS)


def test_a_rolled_up_day_holds_what_its_rows_count(app, make_user, day):
    seed_day(app, make_user, day)
    rollup(app, day)
    expected = counted_directly(app, day)
    stored = stored_figures(app, day)
    assert set(stored) <= set(stats.METRICS)
    for metric in stats.METRICS:
        assert stored.get(metric, {}) == pytest.approx(expected[metric]), metric
    # The same figures, written out: the edges of the UTC day fall inside it, the instants
    # before and after do not.
    assert stored["signups"] == {"": 3}
    assert stored["active_users"] == {"": 3}
    assert stored["sign_ins"] == {"succeeded": 3, "remembered": 1, "failed": 2, "locked": 1, "disabled": 1}
    assert stored["uploads"] == {"document:ready": 2, "document:pending": 1, "avatar:ready": 1, "avatar:rejected": 1}
    assert stored["upload_bytes"] == {
        "document:ready": 300,
        "document:pending": 50,
        "avatar:ready": 10,
        "avatar:rejected": 7,
    }
    assert stored["jobs"] == {"emails:succeeded": 4, "emails:failed": 1, "sync:revoked": 1, "reports:succeeded": 2}
    assert stored["job_duration_p50_ms"] == {"emails": 40.0, "reports": 2000.0}
    assert stored["job_duration_p95_ms"] == {"emails": 89.0, "reports": 2900.0}
    assert stored["exports"] == {"account_data": 2, "users_csv": 1}
    assert stored["webhook_deliveries"] == {"succeeded": 2, "failed": 1}


def test_percentiles_agree_with_the_database(app, make_user, day):
    """On PostgreSQL, the Python percentiles equal percentile_cont's (the same interpolation)."""
    seed_day(app, make_user, day)
    rollup(app, day)
    stored = stored_figures(app, day)
    if not database_is(app, "postgresql"):
        pytest.skip("percentile_cont is PostgreSQL's; counted_directly checks the same figures on SQLite")
    with app.app_context():
        start = _midnight(day)
        rows = db.session.execute(
            text(
                "SELECT queue, percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_ms), "
                "percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms) FROM jobs "
                "WHERE finished_at >= :start AND finished_at < :end AND duration_ms IS NOT NULL "
                "AND status IN ('succeeded', 'failed', 'revoked') GROUP BY queue"
            ),
            {"start": start, "end": start + timedelta(days=1)},
        ).all()
    assert {queue: round(p50, 1) for queue, p50, _ in rows} == stored["job_duration_p50_ms"]
    assert {queue: round(p95, 1) for queue, _, p95 in rows} == stored["job_duration_p95_ms"]


def test_rolling_a_day_up_again_gives_the_same_rows_and_replaces_changed_figures(app, make_user, day):
    seed_day(app, make_user, day)
    other = day - timedelta(days=3)
    make_user(created_at=_at(other))
    rollup(app, other)
    rollup(app, day)
    first = stored_rows(app)
    rollup(app, day)
    assert stored_rows(app) == first
    # A late change (an upload confirmed after the rollup, a new account) is picked up by the
    # next run, which replaces the day's rows rather than adding to them.
    make_user(created_at=_at(day, 15))
    with app.app_context():
        db.session.execute(Upload.__table__.update().where(Upload.status == "pending").values(status="ready", size=60))
        db.session.commit()
    rollup(app, day)
    again = stored_figures(app, day)
    assert again["signups"] == {"": 4}
    assert again["uploads"]["document:ready"] == 3 and "document:pending" not in again["uploads"]
    assert _flat(again) == pytest.approx(_flat(counted_directly(app, day)))
    assert stored_rows(app, other) == [row for row in first if row[0] == other]


def test_a_day_with_nothing_in_it_is_stored_as_zeros(app, day):
    rollup(app, day)
    assert stored_rows(app) == [(day, "active_users", "", 0.0), (day, "signups", "", 0.0)]


def test_a_rollup_that_fails_keeps_the_day_as_it_was(app, make_user, day, monkeypatch):
    seed_day(app, make_user, day)
    rollup(app, day)
    before = stored_rows(app)

    def broken(_day):
        raise RuntimeError("the exports table is unreachable")

    monkeypatch.setitem(stats._COLLECT, "exports", broken)
    with pytest.raises(RuntimeError):
        rollup(app, day)
    assert stored_rows(app) == before


def test_today_cannot_be_rolled_up(app):
    with app.app_context(), pytest.raises(ValidationFailed) as refused:
        stats.rollup_day(utcnow().date())
    assert refused.value.extra["errors"][0]["field"] == "day"


# --- series -------------------------------------------------------------------------------------


def test_a_series_reaching_today_computes_today_live_and_stores_nothing(app, make_user):
    today = utcnow().date()
    make_user()
    make_user()
    with app.app_context():
        found = stats.series("signups", today - timedelta(days=2), today)
    assert found.live_day == today
    assert found.days == [today - timedelta(days=2), today - timedelta(days=1), today]
    assert found.values == {"": [0, 0, 2]}
    assert stored_rows(app) == []


def test_a_series_zero_fills_days_and_dimensions_and_leaves_unmeasured_durations_empty(app, make_user, day):
    seed_day(app, make_user, day)
    rollup(app, day)
    since, until = day - timedelta(days=1), day + timedelta(days=1)
    with app.app_context():
        jobs = stats.series("jobs", since, until)
        p50 = stats.series("job_duration_p50_ms", since, until)
        signups = stats.series("signups", since, until)
    assert jobs.live_day is None
    assert jobs.values["emails:succeeded"] == [0, 4, 0]
    assert jobs.values["sync:revoked"] == [0, 1, 0]
    # The days either side were never rolled up: 0 for counts, None for durations.
    assert p50.values == {"emails": [None, 40.0, None], "reports": [None, 2000.0, None]}
    assert signups.values == {"": [0, 3, 0]}
    assert jobs.day_totals() == [0, 8, 0] and jobs.total("emails:succeeded") == 4


@pytest.mark.parametrize(
    ("since_days", "until_days", "field"),
    [
        (3, 4, "to"),  # ends before it starts
        (-1, 0, "from"),  # tomorrow
        (0, -1, "to"),
        (400, 0, "to"),  # longer than 366 days
    ],
)
def test_a_series_refuses_ranges_it_cannot_answer(app, since_days, until_days, field):
    today = utcnow().date()
    with app.app_context(), pytest.raises(ValidationFailed) as refused:
        stats.series("signups", today - timedelta(days=since_days), today - timedelta(days=until_days))
    assert [error["field"] for error in refused.value.extra["errors"]] == [field]


def test_a_series_refuses_an_unknown_metric(app):
    today = utcnow().date()
    with app.app_context(), pytest.raises(ValidationFailed) as refused:
        stats.series("logins", today, today)
    assert refused.value.extra["errors"][0]["field"] == "metric"


# --- backfill, the CLI and the nightly task -----------------------------------------------------


def test_backfill_rolls_up_the_last_days_ending_yesterday(app, make_user):
    yesterday = utcnow().date() - timedelta(days=1)
    make_user(created_at=_at(yesterday - timedelta(days=1)))
    runner = app.test_cli_runner()
    result = runner.invoke(args=["stats", "backfill", "--days", "3"])
    assert result.exit_code == 0, result.output
    assert re.search(rf"rolled up 3 days \({yesterday - timedelta(days=2)} to {yesterday}\): 6 rows", result.output)
    signups = [(row[0], row[3]) for row in stored_rows(app) if row[1] == "signups"]
    assert signups == [
        (yesterday - timedelta(days=2), 0.0),
        (yesterday - timedelta(days=1), 1.0),
        (yesterday, 0.0),
    ]
    first = stored_rows(app)
    assert runner.invoke(args=["stats", "backfill", "--days", "3"]).exit_code == 0
    assert stored_rows(app) == first


def test_backfill_refuses_a_number_of_days_out_of_bounds(app):
    result = app.test_cli_runner().invoke(args=["stats", "backfill", "--days", "0"])
    assert result.exit_code == 2 and "--days" in result.output
    assert stored_rows(app) == []


def test_rollup_command_rolls_up_one_day_and_refuses_today(app, make_user, day):
    seed_day(app, make_user, day)
    runner = app.test_cli_runner()
    result = runner.invoke(args=["stats", "rollup", "--day", day.isoformat()])
    assert result.exit_code == 0, result.output
    assert stored_figures(app, day)["signups"] == {"": 3}
    refused = runner.invoke(args=["stats", "rollup", "--day", utcnow().date().isoformat()])
    assert refused.exit_code == 1 and "day: must be a day before today" in refused.output


def test_the_nightly_task_rolls_up_yesterday_and_days_it_missed(app, make_user):
    [task] = [task for task in PERIODIC_TASKS if task.name == "rollup_daily_stats"]
    assert dict(task.cron) == {"hour": "0", "minute": "20"}
    yesterday = utcnow().date() - timedelta(days=1)
    done_before = yesterday - timedelta(days=2)
    rollup(app, done_before)
    make_user(created_at=_at(yesterday))
    with app.app_context():
        report = task.func()
    # Yesterday, and each of the 7 days before it but the one already rolled up.
    assert report["days"] == 7
    days = {row[0] for row in stored_rows(app) if row[1] == "signups"}
    assert days == {yesterday - timedelta(days=n) for n in range(8)}
    assert stored_figures(app, yesterday)["signups"] == {"": 1}


# --- the dashboard ------------------------------------------------------------------------------


def _store(app, rows) -> None:
    with app.app_context():
        db.session.add_all(DailyStat(day=d, metric=m, dimension=dim, value=v) for d, m, dim, v in rows)
        db.session.commit()


def test_the_dashboard_draws_the_last_30_days_with_a_table_each(app, client, auth, make_user):
    admin = make_user(email="admin@example.com", role="admin")
    today = utcnow().date()
    three_days_ago = today - timedelta(days=3)
    _store(
        app,
        [
            (three_days_ago, "signups", "", 7),
            (three_days_ago, "sign_ins", "failed", 4),
            (three_days_ago, "uploads", "document:ready", 5),
            (three_days_ago, "jobs", "emails:failed", 2),
            (three_days_ago, "jobs", "emails:succeeded", 9),
            (today - timedelta(days=40), "signups", "", 99),  # outside the 30 days
        ],
    )
    auth.login(admin)
    html = client.get("/admin/").get_data(as_text=True)
    charts = re.findall(r'<article class="chart" id="chart-([\w-]+)"', html)
    assert charts == ["signups", "sign-ins", "uploads", "jobs-emails", "jobs-uploads", "jobs-sync", "jobs-reports"]
    assert html.count('role="img"') == len(charts)
    assert 'style="' not in html and "<script>" not in html  # nothing the CSP refuses
    signups = html[html.index('id="chart-signups"') : html.index('id="chart-sign-ins"')]
    assert "last 30 days: 8 in all" in signups  # 7 stored + the admin's own sign-up today, live
    assert signups.count('<tr><th scope="row">') == 30
    assert ">99<" not in signups
    emails = html[html.index('id="chart-jobs-emails"') : html.index('id="chart-jobs-uploads"')]
    assert "chart-tone--bad" in emails and "chart-tone--ok" in emails
    assert re.search(r'data-label="Failed">2</td>', emails)
    assert "The last day is today so far." in html


def test_the_dashboard_reads_the_figures_once_then_from_the_cache(app, client, auth, make_user):
    admin = make_user(email="admin@example.com", role="admin")
    auth.login(admin)
    with app.app_context():
        engine = db.engine
    statements: list[str] = []

    def count(conn, cursor, statement, *args):
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        assert client.get("/admin/").status_code == 200
        first = [s for s in statements if "daily_stats" in s or "audit_events" in s]
        statements.clear()
        assert client.get("/admin/").status_code == 200
        second = [s for s in statements if "daily_stats" in s or "audit_events" in s]
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert sum("daily_stats" in s for s in first) == 1
    assert second == []


def test_a_rollup_refreshes_the_dashboard_at_once(app, client, auth, make_user, day):
    admin = make_user(email="admin@example.com", role="admin")
    auth.login(admin)
    client.get("/admin/")  # cached: no figures for `day`
    make_user(created_at=_at(day))
    rollup(app, day)
    html = client.get("/admin/").get_data(as_text=True)
    signups = html[html.index('id="chart-signups"') : html.index('id="chart-sign-ins"')]
    assert "last 30 days: 2 in all" in signups  # the rolled-up day and the admin's sign-up today


def test_charts_show_to_stats_readers_only(app, client, auth, make_user):
    admin = make_user(email="admin@example.com", role="admin")
    with app.app_context():
        actor = db.session.get(User, admin.id)
        role_management.create_role(actor, "analyst", "Numbers only", ["stats:read"])
        role_management.create_role(actor, "operator", "Jobs only", ["jobs:read"])
    analyst = make_user(email="analyst@example.com", roles=("analyst",))
    operator = make_user(email="operator@example.com", roles=("operator",))
    auth.login(analyst)
    html = client.get("/admin/").get_data(as_text=True)
    assert 'id="chart-signups"' in html and 'id="queues-title"' not in html
    auth.logout()
    auth.login(operator)
    html = client.get("/admin/").get_data(as_text=True)
    assert "chart-signups" not in html and 'id="queues-title"' in html


def test_the_stats_table_is_indexed_by_metric_and_day(app):
    with app.app_context():
        count = db.session.scalar(select(func.count()).select_from(DailyStat))
        indexes = {index.name for index in DailyStat.__table__.indexes}
    assert count == 0 and "ix_daily_stats_metric_day" in indexes


def test_two_rollups_of_the_same_day_at_once_take_turns(app, make_user, day):
    """A backfill while the nightly run rolls up the same day: the second waits for the first,
    then replaces what it committed (on PostgreSQL, without the day's lock, both inserted and
    the second failed on the unique key)."""
    import threading

    from app.core.unit_of_work import unit_of_work
    from app.stats.repository import DailyStatRepository

    make_user(email="turns@example.com", created_at=datetime.combine(day, time(12), tzinfo=UTC))
    second: dict[str, object] = {}

    def second_rollup():
        try:
            with app.app_context():
                second["rows"] = stats.rollup_day(day)
        except Exception as error:  # reported below
            second["error"] = error

    with app.app_context(), unit_of_work():
        DailyStatRepository().replace_day(day, [("signups", "", 1.0), ("active_users", "", 0.0)])
        thread = threading.Thread(target=second_rollup)
        thread.start()
        thread.join(timeout=1)  # it waits for this unit (PostgreSQL: the day's lock; SQLite: the write lock)
    thread.join(timeout=30)
    assert "error" not in second, second.get("error")
    with app.app_context():
        rows = db.session.scalars(select(DailyStat).where(DailyStat.day == day, DailyStat.metric == "signups")).all()
        assert [(row.dimension, row.value) for row in rows] == [("", 1.0)]
