"""Signing in with a passkey (issue 16, in progress)."""
