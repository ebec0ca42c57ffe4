"""``_purge``, ``_purged_infos`` and ``_purged_infos_limit``: forgetting revisions outright.

A purge removes leaves from a document's tree, with the ancestors no other leaf shares (the
whole document when no leaf is left), as if they had never been written, so no replicator
sends them again. As CouchDB 3.4 does it:

- each document asked about is one purge, with a ``purge_seq`` of its own, whether anything
  was removed or not; a request takes one ``update_seq`` at least;
- a document that keeps some leaves takes a new seq (``_changes`` shows its new winner), one
  whose every leaf went leaves ``_all_docs`` and ``_changes``;
- the purges are kept (table ``purges``), each with the seq it took; a view index reads those
  that removed a whole document, as it reads the documents written since its seq, and drops
  the document's rows (``views``);
- compaction forgets the purges past the newest ``_purged_infos_limit`` (CouchDB counts them
  per shard; the store has one), keeping those an index has still to read.
"""

from __future__ import annotations

import re
import sqlite3
import uuid
from typing import Any

from ..couch.errors import BadRequest
from ..couch.protocol import decode_json, encode_json
from . import edits, revs, tree
from .call import Call, MethodNotAllowed, UnsupportedMediaType
from .params import body_json
from .reply import Reply, json_reply

MAX_DOCUMENTS = 100  # CouchDB's [purge] max_document_id_number
MAX_REVISIONS = 1000  # CouchDB's [purge] max_revisions_number, over the whole request
DEFAULT_INFOS_LIMIT = 1000
# A rev as a purge takes it: a generation, then anything (a rev no tree holds is no error).
PURGE_REV = re.compile(r"^([0-9]+)-(.*)$", re.DOTALL)

SCHEMA = """
CREATE TABLE IF NOT EXISTS purges (
    purge_seq INTEGER PRIMARY KEY,
    uuid TEXT NOT NULL,
    id TEXT NOT NULL,
    revs TEXT NOT NULL,
    seq INTEGER NOT NULL,
    gone INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS purges_gone_by_seq ON purges (seq) WHERE gone = 1;
"""

Requests = list[tuple[str, list[str]]]


def purge(call: Call) -> Reply:
    """``POST /{db}/_purge`` with ``{"id": ["rev", …], …}``: 201 and what each lost."""
    if call.method != "POST":
        raise MethodNotAllowed("POST")
    if not call.headers.get("content-type", "").startswith("application/json"):
        raise UnsupportedMediaType("Content-Type must be application/json")
    asked = _requests(body_json(call.body))
    purged: dict[str, list[str]] = {}
    if asked:
        purged = call.store.write(call.db, lambda txn: apply(txn, asked)).result()
    return json_reply(201, {"purge_seq": None, "purged": purged})


def _requests(body: dict[str, Any]) -> Requests:
    """The purges a body asks for, each doc's revs normalised; CouchDB's 400s if malformed."""
    if len(body) > MAX_DOCUMENTS:
        raise BadRequest("bad_request", "Exceeded maximum number of documents.")
    asked = []
    for doc_id, given in body.items():
        if not isinstance(given, list):
            raise BadRequest("bad_request", "Invalid list of revisions")
        asked.append((doc_id, [_parse(rev) for rev in given]))
    if sum(len(given) for _, given in asked) > MAX_REVISIONS:
        raise BadRequest("bad_request", "Exceeded maximum number of revisions.")
    return asked


def _parse(rev: Any) -> str:
    match = PURGE_REV.match(rev) if isinstance(rev, str) else None
    if match is None:
        raise BadRequest("bad_request", "Invalid rev format")
    return f"{int(match[1])}-{match[2]}"


def apply(txn: edits.Txn, asked: Requests) -> dict[str, list[str]]:
    """Purge in the writer's transaction; per document, the revs removed (sorted)."""
    conn = txn.conn
    for statement in SCHEMA.split(";"):
        if statement.strip():
            conn.execute(statement)
    before = txn.seq
    purged: dict[str, list[str]] = {}
    gone: list[int] = []
    purge_seq = int(edits.meta(conn, "purge_seq", 0))
    for doc_id, given in asked:
        removed, left = _remove_leaves(conn, doc_id, given)
        purged[doc_id] = removed
        seq = 0
        if removed and left:
            seq = txn.next_seq()
            won = revs.winner(left)
            tree.cache_winner(conn, doc_id, won.rev, won.deleted, seq)
        elif removed:
            conn.execute("DELETE FROM docs WHERE id = ?", (doc_id,))
        purge_seq += 1
        if removed and not left:
            gone.append(purge_seq)
        kept = encode_json(_in_order(set(given))).decode()
        conn.execute(
            "INSERT INTO purges (purge_seq, uuid, id, revs, seq, gone) VALUES (?, ?, ?, ?, ?, 0)",
            (purge_seq, uuid.uuid4().hex, doc_id, kept, seq),
        )
    if txn.seq == before:
        txn.next_seq()  # a purge takes a seq even when no document keeps one
    conn.executemany(
        "UPDATE purges SET seq = ?, gone = 1 WHERE purge_seq = ?", [(txn.seq, n) for n in gone]
    )
    edits.set_meta(conn, "purge_seq", purge_seq)
    return purged


def _remove_leaves(
    conn: sqlite3.Connection, doc_id: str, given: list[str]
) -> tuple[list[str], list[revs.Rev]]:
    """Remove the leaves named in ``given``, and the ancestors only they had; the revs
    removed that were asked for (in rev order), and the leaves left."""
    revisions = tree.load(conn, doc_id)
    asked = {rev for rev in given if rev in revisions and revisions[rev].leaf}
    if not asked:
        return [], tree.leaves(revisions)
    children: dict[str | None, int] = {}
    for each in revisions.values():
        children[each.parent] = children.get(each.parent, 0) + 1
    dropped = []
    for leaf in asked:
        current: str | None = leaf
        while current is not None and current in revisions and children.get(current, 0) == 0:
            dropped.append(current)
            parent = revisions.pop(current).parent
            children[parent] = children.get(parent, 0) - 1
            current = parent
    conn.executemany("DELETE FROM revs WHERE doc = ? AND rev = ?", [(doc_id, r) for r in dropped])
    return _in_order(asked), tree.leaves(revisions)


def _in_order(given: set[str]) -> list[str]:
    """Revs in the order CouchDB lists a purge's: by generation, then id."""
    return sorted(given, key=lambda rev: (revs.generation(rev), rev))


def purged_infos(call: Call) -> Reply:
    """``GET /{db}/_purged_infos``: the purges kept, oldest first."""
    if call.method != "GET":
        raise MethodNotAllowed("GET")

    def read(conn: sqlite3.Connection) -> list[dict[str, Any]]:
        if not has_purges(conn):
            return []
        rows = conn.execute("SELECT id, revs FROM purges ORDER BY purge_seq")
        return [{"id": doc_id, "revs": decode_json(given)} for doc_id, given in rows]

    return json_reply(200, {"purged_infos": call.store.read(call.db, read)})


def infos_limit(call: Call) -> Reply:
    """``/{db}/_purged_infos_limit``: GET the number of purges kept, PUT a new one."""
    if call.method == "GET":
        value = call.store.read(
            call.db, lambda conn: int(edits.meta(conn, "purged_infos_limit", DEFAULT_INFOS_LIMIT))
        )
        return json_reply(200, value)
    if call.method != "PUT":
        raise MethodNotAllowed("GET,PUT")
    limit = body_json(call.body, want_object=False)
    if not isinstance(limit, int) or isinstance(limit, bool) or limit <= 0:
        raise BadRequest("bad_request", "`purged_infos_limit` must be positive integer")
    call.store.write(
        call.db, lambda txn: edits.set_meta(txn.conn, "purged_infos_limit", limit)
    ).result()
    return json_reply(200, {"ok": True})


def forget_beyond_limit(conn: sqlite3.Connection, indexed: int | None) -> None:
    """Forget the purges older than the newest ``_purged_infos_limit`` (a compaction's
    work), but those that removed a document after ``indexed``, the lowest seq an index
    has caught up with: that index has still to drop the document's rows."""
    if not has_purges(conn):
        return
    limit = int(edits.meta(conn, "purged_infos_limit", DEFAULT_INFOS_LIMIT))
    sql, params = "DELETE FROM purges WHERE purge_seq <= ?", [purge_seq(conn) - limit]
    if indexed is not None:
        sql += " AND (gone = 0 OR seq <= ?)"
        params.append(indexed)
    conn.execute(sql, params)


def purge_seq(conn: sqlite3.Connection) -> int:
    return int(edits.meta(conn, "purge_seq", 0))


def has_purges(conn: sqlite3.Connection) -> bool:
    """Whether the database was ever purged (a file made before purges has no table)."""
    return purge_seq(conn) > 0


def gone_between(conn: sqlite3.Connection, since: int, upto: int | None) -> list[tuple[int, str]]:
    """(seq, id) of the documents purged whole after seq ``since`` (up to ``upto``)."""
    if not has_purges(conn):
        return []
    sql = "SELECT seq, id FROM purges WHERE gone = 1 AND seq > ?"
    params: list[int] = [since]
    if upto is not None:
        sql += " AND seq <= ?"
        params.append(upto)
    return conn.execute(sql + " ORDER BY seq", params).fetchall()
