"""Account page forms. Labels and help are lazy (`_l`): translated when the page renders, in
the reader's language. Validators without a message of ours answer in WTForms' own
catalogue for that language (Flask-WTF picks the locale from Flask-Babel)."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField, SelectChoice, SelectField, StringField
from wtforms.validators import DataRequired, Length

from app.i18n import LANGUAGE_NAMES, _l

# WTForms' German catalogue lacks its Length messages: ours, translated with the rest.
_TOO_LONG = _l("Use at most %(max)d characters.")


def _at_most(limit: int) -> Length:
    return Length(max=limit, message=_TOO_LONG)


class ProfileForm(FlaskForm):
    display_name = StringField(_l("Display name"), validators=[DataRequired(), _at_most(120)])
    email = EmailField(
        _l("Email"),
        validators=[DataRequired(), _at_most(320)],
        description=_l("Changing it sends a confirmation link to the new address and a notice to this one."),
    )
    current_password = PasswordField(
        _l("Current password"),
        validators=[_at_most(1024)],
        description=_l("Needed only to change the email address."),
        render_kw={"autocomplete": "current-password"},
    )


class PasswordForm(FlaskForm):
    current_password = PasswordField(
        _l("Current password"),
        validators=[DataRequired(), _at_most(1024)],
        render_kw={"autocomplete": "current-password"},
    )
    new_password = PasswordField(
        _l("New password"),
        validators=[DataRequired(), _at_most(1024)],
        description=_l("At least 12 characters. Saving it signs out every other session."),
        render_kw={"autocomplete": "new-password"},
    )


AUTOMATIC = ""  # the select's value for "no preference": follow the browser


class LanguageForm(FlaskForm):
    """The language the site is shown in: a choice of the offered ones, or the browser's."""

    locale = SelectField(
        _l("Language"),
        # Languages are named in themselves (app.i18n.LANGUAGE_NAMES), never translated, and
        # marked with their language for screen readers.
        choices=[
            SelectChoice(AUTOMATIC, _l("Automatic (browser language)")),
            *(SelectChoice(code, name, render_kw={"lang": code}) for code, name in LANGUAGE_NAMES.items()),
        ],
        description=_l("Automatic follows the language your browser asks for."),
    )

    def preferred_locale(self) -> str | None:
        """The chosen language code, or None for "automatic"."""
        return self.locale.data or None
