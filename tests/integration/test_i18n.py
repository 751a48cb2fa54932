"""Languages (app/i18n.py): the locale comes from the user's preference, else Accept-Language,
else English; /account chooses it (audited); forms, flashes, service errors and the API answer
in it; choosing it costs no query."""

from __future__ import annotations

from email.header import decode_header, make_header

import pytest
from sqlalchemy import event

from app.audit.models import AuditEvent
from app.extensions import db
from app.users.models import User
from tests.support import csrf_token

GERMAN = {"HTTP_ACCEPT_LANGUAGE": "de-DE,de;q=0.9,en;q=0.5"}


def _locale(app, email: str) -> str | None:
    with app.app_context():
        return db.session.scalar(db.select(User.locale).where(User.email == email))


def _audited(app, name: str) -> list[AuditEvent]:
    with app.app_context():
        return list(db.session.scalars(db.select(AuditEvent).where(AuditEvent.event == name)))


def _page(client, path: str = "/account/", **headers: str) -> str:
    response = client.get(path, headers=headers)
    assert response.status_code == 200, response.status_code
    return response.get_data(as_text=True)


@pytest.fixture()
def member(make_user):
    return make_user(email="member@example.com", display_name="Member")


def test_the_account_page_follows_accept_language_and_says_it_varies_on_it(client, auth, member):
    auth.login(member)
    english = client.get("/account/")
    assert "Your account" in english.get_data(as_text=True)
    assert "Accept-Language" in english.headers.get("Vary", "")  # English was negotiated too
    german = client.get("/account/", headers={"Accept-Language": "de-AT, en;q=0.5"})
    html = german.get_data(as_text=True)
    assert "Ihr Konto" in html and "Your account" not in html
    assert "Profil speichern" in html and "Anzeigename" in html and "Angemeldete Browser" in html
    # help text (lazy, defined at import time) and the choice for "automatic" are translated too
    assert "Nur nötig, um die E-Mail-Adresse zu ändern." in html
    assert "Automatisch (Browsersprache)" in html
    # a `{% trans %}` block, its link filled in (and escaped) after translation
    assert 'Laden Sie auf der Seite <a href="/files/">Ihre Dateien</a> ein Bild hoch' in html
    # languages are named in themselves, whatever the page's language
    assert '<option lang="de" value="de">Deutsch</option>' in html
    assert '<option lang="en" value="en">English</option>' in html
    assert "Accept-Language" in german.headers.get("Vary", "")


def test_a_language_nobody_offers_falls_back_to_english(client, auth, member):
    auth.login(member)
    assert "Your account" in _page(client, **{"Accept-Language": "fr-FR, ja;q=0.8"})


def test_the_users_preference_overrides_accept_language(client, auth, make_user):
    make_user(email="deutsch@example.com", locale="de")
    auth.login("deutsch@example.com")
    response = client.get("/account/", headers={"Accept-Language": "en-US,en;q=0.9"})
    assert "Ihr Konto" in response.get_data(as_text=True)
    # chosen by the account, not the header: nothing for a shared cache to vary on
    assert "Accept-Language" not in response.headers.get("Vary", "")


def test_an_english_preference_wins_over_a_german_browser(client, auth, make_user):
    make_user(email="english@example.com", locale="en")
    auth.login("english@example.com")
    assert "Your account" in _page(client, **{"Accept-Language": "de"})


def test_choosing_a_language_saves_it_audits_it_and_confirms_in_the_new_language(app, client, auth, member):
    auth.login(member)
    response = client.post("/account/language", data={"csrf_token": csrf_token(client, "/account/"), "locale": "de"})
    assert response.status_code == 302 and response.headers["Location"] == "/account/"
    assert _locale(app, member.email) == "de"
    [audit] = _audited(app, "locale_changed")
    assert audit.actor_user_id == member.id and audit.subject_user_id == member.id
    assert audit.data["before"] == {"locale": None} and audit.data["after"] == {"locale": "de"}
    html = _page(client, **{"Accept-Language": "en"})
    assert "Sprache gespeichert." in html and "Ihr Konto" in html
    assert '<option lang="de" selected value="de">Deutsch</option>' in html
    # "automatic" forgets the preference: the browser's language again
    client.post("/account/language", data={"csrf_token": csrf_token(client, "/account/"), "locale": ""})
    assert _locale(app, member.email) is None
    assert "Your account" in _page(client, **{"Accept-Language": "en"})
    assert len(_audited(app, "locale_changed")) == 2
    # saving the same choice again changes (and audits) nothing
    client.post("/account/language", data={"csrf_token": csrf_token(client, "/account/"), "locale": ""})
    assert len(_audited(app, "locale_changed")) == 2


@pytest.mark.parametrize(
    ("headers", "message"),
    [({}, "Not a valid choice."), (GERMAN, "Keine gültige Auswahl.")],
)
def test_a_language_hearth_does_not_offer_is_refused_with_a_form_error(app, client, auth, member, headers, message):
    auth.login(member)
    client.environ_base.update(headers)
    token = csrf_token(client, "/account/")
    response = client.post("/account/language", data={"csrf_token": token, "locale": "fr"})
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert 'id="locale-error"' in html and message in html and 'aria-invalid="true"' in html
    assert _locale(app, member.email) is None and not _audited(app, "locale_changed")


def test_form_errors_and_flash_messages_are_translated(client, auth, member):
    auth.login(member)
    client.environ_base.update(GERMAN)
    token = csrf_token(client, "/account/")
    too_long = client.post("/account/profile", data={"csrf_token": token, "display_name": "x" * 121, "email": "m"})
    assert too_long.status_code == 422
    assert "Verwenden Sie höchstens 120 Zeichen." in too_long.get_data(as_text=True)
    wrong = client.post(
        "/account/password",
        data={"csrf_token": token, "current_password": "not my password", "new_password": "a fresh passphrase"},
    )
    assert wrong.status_code == 422
    assert "Das aktuelle Passwort ist nicht korrekt." in wrong.get_data(as_text=True)  # a service's error
    client.post("/account/sign-out-everywhere", data={"csrf_token": token})
    assert "Alle anderen Sitzungen und API-Anmeldungen wurden abgemeldet." in _page(client)


def test_the_api_answers_in_the_language_the_client_asks_for(client, api_auth, member):
    headers = api_auth.headers(member)
    english = client.patch("/api/v1/me", json={"display_name": "   "}, headers=headers)
    assert english.status_code == 422 and english.json["detail"] == "Enter a display name of 1 to 120 characters."
    german = client.patch("/api/v1/me", json={"display_name": "   "}, headers={**headers, "Accept-Language": "de"})
    assert german.json["detail"] == "Geben Sie einen Anzeigenamen mit 1 bis 120 Zeichen ein."
    assert german.json["errors"][0]["field"] == "display_name"


def test_the_locale_is_read_and_set_through_api_v1_me(app, client, api_auth, member):
    headers = api_auth.headers(member)
    assert client.get("/api/v1/me", headers=headers).json["locale"] is None
    updated = client.patch("/api/v1/me", json={"locale": "de"}, headers=headers)
    assert updated.status_code == 200 and updated.json["locale"] == "de"
    assert updated.json["display_name"] == "Member" and not _audited(app, "profile_updated")
    assert [event.actor_user_id for event in _audited(app, "locale_changed")] == [member.id]
    assert client.patch("/api/v1/me", json={"locale": "fr"}, headers=headers).status_code == 422
    cleared = client.patch("/api/v1/me", json={"locale": None}, headers=headers)
    assert cleared.json["locale"] is None and _locale(app, member.email) is None


def test_choosing_the_language_costs_no_query(app, client, auth, make_user):
    """The preference is read from the user the request already loaded: a German account's page
    runs exactly the statements an English one's does."""
    make_user(email="de@example.com", locale="de")
    make_user(email="en@example.com")

    def statements(email: str) -> list[str]:
        auth.login(email)
        client.get("/account/")  # consumes the welcome flash; later visits are alike
        with app.app_context():
            engine = db.engine
        seen: list[str] = []

        def count(conn, cursor, statement, *args):
            seen.append(statement)

        event.listen(engine, "before_cursor_execute", count)
        try:
            html = _page(client, **{"Accept-Language": "en"})
        finally:
            event.remove(engine, "before_cursor_execute", count)
        auth.logout()
        return [html, seen]

    german_html, german = statements("de@example.com")
    english_html, english = statements("en@example.com")
    assert "Ihr Konto" in german_html and "Your account" in english_html
    assert len(german) == len(english), (german, english)


def test_the_sign_in_page_refuses_a_wrong_password_in_the_browsers_language(client, member):
    client.environ_base.update(GERMAN)
    response = client.post(
        "/auth/login",
        data={"csrf_token": csrf_token(client), "email": member.email, "password": "not the password"},
    )
    assert "Ungültige E-Mail-Adresse oder ungültiges Passwort." in response.get_data(as_text=True)


# Emails: the recipient's preference decides, not the browser that caused them -----------------


def _mail(delivery) -> tuple[str, str, str]:
    """(subject, plain text, HTML) of a delivered message, decoded."""
    parts = {
        p.get_content_type(): p.get_payload(decode=True).decode()
        for p in delivery.message.walk()
        if not p.is_multipart()
    }
    subject = str(make_header(decode_header(delivery.message["Subject"])))
    return subject, parts["text/plain"], parts["text/html"]


@pytest.mark.parametrize(
    ("preference", "browser", "german"),
    [
        ("de", "en", True),  # the preference wins over the browser that asked
        ("en", "de-DE,de;q=0.9", False),
        (None, "de-DE,de;q=0.9", True),  # no preference: the language of the page that asked
        (None, "en", False),
    ],
)
def test_a_reset_email_is_written_in_the_users_language_not_the_browsers(
    make_app, smtp, make_user, preference, browser, german
):
    user = make_user(email="reader@example.com", display_name="Reader", locale=preference)
    client = make_app(smtp_url=smtp.url).test_client()
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = browser
    response = client.post("/auth/reset", data={"csrf_token": csrf_token(client, "/auth/reset"), "email": user.email})
    assert response.status_code == 200
    [delivery] = smtp.deliveries
    subject, text, html = _mail(delivery)
    if german:
        assert subject == "Setzen Sie Ihr Hearth-Passwort zurück"
        assert text.startswith("Hallo Reader,") and "Hello" not in text
        assert '<html lang="de">' in html and "Neues Passwort wählen" in html
    else:
        assert subject == "Reset your Hearth password" and text.startswith("Hello Reader,")


def test_the_lockout_notice_follows_the_owners_preference_not_the_guessers_browser(make_app, smtp, make_user):
    owner = make_user(email="owner@example.com", display_name="Owner", locale="de")
    guesser = make_app(smtp_url=smtp.url, login_lockout_threshold=2).test_client()
    guesser.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"
    for _attempt in range(2):
        guesser.post(
            "/auth/login",
            data={"csrf_token": csrf_token(guesser, "/auth/login"), "email": owner.email, "password": "wrong guess!!"},
        )
    [notice] = [d for d in smtp.deliveries if d.recipients == [owner.email]]
    subject, text, _html = _mail(notice)
    assert subject == "Zu viele falsche Passwörter für Ihr Hearth-Konto"
    assert text.startswith("Hallo Owner,")
