"""Magic-byte checks: does an object's first bytes match its declared type?"""

from __future__ import annotations

SNIFF_BYTES = 512
_ZIP = b"PK\x03\x04"


def _is_text(head: bytes) -> bool:
    if b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as error:  # a multi-byte character may be cut at the end
        return error.start >= len(head) - 3
    lowered = head.lstrip().lower()
    return not lowered.startswith((b"<!doctype html", b"<html", b"<svg", b"<?xml", b"<script"))


CHECKS = {
    "image/jpeg": lambda h: h.startswith(b"\xff\xd8\xff"),
    "image/png": lambda h: h.startswith(b"\x89PNG\r\n\x1a\n"),
    "image/gif": lambda h: h.startswith((b"GIF87a", b"GIF89a")),
    "image/webp": lambda h: h[:4] == b"RIFF" and h[8:12] == b"WEBP",
    "application/pdf": lambda h: h.startswith(b"%PDF-"),
    "text/plain": _is_text,
    "text/csv": _is_text,
    "video/mp4": lambda h: h[4:8] == b"ftyp",
    "video/quicktime": lambda h: h[4:8] in (b"ftyp", b"moov", b"mdat", b"wide", b"free"),
    "video/webm": lambda h: h.startswith(b"\x1a\x45\xdf\xa3"),
}


def matches(content_type: str, head: bytes) -> bool:
    """True when `head` looks like `content_type`; Office/OpenDocument formats are ZIP files."""
    if content_type.startswith(("application/vnd.openxmlformats", "application/vnd.oasis.opendocument")):
        return head.startswith(_ZIP)
    check = CHECKS.get(content_type)
    return bool(check and check(head))
