"""Hearth's release, in one place (the factory, the API document, page footers, /health)."""

__version__ = "0.1.0"
