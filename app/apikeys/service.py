"""Personal API keys: create, list, revoke, and authenticate a presented key.

A key is `hth_<prefix>_<secret>`: `prefix` (10 characters, a–z 0–9) finds its row in one
indexed query and is shown in lists; `secret` (43 characters of `secrets.token_urlsafe(32)`,
which may itself hold `_`: a key splits on its first two underscores only). Only the SHA-256
of the whole key is stored, compared with `hmac.compare_digest`; the key itself is returned
once, by `create`. A fast hash is enough: the secret has 256 random bits.

A key's scopes are permissions its creator held when creating it, plus the own-data scopes
`self:read` and `self:write` (the owner's own account, files, exports and notifications;
`self:write` includes `self:read`). What a request may do is its scopes ∩ the owner's
permissions at that moment (app.auth.guards): a demoted owner's keys shrink with them, a
disabled or deleted owner's keys stop, and a revoked or expired key fails on every instance at
once, because every request reads the key's row.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from flask import current_app

from app.apikeys.models import ApiKey
from app.apikeys.repository import ApiKeyRepository
from app.audit.service import record
from app.core.database import utcnow
from app.core.unit_of_work import unit_of_work
from app.errors import NotFound, PermissionDenied, ValidationFailed
from app.i18n import N_, _
from app.rbac.catalog import PERMISSIONS
from app.rbac.service import permissions_of
from app.users.models import User

KEY_MARK = "hth_"
PREFIX_LENGTH = 10
PREFIX_ALPHABET = string.ascii_lowercase + string.digits
SECRET_BYTES = 32
# What a well-formed key may look like: the prefix 8–12 characters (10 issued), the secret at
# least 43 (32 bytes, URL-safe base64) and at most 128, so nothing long is ever hashed.
PREFIX_LENGTHS = range(8, 13)
SECRET_LENGTHS = range(43, 129)
SECRET_ALPHABET = frozenset(string.ascii_letters + string.digits + "-_")
NAME_MAX = 80
DEFAULT_DAYS = 90
# Live (neither revoked nor expired) keys a user may hold at once: each has its own rate-limit
# budget (API_KEY_RATE_LIMIT), so this also caps what one user's keys may send.
MAX_API_KEYS = 25
# A key's last use (time and address) is written at most this often: one small write a minute
# per key in use, not one per request.
LAST_USED_EVERY = timedelta(seconds=60)

SELF_READ = "self:read"
SELF_WRITE = "self:write"
OWN_DATA_SCOPES: dict[str, str] = {
    SELF_READ: N_("Read your own account, files, exports and notifications"),
    SELF_WRITE: N_("Change your own account, files, exports and notifications (includes reading them)"),
}

repository = ApiKeyRepository()


class InvalidApiKey(Exception):
    """The presented key is malformed, unknown, wrong, revoked, expired, or its owner cannot sign
    in. (One exception, one answer: a caller learns nothing about which.)"""


@dataclass(frozen=True)
class KeyPrincipal:
    """An authenticated key, as the request guards see it."""

    id: int
    user_id: int
    prefix: str
    scopes: frozenset[str]

    def allows_own_data(self, write: bool) -> bool:
        """Whether the key may read (or, `write`, change) its owner's own data."""
        return SELF_WRITE in self.scopes or (not write and SELF_READ in self.scopes)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def split_key(key: str) -> tuple[str, str]:
    """(prefix, secret) of a well-formed key, else InvalidApiKey. Splits on the first two
    underscores: the secret may hold more."""
    mark, _sep, rest = key.partition("_")
    prefix, _sep, secret = rest.partition("_")
    if (
        mark + "_" != KEY_MARK
        or len(prefix) not in PREFIX_LENGTHS
        or len(secret) not in SECRET_LENGTHS
        or not all(c in PREFIX_ALPHABET for c in prefix)
        or not SECRET_ALPHABET.issuperset(secret)
    ):
        raise InvalidApiKey("malformed")
    return prefix, secret


def looks_like_key(token: str) -> bool:
    """Whether a bearer token is meant as an API key (not an access token): it says so first."""
    return token.startswith(KEY_MARK)


def _new_prefix() -> str:
    while True:
        prefix = "".join(secrets.choice(PREFIX_ALPHABET) for _position in range(PREFIX_LENGTH))
        if not repository.prefix_taken(prefix):
            return prefix


# Scopes -------------------------------------------------------------------------------------


def grantable_scopes(user: Any) -> list[tuple[str, str]]:
    """(scope, description) of every scope `user` may give a key: the own-data scopes, then the
    permissions they hold now, in catalogue order; descriptions in the request's language."""
    held = permissions_of(user.id)
    own = [(scope, _(description)) for scope, description in OWN_DATA_SCOPES.items()]
    return own + [(name, _(description)) for name, description in PERMISSIONS.items() if name in held]


def _clean_scopes(user: User, scopes: Any) -> list[str]:
    if not isinstance(scopes, list | tuple) or not all(isinstance(scope, str) for scope in scopes):
        raise _field_error("scopes", _("Scopes are a list of permission names."))
    wanted = sorted(set(scopes))
    if not wanted:
        raise _field_error("scopes", _("Choose at least one scope."))
    allowed = {scope for scope, _description in grantable_scopes(user)}
    beyond = [scope for scope in wanted if scope not in allowed]
    if beyond:
        raise _field_error(
            "scopes",
            _("You cannot give a key what you do not hold: %(scopes)s.", scopes=", ".join(beyond)),
        )
    return wanted


def _clean_name(name: Any) -> str:
    clean = " ".join(name.split()) if isinstance(name, str) else ""
    if not clean:
        raise _field_error("name", _("Give the key a name, e.g. the script or server that uses it."))
    if len(clean) > NAME_MAX:
        raise _field_error("name", _("At most %(num)d characters.", num=NAME_MAX))
    return clean


def max_days() -> int:
    return current_app.extensions["hearth.settings"].api_key_max_days


def _clean_days(days: Any) -> int:
    limit = max_days()
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= limit:
        raise _field_error("expires_in_days", _("Between 1 and %(num)d days.", num=limit))
    return days


def _field_error(field: str, message: str) -> ValidationFailed:
    return ValidationFailed(
        message, errors=[{"field": field, "location": "body", "message": message, "type": "value_error"}]
    )


# Create, list, revoke -----------------------------------------------------------------------


def create(user: User, name: Any, scopes: Any, expires_in_days: Any = DEFAULT_DAYS) -> tuple[ApiKey, str]:
    """A new key for `user` (audited `api_key_created`), and the key itself: shown this once,
    never stored. ValidationFailed naming `name`, `scopes` or `expires_in_days`, or, when the
    user already holds MAX_API_KEYS live keys, naming that limit."""
    clean_name = _clean_name(name)
    clean_scopes = _clean_scopes(user, scopes)
    days = _clean_days(expires_in_days)
    now = utcnow()
    with unit_of_work() as session:
        repository.lock_owner(user.id)
        if repository.count_live(user.id, now) >= MAX_API_KEYS:
            raise ValidationFailed(
                _("An account can have at most %(num)d API keys: revoke one you no longer use first.", num=MAX_API_KEYS)
            )
        prefix = _new_prefix()
        key = f"{KEY_MARK}{prefix}_{secrets.token_urlsafe(SECRET_BYTES)}"
        row = repository.add(
            ApiKey(
                user_id=user.id,
                name=clean_name,
                prefix=prefix,
                secret_hash=hash_key(key),
                scopes=clean_scopes,
                created_at=now,
                expires_at=now + timedelta(days=days),
            )
        )
        session.flush()
        record(
            "api_key_created",
            actor_id=user.id,
            subject_id=user.id,
            target=f"api_key:{row.id}",
            name=clean_name,
            prefix=prefix,
            scopes=clean_scopes,
            expires_at=row.expires_at.isoformat(),
        )
    return row, key


def list_for(user_id: int) -> list[ApiKey]:
    """The user's live keys (neither revoked nor expired), newest first."""
    return repository.live_for(user_id, utcnow())


def _live_key_of(user_id: int, key_id: int) -> ApiKey:
    key = repository.get(key_id)
    if key is None or key.user_id != user_id or key.revoked_at is not None or key.expires_at <= utcnow():
        raise NotFound(_("No such API key."))
    return key


def revoke_own(user: User, key_id: int) -> ApiKey:
    """The owner revokes one of their live keys (else NotFound); audited."""
    return _revoke(user, _live_key_of(user.id, key_id))


def revoke_for(actor: User, actor_permissions: frozenset[str], owner_id: int, key_id: int) -> ApiKey:
    """An administrator (the caller checked `users:write`) revokes another user's live key;
    audited with the administrator as actor. Like every change to an account, refused when the
    owner holds permissions the administrator lacks."""
    key = _live_key_of(owner_id, key_id)
    if owner_id != actor.id and permissions_of(owner_id) - actor_permissions:
        raise PermissionDenied(
            _("This account holds permissions you do not have; only someone who has them can change it.")
        )
    return _revoke(actor, key)


def _revoke(actor: User, key: ApiKey) -> ApiKey:
    with unit_of_work():
        key.revoked_at = utcnow()
        key.revoked_by_id = actor.id
        record(
            "api_key_revoked",
            actor_id=actor.id,
            subject_id=key.user_id,
            target=f"api_key:{key.id}",
            name=key.name,
            prefix=key.prefix,
            by_admin=actor.id != key.user_id,
        )
    return key


# Authentication -----------------------------------------------------------------------------


def authenticate(key: str, ip: str | None) -> KeyPrincipal:
    """The key principal of a presented `hth_…` key, else InvalidApiKey. One indexed query; a
    use is recorded (time, address) at most once a minute per key, in a small unit of its own."""
    prefix, _secret = split_key(key)
    row = repository.credential(prefix)
    # Hash and compare even for an unknown prefix, so timing says nothing about which prefixes exist.
    expected = row.secret_hash if row is not None else "0" * 64
    if not hmac.compare_digest(hash_key(key), expected) or row is None:
        raise InvalidApiKey("unknown")
    now = utcnow()
    if row.revoked_at is not None or row.expires_at <= now:
        raise InvalidApiKey("revoked or expired")
    if not row.is_active_account or row.deleted_at is not None:
        raise InvalidApiKey("owner cannot sign in")
    if row.last_used_at is None or row.last_used_at < now - LAST_USED_EVERY:
        with unit_of_work():
            repository.touch(row.id, now, ip, now - LAST_USED_EVERY)
    return KeyPrincipal(row.id, row.user_id, prefix, frozenset(row.scopes or ()))
