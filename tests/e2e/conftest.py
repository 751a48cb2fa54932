"""Browser fixtures: the session's app on a real loopback server, driven by Debian's Chromium.

- `live_server_url`: the session `app` (already migrated) served by werkzeug in a daemon thread;
- `browser`: one Chromium for the session (never `playwright install`: the browser is
  /usr/bin/chromium from Debian);
- `new_page(**context_options)`: a page in a fresh context, with a `BrowserEvents` recorder
  (console errors, CSP violations, page errors, every request and response);
- `page` / `events`: the default page of the test and its recorder.

Nothing is injected into the pages: CSP violations are read from the console messages
Chromium writes for them, so the policy under test is exactly the one the app sends.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask import Flask
from werkzeug.serving import make_server

from tests.support import free_port

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
LOOPBACK_HOSTS = {"127.0.0.1"}
# Internal browser schemes that never touch the network.
LOCAL_SCHEMES = {"data", "blob", "about", "chrome", "chrome-extension", "devtools"}
DEFAULT_TIMEOUT_MS = 10_000


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test under tests/e2e carries the `e2e` marker (select with `-m e2e`, skip with `-m 'not e2e'`)."""
    for item in items:
        if "/tests/e2e/" in str(item.path).replace("\\", "/"):
            item.add_marker(pytest.mark.e2e)


@dataclass
class BrowserEvents:
    """What the browser reported while a test ran."""

    console_errors: list[str] = field(default_factory=list)
    csp_violations: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    responses: list[tuple[int, str]] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)

    def on_console(self, message: Any) -> None:
        text = message.text
        if "Content Security Policy" in text or "Content-Security-Policy" in text:
            self.csp_violations.append(text)
        if message.type == "error":
            self.console_errors.append(f"{text} ({message.location.get('url', '')})")

    def on_request_failed(self, request: Any) -> None:
        # ERR_ABORTED is the browser cancelling a load because the test navigated away (a
        # favicon still in flight, say): not a failure of the page.
        if "ERR_ABORTED" not in (request.failure or ""):
            self.failed_requests.append(f"{request.url}: {request.failure}")

    def on_page_error(self, error: Any) -> None:
        self.page_errors.append(str(error))

    def external_requests(self) -> list[str]:
        """Requests that left the loopback server (any host but 127.0.0.1)."""
        outside = []
        for url in self.requests:
            parts = urlsplit(url)
            if parts.scheme in LOCAL_SCHEMES:
                continue
            if parts.hostname not in LOOPBACK_HOSTS:
                outside.append(url)
        return outside

    def error_responses(self) -> list[tuple[int, str]]:
        return [(status, url) for status, url in self.responses if status >= 400]

    def assert_clean(self) -> None:
        """No console errors, no CSP violations, no uncaught exceptions, no failed loads."""
        assert self.csp_violations == [], f"CSP violations: {self.csp_violations}"
        assert self.page_errors == [], f"uncaught page errors: {self.page_errors}"
        assert self.console_errors == [], f"console errors: {self.console_errors}"
        assert self.failed_requests == [], f"failed requests: {self.failed_requests}"


@pytest.fixture(scope="session")
def live_server_url(app: Flask) -> Iterator[str]:
    """Base URL (no trailing slash) of the session app on a threaded werkzeug server."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="hearth-e2e-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not shutil.which(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (never `playwright install`)")
    from playwright.sync_api import sync_playwright

    playwright = sync_playwright().start()
    try:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()
    finally:
        playwright.stop()


@pytest.fixture
def new_page(browser: Any, live_server_url: str) -> Iterator[Callable[..., tuple[Any, BrowserEvents]]]:
    """Factory: `page, events = new_page(color_scheme="dark")`; each call opens its own context."""
    contexts: list[Any] = []

    def make(**context_options: Any) -> tuple[Any, BrowserEvents]:
        context = browser.new_context(base_url=live_server_url, **context_options)
        context.set_default_timeout(DEFAULT_TIMEOUT_MS)
        contexts.append(context)
        events = BrowserEvents()
        context.on("request", lambda request: events.requests.append(request.url))
        context.on("response", lambda response: events.responses.append((response.status, response.url)))
        context.on("requestfailed", events.on_request_failed)
        page = context.new_page()
        page.on("console", events.on_console)
        page.on("pageerror", events.on_page_error)
        return page, events

    yield make
    for context in contexts:
        context.close()


@pytest.fixture
def _default_page(new_page: Callable[..., tuple[Any, BrowserEvents]]) -> tuple[Any, BrowserEvents]:
    return new_page()


@pytest.fixture
def page(_default_page: tuple[Any, BrowserEvents]) -> Any:
    """A page in a new context of its own (light colour scheme, JavaScript on)."""
    return _default_page[0]


@pytest.fixture
def events(_default_page: tuple[Any, BrowserEvents]) -> BrowserEvents:
    """The recorder of the `page` fixture."""
    return _default_page[1]


@pytest.fixture
def dev_server(
    make_app: Callable[..., Flask], app: Flask, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """A development app (with /dev/mail) on its own loopback server, its links pointing at it."""

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    dev_app = make_app(app_env="development", public_url=base, dev_mail_dir=str(tmp_path / "mail"))
    server = make_server("127.0.0.1", port, dev_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="hearth-e2e-dev-server", daemon=True)
    thread.start()
    yield base
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)
