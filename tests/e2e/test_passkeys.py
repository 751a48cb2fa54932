"""Passkeys in Chromium, with the DevTools protocol's virtual authenticator (a platform
authenticator with resident keys and user verification): register a passkey on
/account/security, sign out, sign in with the passkey alone (no email typed).

WebAuthn needs a relying party id that is a domain, never an IP address: this test serves an app
whose PUBLIC_URL is http://localhost:<port> (so its relying party is "localhost" and its origin
that URL) on a loopback server of its own, and the browser opens it by that name.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from playwright.sync_api import expect
from werkzeug.serving import make_server

from app.core.database import utcnow
from tests.e2e.axe import add_axe, serious_violations
from tests.support import PASSWORD, free_port

pytestmark = pytest.mark.e2e


@pytest.fixture()
def localhost_server(make_app: Callable[..., Flask], app: Flask) -> Iterator[str]:
    """An app on the session's database, reached as http://localhost:<port> (its PUBLIC_URL)."""
    port = free_port()
    base = f"http://localhost:{port}"
    server = make_server("127.0.0.1", port, make_app(public_url=base), threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="hearth-e2e-passkeys", daemon=True)
    thread.start()
    yield base
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def _virtual_authenticator(page: Any) -> tuple[Any, str]:
    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    added = cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
                "automaticPresenceSimulation": True,
            }
        },
    )
    return cdp, added["authenticatorId"]


def test_register_a_passkey_then_sign_in_with_it_alone(new_page, localhost_server, make_user):
    user = make_user(email="passkey@example.com", display_name="Pat Key", email_verified_at=utcnow())
    page, events = new_page()
    add_axe(page.context)
    cdp, authenticator_id = _virtual_authenticator(page)

    page.goto(localhost_server + "/auth/login")
    page.get_by_label("Email").fill(user.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page.get_by_text("Welcome back, Pat Key.")).to_be_visible()

    page.goto(localhost_server + "/account/security")
    section = page.locator("#passkeys")
    expect(section.get_by_text("You have no passkeys yet.")).to_be_visible()
    # The browser supports passkeys: the form shows and the "needs JavaScript" note does not.
    expect(section.locator("[data-passkey-unsupported]")).to_be_hidden()
    section.get_by_label("Name of the new passkey").fill("Chromium test")
    section.get_by_role("button", name="Add a passkey").click()
    expect(page.get_by_text("Passkey “Chromium test” added.")).to_be_visible()
    expect(section.get_by_role("cell", name="Chromium test")).to_be_visible()
    credentials = cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator_id})["credentials"]
    assert len(credentials) == 1 and credentials[0]["isResidentCredential"]

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_text("You have been signed out.")).to_be_visible()

    page.goto(localhost_server + "/auth/login")
    page.get_by_role("button", name="Sign in with a passkey").click()  # no email typed
    expect(page.get_by_text("Welcome back, Pat Key.")).to_be_visible()
    page.goto(localhost_server + "/account/")
    expect(page.get_by_label("Email")).to_have_value(user.email)

    # The passkey now shows its last use.
    page.goto(localhost_server + "/account/security")
    row = page.locator("#passkeys").get_by_role("row", name="Chromium test")
    expect(row).not_to_contain_text("never")
    events.assert_clean()

    # The section fits a phone and a wide screen, with its rename/remove disclosure open, and
    # passes axe (axe's own blocked styles are not the page's: CSP is checked above).
    row.locator("summary").click()
    for width in (390, 1280):
        page.set_viewport_size({"width": width, "height": 900})
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), width
        assert serious_violations(page) == [], width


def test_the_passkey_button_stays_hidden_without_webauthn(new_page, localhost_server):
    page, events = new_page(java_script_enabled=False)
    page.goto(localhost_server + "/auth/login")
    expect(page.locator("form[data-passkey-get]")).to_have_count(1)  # rendered, but hidden
    expect(page.get_by_role("button", name="Sign in with a passkey")).to_be_hidden()
    expect(page.get_by_role("button", name="Sign in", exact=True)).to_be_visible()
    events.assert_clean()
