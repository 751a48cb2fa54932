"""Sign-in form (CSRF-protected by flask-wtf)."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, PasswordField, StringField
from wtforms.validators import DataRequired, Length


class LoginForm(FlaskForm):
    email = EmailField(
        "Email", validators=[DataRequired(), Length(max=320)], render_kw={"autocomplete": "username", "autofocus": True}
    )
    password = PasswordField(
        "Password", validators=[DataRequired(), Length(max=1024)], render_kw={"autocomplete": "current-password"}
    )
    remember = BooleanField("Keep me signed in on this device")


class SignupForm(FlaskForm):
    email = EmailField(
        "Email", validators=[DataRequired(), Length(max=320)], render_kw={"autocomplete": "email", "autofocus": True}
    )
    display_name = StringField(
        "Display name", validators=[DataRequired(), Length(max=120)], render_kw={"autocomplete": "nickname"}
    )
    password = PasswordField(
        "Password",
        validators=[DataRequired(), Length(max=1024)],
        description="At least 12 characters. A few unrelated words work well.",
        render_kw={"autocomplete": "new-password"},
    )


class ResetRequestForm(FlaskForm):
    email = EmailField(
        "Email", validators=[DataRequired(), Length(max=320)], render_kw={"autocomplete": "email", "autofocus": True}
    )


class NewPasswordForm(FlaskForm):
    password = PasswordField(
        "New password",
        validators=[DataRequired(), Length(max=1024)],
        description="At least 12 characters.",
        render_kw={"autocomplete": "new-password"},
    )
