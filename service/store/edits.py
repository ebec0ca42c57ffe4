"""Writing documents inside the writer's transaction: edits, replicated revisions, ``_local``.

An interactive edit (``new_edits=true``) must name a leaf of the tree as its parent, or name
none when the document is new or deleted; anything else is a 409 conflict. A replicated
revision (``new_edits=false``) is grafted where its ``_revisions`` history meets the tree,
whatever the tree holds: that is how conflicts arrive. Each document written takes the next
seq, and its row in ``docs`` is brought up to date.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from typing import Any

from ..couch.errors import BadRequest, Conflict, NotFound
from ..couch.protocol import encode_json
from . import attachments, revs, tree

DEFAULT_REVS_LIMIT = 1000
# The replicator's members of a document, kept as its own fields in any database, as CouchDB
# keeps them (the state of a ``_replicator`` document).
KEPT = frozenset(
    {
        "_replication_id",
        "_replication_state",
        "_replication_state_time",
        "_replication_state_reason",
        "_replication_stats",
    }
)
# Members a client may send in a document besides its own fields; only _attachments is kept.
SPECIAL = KEPT | frozenset(
    {
        "_id",
        "_rev",
        "_deleted",
        "_attachments",
        "_revisions",
        "_conflicts",
        "_deleted_conflicts",
        "_local_seq",
        "_revs_info",
    }
)


class Txn:
    """One database's share of a writer transaction: its connection, and its seqs."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.revs_limit = int(meta(conn, "revs_limit", DEFAULT_REVS_LIMIT))
        self._seq = self._recorded = int(meta(conn, "update_seq", 0))

    @property
    def seq(self) -> int:
        """The last seq given out (the database's ``update_seq`` once committed)."""
        return self._seq

    def next_seq(self) -> int:
        """The next seq. A job rolled back leaves a gap, as a seq is never given twice."""
        self._seq += 1
        return self._seq

    def finish(self) -> None:
        """Record the last seq given out: once per transaction, just before its commit."""
        if self._seq != self._recorded:
            set_meta(self.conn, "update_seq", self._seq)
            self._recorded = self._seq


def meta(conn: sqlite3.Connection, key: str, default: Any) -> Any:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return default if row is None else row[0]


def set_meta(conn: sqlite3.Connection, key: str, value: Any) -> None:
    conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))


def user_body(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The document's own fields; 400 ``doc_validation`` for an unknown ``_`` member."""
    body = {}
    for key, value in doc.items():
        if key.startswith("_") and key not in KEPT:
            if key not in SPECIAL:
                raise BadRequest("doc_validation", f"Bad special document member: {key}")
        else:
            body[key] = value
    return body


def edit(
    txn: Txn,
    doc_id: str,
    doc: Mapping[str, Any],
    base: str | None,
    *,
    kept_attachments: bool = False,
) -> str:
    """Write a new revision of ``doc_id`` on top of ``base`` (a leaf's rev, or None for a
    new or deleted document) and return its rev; Conflict if ``base`` is not allowed.
    Unless the document has ``_attachments`` (their content is stored as they are checked),
    whatever it raises, it raises before writing anything: ``_bulk_docs`` counts on that.

    ``kept_attachments``: ``doc["_attachments"]`` is stored metadata already (a copy's),
    not what a client sends."""
    won = None
    if base is None:
        won = txn.conn.execute("SELECT rev, deleted FROM docs WHERE id = ?", (doc_id,)).fetchone()
        if won is not None:
            if not won[1]:
                raise Conflict("conflict", "Document update conflict.")
            base = won[0]
    else:
        revs.parse(base)
        found = tree.one(txn.conn, doc_id, base)
        if found is None or not found.leaf:
            raise Conflict("conflict", "Document update conflict.")
    deleted = bool(doc.get("_deleted"))
    stored = user_body(doc)
    generation = revs.generation(base) + 1 if base else 1
    parents = [base] if base else []
    if kept_attachments:
        atts = dict(doc["_attachments"])
    else:
        atts = attachments.prepare(txn.conn, doc_id, doc.get("_attachments"), parents, generation)
    if atts:
        stored["_attachments"] = atts
    text = encode_json(stored)
    rev = revs.new_rev(base, deleted, text)
    seq = txn.next_seq()
    _insert(txn.conn, doc_id, rev, base, deleted, seq, text)
    if base is None and won is None:  # a new document: its one revision wins
        tree.cache_winner(txn.conn, doc_id, rev, deleted, seq)
    else:
        tree.settle(txn.conn, doc_id, seq, txn.revs_limit)
    return rev


def graft(txn: Txn, doc_id: str, doc: Mapping[str, Any]) -> str:
    """Store a replicated revision as given (``new_edits=false``), with the ancestors its
    ``_revisions`` names, and return its rev; nothing happens if the tree already has it."""
    if "_revisions" in doc:
        path = revs.history(doc["_revisions"])
    elif isinstance(doc.get("_rev"), str):
        revs.parse(doc["_rev"])
        path = [doc["_rev"]]
    else:
        raise BadRequest("bad_request", "Document must have a _rev when new_edits is false")
    known = tree.load(txn.conn, doc_id)
    if path[0] in known:
        return path[0]
    meets = next((i for i, rev in enumerate(path) if rev in known), len(path))
    parent = path[meets] if meets < len(path) else None
    deleted = bool(doc.get("_deleted"))
    stored = user_body(doc)
    atts = attachments.prepare(
        txn.conn, doc_id, doc.get("_attachments"), path[1:], revs.generation(path[0])
    )
    if atts:
        stored["_attachments"] = atts
    seq = txn.next_seq()
    text = encode_json(stored)
    for ancestor in reversed(path[1:meets]):
        txn.conn.execute(
            "INSERT INTO revs (doc, rev, parent, deleted, leaf, seq, body) "
            "VALUES (?, ?, ?, 0, 0, ?, NULL)",
            (doc_id, ancestor, parent, seq),
        )
        parent = ancestor
    _insert(txn.conn, doc_id, path[0], parent, deleted, seq, text)
    tree.settle(txn.conn, doc_id, seq, txn.revs_limit)
    return path[0]


def _insert(
    conn: sqlite3.Connection,
    doc_id: str,
    rev: str,
    parent: str | None,
    deleted: bool,
    seq: int,
    body: bytes,
) -> None:
    """A new leaf revision (``body``: its JSON); its parent is a leaf no more."""
    conn.execute(
        "INSERT INTO revs (doc, rev, parent, deleted, leaf, seq, body) "
        "VALUES (?, ?, ?, ?, 1, ?, ?)",
        (doc_id, rev, parent, deleted, seq, body.decode()),
    )
    if parent is not None:
        conn.execute("UPDATE revs SET leaf = 0 WHERE doc = ? AND rev = ?", (doc_id, parent))


def put_local(
    conn: sqlite3.Connection, doc_id: str, doc: Mapping[str, Any], base: str | None
) -> str:
    """Write (or, with ``_deleted``, remove) a ``_local`` document. It has no tree: as in
    CouchDB 3.4, its rev is a counter one past the rev given (``0-1`` when none is), and a
    stale rev is no conflict. What it raises, it raises before writing anything."""
    if doc.get("_deleted"):
        if conn.execute("DELETE FROM local WHERE id = ?", (doc_id,)).rowcount == 0:
            raise NotFound("not_found", "missing")
        return "0-0"
    given, _, number = (base or "0-0").partition("-")
    if given != "0" or not number.isdigit():
        raise BadRequest("bad_request", "Invalid rev format")
    rev = int(number) + 1
    body = encode_json(user_body(doc)).decode()
    conn.execute(
        "INSERT OR REPLACE INTO local (id, rev, body) VALUES (?, ?, ?)", (doc_id, rev, body)
    )
    return f"0-{rev}"
