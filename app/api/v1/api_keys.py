"""`/api/v1/api-keys` (issue 16, in progress)."""
