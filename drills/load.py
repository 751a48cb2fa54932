"""A bounded loopback load generator: virtual users, each a thread with its own source address.

Each virtual user k connects from 127.0.0.<k+2> (127.0.0.1 stays the drills' own probes), so
Hearth, which trusts one proxy hop (nginx's `$remote_addr` in X-Forwarded-For), gives each its
own rate-limit budget, as real clients have. It signs in like a person (the browser form with
its CSRF token, and the API's password grant), then loops: page views signed out and signed in,
API reads with its bearer token, and on a schedule the writes that produce jobs: password-reset
requests (an `emails` job), exports (`reports`), uploads through the presigned S3 form and the
browser's form (`uploads`), and the webhook deliveries and emails those cause (`sync`,
`emails`). A password-reset request may be made 5 times an hour per address (app/auth/routes.py),
so each is sent from an address of a pool of the user's own (127.<100+k>.x.y), as if many people
asked: the limit is Hearth's to keep, not the load's to hit.

Every request becomes a `Sample` (drills.stats): when, what, status (0: no answer), latency.
Writes are paced per user so the whole load stays well under every per-client limit; a 429 is
counted (and its Retry-After honoured), never retried at once. Bounded: at most MAX_USERS users,
each with one request in flight, and only loopback targets (anything else is refused).
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import random
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import urlencode, urlsplit

from drills.stats import CONNECTION_ERROR, Sample

MAX_USERS = 50
REQUEST_TIMEOUT = 10.0  # seconds; a request unanswered by then counts as an error (status 0)
CSRF_FIELD = re.compile(rb'name="csrf_token"[^>]*value="([^"]+)"|value="([^"]+)"[^>]*name="csrf_token"')
# Reads picked when no write is due, with their weights.
ANON_PAGES = ("/", "/auth/login")
SIGNED_PAGES = ("/account/", "/files/", "/notifications", "/exports/")
API_READS = (
    "/api/v1/me",
    "/api/v1/uploads?per_page=10",
    "/api/v1/notifications?per_page=10",
    "/api/v1/exports?per_page=10",
)
READ_WEIGHTS = {"page": 0.25, "page_signed": 0.35, "api_read": 0.40}
# Between a form's GET and its POST, as a person types (nginx lets 2 sign-in requests a second
# through per address, delaying the rest: a form posted at once would be delayed, not typed).
TYPING = 0.6
STALE_ERRORS = (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError)


class NotLoopback(ValueError):
    """A target outside loopback: the load generator only ever talks to this machine."""


def ensure_loopback(host: str) -> str:
    """The IPv4 loopback address to connect to for `host`; NotLoopback for anything else."""
    try:
        infos = socket.getaddrinfo(host, None, socket.AF_INET)
    except socket.gaierror as error:
        raise NotLoopback(f"{host}: no IPv4 address ({error})") from None
    addresses = {info[4][0] for info in infos}
    if not addresses or not all(ipaddress.ip_address(a).is_loopback for a in addresses):
        raise NotLoopback(f"{host} resolves to {sorted(addresses)}: only loopback targets are allowed")
    return sorted(addresses)[0]


def user_address(index: int) -> str:
    """Virtual user `index`'s own source address."""
    return f"127.0.0.{index + 2}"


def pool_address(index: int, n: int) -> str:
    """The `n`th address of user `index`'s pool (for rate-limited anonymous forms)."""
    n %= 250 * 250
    return f"127.{100 + index}.{n // 250 + 1}.{n % 250 + 1}"


@dataclass(frozen=True)
class Account:
    email: str
    password: str


@dataclass
class Response:
    status: int
    headers: http.client.HTTPMessage | None
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body or b"null")

    def header(self, name: str) -> str | None:
        return self.headers.get(name) if self.headers is not None else None


class Recorder:
    """Every sample of a run, in arrival order; appending is atomic in CPython."""

    def __init__(self) -> None:
        self.samples: list[Sample] = []
        # When a request was sent again on a new connection because a reused one had been
        # closed by the server (nginx's idle or reload close) before answering.
        self.stale_resends: list[float] = []

    def add(self, sample: Sample) -> None:
        self.samples.append(sample)

    def snapshot(self) -> list[Sample]:
        return list(self.samples)


class HttpClient:
    """One keep-alive connection from a fixed source address, with a cookie jar; every request
    is recorded. A request that fails on a reused connection before any answer (the server had
    closed it while idle) is sent once more on a new one, as browsers do; that is counted."""

    def __init__(self, base_url: str, source: str, recorder: Recorder, user: int, host_header: str | None = None):
        parts = urlsplit(base_url)
        if parts.scheme != "http" or parts.hostname is None:
            raise NotLoopback(f"{base_url}: only http:// loopback URLs")
        self.address = ensure_loopback(parts.hostname)
        self.port = parts.port or 80
        self.host_header = host_header or parts.netloc
        self.origin = f"http://{self.host_header}"
        self.source, self.recorder, self.user = source, recorder, user
        self.cookies: dict[str, str] = {}
        self.connection: http.client.HTTPConnection | None = None

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None

    def request(
        self,
        kind: str,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        send = {"Host": self.host_header, "User-Agent": "hearth-drills", "Accept-Language": "en"}
        if self.cookies:
            send["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if method != "GET":
            send["Origin"] = self.origin
            send["Referer"] = self.origin + "/"
        send.update(headers or {})
        started = time.time()
        clock = time.perf_counter()
        try:
            response = self._exchange(method, path, body, send)
        except (OSError, http.client.HTTPException) as error:
            self.close()
            self.recorder.add(
                Sample(
                    started, kind, CONNECTION_ERROR, time.perf_counter() - clock, self.user, False, type(error).__name__
                )
            )
            return Response(CONNECTION_ERROR, None, b"")
        latency = time.perf_counter() - clock
        self._keep_cookies(response.headers)
        detail = None
        if response.status >= 400 and "json" in (response.header("Content-Type") or ""):
            try:
                detail = str(response.json().get("type", "")).rsplit("/", 1)[-1] or None
            except (ValueError, AttributeError):
                detail = None
        self.recorder.add(
            Sample(
                started, kind, response.status, latency, self.user, response.header("Retry-After") is not None, detail
            )
        )
        return response

    def _exchange(self, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> Response:
        for attempt in (1, 2):
            reused = self.connection is not None
            if self.connection is None:
                self.connection = http.client.HTTPConnection(
                    self.address, self.port, timeout=REQUEST_TIMEOUT, source_address=(self.source, 0)
                )
            try:
                self.connection.request(method, path, body=body, headers=headers)
                answer = self.connection.getresponse()
                data = answer.read()
            except STALE_ERRORS:
                self.close()
                if reused and attempt == 1:
                    self.recorder.stale_resends.append(time.time())
                    continue
                raise
            if answer.will_close:
                self.close()
            return Response(answer.status, answer.headers, data)
        raise AssertionError("unreachable")

    def _keep_cookies(self, headers: http.client.HTTPMessage) -> None:
        for line in headers.get_all("Set-Cookie") or ():
            jar: SimpleCookie = SimpleCookie()
            try:
                jar.load(line)
            except Exception:  # noqa: S112 - a cookie we cannot parse is one we do not send back
                continue
            for name, morsel in jar.items():
                gone = morsel["max-age"] == "0" or (morsel["expires"] and "1970" in morsel["expires"])
                if gone or not morsel.value:
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = morsel.value


def csrf_token(body: bytes) -> str | None:
    match = CSRF_FIELD.search(body)
    if match is None:
        return None
    return (match.group(1) or match.group(2)).decode()


def form_body(fields: dict[str, str]) -> tuple[bytes, dict[str, str]]:
    return urlencode(fields).encode(), {"Content-Type": "application/x-www-form-urlencoded"}


def json_body(value: Any) -> tuple[bytes, dict[str, str]]:
    return json.dumps(value).encode(), {"Content-Type": "application/json"}


def multipart_body(
    fields: dict[str, str], file_field: str, filename: str, content_type: str, data: bytes
) -> tuple[bytes, dict[str, str]]:
    """A multipart/form-data body: `fields` in order, then the file (S3's POST policy wants it last)."""
    boundary = "drills" + uuid.uuid4().hex
    parts: list[bytes] = []
    for name, value in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{file_field}"; filename="{filename}"\r\n'
        f"Content-Type: {content_type}\r\n\r\n".encode()
        + data
        + b"\r\n"
    )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def upload_bytes(n: int) -> bytes:
    """A small text document, different every time (so nothing is deduplicated anywhere)."""
    line = f"hearth drill upload {n} {uuid.uuid4().hex}\n".encode()
    return line * 40


@dataclass(frozen=True)
class Mix:
    """How often each write happens across ALL users (per second), and the think time between
    a user's requests. Per-user intervals are derived from the user count, so the job load stays
    about the same whatever the number of users."""

    think: tuple[float, float] = (0.4, 1.0)
    sign_in_per_s: float = 0.15
    api_sign_in_per_s: float = 0.15
    reset_per_s: float = 0.5
    export_per_s: float = 0.2
    upload_per_s: float = 0.5
    form_upload_per_s: float = 0.1

    def intervals(self, users: int) -> dict[str, float]:
        rates = {
            "sign_in": self.sign_in_per_s,
            "api_sign_in": self.api_sign_in_per_s,
            "reset": self.reset_per_s,
            "export": self.export_per_s,
            "upload": self.upload_per_s,
            "form_upload": self.form_upload_per_s,
        }
        # Never more often than these per user: the route limits of app/auth (10 sign-ins a
        # minute per address) with a margin.
        floors = {"sign_in": 12.0, "api_sign_in": 12.0}
        return {name: max(users / rate, floors.get(name, 1.0)) for name, rate in rates.items() if rate > 0}


@dataclass
class UserState:
    """What a virtual user holds between requests."""

    access_token: str | None = None
    signed_in: bool = False
    uploads: int = 0
    pool_next: int = 0
    next_at: dict[str, float] = field(default_factory=dict)


class VirtualUser(threading.Thread):
    """One person using Hearth: signs in, then reads and writes until stopped."""

    def __init__(
        self,
        index: int,
        account: Account,
        base_url: str,
        recorder: Recorder,
        mix: Mix,
        users: int,
        stop: threading.Event,
    ):
        super().__init__(name=f"vuser-{index}", daemon=True)
        self.index, self.account, self.base_url, self.recorder, self.mix = index, account, base_url, recorder, mix
        self.stop_event = stop
        self.random = random.Random(index * 7919 + 17)  # noqa: S311 - pacing, not secrets
        self.source = user_address(index)
        self.browser = HttpClient(base_url, self.source, recorder, index)
        self.anonymous = HttpClient(base_url, self.source, recorder, index)
        self.api = HttpClient(base_url, self.source, recorder, index)
        self.storage: dict[tuple[str, int], HttpClient] = {}
        self.state = UserState()
        self.intervals = mix.intervals(users)
        now = time.time()
        # Spread the first writes over one interval so users do not write in lockstep.
        self.state.next_at = {
            name: now + self.random.uniform(0.2, 1.0) * every for name, every in self.intervals.items()
        }
        self.actions: dict[str, Callable[[], None]] = {
            "page": self.page,
            "page_signed": self.page_signed,
            "api_read": self.api_read,
            "sign_in": self.sign_in,
            "api_sign_in": self.api_sign_in,
            "reset": self.reset,
            "export": self.export,
            "upload": self.upload,
            "form_upload": self.form_upload,
        }

    # The loop ------------------------------------------------------------------------------

    def run(self) -> None:
        self.sign_in()
        self.api_sign_in()
        while not self.stop_event.is_set():
            self.actions[self.next_action()]()
            self.stop_event.wait(self.random.uniform(*self.mix.think))
        for client in (self.browser, self.anonymous, self.api, *self.storage.values()):
            client.close()

    def next_action(self) -> str:
        now = time.time()
        due = [name for name, at in self.state.next_at.items() if at <= now]
        if due:
            name = min(due, key=self.state.next_at.__getitem__)
            self.state.next_at[name] = now + self.intervals[name] * self.random.uniform(0.7, 1.3)
            return name
        return self.random.choices(list(READ_WEIGHTS), weights=list(READ_WEIGHTS.values()))[0]

    def backoff(self, response: Response) -> None:
        """Honour a 429's or a 503's Retry-After (capped), as a polite client does."""
        if response.status in (429, 503):
            try:
                wait = float(response.header("Retry-After") or 0)
            except ValueError:
                wait = 1.0
            self.stop_event.wait(min(max(wait, 0.5), 5.0))

    # Reads ---------------------------------------------------------------------------------

    def page(self) -> None:
        self.backoff(self.anonymous.request("page", "GET", self.random.choice(ANON_PAGES)))

    def page_signed(self) -> None:
        if not self.state.signed_in:
            self.sign_in()
            return
        response = self.browser.request("page_signed", "GET", self.random.choice(SIGNED_PAGES))
        if response.status in (301, 302, 303) and "/auth/login" in (response.header("Location") or ""):
            self.state.signed_in = False  # the session ended: sign in again next time
        self.backoff(response)

    def api_read(self) -> None:
        if self.state.access_token is None:
            self.api_sign_in()
            return
        response = self.api.request("api_read", "GET", self.random.choice(API_READS), headers=self.bearer())
        if response.status == 401:
            self.state.access_token = None
        self.backoff(response)

    def bearer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.state.access_token}", "Accept": "application/json"}

    # Sign-ins ------------------------------------------------------------------------------

    def sign_in(self) -> None:
        """The browser form: GET for the CSRF token, POST, expect a redirect; a new session."""
        self.browser.cookies.clear()
        form = self.browser.request("page", "GET", "/auth/login")
        token = csrf_token(form.body) if form.status == 200 else None
        if token is None:
            self.backoff(form)
            return
        self.stop_event.wait(TYPING)
        body, headers = form_body({"csrf_token": token, "email": self.account.email, "password": self.account.password})
        response = self.browser.request("sign_in", "POST", "/auth/login", body, headers)
        self.state.signed_in = response.status in (302, 303)
        self.backoff(response)

    def api_sign_in(self) -> None:
        body, headers = json_body({"email": self.account.email, "password": self.account.password})
        response = self.api.request("api_sign_in", "POST", "/api/v1/auth/token", body, headers)
        if response.status == 200:
            self.state.access_token = response.json()["access_token"]
        self.backoff(response)

    # Writes that produce jobs ----------------------------------------------------------------

    def reset(self) -> None:
        """Ask for a password-reset link for this user (an `emails` job), from a fresh address."""
        client = HttpClient(self.base_url, pool_address(self.index, self.state.pool_next), self.recorder, self.index)
        self.state.pool_next += 1
        try:
            form = client.request("page", "GET", "/auth/reset")
            token = csrf_token(form.body) if form.status == 200 else None
            if token is None:
                return
            body, headers = form_body({"csrf_token": token, "email": self.account.email})
            self.backoff(client.request("reset", "POST", "/auth/reset", body, headers))
        finally:
            client.close()

    def export(self) -> None:
        """Request the account-data export (a `reports` job, then an export.ready webhook)."""
        if self.state.access_token is None:
            self.api_sign_in()
            return
        body, headers = json_body({"kind": "account_data", "filters": {}})
        response = self.api.request("export", "POST", "/api/v1/exports", body, {**headers, **self.bearer()})
        if response.status == 401:
            self.state.access_token = None
        self.backoff(response)

    def upload(self) -> str | None:
        """Presign with the API, POST the bytes to S3's presigned form, confirm (an `uploads` job).
        Answers the upload id once confirmed, else None."""
        if self.state.access_token is None:
            self.api_sign_in()
            return None
        ticket = self.presign_and_send()
        if ticket is None:
            return None
        response = self.confirm(ticket)
        return ticket if response.status == 200 else None

    def presign_and_send(self) -> str | None:
        """The first two steps of an upload: presign, POST to storage. The upload id, or None."""
        self.state.uploads += 1
        data = upload_bytes(self.state.uploads)
        filename = f"drill-{self.index}-{self.state.uploads}.txt"
        body, headers = json_body(
            {"filename": filename, "content_type": "text/plain", "size": len(data), "kind": "document"}
        )
        response = self.api.request(
            "upload_presign", "POST", "/api/v1/uploads/presigned", body, {**headers, **self.bearer()}
        )
        if response.status != 201:
            if response.status == 401:
                self.state.access_token = None
            self.backoff(response)
            return None
        ticket = response.json()
        post = ticket["upload"]
        storage = self.storage_client(post["url"])
        form, form_headers = multipart_body(post["fields"], "file", filename, "text/plain", data)
        sent = storage.request("s3_post", "POST", urlsplit(post["url"]).path or "/", form, form_headers)
        if sent.status not in (200, 201, 204):
            return None
        return str(ticket["upload_id"])

    def confirm(self, upload_id: str) -> Response:
        response = self.api.request(
            "upload_confirm", "POST", f"/api/v1/uploads/{upload_id}/confirm", b"", self.bearer()
        )
        self.backoff(response)
        return response

    def storage_client(self, url: str) -> HttpClient:
        parts = urlsplit(url)
        key = (parts.hostname or "", parts.port or 80)
        if key not in self.storage:
            self.storage[key] = HttpClient(f"{parts.scheme}://{parts.netloc}", self.source, self.recorder, self.index)
        return self.storage[key]

    def form_upload(self) -> None:
        """The browser's upload form without JavaScript: multipart POST to /files/upload."""
        if not self.state.signed_in:
            self.sign_in()
            return
        page = self.browser.request("page_signed", "GET", "/files/")
        token = csrf_token(page.body) if page.status == 200 else None
        if token is None:
            self.backoff(page)
            return
        self.state.uploads += 1
        data = upload_bytes(self.state.uploads)
        body, headers = multipart_body(
            {"csrf_token": token, "kind": "document"},
            "file",
            f"drill-form-{self.index}-{self.state.uploads}.txt",
            "text/plain",
            data,
        )
        self.backoff(self.browser.request("upload_form", "POST", "/files/upload", body, headers))


class LoadGenerator:
    """`users` virtual users against `base_url` (loopback only) until `stop()`."""

    def __init__(
        self, base_url: str, accounts: list[Account], mix: Mix | None = None, recorder: Recorder | None = None
    ):
        ensure_loopback(urlsplit(base_url).hostname or "")
        if not 1 <= len(accounts) <= MAX_USERS:
            raise ValueError(f"between 1 and {MAX_USERS} virtual users, not {len(accounts)}")
        self.recorder = recorder or Recorder()
        self.stop_event = threading.Event()
        self.users = [
            VirtualUser(i, account, base_url, self.recorder, mix or Mix(), len(accounts), self.stop_event)
            for i, account in enumerate(accounts)
        ]

    @property
    def samples(self) -> list[Sample]:
        return self.recorder.snapshot()

    def start(self) -> None:
        for user in self.users:
            user.start()

    def stop(self, timeout: float = REQUEST_TIMEOUT + 5) -> None:
        self.stop_event.set()
        deadline = time.monotonic() + timeout
        for user in self.users:
            user.join(max(0.0, deadline - time.monotonic()))
