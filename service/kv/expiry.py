"""The expiry index, and removing expired keys through it.

Readers check expiry themselves (see ``ops``), so an expired key is gone for them at once;
removing its document is housekeeping, done without reading every document: the design
document ``_design/kv`` has a view of the keys that expire, by expiry time, and ``reap``
asks it for the rows up to now (``endkey=now``) and deletes those documents in one
``_bulk_docs`` per batch. The view's value is the rev it saw, so a key written again since
(a new ttl, ``touch``) makes that delete conflict and survives: nothing live is removed.

The design document is a database admin's to write (CouchDB 3): a Bucket installs it with
its first write that has a ttl, when its credentials allow, and its presence is what lets
settee's own reaper into the database.
"""

from __future__ import annotations

import time

from service.couch.client import Database
from service.couch.conflicts import Flow
from service.couch.errors import Conflict, Forbidden, NotFound, Unauthorized
from service.couch.protocol import Request, doc_path, json_body

INDEX_ID = "_design/kv"
EXPIRES_VIEW = "kv/expires"
MAP = (
    'function (doc) { var kv = doc["~kv"];'
    ' if (kv && typeof kv.expires === "number") { emit(kv.expires, doc._rev); } }'
)
INDEX = {"language": "javascript", "views": {"expires": {"map": MAP}}}
BATCH = 500
MAX_BATCHES = 100


def install(db: Database) -> Flow[bool]:
    """Create the expiry index unless it is there: whether it is there now (False when these
    credentials may not write design documents)."""
    body, headers = json_body(INDEX)
    try:
        yield Request("PUT", doc_path(db.name, INDEX_ID), {}, headers, body)
    except Conflict:
        return True
    except (Forbidden, Unauthorized):
        return False
    return True


def reap(db: Database, now: float | None = None, batch: int = BATCH) -> Flow[int]:
    """Delete the documents of keys expired by ``now``; how many. 0 without the index."""
    now = time.time() if now is None else now
    removed = 0
    for _ in range(MAX_BATCHES):
        try:
            view = yield from Database.view.__wrapped__(db, EXPIRES_VIEW, endkey=now, limit=batch)
        except NotFound:
            return removed
        docs = [{"_id": row.id, "_rev": row.value, "_deleted": True} for row in view]
        if not docs:
            break
        answers = yield from Database.bulk_docs.__wrapped__(db, docs)
        done = sum("error" not in answer for answer in answers)
        removed += done
        if len(docs) < batch or done == 0:
            break
    return removed
