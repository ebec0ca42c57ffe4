"""Pages of a view ordered by name: ``startkey`` and ``startkey_docid``, never ``skip``.

A page is named by its first row (name and document id, exact even where names repeat). The
next page starts at the row after the last one shown; the previous page is found by reading
backwards (``descending``) from the first. With a name prefix, both directions stay within
the prefix's range. Pure: these functions build view options and read rows; the handler runs
the queries (both at once).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

PAGE_SIZE = 30
PREFIX_LIMIT = 100  # a longer search is cut to this many characters
# Sorts after any text that starts with the prefix, in CouchDB's collation (its ICU root
# collation, as the embedded store's): the end of a prefix range.
PREFIX_END = "\ufff0"
FIRST = None  # the start of the first page: the view's (or the prefix range's) beginning


@dataclass(frozen=True)
class Start:
    """The first row of a page: its key (a name) and document id."""

    key: str
    doc_id: str


@dataclass(frozen=True)
class Page:
    rows: Sequence[Any]
    next: Start | None  # None: this is the last page
    previous: Start | None  # None: the first page (see has_previous)
    has_previous: bool


def forward(start: Start | None, prefix: str = "", size: int = PAGE_SIZE) -> dict[str, Any]:
    """The options reading a page from ``start``, and one row more: the next page's first."""
    options: dict[str, Any] = {"limit": size + 1}
    if prefix:
        options["startkey"], options["endkey"] = prefix, prefix + PREFIX_END
    if start is not None:
        options["startkey"], options["startkey_docid"] = start.key, start.doc_id
    return options


def backward(start: Start | None, prefix: str = "", size: int = PAGE_SIZE) -> dict[str, Any]:
    """The options reading backwards from ``start``: the rows of the page before it.

    Only meaningful with a ``start``: the first page has nothing before it."""
    options: dict[str, Any] = {"limit": size + 1, "descending": True}
    if start is not None:
        options["startkey"], options["startkey_docid"] = start.key, start.doc_id
    if prefix:
        options["endkey"] = prefix
    return options


def start_of(row: Any) -> Start:
    return Start(row.key, row.id)


def page(
    rows: Sequence[Any],
    before: Sequence[Any] = (),
    start: Start | None = None,
    size: int = PAGE_SIZE,
) -> Page:
    """The page of ``rows`` (read with ``forward``), and ``before`` (read with ``backward``).

    ``before`` begins with ``start``'s own row unless it was deleted meanwhile; either way
    the rows before it say where the previous page starts: ``size`` rows back, or at the
    beginning when there are fewer.
    """
    next_start = start_of(rows[size]) if len(rows) > size else None
    earlier = [row for row in before if start is None or start_of(row) != start]
    if len(earlier) >= size:
        return Page(rows[:size], next_start, start_of(earlier[size - 1]), True)
    return Page(rows[:size], next_start, FIRST, bool(earlier))
