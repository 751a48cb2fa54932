"""HTTP clients for the cluster tests: a browser with an explicit cookie jar, bearer-token API
calls, and polling with a deadline.

Every request goes straight to one gunicorn instance (`cluster.instance_urls[i]`), so a test
decides which instance answers; nginx would pick one round robin, mixed with everyone else's
traffic. Each request carries what nginx would add in front of Hearth:

- `Host`: nginx's host (`localhost:<port>`, PUBLIC_URL's), the one a real browser sends;
- `X-Forwarded-For`: the client's address. Hearth trusts one proxy hop (TRUSTED_PROXIES=1),
  so each virtual client gets its own rate-limit budget and lockout counters, and tests
  never spend each other's budgets.

A new connection per request (no keep-alive): gunicorn runs several worker processes per
instance, each with its own L1 cache, and a kept-alive connection would always reach the same
one. Fresh connections spread over the workers, so "refused on instance 1" means refused by
whichever of its workers answers.
"""

from __future__ import annotations

import itertools
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import urlsplit

import requests

TIMEOUT = 20.0
PASSWORD = "cluster tests walk two hearths at once"
_CSRF = re.compile(r'name="csrf-token" content="([^"]+)"|name="csrf_token" (?:type="hidden" )?value="([^"]+)"')
_ip_lock = threading.Lock()
_ips = (f"10.17.{high}.{low}" for high, low in itertools.product(range(1, 255), range(1, 255)))


def new_client_ip() -> str:
    """An address no other virtual client of this run uses (its own budgets and lockouts)."""
    with _ip_lock:
        return next(_ips)


def send(method: str, url: str, *, host: str, ip: str, headers: dict[str, str] | None = None, **kwargs: Any):
    """One request on a new connection, never following redirects."""
    all_headers = {"Host": host, "X-Forwarded-For": ip, "Connection": "close", **(headers or {})}
    return requests.request(method, url, headers=all_headers, allow_redirects=False, timeout=TIMEOUT, **kwargs)


def _expired(morsel: Any) -> bool:
    if morsel["max-age"] not in ("", None):
        try:
            return int(morsel["max-age"]) <= 0
        except ValueError:
            return False
    if morsel["expires"]:
        try:
            return parsedate_to_datetime(morsel["expires"]) <= datetime.now(UTC)
        except (TypeError, ValueError):
            return False
    return False


@dataclass
class Browser:
    """One browser: its cookies (one site behind nginx, so every instance gets them all), its
    address, and form posts with the page's CSRF token."""

    host: str
    urls: list[str]
    ip: str = field(default_factory=new_client_ip)
    cookies: dict[str, str] = field(default_factory=dict)

    def request(self, instance: int, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = dict(kwargs.pop("headers", {}) or {})
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{name}={value}" for name, value in self.cookies.items())
        response = send(method, self.urls[instance] + path, host=self.host, ip=self.ip, headers=headers, **kwargs)
        for raw in response.raw.headers.getlist("Set-Cookie"):
            jar: SimpleCookie = SimpleCookie()
            jar.load(raw)
            for name, morsel in jar.items():
                if _expired(morsel):
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = morsel.value
        return response

    def get(self, instance: int, path: str, **kwargs: Any) -> requests.Response:
        return self.request(instance, "GET", path, **kwargs)

    def csrf(self, instance: int, path: str) -> str:
        page = self.get(instance, path)
        assert page.status_code == 200, (path, page.status_code)
        match = _CSRF.search(page.text)
        assert match, f"no CSRF token on {path}"
        return match.group(1) or match.group(2)

    def post_form(self, instance: int, path: str, data: dict[str, str], csrf_from: str | None = None):
        """POST `data` with the CSRF token of the page at `csrf_from` (default: `path`),
        both on `instance`."""
        token = self.csrf(instance, csrf_from or path)
        return self.request(instance, "POST", path, data={"csrf_token": token, **data})

    def login(self, instance: int, email: str, password: str = PASSWORD, *, remember: bool = False):
        data = {"email": email, "password": password}
        if remember:
            data["remember"] = "y"
        return self.post_form(instance, "/auth/login", data)

    def signed_in_as(self, instance: int, email: str) -> bool:
        """Whether the account page opens on `instance`, for `email` (its profile form)."""
        page = self.get(instance, "/account/")
        return page.status_code == 200 and f'value="{email}"' in page.text

    def logout(self, instance: int) -> requests.Response:
        return self.post_form(instance, "/auth/logout", {}, csrf_from="/account/")

    def copy(self) -> Browser:
        """Another browser holding copies of this one's cookies (a stolen cookie jar)."""
        return Browser(self.host, self.urls, ip=self.ip, cookies=dict(self.cookies))


@dataclass
class Api:
    """Bearer-token calls for one API client (its own address)."""

    host: str
    urls: list[str]
    ip: str = field(default_factory=new_client_ip)

    def call(self, instance: int, method: str, path: str, token: str | None = None, **kwargs: Any):
        headers = dict(kwargs.pop("headers", {}) or {})
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return send(method, self.urls[instance] + path, host=self.host, ip=self.ip, headers=headers, **kwargs)

    def token_response(self, instance: int, email: str, password: str = PASSWORD) -> requests.Response:
        return self.call(instance, "POST", "/api/v1/auth/token", json={"email": email, "password": password})

    def tokens(self, instance: int, email: str, password: str = PASSWORD) -> dict[str, Any]:
        response = self.token_response(instance, email, password)
        assert response.status_code == 200, (response.status_code, response.text[:300])
        return response.json()

    def refresh(self, instance: int, refresh_token: str) -> requests.Response:
        return self.call(instance, "POST", "/api/v1/auth/refresh", json={"refresh_token": refresh_token})

    def me(self, instance: int, token: str) -> int:
        """The status of GET /api/v1/me with `token` on `instance`."""
        return self.call(instance, "GET", "/api/v1/me", token).status_code


def poll(check: Callable[[], bool], within: float, *, consecutive: int = 1, interval: float = 0.02) -> float | None:
    """Seconds until `check()` began holding `consecutive` times in a row, or None if no such
    run began within `within` seconds. The run may end after the deadline: each check is a
    request, and on a loaded machine `consecutive` of them can take longer than `within` by
    themselves; what is promised is that the change was there, on every worker asked, from a
    moment within the deadline."""
    started = time.monotonic()
    streak, streak_began = 0, None
    while True:
        now = time.monotonic()
        if streak_began is None and now - started > within:
            return None
        if check():
            streak += 1
            streak_began = now if streak_began is None else streak_began
        else:
            streak, streak_began = 0, None
        if streak >= consecutive:
            return streak_began - started
        time.sleep(interval)


def nginx_host(url: str) -> str:
    """`localhost:<port>` of the cluster's nginx URL."""
    return urlsplit(url).netloc
