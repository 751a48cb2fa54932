"""Demo data for trying Hearth out: `flask demo seed` (development and test only).

`app.demo.seed` does the work; `app.demo.content` holds the names, files and failures it uses.
"""

from __future__ import annotations

DEMO_DOMAIN = "demo.hearth.test"
DEFAULT_USERS = 40
MAX_USERS = 500
