"""Webhook signatures are the Standard Webhooks ones (checked against the `standardwebhooks`
library), and secrets at rest are encrypted under a key derived from SECRET_KEY."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest
from flask import Flask
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from app.webhooks import signing

BODY = b'{"type":"user.created","timestamp":"2026-01-01T00:00:00+00:00","data":{"id":1}}'


def _app(secret_key: str = "k" * 48) -> Flask:
    app = Flask(__name__)
    app.config["SECRET_KEY"] = secret_key
    return app


def test_a_secret_is_whsec_and_32_random_bytes():
    secret = signing.generate_secret()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 32
    assert signing.generate_secret() != secret


def test_the_signature_is_the_one_the_library_computes():
    secret = signing.generate_secret()
    timestamp = 1_767_225_600
    expected = Webhook(secret).sign("msg_1", datetime.fromtimestamp(timestamp, UTC), BODY.decode())
    assert signing.sign(secret, "msg_1", timestamp, BODY) == expected


def test_the_library_verifies_the_headers_and_refuses_a_changed_body():
    secret = signing.generate_secret()
    now = int(datetime.now(UTC).timestamp())
    headers = signing.headers([secret], "msg_1", now, BODY)
    assert Webhook(secret).verify(BODY, headers)["data"] == {"id": 1}
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY.replace(b'"id":1', b'"id":2'), headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(signing.generate_secret()).verify(BODY, headers)


def test_during_a_rotation_either_secret_verifies():
    new, old = signing.generate_secret(), signing.generate_secret()
    now = int(datetime.now(UTC).timestamp())
    headers = signing.headers([new, old], "msg_1", now, BODY)
    assert headers["webhook-signature"].count("v1,") == 2 and " " in headers["webhook-signature"]
    assert Webhook(new).verify(BODY, headers)
    assert Webhook(old).verify(BODY, headers)


def test_a_secret_is_stored_encrypted_and_reads_back():
    secret = signing.generate_secret()
    with _app().app_context():
        stored = signing.encrypt_secret(secret)
        assert secret.removeprefix("whsec_") not in stored
        assert signing.encrypt_secret(secret) != stored  # a fresh IV each time
        assert signing.decrypt_secret(stored) == secret


def test_a_secret_stored_under_another_secret_key_is_unreadable():
    with _app("a" * 48).app_context():
        stored = signing.encrypt_secret(signing.generate_secret())
    with _app("b" * 48).app_context(), pytest.raises(signing.SecretUnreadable):
        signing.decrypt_secret(stored)
