"""User accounts. Identity features (sign-up, login, tokens, roles) build on this package."""
