"""Pagination arithmetic of the repository base."""

from __future__ import annotations

import pytest

from app.core.pagination import MAX_PAGE_SIZE, Page, clamp_page


@pytest.mark.parametrize(
    ("total", "per_page", "pages"), [(0, 25, 1), (1, 25, 1), (25, 25, 1), (26, 25, 2), (101, 10, 11)]
)
def test_page_count(total, per_page, pages):
    assert Page(items=[], page=1, per_page=per_page, total=total).pages == pages


def test_has_next_and_prev():
    middle = Page(items=[], page=2, per_page=10, total=30)
    assert middle.has_prev and middle.has_next
    assert not Page(items=[], page=3, per_page=10, total=30).has_next
    assert not Page(items=[], page=1, per_page=10, total=30).has_prev


def test_paging_is_bounded():
    assert clamp_page(0, 0) == (1, 1)
    assert clamp_page(-5, 10_000) == (1, MAX_PAGE_SIZE)
