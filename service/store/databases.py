"""Server and database endpoints: ``/``, ``/_all_dbs``, ``/_uuids``, and
``/{db}`` with its small settings (``_revs_limit``, ``_security``, ``_ensure_full_commit``)."""

from __future__ import annotations

import uuid
from typing import Any

from ..couch.errors import BadRequest, Forbidden
from ..couch.protocol import decode_json, encode_json
from . import edits, files, purge, queries
from .call import Call, MethodNotAllowed
from .params import body_json, flag, integer, json_value
from .reply import Reply, json_reply
from .users import USERS_DB

VERSION = "3.4.3"  # the CouchDB whose answers the store gives
VENDOR = {"name": "settee", "embedded": True}


def welcome(call: Call) -> Reply:
    return json_reply(
        200,
        {
            "couchdb": "Welcome",
            "version": VERSION,
            "uuid": call.store.uuid,
            "features": [],
            "vendor": VENDOR,
        },
    )


def all_dbs(call: Call) -> Reply:
    names = call.store.names()
    if flag(call.query, "descending"):
        names.reverse()
    if "startkey" in call.query or "start_key" in call.query:
        start = json_value(call.query, "startkey" if "startkey" in call.query else "start_key")
        names = [n for n in names if (n <= start if flag(call.query, "descending") else n >= start)]
    skip = integer(call.query, "skip", 0) or 0
    limit = integer(call.query, "limit")
    names = names[skip:]
    return json_reply(200, names if limit is None else names[:limit])


def uuids(call: Call) -> Reply:
    count = integer(call.query, "count", 1) or 1
    if count > 1000:
        raise BadRequest("bad_request", "count parameter too large")
    return json_reply(200, {"uuids": [uuid.uuid4().hex for _ in range(count)]})


def active_tasks(call: Call) -> Reply:
    """The replications this process runs: continuous ``_replicate`` ones, and those of
    ``_replicator`` documents (the store compacts and indexes in the requests that ask)."""
    jobs = [*call.store.replications.running(), *call.store.scheduler.running()]
    return json_reply(200, [job.task() for job in jobs])


def database(call: Call) -> Reply:
    """``/{db}``: PUT creates, GET tells, DELETE deletes (POST, a document, is routed apart)."""
    if call.method == "PUT":
        call.store.create(call.db)
        return json_reply(201, {"ok": True}, {"location": f"/{call.db}"})
    if call.method == "DELETE":
        call.store.delete(call.db)
        return json_reply(200, {"ok": True})
    if call.method == "GET":
        return json_reply(200, call.store.read(call.db, lambda conn: _info(call, conn)))
    raise MethodNotAllowed("DELETE,GET,HEAD,POST,PUT")


def _info(call: Call, conn: Any) -> dict[str, Any]:
    live, dead = queries.counts(conn)
    size = files.file_of(call.store.directory, call.db).stat().st_size
    return {
        "instance_start_time": "0",
        "db_name": call.db,
        "purge_seq": purge.purge_seq(conn),
        "update_seq": queries.update_seq(conn),
        "sizes": {"file": size, "external": 0, "active": size},
        "props": {},
        "doc_del_count": dead,
        "doc_count": live,
        "disk_format_version": 8,
        "compact_running": False,
        "cluster": {"q": 1, "n": 1, "w": 1, "r": 1},
    }


def ensure_full_commit(call: Call) -> Reply:
    """Every acknowledged write is already on disk: nothing to do but say so."""
    if call.method != "POST":
        raise MethodNotAllowed("POST")
    call.store.database(call.db)
    return json_reply(201, {"ok": True, "instance_start_time": "0"})


def revs_limit(call: Call) -> Reply:
    if call.method == "GET":
        value = call.store.read(
            call.db, lambda conn: int(edits.meta(conn, "revs_limit", edits.DEFAULT_REVS_LIMIT))
        )
        return json_reply(200, value)
    if call.method != "PUT":
        raise MethodNotAllowed("GET,PUT")
    limit = body_json(call.body, want_object=False)
    if not isinstance(limit, int) or isinstance(limit, bool) or limit <= 0:
        raise BadRequest("bad_request", "`revs_limit` must be a positive integer")
    call.store.write(call.db, lambda txn: edits.set_meta(txn.conn, "revs_limit", limit)).result()
    return json_reply(200, {"ok": True})


def security(call: Call) -> Reply:
    """The ``_security`` object (``access`` enforces it); ``_users``'s is fixed, as CouchDB's
    ``users_db_security_editable = false`` keeps it."""
    if call.method == "GET":
        text = call.store.read(call.db, lambda conn: edits.meta(conn, "security", "{}"))
        return json_reply(200, decode_json(text))
    if call.method != "PUT":
        raise MethodNotAllowed("GET,PUT")
    if call.db == USERS_DB:
        raise Forbidden("forbidden", "You can't edit the security object of the user database.")
    value = encode_json(body_json(call.body)).decode()
    call.store.write(call.db, lambda txn: edits.set_meta(txn.conn, "security", value)).result()
    return json_reply(200, {"ok": True})
