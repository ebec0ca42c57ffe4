"""``_compact``: what CouchDB's compaction drops, dropped from the store's file.

CouchDB keeps the bodies of a document's earlier revisions until the database is compacted;
then only the leaves keep theirs (older revisions stay in the tree, by id), and attachment
contents no leaf holds are gone, and so are the purges past ``_purged_infos_limit``. The
store does the same in one write, and SQLite reuses the space. A design document's index
(``_compact/{ddoc}``) has nothing to drop: SQLite keeps it compact as it goes.
"""

from __future__ import annotations

import contextlib
from typing import Any

from ..couch.protocol import decode_json
from . import design, files, purge, views
from .call import Call, MethodNotAllowed, UnsupportedMediaType
from .edits import Txn
from .reply import Reply, json_reply


def compact(call: Call) -> Reply:
    """``POST /{db}/_compact[/{ddoc}]``: 202 once done (CouchDB answers at once and
    compacts in the background; here the work is one write)."""
    if call.method != "POST":
        raise MethodNotAllowed("POST")
    if not call.headers.get("content-type", "").startswith("application/json"):
        raise UnsupportedMediaType("Content-Type must be application/json")
    if len(call.rest) == 1:
        indexed = _least_indexed_seq(call)

        def work(txn: Txn) -> None:
            _drop_old_bodies(txn)
            purge.forget_beyond_limit(txn.conn, indexed)

        call.store.write(call.db, work).result()
    return json_reply(202, {"ok": True})


def _least_indexed_seq(call: Call) -> int | None:
    """The lowest seq the database's current view indexes have caught up with (None: it
    has none on disk)."""
    current = call.store.read(call.db, design.signatures)
    directory = views.index_directory(call.store.directory, call.db)
    seqs = []
    for signature in current:
        path = directory / f"{signature}.sqlite"
        with (
            contextlib.suppress(FileNotFoundError),
            contextlib.closing(files.connect(path)) as conn,
        ):
            seqs.append(views.indexed_seq(conn))
    return min(seqs, default=None)


def _drop_old_bodies(txn: Txn) -> None:
    conn = txn.conn
    conn.execute("UPDATE revs SET body = NULL WHERE leaf = 0 AND body IS NOT NULL")
    held: set[str] = set()
    for (body,) in conn.execute("SELECT body FROM revs WHERE body LIKE '%\"_attachments\"%'"):
        atts: dict[str, Any] = decode_json(body).get("_attachments") or {}
        held.update(att["digest"] for att in atts.values() if "digest" in att)
    for (digest,) in conn.execute("SELECT digest FROM blobs").fetchall():
        if digest not in held:
            conn.execute("DELETE FROM blobs WHERE digest = ?", (digest,))
