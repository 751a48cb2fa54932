"""Notifications: `notify(user, kind, ...)`, the centre's reads and writes, preferences and the
one-click unsubscribe (docs/architecture.md §9).

- **Outbox.** `notify` joins the caller's unit of work (`require_unit_of_work`): the in-app row
  and the email job (app.mail.service.queue_email, itself a job row handed to huey after the
  commit) are written in the caller's transaction, so a rolled-back change leaves neither and
  a committed one has both.
- **Language.** Title and body are stored in English, filled from the kind's templates
  (app.notifications.catalogue), and translated where they are read (`translate_stored`); the
  email is rendered by the worker in the recipient's language (`locale_of(user)`).
- **Preferences.** One row per (user, kind) the user changed; otherwise the catalogue's
  defaults. A security kind's email is always sent: `set_preferences` refuses to switch it off,
  and `notify` ignores a stored "off" for it. Other email goes to verified addresses only.
- **Unsubscribe.** Every non-security email carries a link, and RFC 8058 `List-Unsubscribe` /
  `List-Unsubscribe-Post` headers, with a token signed for (user id, kind) under a salt of its
  own: POSTing it switches that kind's email off without signing in.
- **Bell.** `unread_state(user_id)` is cached per user (cache-aside, L1 and L2, like
  app.users.cache); `forget_unread(user_id)` is its invalidator, called by every write here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import current_app
from itsdangerous import BadSignature, URLSafeSerializer

from app.audit.service import record
from app.cache import CacheKey, cached, invalidate
from app.core.database import utcnow
from app.core.hosts import public_url_for
from app.core.pagination import Page, paginate
from app.core.unit_of_work import require_unit_of_work, unit_of_work
from app.errors import DomainError, NotFound, ValidationFailed
from app.i18n import _, locale_of
from app.logging import get_logger
from app.mail.service import queue_email
from app.notifications.catalogue import CATALOGUE, KINDS, NotificationKind
from app.notifications.models import Notification, NotificationPreference
from app.notifications.repository import NotificationRepository, PreferenceRepository, notification_list_statement
from app.users.models import User
from app.users.repository import UserRepository

log = get_logger("hearth.notifications")

notifications = NotificationRepository()
preference_rows = PreferenceRepository()
users = UserRepository()

EMAIL_TEMPLATE = "notification"
UNSUBSCRIBE_SALT = "hearth.notifications.unsubscribe"
UNREAD_NAMESPACE = "notifications"
UNREAD_TTL = 300
TITLE_MAX = 200
PARAM_MAX = 120  # one value in a title or body (a file name, an export's name)
LINK_MAX = 500


class InvalidUnsubscribeLink(DomainError):
    """An unsubscribe token that is not ours (tampered, truncated) or names no account."""

    status, title, slug = 400, "Bad request", "invalid-unsubscribe-link"

    def __init__(self) -> None:
        super().__init__(
            _("This unsubscribe link is not valid. Nothing was changed; manage your emails on your account page.")
        )


@dataclass(frozen=True)
class ChannelChoice:
    """Whether a kind reaches the user in-app and by email."""

    in_app: bool
    email: bool


@dataclass(frozen=True)
class UnreadState:
    """What the bell shows, and when the user's notifications last changed (its Last-Modified)."""

    count: int
    changed_at: datetime | None


# Sending ------------------------------------------------------------------------------------


class _Params(dict):
    """Template values; a missing one is an empty string (logged), never a failed change."""

    def __missing__(self, key: str) -> str:
        log.warning("notification_param_missing", param=key)
        return ""


def _shortened(value: Any) -> str:
    text = str(value)
    return text if len(text) <= PARAM_MAX else text[: PARAM_MAX - 1] + "…"


def _kind(kind: str) -> NotificationKind:
    spec = CATALOGUE.get(kind)
    if spec is None:
        raise LookupError(f"no notification kind named {kind!r} (app.notifications.catalogue)")
    return spec


def notify(
    user: User | int, kind: str, *, params: dict[str, Any] | None = None, link: str | None = None
) -> Notification | None:
    """Tell `user` about something, in the caller's unit of work (module docstring): the in-app
    row if their preference says so, and the email on the `emails` queue if it says so (a
    security kind's: always). `link` is a path in the app (`app_path`). Returns the row, or
    None when the in-app channel is off (or the account is disabled or deleted)."""
    require_unit_of_work("a notification")
    spec = _kind(kind)
    account = user if isinstance(user, User) else users.get(user)
    if account is None or not account.is_active:
        return None  # a deleted or disabled account reads nothing
    choice = _choice(spec, preference_rows.get((account.id, kind)))
    values = _Params({name: _shortened(value) for name, value in (params or {}).items()})
    title = (spec.title % values)[:TITLE_MAX]
    body = spec.body % values
    link = link[:LINK_MAX] if link else None
    row = None
    if choice.in_app:
        row = notifications.add(
            Notification(user_id=account.id, kind=kind, title=title, body=body, link=link, created_at=utcnow())
        )
        forget_unread(account.id)
    if choice.email and (spec.security or account.email_verified_at is not None):
        _queue_email(account, spec, title, body, link)
    return row


def _queue_email(user: User, spec: NotificationKind, title: str, body: str, link: str | None) -> None:
    base = current_app.extensions["hearth.settings"].public_base_url
    unsubscribe = None if spec.security else unsubscribe_url(user.id, spec.name)
    context = {
        "locale": locale_of(user),
        "name": user.display_name,
        "kind": spec.name,
        "title": title,
        "body": body,
        "link": base + link if link and link.startswith("/") else link,
        "unsubscribe": unsubscribe,
        "preferences": public_url_for("notifications.preferences"),
    }
    headers = None
    if unsubscribe:
        headers = {"List-Unsubscribe": f"<{unsubscribe}>", "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}
    queue_email(user.email, EMAIL_TEMPLATE, context, user_id=user.id, headers=headers)


# Preferences --------------------------------------------------------------------------------


def _choice(spec: NotificationKind, row: NotificationPreference | None) -> ChannelChoice:
    in_app = spec.in_app if row is None else row.in_app
    email = spec.email if row is None else row.email
    return ChannelChoice(in_app=in_app, email=email or spec.security)


def preferences(user_id: int) -> dict[str, ChannelChoice]:
    """Every kind's channels for the user, in the catalogue's order."""
    rows = {row.kind: row for row in preference_rows.of_user(user_id)}
    return {spec.name: _choice(spec, rows.get(spec.name)) for spec in KINDS}


def _field_error(field: str, message: str, kind: str) -> dict[str, str]:
    return {"field": field, "location": "body", "message": message, "type": kind}


def set_preferences(user: User, choices: dict[str, ChannelChoice]) -> dict[str, ChannelChoice]:
    """Save the user's channels for the kinds in `choices` (the others keep theirs). An unknown
    kind, or a security kind's email switched off, is refused (422, naming the field) and
    nothing is saved. Returns every kind's channels."""
    errors = []
    for kind, choice in choices.items():
        spec = CATALOGUE.get(kind)
        if spec is None:
            errors.append(_field_error(kind, _("There is no notification kind with this name."), "unknown_kind"))
        elif spec.security and not choice.email:
            errors.append(
                _field_error(
                    f"{kind}.email", _("Security notices are always sent by email."), "security_email_required"
                )
            )
    if errors:
        raise ValidationFailed(_("Some notification preferences cannot be saved."), errors=errors)
    with unit_of_work():
        for kind, choice in choices.items():
            _store_choice(user.id, kind, choice)
        record("notification_preferences_changed", actor_id=user.id, subject_id=user.id, kinds=sorted(choices))
    return preferences(user.id)


def _store_choice(user_id: int, kind: str, choice: ChannelChoice) -> None:
    preference_rows.store(user_id, kind, in_app=choice.in_app, email=choice.email)


# Unsubscribe --------------------------------------------------------------------------------


def _serializer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.extensions["hearth.settings"].secret_key, salt=UNSUBSCRIBE_SALT)


def unsubscribe_token(user_id: int, kind: str) -> str:
    """A token for (user, kind), signed with the app's secret under its own salt (no other
    signed value of Hearth's is accepted as one). It does not expire: an old email's link must
    still work, and all it can do is switch one kind's email off."""
    return _serializer().dumps([user_id, kind])


def unsubscribe_url(user_id: int, kind: str) -> str:
    """The absolute one-click unsubscribe URL (PUBLIC_URL) for an email of `kind`."""
    return public_url_for("notifications.unsubscribe", token=unsubscribe_token(user_id, kind))


@dataclass(frozen=True)
class Unsubscription:
    user_id: int
    kind: NotificationKind
    email: str


def read_unsubscribe_token(token: str) -> Unsubscription:
    """What a token unsubscribes from, or `InvalidUnsubscribeLink` (nothing is changed)."""
    try:
        user_id, kind = _serializer().loads(token)
    except (BadSignature, TypeError, ValueError):
        raise InvalidUnsubscribeLink() from None
    spec = CATALOGUE.get(kind) if isinstance(kind, str) else None
    account = users.get(user_id) if isinstance(user_id, int) else None
    if spec is None or spec.security or account is None or account.deleted_at is not None:
        raise InvalidUnsubscribeLink()
    return Unsubscription(user_id=account.id, kind=spec, email=account.email)


def unsubscribe(token: str) -> Unsubscription:
    """One click: switch the token's kind off by email for its user (in-app stays as it is)."""
    target = read_unsubscribe_token(token)
    with unit_of_work():
        current = preferences(target.user_id)[target.kind.name]
        _store_choice(target.user_id, target.kind.name, ChannelChoice(in_app=current.in_app, email=False))
        record("notification_unsubscribed", subject_id=target.user_id, kind=target.kind.name)
    return target


# The centre ---------------------------------------------------------------------------------


def list_notifications(user_id: int, unread_only: bool, page: int, per_page: int) -> Page[Notification]:
    """One page of the user's notifications, newest first."""
    return paginate(notification_list_statement(user_id, unread_only), page, per_page)


def get_owned(user_id: int, notification_id: int) -> Notification:
    """The user's notification, or NotFound (another user's is not found either)."""
    row = notifications.owned(user_id, notification_id)
    if row is None:
        raise NotFound(_("No such notification."))
    return row


def mark_read(user_id: int, notification_id: int) -> Notification:
    """Mark one of the user's notifications read (again: nothing changes)."""
    with unit_of_work():
        row = get_owned(user_id, notification_id)
        if row.read_at is None:
            row.read_at = utcnow()
            forget_unread(user_id)
    return row


def mark_all_read(user_id: int) -> int:
    """Mark every unread notification of the user read; returns how many."""
    with unit_of_work():
        count = notifications.mark_all_read(user_id, utcnow())
        if count:
            forget_unread(user_id)
    return count


def unread_state(user_id: int) -> UnreadState:
    """The bell: the unread count and when the user's notifications last changed, cached per
    user (L1 and L2), so a page adds no statement."""
    return cached(_unread_key(user_id), lambda: _unread_now(user_id), timeout=UNREAD_TTL, local=True)


def _unread_now(user_id: int) -> UnreadState:
    count, newest, last_read = notifications.unread_summary(user_id)
    changed = max((moment for moment in (newest, last_read) if moment is not None), default=None)
    return UnreadState(count=count, changed_at=changed)


def _unread_key(user_id: int) -> CacheKey:
    return CacheKey(UNREAD_NAMESPACE, f"unread:{user_id}")


def forget_unread(user_id: int) -> None:
    """Invalidator of `unread_state(user_id)`: call it in every unit of work that adds, reads
    or removes one of the user's notifications (it runs after the commit)."""
    invalidate(_unread_key(user_id))
