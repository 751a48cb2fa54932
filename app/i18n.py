"""Languages: Flask-Babel wired to Hearth, and locale-aware formatting for templates.

- **Which language.** `select_locale` runs at most once per request (Flask-Babel caches its
  answer in `g`), and only when something translates or formats: a request that renders no
  text (most of the JSON API) never negotiates. The signed-in user's preference
  (`users.locale`, chosen on /account) wins; otherwise the best match of the browser's
  `Accept-Language` among SUPPORTED_LOCALES; otherwise English. The preference is read from the
  user Flask-Login already loaded for the request (app.auth.session_records loads it before any
  browser view), so choosing costs no query. The JSON API answers in the language its client
  asks for with `Accept-Language`. A page whose language was negotiated from that header (or
  its absence) says so with `Vary: Accept-Language`, so no shared cache hands it to a reader
  of another language.
- **Marking strings.** Python code uses `_` (translate now: in a view, a service raising an
  error, a flash) or `_l` (lazy: a string defined at import time, such as a form's label,
  translated when it is rendered). Never put a lazy string where it is serialised (a flash,
  JSON, a session): use `_` there. A module that imports `_` must not also use `_` as a
  throwaway name (`scheme, _, token = …`): that shadows it. Templates use `{{ _("…") }}` and
  `{% trans %}…{% endtrans %}` (Jinja's i18n extension, new-style gettext: the translation is
  trusted, its `%(name)s` values are escaped). `make messages` extracts them all into translations/.
- **Stored sentences.** A few sentences for people are written by a worker and kept in the
  database in English (`jobs.error`, `uploads.error`: the reader's language is not known when
  they are written). They are marked with `N_` (extracted, not translated) and translated
  where they are shown, with `translate_stored`: a sentence marked as it is is looked up;
  one filled from a marked template with `%(name)s` placeholders is recognised by that
  template (`N_` remembers it) and translated with the same values. Other text (an
  exception's own words) stays as it is.
- **Formatting.** `format_date`, `format_datetime`, `format_number`, `format_filesize`,
  `format_decimal_fast` and `format_relative` format per the request's locale (times in UTC, as
  stored). Outside a request (a worker, the CLI) they use English unless wrapped in
  `force_locale(...)`, e.g. with `locale_of(user)` for a user's email.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from datetime import UTC, date, datetime
from pathlib import Path

from babel import Locale
from babel.dates import format_date as _babel_format_date
from babel.dates import format_datetime as _babel_format_datetime
from babel.numbers import format_decimal, get_decimal_symbol
from babel.support import NullTranslations
from flask import Flask, g, has_request_context, request
from flask_babel import force_locale, get_locale, get_translations, refresh
from flask_babel.speaklater import LazyString
from jinja2 import pass_eval_context
from jinja2.nodes import EvalContext
from markupsafe import Markup
from werkzeug.wrappers import Response

from app.extensions import babel

__all__ = [
    "DEFAULT_LOCALE",
    "LANGUAGE_NAMES",
    "N_",
    "SUPPORTED_LOCALES",
    "_",
    "_l",
    "configure_babel",
    "current_locale",
    "force_locale",
    "format_date",
    "format_datetime",
    "format_decimal_fast",
    "format_filesize",
    "format_number",
    "format_relative",
    "gettext",
    "init_i18n",
    "lazy_gettext",
    "locale_code",
    "locale_of",
    "negotiate",
    "ngettext",
    "refresh_locale",
    "select_locale",
    "translate_stored",
    "vary_on_language",
]

DEFAULT_LOCALE = "en"
# Each language is named in itself (the convention of language pickers): someone who cannot
# read the current language still finds their own.
LANGUAGE_NAMES = {"en": "English", "de": "Deutsch"}
SUPPORTED_LOCALES = tuple(LANGUAGE_NAMES)
TRANSLATIONS_DIR = Path(__file__).resolve().parent.parent / "translations"

_DEFAULT = Locale.parse(DEFAULT_LOCALE)
# Set in `g` when the request's language came from its Accept-Language header.
NEGOTIATED_KEY = "hearth_locale_negotiated"


def locale_of(user: object | None) -> str:
    """The language to write to `user` in, e.g. an email queued now and rendered by a worker:
    their preference, else the language of the current request (the one they are reading),
    else English."""
    preferred = getattr(user, "locale", None)
    if preferred in LANGUAGE_NAMES:
        return preferred
    return current_locale().language if has_request_context() else DEFAULT_LOCALE


def select_locale() -> str:
    """Flask-Babel's locale selector (module docstring): preference, Accept-Language, English."""
    if not has_request_context():
        return DEFAULT_LOCALE
    # Only a user already loaded: Flask-Login's per-request cache (a browser request that
    # carries a session has it before the view runs); never a load just to pick a language.
    preferred = getattr(g.get("_login_user"), "locale", None)
    if preferred in LANGUAGE_NAMES:
        return preferred
    # From here the answer depends on the header (its absence too: English).
    g.setdefault(NEGOTIATED_KEY, True)
    if "HTTP_ACCEPT_LANGUAGE" not in request.environ:
        return DEFAULT_LOCALE
    return negotiate(request.accept_languages)


def negotiate(accepted: Iterable[tuple[str, float]]) -> str:
    """The first offered language of an Accept-Language list (Werkzeug orders it by quality):
    "de-AT, en;q=0.5" is German. Werkzeug's own `best_match` would answer English there, as it
    prefers any exact match ("en") to a region of a better one ("de-AT")."""
    for tag, quality in accepted:
        if quality <= 0:
            continue
        if tag == "*":
            return DEFAULT_LOCALE
        language = tag.replace("_", "-").split("-", 1)[0].lower()
        if language in LANGUAGE_NAMES:
            return language
    return DEFAULT_LOCALE


def refresh_locale() -> None:
    """Choose the request's language again (after the user changed their preference)."""
    refresh()
    g.pop(NEGOTIATED_KEY, None)


# Translating ----------------------------------------------------------------------------------

_NULL = NullTranslations()
# In `g`: (Flask-Babel's locale for the request, its catalogue).
STATE_KEY = "hearth_i18n"


def _state() -> tuple[Locale, NullTranslations]:
    """The request's locale and catalogue, looked up once per request. Flask-Babel's own
    `gettext` costs ~6 µs a call (nine lookups of `g` to find both again) and a page makes
    dozens of calls; this is one lookup of `g`. It follows Flask-Babel's choice, so
    `force_locale` and `refresh` take effect (the cached pair is for another locale object)."""
    try:
        request_globals = g._get_current_object()
    except RuntimeError:  # no app context (a script, a unit test): English, untranslated
        return _DEFAULT, _NULL
    state = getattr(request_globals, STATE_KEY, None)
    babel_state = getattr(request_globals, "_flask_babel", None)
    if state is not None and getattr(babel_state, "babel_locale", None) is state[0]:
        return state
    translations = get_translations()  # Flask-Babel: runs select_locale once, loads the catalogue
    state = (get_locale() or _DEFAULT, translations)
    setattr(request_globals, STATE_KEY, state)
    return state


def gettext(string: str, **variables: object) -> str:
    """`string` in the request's language, with `%(name)s` placeholders filled from `variables`."""
    translated = _state()[1].ugettext(string)
    return translated % variables if variables else translated


def ngettext(singular: str, plural: str, num: int, **variables: object) -> str:
    """The singular or plural form for `num` (also `%(num)d` in the text), translated."""
    variables.setdefault("num", num)
    return _state()[1].ungettext(singular, plural, num) % variables


def lazy_gettext(string: str, **variables: object) -> LazyString:
    """`gettext`, deferred until the string is used (for strings defined at import time)."""
    return LazyString(gettext, string, **variables)


_ = gettext
_l = lazy_gettext


# Sentences stored in English, translated where they are shown -------------------------------

# The templates N_ was given with placeholders, and (once compiled) the pattern that
# recognises a sentence filled from each, with the names of its whole-number values.
_STORED_TEMPLATES: dict[str, tuple[re.Pattern[str], frozenset[str]] | None] = {}
_PLACEHOLDER = re.compile(r"%\((\w+)\)([sdr])")


def N_(message: str) -> str:  # noqa: N802  (gettext's name for it: `make messages` extracts it)
    """`message` as it is, marked for `make messages`: for a sentence kept in English (in the
    database) and translated where it is shown (`translate_stored`). A template with
    `%(name)s` placeholders is remembered, so a sentence filled from it is recognised. Call it
    at import time (a module constant), so the web process knows every template."""
    if "%(" in message:
        _STORED_TEMPLATES.setdefault(message, None)
    return message


def _stored_pattern(template: str) -> tuple[re.Pattern[str], frozenset[str]]:
    compiled = _STORED_TEMPLATES.get(template)
    if compiled is None:
        parts, seen, numbers, position = [], set(), set(), 0
        for match in _PLACEHOLDER.finditer(template):
            parts.append(re.escape(template[position : match.start()]))
            name, kind = match.groups()
            if name in seen:
                parts.append(f"(?P={name})")
            elif kind == "d":
                seen.add(name)
                numbers.add(name)
                parts.append(f"(?P<{name}>-?\\d+)")
            else:
                seen.add(name)
                parts.append(f"(?P<{name}>.+?)")
            position = match.end()
        parts.append(re.escape(template[position:]))
        compiled = _STORED_TEMPLATES[template] = (re.compile("".join(parts), re.DOTALL), frozenset(numbers))
    return compiled


def translate_stored(text: str | None) -> str | None:
    """A sentence kept in English (module docstring, "Stored sentences"), in the request's
    language: a sentence marked with `N_` as it is, or one filled from a template marked with
    `N_` (its values translated the same way: "Processing failed: %(reason)s" holds another
    stored sentence); any other text unchanged. Cheap for a table row: one catalogue lookup,
    and only in another language than English a match against the few templates."""
    if not text:
        return text
    language, translations = _state()
    translated = translations.ugettext(text)
    if translated != text or language.language == DEFAULT_LOCALE:
        return translated
    for template in tuple(_STORED_TEMPLATES):
        pattern, numbers = _stored_pattern(template)
        match = pattern.fullmatch(text)
        if match is None:
            continue
        values: dict[str, object] = {
            name: int(value) if name in numbers else translate_stored(value)
            for name, value in match.groupdict().items()
        }
        # A repr was filled in already (quotes and all): the translation takes it as it is.
        wording = _PLACEHOLDER.sub(lambda m: f"%({m[1]})s" if m[2] == "r" else m[0], translations.ugettext(template))
        try:
            return wording % values
        except (KeyError, TypeError, ValueError):  # a translation that does not fit: the English
            return text
    return text


def request_state() -> tuple[Locale, NullTranslations]:
    """The request's (locale, catalogue), looked up once: for a helper that needs both (a table
    cell's `time_tag`), so it pays one lookup instead of one per call."""
    return _state()


def current_locale() -> Locale:
    """The request's locale (English outside an app context)."""
    return _state()[0]


def locale_code() -> str:
    """The request's language as a BCP 47 tag, for `<html lang>` and `Content-Language`."""
    return current_locale().language


# Formatting -----------------------------------------------------------------------------------

_EM_DASH = "—"
_SIZE_UNITS = ((1024**4, "TB"), (1024**3, "GB"), (1024**2, "MB"), (1024, "KB"))


def _utc(value: datetime) -> datetime:
    """A naive value is UTC, as the database stores it."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def format_date(value: date | datetime | None, format: str = "medium") -> str:
    """A date per locale ("Jan 5, 2026", "05.01.2026"); a datetime is taken in UTC; "—" for None."""
    if value is None:
        return _EM_DASH
    if isinstance(value, datetime):
        value = _utc(value).astimezone(UTC).date()
    return _babel_format_date(value, format=format, locale=current_locale())


def format_datetime(value: datetime | None, format: str = "medium") -> str:
    """A moment in UTC per locale ("Jan 5, 2026, 3:04:05 PM", "05.01.2026, 15:04:05"); "long"
    names the zone; "—" for None."""
    if value is None:
        return _EM_DASH
    return _babel_format_datetime(_utc(value), format=format, tzinfo=UTC, locale=current_locale())


def format_number(value: float | int | None, decimals: int | None = None) -> str:
    """A number with the locale's separators ("1,234.5", "1.234,5"); `decimals` fixes the
    digits after the separator; "—" for None. A whole number under 1000 (most counts on a
    page) is written as it is, without asking Babel, where the locale writes digits 0–9."""
    if value is None:
        return _EM_DASH
    locale = current_locale()
    if decimals is None and type(value) is int and -1000 < value < 1000 and _latin_digits(locale):
        return str(value)
    pattern = None if decimals is None else "#,##0" + ("." + "0" * decimals if decimals else "")
    return format_decimal(value, format=pattern, locale=locale)


@functools.cache
def _latin_digits(locale: Locale) -> bool:
    return format_decimal(-987, locale=locale) == "-987"


@functools.cache
def _decimal_symbol(language: str, territory: str | None) -> str:
    return get_decimal_symbol(Locale(language, territory))


def format_decimal_fast(number: str) -> str:
    """A number Python wrote with a "." ("2.5", f"{x:.1f}") with the locale's decimal sign
    instead ("2,5"): for a value a table shows in every row (a size, a duration), at the cost
    of a lookup rather than a Babel format."""
    locale = current_locale()
    decimal = _decimal_symbol(locale.language, locale.territory)
    return number if decimal == "." else number.replace(".", decimal)


def format_filesize(value: float | int | None) -> str:
    """A byte count for people, in binary units with one decimal and the locale's decimal sign
    ("2.9 MB", "2,9 MB"; "512 B"); "—" for None. In English exactly app.core.templating's
    `filesize`, at about its cost (a table calls it once per row)."""
    if value is None:
        return _EM_DASH
    for factor, unit in _SIZE_UNITS:
        if value >= factor:
            return f"{format_decimal_fast(f'{value / factor:.1f}')} {unit}"
    return f"{int(value)} B"


_MINUTE, _HOUR, _DAY = 60, 3600, 86400


def format_relative(value: datetime | None, now: datetime | None = None) -> str:
    """How long ago (or until) a moment, in words, to one unit: "3 hours ago", "vor 3 Stunden",
    "in 2 days"; "just now" within 45 seconds; "—" for None. moment.js's thresholds (45
    minutes read as "1 hour", 22 hours as "1 day"); the words are our catalogue's (ngettext),
    so every language rounds alike and a table row pays a lookup, not a Babel format."""
    if value is None:
        return _EM_DASH
    return relative_words(value, now, _state()[1])


def relative_words(value: datetime, now: datetime | None, translations: NullTranslations) -> str:
    """`format_relative` with the catalogue at hand (`request_state`): for a caller that already
    looked it up (`time_tag`, once per table cell). The words for each (catalogue, direction,
    unit, count) are kept once made: a table shows a handful of them many times."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    if now is None:
        now = datetime.now(UTC)
    elif now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    seconds = (now - value).total_seconds()
    ahead = seconds < 0
    if ahead:
        seconds = -seconds
    if seconds < 45:
        key: tuple[object, ...] = (translations, "just now")
    elif seconds < 45 * _MINUTE:
        key = (translations, ahead, "minute", max(1, round(seconds / _MINUTE)))
    elif seconds < 22 * _HOUR:
        key = (translations, ahead, "hour", round(seconds / _HOUR))
    elif seconds < 26 * _DAY:
        key = (translations, ahead, "day", round(seconds / _DAY))
    elif seconds < 320 * _DAY:
        key = (translations, ahead, "month", max(1, round(seconds / (30 * _DAY))))
    else:
        key = (translations, ahead, "year", max(1, round(seconds / (365 * _DAY))))
    words = _RELATIVE_MADE.get(key)
    if words is None:
        if len(_RELATIVE_MADE) >= _RELATIVE_KEPT:  # catalogues reloaded many times (development)
            _RELATIVE_MADE.clear()
        if len(key) == 2:
            words = translations.ugettext("just now")
        else:
            _catalogue, ahead, unit, count = key
            words = _RELATIVE[ahead][unit](translations.ungettext, count) % {"num": count}
        _RELATIVE_MADE[key] = words
    return words


# (catalogue, ahead?, unit, count) → the words made (`relative_words`): a few hundred per language.
_RELATIVE_MADE: dict[tuple[object, ...], str] = {}
_RELATIVE_KEPT = 4096


# (ahead?) → unit → the words for `count` of it, unfilled. Each message is written out for `make
# messages` (its `ngettext` keyword; here the catalogue's own, passed in).
_RELATIVE = {
    False: {
        "minute": lambda ngettext, n: ngettext("%(num)d minute ago", "%(num)d minutes ago", n),
        "hour": lambda ngettext, n: ngettext("%(num)d hour ago", "%(num)d hours ago", n),
        "day": lambda ngettext, n: ngettext("%(num)d day ago", "%(num)d days ago", n),
        "month": lambda ngettext, n: ngettext("%(num)d month ago", "%(num)d months ago", n),
        "year": lambda ngettext, n: ngettext("%(num)d year ago", "%(num)d years ago", n),
    },
    True: {
        "minute": lambda ngettext, n: ngettext("in %(num)d minute", "in %(num)d minutes", n),
        "hour": lambda ngettext, n: ngettext("in %(num)d hour", "in %(num)d hours", n),
        "day": lambda ngettext, n: ngettext("in %(num)d day", "in %(num)d days", n),
        "month": lambda ngettext, n: ngettext("in %(num)d month", "in %(num)d months", n),
        "year": lambda ngettext, n: ngettext("in %(num)d year", "in %(num)d years", n),
    },
}


# Wiring ---------------------------------------------------------------------------------------


@pass_eval_context
def _template_gettext(eval_ctx: EvalContext, string: str, **variables: object) -> str:
    """Templates' `_` / `gettext` and `{% trans %}`: as Jinja's new-style gettext, the translation
    is trusted (Markup where autoescaping is on) and its placeholders are filled, escaped."""
    translated = _state()[1].ugettext(string)
    if eval_ctx.autoescape:
        translated = Markup(translated)  # noqa: S704  (our own catalogue: trusted, as in Jinja's i18n)
    # Jinja always formats (so "%%" is "%"); with nothing to fill and no "%", that is a no-op.
    return translated % variables if variables or "%" in translated else translated


@pass_eval_context
def _template_ngettext(eval_ctx: EvalContext, singular: str, plural: str, num: int, **variables: object) -> str:
    """Templates' `ngettext` and `{% trans count=… %}…{% pluralize %}`: see `_template_gettext`."""
    variables.setdefault("num", num)
    translated = _state()[1].ungettext(singular, plural, num)
    if eval_ctx.autoescape:
        translated = Markup(translated)  # noqa: S704  (our own catalogue: trusted, as in Jinja's i18n)
    return translated % variables


def vary_on_language(response: Response) -> Response:
    """A response written in a language chosen from Accept-Language varies with that header.
    create_app adds it as a browser hook of app.pipeline (API responses are never
    shared-cacheable: bearer tokens, errors); this module imports nothing of the pipeline, so
    the pipeline's own modules (app.core.input, app.errors) can translate."""
    if g.get(NEGOTIATED_KEY):
        response.vary.add("Accept-Language")
    return response


def init_i18n(app: Flask) -> None:
    """Languages for Hearth: `configure_babel` (create_app also adds `vary_on_language`)."""
    configure_babel(app)


def configure_babel(app: Flask) -> None:
    """Bind Flask-Babel (catalogues in translations/, UTC) with `select_locale`, Jinja's i18n
    extension (`_`, `gettext`, `ngettext`, `{% trans %}`) and the helpers templates use."""
    app.config.setdefault("BABEL_TRANSLATION_DIRECTORIES", str(TRANSLATIONS_DIR))
    babel.init_app(app, default_locale=DEFAULT_LOCALE, default_timezone="UTC", locale_selector=select_locale)
    # Flask-Babel's callables find the catalogue again for every string, and Jinja reaches them
    # through three `Context.call`s (`_` → `gettext` → the callable): about 10 µs a string. Ours
    # find it once per request and are called directly, with the same new-style semantics:
    # about 2 µs, most of it Jinja's own call.
    app.jinja_env.install_gettext_callables(
        gettext=gettext,
        ngettext=ngettext,
        pgettext=lambda context, string: _state()[1].upgettext(context, string),
        npgettext=lambda context, singular, plural, num: _state()[1].unpgettext(context, singular, plural, num),
        newstyle=True,
    )
    app.jinja_env.globals.update(_=_template_gettext, gettext=_template_gettext, ngettext=_template_ngettext)
    # `{% trans %}` blocks collapse their whitespace, as `make messages` extracts them (babel.cfg).
    app.jinja_env.policies["ext.i18n.trimmed"] = True
    app.jinja_env.globals.update(locale_code=locale_code, language_names=LANGUAGE_NAMES)
