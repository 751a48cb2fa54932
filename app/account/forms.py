"""Account page forms."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField, StringField
from wtforms.validators import DataRequired, Length


class ProfileForm(FlaskForm):
    display_name = StringField("Display name", validators=[DataRequired(), Length(max=120)])
    email = EmailField(
        "Email",
        validators=[DataRequired(), Length(max=320)],
        description="Changing it sends a confirmation link to the new address and a notice to this one.",
    )
    current_password = PasswordField(
        "Current password",
        validators=[Length(max=1024)],
        description="Needed only to change the email address.",
        render_kw={"autocomplete": "current-password"},
    )


class PasswordForm(FlaskForm):
    current_password = PasswordField(
        "Current password",
        validators=[DataRequired(), Length(max=1024)],
        render_kw={"autocomplete": "current-password"},
    )
    new_password = PasswordField(
        "New password",
        validators=[DataRequired(), Length(max=1024)],
        description="At least 12 characters. Saving it signs out every other session.",
        render_kw={"autocomplete": "new-password"},
    )
