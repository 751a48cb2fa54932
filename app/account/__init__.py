"""The signed-in user's own account page: profile, password, sessions and API sign-ins.

Its blueprint and views are in app.account.routes."""
