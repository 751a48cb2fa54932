"""app/i18n.py on its own (a bare Flask app with Flask-Babel bound, no database), and the
German catalogue: complete, compiled, and in step with the strings the code marks."""

from __future__ import annotations

import ast
import gettext as stdlib_gettext
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po
from flask import Flask, g, render_template_string
from werkzeug.datastructures import LanguageAccept
from werkzeug.http import parse_accept_header

from app.core.templating import filesize
from app.i18n import (
    LANGUAGE_NAMES,
    N_,
    TRANSLATIONS_DIR,
    _,
    _l,
    configure_babel,
    current_locale,
    force_locale,
    format_date,
    format_datetime,
    format_filesize,
    format_number,
    format_relative,
    locale_of,
    negotiate,
    ngettext,
    select_locale,
    translate_stored,
)

ROOT = Path(__file__).resolve().parents[2]
# The keywords `make messages` passes to pybabel extract (Makefile), besides pybabel's defaults.
EXTRA_KEYWORDS = {"_l": None, "lazy_gettext": None, "lazy_ngettext": (1, 2)}
TRANSLATED = [code for code in LANGUAGE_NAMES if code != "en"]


@pytest.fixture()
def site() -> Flask:
    """A bare app with Flask-Babel bound as Hearth binds it (not named `app`: that fixture is
    Hearth's; its pipeline, which adds the Vary hook, is not needed here)."""
    site = Flask(__name__)
    configure_babel(site)
    return site


def _accept(header: str) -> LanguageAccept:
    return parse_accept_header(header, LanguageAccept)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("de", "de"),
        ("de-AT, en;q=0.5", "de"),  # a region of a better choice beats an exact worse one
        ("en;q=0.5, de;q=0.9", "de"),
        ("fr-FR, de;q=0.3", "de"),
        ("fr-FR, ja", "en"),
        ("de;q=0, en", "en"),
        ("*", "en"),
        ("DE_de", "de"),
        ("", "en"),
    ],
)
def test_accept_language_picks_the_first_offered_language_by_quality(header, expected):
    assert negotiate(_accept(header)) == expected


def test_the_users_preference_wins_and_only_a_loaded_user_counts(site):
    with site.test_request_context("/", headers={"Accept-Language": "de"}):
        assert select_locale() == "de"
    with site.test_request_context("/", headers={"Accept-Language": "de"}):
        g._login_user = SimpleNamespace(locale="en")  # Flask-Login's per-request user
        assert select_locale() == "en"
    with site.test_request_context("/", headers={"Accept-Language": "en"}):
        g._login_user = SimpleNamespace(locale="de")
        assert select_locale() == "de"
    with site.test_request_context("/", headers={"Accept-Language": "de"}):
        g._login_user = SimpleNamespace(locale="xx")  # a value no longer offered: ignored
        assert select_locale() == "de"
    with site.test_request_context("/"):
        assert select_locale() == "en"
    with site.app_context():
        assert select_locale() == "en"  # no request: a worker, the CLI


def test_an_email_is_written_in_the_users_language_else_the_one_they_are_reading(site):
    assert locale_of(SimpleNamespace(locale="de")) == "de"
    assert locale_of(SimpleNamespace(locale=None)) == "en" and locale_of(None) == "en"
    with site.test_request_context("/", headers={"Accept-Language": "de"}):
        assert locale_of(SimpleNamespace(locale=None)) == "de"
        assert locale_of(SimpleNamespace(locale="en")) == "en"


def test_strings_translate_once_the_locale_is_known_and_follow_force_locale(site):
    lazy = _l("Profile")
    assert _("Profile") == "Profile" and str(lazy) == "Profile"  # outside any app: untranslated
    with site.test_request_context("/", headers={"Accept-Language": "de"}):
        assert _("Profile") == "Profil" and str(lazy) == "Profil"
        assert _("No user with id %(id)s.", id=7) == "Es gibt keinen Benutzer mit der ID 7."
        assert "%(num)d" not in ngettext(
            "%(name)r is held by %(num)d account: take it away from them first.",
            "%(name)r is held by %(num)d accounts: take it away from them first.",
            2,
            name="r",
        )
        with force_locale("en"):
            assert _("Profile") == "Profile" and current_locale().language == "en"
        assert _("Profile") == "Profil" and current_locale().language == "de"
    with site.test_request_context("/"), force_locale("de"):
        assert _("Profile") == "Profil"


def test_templates_trust_the_translation_and_escape_what_fills_it(site):
    source = (
        '{{ _("No user with id %(id)s.", id=who) }}|{% trans files_url=url %}'
        'Upload an image on <a href="{{ files_url }}">your files</a> page, then choose it here.{% endtrans %}'
    )
    with site.test_request_context("/", headers={"Accept-Language": "de"}):
        html = render_template_string(source, who="<b>", url='/f?a="1"')
    assert html.startswith("Es gibt keinen Benutzer mit der ID &lt;b&gt;.|")
    assert 'Laden Sie auf der Seite <a href="/f?a=&#34;1&#34;">Ihre Dateien</a>' in html
    # plain-text templates (emails) are not escaped
    text = site.jinja_env.overlay(autoescape=False).from_string('{{ _("No user with id %(id)s.", id=who) }}')
    with site.test_request_context("/"):
        assert text.render(who="O'Brien <b>") == "No user with id O'Brien <b>."


MOMENT = datetime(2026, 1, 5, 15, 4, 5, tzinfo=UTC)


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        (
            "en",
            {
                "date": "Jan 5, 2026",
                "datetime": "Jan 5, 2026, 3:04:05\u202fPM",
                "long": "January 5, 2026, 3:04:05\u202fPM UTC",
                "number": "1,234,567.891",
                "fixed": "0.50",
                "size": "2.9 MB",
                "ago": "3 hours ago",
                "ahead": "in 2 days",
            },
        ),
        (
            "de",
            {
                "date": "05.01.2026",
                "datetime": "05.01.2026, 15:04:05",
                "long": "5. Januar 2026, 15:04:05 UTC",
                "number": "1.234.567,891",
                "fixed": "0,50",
                "size": "2,9 MB",
                "ago": "vor 3 Stunden",
                "ahead": "in 2 Tagen",
            },
        ),
    ],
)
def test_dates_numbers_and_sizes_are_formatted_per_locale(site, language, expected):
    with site.test_request_context("/", headers={"Accept-Language": language}):
        got = {
            "date": format_date(MOMENT),
            "datetime": format_datetime(MOMENT),
            "long": format_datetime(MOMENT, "long"),
            "number": format_number(1234567.891),
            "fixed": format_number(0.5, decimals=2),
            "size": format_filesize(3_000_000),
            "ago": format_relative(MOMENT - timedelta(hours=3), now=MOMENT),
            "ahead": format_relative(MOMENT + timedelta(days=2), now=MOMENT),
        }
    # CLDR's spaces vary between Babel releases (U+202F before AM/PM since CLDR 42)
    assert {key: value.replace("\u202f", " ") for key, value in got.items()} == {
        key: value.replace("\u202f", " ") for key, value in expected.items()
    }


def test_formatting_takes_naive_values_as_utc_and_shows_a_dash_for_nothing(site):
    with site.test_request_context("/", headers={"Accept-Language": "de"}):
        assert format_datetime(MOMENT.replace(tzinfo=None)) == format_datetime(MOMENT)
        assert format_date(date(2026, 1, 5)) == "05.01.2026"
        assert format_relative(MOMENT - timedelta(seconds=20), now=MOMENT) == "gerade eben"
        assert {format_date(None), format_datetime(None), format_number(None), format_filesize(None)} == {"—"}
        assert format_relative(None) == "—"
    # outside a request: English
    assert format_date(MOMENT) == "Jan 5, 2026" and format_filesize(1536) == "1.5 KB"


@pytest.mark.parametrize(
    "size", [0, 1, 512, 1023, 1024, 1536, 10_239, 3_000_000, 2934.8 * 1024, 5 * 1024**3, 7 * 1024**4]
)
def test_file_sizes_in_english_are_exactly_the_shared_filesize_filter(site, size):
    with site.test_request_context("/"):
        assert format_filesize(size) == filesize(size)


@pytest.mark.parametrize(
    ("ago", "english", "german"),
    [
        (timedelta(seconds=44), "just now", "gerade eben"),
        (timedelta(seconds=70), "1 minute ago", "vor 1 Minute"),
        (timedelta(minutes=44), "44 minutes ago", "vor 44 Minuten"),
        (timedelta(minutes=45), "1 hour ago", "vor 1 Stunde"),  # moment.js's thresholds, in every language
        (timedelta(hours=22), "1 day ago", "vor 1 Tag"),
        (timedelta(days=4), "4 days ago", "vor 4 Tagen"),
        (timedelta(days=90), "3 months ago", "vor 3 Monaten"),
        (timedelta(days=800), "2 years ago", "vor 2 Jahren"),
        (-timedelta(minutes=5), "in 5 minutes", "in 5 Minuten"),
        (-timedelta(days=1), "in 1 day", "in 1 Tag"),
    ],
)
def test_relative_times_round_alike_in_every_language(site, ago, english, german):
    for language, expected in (("en", english), ("de", german)):
        with site.test_request_context("/", headers={"Accept-Language": language}):
            assert format_relative(MOMENT - ago, now=MOMENT) == expected


def test_small_counts_skip_babel_and_say_the_same(site):
    for language in ("en", "de"):
        with site.test_request_context("/", headers={"Accept-Language": language}):
            for value in (0, 7, 999, -999):
                assert format_number(value) == str(value)
    with site.test_request_context("/", headers={"Accept-Language": "de"}):
        assert format_number(1000) == "1.000" and format_number(2.5) == "2,5"


# Stored sentences (module constants: N_ remembers templates as a module marks them at import time)
WORKER_GONE = N_("The worker running its last allowed attempt stopped before it finished.")
FAILED_WITH = N_("Processing failed: %(reason)s")
TOO_LARGE = N_("The file is larger than %(size)s MB.")
COUNTED = N_("%(num)d stored for %(name)r; not in any catalogue.")


def test_a_stored_sentence_is_translated_where_it_is_shown(site):
    assert N_("anything") == "anything"  # marks, never translates
    with site.test_request_context("/", headers={"Accept-Language": "de"}):
        assert translate_stored(WORKER_GONE) == _(WORKER_GONE) != WORKER_GONE
        # filled from a marked template: recognised, translated with the same values
        assert translate_stored(TOO_LARGE % {"size": 10}) == "Die Datei ist größer als 10 MB."
        # a value that is itself a stored sentence is translated too
        nested = FAILED_WITH % {"reason": "The file could not be read as an image."}
        assert (
            translate_stored(nested) == "Verarbeitung fehlgeschlagen: Die Datei konnte nicht als Bild gelesen werden."
        )
        # anything else (an exception's own words) stays as it is
        assert (
            translate_stored("SMTPRecipientsRefused: {'a@b': (550, 'no')}")
            == "SMTPRecipientsRefused: {'a@b': (550, 'no')}"
        )
        assert (
            translate_stored(FAILED_WITH % {"reason": "OSError: disk full"})
            == "Verarbeitung fehlgeschlagen: OSError: disk full"
        )
        assert translate_stored(None) is None and translate_stored("") == ""
        # a whole number and a repr come back as they were (a template no catalogue has: English)
        assert (
            translate_stored("12 stored for 'x'; not in any catalogue.") == "12 stored for 'x'; not in any catalogue."
        )
    with site.test_request_context("/", headers={"Accept-Language": "en"}):
        assert translate_stored(nested) == nested


def test_no_module_that_translates_shadows_the_translation_function():
    """`scheme, _, token = …` in a module that imports `_` breaks every `_()` in its scope."""
    shadowing = []
    for path in [*(ROOT / "app").rglob("*.py"), *(ROOT / "tasks").rglob("*.py")]:
        tree = ast.parse(path.read_text())
        imports_it = any(
            isinstance(node, ast.ImportFrom) and any((alias.asname or alias.name) == "_" for alias in node.names)
            for node in ast.walk(tree)
        )
        if imports_it:
            shadowing += [
                f"{path.relative_to(ROOT)}:{node.lineno}"
                for node in ast.walk(tree)
                if (isinstance(node, ast.Name) and node.id == "_" and isinstance(node.ctx, ast.Store))
                or (isinstance(node, ast.arg) and node.arg == "_")
            ]
    assert shadowing == []


# The catalogues ------------------------------------------------------------------------------


def _catalog(language: str):
    with (TRANSLATIONS_DIR / language / "LC_MESSAGES" / "messages.po").open("rb") as po:
        return read_po(po)


def _msgid(message) -> str | tuple[str, ...]:
    return message.id if isinstance(message.id, str) else tuple(message.id)


@pytest.mark.parametrize("language", TRANSLATED)
def test_every_message_is_translated_and_keeps_its_placeholders(language):
    catalog = _catalog(language)
    untranslated = [
        message.id
        for message in catalog
        if message.id
        and (message.fuzzy or not message.string or (not isinstance(message.string, str) and not all(message.string)))
    ]
    assert untranslated == [], f"translate these in translations/{language} (then `make messages`)"
    assert not catalog.obsolete, "obsolete entries: run `make messages`"
    problems = [(message.id, [str(error) for error in errors]) for message, errors in catalog.check()]
    assert problems == []


@pytest.mark.parametrize("language", TRANSLATED)
def test_the_compiled_catalogue_matches_its_po_file(language):
    """The committed .mo is what the app loads: it must say what the .po says."""
    folder = TRANSLATIONS_DIR / language / "LC_MESSAGES"
    with (folder / "messages.mo").open("rb") as mo:
        compiled = stdlib_gettext.GNUTranslations(mo)
    expected = {}
    for message in _catalog(language):
        if not message.id:
            continue
        # gettext keys a message with a context (pgettext) as "context\x04msgid".
        prefix = f"{message.context}\x04" if message.context else ""
        if isinstance(message.id, str):
            expected[prefix + message.id] = message.string
        else:
            for index, form in enumerate(message.string):
                expected[(prefix + message.id[0], index)] = form
    actual = {key: value for key, value in compiled._catalog.items() if key != ""}
    assert actual == expected, "translations/*.mo is stale: run `make messages`"


def test_every_string_the_code_marks_is_in_the_catalogues():
    """`make messages` was run after the last string was marked or changed."""
    method_map, options_map = parse_mapping_cfg((ROOT / "babel.cfg").open())
    extracted = set()
    for _filename, _lineno, message, _comments, _context in extract_from_dir(
        str(ROOT), method_map, options_map, keywords={**DEFAULT_KEYWORDS, **EXTRA_KEYWORDS}
    ):
        extracted.add(message if isinstance(message, str) else tuple(message))
    for language in TRANSLATED:
        catalogued = {_msgid(message) for message in _catalog(language) if message.id}
        assert extracted - catalogued == set(), f"not in translations/{language}: run `make messages`"
        assert catalogued - extracted == set(), f"no longer in the code, still in translations/{language}"
