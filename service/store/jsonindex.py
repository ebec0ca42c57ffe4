"""Mango's json indexes as view indexes, and the part of an index a selector can match.

A json index on fields ``[a, b]`` is a view whose one row per document is ``[doc.a, doc.b]``
(no row for a document missing any of them, nor for one its partial filter selector, if
it has one, does not match), mapped in Python, not JavaScript, and kept
in a ``views.Index`` file like any view. ``_find`` reads from it only the key range the
selector allows: the equality conditions on the index's leading fields, then the range
conditions (``$gt``, ``$gte``, ``$lt``, ``$lte``) on the next. The range holds every
document that can match (comparisons are view collation, as the index's order), so the
selector, checked on each document read, decides as before and the index only saves reads.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from ..couch.errors import BadRequest
from ..couch.protocol import decode_json, encode_json
from . import collation, reads, selectors
from .views import Design

PAGE = 500  # index rows read, and documents fetched, per step
ALL_DOCS = {  # the index CouchDB answers from without a json index: _all_docs
    "ddoc": None,
    "name": "_all_docs",
    "type": "special",
    "def": {"fields": [{"_id": "asc"}]},
}


@dataclass(frozen=True, slots=True)
class JsonIndex:
    """One json index: the design document holding it, its name, its fields in order, and
    its partial filter selector (normalized; empty for an index of every document)."""

    ddoc: str
    name: str
    fields: tuple[str, ...]
    directions: tuple[str, ...]
    partial: dict[str, Any]

    def described(self) -> dict[str, Any]:
        fields = [{f: d} for f, d in zip(self.fields, self.directions, strict=True)]
        definition: dict[str, Any] = {"fields": fields}
        if self.partial:
            definition["partial_filter_selector"] = self.partial
        return {
            "ddoc": self.ddoc,
            "name": self.name,
            "type": "json",
            "partitioned": False,
            "def": definition,
        }

    @property
    def design(self) -> Design:
        """The index as a one-view design, of language ``query`` (mapped by ``FieldsMap``):
        its "map" is the JSON of its fields, with its partial selector if it has one (so an
        index of every document keeps the signature it always had)."""
        fields: Any = list(self.fields)
        if self.partial:
            fields = {"fields": fields, "partial_filter_selector": self.partial}
        mapped = encode_json(fields).decode()
        return Design(self.ddoc, "query", (self.name,), (mapped,), (None,), False, False)


def indexes_of(conn: sqlite3.Connection) -> list[JsonIndex]:
    """The json indexes of a database's design documents, by design document id."""
    found = []
    for (ddoc_id,) in conn.execute(
        "SELECT id FROM docs WHERE id >= '_design/' AND id < '_design0' AND deleted = 0 ORDER BY id"
    ):
        doc = reads.document(conn, ddoc_id, None, reads.DocOptions())
        if doc.get("language") != "query" or not isinstance(doc.get("views"), dict):
            continue
        for name, view in doc["views"].items():
            mapped = (view.get("map") or {}) if isinstance(view, dict) else {}
            fields = mapped.get("fields") if isinstance(mapped, dict) else None
            if isinstance(fields, dict) and fields:
                partial = mapped.get("partial_filter_selector")
                partial = partial if isinstance(partial, dict) else {}
                found.append(
                    JsonIndex(ddoc_id, name, tuple(fields), tuple(fields.values()), partial)
                )
    return found


class FieldsMap:
    """The map "function" of a json index: what ``views.Index`` calls a design's functions."""

    def __init__(self, fields_json: str) -> None:
        described = decode_json(fields_json)
        if isinstance(described, dict):
            described, self.partial = described["fields"], described["partial_filter_selector"]
        else:
            self.partial = {}
        self.paths = [selectors.path_of(name) for name in described]

    def map(self, docs: list[dict[str, Any]]) -> list[list[list[list[Any]]]]:
        """Per document, per view (one), its rows: ``[[key, null]]``, or none."""
        mapped: list[list[list[list[Any]]]] = []
        for doc in docs:
            if self.partial and not self._selected(doc):
                mapped.append([[]])
                continue
            key = [selectors.value_at(doc, path) for path in self.paths]
            has_all = all(value is not selectors.MISSING for value in key)
            mapped.append([[[key, None]]] if has_all else [[]])
        return mapped

    def _selected(self, doc: dict[str, Any]) -> bool:
        """Whether the partial selector takes ``doc`` (one it cannot decide on, it does not)."""
        try:
            return selectors.matches(self.partial, doc)
        except BadRequest:
            return False

    def check(self) -> None:
        """Nothing to compile."""

    def close(self) -> None:
        """Nothing to release."""


def key_range(selector: dict[str, Any], fields: tuple[str, ...]) -> tuple[bytes, bytes | None]:
    """The bytes of the index's sort keys that can match ``selector``: ``[low, high)``,
    ``high`` None for no upper bound."""
    conditions = _top_level(selector)
    prefix = collation.ARRAY
    for field in fields:
        condition = conditions.get(field)
        if condition is None:
            break
        if isinstance(condition, dict) and condition and not _is_operators(condition):
            break  # conditions on the field's own fields: no range of the field itself
        if not _is_operators(condition):
            prefix += collation.sort_key(condition)  # an equality: the prefix narrows
            continue
        if "$eq" in condition and len(condition) == 1:
            prefix += collation.sort_key(condition["$eq"])
            continue
        return _bounded(prefix, condition)
    return prefix, _after(prefix)


def _bounded(prefix: bytes, condition: dict[str, Any]) -> tuple[bytes, bytes | None]:
    """The range of a field's comparisons, inside the equality prefix before it."""
    low, high = prefix, _after(prefix)
    for op, arg in condition.items():
        try:
            at = prefix + collation.sort_key(arg)
        except (TypeError, ValueError):
            continue  # not a JSON value: the selector refuses or fails it
        if op == "$gt":
            above = _after(at)
            if above is None:
                return at, at
            low = max(low, above)
        elif op == "$gte":
            low = max(low, at)
        elif op == "$lt":
            high = _lower(high, at)
        elif op == "$lte":
            high = _lower(high, _after(at))
        elif op == "$eq":
            low, high = max(low, at), _lower(high, _after(at))
    return low, high


def _lower(a: bytes | None, b: bytes | None) -> bytes | None:
    """The lower of two upper bounds, None being none."""
    return b if a is None else a if b is None else min(a, b)


def _after(prefix: bytes) -> bytes | None:
    """The least bytes above every key that begins with ``prefix`` (None: there are none)."""
    trimmed = prefix.rstrip(b"\xff")
    if not trimmed:
        return None
    return trimmed[:-1] + bytes([trimmed[-1] + 1])


def _top_level(selector: dict[str, Any]) -> dict[str, Any]:
    """The selector's field conditions that every match meets (its members, and those of a
    top-level ``$and``); a field named twice keeps its first condition."""
    found: dict[str, Any] = {}
    for name, condition in selector.items():
        if name == "$and" and isinstance(condition, list):
            for each in condition:
                if isinstance(each, dict):
                    for inner, value in _top_level(each).items():
                        found.setdefault(inner, value)
        elif not name.startswith("$"):
            found.setdefault(name, condition)
    return found


def _is_operators(condition: Any) -> bool:
    return isinstance(condition, dict) and bool(condition) and all(k[:1] == "$" for k in condition)


def candidates(
    read_index: Callable[[Callable[[sqlite3.Connection], Any]], Any],
    read_db: Callable[[Callable[[sqlite3.Connection], Any]], Any],
    bounds: tuple[bytes, bytes | None],
    descending: bool,
) -> Iterator[dict[str, Any]]:
    """The documents of the index's rows in ``bounds``, in the index's order (or reversed),
    read a page at a time; a document deleted since the index was read is left out."""
    low, high = bounds
    after: tuple[bytes, str] | None = None
    while True:

        def page(conn: sqlite3.Connection, after: Any = after) -> list[tuple[bytes, str]]:
            return _page(conn, low, high, after, descending)

        ids = read_index(page)
        if not ids:
            return
        after = ids[-1]
        yield from read_db(functools.partial(_documents, ids=[doc_id for _, doc_id in ids]))


def _page(
    conn: sqlite3.Connection,
    low: bytes,
    high: bytes | None,
    after: tuple[bytes, str] | None,
    descending: bool,
) -> list[tuple[bytes, str]]:
    where: list[str] = ["view = 0", "sort >= ?"]
    args: list[Any] = [low]
    if high is not None:
        where.append("sort < ?")
        args.append(high)
    if after is not None:
        where.append("(sort, doc) < (?, ?)" if descending else "(sort, doc) > (?, ?)")
        args.extend(after)
    order = "DESC" if descending else "ASC"
    return conn.execute(
        f"SELECT sort, doc FROM rows WHERE {' AND '.join(where)} "
        f"ORDER BY sort {order}, doc {order} LIMIT {PAGE}",
        args,
    ).fetchall()


def _documents(conn: sqlite3.Connection, *, ids: list[str]) -> list[dict[str, Any]]:
    found = []
    for doc_id in ids:
        row = conn.execute("SELECT rev FROM docs WHERE id = ? AND deleted = 0", (doc_id,))
        rev = row.fetchone()
        if rev is not None:
            found.append(reads.document(conn, doc_id, rev[0], reads.DocOptions()))
    return found
