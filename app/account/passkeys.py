"""Passkey registration and removal on `/account/security` (issue 16, in progress)."""
