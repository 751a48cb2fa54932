"""Forms in a real browser, with and without errors: axe-core (tests/e2e/axe.py, the WCAG A/AA rules)
finds nothing critical or serious, and the first invalid field has the focus as the page
loads (its `autofocus` is server-side, so this holds without JavaScript too)."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from app.auth.emailed_tokens import RESET_PASSWORD, issue_token
from app.extensions import db
from tests.e2e.axe import add_axe, serious_violations
from tests.support import PASSWORD

pytestmark = pytest.mark.e2e


def _page(new_page, scheme: str, javascript: bool = True) -> tuple[Any, Any]:
    page, events = new_page(color_scheme=scheme, java_script_enabled=javascript)
    add_axe(page.context)
    return page, events


def _submit(page: Any, button: str) -> None:
    with page.expect_navigation():
        page.get_by_role("button", name=button, exact=True).click()


def _focused_id(page: Any) -> str:
    return page.evaluate("() => document.activeElement && document.activeElement.id")


def _axe(page: Any) -> list[str]:
    return [str(violation) for violation in serious_violations(page)]


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_sign_up_sign_in_and_reset_forms_pass_axe_with_and_without_errors(new_page, make_user, app, scheme):
    user = make_user(email="forms@example.com")
    with app.app_context():
        token = issue_token(user.id, RESET_PASSWORD)
        db.session.commit()
    page, events = _page(new_page, scheme)
    found: dict[str, list[str]] = {}

    page.goto("/auth/signup")
    assert _focused_id(page) == "email"
    found["sign-up"] = _axe(page)
    page.get_by_label("Display name").fill("Forms")
    page.get_by_label("Password").fill("short")
    _submit(page, "Create account")
    assert _focused_id(page) == "email"  # the first invalid field (empty), not the password
    found["sign-up, errors"] = _axe(page)

    page.goto("/auth/login")
    found["sign-in"] = _axe(page)
    page.get_by_label("Email").fill("forms@example.com")
    page.get_by_label("Password").fill("not the password")
    _submit(page, "Sign in")
    assert _focused_id(page) == "password"
    expect(page.locator("#password-error")).to_have_text("Invalid email or password.")
    found["sign-in, errors"] = _axe(page)

    page.goto("/auth/reset")
    found["reset"] = _axe(page)
    _submit(page, "Send the link")
    assert _focused_id(page) == "email"
    found["reset, errors"] = _axe(page)

    page.goto(f"/auth/reset/{token}")
    found["new password"] = _axe(page)
    page.get_by_label("New password", exact=True).fill("short")
    _submit(page, "Save the new password")
    assert _focused_id(page) == "password"
    found["new password, errors"] = _axe(page)

    assert {name: issues for name, issues in found.items() if issues} == {}
    assert not events.csp_violations


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_the_account_forms_pass_axe_with_and_without_errors(new_page, make_user, scheme):
    make_user(email="acct-forms@example.com", display_name="Acct")
    page, _events = _page(new_page, scheme)
    page.goto("/auth/login")
    page.get_by_label("Email").fill("acct-forms@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    _submit(page, "Sign in")
    page.goto("/account/")
    found = {"account": _axe(page)}
    page.locator("form[action$='/account/password'] input[type=password]").first.fill("wrong")
    page.locator("form[action$='/account/password'] button[type=submit]").click()
    page.wait_for_load_state()
    focused = _focused_id(page)
    assert focused and page.locator(f"#{focused}").get_attribute("aria-invalid") == "true"
    found["account, errors"] = _axe(page)
    assert {name: issues for name, issues in found.items() if issues} == {}


def test_the_focus_moves_to_the_first_invalid_field_without_javascript(new_page):
    page, _events = _page(new_page, "light", javascript=False)
    page.goto("/auth/signup")
    page.get_by_label("Email").fill("nojs-focus@example.com")
    _submit(page, "Create account")
    assert _focused_id(page) == "display_name"
