"""`/api/v1/me/totp` (issue 16, in progress)."""
