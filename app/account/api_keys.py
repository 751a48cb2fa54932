"""Personal API keys on `/account/security` (issue 16, in progress)."""
