"""`/account/security`: two-factor authentication, passkeys, API keys and recent security
activity (issue 16, in progress)."""
