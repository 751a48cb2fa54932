"""Passkeys (WebAuthn) end to end through the real pages and the real `webauthn` checks.

Nothing of the library is mocked: `SoftAuthenticator` is a software authenticator (an EC P-256
key from `cryptography`) that answers the options the pages carry exactly as a browser and an
authenticator do: clientDataJSON, authenticatorData, a "none" attestation object in CBOR
(cbor2, which `webauthn` itself depends on) and an ES256 signature.
"""

from __future__ import annotations

import hashlib
import html
import json
import os
import re
from collections.abc import Callable
from typing import Any

import cbor2
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from app.audit.models import AuditEvent
from app.auth import passkeys
from app.auth.models import LoginFailures, Passkey, RecoveryCode
from app.extensions import db
from app.users.models import User
from tests.support import csrf_token

UP, UV, BE, BS, AT = 0x01, 0x04, 0x08, 0x10, 0x40
AAGUID = bytes.fromhex("0123456789abcdef0123456789abcdef")


def b64url(data: bytes) -> str:
    import base64

    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    import base64

    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SoftAuthenticator:
    """One discoverable credential, made and used the way a platform authenticator does."""

    def __init__(self, origin: str, rp_id: str, *, counter: bool = False, backed_up: bool = True) -> None:
        self.origin = origin
        self.rp_id = rp_id
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.credential_id = os.urandom(32)
        self.user_handle: bytes | None = None
        # Synced passkeys keep no counter (always 0); hardware keys count up.
        self.counter = counter
        self.sign_count = 0
        self.backed_up = backed_up

    def _cose_key(self) -> bytes:
        numbers = self.key.public_key().public_numbers()
        return cbor2.dumps({1: 2, 3: -7, -1: 1, -2: numbers.x.to_bytes(32, "big"), -3: numbers.y.to_bytes(32, "big")})

    def _flags(self, uv: bool) -> int:
        flags = UP | (UV if uv else 0)
        if self.backed_up:
            flags |= BE | BS
        return flags

    def create(self, options_json: str, *, origin: str | None = None, rp_id: str | None = None) -> str:
        """The JSON of navigator.credentials.create()'s result for these options."""
        options = json.loads(options_json)
        assert options["authenticatorSelection"]["residentKey"] == "required"
        self.user_handle = unb64url(options["user"]["id"])
        client_data = json.dumps(
            {"type": "webauthn.create", "challenge": options["challenge"], "origin": origin or self.origin}
        ).encode()
        rp_hash = hashlib.sha256((rp_id or options["rp"]["id"]).encode()).digest()
        attested = AAGUID + len(self.credential_id).to_bytes(2, "big") + self.credential_id + self._cose_key()
        auth_data = rp_hash + bytes([self._flags(True) | AT]) + self.sign_count.to_bytes(4, "big") + attested
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        return json.dumps(
            {
                "id": b64url(self.credential_id),
                "rawId": b64url(self.credential_id),
                "type": "public-key",
                "authenticatorAttachment": "platform",
                "clientExtensionResults": {},
                "response": {
                    "clientDataJSON": b64url(client_data),
                    "attestationObject": b64url(attestation),
                    "transports": ["internal", "hybrid"],
                },
            }
        )

    def get(
        self,
        options_json: str,
        *,
        origin: str | None = None,
        challenge: str | None = None,
        sign_count: int | None = None,
        uv: bool = True,
        offered: bool = True,
    ) -> str:
        """The JSON of navigator.credentials.get()'s result for these options (`offered`: the
        browser would have offered this credential: checked against allowCredentials)."""
        options = json.loads(options_json)
        allowed = [item["id"] for item in options.get("allowCredentials") or []]
        assert not offered or not allowed or b64url(self.credential_id) in allowed
        if sign_count is None:
            if self.counter:
                self.sign_count += 1
            sign_count = self.sign_count
        client_data = json.dumps(
            {"type": "webauthn.get", "challenge": challenge or options["challenge"], "origin": origin or self.origin}
        ).encode()
        auth_data = (
            hashlib.sha256(options["rpId"].encode()).digest() + bytes([self._flags(uv)]) + sign_count.to_bytes(4, "big")
        )
        signature = self.key.sign(auth_data + hashlib.sha256(client_data).digest(), ec.ECDSA(hashes.SHA256()))
        return json.dumps(
            {
                "id": b64url(self.credential_id),
                "rawId": b64url(self.credential_id),
                "type": "public-key",
                "authenticatorAttachment": "platform",
                "clientExtensionResults": {},
                "response": {
                    "clientDataJSON": b64url(client_data),
                    "authenticatorData": b64url(auth_data),
                    "signature": b64url(signature),
                    "userHandle": b64url(self.user_handle) if self.user_handle else None,
                },
            }
        )


# Helpers ------------------------------------------------------------------------------------

_FORMS = re.compile(r"<form[^>]*\bdata-passkey-(get|create)\b[^>]*>", re.S)
_CSRF = re.compile(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"')


def page_form(client: FlaskClient, path: str, kind: str = "get") -> tuple[str, str]:
    """The WebAuthn options a page carries for its passkey form (`get` or `create`), and the
    page's CSRF token. From one response: every rendering issues a new challenge."""
    response = client.get(path)
    assert response.status_code == 200, (path, response.status_code)
    page = response.get_data(as_text=True)
    for match in _FORMS.finditer(page):
        if match.group(1) == kind:
            options = re.search(r'data-passkey-options="([^"]*)"', match.group(0))
            assert options, match.group(0)
            return html.unescape(options.group(1)), _CSRF.search(page).group(1)
    raise AssertionError(f"no passkey {kind} form on {path}")


def page_options(client: FlaskClient, path: str, kind: str = "get") -> str:
    return page_form(client, path, kind)[0]


@pytest.fixture()
def authenticator(app: Flask) -> Callable[..., SoftAuthenticator]:
    """Factory: a software authenticator for this app's relying party."""
    with app.app_context():
        origin, rp_id = passkeys.expected_origin(), passkeys.relying_party_id()

    def make(**options: Any) -> SoftAuthenticator:
        return SoftAuthenticator(origin, rp_id, **options)

    return make


def register(client: FlaskClient, device: SoftAuthenticator, name: str = "Laptop", **answer: Any) -> Any:
    """Add `device` as a passkey through /account/security (the client is signed in)."""
    options, token = page_form(client, "/account/security", "create")
    return client.post(
        "/account/security/passkeys",
        data={"csrf_token": token, "name": name, "passkey_credential": device.create(options, **answer)},
    )


def sign_in_with(client: FlaskClient, device: SoftAuthenticator, path: str = "/auth/login", **answer: Any) -> Any:
    """Sign in with `device` alone from the login page."""
    options, token = page_form(client, path)
    query = path.partition("?")[2]
    return client.post(
        "/auth/passkey" + (f"?{query}" if query else ""),
        data={"csrf_token": token, "passkey_credential": device.get(options, **answer)},
    )


def rows(app: Flask, model: Any, *where: Any) -> list[Any]:
    with app.app_context():
        # In insertion order: PostgreSQL returns rows in any order without ORDER BY.
        found = list(db.session.scalars(select(model).where(*where).order_by(*model.__table__.primary_key.columns)))
        for row in found:
            db.session.expunge(row)
        return found


def events(app: Flask, name: str) -> list[AuditEvent]:
    return rows(app, AuditEvent, AuditEvent.event == name)


def user_row(app: Flask, user_id: int) -> User:
    with app.app_context():
        user = db.session.get(User, user_id)
        db.session.expunge(user)
        return user


def failures(app: Flask, user_id: int) -> int:
    return sum(row.failures for row in rows(app, LoginFailures, LoginFailures.user_id == user_id))


@pytest.fixture()
def with_passkey(app, client, auth, make_user, authenticator):
    """A user who registered a passkey (then signed out), and that passkey's authenticator."""

    def make(**device_options: Any) -> tuple[User, SoftAuthenticator]:
        user = make_user()
        device = authenticator(**device_options)
        auth.login(user)
        assert register(client, device).status_code == 303
        auth.logout()
        return user, device

    return make


# Registering, listing, renaming, removing -----------------------------------------------------


def test_registering_a_passkey_keeps_it_lists_it_and_turns_on_two_factor(app, client, auth, make_user, authenticator):
    user = make_user()
    device = authenticator()
    auth.login(user)
    options = json.loads(page_options(client, "/account/security", "create"))
    assert options["rp"]["id"] == "localhost"  # the host of PUBLIC_URL (unset in tests: http://localhost:5000)
    assert options["authenticatorSelection"]["residentKey"] == "required"
    assert options["attestation"] == "none"
    assert options["excludeCredentials"] == []

    response = register(client, device, "  Work   laptop ")
    assert response.status_code == 303
    # The account's first second factor: its recovery codes come with it, shown once.
    assert response.headers["Location"].endswith("/account/security#recovery-title")
    shown = client.get("/account/security").get_data(as_text=True)
    assert len(re.findall(r"<li><code>[a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4}</code></li>", shown)) == 10
    assert len(rows(app, RecoveryCode, RecoveryCode.user_id == user.id)) == 10

    [stored] = rows(app, Passkey, Passkey.user_id == user.id)
    assert stored.name == "Work laptop"
    assert stored.credential_id == b64url(device.credential_id)
    assert stored.transports == ["internal", "hybrid"]
    assert stored.aaguid == "01234567-89ab-cdef-0123-456789abcdef"
    assert stored.backed_up is True
    assert user_row(app, user.id).two_factor_enabled is True
    [event] = events(app, "passkey_registered")
    assert (event.actor_user_id, event.subject_user_id, event.data["name"]) == (user.id, user.id, "Work laptop")

    page = client.get("/account/security").get_data(as_text=True)
    assert "Work laptop" in page
    # The same authenticator is not offered a second registration.
    again = json.loads(page_options(client, "/account/security", "create"))
    assert [item["id"] for item in again["excludeCredentials"]] == [b64url(device.credential_id)]


def test_registering_the_same_credential_twice_is_refused(app, client, auth, make_user, authenticator):
    user = make_user()
    device = authenticator()
    auth.login(user)
    register(client, device)
    response = register(client, device, "Again")
    assert response.status_code == 303
    assert "already registered" in client.get(response.headers["Location"]).get_data(as_text=True)
    assert len(rows(app, Passkey, Passkey.user_id == user.id)) == 1


def test_a_registration_needs_the_challenge_this_browser_was_given(app, client, auth, make_user, authenticator):
    user = make_user()
    auth.login(user)
    options, token = page_form(client, "/account/security", "create")
    options = json.loads(options)
    options["challenge"] = b64url(os.urandom(32))  # a response to some other challenge
    forged = authenticator().create(json.dumps(options))
    response = client.post(
        "/account/security/passkeys",
        data={"csrf_token": token, "name": "Forged", "passkey_credential": forged},
    )
    assert response.status_code == 303
    assert rows(app, Passkey, Passkey.user_id == user.id) == []
    assert user_row(app, user.id).two_factor_enabled is False


def test_a_registration_from_another_origin_is_refused(app, client, auth, make_user, authenticator):
    user = make_user()
    auth.login(user)
    response = register(client, authenticator(), "Phished", origin="https://hearth.example.net")
    assert response.status_code == 303
    assert rows(app, Passkey, Passkey.user_id == user.id) == []


def test_a_passkey_needs_a_name(app, client, auth, make_user, authenticator):
    user = make_user()
    auth.login(user)
    response = register(client, authenticator(), "   ")
    assert response.status_code == 303
    assert "Give the passkey a name" in client.get("/account/security").get_data(as_text=True)
    assert rows(app, Passkey, Passkey.user_id == user.id) == []


def test_renaming_and_removing_a_passkey(app, client, auth, make_user, authenticator):
    user = make_user()
    auth.login(user)
    register(client, authenticator(), "Old name")
    [stored] = rows(app, Passkey, Passkey.user_id == user.id)
    token = csrf_token(client, "/account/")

    renamed = client.post(f"/account/security/passkeys/{stored.id}/rename", data={"csrf_token": token, "name": "Phone"})
    assert renamed.status_code == 303
    assert rows(app, Passkey, Passkey.id == stored.id)[0].name == "Phone"
    assert events(app, "passkey_renamed")[0].data == {"before": "Old name", "after": "Phone"}

    assert client.post(f"/account/security/passkeys/{stored.id}/remove", data={"csrf_token": token}).status_code == 303
    assert rows(app, Passkey, Passkey.user_id == user.id) == []
    assert user_row(app, user.id).two_factor_enabled is False
    [event] = events(app, "passkey_removed")
    assert (event.actor_user_id, event.target, event.data["name"]) == (user.id, f"passkey:{stored.id}", "Phone")
    assert "You have no passkeys yet." in client.get("/account/security").get_data(as_text=True)


def test_nobody_renames_or_removes_another_persons_passkey(app, client, auth, make_user, with_passkey):
    owner, _device = with_passkey()
    [stored] = rows(app, Passkey, Passkey.user_id == owner.id)
    auth.login(make_user())
    token = csrf_token(client, "/account/")
    assert client.post(f"/account/security/passkeys/{stored.id}/remove", data={"csrf_token": token}).status_code == 404
    renamed = client.post(f"/account/security/passkeys/{stored.id}/rename", data={"csrf_token": token, "name": "Mine"})
    assert renamed.status_code == 404
    assert rows(app, Passkey, Passkey.id == stored.id)[0].name == "Laptop"
    assert user_row(app, owner.id).two_factor_enabled is True


def test_passkey_pages_need_a_signed_in_user(client):
    token = csrf_token(client)
    response = client.post(
        "/account/security/passkeys", data={"csrf_token": token, "name": "x", "passkey_credential": "{}"}
    )
    assert response.status_code == 302
    assert "/auth/login" in response.headers["Location"]


# Signing in with a passkey alone ---------------------------------------------------------------


def test_the_login_page_offers_a_usernameless_passkey_sign_in(client):
    page = client.get("/auth/login").get_data(as_text=True)
    assert 'action="/auth/passkey"' in page
    assert "js/passkeys." in page
    options = json.loads(page_options(client, "/auth/login"))
    assert options["allowCredentials"] == []  # any passkey of this site: no email asked first
    assert options["userVerification"] == "required"


def test_signing_in_with_a_passkey_alone(app, client, auth, with_passkey):
    user, device = with_passkey()
    response = sign_in_with(client, device)
    assert response.status_code == 302, response.get_data(as_text=True)[:300]
    assert auth.is_signed_in_as(user)
    [event] = [e for e in events(app, "login_succeeded") if e.data.get("method") == "passkey"]
    assert event.subject_user_id == user.id
    [stored] = rows(app, Passkey, Passkey.user_id == user.id)
    assert stored.last_used_at is not None


def test_sign_in_keeps_next(app, client, auth, with_passkey):
    _user, device = with_passkey()
    response = sign_in_with(client, device, "/auth/login?next=/account/")
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/account/")


def test_a_passkey_without_user_verification_does_not_sign_in_alone(app, client, auth, with_passkey):
    user, device = with_passkey()
    response = sign_in_with(client, device, uv=False)
    assert response.status_code == 303
    assert not auth.is_signed_in_as(user)
    assert failures(app, user.id) == 1


def test_a_response_for_another_origin_is_refused_and_counted(app, client, auth, with_passkey):
    user, device = with_passkey()
    response = sign_in_with(client, device, origin="https://hearth.example.net")
    assert response.status_code == 303
    assert response.headers["Location"].endswith("/auth/login")
    assert "could not be verified" in client.get("/auth/login").get_data(as_text=True)
    assert not auth.is_signed_in_as(user)
    assert failures(app, user.id) == 1
    assert events(app, "passkey_refused")[0].data["reason"] == "not_verified"


def test_a_response_to_another_challenge_is_refused(app, client, auth, with_passkey):
    user, device = with_passkey()
    response = sign_in_with(client, device, challenge=b64url(os.urandom(64)))
    assert response.status_code == 303
    assert not auth.is_signed_in_as(user)
    assert failures(app, user.id) == 1


def test_a_challenge_is_bound_to_its_purpose(app, client, auth, with_passkey):
    """A second-factor challenge (/auth/2fa, after the password) does not sign in alone."""
    user, device = with_passkey()
    auth.login(user)  # the password: now /auth/2fa waits for the second factor
    options, token = page_form(client, "/auth/2fa")
    response = client.post("/auth/passkey", data={"csrf_token": token, "passkey_credential": device.get(options)})
    assert response.status_code == 303
    assert not auth.is_signed_in_as(user)
    assert events(app, "passkey_refused")[0].data["reason"] == "no_challenge"


def test_a_used_challenge_cannot_be_replayed_even_with_the_old_cookie(app, client, auth, with_passkey):
    user, device = with_passkey()
    options, token = page_form(client, "/auth/login")
    old_cookie = client.get_cookie("session").value
    answer = device.get(options)
    assert client.post("/auth/passkey", data={"csrf_token": token, "passkey_credential": answer}).status_code == 302
    auth.logout()

    # The same browser again: its challenge was taken out of the session.
    assert (
        client.post("/auth/passkey", data={"csrf_token": csrf_token(client), "passkey_credential": answer}).status_code
        == 303
    )
    assert not auth.is_signed_in_as(user)

    # Another browser with a copy of the cookie that still holds the challenge: the database refuses.
    thief = app.test_client()
    thief.set_cookie("session", old_cookie)
    assert thief.post("/auth/passkey", data={"csrf_token": token, "passkey_credential": answer}).status_code == 303
    assert not auth(thief).is_signed_in_as(user)
    assert events(app, "passkey_refused")[-1].data["reason"] == "replayed"


def test_an_expired_challenge_is_refused(app, client, auth, with_passkey, monkeypatch):
    from datetime import timedelta

    from app.core.database import utcnow

    user, device = with_passkey()
    options, token = page_form(client, "/auth/login")
    later = utcnow() + timedelta(minutes=6)
    monkeypatch.setattr(passkeys, "utcnow", lambda: later)
    response = client.post("/auth/passkey", data={"csrf_token": token, "passkey_credential": device.get(options)})
    assert response.status_code == 303
    assert not auth.is_signed_in_as(user)


def test_a_sign_count_that_goes_back_is_refused(app, client, auth, with_passkey):
    user, device = with_passkey(counter=True)
    assert sign_in_with(client, device, sign_count=7).status_code == 302
    auth.logout()
    assert rows(app, Passkey, Passkey.user_id == user.id)[0].sign_count == 7

    response = sign_in_with(client, device, sign_count=5)  # a clone of the authenticator
    assert response.status_code == 303
    assert not auth.is_signed_in_as(user)
    assert events(app, "passkey_refused")[-1].data["reason"] == "sign_count_not_increased"
    assert sign_in_with(client, device, sign_count=8).status_code == 302


def test_a_disabled_user_cannot_sign_in_with_a_passkey(app, client, auth, with_passkey):
    user, device = with_passkey()
    with app.app_context():
        db.session.get(User, user.id).is_active_account = False
        db.session.commit()
    response = sign_in_with(client, device)
    assert response.status_code == 303
    assert not auth.is_signed_in_as(user)
    assert [e.subject_user_id for e in events(app, "login_refused_disabled")] == [user.id]


def test_an_unknown_passkey_is_refused(app, client, auth, authenticator, make_user):
    make_user()
    response = sign_in_with(client, authenticator())
    assert response.status_code == 303
    assert events(app, "passkey_refused")[0].data["reason"] == "unknown_credential"


def test_failed_passkeys_lock_the_client_out_like_wrong_passwords(app, client, auth, with_passkey):
    user, device = with_passkey()
    threshold = app.extensions["hearth.settings"].login_lockout_threshold
    for _attempt in range(threshold):
        sign_in_with(client, device, origin="https://evil.example")
    assert failures(app, user.id) == threshold
    assert rows(app, LoginFailures, LoginFailures.user_id == user.id)[0].locked_until is not None

    response = sign_in_with(client, device)  # even the right passkey waits now
    assert response.status_code == 303
    assert "Too many failed attempts" in client.get("/auth/login").get_data(as_text=True)
    assert not auth.is_signed_in_as(user)
    # ... and so does the password, from this client.
    auth.login(user, expect=401)


@pytest.mark.parametrize(
    "credential",
    [
        "",
        "not json",
        "[1, 2]",
        "null",
        "{}",
        '{"id": "AA", "rawId": "AA", "type": "public-key", "response": {}}',
        '{"id": "AA", "rawId": "!!", "type": "public-key", "response": {"clientDataJSON": "x", '
        '"authenticatorData": "y", "signature": "z"}}',
        "[" * 5000 + "]" * 5000,
        "x" * 100_000,
    ],
)
def test_malformed_responses_are_refused_without_an_error(client, credential):
    _options, token = page_form(client, "/auth/login")
    response = client.post("/auth/passkey", data={"csrf_token": token, "passkey_credential": credential})
    assert response.status_code == 303
    assert "could not be verified" in client.get("/auth/login").get_data(as_text=True)


def _hostile(device: SoftAuthenticator, options: str) -> str:
    """A registration whose attested public key is a CBOR map without its key type."""
    good = json.loads(device.create(options))
    attestation = cbor2.loads(unb64url(good["response"]["attestationObject"]))
    cut = 32 + 1 + 4 + 16 + 2 + len(device.credential_id)  # rp hash, flags, count, aaguid, id length, id
    attestation["authData"] = attestation["authData"][:cut] + cbor2.dumps({3: -7})
    return json.dumps({**good, "response": {**good["response"], "attestationObject": b64url(cbor2.dumps(attestation))}})


@pytest.mark.parametrize(
    "answer",
    [
        lambda device, options: "",
        lambda device, options: "{",
        lambda device, options: "[]",
        lambda device, options: json.dumps({**json.loads(device.create(options)), "rawId": "AAAA"}),
        lambda device, options: json.dumps(
            {**json.loads(device.create(options)), "response": {"attestationObject": 1}}
        ),
        _hostile,
    ],
)
def test_malformed_registrations_are_refused_without_an_error(app, client, auth, make_user, authenticator, answer):
    user = make_user()
    auth.login(user)
    options, token = page_form(client, "/account/security", "create")
    response = client.post(
        "/account/security/passkeys",
        data={"csrf_token": token, "name": "Bad", "passkey_credential": answer(authenticator(), options)},
    )
    assert response.status_code == 303
    assert "could not be verified" in client.get("/account/security").get_data(as_text=True)
    assert rows(app, Passkey, Passkey.user_id == user.id) == []


# A passkey as the second factor -------------------------------------------------------------


def test_a_passkey_as_the_second_factor_after_the_password(app, client, auth, with_passkey):
    user, device = with_passkey()
    response = auth.login(user)
    assert response.headers["Location"].endswith("/auth/2fa")
    assert not auth.is_signed_in_as(user)
    options, token = page_form(client, "/auth/2fa")
    assert [item["id"] for item in json.loads(options)["allowCredentials"]] == [b64url(device.credential_id)]
    response = client.post("/auth/2fa", data={"csrf_token": token, "passkey_credential": device.get(options)})
    assert response.status_code == 302, response.get_data(as_text=True)[:500]
    assert auth.is_signed_in_as(user)


def test_another_accounts_passkey_is_no_second_factor(app, client, auth, with_passkey):
    user, _own = with_passkey()
    _other, others_device = with_passkey()
    auth.login(user)
    options, token = page_form(client, "/auth/2fa")
    answer = others_device.get(options, offered=False)
    response = client.post("/auth/2fa", data={"csrf_token": token, "passkey_credential": answer})
    assert response.status_code == 422
    assert not auth.is_signed_in_as(user)
    assert failures(app, user.id) == 1


def test_no_passkey_button_for_a_user_without_passkeys(app, make_user):
    user = make_user()
    with app.test_request_context("/auth/2fa"), app.app_context():
        assert passkeys.authentication_options("second-factor", user=db.session.get(User, user.id)) == ""


# Fresh authentication ----------------------------------------------------------------------


def make_stale(app: Flask, user_id: int) -> None:
    """This user's sign-ins last proved who they are 11 minutes ago (FRESH_AUTH_MINUTES is 10)."""
    from datetime import timedelta

    from app.auth.models import UserSession
    from app.core.database import utcnow

    with app.app_context():
        for row in db.session.scalars(select(UserSession).where(UserSession.user_id == user_id)):
            row.authenticated_at = utcnow() - timedelta(minutes=11)
        db.session.commit()


def test_adding_or_removing_a_passkey_needs_a_fresh_sign_in(app, client, auth, make_user, authenticator):
    user = make_user()
    auth.login(user)
    register(client, authenticator(), "Kept")
    options, token = page_form(client, "/account/security", "create")
    make_stale(app, user.id)

    page = client.get("/account/security").get_data(as_text=True)
    assert "To add a passkey, first confirm it is you." in page
    assert "data-passkey-create" not in page  # no passkey is made that the server would refuse

    response = client.post(
        "/account/security/passkeys",
        data={"csrf_token": token, "name": "Late", "passkey_credential": authenticator().create(options)},
    )
    assert response.status_code == 200 and "/auth/reauthenticate" in response.get_data(as_text=True)
    [kept] = rows(app, Passkey, Passkey.user_id == user.id)
    assert kept.name == "Kept"

    response = client.post(f"/account/security/passkeys/{kept.id}/remove", data={"csrf_token": token})
    assert response.status_code == 200
    assert len(rows(app, Passkey, Passkey.user_id == user.id)) == 1


def test_a_passkey_confirms_it_is_you(app, client, auth, with_passkey):
    user, device = with_passkey()
    assert sign_in_with(client, device).status_code == 302
    make_stale(app, user.id)
    assert "first confirm it is you" in client.get("/account/security").get_data(as_text=True)

    options, token = page_form(client, "/auth/reauthenticate?next=/account/security")
    assert [item["id"] for item in json.loads(options)["allowCredentials"]] == [b64url(device.credential_id)]
    response = client.post(
        "/auth/reauthenticate?next=/account/security",
        data={"csrf_token": token, "passkey_credential": device.get(options)},
    )
    assert response.status_code in (302, 303), response.get_data(as_text=True)[:500]
    assert "first confirm it is you" not in client.get("/account/security").get_data(as_text=True)


def test_a_sign_in_challenge_does_not_confirm_it_is_you(app, client, auth, with_passkey):
    user, device = with_passkey()
    assert sign_in_with(client, device).status_code == 302
    make_stale(app, user.id)
    _options, token = page_form(client, "/auth/reauthenticate")
    # A response to a sign-in challenge (the login page of another browser) is not one to this one.
    other = app.test_client()
    sign_in_options, _token = page_form(other, "/auth/login")
    response = client.post(
        "/auth/reauthenticate", data={"csrf_token": token, "passkey_credential": device.get(sign_in_options)}
    )
    assert response.status_code == 422
    assert "first confirm it is you" in client.get("/account/security").get_data(as_text=True)
