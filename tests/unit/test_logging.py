"""Log helpers: hashed identifiers and redaction."""

from __future__ import annotations

from app.logging import REDACTED, _redact, hash_identifier


def test_hashed_ids_are_stable_keyed_and_not_the_id():
    assert hash_identifier(42, "k1") == hash_identifier(42, "k1")
    assert hash_identifier(42, "k1") != hash_identifier(42, "k2")
    assert hash_identifier(42, "k1") != hash_identifier(43, "k1")
    assert "42" not in hash_identifier(42, "k1")


def test_secret_looking_keys_are_redacted_and_others_kept():
    event = _redact(None, "info", {"password": "p", "refresh_token": "r", "authorization": "Bearer x", "email": "e"})
    assert event == {"password": REDACTED, "refresh_token": REDACTED, "authorization": REDACTED, "email": "e"}


def test_nested_secrets_are_redacted():
    event = _redact(None, "info", {"request": {"headers": {"Authorization": "Bearer x"}, "path": "/"}})
    assert event["request"]["headers"]["Authorization"] == REDACTED
    assert event["request"]["path"] == "/"


def test_stdlib_extra_fields_are_redacted(captured_logs):
    import logging

    logging.getLogger("some.library").warning("calling upstream", extra={"api_key": "sk-live-123", "attempt": 2})
    [line] = captured_logs.events("calling upstream")
    assert line["api_key"] == REDACTED and line["attempt"] == 2
