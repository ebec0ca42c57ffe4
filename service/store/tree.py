"""Reading a document's revision tree, and keeping its cached winner, inside a connection.

``docs`` caches each document's winning revision and the seq of its last write; ``revs``
holds every revision. Both are kept in step by ``settle``, which every edit calls.

A document edited a thousand times has a thousand revisions (up to ``revs_limit``), so the
common paths read only what they need: one revision (``one``), the leaves (``leaves_of``),
the span of generations (``settle``'s stemming check); the whole tree is loaded only for
what needs the whole (``_revisions``, ``_revs_info``, ``latest``, stemming, grafting).
"""

from __future__ import annotations

import sqlite3
from typing import Any

from ..couch.protocol import decode_json
from . import revs
from .revs import Rev

Tree = dict[str, Rev]


def load(conn: sqlite3.Connection, doc_id: str) -> Tree:
    """Every revision of ``doc_id`` the database holds (empty if it has none)."""
    rows = conn.execute(
        "SELECT rev, parent, deleted, leaf, body IS NOT NULL FROM revs WHERE doc = ?", (doc_id,)
    )
    return {
        rev: Rev(rev, parent, bool(deleted), bool(leaf), bool(available))
        for rev, parent, deleted, leaf, available in rows
    }


def leaves(tree: Tree) -> list[Rev]:
    return [rev for rev in tree.values() if rev.leaf]


def leaves_of(conn: sqlite3.Connection, doc_id: str) -> list[Rev]:
    """The leaves of ``doc_id``'s tree, read without the rest of it."""
    rows = conn.execute(
        "SELECT rev, parent, deleted, body IS NOT NULL FROM revs WHERE doc = ? AND leaf = 1",
        (doc_id,),
    )
    return [
        Rev(rev, parent, bool(deleted), True, bool(available))
        for rev, parent, deleted, available in rows
    ]


def one(conn: sqlite3.Connection, doc_id: str, rev: str) -> Rev | None:
    """Revision ``rev`` of ``doc_id``, or None if the tree does not hold it."""
    row = conn.execute(
        "SELECT parent, deleted, leaf, body IS NOT NULL FROM revs WHERE doc = ? AND rev = ?",
        (doc_id, rev),
    ).fetchone()
    if row is None:
        return None
    parent, deleted, leaf, available = row
    return Rev(rev, parent, bool(deleted), bool(leaf), bool(available))


def body(conn: sqlite3.Connection, doc_id: str, rev: str) -> dict[str, Any] | None:
    """The stored body of one revision, or None if the database has only its id."""
    row = conn.execute("SELECT body FROM revs WHERE doc = ? AND rev = ?", (doc_id, rev)).fetchone()
    return decode_json(row[0]) if row and row[0] is not None else None


def settle(conn: sqlite3.Connection, doc_id: str, seq: int, revs_limit: int) -> None:
    """After an edit: stem branches longer than ``revs_limit``, then cache the winner and
    ``seq`` in the document's row."""
    low, high = conn.execute(
        "SELECT MIN(g), MAX(g) FROM (SELECT CAST(substr(rev, 1, instr(rev, '-') - 1) "
        "AS INTEGER) AS g FROM revs WHERE doc = ?)",
        (doc_id,),
    ).fetchone()
    if high - low >= revs_limit:
        _stem(conn, doc_id, load(conn, doc_id), revs_limit)
    won = revs.winner(leaves_of(conn, doc_id))
    cache_winner(conn, doc_id, won.rev, won.deleted, seq)


def cache_winner(conn: sqlite3.Connection, doc_id: str, rev: str, deleted: bool, seq: int) -> None:
    """The document's row: its winning revision and the seq of its last write."""
    conn.execute(
        "INSERT INTO docs (id, rev, deleted, seq) VALUES (?, ?, ?, ?) ON CONFLICT (id) "
        "DO UPDATE SET rev = excluded.rev, deleted = excluded.deleted, seq = excluded.seq",
        (doc_id, rev, deleted, seq),
    )


def _stem(conn: sqlite3.Connection, doc_id: str, tree: Tree, limit: int) -> None:
    """Forget revisions more than ``limit`` generations behind every leaf, as CouchDB does;
    the oldest revision kept on each branch becomes a root."""
    kept: set[str] = set()
    for leaf in leaves(tree):
        kept.update(revs.path_of(tree, leaf.rev)[:limit])
    gone = {rev for rev in tree if rev not in kept}
    conn.executemany("DELETE FROM revs WHERE doc = ? AND rev = ?", [(doc_id, r) for r in gone])
    conn.executemany(
        "UPDATE revs SET parent = NULL WHERE doc = ? AND rev = ?",
        [(doc_id, r) for r in kept if tree[r].parent in gone],
    )
    for rev in gone:
        del tree[rev]
