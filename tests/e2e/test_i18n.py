"""German in a real browser (issue 13): a page, a form error and an email, each in the language
the browser asks for (Accept-Language) or the account's own choice (/account), with dates, sizes
and stored sentences in German too."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

import pytest
from playwright.sync_api import expect

from app.core.database import utcnow
from app.core.unit_of_work import unit_of_work
from app.extensions import db
from app.uploads.models import Upload, UploadStatus
from tests.support import PASSWORD

pytestmark = pytest.mark.e2e

# A browser set to German: its UI locale and the header it sends.
GERMAN = {"locale": "de-DE", "extra_http_headers": {"Accept-Language": "de-DE,de;q=0.9,en;q=0.5"}}
# "05.01.2026, 15:04:05 UTC": the exact time on hover, in German order.
GERMAN_MOMENT = re.compile(r"^\d{2}\.\d{2}\.\d{4}, \d{2}:\d{2}:\d{2} UTC$")


def _sign_in(page, email: str, password: str = PASSWORD, *, field: str = "E-Mail", button: str = "Anmelden") -> None:
    page.goto("/auth/login")
    page.get_by_label(field, exact=True).fill(email)
    page.locator("input[name=password]").fill(password)
    page.get_by_role("button", name=button, exact=True).click()


def test_the_sign_in_page_and_its_form_errors_are_german(new_page, make_user):
    make_user(email="leser@example.com", display_name="Leser")
    page, events = new_page(**GERMAN)
    page.goto("/auth/login")
    expect(page.locator("html")).to_have_attribute("lang", "de")
    expect(page).to_have_title("Anmelden · Hearth")
    expect(page.get_by_role("heading", name="Anmelden")).to_be_visible()
    expect(page.get_by_label("Auf diesem Gerät angemeldet bleiben")).to_be_visible()  # a form's label
    expect(page.get_by_role("link", name="Passwort vergessen?")).to_be_visible()
    expect(page.get_by_role("link", name="Ein Konto anlegen")).to_be_visible()

    # a service's refusal, on the form
    _sign_in(page, "leser@example.com", "nicht das Passwort")
    expect(page.get_by_role("alert")).to_have_text("Ungültige E-Mail-Adresse oder ungültiges Passwort.")

    # a field's error replaces its help text, tied to the field, focused
    page.goto("/auth/signup")
    expect(page.locator("#password-help")).to_have_text(
        "Mindestens 12 Zeichen. Ein paar Wörter, die nichts miteinander zu tun haben, eignen sich gut."
    )
    page.get_by_label("E-Mail", exact=True).fill("neu@example.com")
    page.get_by_label("Anzeigename").fill("Neu")
    page.locator("input[name=password]").fill("zu kurz")
    page.get_by_role("button", name="Konto anlegen").click()
    password = page.locator("input[name=password]")
    expect(page.locator("#password-error")).to_have_text("Verwenden Sie mindestens 12 Zeichen.")
    expect(password).to_have_attribute("aria-invalid", "true")
    expect(password).to_have_attribute("aria-describedby", "password-error")
    expect(password).to_be_focused()
    expect(page.locator("#password-help")).to_have_count(0)
    assert not events.csp_violations and not events.page_errors


def _uploads(app, user_id: int) -> None:
    """A ready file uploaded three hours ago and one whose processing failed (its reason is
    stored in English, as the worker writes it)."""
    three_hours_ago = utcnow() - timedelta(hours=3)
    rows = [
        (UploadStatus.ready, "document", "bericht.pdf", "application/pdf", None),
        (
            UploadStatus.failed,
            "avatar",
            "scan.jpg",
            "image/jpeg",
            "Processing failed: The file could not be read as an image.",
        ),
    ]
    with app.app_context(), unit_of_work():
        for status, kind, filename, content_type, error in rows:
            upload_id = str(uuid.uuid4())
            db.session.add(
                Upload(
                    id=upload_id,
                    user_id=user_id,
                    kind=kind,
                    status=status,
                    filename=filename,
                    content_type=content_type,
                    declared_size=2_934_812,
                    size=2_934_812,
                    key=f"users/{user_id}/{kind}/{upload_id}/{filename}",
                    details={},
                    error=error,
                    created_at=three_hours_ago,
                    updated_at=three_hours_ago,
                )
            )


def test_the_files_page_speaks_german_with_german_dates_and_sizes(new_page, app, make_user, tmp_path):
    user = make_user(email="dateien@example.com", display_name="Dana", email_verified_at=utcnow())
    _uploads(app, user.id)
    page, events = new_page(viewport={"width": 1280, "height": 900}, **GERMAN)
    _sign_in(page, "dateien@example.com")
    expect(page.get_by_text("Willkommen zurück, Dana.")).to_be_visible()  # a toast
    expect(page).to_have_url(re.compile(r"/files/$"))
    expect(page.get_by_role("heading", name="Ihre Dateien")).to_be_visible()
    expect(page.get_by_role("button", name="Abmelden")).to_be_visible()

    ready = page.locator("tr.file-row", has_text="bericht.pdf")
    expect(ready.locator("td[data-label='Größe']")).to_have_text("2,8 MB")  # a decimal comma
    expect(ready.locator("td[data-label='Art']")).to_have_text("Dokument")
    expect(ready.locator(".badge")).to_have_text("Bereit")
    uploaded = ready.locator("td[data-label='Hochgeladen'] time")
    expect(uploaded).to_have_text("vor 3 Stunden")
    assert GERMAN_MOMENT.match(uploaded.get_attribute("title") or ""), uploaded.get_attribute("title")

    # a sentence stored in English by the worker, shown in German
    failed = page.locator("tr.file-row", has_text="scan.jpg")
    expect(failed.locator(".badge")).to_have_text("Fehlgeschlagen")
    expect(failed.locator(".error-text")).to_have_text(
        "Verarbeitung fehlgeschlagen: Die Datei konnte nicht als Bild gelesen werden."
    )
    expect(page.locator("select#upload-kind")).to_contain_text("Avatar (JPEG, PNG, WebP, GIF; bis ")

    # the upload widget's own words (static/js/uploads.js) come from the page, translated
    svg = tmp_path / "zeichnung.svg"
    svg.write_text("<svg xmlns='http://www.w3.org/2000/svg'></svg>")
    page.locator("select#upload-kind").select_option("avatar")
    page.set_input_files("#upload-file", str(svg))
    page.get_by_role("button", name="Hochladen", exact=True).click()
    expect(page.locator("#upload-message")).to_have_text("Dateien vom Typ image/svg+xml werden hier nicht angenommen.")
    assert not events.csp_violations and not events.page_errors


def test_the_accounts_language_wins_over_an_english_browser(new_page, make_user):
    make_user(email="wahl@example.com", display_name="Wahl", email_verified_at=utcnow())
    page, events = new_page()  # an English browser
    _sign_in(page, "wahl@example.com", field="Email", button="Sign in")
    page.goto("/account/")
    expect(page.get_by_role("heading", name="Your account")).to_be_visible()
    page.locator("select#locale").select_option("de")
    page.get_by_role("button", name="Save language").click()
    expect(page.get_by_text("Sprache gespeichert.")).to_be_visible()
    expect(page.get_by_role("heading", name="Ihr Konto")).to_be_visible()
    expect(page.locator("html")).to_have_attribute("lang", "de")
    page.goto("/files/")
    expect(page.get_by_role("heading", name="Ihre Dateien")).to_be_visible()
    assert not events.csp_violations and not events.page_errors


def test_signing_up_in_german_sends_a_german_email(new_page, dev_server):
    """Sign up from a German browser: the confirmation email (subject, HTML and plain text) is
    German, as is the development mailbox showing it; its link confirms in German too."""
    page, events = new_page(**GERMAN)
    page.goto(dev_server + "/auth/signup")
    page.get_by_label("E-Mail", exact=True).fill("neuling@example.com")
    page.get_by_label("Anzeigename").fill("Neuling")
    page.locator("input[name=password]").fill("eine lange und unerratbare Passphrase")
    page.get_by_role("button", name="Konto anlegen").click()
    expect(page.get_by_role("heading", name="Sehen Sie in Ihrem Posteingang nach")).to_be_visible()

    page.goto(dev_server + "/dev/mail/")
    expect(page.get_by_role("heading", name="Entwicklungs-Postfach")).to_be_visible()
    expect(page.get_by_role("columnheader", name="Betreff")).to_be_visible()
    page.get_by_role("link", name="Bestätigen Sie Ihre E-Mail-Adresse für Hearth").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Bestätigen Sie Ihre E-Mail-Adresse für Hearth")
    html = page.locator(".mail-html")
    expect(html).to_contain_text("Hallo Neuling,")
    expect(html).to_contain_text("Bitte bestätigen Sie diese E-Mail-Adresse für Ihr Hearth-Konto")
    expect(html).to_contain_text("Der Link funktioniert einmal und läuft in 24 Stunden ab.")
    expect(page.get_by_role("heading", name="Klartext")).to_be_visible()
    text = page.locator(".mail-body")
    expect(text).to_contain_text("Hallo Neuling,")
    expect(text).not_to_contain_text("Hello")

    page.get_by_role("link", name="Meine E-Mail-Adresse bestätigen").click()
    expect(page.get_by_text("E-Mail-Adresse bestätigt")).to_be_visible()
    assert page.url == dev_server + "/account/"
    expect(page.get_by_role("heading", name="Ihr Konto")).to_be_visible()
    assert not events.csp_violations and not events.page_errors
