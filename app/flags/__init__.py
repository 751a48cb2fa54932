"""Feature flags (caching issue): a `feature_flags` table toggled at `/admin/flags`
(`flags:manage`, audited) and `feature_enabled("name")` for code and templates, served from
L1/L2 and dropped on every instance when a flag changes."""

from __future__ import annotations

from flask import Flask

from app.flags.service import feature_enabled


def init_flags(app: Flask) -> None:
    """Make `feature_enabled(name)` available in every template."""
    app.add_template_global(feature_enabled, "feature_enabled")
