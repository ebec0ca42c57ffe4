"""``startkey_docid`` and ``endkey_docid`` for a backend that ignores them (pouchdb-server).

CouchDB orders a view's rows by key, then by document id; the doc-id bounds say where, among
the rows whose key equals ``startkey`` (or ``endkey``), the range begins (or ends). Without
them a pager that resumes from its last row's key and id gets rows it has already shown.
settee asks such a backend for the rows from ``startkey`` on, unbounded, and trims them here:
``skip`` and ``limit`` then count the rows that are left, as CouchDB counts them.
"""

from __future__ import annotations

from typing import Any

START = (("startkey", "start_key"), ("startkey_docid", "start_key_doc_id"))
UNBOUNDED = object()
END = (("endkey", "end_key"), ("endkey_docid", "end_key_doc_id"))


def _bound(query: dict[str, Any], names: tuple[tuple[str, ...], ...]) -> tuple[Any, str] | None:
    keys, docids = ([query[name] for name in group if name in query] for group in names)
    return (keys[-1], docids[-1]) if keys and docids else None


def applies(query: dict[str, Any]) -> bool:
    """Whether ``query`` bounds a range by document id as well as by key."""
    return _bound(query, START) is not None or _bound(query, END) is not None


class DocIdRange:
    """Which rows of a key range fall outside its doc-id bounds."""

    def __init__(self, query: dict[str, Any]) -> None:
        self.start = _bound(query, START)
        self.end = _bound(query, END)
        keys = [query[name] for name in START[0] if name in query]
        self.start_key = keys[-1] if keys else UNBOUNDED
        self.descending = bool(query.get("descending", False))
        self.inclusive_end = query.get("inclusive_end", True)

    def before_start(self, key: Any, doc_id: str) -> bool:
        if self.start is None or key != self.start[0]:
            return False
        return doc_id > self.start[1] if self.descending else doc_id < self.start[1]

    def past_end(self, key: Any, doc_id: str) -> bool:
        if self.end is None or key != self.end[0]:
            return False
        if doc_id == self.end[1]:
            return not self.inclusive_end
        return doc_id < self.end[1] if self.descending else doc_id > self.end[1]


def backend_query(query: dict[str, Any]) -> dict[str, Any]:
    """What to ask the backend: the key range alone, every row of it (no skip, no limit, and
    the end key included: which of its rows count is for the doc-id bound to say)."""
    dropped = {"skip", "limit", *START[1], *END[1]}
    if _bound(query, END) is not None:
        dropped.add("inclusive_end")
    return {name: value for name, value in query.items() if name not in dropped}
