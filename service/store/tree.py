"""Reading a document's revision tree, and keeping its cached winner, inside a connection.

``docs`` caches each document's winning revision and the seq of its last write; ``revs``
holds every revision. Both are kept in step by ``settle``, which every edit calls.
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


def body(conn: sqlite3.Connection, doc_id: str, rev: str) -> dict[str, Any] | None:
    """The stored body of one revision, or None if the database has only its id."""
    row = conn.execute("SELECT body FROM revs WHERE doc = ? AND rev = ?", (doc_id, rev)).fetchone()
    return decode_json(row[0]) if row and row[0] is not None else None


def settle(conn: sqlite3.Connection, doc_id: str, seq: int, revs_limit: int) -> None:
    """After an edit: stem branches longer than ``revs_limit``, then cache the winner and
    ``seq`` in the document's row."""
    tree = load(conn, doc_id)
    _stem(conn, doc_id, tree, revs_limit)
    won = revs.winner(leaves(tree))
    conn.execute(
        "INSERT INTO docs (id, rev, deleted, seq) VALUES (?, ?, ?, ?) ON CONFLICT (id) "
        "DO UPDATE SET rev = excluded.rev, deleted = excluded.deleted, seq = excluded.seq",
        (doc_id, won.rev, won.deleted, seq),
    )


def _stem(conn: sqlite3.Connection, doc_id: str, tree: Tree, limit: int) -> None:
    """Forget revisions more than ``limit`` generations behind every leaf, as CouchDB does;
    the oldest revision kept on each branch becomes a root."""
    generations = [rev.generation for rev in tree.values()]
    if max(generations) - min(generations) < limit:
        return
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
