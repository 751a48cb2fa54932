"""Authentication: browser sign-in (flask-login), API tokens (JWT + rotating refresh tokens).

Its blueprint and views are in app.auth.routes."""
