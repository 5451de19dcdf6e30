"""Long lists cut into pages with plain links (`?page=2`), so they work without JavaScript.

A page of the overview never holds more than `PAGE_SIZE` items of a list, whatever the store
holds; the rest is a link away. Pure: items and numbers in, a slice and its links out.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

PAGE_SIZE = 50  # items of one list on one page: a screenful or two, about 50 KB of HTML
MAX_PAGE = 10_000  # a page number beyond this is junk, not a reader paging on

T = TypeVar("T")


@dataclass(frozen=True)
class Pager:
    """Where one page sits in its list, and the links to its neighbours ('' when there is none)."""

    number: int
    count: int  # pages in all (at least 1)
    total: int  # items in all
    previous: str
    next: str
    first: int = 1  # the place in the whole list of the page's first item, for an <ol>'s start

    @property
    def shown(self) -> bool:
        """Whether the list needs its links: it has more than one page."""
        return self.count > 1


def paginate(
    items: Sequence[T], number: int, link: Callable[[int], str], size: int = PAGE_SIZE
) -> tuple[list[T], Pager]:
    """Page *number* (from 1) of *items*; a number past the end gives the last page.

    *link* gives the address of a page by its number."""
    count = max(1, -(-len(items) // size))
    number = min(max(number, 1), count)
    shown = list(items[(number - 1) * size : number * size])
    previous = link(number - 1) if number > 1 else ""
    following = link(number + 1) if number < count else ""
    return shown, Pager(number, count, len(items), previous, following, (number - 1) * size + 1)
