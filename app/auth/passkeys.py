"""Passkeys (WebAuthn, with the `webauthn` library): registration, sign-in without an email
(discoverable credentials), a passkey as the second factor, and as re-authentication.

The relying party is WEBAUTHN_RP_ID / WEBAUTHN_ORIGIN, by default the host and the origin of
PUBLIC_URL: a credential only ever works on the site it was made for.

Challenges: each ceremony's challenge lives in the cookie session under its purpose
("register", "sign-in", "second-factor", "reauthenticate"), bound to the user where one is
known, for CHALLENGE_LIFETIME, and is taken out when a response is checked (single use in that
browser). The cookie is only signed, so a browser could send an old copy holding a challenge
again: the database is the real guard. A passkey's `last_used_at` is moved by compare-and-set
only when it is older than the challenge, so a response to a challenge works at most once per
credential, whatever cookie comes with it (and a stale page simply asks again). The signature
counter must go up when the authenticator keeps one (a cloned authenticator is refused).

Failures are `InvalidPasskey` (a `ValidationFailed`, 422; `PasskeyLocked`, 429, for a client
the lockout refuses). For a known user (the one given, or the owner of the presented
credential) every refusal counts toward the lockout exactly like a wrong password
(app.auth.lockout), committed before the error is raised.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from flask import current_app, session
from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import (
    base64url_to_bytes,
    bytes_to_base64url,
    generate_challenge,
    parse_authentication_credential_json,
    parse_authenticator_data,
    parse_registration_credential_json,
)
from webauthn.helpers.cose import COSEAlgorithmIdentifier
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AttestationConveyancePreference,
    AuthenticationCredential,
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from app.audit.service import record
from app.auth import lockout, second_factor
from app.auth.models import Passkey
from app.auth.refusals import committed_before_raising
from app.core.database import utcnow
from app.core.repository import Repository
from app.core.unit_of_work import unit_of_work
from app.errors import NotFound, ValidationFailed
from app.i18n import _
from app.users.models import User
from app.users.repository import UserRepository

REGISTER = "register"
SIGN_IN = "sign-in"
SECOND_FACTOR = "second-factor"
REAUTHENTICATE = "reauthenticate"
AUTHENTICATION_PURPOSES = (SIGN_IN, SECOND_FACTOR, REAUTHENTICATE)

SESSION_KEY = "hearth_webauthn"  # cookie session: {purpose: [challenge, user id or None, issued (ISO)]}
CHALLENGE_LIFETIME = timedelta(minutes=5)
TIMEOUT_MS = 300_000  # what the browser is told: the challenge's lifetime
MAX_CREDENTIAL_CHARS = 64 * 1024  # a real response is a few KiB; anything larger is refused unread
MAX_PASSKEYS = 20
NAME_MAX = 80
FIELD = "passkey_credential"  # the form field carrying a browser's response, on every form
# ES256 (every platform authenticator), EdDSA, RS256 (Windows Hello), in order of preference.
ALGORITHMS = [
    COSEAlgorithmIdentifier.ECDSA_SHA_256,
    COSEAlgorithmIdentifier.EDDSA,
    COSEAlgorithmIdentifier.RSASSA_PKCS1_v1_5_SHA_256,
]
# The library checks responses with its own exceptions, but hostile CBOR (a public key map
# without its keys, an integer where a map belongs) still escapes it as one of these plain
# ones: all mean "malformed response", never a server error.
MALFORMED = (WebAuthnException, ValueError, TypeError, KeyError, IndexError, OverflowError)


class InvalidPasskey(ValidationFailed):
    """A passkey response that is malformed, expired, for another site, not this account's,
    replayed, or whose signature or counter does not check out: one message for all."""

    slug = "invalid-passkey"

    def __init__(self, detail: str | None = None) -> None:
        detail = detail or _("That passkey could not be verified. Try again.")
        super().__init__(
            detail, errors=[{"field": FIELD, "location": "body", "message": detail, "type": "value_error"}]
        )


class PasskeyLocked(InvalidPasskey):
    """This client failed too often for this account (app.auth.lockout): it waits."""

    status, title, slug = 429, "Too many attempts", "too-many-attempts"

    def __init__(self) -> None:
        super().__init__(_("Too many failed attempts. Try again later."))


class PasskeyRepository(Repository[Passkey]):
    """`passkeys`: the WebAuthn credentials of each user."""

    model = Passkey

    def of_user(self, user_id: int) -> list[Passkey]:
        return list(
            self.session.scalars(
                select(Passkey).where(Passkey.user_id == user_id).order_by(Passkey.created_at, Passkey.id)
            )
        )

    def owned(self, user_id: int, passkey_id: int) -> Passkey | None:
        return self.session.scalar(select(Passkey).where(Passkey.id == passkey_id, Passkey.user_id == user_id))

    def by_credential_id(self, credential_id: str) -> Passkey | None:
        return self.session.scalar(select(Passkey).where(Passkey.credential_id == credential_id))

    def record_use(
        self, passkey: Passkey, challenge_issued_at: datetime, sign_count: int, backed_up: bool, now: datetime
    ) -> bool:
        """Compare-and-set: only if the credential was not used since the challenge was issued
        and nobody moved its counter meanwhile. Whether this use won."""
        statement = (
            update(Passkey)
            .where(
                Passkey.id == passkey.id,
                Passkey.sign_count == passkey.sign_count,
                or_(Passkey.last_used_at.is_(None), Passkey.last_used_at < challenge_issued_at),
            )
            .values(sign_count=sign_count, backed_up=backed_up, last_used_at=now)
            .execution_options(synchronize_session=False)
        )
        won = self.session.execute(statement).rowcount == 1
        if won:
            self.session.refresh(passkey)
        return won


passkeys = PasskeyRepository()
users = UserRepository()


# The relying party --------------------------------------------------------------------------


def _settings():
    return current_app.extensions["hearth.settings"]


def relying_party_id() -> str:
    """WEBAUTHN_RP_ID, else the host of PUBLIC_URL."""
    settings = _settings()
    return settings.webauthn_rp_id or urlsplit(settings.public_base_url).hostname or "localhost"


def expected_origin() -> str:
    """WEBAUTHN_ORIGIN, else the origin (scheme://host[:port]) of PUBLIC_URL."""
    settings = _settings()
    if settings.webauthn_origin:
        return settings.webauthn_origin.rstrip("/")
    parts = urlsplit(settings.public_base_url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


def _user_handle(user: User) -> bytes:
    """The opaque id authenticators store for the account (never its email or row id): the
    same for every registration of one user, so an authenticator keeps one passkey per account.
    Only registration uses it (sign-in finds the passkey by its credential id)."""
    key = current_app.config["SECRET_KEY"].encode()
    return hmac.new(key, b"hearth webauthn user handle v1:%d" % user.id, hashlib.sha256).digest()


# Challenges (cookie session) ----------------------------------------------------------------


def _issue_challenge(purpose: str, user_id: int | None) -> bytes:
    challenge = generate_challenge()
    pending = dict(session.get(SESSION_KEY) or {})
    pending[purpose] = [bytes_to_base64url(challenge), user_id, utcnow().isoformat()]
    session[SESSION_KEY] = pending
    return challenge


def _take_challenge(purpose: str) -> tuple[bytes, int | None, datetime] | None:
    """This browser's challenge for `purpose`, removed from the session (used or not); None if
    there is none, or it has expired."""
    pending = dict(session.get(SESSION_KEY) or {})
    entry = pending.pop(purpose, None)
    if pending:
        session[SESSION_KEY] = pending
    else:
        session.pop(SESSION_KEY, None)
    try:
        encoded, user_id, issued = entry  # type: ignore[misc]
        issued_at = datetime.fromisoformat(issued)
        challenge = base64url_to_bytes(encoded)
    except (TypeError, ValueError):
        return None
    if utcnow() - issued_at > CHALLENGE_LIFETIME:
        return None
    return challenge, user_id, issued_at


# Reading ------------------------------------------------------------------------------------


def list_for(user_id: int) -> list[Passkey]:
    """The user's passkeys, oldest first."""
    return passkeys.of_user(user_id)


def _descriptors(items: list[Passkey]) -> list[PublicKeyCredentialDescriptor]:
    result = []
    for item in items:
        transports = []
        for value in item.transports or []:
            try:
                transports.append(AuthenticatorTransport(value))
            except ValueError:
                continue
        result.append(
            PublicKeyCredentialDescriptor(id=base64url_to_bytes(item.credential_id), transports=transports or None)
        )
    return result


# Registration -------------------------------------------------------------------------------


def registration_options(user: User) -> str:
    """Options for `navigator.credentials.create()` (JSON), the challenge kept in the session:
    a discoverable credential (so it signs in without an email), user verification preferred,
    none of the user's existing authenticators again."""
    options = generate_registration_options(
        rp_id=relying_party_id(),
        rp_name=_settings().webauthn_rp_name,
        user_name=user.email,
        user_id=_user_handle(user),
        user_display_name=user.display_name,
        challenge=_issue_challenge(REGISTER, user.id),
        timeout=TIMEOUT_MS,
        attestation=AttestationConveyancePreference.NONE,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.REQUIRED,
            user_verification=UserVerificationRequirement.PREFERRED,
        ),
        exclude_credentials=_descriptors(list_for(user.id)),
        supported_pub_key_algs=ALGORITHMS,
    )
    return options_to_json(options)


def _checked_name(name: str | None) -> str:
    name = " ".join((name or "").split())
    if not name or len(name) > NAME_MAX:
        message = _("Give the passkey a name of at most %(max)d characters.", max=NAME_MAX)
        raise ValidationFailed(message, errors=[{"field": "name", "location": "body", "message": message}])
    return name


def _credential_dict(credential_json: Any) -> dict[str, Any]:
    """The browser's response as a JSON object, or `InvalidPasskey` (nothing huge is parsed)."""
    if not isinstance(credential_json, str) or not credential_json or len(credential_json) > MAX_CREDENTIAL_CHARS:
        raise InvalidPasskey()
    try:
        value = json.loads(credential_json)
    except (ValueError, RecursionError):
        raise InvalidPasskey() from None
    if not isinstance(value, dict):
        raise InvalidPasskey()
    return value


def register(user: User, name: str, credential_json: str) -> Passkey:
    """Check the browser's response to `registration_options` and keep the new passkey; the
    user's two-factor flag follows, and the change is audited (one unit of work)."""
    name = _checked_name(name)
    pending = _take_challenge(REGISTER)
    response = _credential_dict(credential_json)
    if pending is None or pending[1] != user.id:
        raise InvalidPasskey(_("The passkey request has expired. Try again."))
    if len(list_for(user.id)) >= MAX_PASSKEYS:
        raise ValidationFailed(_("An account can have at most %(max)d passkeys.", max=MAX_PASSKEYS))
    try:
        credential = parse_registration_credential_json(response)
        verified = verify_registration_response(
            credential=credential,
            expected_challenge=pending[0],
            expected_rp_id=relying_party_id(),
            expected_origin=expected_origin(),
            supported_pub_key_algs=ALGORITHMS,
        )
    except MALFORMED:
        raise InvalidPasskey() from None
    credential_id = bytes_to_base64url(verified.credential_id)
    if len(credential_id) > 1400 or passkeys.by_credential_id(credential_id) is not None:
        raise InvalidPasskey(_("This passkey is already registered."))
    transports = [transport.value for transport in credential.response.transports or []]
    try:
        with unit_of_work() as orm_session:
            passkey = passkeys.add(
                Passkey(
                    user_id=user.id,
                    name=name,
                    credential_id=credential_id,
                    public_key=verified.credential_public_key,
                    sign_count=verified.sign_count,
                    transports=transports,
                    aaguid=verified.aaguid,
                    backed_up=verified.credential_backed_up,
                    created_at=utcnow(),
                )
            )
            orm_session.flush()
            second_factor.sync_two_factor_flag(user)
            record(
                "passkey_registered",
                actor_id=user.id,
                subject_id=user.id,
                target=f"passkey:{passkey.id}",
                name=name,
                backed_up=verified.credential_backed_up,
            )
    except IntegrityError:  # the same credential registered by a concurrent request
        raise InvalidPasskey(_("This passkey is already registered.")) from None
    return passkey


def rename(user: User, passkey_id: int, name: str) -> Passkey:
    """Give one of the user's passkeys a new name (audited)."""
    name = _checked_name(name)
    with unit_of_work():
        passkey = passkeys.owned(user.id, passkey_id)
        if passkey is None:
            raise NotFound(_("No such passkey."))
        before, passkey.name = passkey.name, name
        record(
            "passkey_renamed",
            actor_id=user.id,
            subject_id=user.id,
            target=f"passkey:{passkey.id}",
            before=before,
            after=name,
        )
    return passkey


def remove(user: User, passkey_id: int) -> None:
    """Delete one of the user's passkeys; the two-factor flag follows (audited, one unit)."""
    with unit_of_work() as orm_session:
        passkey = passkeys.owned(user.id, passkey_id)
        if passkey is None:
            raise NotFound(_("No such passkey."))
        name = passkey.name
        passkeys.delete(passkey)
        orm_session.flush()
        second_factor.sync_two_factor_flag(user)
        record("passkey_removed", actor_id=user.id, subject_id=user.id, target=f"passkey:{passkey_id}", name=name)


# Authentication -----------------------------------------------------------------------------


def authentication_options(purpose: str, user: User | None = None) -> str:
    """Options for `navigator.credentials.get()` (JSON), the challenge kept in the session.

    "sign-in": no user and no allowed credentials: the browser offers the passkeys it holds
    for this site (usernameless), and user verification is required (the passkey is both
    factors). "second-factor" / "reauthenticate": `user`'s passkeys only; an empty string when
    the user has none (the page then shows no passkey button)."""
    if purpose not in AUTHENTICATION_PURPOSES:
        raise ValueError(f"unknown passkey purpose {purpose!r}")
    if purpose == SIGN_IN:
        allowed: list[Passkey] = []
        user_id = None
        verification = UserVerificationRequirement.REQUIRED
    else:
        if user is None:
            raise ValueError(f"a {purpose} passkey check needs the user")
        allowed = list_for(user.id)
        if not allowed:
            return ""
        user_id = user.id
        verification = UserVerificationRequirement.PREFERRED
    options = generate_authentication_options(
        rp_id=relying_party_id(),
        challenge=_issue_challenge(purpose, user_id),
        timeout=TIMEOUT_MS,
        allow_credentials=_descriptors(allowed),
        user_verification=verification,
    )
    return options_to_json(options)


def _refuse(owner: User | None, purpose: str, reason: str, client: str) -> InvalidPasskey:
    """Record a refusal (counted toward `owner`'s lockout) in a unit committed now; the error
    for the caller to raise."""
    with committed_before_raising():
        record("passkey_refused", subject_id=owner.id if owner else None, purpose=purpose, reason=reason)
        if owner is not None:
            lockout.register_failure(owner, f"passkey:{purpose}", client)
    return InvalidPasskey()


def verify_authentication(purpose: str, credential_json: str, user: User | None = None) -> User:
    """The account that the browser's response to `authentication_options(purpose, user)`
    proves, after checking challenge (this purpose's, this user's, unexpired, unused), origin,
    relying party, signature, counter, and that the account is active; the passkey's counter
    and last use are updated. Refusals: see the module docstring."""
    if purpose not in AUTHENTICATION_PURPOSES:
        raise ValueError(f"unknown passkey purpose {purpose!r}")
    if purpose != SIGN_IN and user is None:
        raise ValueError(f"a {purpose} passkey check needs the user")
    client = lockout.client_key()
    pending = _take_challenge(purpose)
    try:
        credential = parse_authentication_credential_json(_credential_dict(credential_json))
    except InvalidPasskey:
        raise _refuse(user, purpose, "malformed", client) from None
    except MALFORMED:
        raise _refuse(user, purpose, "malformed", client) from None
    passkey = passkeys.by_credential_id(bytes_to_base64url(credential.raw_id))
    if passkey is not None and user is not None and passkey.user_id != user.id:
        passkey = None  # another account's passkey proves nothing about this one
    owner = user if user is not None else (users.get(passkey.user_id) if passkey is not None else None)
    if owner is not None and lockout.locked_until(owner, client) is not None:
        with committed_before_raising():
            record("passkey_refused_locked", subject_id=owner.id, purpose=purpose)
        raise PasskeyLocked()
    if passkey is None or owner is None:
        raise _refuse(owner, purpose, "unknown_credential", client)
    if pending is None or pending[1] != (user.id if user is not None else None):
        raise _refuse(owner, purpose, "no_challenge", client)
    challenge, _user_id, issued_at = pending
    try:
        verified = verify_authentication_response(
            credential=credential,
            expected_challenge=challenge,
            expected_rp_id=relying_party_id(),
            expected_origin=expected_origin(),
            credential_public_key=passkey.public_key,
            credential_current_sign_count=passkey.sign_count,
            require_user_verification=purpose == SIGN_IN,
        )
    except MALFORMED:
        raise _refuse(owner, purpose, _failure_reason(credential, passkey), client) from None
    if not owner.is_active:
        with committed_before_raising():
            record("login_refused_disabled", subject_id=owner.id, channel=f"passkey:{purpose}")
        raise InvalidPasskey()
    with unit_of_work():
        used = passkeys.record_use(passkey, issued_at, verified.new_sign_count, verified.credential_backed_up, utcnow())
        if used:
            lockout.clear_client(owner, client)
    if not used:
        raise _refuse(owner, purpose, "replayed", client)
    return owner


def _failure_reason(credential: AuthenticationCredential, passkey: Passkey) -> str:
    """Why a response failed, for the audit trail: a counter that went back (a cloned
    authenticator, or a replay) is worth telling apart from the rest."""
    try:
        count = parse_authenticator_data(credential.response.authenticator_data).sign_count
    except MALFORMED:
        return "not_verified"
    if (count or passkey.sign_count) and count <= passkey.sign_count:
        return "sign_count_not_increased"
    return "not_verified"
