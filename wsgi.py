"""The web process's (and `flask --app wsgi ...`'s) app.

Start-up allocates ~150,000 objects that live as long as the process; the garbage collector
would walk them again and again while they are made (a full pass takes ~100 ms by the end),
so collection is off until the app is built, and `settle_after_startup` then freezes them out
of its sight and turns it back on (app.core.runtime).
"""

import gc

gc.disable()

from app import create_app  # noqa: E402
from app.core.runtime import settle_after_startup  # noqa: E402

app = create_app()
settle_after_startup()
