"""Safe object keys and file names: the user's name is metadata, never a path."""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import quote

from app.i18n import _

MAX_NAME_LENGTH = 120
_UNSAFE = re.compile(r"[^A-Za-z0-9._ -]+")


class UnsafeFileName(ValueError):
    pass


def safe_file_name(name: str) -> str:
    """A display/download name: no directories, no control characters, no leading dots."""
    if not name or "/" in name or "\\" in name or "\x00" in name or name.strip(". ") in ("", ".."):
        raise UnsafeFileName(_("The file name must be a plain name, without folders."))
    normalised = unicodedata.normalize("NFKC", name).strip()
    if any(unicodedata.category(char).startswith("C") for char in normalised):
        raise UnsafeFileName(_("The file name contains control characters."))
    if len(normalised) > 255:
        raise UnsafeFileName(_("The file name is longer than 255 characters."))
    return normalised


def key_segment(name: str) -> str:
    """The ASCII slug of a file name used as the last segment of an object key."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = _UNSAFE.sub("-", ascii_name).strip(" .-").replace(" ", "-")
    return (slug or "file")[-MAX_NAME_LENGTH:]


def attachment_disposition(filename: str) -> str:
    """Content-Disposition that always downloads, with an RFC 6266 UTF-8 name."""
    fallback = key_segment(filename)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename)}"
