"""Sign-in, sign-up and password forms (CSRF-protected by flask-wtf).

No field asks for `autofocus` itself: templates/_forms.html gives it to the first invalid field,
or to the field the template names when the form has no errors."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, PasswordField, StringField
from wtforms.validators import DataRequired, Length

from app.i18n import _l


class LoginForm(FlaskForm):
    email = EmailField(
        _l("Email"), validators=[DataRequired(), Length(max=320)], render_kw={"autocomplete": "username"}
    )
    password = PasswordField(
        _l("Password"), validators=[DataRequired(), Length(max=1024)], render_kw={"autocomplete": "current-password"}
    )
    remember = BooleanField(_l("Keep me signed in on this device"))


class SignupForm(FlaskForm):
    email = EmailField(_l("Email"), validators=[DataRequired(), Length(max=320)], render_kw={"autocomplete": "email"})
    display_name = StringField(
        _l("Display name"), validators=[DataRequired(), Length(max=120)], render_kw={"autocomplete": "nickname"}
    )
    password = PasswordField(
        _l("Password"),
        validators=[DataRequired(), Length(max=1024)],
        description=_l("At least 12 characters. A few unrelated words work well."),
        render_kw={"autocomplete": "new-password"},
    )


class ResetRequestForm(FlaskForm):
    email = EmailField(_l("Email"), validators=[DataRequired(), Length(max=320)], render_kw={"autocomplete": "email"})


class NewPasswordForm(FlaskForm):
    password = PasswordField(
        _l("New password"),
        validators=[DataRequired(), Length(max=1024)],
        description=_l("At least 12 characters."),
        render_kw={"autocomplete": "new-password"},
    )


class SecondFactorForm(FlaskForm):
    """`/auth/2fa`: a code from the authenticator app, or a recovery code."""

    code = StringField(
        _l("Code"),
        validators=[Length(max=64)],
        description=_l("The 6 digits your authenticator app shows, or one of your recovery codes."),
        render_kw={
            "autocomplete": "one-time-code",
            "inputmode": "text",
            "autocapitalize": "none",
            "spellcheck": "false",
        },
    )


class TotpConfirmForm(FlaskForm):
    """`/account/security`: the first code of a new authenticator app."""

    code = StringField(
        _l("Code from the app"),
        validators=[DataRequired(), Length(max=64)],
        description=_l("The 6 digits the app shows now."),
        render_kw={"autocomplete": "one-time-code", "inputmode": "numeric"},
    )


class TotpDisableForm(FlaskForm):
    """`/account/security`: removing the authenticator app needs a current code or the password."""

    code = StringField(
        _l("Code from the app or a recovery code"),
        validators=[Length(max=64)],
        render_kw={"autocomplete": "one-time-code", "autocapitalize": "none", "spellcheck": "false"},
    )
    password = PasswordField(
        _l("Or your password"),
        validators=[Length(max=1024)],
        render_kw={"autocomplete": "current-password"},
    )
