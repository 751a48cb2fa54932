"""Prometheus metrics (token-guarded) and optional Sentry."""

from __future__ import annotations

import sentry_sdk

from app.core.unit_of_work import unit_of_work
from app.mail.service import queue_email

TOKEN = "metrics-token-0123456789"


def test_metrics_do_not_exist_without_a_token_configured(client):
    assert client.get("/metrics").status_code == 404


def test_metrics_need_the_bearer_token(make_app):
    client = make_app(metrics_token=TOKEN).test_client()
    assert client.get("/metrics").status_code == 404
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong-token-000000"}).status_code == 404


def test_metrics_count_requests_by_endpoint_and_status_and_jobs_by_queue(make_app, app):
    metrics_app = make_app(metrics_token=TOKEN)
    client = metrics_app.test_client()
    client.get("/api/v1/status")
    client.get("/api/v1/status")
    client.get("/api/nowhere")
    with metrics_app.app_context(), unit_of_work():
        queue_email("m@example.com", "test_message", {"address": "m@example.com"})
    text = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).get_data(as_text=True)
    assert 'hearth_http_request_duration_seconds_count{endpoint="/api/v1/status",method="GET",status="200"} 2.0' in text
    assert 'hearth_http_request_duration_seconds_count{endpoint="unmatched",method="GET",status="404"} 1.0' in text
    assert 'hearth_http_request_duration_seconds_bucket{endpoint="/api/v1/status",le="0.005"' in text
    assert 'hearth_jobs{queue="emails",status="succeeded"} 1.0' in text


def _forget_sentry(client) -> None:
    """Sentry's SDK is one client per process: put back the inactive one, or this test's client
    (and the integrations it switched on, e.g. the patched subprocess) outlives the test."""
    client.close(timeout=0)
    sentry_sdk.get_global_scope().set_client(None)
    assert not sentry_sdk.get_client().is_active()


def test_sentry_is_initialised_only_when_a_dsn_is_configured(make_app):
    make_app()
    assert not sentry_sdk.get_client().is_active()
    make_app(sentry_dsn="http://public@127.0.0.1:9/1")
    client = sentry_sdk.get_client()
    try:
        assert client.is_active()
        assert client.options["data_collection"]["user_info"] is False
        assert client.options["data_collection"]["stack_frame_variables"] is False
        assert client.options["environment"] == "test"
    finally:
        _forget_sentry(client)


def test_sentry_events_carry_no_token_from_the_url(make_app):
    app = make_app(sentry_dsn="http://public@127.0.0.1:9/1")
    client = sentry_sdk.get_client()
    try:
        before_send = client.options["before_send"]
        token = "Zm9vYmFyYmF6cXV4cXV1eHF1dXhmb29iYXJiYXo"
        with app.test_request_context(f"/auth/reset/{token}?next={token}"):
            from flask import request

            request.url_rule = app.url_map.bind("localhost").match(f"/auth/reset/{token}", return_rule=True)[0]
            request.view_args = {"token": token}
            event = before_send(
                {"request": {"url": f"http://localhost/auth/reset/{token}", "query_string": f"next={token}"}}, {}
            )
        assert token not in str(event) and event["request"]["url"] == "/auth/reset/<redacted>"
    finally:
        _forget_sentry(client)
