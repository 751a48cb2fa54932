"""Response compression (pipeline step 12): brotli or gzip, only where it pays.

A body is compressed when the client accepts br or gzip, the type is text (HTML, CSS, JSON,
JavaScript, SVG, problem documents), the status is 2xx, nothing encoded it already and it is
at least COMPRESS_MIN_SIZE bytes (1,400): a smaller body already fits in one TCP segment (an
Ethernet MSS is 1,460 bytes), so compressing it saves no packet and no round trip, only CPU.
Brotli at quality 4 and gzip at level 6 cost 30–100 µs for a page of 4–16 KB. Streamed
bodies (CSV exports) are sent as they are; static files are read and compressed like any body
(nginx compresses them in production, `make run` has no proxy). A strong ETag "x" becomes
"x:br" / "x:gzip" for the encoded representation, and a conditional GET is answered from it
(app.core.http_cache accepts either form in If-Match).
"""

from __future__ import annotations

import gzip

import brotli
from flask import Request, Response

from app.core.cors import _add_vary

COMPRESSIBLE = frozenset(
    {
        "text/html",
        "text/css",
        "text/plain",
        "application/json",
        "application/problem+json",
        "application/javascript",
        "text/javascript",
        "image/svg+xml",
    }
)
DEFAULT_MIN_SIZE = 1400
BROTLI_QUALITY = 4
GZIP_LEVEL = 6


def accepted_coding(accept_encoding: str) -> str | None:
    """br if accepted, else gzip if accepted, else None (a coding with q=0 is refused)."""
    best = None
    for part in accept_encoding.lower().split(","):
        coding, _, params = part.partition(";")
        coding = coding.strip()
        if coding not in ("br", "gzip"):
            continue
        if params and params.strip().replace(" ", "") in ("q=0", "q=0.0", "q=0.00", "q=0.000"):
            continue
        if coding == "br":
            return "br"
        best = "gzip"
    return best


class Compression:
    def __init__(self, min_size: int = DEFAULT_MIN_SIZE):
        self.min_size = min_size

    def apply(self, request: Request, response: Response, present: set[str]) -> None:
        """`present`: the response's header names, lower-cased."""
        if response.mimetype not in COMPRESSIBLE or (response.is_streamed and not response.direct_passthrough):
            return
        if "vary" in present:
            _add_vary(response, "Accept-Encoding")
        else:
            response.headers.add("Vary", "Accept-Encoding")
            present.add("vary")
        accept_encoding = request.environ.get("HTTP_ACCEPT_ENCODING")
        if (
            not accept_encoding
            or not 200 <= response.status_code < 300
            or "content-encoding" in present
            or (response.content_length or 0) < self.min_size
        ):
            return
        coding = accepted_coding(accept_encoding)
        if coding is None:
            return
        response.direct_passthrough = False  # a static file: read it to compress it
        data = response.get_data()
        if coding == "br":
            response.set_data(brotli.compress(data, quality=BROTLI_QUALITY))
        else:
            response.set_data(gzip.compress(data, GZIP_LEVEL, mtime=0))
        response.headers["Content-Encoding"] = coding
        etag, weak = response.get_etag()
        if etag and not weak:
            response.set_etag(f"{etag}:{coding}")
        if "HTTP_IF_NONE_MATCH" in request.environ and request.method in ("GET", "HEAD"):
            response.make_conditional(request)
