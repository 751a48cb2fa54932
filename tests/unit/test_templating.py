"""Template helpers that stand in for per-row work: `UrlPattern` (and its `fill` filter), the
links kept per app (`TemplateLinks`), and `time_tag`. Each must answer exactly what the
plain way (url_for, the exact moment) would."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from flask import Flask, url_for

from app.core.templating import TemplateLinks, UrlPattern, time_tag


def _view(**_: object) -> str:
    return ""


@pytest.fixture()
def site() -> Flask:
    """A bare Flask app with a few rules (not named `app`: that fixture is Hearth's)."""
    app = Flask(__name__)
    for rule, endpoint in (
        ("/files/<upload_id>/delete", "delete"),
        ("/users/<int:user_id>", "user"),
        ("/pages/<path:name>", "page"),
        ("/fixed/<int(fixed_digits=4):n>", "fixed"),
        ("/", "index"),
    ):
        app.add_url_rule(rule, endpoint, _view)
    app.add_url_rule("/a/<x>", "two_rules", _view)
    app.add_url_rule("/b/<x>/<y>", "two_rules", _view)
    return app


@pytest.mark.parametrize(
    ("endpoint", "name", "values"),
    [
        ("delete", "upload_id", ["00000000-0000-4000-8000-000000000024", "a b/c?d#e", "é", 12]),
        ("user", "user_id", [1, 2_147_483_647, "42"]),
        # Converters the shortcut does not cover: url_for builds them, every time.
        ("page", "name", ["a/b c", "x"]),
        ("fixed", "n", [7, 1234]),
        ("two_rules", "x", ["v"]),
    ],
)
def test_a_pattern_answers_what_url_for_answers(site, endpoint, name, values):
    with site.test_request_context("/", environ_overrides={"SCRIPT_NAME": "/mounted"}):
        pattern = UrlPattern(endpoint, name)
        for value in values:
            expected = url_for(endpoint, **{name: value})
            assert pattern(value) == expected
            assert UrlPattern.fill(pattern, value) == expected  # the `fill` filter


def test_the_fill_filter_renders_like_a_call(site):
    site.jinja_env.filters["fill"] = UrlPattern.fill
    with site.test_request_context("/"):
        template = site.jinja_env.from_string("{{ p | fill(v) }}|{{ p(v) }}")
        assert (
            template.render(p=UrlPattern("delete", "upload_id"), v="x&y")
            == "/files/x&amp;y/delete|/files/x&amp;y/delete"
        )


def test_links_are_built_once_per_script_root_and_only_without_values(site):
    links = TemplateLinks(site, assets_change=True)
    with site.test_request_context("/"):
        assert links.url_for("index") == "/"
        assert links.url_for("user", user_id=3) == "/users/3"  # values: url_for every time
        assert links.pattern("delete", "upload_id") is links.pattern("delete", "upload_id")
    with site.test_request_context("/", environ_overrides={"SCRIPT_NAME": "/mounted"}):
        assert links.url_for("index") == "/mounted/"
        assert links.pattern("delete", "upload_id")("u") == "/mounted/files/u/delete"
    assert {key[0] for key in links._kept} == {"url", "pattern"}


def test_an_app_with_url_defaults_gets_url_for_every_time(site):
    @site.url_defaults
    def _language(endpoint, values):
        values.setdefault("lang", "en")

    links = TemplateLinks(site, assets_change=True)
    with site.test_request_context("/"):
        assert links.url_for("index") == url_for("index") == "/?lang=en"
    assert links._kept == {}


@pytest.mark.parametrize(
    ("value", "exact"),
    [
        (datetime(2024, 1, 1, 7, 0, 0, 1234, tzinfo=UTC), "2024-01-01 07:00:00 UTC"),
        (datetime(2026, 11, 30, 23, 59, 59, tzinfo=UTC), "2026-11-30 23:59:59 UTC"),
        # Another zone: the title gives the same instant in UTC; `datetime` keeps the value's own offset.
        (datetime(2026, 3, 1, 9, 5, tzinfo=timezone(timedelta(hours=-5))), "2026-03-01 14:05:00 UTC"),
        (datetime(999, 12, 31, 1, 2, tzinfo=UTC), "0999-12-31 01:02:00 UTC"),
    ],
)
def test_time_tag_carries_the_exact_moment(value, exact):
    tag = str(time_tag(value, now=value + timedelta(hours=3)))
    assert tag == f'<time datetime="{value.isoformat()}" title="{exact}">3 hours ago</time>'


def test_time_tag_without_a_moment_is_a_dash():
    assert str(time_tag(None)) == "—"
