"""Sign-in form (CSRF-protected by flask-wtf)."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, PasswordField
from wtforms.validators import DataRequired, Length


class LoginForm(FlaskForm):
    email = EmailField(
        "Email", validators=[DataRequired(), Length(max=320)], render_kw={"autocomplete": "username", "autofocus": True}
    )
    password = PasswordField(
        "Password", validators=[DataRequired(), Length(max=1024)], render_kw={"autocomplete": "current-password"}
    )
    remember = BooleanField("Keep me signed in on this device")
