"""Hostile input is refused at the edge (app.core.input), never with a 500: NUL bytes and lone
surrogates in any text, JSON nested too deep, numbers beyond the columns' range.

Most cases here answered 500 before the edge validation existed, on one profile or both:
PostgreSQL refuses NUL in text and integers above 2**31-1 in int4 columns, SQLite integers
above 2**63-1, and the standard json module recursed once per nesting level. The others
(lone surrogates reaching a pydantic schema, `page=1e20`, a NUL in an enum parameter) already
answered 422 and stay pinned down beside them."""

from __future__ import annotations

import re
from typing import Any

import pytest

from app.core.input import MAX_ID, MAX_JSON_DEPTH
from tests.support import PASSWORD, csrf_token

HUGE = 10**20  # beyond 64 bits
JUST_ABOVE = MAX_ID + 1  # beyond PostgreSQL's int4


@pytest.fixture()
def admin_headers(api_auth, make_user) -> dict[str, str]:
    return api_auth.headers(make_user(email="root@example.com", roles=("admin",)))


def _problem(response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)[:500]
    assert response.mimetype == "application/problem+json"
    return response.json


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


# JSON bodies -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        "[" * 100_000,  # unterminated: the attack as found
        '{"a":' * 50_000 + "1" + "}" * 50_000,
        _nested(MAX_JSON_DEPTH + 1),
    ],
    ids=["open-brackets", "deep-objects", "just-too-deep"],
)
def test_json_nested_too_deep_is_a_422_problem(client, raw):
    response = client.post("/api/v1/auth/token", data=raw, content_type="application/json")
    problem = _problem(response, 422)
    assert problem["errors"][0]["type"] in ("json_too_deep", "json_invalid")


def test_json_at_the_depth_limit_still_parses(client, admin_headers):
    body = '{"display_name": "x", "email": ' + _nested(MAX_JSON_DEPTH - 1) + "}"
    response = client.patch("/api/v1/me", data=body, content_type="application/json", headers=admin_headers)
    problem = _problem(response, 422)  # parsed, then refused by the schema: not a JSON error
    assert problem["errors"][0]["type"] not in ("json_too_deep", "json_invalid")


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ('{"email": "root\\u0000@example.com", "password": "x"}', "email"),
        ('{"email": "root@example.com", "password": "\\u0000"}', "password"),
        ('{"email": "\\ud800@example.com", "password": "x"}', None),  # lone surrogate: not valid JSON text
        ('{"email": "\\udfff", "password": "x"}', None),
    ],
)
def test_nul_and_lone_surrogates_in_json_text_are_a_422_problem(client, make_user, raw, field):
    make_user(email="root@example.com")
    problem = _problem(client.post("/api/v1/auth/token", data=raw, content_type="application/json"), 422)
    if field:
        assert problem["errors"][0]["field"] == field
        assert problem["errors"][0]["type"] == "forbidden_character"


def test_nul_in_a_profile_field_is_a_422_problem(client, admin_headers):
    response = client.patch("/api/v1/me", json={"display_name": "Evil\x00Name"}, headers=admin_headers)
    assert _problem(response, 422)["errors"][0]["field"] == "display_name"


def test_a_json_key_with_nul_is_refused_too(client, admin_headers):
    response = client.patch("/api/v1/me", json={"display\x00name": "x"}, headers=admin_headers)
    assert _problem(response, 422)["errors"][0]["type"] == "forbidden_character"


def test_huge_numbers_in_a_json_body_are_a_422_problem(client, admin_headers):
    body = {"filename": "a.png", "content_type": "image/png", "size": HUGE, "kind": "avatar"}
    response = client.post("/api/v1/uploads/presigned", json=body, headers=admin_headers)
    assert _problem(response, 422)["errors"][0]["field"] == "size"


def test_the_browser_json_endpoint_answers_hostile_json_with_a_422(client, make_user, auth):
    auth.login(make_user(email="files@example.com"))
    page = client.get("/files/").get_data(as_text=True)
    headers = {"X-CSRFToken": re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)}
    for raw in ("[" * 100_000, '{"filename": "a\\u0000.png", "content_type": "image/png", "size": 5}'):
        response = client.post("/files/presign", data=raw, content_type="application/json", headers=headers)
        assert response.status_code == 422, response.get_data(as_text=True)[:300]


# Query and path parameters of the API -----------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        "page=1e20",
        f"page={HUGE}",
        f"page={JUST_ABOVE}",
        f"per_page={HUGE}",
        "q=a%00b",
        "role=%00",
        "sort=email%00",
    ],
)
def test_hostile_query_parameters_are_a_422_problem(client, admin_headers, query):
    _problem(client.get(f"/api/v1/users?{query}", headers=admin_headers), 422)


def test_a_huge_id_in_a_query_parameter_is_a_422_problem(client, admin_headers):
    problem = _problem(client.get(f"/api/v1/admin/jobs?user_id={JUST_ABOVE}", headers=admin_headers), 422)
    assert problem["errors"][0]["field"] == "user_id"


@pytest.mark.parametrize("user_id", [JUST_ABOVE, 2**63, HUGE])
@pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE"])
def test_ids_beyond_the_column_range_are_simply_not_found(client, admin_headers, user_id, method):
    response = client.open(f"/api/v1/users/{user_id}", method=method, json={}, headers=admin_headers)
    _problem(response, 404)


@pytest.mark.parametrize(
    "path",
    ["/api/v1/admin/roles/a%00b", "/api/v1/uploads/%00", "/api/v1/admin/jobs/%00/retry"],
)
def test_nul_in_a_path_parameter_is_a_422_problem(client, admin_headers, path):
    method = "POST" if path.endswith("/retry") else "GET"
    problem = _problem(client.open(path, method=method, headers=admin_headers), 422)
    assert problem["errors"][0]["location"] == "path"


def test_a_query_string_of_raw_bytes_that_are_not_utf8_stays_percent_encoded(client, admin_headers):
    # A lone surrogate sent as raw bytes (Werkzeug's development server passes them on; its
    # request.args raised UnicodeDecodeError, in the view and again in the log line).
    raw = b"q=\xed\xa0\x80&role=\xff".decode("latin-1")
    response = client.get("/api/v1/users", headers=admin_headers, environ_overrides={"QUERY_STRING": raw})
    assert response.status_code == 200 and response.json["items"] == []
    assert client.get("/auth/login", environ_overrides={"QUERY_STRING": raw}).status_code == 200


def test_hostile_input_is_refused_before_authentication(client):
    # The edge sees the request before any credential check: the same answer for anyone.
    _problem(client.get("/api/v1/users?q=%00"), 422)


def test_nul_in_a_header_is_refused(client, make_user):
    make_user(email="root@example.com")
    response = client.post(
        "/api/v1/auth/token",
        json={"email": "root@example.com", "password": PASSWORD},
        environ_overrides={"HTTP_USER_AGENT": "agent\x00smith"},
    )
    _problem(response, 422)


# Pages ------------------------------------------------------------------------------------


@pytest.fixture()
def admin_browser(auth, make_user):
    return auth.signed_in(make_user(email="root@example.com", roles=("admin",)))


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/auth/login", {"email": "root\x00@example.com", "password": PASSWORD}),
        ("/auth/signup", {"email": "new@example.com", "display_name": "Evil\x00", "password": PASSWORD * 2}),
        ("/auth/reset", {"email": "\x00"}),
    ],
)
def test_nul_in_a_form_field_is_a_400_page(client, make_user, path, field):
    make_user(email="root@example.com")
    response = client.post(path, data={"csrf_token": csrf_token(client, path), **field})
    assert response.status_code == 400
    assert response.mimetype == "text/html"
    assert "not allowed" in response.get_data(as_text=True)


@pytest.mark.parametrize(
    "path",
    ["/admin/users?q=%00", "/admin/jobs?q=a%00", "/files/%00/row", "/auth/reset/%00abc", "/admin/roles?x=%00"],
)
def test_nul_in_a_query_or_path_of_a_page_is_a_400_page(admin_browser, path):
    response = admin_browser.get(path)
    assert response.status_code == 400
    assert response.mimetype == "text/html"


@pytest.mark.parametrize("path", ["/admin/users", "/admin/jobs", "/admin/audit", "/admin/uploads", "/files/"])
def test_a_page_number_beyond_range_shows_the_first_page(admin_browser, path):
    # type=int treats it like any unparseable page number: the default, page 1.
    response = admin_browser.get(f"{path}?page={HUGE}")
    assert response.status_code == 200


@pytest.mark.parametrize(
    "query",
    ["actor=%23%C2%B2", "actor=%23" + "9" * 30, "until=9999-12-31", "since=0001-01-01&until=0001-01-01"],
)
def test_audit_filters_at_the_edges_of_numbers_and_the_calendar_show_the_page(admin_browser, query):
    # "#²" is digits to str.isdigit but not to int(); the day after 9999-12-31 does not exist.
    assert admin_browser.get(f"/admin/audit?{query}").status_code == 200


@pytest.mark.parametrize("user_id", [JUST_ABOVE, HUGE])
def test_a_page_for_an_id_beyond_range_is_not_found(admin_browser, user_id):
    assert admin_browser.get(f"/admin/users/{user_id}").status_code == 404


def test_a_bulk_action_with_huge_ids_changes_nothing(admin_browser):
    response = admin_browser.post(
        "/admin/users/bulk",
        data={
            "csrf_token": csrf_token(admin_browser, "/admin/users"),
            "action": "disable",
            "user_ids": [str(HUGE), str(JUST_ABOVE)],
            "confirmed": "yes",
        },
    )
    assert response.status_code in (302, 400)
