"""``_all_docs``, ``_changes`` and a database's info, read from the ``docs`` table.

Document ids sort as CouchDB's ``_all_docs`` sorts them: by code point (SQLite's binary
collation of UTF-8). Seqs are integers, one per document write, in commit order.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import edits, reads, revs, tree

UNBOUNDED = object()
# The range of design documents' ids, as CouchDB bounds ``_design_docs`` (couch_db's
# FIRST_DDOC_KEY and LAST_DDOC_KEY): every id that starts with "_design/".
FIRST_DESIGN, LAST_DESIGN = "_design/", "_design0"


@dataclass(frozen=True, slots=True)
class AllDocs:
    """The options of an ``_all_docs`` query."""

    keys: list[Any] | None = None
    start: Any = UNBOUNDED
    end: Any = UNBOUNDED
    inclusive_end: bool = True
    descending: bool = False
    skip: int = 0
    limit: int | None = None
    include_docs: bool = False
    doc: reads.DocOptions = field(default_factory=reads.DocOptions)
    design_only: bool = False  # ``_design_docs``: the design documents' share of the range

    def first(self) -> Any:
        """Where the range starts, in its direction: ``start``, within the design range
        when ``design_only`` (UNBOUNDED: from the first id)."""
        if not self.design_only:
            return self.start
        edge = LAST_DESIGN if self.descending else FIRST_DESIGN
        if self.start is UNBOUNDED or not isinstance(self.start, str):
            return edge
        return min(self.start, edge) if self.descending else max(self.start, edge)


def counts(conn: sqlite3.Connection) -> tuple[int, int]:
    """Documents that are live, and deleted."""
    live, dead = conn.execute(
        "SELECT COUNT(*) - COALESCE(SUM(deleted), 0), COALESCE(SUM(deleted), 0) FROM docs"
    ).fetchone()
    return live, dead


def update_seq(conn: sqlite3.Connection) -> int:
    return int(edits.meta(conn, "update_seq", 0))


def design_count(conn: sqlite3.Connection) -> int:
    """Design documents that are live: ``_design_docs``'s ``total_rows``."""
    return conn.execute(
        "SELECT COUNT(*) FROM docs WHERE deleted = 0 AND id >= ? AND id < ?",
        (FIRST_DESIGN, LAST_DESIGN),
    ).fetchone()[0]


def total_rows(conn: sqlite3.Connection, query: AllDocs) -> int:
    return design_count(conn) if query.design_only else counts(conn)[0]


def all_docs(conn: sqlite3.Connection, query: AllDocs) -> dict[str, Any]:
    """The whole ``_all_docs`` answer of ``keys``: ``total_rows``, ``offset``, ``rows``.
    A range is read in pages instead (``all_docs_head``, then ``all_docs_rows``).
    ``_design_docs`` leaves out the keys that are no design document's id, as CouchDB does."""
    keys = query.keys or []
    if query.design_only:
        keys = [key for key in keys if isinstance(key, str) and key.startswith(FIRST_DESIGN)]
    rows = [_keyed_row(conn, key, query) for key in (keys[::-1] if query.descending else keys)]
    rows = rows[query.skip :]
    if query.limit is not None:
        rows = rows[: query.limit]
    return {"total_rows": total_rows(conn, query), "offset": None, "rows": rows}


def all_docs_head(conn: sqlite3.Connection, query: AllDocs) -> tuple[int, int]:
    """A range's ``total_rows`` and ``offset``: the live documents before its first row,
    every document counted (CouchDB caps a ``_design_docs`` offset at its ``total_rows``)."""
    offset = 0
    first = query.first()
    if first is not UNBOUNDED:
        before = ">" if query.descending else "<"
        offset = conn.execute(
            f"SELECT COUNT(*) FROM docs WHERE deleted = 0 AND id {before} ?", (first,)
        ).fetchone()[0]
    total = total_rows(conn, query)
    offset += query.skip
    return total, min(total, offset) if query.design_only else offset


def all_docs_rows(
    conn: sqlite3.Connection, query: AllDocs, after: Any, count: int
) -> list[dict[str, Any]]:
    """At most ``count`` rows of a range, those past the id ``after`` (UNBOUNDED: from the
    range's start, ``skip`` applied)."""
    before_op, after_op = (">", "<") if query.descending else ("<", ">")
    where, params = ["deleted = 0"], []
    if query.start is not UNBOUNDED:
        where.append(f"id {after_op}= ?")
        params.append(query.start)
    if query.end is not UNBOUNDED:
        where.append(f"id {before_op}{'=' if query.inclusive_end else ''} ?")
        params.append(query.end)
    if query.design_only:
        where.append("id >= ? AND id < ?")
        params.extend((FIRST_DESIGN, LAST_DESIGN))
    skip = query.skip
    if after is not UNBOUNDED:
        where.append(f"id {after_op} ?")
        params.append(after)
        skip = 0
    order = "DESC" if query.descending else "ASC"
    found = conn.execute(
        f"SELECT id, rev FROM docs WHERE {' AND '.join(where)} ORDER BY id {order} "
        "LIMIT ? OFFSET ?",
        (*params, count, skip),
    ).fetchall()
    rows = []
    for doc_id, rev in found:
        row: dict[str, Any] = {"id": doc_id, "key": doc_id, "value": {"rev": rev}}
        if query.include_docs:
            row["doc"] = reads.document(conn, doc_id, rev, query.doc)
        rows.append(row)
    return rows


def _keyed_row(conn: sqlite3.Connection, key: Any, query: AllDocs) -> dict[str, Any]:
    found = None
    if isinstance(key, str):
        found = conn.execute("SELECT rev, deleted FROM docs WHERE id = ?", (key,)).fetchone()
    if found is None:
        return {"key": key, "error": "not_found"}
    rev, deleted = found
    row: dict[str, Any] = {"id": key, "key": key, "value": {"rev": rev}}
    if deleted:
        row["value"]["deleted"] = True
    if query.include_docs:
        row["doc"] = None if deleted else reads.document(conn, key, rev, query.doc)
    return row


@dataclass(frozen=True, slots=True)
class Changes:
    """The options of a ``_changes`` read."""

    since: int = 0
    limit: int | None = None
    descending: bool = False
    doc_ids: frozenset[str] | None = None
    design_only: bool = False
    all_leaves: bool = False
    include_docs: bool = False
    doc: reads.DocOptions = field(default_factory=reads.DocOptions)
    # A filter function: which of these rows (read in this connection) pass it
    keep: Callable[[sqlite3.Connection, list[dict[str, Any]]], list[bool]] | None = None


def changes_page(
    conn: sqlite3.Connection, query: Changes, batch: int
) -> tuple[list[dict[str, Any]], int]:
    """At most ``batch`` change rows after ``query.since`` that pass its filter, and the seq
    read up to: past the rows a filter dropped, so that a feed moves on from them."""
    if query.keep is None:
        rows = changes(conn, query, batch)
        return rows, rows[-1]["seq"] if rows else query.since
    kept: list[dict[str, Any]] = []
    since = query.since
    while len(kept) < batch:
        rows = changes(conn, dataclasses.replace(query, since=since, limit=None), batch)
        if not rows:
            break
        for row, passes in zip(rows, query.keep(conn, rows), strict=True):
            since = row["seq"]
            if passes:
                kept.append(row)
                if len(kept) == batch:
                    break
    return kept, since


def changes(conn: sqlite3.Connection, query: Changes, batch: int | None = None) -> list[dict]:
    """The change rows after ``query.since`` (before it, descending), at most ``batch`` or
    ``query.limit`` of them: one row per document, at the seq of its last write."""
    where: list[str] = ["seq < ?" if query.descending else "seq > ?"]
    params: list[int | str] = [query.since]
    if query.descending and query.since == 0:
        where, params = [], []
    if query.doc_ids is not None:
        where.append(f"id IN ({','.join('?' * len(query.doc_ids))})")
        params.extend(query.doc_ids)
    if query.design_only:
        where.append("id >= '_design/' AND id < '_design0'")
    limits = [n for n in (batch, query.limit) if n is not None]
    sql = "SELECT seq, id, rev, deleted FROM docs"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += f" ORDER BY seq {'DESC' if query.descending else 'ASC'} LIMIT ?"
    found = conn.execute(sql, (*params, min(limits) if limits else -1)).fetchall()
    return [_change(conn, query, *row) for row in found]


def _change(
    conn: sqlite3.Connection, query: Changes, seq: int, doc_id: str, rev: str, deleted: int
) -> dict[str, Any]:
    row: dict[str, Any] = {"seq": seq, "id": doc_id}
    if query.all_leaves:
        leaves = revs.ranked(tree.leaves_of(conn, doc_id))
        row["changes"] = [{"rev": leaf.rev} for leaf in leaves]
    else:
        row["changes"] = [{"rev": rev}]
    if deleted:
        row["deleted"] = True
    if query.include_docs:
        chosen = tree.one(conn, doc_id, rev)
        row["doc"] = None if chosen is None else reads.show(conn, doc_id, None, chosen, query.doc)
    return row


def pending(conn: sqlite3.Connection, after: int) -> int:
    """How many documents changed after seq ``after``."""
    return conn.execute("SELECT COUNT(*) FROM docs WHERE seq > ?", (after,)).fetchone()[0]
