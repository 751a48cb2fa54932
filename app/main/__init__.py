"""Public pages: the landing page.

Its blueprint and views are in app.main.routes."""
