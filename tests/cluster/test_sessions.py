"""Browser sign-ins across instances: the session and the remember-me cookie are server-side
records in the shared database, checked on every request, so any instance honours what
another issued and a sign-out on one ends them on all."""

from __future__ import annotations

REMEMBER = "remember_token"  # the cookie's name outside staging/production
SESSION = "session"


def test_a_session_made_on_one_instance_is_signed_in_on_the_other(browser, make_user):
    account = make_user()
    ada = browser()
    assert ada.login(0, account.email).status_code == 302
    assert ada.signed_in_as(1, account.email)
    assert ada.signed_in_as(0, account.email)
    # The control: the same browser without its cookies is anonymous on both.
    stranger = browser()
    assert not stranger.signed_in_as(1, account.email) and not stranger.signed_in_as(0, account.email)


def test_a_remember_me_cookie_made_on_one_instance_restores_a_session_on_the_other(browser, make_user):
    account = make_user()
    ada = browser()
    assert ada.login(0, account.email, remember=True).status_code == 302
    remembered = ada.cookies[REMEMBER]
    del ada.cookies[SESSION]  # the browser dropped the session cookie; only remember-me is left
    assert ada.signed_in_as(1, account.email)
    assert ada.cookies[REMEMBER] != remembered  # instance 1 rotated the token
    assert SESSION in ada.cookies
    assert ada.signed_in_as(0, account.email)  # the session instance 1 started works on 0
    # The rotated cookie alone restores a session again, now on instance 0.
    del ada.cookies[SESSION]
    assert ada.signed_in_as(0, account.email)


def test_signing_out_on_one_instance_ends_the_session_and_remember_me_on_both(browser, make_user):
    account = make_user()
    ada = browser()
    assert ada.login(0, account.email, remember=True).status_code == 302
    assert ada.signed_in_as(1, account.email)
    stolen = ada.copy()  # the cookies as they were while signed in (a copied cookie jar)
    only_remember = ada.copy()
    del only_remember.cookies[SESSION]

    assert ada.logout(1).status_code == 302
    assert REMEMBER not in ada.cookies
    for instance in (0, 1):
        assert not ada.signed_in_as(instance, account.email)
        # The old session cookie and the old remember-me cookie are dead on both instances.
        assert not stolen.copy().signed_in_as(instance, account.email)
        assert not only_remember.copy().signed_in_as(instance, account.email)
