"""The one redirect rule (`app.core.redirects`): a `next` target or a Referer leads to a path on
this site or nowhere, whatever a browser would make of the tricks below."""

from __future__ import annotations

import pytest
from flask import Flask

from app.core.redirects import safe_next, same_site_path

HOST = "hearth.test"

OFF_SITE = [
    "//evil.example.com",
    "///evil.example.com",
    "/\\evil.example.com",
    "\\/evil.example.com",
    "\\\\evil.example.com",
    "https:evil.example.com",
    "http:/evil.example.com",
    "http://evil.example.com",
    "https://evil.example.com/admin/",
    "//hearth.test.evil.example.com/",
    "http://hearth.test.evil.example.com/",
    "http://user@hearth.test/",
    f"ftp://{HOST}/files/",
    f"http://{HOST}//evil.example.com",
    f"http://{HOST}/\\evil.example.com",
    "javascript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "%2F%2Fevil.example.com",
    "/%2F/evil.example.com",
    "/%2f%2fevil.example.com",
    "/%5Cevil.example.com",
    "/%5cevil.example.com",
    "/%252F/evil.example.com",
    "/%25252F%25252Fevil.example.com",
    "/files%2F..%2F..%2Fadmin",
    "/\t/evil.example.com",
    "/\n/evil.example.com",
    "/\r/evil.example.com",
    "\x00/admin/",
    "/admin/\x00",
    "/admin/%00",
    "\x01//evil.example.com",
    "/admin/\x7f",
    " /admin/",
    "\t/admin/",
    "/admin/ ",
    "\u3000/admin/",
    "admin/users",
    "evil.example.com",
    "",
    None,
]

SAME_SITE = [
    "/",
    "/files/",
    "/admin/users?page=2",
    "/admin/users?page=2&sort=-email",
    "/admin/jobs?status=failed&q=a%2Fb",
    "/auth/reset/abc?next=/files/",
    "/files/#upload-form",
    "/api/docs",
    "/files/caf%C3%A9.pdf",
    "/search?q=a b",
]


@pytest.mark.parametrize("target", OFF_SITE)
def test_a_target_that_could_leave_the_site_is_refused(target):
    assert same_site_path(target, HOST) is None


@pytest.mark.parametrize("target", SAME_SITE)
def test_a_path_on_this_site_is_kept_as_given(target):
    assert same_site_path(target, HOST) == target


@pytest.mark.parametrize(
    ("referrer", "path"),
    [
        (f"http://{HOST}/admin/users?page=2", "/admin/users?page=2"),
        (f"https://{HOST}/admin/jobs/abc", "/admin/jobs/abc"),
        (f"https://{HOST.upper()}", "/"),
    ],
)
def test_an_absolute_url_of_this_host_becomes_its_path(referrer, path):
    assert same_site_path(referrer, HOST) == path


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/admin/users?page=2", "/admin/users?page=2"),
        ("http://localhost/admin/jobs", "/admin/jobs"),
        ("/\\evil.example.com", "/admin/"),
        ("//evil.example.com", "/admin/"),
        ("http://evil.example.com/admin/", "/admin/"),
        (None, "/admin/"),
    ],
)
def test_safe_next_answers_the_fallback_for_anything_off_site(target, expected):
    with Flask(__name__).test_request_context("/", base_url="http://localhost"):
        assert safe_next(target, "/admin/") == expected
