"""The shared UI vocabulary: `status_tone`, `filesize`, `user_agent` and relative `time_tag`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.core.templating import filesize, status_tone, time_tag, user_agent

NOW = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("status", "tone"),
    [
        *[(s, "success") for s in ("ready", "succeeded", "active", "verified", "enabled")],
        *[(s, "info") for s in ("pending", "queued", "scheduled", "running", "processing")],
        *[(s, "warning") for s in ("retrying", "unverified", "locked")],
        *[(s, "danger") for s in ("failed", "rejected", "dead", "error")],
        *[(s, "neutral") for s in ("disabled", "deleted", "revoked", "cancelled", "whatever", "", None)],
        ("Ready", "success"),
    ],
)
def test_each_status_has_one_tone(status, tone):
    assert status_tone(status) == tone


@pytest.mark.parametrize(
    ("size", "shown"),
    [
        (None, "—"),
        (0, "0 B"),
        (1023, "1023 B"),
        (1024, "1.0 KB"),
        (3_005_235, "2.9 MB"),  # the "2934.8 KB" of the old file list
        (5 * 1024**3 + 1, "5.0 GB"),
        (2 * 1024**4, "2.0 TB"),
    ],
)
def test_filesize_is_one_human_format(size, shown):
    assert filesize(size) == shown


FIREFOX_LINUX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
CHROME_WINDOWS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36"
)
EDGE_WINDOWS = CHROME_WINDOWS + " Edg/126.0.2592.87"
OPERA_MAC = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Safari/537.36 OPR/112.0.0.0"
)
SAFARI_IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.5 Mobile/15E148 Safari/604.1"
)
SAFARI_MAC = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15"
)
CHROME_ANDROID = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Mobile Safari/537.36"
)
CHROME_OS = (
    "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36"
)


@pytest.mark.parametrize(
    ("header", "shown"),
    [
        (FIREFOX_LINUX, "Firefox on Linux"),
        (CHROME_WINDOWS, "Chrome on Windows"),
        (EDGE_WINDOWS, "Edge on Windows"),
        (OPERA_MAC, "Opera on macOS"),
        (SAFARI_IPHONE, "Safari on iOS"),
        (SAFARI_MAC, "Safari on macOS"),
        (CHROME_ANDROID, "Chrome on Android"),
        (CHROME_OS, "Chrome on ChromeOS"),
        ("curl/8.5.0", "Unknown browser"),
        ("python-httpx/0.27 (Windows)", "Unknown browser on Windows"),
        ("", "Unknown browser"),
        (None, "Unknown browser"),
    ],
)
def test_user_agents_read_as_browser_on_system(header, shown):
    assert user_agent(header) == shown


@pytest.mark.parametrize(
    ("ago", "words"),
    [
        (timedelta(seconds=10), "just now"),
        (timedelta(seconds=70), "1 minute ago"),
        (timedelta(minutes=5), "5 minutes ago"),
        (timedelta(hours=3), "3 hours ago"),
        (timedelta(days=1), "1 day ago"),
        (timedelta(days=4), "4 days ago"),
        (timedelta(days=90), "3 months ago"),
        (timedelta(days=800), "2 years ago"),
        (-timedelta(hours=2), "in 2 hours"),
        (-timedelta(days=3), "in 3 days"),
    ],
)
def test_time_tag_says_how_long_ago_and_keeps_the_exact_time_on_hover(ago, words):
    moment = NOW - ago
    tag = str(time_tag(moment, now=NOW))
    assert f">{words}</time>" in tag
    assert f'datetime="{moment.isoformat()}"' in tag
    assert f'title="{moment:%Y-%m-%d %H:%M:%S} UTC"' in tag


def test_time_tag_takes_a_naive_moment_as_utc():
    naive = datetime(2026, 5, 4, 11, 0)
    assert str(time_tag(naive, now=NOW)) == (
        '<time datetime="2026-05-04T11:00:00+00:00" title="2026-05-04 11:00:00 UTC">1 hour ago</time>'
    )


def test_a_badge_escapes_what_it_shows_and_reads_enums():
    from enum import StrEnum

    from app.core.templating import badge

    class Status(StrEnum):
        ready = "ready"

    shown = str(badge(Status.ready))
    assert shown.startswith(
        '<span class="badge badge--success" data-status="ready"><svg class="icon" aria-hidden="true"'
    )
    assert shown.endswith("</svg>Ready</span>")
    hostile = str(badge('x" onclick="y', "<b>label</b>"))
    assert 'data-status="x&#34; onclick=&#34;y"' in hostile and "&lt;b&gt;label&lt;/b&gt;" in hostile
    assert "badge--neutral" in hostile


def test_a_toast_is_an_alert_only_for_errors_and_escapes_its_message():
    from app.core.templating import toast_html, toast_templates

    error = str(toast_html("<script>", "error"))
    assert error.startswith('<div class="toast toast--error" role="alert" data-level="error">')
    assert '<p class="toast__message">&lt;script&gt;</p>' in error
    assert '<button type="button" class="toast__close ghost" aria-label="Dismiss">' in error
    assert 'class="toast toast--info" role="status"' in str(toast_html("Hi", "message"))  # Flask's default category
    templates = str(toast_templates("Dismiss"))
    for level in ("success", "info", "warning", "error"):
        assert f'<template data-toast-template="{level}"><div class="toast toast--{level}"' in templates
