"""Design documents' endpoints: ``_view``, ``_info``, and ``_view_cleanup`` of a database.

The views of a design document are read from the database at each query (one small read),
so that an edited design document is queried at once with its new functions, from an index
of its new signature.
"""

from __future__ import annotations

from typing import Any

from ..couch.errors import HTTPError, NotFound
from . import collation, jsonindex, viewquery, views
from .call import Call, MethodNotAllowed, NotImplementedYet
from .reply import Reply, json_reply


def route(call: Call, ddoc_id: str, rest: list[str]) -> Reply:
    """``/db/_design/name/_...``: the design document's endpoints."""
    kind = rest[0]
    if kind == "_view" and len(rest) in (2, 3):
        if len(rest) == 3 and rest[2] != "queries":
            raise NotFound("not_found", "missing")
        design = call.store.design(call.db, ddoc_id)
        view = design.view(rest[1])
        index = call.store.index(call.db, design)
        answer = viewquery.query_views if len(rest) == 3 else viewquery.query_view
        return answer(call, design, index, view)
    if kind == "_info" and len(rest) == 1:
        return info(call, ddoc_id)
    if kind in ("_show", "_list", "_update", "_rewrite"):
        raise NotImplementedYet(
            "not_implemented", "show, list, update and rewrite functions are not in the store"
        )
    raise NotFound("not_found", "missing")


def info(call: Call, ddoc_id: str) -> Reply:
    """``_info``: the design document's index, as CouchDB describes it."""
    if call.method != "GET":
        raise MethodNotAllowed("GET")
    design = call.store.read(call.db, lambda conn: views.read_design(conn, ddoc_id))
    index = call.store.index(call.db, design)
    size = index.path.stat().st_size if index.path.exists() else 0
    described: dict[str, Any] = {
        "signature": design.signature,
        "language": "javascript",
        "sizes": {"file": size, "external": size, "active": size},
        "update_seq": index.seq(),
        "purge_seq": 0,
        "updater_running": False,
        "compact_running": False,
        "waiting_clients": 0,
        "waiting_commit": False,
        "collator_versions": [collation.COLLATOR],
    }
    return json_reply(200, {"name": ddoc_id.removeprefix("_design/"), "view_index": described})


def cleanup(call: Call) -> Reply:
    """``_view_cleanup``: delete the index files no design document uses any more."""
    if call.method != "POST":
        raise MethodNotAllowed("POST")
    current = call.store.read(call.db, signatures)
    call.store.drop_indexes(call.db, keep=current)
    return json_reply(202, {"ok": True})


def signatures(conn: Any) -> set[str]:
    """The signatures of the indexes the database's design documents define now."""
    found = {index.design.signature for index in jsonindex.indexes_of(conn)}
    for (ddoc_id,) in conn.execute(
        "SELECT id FROM docs WHERE id >= '_design/' AND id < '_design0' AND deleted = 0"
    ):
        try:
            found.add(views.read_design(conn, ddoc_id).signature)
        except HTTPError:  # a design document without views it can build keeps no index
            continue
    return found
