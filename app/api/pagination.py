"""The pagination convention of every list endpoint, in one place.

Request: `?page=N&per_page=M` (1 ≤ page ≤ MAX_PAGE, 1 ≤ per_page ≤ 100, default 25).
Response: `{"items": [...], "meta": {"page", "per_page", "total", "pages"}}`, plus an RFC 8288
`Link` header (first, prev, next, last) and `X-Total-Count`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any
from urllib.parse import quote_plus

from flask import Response, request, url_for
from pydantic import BaseModel, ConfigDict, Field, create_model

from app.core.input import MAX_ID
from app.core.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, Page

# Bounded so the offset, (page - 1) * per_page, always fits the database's 64-bit OFFSET.
MAX_PAGE = MAX_ID

PAGINATION_DESCRIPTION = (
    f"Paginated: `page` (from 1) and `per_page` (1–{MAX_PAGE_SIZE}, default {DEFAULT_PAGE_SIZE}). "
    "The body carries `meta.total` and `meta.pages`; the `Link` header gives first/prev/next/last URLs."
)


class PageQuery(BaseModel):
    """Query parameters shared by every list endpoint; extend it to add filters."""

    model_config = ConfigDict(extra="forbid")

    page: int = Field(default=1, ge=1, le=MAX_PAGE, description="Page number, from 1")
    per_page: int = Field(default=DEFAULT_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE, description="Items per page")


class PageMeta(BaseModel):
    page: int
    per_page: int
    total: int
    pages: int


@dataclass(frozen=True)
class RenderedPage(Page[Any]):
    """A page already turned into its response (app.api.openapi.render_page): the JSON
    document and its ETag, with the numbers the `Link` and `X-Total-Count` headers need. The
    items live in `payload` only (`items` is empty). What list caches store: a hit sends stored
    bytes instead of unpickling, re-validating and re-serialising every item."""

    payload: bytes = b""
    etag: str = ""

    @property
    def l1_weight(self) -> int:
        """Its size for an in-process cache bounded by weight (app.cache.local), in KiB."""
        return 1 + len(self.payload) // 1024


@cache
def page_model(item_model: type[BaseModel]) -> type[BaseModel]:
    """`<Item>Page`: the response schema of a list of `item_model`."""
    return create_model(f"{item_model.__name__}Page", items=(list[item_model], ...), meta=(PageMeta, ...))


# What werkzeug's URL builder leaves unescaped in a query string (werkzeug.urls._urlencode), so
# the links read exactly as `url_for` would write them.
_QUERY_SAFE = "!$'()*,/:;?@"


def _query_part(name: str, value: object) -> str:
    return f"{quote_plus(name, safe=_QUERY_SAFE)}={quote_plus(str(value), safe=_QUERY_SAFE)}"


def link_header(page: Page[Any]) -> str:
    """RFC 8288 links to the other pages, keeping the request's other query parameters.

    The same URLs as `url_for(endpoint, **view_args, **args, page=N, per_page=M)`, parameters in
    that order, but the path is built once and the other parameters encoded once: four
    `url_for` calls cost more than the rest of a cached list response."""
    path = url_for(request.endpoint, **(request.view_args or {}))
    query: dict[str, object] = request.args.to_dict()
    query.setdefault("page", "")  # where `page` goes (its own place, or after the others)
    query["per_page"] = page.per_page
    parts = [None if name == "page" else _query_part(name, value) for name, value in query.items()]

    def link(number: int, rel: str) -> str:
        query_string = "&".join(part or f"page={number}" for part in parts)
        return f'<{path}?{query_string}>; rel="{rel}"'

    links = [link(1, "first")]
    if page.has_prev:
        links.append(link(page.page - 1, "prev"))
    if page.has_next:
        links.append(link(page.page + 1, "next"))
    links.append(link(page.pages, "last"))
    return ", ".join(links)


def page_body(page: Page[Any], item_model: type[BaseModel]) -> BaseModel:
    """The `<Item>Page` document of one page: its items and `meta`."""
    return page_model(item_model)(
        items=[item_model.model_validate(item, from_attributes=True) for item in page.items],
        meta=PageMeta(page=page.page, per_page=page.per_page, total=page.total, pages=page.pages),
    )


def add_page_headers(response: Response, page: Page[Any]) -> Response:
    """The RFC 8288 `Link` and the `X-Total-Count` headers of a page."""
    response.headers["Link"] = link_header(page)
    response.headers["X-Total-Count"] = str(page.total)
    return response
