"""`GET /api/v1/admin/stats`: who may read it (`stats:read` or `audit:read`), what it refuses
(RFC 9457 422s naming `from`, `to` or `metric`, never a 500) and the shape of a series."""

from __future__ import annotations

from datetime import timedelta

import pytest

from app.core.database import utcnow
from app.extensions import db
from app.rbac import management as role_management
from app.stats.models import DailyStat
from app.users.models import User

URL = "/api/v1/admin/stats"


@pytest.fixture()
def readers(app, make_user):
    """An account per way in: `stats:read` only, `audit:read` only, and one with neither."""
    admin = make_user(email="admin@example.com", role="admin")
    with app.app_context():
        actor = db.session.get(User, admin.id)
        role_management.create_role(actor, "analyst", "Numbers only", ["stats:read"])
        role_management.create_role(actor, "auditor", "Audit only", ["audit:read"])
        role_management.create_role(actor, "operator", "Jobs only", ["jobs:read"])
    return {
        "analyst": make_user(email="analyst@example.com", roles=("analyst",)),
        "auditor": make_user(email="auditor@example.com", roles=("auditor",)),
        "operator": make_user(email="operator@example.com", roles=("operator",)),
        "admin": admin,
    }


def test_nobody_signed_in_gets_401(client):
    response = client.get(URL, query_string={"metric": "signups"})
    assert response.status_code == 401
    assert response.content_type == "application/problem+json"


def test_an_account_without_stats_or_audit_permission_gets_403(client, api_auth, readers):
    response = client.get(URL, query_string={"metric": "signups"}, headers=api_auth.headers(readers["operator"]))
    assert response.status_code == 403
    assert "stats:read" in response.json["detail"]


@pytest.mark.parametrize("reader", ["analyst", "auditor", "admin"])
def test_stats_read_or_audit_read_is_enough(client, api_auth, readers, reader):
    response = client.get(URL, query_string={"metric": "signups"}, headers=api_auth.headers(readers[reader]))
    assert response.status_code == 200, response.json


def test_a_series_is_one_value_per_day_and_dimension_zero_filled_with_today_live(app, client, api_auth, readers):
    today = utcnow().date()
    with app.app_context():
        db.session.add_all(
            [
                DailyStat(day=today - timedelta(days=2), metric="jobs", dimension="emails:succeeded", value=5),
                DailyStat(day=today - timedelta(days=2), metric="jobs", dimension="emails:failed", value=1),
                DailyStat(day=today - timedelta(days=1), metric="jobs", dimension="sync:succeeded", value=3),
                DailyStat(day=today - timedelta(days=9), metric="jobs", dimension="sync:failed", value=8),  # before
                DailyStat(day=today - timedelta(days=2), metric="signups", dimension="", value=4),
            ]
        )
        db.session.commit()
    headers = api_auth.headers(readers["analyst"])
    since = (today - timedelta(days=3)).isoformat()
    response = client.get(URL, query_string={"metric": "jobs", "from": since, "to": today.isoformat()}, headers=headers)
    assert response.status_code == 200, response.json
    body = response.json
    assert body["metric"] == "jobs" and body["unit"] == "count" and body["dimension"] == "queue:outcome"
    assert body["from"] == since and body["to"] == today.isoformat() and body["live_day"] == today.isoformat()
    assert body["days"] == [(today - timedelta(days=n)).isoformat() for n in (3, 2, 1, 0)]
    series = {item["dimension"]: item for item in body["series"]}
    assert list(series) == ["emails:failed", "emails:succeeded", "sync:succeeded"]
    assert series["emails:succeeded"] == {"dimension": "emails:succeeded", "values": [0, 5, 0, 0], "total": 5}
    assert series["sync:succeeded"]["values"] == [0, 0, 3, 0]

    # Default range: the last 30 days, today included; today's sign-ups (the readers) come live.
    body = client.get(URL, query_string={"metric": "signups"}, headers=headers).json
    assert len(body["days"]) == 30 and body["to"] == today.isoformat()
    [signups] = body["series"]
    assert signups["dimension"] == "" and signups["values"][-3] == 4 and signups["values"][-1] == 4


def test_durations_of_days_without_jobs_are_null(app, client, api_auth, readers):
    yesterday = utcnow().date() - timedelta(days=1)
    with app.app_context():
        db.session.add(DailyStat(day=yesterday, metric="job_duration_p95_ms", dimension="emails", value=812.5))
        db.session.commit()
    query = {"metric": "job_duration_p95_ms", "from": (yesterday - timedelta(days=1)).isoformat(), "to": yesterday}
    body = client.get(URL, query_string=query, headers=api_auth.headers(readers["auditor"])).json
    assert body["unit"] == "ms" and body["live_day"] is None
    assert body["series"] == [{"dimension": "emails", "values": [None, 812.5], "total": 812.5}]


def _today(days: int = 0) -> str:
    return (utcnow().date() + timedelta(days=days)).isoformat()


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({}, "metric"),
        ({"metric": "logins"}, "metric"),
        ({"metric": "signups", "from": "2026-13-01"}, "from"),
        ({"metric": "signups", "from": "1700000000"}, "from"),  # a timestamp is no day
        ({"metric": "signups", "to": "yesterday"}, "to"),
        ({"metric": "signups", "to": _today(1)}, "to"),  # the future
        ({"metric": "signups", "from": "1999-12-31", "to": "2000-01-05"}, "from"),
        ({"metric": "signups", "to": "0001-01-01"}, "to"),  # no default `from` computed from it
        ({"metric": "signups", "to": "9999-12-31"}, "to"),
        ({"metric": "signups", "from": _today(-1), "to": _today(-2)}, "to"),  # reversed
        ({"metric": "signups", "from": _today(-366), "to": _today()}, "to"),  # 367 days
        ({"metric": "signups", "since": _today(-3)}, "since"),  # not a parameter
    ],
)
def test_bad_parameters_are_a_422_naming_the_field(client, api_auth, readers, query, field):
    response = client.get(URL, query_string=query, headers=api_auth.headers(readers["analyst"]))
    assert response.status_code == 422, response.json
    assert response.content_type == "application/problem+json"
    assert [error["field"] for error in response.json["errors"]] == [field]


def test_the_longest_range_is_366_days(client, api_auth, readers):
    query = {"metric": "signups", "from": _today(-365), "to": _today()}
    response = client.get(URL, query_string=query, headers=api_auth.headers(readers["analyst"]))
    assert response.status_code == 200 and len(response.json["days"]) == 366


def test_the_operation_is_in_the_openapi_document(client):
    document = client.get("/api/openapi.json").json
    operation = document["paths"]["/api/v1/admin/stats"]["get"]
    assert {parameter["name"] for parameter in operation["parameters"]} >= {"metric", "from", "to"}
    assert "403" in operation["responses"] and "422" in operation["responses"]
    schema = document["components"]["schemas"]["StatsOut"]
    assert {"from", "to", "days", "series", "live_day"} <= set(schema["properties"])
