"""Every kind of notification, in code: its label for the preferences page, its title and body
templates, and its default for each channel.

Titles and bodies are English templates with `%(name)s` parameters, marked with `N_`: a
notification is stored filled in English and translated where it is read (app.i18n
`translate_stored`), so a reader who changes language reads old notices in the new one too.
A `security` kind's email cannot be switched off (the service enforces it).
"""

from __future__ import annotations

from dataclasses import dataclass

from app.i18n import N_


@dataclass(frozen=True)
class NotificationKind:
    name: str
    label: str  # N_: what the preferences page calls it
    title: str  # N_ template
    body: str  # N_ template
    in_app: bool = True  # default for the in-app centre
    email: bool = True  # default for email
    security: bool = False  # email always on


KINDS: tuple[NotificationKind, ...] = (
    NotificationKind(
        "export.ready",
        N_("An export is ready"),
        N_("Export ready: %(export_name)s"),
        N_("Your export “%(export_name)s” (%(size)s) is ready to download. It is kept for a limited time."),
    ),
    NotificationKind(
        "export.failed",
        N_("An export failed"),
        N_("Export failed: %(export_name)s"),
        N_("Your export “%(export_name)s” could not be made: %(error)s"),
    ),
    NotificationKind(
        "upload.ready",
        N_("A file finished processing"),
        N_("File ready: %(filename)s"),
        N_("Your file “%(filename)s” has been processed and is ready."),
        email=False,
    ),
    NotificationKind(
        "upload.rejected",
        N_("A file was rejected or could not be processed"),
        N_("File not accepted: %(filename)s"),
        N_("Your file “%(filename)s” could not be kept: %(reason)s"),
        email=False,
    ),
    NotificationKind(
        "account.role_changed",
        N_("Your roles changed"),
        N_("Your roles changed"),
        N_("An administrator changed your roles. You now hold: %(roles)s."),
    ),
    NotificationKind(
        "webhook.disabled",
        N_("A webhook endpoint you registered was disabled"),
        N_("Webhook disabled: %(url)s"),
        N_(
            "The webhook endpoint %(url)s was disabled because every delivery to it failed for %(hours)s hours. "
            "Fix the receiver, then enable the endpoint again on its page."
        ),
    ),
    NotificationKind(
        "security.new_sign_in",
        N_("Sign-in from a new device"),
        N_("New sign-in to your account"),
        N_(
            "Your account was signed in from %(device)s (address %(address)s). If this was not you, "
            "change your password and sign out everywhere on your account page."
        ),
        security=True,
    ),
    NotificationKind(
        "security.password_changed",
        N_("Your password changed"),
        N_("Your password was changed"),
        N_(
            "The password of your Hearth account was changed, and every other session was signed out. "
            "If you did not do this, reset your password now."
        ),
        security=True,
    ),
    NotificationKind(
        "security.recovery_code_used",
        N_("A recovery code was used"),
        N_("A recovery code was used to sign in"),
        N_(
            "One of your two-factor recovery codes was used to sign in to your account; %(remaining)s remain. "
            "If this was not you, change your password and sign out everywhere now."
        ),
        security=True,
    ),
    NotificationKind(
        "security.two_factor_reset",
        N_("Two-factor authentication was reset"),
        N_("Your two-factor authentication was reset"),
        N_(
            "An administrator removed your authenticator app, passkeys and recovery codes, and signed you "
            "out everywhere. Sign in with your password and set up two-factor authentication again. "
            "If you did not ask for this, contact your administrator."
        ),
        security=True,
    ),
    NotificationKind(
        "security.impersonated",
        N_("An administrator viewed your account"),
        N_("An administrator viewed your account"),
        N_(
            "An administrator (%(admin)s) viewed your account on %(when)s, read-only, to help with support. "
            "Nothing was changed."
        ),
        security=True,
    ),
)

CATALOGUE: dict[str, NotificationKind] = {kind.name: kind for kind in KINDS}


def kind_named(name: str) -> NotificationKind | None:
    return CATALOGUE.get(name)
