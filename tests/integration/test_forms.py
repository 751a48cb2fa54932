"""The accessible field macro (templates/_forms.html) on every form that uses it: no ARIA
attribute without a value, the help text next to its field and replaced by the error, and the
first invalid field, only that one, gets `autofocus` (server-side: it works without JavaScript)."""

from __future__ import annotations

import re

import pytest

from app.auth.emailed_tokens import RESET_PASSWORD, issue_token
from app.extensions import db
from tests.support import csrf_token

CONTROL = re.compile(r"<(?:input|select|textarea)\b[^>]*>")


def _controls(html: str) -> list[str]:
    return [tag for tag in CONTROL.findall(html) if 'type="hidden"' not in tag]


def _assert_accessible_fields(html: str, invalid: list[str]) -> None:
    """`invalid`: the ids of the fields that must show an error, in page order."""
    assert '="None"' not in html
    controls = _controls(html)
    flagged = [re.search(r'\sid="([^"]+)"', tag).group(1) for tag in controls if 'aria-invalid="true"' in tag]
    assert flagged == invalid
    focused = [tag for tag in controls if re.search(r"\sautofocus[\s>]", tag)]
    if invalid:
        assert len(focused) == 1 and f'id="{invalid[0]}"' in focused[0]
    for tag in controls:
        described = re.search(r'aria-describedby="([^"]*)"', tag)
        field_id = re.search(r'\sid="([^"]+)"', tag).group(1)
        if field_id in invalid:
            assert described and described.group(1) == f"{field_id}-error"
            error = re.search(rf'<small id="{field_id}-error"[^>]*>([^<]+)</small>', html)
            assert error and error.group(1).strip()
            assert f'id="{field_id}-help"' not in html  # the error replaces the help text
        if described:
            for target in described.group(1).split():
                assert f'id="{target}"' in html  # every reference names an element of the page


def _post(client, path, form_path=None, **data):
    return client.post(path, data={"csrf_token": csrf_token(client, form_path or path), **data})


def test_fields_without_errors_carry_no_empty_aria_and_the_help_is_tied_to_its_field(client):
    html = client.get("/auth/signup").get_data(as_text=True)
    _assert_accessible_fields(html, [])
    assert re.search(r'<input[^>]*aria-describedby="password-help"[^>]*>\s*<small id="password-help"', html)
    [focused] = [tag for tag in _controls(html) if " autofocus" in tag]
    assert 'id="email"' in focused  # the form's first field, when nothing is wrong


@pytest.mark.parametrize(
    ("path", "data", "invalid"),
    [
        ("/auth/signup", {"email": "", "display_name": "", "password": ""}, ["email", "display_name", "password"]),
        ("/auth/signup", {"email": "a@example.com", "display_name": "A", "password": "short"}, ["password"]),
        ("/auth/login", {"email": "", "password": ""}, ["email", "password"]),
        ("/auth/reset", {"email": ""}, ["email"]),
    ],
)
def test_the_first_invalid_field_and_only_it_gets_the_focus(client, path, data, invalid):
    response = _post(client, path, **data)
    assert response.status_code == 422
    _assert_accessible_fields(response.get_data(as_text=True), invalid)


def test_a_wrong_password_focuses_the_password_not_the_email(client, make_user):
    make_user(email="focus@example.com")
    response = _post(client, "/auth/login", email="focus@example.com", password="not the password")
    assert response.status_code == 401
    _assert_accessible_fields(response.get_data(as_text=True), ["password"])


def test_the_new_password_form_shows_its_error_instead_of_its_help(client, make_user, app):
    user = make_user(email="newpw@example.com")
    with app.app_context():
        token = issue_token(user.id, RESET_PASSWORD)
        db.session.commit()
    page = client.get(f"/auth/reset/{token}").get_data(as_text=True)
    _assert_accessible_fields(page, [])
    assert 'id="password-help"' in page
    response = _post(client, f"/auth/reset/{token}", password="short")
    assert response.status_code == 422
    _assert_accessible_fields(response.get_data(as_text=True), ["password"])


def test_the_account_forms_use_the_same_rules(auth, make_user):
    browser = auth.signed_in(make_user(email="acct@example.com"))
    _assert_accessible_fields(browser.get("/account/").get_data(as_text=True), [])
    response = _post(browser, "/account/password", "/account/", current_password="wrong", new_password="x")
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert '="None"' not in html
    flagged = [tag for tag in _controls(html) if 'aria-invalid="true"' in tag]
    focused = [tag for tag in _controls(html) if re.search(r"\sautofocus[\s>]", tag)]
    assert flagged and focused == flagged[:1]
