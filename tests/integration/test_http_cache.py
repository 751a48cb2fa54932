"""HTTP caching, the L3 edge: fingerprinted static assets, ETag/If-None-Match (304) and
If-Match (412) on the API, and the Cache-Control every response is sent with."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest

from app.core.assets import MANIFEST_KEY
from app.extensions import db
from app.uploads.models import Upload, UploadStatus

STATIC = Path(__file__).resolve().parents[2] / "static"
TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
FINGERPRINTED = re.compile(r"^/static/(?P<dir>.*?)(?P<stem>[^/]+)\.(?P<hash>[0-9a-f]{12})(?P<suffix>\.[^./]+)?$")
IMMUTABLE = "public, max-age=31536000, immutable"


def _static_urls(html: str) -> list[str]:
    return re.findall(r'(?:src|href)="(/static/[^"]+)"', html)


def _cache_control(response) -> set[str]:
    return {part.strip() for part in response.headers.get("Cache-Control", "").split(",") if part.strip()}


@pytest.fixture()
def admin(make_user):
    return make_user(email="admin@example.com", display_name="Admin", roles=("admin",))


# Fingerprinted static assets -------------------------------------------------------------


def test_no_template_links_a_static_file_except_through_asset_url():
    offenders = [
        str(path.relative_to(TEMPLATES))
        for path in TEMPLATES.rglob("*.html")
        if re.search(r"url_for\(\s*['\"]static['\"]|[\"']/static/", path.read_text())
    ]
    assert offenders == []


@pytest.mark.parametrize("path", ["/", "/api/docs"])
def test_pages_link_every_local_asset_by_its_fingerprinted_name(app, client, path):
    html = client.get(path).get_data(as_text=True)
    urls = _static_urls(html)
    assert urls
    manifest = app.extensions[MANIFEST_KEY]
    for url in urls:
        match = FINGERPRINTED.match(url)
        assert match, f"{url} is not fingerprinted"
        real = manifest.resolve(url.removeprefix("/static/"))
        assert real is not None and f"/static/{manifest.name_for(real)}" == url
    assert "/static/css/hearth.css" not in html
    assert not any(url.endswith(("/hearth.css", ".min.js", "/swagger-ui-bundle.js")) for url in urls)


def test_signed_in_pages_link_their_scripts_fingerprinted(client, admin, auth):
    auth.login("admin@example.com")
    for path, script in [("/files/", "js/uploads"), ("/admin/", "js/admin")]:
        urls = _static_urls(client.get(path).get_data(as_text=True))
        assert [url for url in urls if script in url], f"{path} does not load {script}"
        assert all(FINGERPRINTED.match(url) for url in urls), urls


def test_a_fingerprinted_url_serves_the_file_with_an_immutable_cache_control(client):
    html = client.get("/").get_data(as_text=True)
    [css] = [url for url in _static_urls(html) if "/css/hearth." in url]
    response = client.get(css)
    assert response.status_code == 200
    assert response.get_data() == (STATIC / "css/hearth.css").read_bytes()
    assert response.mimetype == "text/css"
    assert response.headers["Cache-Control"] == IMMUTABLE


def test_swagger_ui_files_are_fingerprinted_and_immutable(client):
    html = client.get("/api/docs").get_data(as_text=True)
    swagger = [url for url in _static_urls(html) if "/swagger-ui-" in url]
    assert len(swagger) == 2
    for url in swagger:
        response = client.get(url)
        assert response.status_code == 200 and response.headers["Cache-Control"] == IMMUTABLE


def test_an_unknown_fingerprint_is_not_found(client):
    for url in ["/static/css/hearth.0123456789ab.css", "/static/vendor/no-such.0123456789ab.js"]:
        response = client.get(url)
        assert response.status_code == 404, url
        assert "immutable" not in response.headers.get("Cache-Control", "")


def test_plain_static_names_still_work_but_are_cached_briefly(client):
    response = client.get("/static/css/hearth.css")
    assert response.status_code == 200
    assert response.get_data() == (STATIC / "css/hearth.css").read_bytes()
    assert _cache_control(response) == {"public", "max-age=300"}


# ETag and If-None-Match ------------------------------------------------------------------


def test_a_list_answers_if_none_match_with_304(client, admin, target, api_auth):
    headers = api_auth.headers("admin@example.com")
    first = client.get("/api/v1/users", headers=headers)
    etag = first.headers["ETag"]
    assert re.fullmatch(r'"[0-9a-f]{32}"', etag), "a strong, quoted ETag"
    again = client.get("/api/v1/users", headers={**headers, "If-None-Match": etag})
    assert again.status_code == 304
    assert again.get_data() == b""
    assert again.headers["ETag"] == etag
    # Other pages or filters are other representations:
    assert client.get("/api/v1/users?per_page=1", headers={**headers, "If-None-Match": etag}).status_code == 200


@pytest.mark.parametrize(
    "if_none_match",
    ["{etag}", "W/{etag}", '"stale", {etag}', "*"],
    ids=["exact", "weak-comparison", "in-a-list", "star"],
)
def test_if_none_match_uses_weak_comparison_lists_and_star(client, admin, target, if_none_match, api_auth):
    headers = api_auth.headers("admin@example.com")
    etag = client.get(f"/api/v1/users/{target.id}", headers=headers).headers["ETag"]
    response = client.get(
        f"/api/v1/users/{target.id}", headers={**headers, "If-None-Match": if_none_match.format(etag=etag)}
    )
    assert response.status_code == 304


def test_a_changed_resource_gets_a_new_etag_and_the_old_one_no_longer_matches(client, admin, target, api_auth):
    headers = api_auth.headers("admin@example.com")
    url = f"/api/v1/users/{target.id}"
    before = client.get(url, headers=headers).headers["ETag"]
    assert client.get(url, headers=headers).headers["ETag"] == before, "same representation, same ETag"
    patched = client.patch(url, json={"display_name": "Renamed"}, headers=headers)
    assert patched.status_code == 200
    after = client.get(url, headers={**headers, "If-None-Match": before})
    assert after.status_code == 200 and after.json["display_name"] == "Renamed"
    assert after.headers["ETag"] != before
    assert patched.headers["ETag"] == after.headers["ETag"], "a PATCH answers with the ETag a GET then gives"


def test_a_signed_link_is_not_part_of_an_uploads_etag_but_its_state_is(client, app, make_user, monkeypatch, api_auth):
    owner = make_user(email="owner@example.com")
    upload_id = str(uuid.uuid4())
    with app.app_context():
        db.session.add(
            Upload(
                id=upload_id,
                user_id=owner.id,
                kind="avatar",
                status=UploadStatus.ready,
                filename="me.jpg",
                content_type="image/jpeg",
                declared_size=10,
                size=10,
                key=f"uploads/{upload_id}",
                thumbnail_key=f"uploads/{upload_id}.thumb.jpg",
            )
        )
        db.session.commit()
    links = iter(f"/signed-link-{n}" for n in range(100))
    monkeypatch.setattr("app.api.v1.uploads.service.thumbnail_url", lambda upload: next(links))
    headers = api_auth.headers("owner@example.com")
    url = f"/api/v1/uploads/{upload_id}"
    first, second = client.get(url, headers=headers), client.get(url, headers=headers)
    assert first.json["thumbnail_url"] != second.json["thumbnail_url"]
    assert first.headers["ETag"] == second.headers["ETag"]
    assert first.headers["Last-Modified"]
    listed = [client.get("/api/v1/uploads", headers=headers).headers["ETag"] for _ in range(2)]
    assert listed[0] == listed[1]
    with app.app_context():
        db.session.get(Upload, upload_id).status = UploadStatus.failed
        db.session.commit()
    changed = client.get(url, headers={**headers, "If-None-Match": first.headers["ETag"]})
    assert changed.status_code == 200 and changed.headers["ETag"] != first.headers["ETag"]
    # If-Match takes the same ETag: a DELETE with the stale one is refused, the current one works.
    assert client.delete(url, headers={**headers, "If-Match": first.headers["ETag"]}).status_code == 412
    assert client.delete(url, headers={**headers, "If-Match": changed.headers["ETag"]}).status_code == 204


# If-Match: lost-update protection --------------------------------------------------------


def test_a_patch_with_a_stale_if_match_is_refused_with_412_and_changes_nothing(client, admin, target, api_auth):
    headers = api_auth.headers("admin@example.com")
    url = f"/api/v1/users/{target.id}"
    stale = client.get(url, headers=headers).headers["ETag"]
    assert client.patch(url, json={"display_name": "First writer"}, headers=headers).status_code == 200
    lost = client.patch(url, json={"display_name": "Second writer"}, headers={**headers, "If-Match": stale})
    assert lost.status_code == 412
    assert lost.mimetype == "application/problem+json"
    assert lost.json["status"] == 412 and lost.json["type"].endswith("/precondition-failed")
    assert client.get(url, headers=headers).json["display_name"] == "First writer"


@pytest.mark.parametrize(
    "if_match",
    [
        lambda etag: etag,
        lambda etag: f'"other", {etag}',
        lambda etag: "*",
        lambda etag: etag[:-1] + ':gzip"',  # the tag of a gzip-compressed GET (Flask-Compress)
    ],
    ids=["current", "in-a-list", "star", "compressed-variant"],
)
def test_a_patch_with_the_current_etag_or_star_succeeds(client, admin, target, if_match, api_auth):
    headers = api_auth.headers("admin@example.com")
    url = f"/api/v1/users/{target.id}"
    etag = client.get(url, headers=headers).headers["ETag"]
    response = client.patch(url, json={"display_name": "Updated"}, headers={**headers, "If-Match": if_match(etag)})
    assert response.status_code == 200, response.json
    assert response.json["display_name"] == "Updated"


def test_a_weak_etag_never_satisfies_if_match(client, admin, target, api_auth):
    headers = api_auth.headers("admin@example.com")
    url = f"/api/v1/users/{target.id}"
    weak = "W/" + client.get(url, headers=headers).headers["ETag"]
    assert client.patch(url, json={"display_name": "X"}, headers={**headers, "If-Match": weak}).status_code == 412


def test_a_delete_honours_if_match(client, admin, target, api_auth):
    headers = api_auth.headers("admin@example.com")
    url = f"/api/v1/users/{target.id}"
    stale = client.get(url, headers=headers).headers["ETag"]
    client.patch(url, json={"display_name": "Changed meanwhile"}, headers=headers)
    assert client.delete(url, headers={**headers, "If-Match": stale}).status_code == 412
    assert client.get(url, headers=headers).json["status"] == "active"
    current = client.get(url, headers=headers).headers["ETag"]
    assert client.delete(url, headers={**headers, "If-Match": current}).status_code == 204
    assert client.get(url, headers=headers).json["status"] == "deleted"


def test_if_match_on_a_missing_resource_is_404_not_412(client, admin, api_auth):
    headers = api_auth.headers("admin@example.com")
    response = client.patch("/api/v1/users/999999", json={"display_name": "X"}, headers={**headers, "If-Match": "*"})
    assert response.status_code == 404


def test_my_profile_and_roles_honour_if_match(client, admin, api_auth):
    headers = api_auth.headers("admin@example.com")
    me = client.get("/api/v1/me", headers=headers)
    stale = me.headers["ETag"]
    updated = client.patch("/api/v1/me", json={"display_name": "New name"}, headers={**headers, "If-Match": stale})
    assert updated.status_code == 200
    assert updated.headers["ETag"] == client.get("/api/v1/me", headers=headers).headers["ETag"]
    lost = client.patch("/api/v1/me", json={"display_name": "X"}, headers={**headers, "If-Match": stale})
    assert lost.status_code == 412

    auditor = {"name": "auditor", "permissions": ["audit:read"]}
    assert client.post("/api/v1/admin/roles", json=auditor, headers=headers).status_code == 201
    role = "/api/v1/admin/roles/auditor"
    stale = client.get(role, headers=headers).headers["ETag"]
    assert client.patch(role, json={"description": "Reads"}, headers={**headers, "If-Match": stale}).status_code == 200
    assert client.patch(role, json={"description": "Lost"}, headers={**headers, "If-Match": stale}).status_code == 412
    assert client.delete(role, headers={**headers, "If-Match": stale}).status_code == 412
    current = client.get(role, headers=headers).headers["ETag"]
    assert client.delete(role, headers={**headers, "If-Match": current}).status_code == 204


def test_without_if_match_writes_stay_unconditional(client, admin, target, api_auth):
    headers = api_auth.headers("admin@example.com")
    url = f"/api/v1/users/{target.id}"
    assert client.patch(url, json={"display_name": "A"}, headers=headers).status_code == 200
    assert client.patch(url, json={"display_name": "B"}, headers=headers).status_code == 200


def test_the_openapi_document_describes_the_conditional_requests(client):
    paths = client.get("/api/openapi.json").json["paths"]
    user = paths["/api/v1/users/{user_id}"]
    assert "304" in user["get"]["responses"] and "ETag" in user["get"]["responses"]["200"]["headers"]
    assert any(p["name"] == "If-None-Match" for p in user["get"]["parameters"])
    for method in ("patch", "delete"):
        assert "412" in user[method]["responses"], method
        assert any(p["name"] == "If-Match" for p in user[method]["parameters"]), method
    assert "412" in paths["/api/v1/me"]["patch"]["responses"]
    assert "412" in paths["/api/v1/uploads/{upload_id}"]["delete"]["responses"]
    assert "Last-Modified" in paths["/api/v1/uploads/{upload_id}"]["get"]["responses"]["200"]["headers"]
    assert "412" not in paths["/api/v1/auth/token"]["post"]["responses"]


# Cache-Control -----------------------------------------------------------------------------


def test_the_landing_page_is_public_for_anonymous_visitors(client):
    response = client.get("/")
    assert _cache_control(response) == {"public", "max-age=60"}
    assert "Cookie" in response.headers["Vary"]
    assert "Set-Cookie" not in response.headers
    assert 'name="csrf-token"' not in response.get_data(as_text=True), "no per-visitor token in a shared page"


def test_the_landing_page_is_private_for_a_signed_in_visitor(client, admin, auth):
    auth.login("admin@example.com")
    response = client.get("/")
    assert "Admin" in response.get_data(as_text=True)
    assert _cache_control(response) == {"private", "no-store"}
    assert 'name="csrf-token"' in response.get_data(as_text=True)


def test_the_landing_page_is_private_when_it_shows_a_flash_message(client):
    with client.session_transaction() as session:
        session["_flashes"] = [("info", "Only for you")]
    response = client.get("/")
    assert "Only for you" in response.get_data(as_text=True)
    assert _cache_control(response) == {"private", "no-store"}


def test_authenticated_html_pages_are_private_and_not_stored(client, admin, auth):
    auth.login("admin@example.com")
    for path in ("/account/", "/files/", "/admin/"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert _cache_control(response) == {"private", "no-store"}, path


def test_authenticated_api_responses_are_private_and_not_stored(client, admin, api_auth):
    headers = api_auth.headers("admin@example.com")
    for path in ("/api/v1/me", "/api/v1/users", "/api/v1/roles"):
        response = client.get(path, headers=headers)
        assert response.status_code == 200, path
        assert _cache_control(response) == {"private", "no-store"}, path
    not_modified = client.get("/api/v1/me", headers={**headers, "If-None-Match": "*"})
    assert not_modified.status_code == 304 and _cache_control(not_modified) == {"private", "no-store"}


def test_anonymous_forms_and_errors_are_private_too(client):
    for path in ("/auth/login", "/no/such/page", "/api/v1/users"):
        assert _cache_control(client.get(path)) == {"private", "no-store"}, path


def test_public_api_documents_are_cacheable_unless_credentials_are_sent(client, admin, api_auth):
    spec = client.get("/api/openapi.json")
    assert _cache_control(spec) == {"public", "max-age=300"}
    assert client.get("/api/openapi.json", headers={"If-None-Match": spec.headers["ETag"]}).status_code == 304
    assert _cache_control(client.get("/api/v1/status")) == {"public", "max-age=10"}
    headers = api_auth.headers("admin@example.com")
    assert _cache_control(client.get("/api/v1/status", headers=headers)) == {"private", "no-store"}


def test_a_views_own_cache_control_is_kept(client):
    assert client.get("/health/live").headers["Cache-Control"] == "no-store"


def test_cors_lets_browser_integrators_send_if_match_and_read_the_etag(make_app):
    client = make_app(cors_origins=["https://integrator.example"]).test_client()
    preflight = client.options(
        "/api/v1/users/1",
        headers={
            "Origin": "https://integrator.example",
            "Access-Control-Request-Method": "PATCH",
            "Access-Control-Request-Headers": "authorization, if-match",
        },
    )
    assert "if-match" in preflight.headers["Access-Control-Allow-Headers"].lower()
    response = client.get("/api/v1/status", headers={"Origin": "https://integrator.example"})
    assert "ETag" in response.headers["Access-Control-Expose-Headers"]
