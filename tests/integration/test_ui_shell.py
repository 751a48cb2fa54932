"""The site shell: toasts (flashes on full pages, HX-Trigger for htmx, never stale), the error
pages in the layout, the main menu that works without JavaScript, and the `_ui.html` macros."""

from __future__ import annotations

import json
import re

import pytest
from flask import abort, flash, make_response, redirect, render_template_string
from werkzeug.exceptions import ServiceUnavailable

from app.core.toasts import toast
from tests.support import csrf_token

HTMX = {"HX-Request": "true"}


@pytest.fixture()
def shell_app(make_app):
    app = make_app(rate_limit_default="1000 per minute")

    @app.route("/_t/flash", methods=["GET", "POST"])
    def flashes():
        flash("Saved the thing.", "success")
        flash("But this part failed.", "error")
        return "<p>row</p>"

    @app.post("/_t/toast")
    def toasts():
        toast("Flag turned on.")
        response = make_response("<tr></tr>")
        response.headers["HX-Trigger"] = '{"rowChanged": {"id": 3}}'
        return response

    @app.post("/_t/toast-named-trigger")
    def toast_named_trigger():
        toast("Done.", "info")
        response = make_response("")
        response.headers["HX-Trigger"] = "refreshList, other"
        return response

    @app.post("/_t/redirect")
    def redirects():
        toast("Moved along.")
        return redirect("/_t/fragment")

    @app.get("/_t/fragment")
    def fragment():
        return "<p>fragment</p>"

    @app.get("/_t/page")
    def full_page():
        return render_template_string('{% extends "base.html" %}{% block content %}<p>page</p>{% endblock %}')

    @app.get("/_t/abort/<int:code>")
    def aborts(code: int):
        if code == 503:
            raise ServiceUnavailable()
        abort(code)

    @app.get("/_t/abort-with-words")
    def aborts_with_words():
        abort(404, description="No upload with that id.")

    return app


def _trigger(response) -> dict:
    return json.loads(response.headers["HX-Trigger"])


def test_an_htmx_post_that_flashes_sends_toasts_and_leaves_no_flash_behind(shell_app):
    client = shell_app.test_client()
    token = csrf_token(client)
    response = client.post("/_t/flash", headers={**HTMX, "X-CSRFToken": token})
    assert response.status_code == 200
    assert _trigger(response) == {
        "toast": [
            {"message": "Saved the thing.", "level": "success"},
            {"message": "But this part failed.", "level": "error"},
        ]
    }
    # The next full page shows no stale message.
    page = client.get("/_t/page").get_data(as_text=True)
    assert "Saved the thing." not in page and "But this part failed." not in page


def test_without_htmx_the_flash_waits_for_the_next_page_as_a_toast(shell_app):
    client = shell_app.test_client()
    token = csrf_token(client)
    response = client.post("/_t/flash", headers={"X-CSRFToken": token})
    assert "HX-Trigger" not in response.headers
    page = client.get("/_t/page").get_data(as_text=True)
    region = re.search(r'<div id="toasts" class="toasts" aria-live="polite">(.*?)</div>\s*<p>page', page, re.S)
    assert region, "the toasts region comes before the content"
    assert 'class="toast toast--success" role="status"' in region.group(1)
    assert 'class="toast toast--error" role="alert"' in region.group(1)
    assert "Saved the thing." in region.group(1) and "But this part failed." in region.group(1)
    # Shown once.
    assert "Saved the thing." not in client.get("/_t/page").get_data(as_text=True)


def test_toast_joins_an_existing_hx_trigger(shell_app):
    client = shell_app.test_client()
    token = csrf_token(client)
    response = client.post("/_t/toast", headers={**HTMX, "X-CSRFToken": token})
    assert _trigger(response) == {"rowChanged": {"id": 3}, "toast": {"message": "Flag turned on.", "level": "success"}}
    named = client.post("/_t/toast-named-trigger", headers={**HTMX, "X-CSRFToken": token})
    assert _trigger(named) == {"refreshList": None, "other": None, "toast": {"message": "Done.", "level": "info"}}


def test_toast_outside_htmx_is_a_flash_and_survives_an_htmx_redirect(shell_app):
    client = shell_app.test_client()
    token = csrf_token(client)
    # htmx follows a redirect inside the same request: the toast rides on the page it lands on.
    moved = client.post("/_t/redirect", headers={**HTMX, "X-CSRFToken": token})
    assert moved.status_code == 302 and "HX-Trigger" not in moved.headers
    landed = client.get("/_t/fragment", headers=HTMX)
    assert _trigger(landed)["toast"] == {"message": "Moved along.", "level": "success"}
    # Without htmx it is an ordinary flash.
    client.post("/_t/redirect", headers={"X-CSRFToken": token})
    assert "Moved along." in client.get("/_t/page").get_data(as_text=True)


def test_a_plain_page_without_messages_touches_no_toast_header(shell_app):
    response = shell_app.test_client().get("/_t/page", headers=HTMX)
    assert "HX-Trigger" not in response.headers


@pytest.mark.parametrize(
    ("code", "heading"),
    [
        (400, "That request didn’t work"),
        (403, "You don’t have access to this page"),
        (404, "Page not found"),
        (405, "That action isn’t available here"),
        (413, "That’s too large"),
        (429, "Too many requests"),
        (500, "Something went wrong"),
        (503, "Temporarily unavailable"),
    ],
)
def test_error_pages_speak_for_people_inside_the_layout(shell_app, code, heading):
    response = shell_app.test_client().get(f"/_t/abort/{code}")
    assert response.status_code == code
    html = response.get_data(as_text=True)
    assert f'<h1 id="error-title">{heading}</h1>' in html.replace("&#39;", "’")
    assert f"<title>{heading} · Hearth</title>" in html.replace("&#39;", "’")
    assert 'aria-label="Main"' in html  # the site's layout
    assert "Back to the home page" in html
    # Werkzeug's stock descriptions never reach a page.
    assert "The requested URL" not in html and "The server" not in html and "The browser" not in html


def test_an_unknown_url_gets_the_friendly_404(shell_app):
    html = shell_app.test_client().get("/no/such/thing").get_data(as_text=True)
    assert "Page not found" in html and "The requested URL was not found" not in html


def test_a_specific_description_is_shown_under_the_words(shell_app):
    html = shell_app.test_client().get("/_t/abort-with-words").get_data(as_text=True)
    assert '<p class="error-detail">No upload with that id.</p>' in html


def test_forbidden_offers_sign_in_when_signed_out(shell_app):
    html = shell_app.test_client().get("/_t/abort/403").get_data(as_text=True)
    assert re.search(r'<a href="/auth/login\?next=/_t/abort/403" class="button">Sign in</a>', html)


def test_forbidden_offers_no_sign_in_when_signed_in(shell_app, make_user, auth):
    user = make_user(email="shell-user@example.com")
    client = shell_app.test_client()
    auth(client).login(user)
    html = client.get("/_t/abort/403").get_data(as_text=True)
    assert ">Sign in</a>" not in html and "Back to the home page" in html


def test_the_error_page_falls_back_when_the_layout_cannot_render(shell_app, monkeypatch, captured_logs):
    def broken(*_args, **_kwargs):
        raise RuntimeError("template context is broken")

    monkeypatch.setattr("app.errors.render_template", broken)
    response = shell_app.test_client().get("/_t/abort/500")
    assert response.status_code == 500
    html = response.get_data(as_text=True)
    assert "<h1>Internal server error</h1>" in html and '<a href="/">Back to the home page</a>' in html
    assert "template context is broken" not in html
    assert captured_logs.events("error_page_failed")


def test_the_api_keeps_problem_json(shell_app):
    response = shell_app.test_client().get("/api/v1/no-such-thing")
    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"


def test_the_menu_is_a_disclosure_that_needs_no_script(shell_app):
    html = shell_app.test_client().get("/_t/page").get_data(as_text=True)
    menu = re.search(r'<details class="site-menu" data-site-menu>\s*<summary[^>]*>.*?Menu</summary>', html, re.S)
    assert menu, "the main navigation sits inside a <details> with a Menu summary"
    assert '<nav aria-label="Main" class="site-nav">' in html
    assert re.search(r'<script src="/static/js/hearth\.[0-9a-f]{12}\.js" defer></script>', html)
    assert re.search(r'<link rel="stylesheet" href="/static/css/tables\.[0-9a-f]{12}\.css">', html)


def test_ui_macros_render_the_contract(shell_app):
    template = """{% import "_ui.html" as ui %}
    {{ ui.badge("processing") }}|{{ ui.badge("failed", "Processing failed") }}|{{ ui.badge("password_reset") }}
    {% call ui.page_header("Users", "Everyone with an account") %}<a class="button" href="/new">New</a>{% endcall %}
    {{ ui.breadcrumbs([("Admin", "/admin/"), ("Users", "/admin/users"), ("Ada", None)]) }}"""
    with shell_app.test_request_context("/"):
        html = render_template_string(template)
    assert re.search(
        r'<span class="badge badge--info" data-status="processing">'
        r'<svg class="icon" aria-hidden="true"[^>]*>.*?</svg>Processing</span>',
        html,
    )
    assert 'class="badge badge--danger" data-status="failed"' in html and "</svg>Processing failed</span>" in html
    assert 'class="badge badge--neutral" data-status="password_reset"' in html and "</svg>Password reset</span>" in html
    assert '<header class="page-header">' in html and "<h1>Users</h1>" in html
    assert '<p class="page-header__subtitle">Everyone with an account</p>' in html
    assert '<div class="page-header__actions"><a class="button" href="/new">New</a></div>' in html
    assert '<nav aria-label="Breadcrumb" class="breadcrumbs">' in html
    assert '<li><a href="/admin/">Admin</a></li>' in html
    assert '<li><span aria-current="page">Ada</span></li>' in html


def test_ui_is_there_without_an_import(shell_app):
    with shell_app.test_request_context("/"):
        imported = render_template_string(
            '{% import "_ui.html" as ui %}{{ ui.badge("dead") }}{{ ui.breadcrumbs([("A", None)]) }}'
        )
        ambient = render_template_string('{{ ui.badge("dead") }}{{ ui.breadcrumbs([("A", None)]) }}')
    assert imported == ambient and 'class="badge badge--danger"' in ambient


def test_a_page_header_without_actions_has_no_actions_box(shell_app):
    with shell_app.test_request_context("/"):
        html = render_template_string('{% import "_ui.html" as ui %}{{ ui.page_header("Files") }}')
    assert "<h1>Files</h1>" in html and "page-header__actions" not in html


def test_relative_times_follow_the_readers_language(shell_app):
    from datetime import UTC, datetime, timedelta

    from app.core.templating import time_tag

    now = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)
    with shell_app.test_request_context("/", headers={"Accept-Language": "de"}):
        german = str(time_tag(now - timedelta(hours=3), now=now))
    with shell_app.test_request_context("/", headers={"Accept-Language": "en"}):
        english = str(time_tag(now - timedelta(hours=3), now=now))
    # the exact time on hover in the reader's format too (English keeps the ISO-like one)
    assert ">vor 3 Stunden</time>" in german and 'title="04.05.2026, 09:00:00 UTC"' in german
    assert ">3 hours ago</time>" in english and 'title="2026-05-04 09:00:00 UTC"' in english


def test_the_main_nav_marks_the_section_you_are_in(shell_app, make_user, auth):
    user = make_user(email="shell-nav@example.com")
    client = shell_app.test_client()
    auth(client).login(user)
    files = client.get("/files/").get_data(as_text=True)
    assert re.search(r'<a href="/files/" aria-current="page">', files)
    home = client.get("/_t/page").get_data(as_text=True)
    assert 'aria-current="page"' not in home
