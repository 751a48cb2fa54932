"""Hostile strings posted to every HTML form of the app never get a 5xx.

The routes are enumerated from the URL map: every POST route outside /api/ (its form fields),
and every GET page outside /api/ (its query string: the search and filter forms). The field
names are enumerated from the app too: every WTForms form's fields and every `name="..."` in
the templates. Each example starts from plausible values for all of them (so a view gets past
"required"), then replaces about half of them, and the path parameters, with hostile text: NUL,
lone surrogates (sent as the raw bytes a hostile client would send), numbers beyond 32 and 64
bits, very long strings, control characters, odd Unicode. Every POST carries a valid CSRF
token, and runs once anonymously and once signed in as an administrator.

Route limits are disabled for the app under test (they would answer 429 before any view reads
a field); generation is derandomized, so a failure reproduces the same way every time.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote_from_bytes

import pytest
from flask import Flask
from flask.testing import FlaskClient
from flask_wtf import FlaskForm
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from werkzeug.routing import Rule

from app.core.input import MAX_ID
from app.extensions import app_limiter
from app.users.models import User
from tests.support import PASSWORD, PROJECT_ROOT, BrowserAuth, csrf_token

MAX_EXAMPLES = 20
SKIPPED_PREFIXES = ("/api/", "/static/")  # the API has its own run (test_api_fuzz.py)
BOUNDARY = "hearth-form-fuzz-boundary"

HOSTILE_TEXT = [
    "\x00",
    "a\x00b",
    "\ud800",
    "x\udfffy",
    "\ud83d",  # half an emoji
    str(MAX_ID + 1),
    str(2**63),
    str(10**20),
    f"-{10**20}",
    "9" * 5000,  # past Python's int() digit limit
    "1e20",
    "1e400",
    "NaN",
    "-0",
    "²",  # isdigit() says yes, int() says no
    "١٢٣",
    "１２",
    "x" * 100_000,
    "\r\nSet-Cookie: x=1",
    "\x1b[31m\x07\x7f",
    "\u202e\u200b\ufeff",
    "𝕳𝖊𝖆𝖗𝖙𝖍 👩\u200d👩\u200d👧",
    "' OR 1=1 --",
    "<script>alert(1)</script>",
    "../../etc/passwd",
    "%00",
    "",
    " ",
]
HOSTILE_NUMBERS = [str(MAX_ID + 1), str(2**63), str(10**20), f"-{10**20}", "9" * 5000, "1e400", "²", "-0"]
hostile = st.one_of(
    st.sampled_from(HOSTILE_TEXT),
    st.sampled_from(HOSTILE_NUMBERS),
    st.integers().map(str),
    st.text(max_size=40),
    st.text(st.characters(codec=None, categories=["Cc", "Cs", "Co", "Cn", "Zl", "Zp"]), min_size=1, max_size=20),
)

# Values that get a view past "required" and into its logic; other fields get DEFAULT_VALUE.
PLAUSIBLE = {
    "email": "someone@example.com",
    "password": PASSWORD,
    "current_password": PASSWORD,
    "new_password": "another long enough passphrase",
    "display_name": "Someone",
    "remember": "y",
    "confirmed": "yes",
    "action": "disable",
    "role": "manager",
    "roles": "manager",
    "name": "fuzz-flag",
    "description": "Made by the form fuzz test",
    "enabled": "1",
    "grant": "manager:users:read",
    "queue": "emails",
    "days": "30",
    "next": "/admin/",
    "page": "2",
    "sort": "-email",
}
DEFAULT_VALUE = "1"


def _template_field_names() -> set[str]:
    """Every control's name in the templates, and in the rows written in Python (app/files/rows.py,
    the users list's rows in app/admin/common.py: f-strings of the same HTML)."""
    names: set[str] = set()
    sources = [*Path(PROJECT_ROOT, "templates").rglob("*.html"), *Path(PROJECT_ROOT, "app").rglob("*.py")]
    for source in sources:
        names |= set(re.findall(r'<(?:input|select|textarea|button)\b[^>]*\bname="([\w-]+)"', source.read_text()))
    return names


def _form_field_names() -> set[str]:
    names: set[str] = set()
    pending = list(FlaskForm.__subclasses__())
    while pending:
        form = pending.pop()
        pending.extend(form.__subclasses__())
        names |= {name for name, value in vars(form).items() if hasattr(value, "field_class")}
    return names


def field_names() -> list[str]:
    return sorted((_template_field_names() | _form_field_names() | set(PLAUSIBLE)) - {"csrf_token"})


@dataclass
class Target:
    method: str
    rule: Rule

    @property
    def label(self) -> str:
        return f"{self.method} {self.rule.rule}"


def form_targets(app: Flask) -> list[Target]:
    """Every POST route and every GET page outside the JSON API, from the URL map."""
    targets = []
    for rule in sorted(app.url_map.iter_rules(), key=lambda rule: rule.rule):
        if rule.rule.startswith(SKIPPED_PREFIXES):
            continue
        for method in ("POST", "GET"):
            if method in (rule.methods or ()):
                targets.append(Target(method, rule))
    return targets


def _encode(value: str) -> bytes:
    """What a hostile client sends: lone surrogates as their raw (invalid UTF-8) bytes."""
    return value.encode("utf-8", "surrogatepass")


def urlencoded(fields: dict[str, str]) -> bytes:
    return b"&".join(
        quote_from_bytes(_encode(key), safe="").encode() + b"=" + quote_from_bytes(_encode(value), safe="").encode()
        for key, value in fields.items()
    )


def multipart(fields: dict[str, str], boundary: str) -> bytes:
    parts = [
        b'--%s\r\nContent-Disposition: form-data; name="%s"\r\n\r\n%s\r\n'
        % (boundary.encode(), _encode(key).replace(b'"', b"%22").replace(b"\r\n", b" "), _encode(value))
        for key, value in fields.items()
    ]
    return b"".join(parts) + b"--%s--\r\n" % boundary.encode()


@dataclass
class Browser:
    """A test client, signed in as a fresh administrator when `admin` (a fresh one each time:
    fuzzing /account/password counts failures toward that account's lockout)."""

    app: Flask
    make_user: Callable[..., User]
    admin: bool
    client: FlaskClient = field(init=False)
    user: User | None = field(init=False, default=None)

    def reset(self) -> None:
        self.client = self.app.test_client()
        if self.admin:
            self.user = self.make_user(email=f"fuzz-{secrets.token_hex(6)}@example.com", roles=("admin",))
            BrowserAuth(self.client).login(self.user)

    def csrf_token(self) -> str:
        """A token of the current session. Examples change the session (sign-out, a changed
        password), so each asks afresh; a signed-out administrator signs in again."""
        if not self.admin:
            return csrf_token(self.client, "/auth/login")
        if self.client.get("/account/").status_code != 200:
            self.reset()
        return csrf_token(self.client, "/account/")


@pytest.fixture()
def fuzz_app(make_app: Callable[..., Flask], app: Flask) -> Flask:
    application = make_app(rate_limit_default="100000 per minute")
    app_limiter(application).enabled = False
    return application


def _path_value(converter: str | None, victim: User, data: st.DataObject) -> str:
    if converter == "int":
        number = data.draw(st.sampled_from([victim.id, 0, MAX_ID]) | st.integers(min_value=0), label="path int")
        return str(number)
    text = data.draw(st.sampled_from(["fuzz-flag", "manager", "x"]) | hostile, label="path text")
    return quote_from_bytes(_encode(text), safe="") or "x"


RULE_ARGUMENT = re.compile(r"<(?:(?P<converter>\w+)(?:\([^)]*\))?:)?(?P<name>\w+)>")


def _url(target: Target, victim: User, data: st.DataObject) -> str:
    return RULE_ARGUMENT.sub(lambda match: _path_value(match["converter"], victim, data), target.rule.rule)


def _fuzz(target: Target, browser: Browser, victim: User, names: list[str]) -> None:
    """Up to MAX_EXAMPLES hostile requests to one route, as a freshly signed-in browser."""
    browser.reset()

    @settings(
        max_examples=MAX_EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
    )
    @given(data=st.data())
    def post_hostile(data: st.DataObject) -> None:
        fields = {name: PLAUSIBLE.get(name, DEFAULT_VALUE) for name in names}
        fields["user_ids"] = fields["user"] = str(victim.id)
        # Each field is hostile or plausible: a view that reads one field gets hostile input in
        # half the examples, whatever the others hold.
        for name in names:
            if data.draw(st.booleans(), label=f"{name} hostile"):
                fields[name] = data.draw(hostile, label=name)
        if data.draw(st.booleans(), label="hostile name"):
            fields[data.draw(hostile, label="name")] = "1"
        url = _url(target, victim, data)
        if target.method == "GET" and data.draw(st.booleans(), label="raw query"):
            # Unencoded bytes, as Werkzeug's own server passes them (gunicorn refuses them).
            raw = b"&".join(_encode(key) + b"=" + _encode(value) for key, value in fields.items())
            response = browser.client.get(url, environ_overrides={"QUERY_STRING": raw.decode("latin-1")})
        elif target.method == "GET":
            response = browser.client.get(url + "?" + urlencoded(fields).decode())
        else:
            fields["csrf_token"] = browser.csrf_token()
            if data.draw(st.booleans(), label="multipart"):
                body, content_type = multipart(fields, BOUNDARY), f"multipart/form-data; boundary={BOUNDARY}"
            else:
                body, content_type = urlencoded(fields), "application/x-www-form-urlencoded"
            response = browser.client.post(url, data=body, content_type=content_type)
        assert response.status_code < 500, f"{target.label} → {url[:200]}: {response.status_code}"

    post_hostile()


@pytest.mark.timeout(300)
@pytest.mark.parametrize("identity", ["anonymous", "admin"])
def test_hostile_form_input_never_gets_a_5xx(fuzz_app, make_user, identity):
    names = field_names()
    targets = form_targets(fuzz_app)
    assert len([t for t in targets if t.method == "POST"]) >= 30 and {"email", "user_ids", "days"} <= set(names)
    browser = Browser(fuzz_app, make_user, admin=identity == "admin")
    failures = []
    for number, target in enumerate(targets):
        # Someone real for ids in paths and bulk actions (a route before may have deleted the last).
        victim = make_user(email=f"victim{number}@example.com", display_name="Victim")
        try:
            _fuzz(target, browser, victim, names)
        except AssertionError as error:  # keep going: one report with every failing route
            failures.append(f"{target.label}: {str(error).splitlines()[0][:400]}")
    assert not failures, "\n".join(failures)
