"""Mango: ``_find``, ``_index`` and ``_explain`` with CouchDB 3.4's answers.

A json index is CouchDB's design document (``"language": "query"``), so indexes replicate and
list as CouchDB's do. The store decides with them what CouchDB decides: which index a query
uses (one whose fields the selector all requires; for a ``sort``, one whose fields begin with
the sort's, else 400 ``no_usable_index``) and so the order of the answer (the index's fields,
then ``_id``; with no index, ``_id`` and CouchDB's warning). With an index, only the documents
of the key range the selector allows are read (``jsonindex``); each is then checked against
the whole selector (``selectors``).
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ..couch.errors import BadRequest, NotFound
from ..couch.protocol import decode_json, encode_json
from . import edits, jsonindex, queries, reads, selectors
from .call import Call, MethodNotAllowed
from .jsonindex import JsonIndex
from .params import body_json
from .replicator import REPLICATOR_DB, readable
from .reply import Reply, json_reply

DEFAULT_LIMIT = 25
NO_INDEX_WARNING = "No matching index found, create an index to optimize query time."
ALL_DOCS = {
    "ddoc": None,
    "name": "_all_docs",
    "type": "special",
    "def": {"fields": [{"_id": "asc"}]},
}
PAGE = 1000


def _indexes(call: Call) -> list[JsonIndex]:
    return call.store.read(call.db, jsonindex.indexes_of)


def _sort_fields(sort: Any) -> list[tuple[str, str]]:
    if sort is None:
        return []
    if not isinstance(sort, list):
        raise BadRequest("invalid_sort_json", "Sort must be an array")
    fields = []
    for item in sort:
        if isinstance(item, str):
            fields.append((item, "asc"))
        elif isinstance(item, dict) and len(item) == 1:
            ((field, direction),) = item.items()
            if direction not in ("asc", "desc"):
                raise BadRequest("invalid_sort_dir", f"Invalid sort direction: {direction}")
            fields.append((field, direction))
        else:
            raise BadRequest("invalid_sort_field", f"Invalid sort field: {json.dumps(item)}")
    if len({d for _, d in fields}) > 1:
        raise BadRequest(
            "unsupported_mixed_sort",
            "Sorts currently only support a single direction for all fields.",
        )
    return fields


def _chosen(
    indexes: list[JsonIndex], selector: dict[str, Any], sort: list[tuple[str, str]]
) -> JsonIndex | None:
    """The json index CouchDB would use, or None for ``_all_docs``."""
    required = selectors.fields_of(selector)
    sort_names = [f for f, _ in sort]
    usable = [i for i in indexes if set(i.fields) <= required]
    if sort:
        if sort_names == ["_id"]:
            return None
        usable = [i for i in usable if list(i.fields[: len(sort_names)]) == sort_names]
        if not usable:
            raise BadRequest(
                "no_usable_index",
                "No index exists for this sort, try indexing by the sort fields.",
            )
    return min(usable, key=lambda i: len(i.fields)) if usable else None


def _options(body: dict[str, Any]) -> tuple[dict[str, Any], int, int, list[str] | None]:
    selector = body.get("selector")
    if not isinstance(selector, dict):
        raise BadRequest("missing_required_key", "Missing required key: selector")
    limit, skip = body.get("limit", DEFAULT_LIMIT), body.get("skip", 0)
    for name, value in (("limit", limit), ("skip", skip)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise BadRequest("invalid_argument", f"Invalid value for {name}")
    fields = body.get("fields")
    if fields is not None and (
        not isinstance(fields, list) or not all(isinstance(f, str) for f in fields)
    ):
        raise BadRequest("invalid_field_json", "fields must be an array of strings")
    return selector, limit, skip, fields


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


@dataclass(frozen=True, slots=True)
class Plan:
    """A query as ``_find`` runs it and ``_explain`` describes it."""

    body: dict[str, Any]
    selector: dict[str, Any]
    limit: int
    skip: int
    fields: list[str] | None
    sort: list[tuple[str, str]]
    index: JsonIndex | None


def _plan(call: Call) -> Plan:
    """A POSTed query, checked, and the index CouchDB would answer it with."""
    if call.method != "POST":
        raise MethodNotAllowed("POST")
    body = body_json(call.body)
    selector, limit, skip, fields = _options(body)
    sort = _sort_fields(body.get("sort"))
    return Plan(body, selector, limit, skip, fields, sort, _chosen(_indexes(call), selector, sort))


def find(call: Call) -> Reply:
    """``POST /{db}/_find``."""
    plan = _plan(call)
    body, selector, limit, skip, fields, sort, index = (
        plan.body,
        plan.selector,
        plan.limit,
        plan.skip,
        plan.fields,
        plan.sort,
        plan.index,
    )
    bookmark = body.get("bookmark")
    start = _bookmarked(bookmark) if isinstance(bookmark, str) and bookmark != "nil" else 0
    descending = bool(sort) and sort[0][1] == "desc"
    matching = (
        doc for doc in _read(call, index, selector, descending) if selectors.matches(selector, doc)
    )
    chosen = list(itertools.islice(matching, start + skip, start + skip + limit))
    if call.db == REPLICATOR_DB:  # read as the requester may: another's credentials hidden
        picked = chosen

        def shown(conn: Any) -> list[dict[str, Any]]:
            return [readable(call.user, call.db, conn, doc) for doc in picked]

        chosen = call.store.read(call.db, shown)
    answer: dict[str, Any] = {"docs": [_projected(doc, fields) for doc in chosen]}
    answer["bookmark"] = _bookmark(start + skip + len(chosen))
    if index is None:
        answer["warning"] = NO_INDEX_WARNING
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
    try:
        (position,) = decode_json(base64.urlsafe_b64decode(bookmark.encode()))
        return int(position)
    except (ValueError, TypeError):
        raise BadRequest("invalid_bookmark", f"Invalid bookmark value: {bookmark}") from None


def explain(call: Call) -> Reply:
    """``POST /{db}/_explain``: the index a ``_find`` would use, and its options."""
    plan = _plan(call)
    selector, limit, skip, fields, sort, index = (
        plan.selector,
        plan.limit,
        plan.skip,
        plan.fields,
        plan.sort,
        plan.index,
    )
    return json_reply(
        200,
        {
            "dbname": call.db,
            "index": index.described() if index else ALL_DOCS,
            "partitioned": False,
            "selector": selector,
            "opts": {
                "use_index": [],
                "bookmark": "nil",
                "limit": limit,
                "skip": skip,
                "sort": {f: d for f, d in sort},
                "fields": fields or "all_fields",
                "r": 1,
                "conflicts": False,
            },
            "limit": limit,
            "skip": skip,
            "fields": fields or "all_fields",
        },
    )


def index(call: Call) -> Reply:
    """``GET|POST /{db}/_index`` and ``DELETE /{db}/_index/{ddoc}/json/{name}``."""
    rest = call.rest[1:]
    if rest:
        return _delete_index(call, rest)
    if call.method == "GET":
        indexes = [ALL_DOCS, *(i.described() for i in _indexes(call))]
        return json_reply(200, {"total_rows": len(indexes), "indexes": indexes})
    if call.method != "POST":
        raise MethodNotAllowed("GET,POST")
    body = body_json(call.body)
    spec = body.get("index")
    if not isinstance(spec, dict) or not isinstance(spec.get("fields"), list) or not spec["fields"]:
        raise BadRequest("missing_required_key", "Missing required key: fields")
    if body.get("type", "json") != "json":
        raise BadRequest("invalid_index_type", "only json indexes are in the embedded store")
    fields = _sort_fields(spec["fields"])
    digest = hashlib.sha1(encode_json(spec), usedforsecurity=False).hexdigest()
    ddoc = body.get("ddoc") or digest
    ddoc_id = ddoc if ddoc.startswith("_design/") else f"_design/{ddoc}"
    name = body.get("name") or digest
    view = {
        "map": {"fields": dict(fields), "partial_filter_selector": {}},
        "reduce": "_count",
        "options": {"def": {"fields": spec["fields"]}},
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
