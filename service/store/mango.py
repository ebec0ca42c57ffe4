"""Mango: ``_find``, ``_index`` and ``_explain`` with CouchDB 3.4's answers.

A json index is CouchDB's design document (``"language": "query"``), so indexes replicate and
list as CouchDB's do. The store decides with them what CouchDB decides: which index a query
uses (``mangoplan``) and so the order of the answer (the index's fields, then ``_id``; with
no index, ``_id`` and CouchDB's warning); a partial index holds only the documents its
selector matches. With an index, only the documents of the key range the selector allows are
read (``jsonindex``); each is then checked against the whole selector (``selectors``).
``_explain`` shows what CouchDB's shows (``mangoexplain``), the selector in CouchDB's normal
form (``normalize``).
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
from collections.abc import Iterator
from typing import Any

from ..couch.errors import BadRequest, NotFound, ServerError
from ..couch.protocol import decode_json, encode_json
from . import edits, jsonindex, mangoexplain, mangoplan, queries, reads, selectors
from .call import Call, MethodNotAllowed
from .erlterm import term
from .jsonindex import JsonIndex
from .normalize import normalized
from .params import body_json
from .replicator import REPLICATOR_DB, readable
from .reply import Reply, json_reply

INDEX_KEYS = {"index", "ddoc", "name", "type", "partitioned", "w"}
DEFINITION_KEYS = {"fields", "partial_filter_selector"}
SEARCH_TYPES = ("text", "nouveau")  # indexes of a search service, which the store has not
PAGE = 1000


def _indexes(call: Call) -> list[JsonIndex]:
    return call.store.read(call.db, jsonindex.indexes_of)


def _documents(call: Call) -> Iterator[dict[str, Any]]:
    """Every live document but the design documents, by ``_id``, a page a read."""
    after = ""
    while True:

        def page(conn: Any, after: str = after) -> list[dict[str, Any]]:
            rows = conn.execute(
                "SELECT id, rev FROM docs WHERE deleted = 0 AND id > ? ORDER BY id LIMIT ?",
                (after, PAGE),
            ).fetchall()
            return [reads.document(conn, i, r, reads.DocOptions()) for i, r in rows]

        docs = call.store.read(call.db, page)
        if not docs:
            return
        for doc in docs:
            if not doc["_id"].startswith("_design/"):
                yield doc
        after = docs[-1]["_id"]


def _projected(doc: dict[str, Any], fields: list[str] | None) -> dict[str, Any]:
    if not fields:
        return doc
    shown: dict[str, Any] = {}
    for field in fields:
        path = selectors.path_of(field)
        value = selectors.value_at(doc, path)
        if value is selectors.MISSING:
            continue
        target = shown
        for name in path[:-1]:
            target = target.setdefault(name, {})
        target[path[-1]] = value
    return shown


def find(call: Call) -> Reply:
    """``POST /{db}/_find``."""
    if call.method != "POST":
        raise MethodNotAllowed("POST")
    q = mangoplan.query(body_json(call.body))
    choice = mangoplan.chosen(_indexes(call), q)
    index = choice.index
    bookmark = q.body.get("bookmark")
    start = _bookmarked(bookmark) if isinstance(bookmark, str) and bookmark else 0
    descending = bool(q.sort) and q.sort[0][1] == "desc"
    matching = (
        doc
        for doc in _read(call, index, q.selector, descending)
        if selectors.matches(q.selector, doc)
    )
    chosen = list(itertools.islice(matching, start + q.skip, start + q.skip + q.limit))
    if call.db == REPLICATOR_DB:  # read as the requester may: another's credentials hidden
        picked = chosen

        def shown(conn: Any) -> list[dict[str, Any]]:
            return [readable(call.user, call.db, conn, doc) for doc in picked]

        chosen = call.store.read(call.db, shown)
    answer: dict[str, Any] = {"docs": [_projected(doc, q.fields) for doc in chosen]}
    nothing = not chosen and not start  # CouchDB's bookmark of a first page with nothing
    answer["bookmark"] = "nil" if nothing else _bookmark(start + q.skip + len(chosen))
    if choice.warnings:
        answer["warning"] = "\n".join(choice.warnings)
    return json_reply(200, answer)


def _read(
    call: Call, index: JsonIndex | None, selector: dict[str, Any], descending: bool
) -> Iterator[dict[str, Any]]:
    """The documents that may match, in the answer's order: by ``_id`` without an index;
    with one, those of its key range, in its order (its fields, then ``_id``)."""
    if index is None:
        yield from reversed(list(_documents(call))) if descending else _documents(call)
        return
    design = index.design
    view_index = call.store.index(call.db, design)
    read_db = lambda work: call.store.read(call.db, work)  # noqa: E731
    view_index.update(read_db, until=read_db(queries.update_seq))

    def read_index(work: Any) -> Any:
        with view_index.reading() as conn:
            return work(conn)

    bounds = jsonindex.key_range(selector, index.fields)
    yield from jsonindex.candidates(read_index, read_db, bounds, descending)


def _bookmark(position: int) -> str:
    return base64.urlsafe_b64encode(encode_json([position])).decode()


def _bookmarked(bookmark: str) -> int:
    """The position a bookmark of ours holds; 400 for any other (``"nil"`` too, as CouchDB)."""
    try:
        (position,) = decode_json(base64.urlsafe_b64decode(bookmark.encode()))
        return int(position)
    except (ValueError, TypeError):
        reason = f"Invalid bookmark value: {json.dumps(bookmark)}"
        raise BadRequest("invalid_bookmark", reason) from None


def explain(call: Call) -> Reply:
    """``POST /{db}/_explain``: the index a ``_find`` would use, its options, and how it would
    read it. A sort no index can answer (400 for ``_find``) is explained with a null index,
    as CouchDB does."""
    if call.method != "POST":
        raise MethodNotAllowed("POST")
    q = mangoplan.query(body_json(call.body))
    indexes = _indexes(call)
    winner: Any
    try:
        winner = index = mangoplan.chosen(indexes, q).index
        described: dict[str, Any] | None = index.described() if index else jsonindex.ALL_DOCS
    except BadRequest as error:
        if error.error != "no_usable_index":
            raise
        index, described, winner = None, None, mangoexplain.NO_INDEX
    answer = {
        "dbname": call.db,
        "index": described,
        "partitioned": False,
        "selector": normalized(q.selector),
        "opts": q.opts,
        "limit": q.limit,
        "skip": q.skip,
        "fields": q.fields or [],
        "index_candidates": mangoexplain.candidates(indexes, q, winner),
    }
    if described is not None:
        answer["mrargs"] = mangoexplain.mrargs(q, index)
        answer["covering"] = mangoexplain.covering(q, index)
    return json_reply(200, answer)


def index(call: Call) -> Reply:
    """``GET|POST /{db}/_index`` and ``DELETE /{db}/_index/{ddoc}/json/{name}``."""
    rest = call.rest[1:]
    if rest:
        return _delete_index(call, rest)
    if call.method == "GET":
        indexes = [jsonindex.ALL_DOCS, *(i.described() for i in _indexes(call))]
        return json_reply(200, {"total_rows": len(indexes), "indexes": indexes})
    if call.method != "POST":
        raise MethodNotAllowed("GET,POST")
    body = body_json(call.body)
    mangoplan.invalid_keys(body, INDEX_KEYS)
    kind = body.get("type", "json")
    if not isinstance(kind, str):
        raise BadRequest("invalid_string", f"Invalid string: {term(kind)}")
    if kind in SEARCH_TYPES:
        raise ServerError("required index service unavailable", kind, status=503)
    if kind != "json":
        raise BadRequest("invalid_index", f"Invalid type for index: {kind}")
    spec = body.get("index")
    if not isinstance(spec, dict) or not isinstance(spec.get("fields"), list) or not spec["fields"]:
        raise BadRequest("missing_required_key", "Missing required key: fields")
    mangoplan.invalid_keys(spec, DEFINITION_KEYS)
    fields = mangoplan.sort_fields(spec["fields"])
    definition = {"fields": spec["fields"]}
    partial = {}
    if "partial_filter_selector" in spec:
        given = spec["partial_filter_selector"]
        if not isinstance(given, dict):
            reason = f"Selector must be a JSON object, not: {term(given)}"
            raise BadRequest("invalid_selector_json", reason)
        partial = normalized(given)
        definition["partial_filter_selector"] = given
    digest = hashlib.sha1(encode_json(spec), usedforsecurity=False).hexdigest()
    ddoc = body.get("ddoc") or digest
    ddoc_id = ddoc if ddoc.startswith("_design/") else f"_design/{ddoc}"
    name = body.get("name") or digest
    view = {
        "map": {"fields": dict(fields), "partial_filter_selector": partial},
        "reduce": "_count",
        "options": {"def": definition},
    }

    def work(txn: edits.Txn) -> str:
        try:
            current = reads.document(txn.conn, ddoc_id, None, reads.DocOptions())
        except NotFound:
            current = {"language": "query", "views": {}}
        if current.get("views", {}).get(name) == view:
            return "exists"
        current.setdefault("views", {})[name] = view
        current["language"] = "query"
        edits.edit(txn, ddoc_id, current, current.get("_rev"))
        return "created"

    result = call.store.write(call.db, work).result()
    return json_reply(200, {"result": result, "id": ddoc_id, "name": name})


def _delete_index(call: Call, rest: list[str]) -> Reply:
    if call.method != "DELETE":
        raise MethodNotAllowed("DELETE")
    if rest[0] == "_design":
        rest = [f"_design/{rest[1]}", *rest[2:]] if len(rest) > 1 else rest
    if len(rest) != 3 or rest[1] != "json":
        raise NotFound("not_found", "Index not found")
    ddoc_id = rest[0] if rest[0].startswith("_design/") else f"_design/{rest[0]}"
    name = rest[2]

    def work(txn: edits.Txn) -> None:
        try:
            current = reads.document(txn.conn, ddoc_id, None, reads.DocOptions())
        except NotFound:
            raise NotFound("not_found", "Index not found") from None
        if name not in current.get("views", {}):
            raise NotFound("not_found", "Index not found")
        del current["views"][name]
        if current["views"]:
            edits.edit(txn, ddoc_id, current, current["_rev"])
        else:
            edits.edit(txn, ddoc_id, {"_deleted": True}, current["_rev"])

    call.store.write(call.db, work).result()
    return json_reply(200, {"ok": True})
