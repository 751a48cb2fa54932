"""`/auth/reauthenticate`: step-up before a sensitive action (issue 16, in progress)."""
