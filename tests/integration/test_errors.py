"""One error mapper: friendly HTML pages for browsers, RFC 9457 problem+json under /api/."""

from __future__ import annotations

import pytest
from flask import Blueprint, abort
from pydantic import BaseModel, Field

from app.api.openapi import api_operation
from app.errors import Conflict, NotFound, PermissionDenied

BROWSER_ERRORS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Request Entity Too Large",
    429: "Too Many Requests",
    500: "Internal server error",
}


class Widget(BaseModel):
    name: str = Field(min_length=2, max_length=20)
    size: int = Field(ge=1, le=10)


@pytest.fixture()
def error_app(make_app):
    app = make_app(rate_limit_default="1000 per minute", max_content_length=4096)

    @app.route("/_fail/<int:code>", methods=["GET", "POST"])
    def fail(code: int):
        abort(code)

    @app.get("/_crash")
    def crash():
        raise RuntimeError("database password is hunter2")

    @app.get("/_domain/<kind>")
    def domain(kind: str):
        raise {
            "missing": NotFound("No such widget."),
            "denied": PermissionDenied(),
            "conflict": Conflict("Widget exists."),
        }[kind]

    api = Blueprint("test_api", __name__, url_prefix="/api/test")

    @api.get("/crash")
    def api_crash():
        raise RuntimeError("secret stack detail")

    @api.get("/denied")
    def api_denied():
        raise PermissionDenied("You may not do that.")

    @api.get("/unauthorized")
    def api_unauthorized():
        abort(401)

    @api_operation(api, "/widgets", method="POST", summary="Make a widget", body=Widget, response=Widget, status=201)
    def make_widget(body: Widget) -> Widget:
        return body

    app.register_blueprint(api)
    return app


@pytest.mark.parametrize("status", [400, 401, 403, 404, 405, 429, 500])
def test_browser_errors_render_a_friendly_page(error_app, status):
    response = error_app.test_client().get(f"/_fail/{status}")
    assert response.status_code == status
    assert response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    assert f"Error {status}" in html
    assert "Back to the home page" in html
    assert "Traceback" not in html


def test_browser_413_and_unknown_paths_render_pages(error_app):
    client = error_app.test_client()
    too_big = client.post("/_fail/400", data={"f": "x" * 10000})
    assert too_big.status_code == 413 and "Error 413" in too_big.get_data(as_text=True)
    missing = client.get("/no/such/page")
    assert missing.status_code == 404 and "Error 404" in missing.get_data(as_text=True)
    wrong_method = client.delete("/")
    assert wrong_method.status_code == 405 and "Error 405" in wrong_method.get_data(as_text=True)


def test_browser_500_hides_the_exception(error_app):
    response = error_app.test_client().get("/_crash")
    assert response.status_code == 500
    html = response.get_data(as_text=True)
    assert "hunter2" not in html and "RuntimeError" not in html and "Traceback" not in html


def test_the_unhandled_exception_is_logged_with_its_stack(error_app, captured_logs):
    error_app.test_client().get("/_crash", headers={"X-Request-ID": "crash-123456789"})
    [line] = captured_logs.events("unhandled_exception")
    assert line["request_id"] == "crash-123456789"
    assert "RuntimeError" in line["exception"]


def test_domain_errors_map_to_their_status(error_app):
    client = error_app.test_client()
    assert client.get("/_domain/missing").status_code == 404
    assert client.get("/_domain/denied").status_code == 403
    assert client.get("/_domain/conflict").status_code == 409
    assert "No such widget." in client.get("/_domain/missing").get_data(as_text=True)


def _assert_problem(response, status: int):
    assert response.status_code == status
    assert response.mimetype == "application/problem+json"
    body = response.json
    assert {"type", "title", "status", "detail", "instance", "request_id"} <= set(body)
    assert body["status"] == status
    assert body["request_id"] == response.headers["X-Request-ID"]
    return body


def test_api_unknown_path_is_problem_json_404(error_app):
    body = _assert_problem(error_app.test_client().get("/api/v1/does-not-exist"), 404)
    assert body["instance"] == "/api/v1/does-not-exist"
    assert body["type"].endswith("/not-found")


def test_api_wrong_method_is_problem_json_405_with_allow(error_app):
    response = error_app.test_client().delete("/api/v1/status")
    _assert_problem(response, 405)
    assert "GET" in response.headers["Allow"]


def test_api_oversize_body_is_problem_json_413(error_app):
    response = error_app.test_client().post(
        "/api/test/widgets", data=b"{" + b" " * 10000 + b"}", content_type="application/json"
    )
    _assert_problem(response, 413)


def test_api_crash_is_problem_json_500_without_details(error_app):
    response = error_app.test_client().get("/api/test/crash")
    body = _assert_problem(response, 500)
    assert "secret stack detail" not in response.get_data(as_text=True)
    assert "Traceback" not in response.get_data(as_text=True)
    assert body["title"] == "Internal server error"


def test_api_domain_errors_are_problem_json(error_app):
    client = error_app.test_client()
    assert _assert_problem(client.get("/api/test/denied"), 403)["detail"] == "You may not do that."
    response = client.get("/api/test/unauthorized")
    _assert_problem(response, 401)
    assert response.headers["WWW-Authenticate"] == "Bearer"


def test_api_invalid_input_is_422_listing_each_field(error_app):
    response = error_app.test_client().post("/api/test/widgets", json={"name": "x", "size": 99})
    body = _assert_problem(response, 422)
    fields = {error["field"]: error for error in body["errors"]}
    assert set(fields) == {"name", "size"}
    assert fields["name"]["location"] == "body"
    assert "at least 2" in fields["name"]["message"]
    assert "less than or equal to 10" in fields["size"]["message"]


def test_api_missing_fields_and_non_json_bodies_are_422(error_app):
    client = error_app.test_client()
    missing = _assert_problem(client.post("/api/test/widgets", json={}), 422)
    assert {error["field"] for error in missing["errors"]} == {"name", "size"}
    not_json = _assert_problem(client.post("/api/test/widgets", data="name=x", content_type="text/plain"), 422)
    assert not_json["errors"][0]["field"] == "body"


def test_api_valid_input_reaches_the_view(error_app):
    response = error_app.test_client().post("/api/test/widgets", json={"name": "gear", "size": 3})
    assert response.status_code == 201
    assert response.json == {"name": "gear", "size": 3}


def test_debug_mode_shows_the_exception_in_development_only(make_app):
    app = make_app(app_env="development")
    app.debug = True

    @app.get("/api/test-crash")
    def crash():
        raise ValueError("visible in development")

    assert "visible in development" in app.test_client().get("/api/test-crash").json["detail"]


def test_unhandled_errors_are_signalled_for_error_reporting(error_app):
    """Sentry's Flask integration listens to got_request_exception; the mapper must not swallow it."""
    from flask import got_request_exception

    seen = []

    def record(sender, exception, **extra):
        seen.append(exception)

    got_request_exception.connect(record, error_app)
    try:
        assert error_app.test_client().get("/_crash").status_code == 500
    finally:
        got_request_exception.disconnect(record, error_app)
    assert [type(error) for error in seen] == [RuntimeError]
