"""The versioned JSON API base: status, the generated OpenAPI document, docs and pagination."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl

import pytest
from flask import Blueprint
from openapi_spec_validator import validate
from pydantic import BaseModel, ConfigDict
from sqlalchemy import select

from app.api.openapi import api_operation, ordered_tags
from app.api.pagination import PageQuery
from app.users.models import User
from app.users.repository import UserRepository


def test_status_reports_version_and_uptime(client):
    response = client.get("/api/v1/status")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    body = response.json
    assert body["name"] == "Hearth" and body["api_version"] == "v1"
    assert re.match(r"^\d+\.\d+\.\d+", body["version"])
    assert body["uptime_seconds"] >= 0


def test_openapi_document_is_valid_and_generated_from_the_schemas(client):
    response = client.get("/api/openapi.json")
    assert response.status_code == 200
    spec = response.json
    validate(spec)
    assert spec["openapi"].startswith("3.1")
    operation = spec["paths"]["/api/v1/status"]["get"]
    assert operation["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/StatusOut"
    }
    status_schema = spec["components"]["schemas"]["StatusOut"]
    assert set(status_schema["required"]) == {"name", "version", "api_version", "uptime_seconds"}
    assert "application/problem+json" in operation["responses"]["429"]["content"]
    assert "ProblemDetails" in spec["components"]["schemas"]


def test_openapi_tags_put_auth_then_me_first_then_the_rest_alphabetically(client):
    spec = client.get("/api/openapi.json").json
    names = [tag["name"] for tag in spec["tags"]]
    assert names == [
        "auth",
        "me",
        "admin",
        "api-keys",
        "exports",
        "meta",
        "notifications",
        "roles",
        "uploads",
        "users",
        "webhooks",
    ]
    assert all(tag.get("description") for tag in spec["tags"])
    used = {tag for path in spec["paths"].values() for operation in path.values() for tag in operation["tags"]}
    assert used == set(names)
    assert spec["paths"]["/api/v1/me"]["get"]["tags"] == ["me"]
    assert spec["paths"]["/api/v1/me"]["patch"]["tags"] == ["me"]


def test_ordered_tags_lists_only_used_tags_with_the_first_ones_in_their_given_order():
    assert ordered_tags({"zeta", "me", "alpha", "auth"}, ("auth", "me", "unused"), {"me": "You."}) == [
        {"name": "auth"},
        {"name": "me", "description": "You."},
        {"name": "alpha"},
        {"name": "zeta"},
    ]


def test_api_docs_are_served_from_static_without_a_cdn(client):
    response = client.get("/api/docs")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    sources = re.findall(r'(?:src|href)="([^"]+)"', html)
    bundle = [source for source in sources if re.search(r"/swagger-ui-bundle\.[0-9a-f]{12}\.js$", source)]
    assert bundle, "the bundle, under its fingerprinted name"
    assert all(not source.startswith(("http://", "https://", "//")) for source in sources)
    assert client.get(bundle[0]).status_code == 200
    assert "<script>" not in html  # no inline script: the CSP would block it
    # Swagger UI's stylesheet and ours are preloaded for its shadow root (static/js/api-docs.js),
    # never applied to the page itself.
    styles = re.findall(r'<link rel="(\w+)"[^>]*href="([^"]+(?:swagger-ui|api-docs)\.[0-9a-f]{12}\.css)"', html)
    assert sorted(rel for rel, _ in styles) == ["preload", "preload"], styles
    assert all(client.get(href).status_code == 200 for _, href in styles)


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    email: str


class UserListQuery(PageQuery):
    domain: str | None = None


@pytest.fixture()
def list_app(make_app):
    app = make_app()
    bp = Blueprint("test_lists", __name__, url_prefix="/api/test")

    @api_operation(bp, "/users", summary="List users", query=UserListQuery, response=UserOut, paginated=True)
    def list_users(query: UserListQuery):
        statement = select(User).order_by(User.id)
        if query.domain:
            statement = statement.where(User.email.endswith("@" + query.domain))
        return UserRepository().paginate(statement, query.page, query.per_page)

    app.register_blueprint(bp)
    return app


def test_list_endpoints_paginate_with_meta_and_link_headers(list_app, make_user):
    for n in range(5):
        make_user(email=f"p{n}@example.com")
    client = list_app.test_client()
    response = client.get("/api/test/users?page=2&per_page=2")
    assert response.status_code == 200
    body = response.json
    assert [item["email"] for item in body["items"]] == ["p2@example.com", "p3@example.com"]
    assert body["meta"] == {"page": 2, "per_page": 2, "total": 5, "pages": 3}
    assert response.headers["X-Total-Count"] == "5"
    links = dict((rel, url) for url, rel in re.findall(r'<([^>]+)>; rel="(\w+)"', response.headers["Link"]))
    assert set(links) == {"first", "prev", "next", "last"}
    assert "page=3" in links["last"] and "page=1" in links["first"] and "page=3" in links["next"]
    last = client.get(links["last"]).json
    assert [item["email"] for item in last["items"]] == ["p4@example.com"]


def test_pagination_keeps_filters_in_links(list_app, make_user):
    make_user(email="a@keep.example")
    make_user(email="b@drop.example")
    response = list_app.test_client().get("/api/test/users?domain=keep.example&per_page=1")
    assert response.json["meta"]["total"] == 1
    assert "domain=keep.example" in response.headers["Link"]
    assert 'rel="next"' not in response.headers["Link"]


@pytest.mark.parametrize(
    "query", ["domain=k%20e+y%26%C3%A9%2F%3F!*&page=2&per_page=1", "per_page=1&domain=keep.example", "page=3"]
)
def test_link_urls_are_those_url_for_builds(list_app, make_user, query):
    from flask import url_for

    for n in range(4):
        make_user(email=f"l{n}@keep.example")
    response = list_app.test_client().get(f"/api/test/users?{query}")
    assert response.status_code == 200
    with list_app.test_request_context(f"/api/test/users?{query}"):
        args = dict(parse_qsl(query))
        page, per_page = int(args.get("page", 1)), int(args.get("per_page", 25))
        pages = max(1, -(-response.json["meta"]["total"] // per_page))
        wanted = [(1, "first")]
        wanted += [(page - 1, "prev")] if page > 1 else []
        wanted += [(page + 1, "next")] if page < pages else []
        wanted += [(pages, "last")]
        expected = ", ".join(
            f'<{url_for("test_lists.list_users", **{**args, "page": n, "per_page": per_page})}>; rel="{rel}"'
            for n, rel in wanted
        )
    assert response.headers["Link"] == expected


@pytest.mark.parametrize("query", ["per_page=101", "per_page=0", "page=0", "page=abc", "unknown=1"])
def test_page_size_is_bounded_and_bad_paging_is_422(list_app, query):
    response = list_app.test_client().get(f"/api/test/users?{query}")
    assert response.status_code == 422
    assert response.json["errors"][0]["location"] == "query"


def test_paginated_operations_are_documented(list_app):
    spec = list_app.test_client().get("/api/openapi.json").json
    validate(spec)
    operation = spec["paths"]["/api/test/users"]["get"]
    names = {parameter["name"] for parameter in operation["parameters"]}
    assert {"page", "per_page", "domain"} <= names
    assert "Link" in operation["responses"]["200"]["headers"]
    assert operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("UserOutPage")
