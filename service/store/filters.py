"""``_changes`` filters that read documents: ``filter=ddoc/name`` (a design document's
``filters`` function, ``function (doc, req)``), ``filter=_view&view=ddoc/name`` (a view's
map function: a document passes if it emits a row), both in JavaScript, and
``filter=_selector`` (a Mango selector).

A filter is compiled once per design document in each database (``Database.function``) and gets each
batch of changed documents in one call into V8. As in CouchDB, a filter function may
``require()`` any module of its design document, and a view's map those of ``views.lib``.
A deleted document reaches a filter function as its tombstone (``_id``, ``_rev``,
``_deleted``), as in CouchDB; a view's map never sees one.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ..couch.errors import BadRequest, NotFound
from . import reads, selectors, tree, views
from .call import Call

if TYPE_CHECKING:
    from .js import Functions

Keep = Callable[[sqlite3.Connection, list[dict[str, Any]]], list[bool]]


def keep_for(call: Call, name: str, query: Mapping[str, str]) -> Keep:
    """The predicate of filter ``name`` (``ddoc/name`` or ``_view``) for this request."""
    from .js import Functions  # V8 is loaded on first use, not when settee starts

    if name == "_view":
        ddoc_id, view_name = _split(query.get("view", ""), "view")
        design = call.store.read(call.db, lambda conn: views.read_design(conn, ddoc_id))
        view = design.view(view_name)
        functions = _compiled(
            call,
            f"{design.signature}/{view}",
            lambda: Functions([design.maps[view]], [None], [view_name], root=design.modules),
        )

        def emits(conn: sqlite3.Connection, rows: list[dict[str, Any]]) -> list[bool]:
            docs = [_document(conn, row) for row in rows]
            live = [doc for doc in docs if not doc.get("_deleted")]
            emitted = iter(functions.map(live)) if live else iter(())
            return [False if doc.get("_deleted") else bool(next(emitted)[0]) for doc in docs]

        return emits
    ddoc_id, filter_name = _split(name, "filter")
    ddoc = call.store.read(
        call.db, lambda conn: reads.document(conn, ddoc_id, None, reads.DocOptions())
    )
    source = (ddoc.get("filters") or {}).get(filter_name)
    if not isinstance(source, str):
        raise NotFound("not_found", f"missing json key: {filter_name}")
    compiled_for = f"{ddoc_id}@{ddoc['_rev']}/{filter_name}"  # a rev names its content
    functions = _compiled(call, compiled_for, lambda: Functions([], [], [], [source], ddoc))
    req = {
        "query": dict(query),
        "method": call.method,
        "path": [call.db, "_changes"],
        "userCtx": call.user.as_json(call.db),
    }

    def passes(conn: sqlite3.Connection, rows: list[dict[str, Any]]) -> list[bool]:
        return functions.filter(0, [_document(conn, row) for row in rows], req)

    return passes


def keep_selector(selector: Any) -> Keep:
    """``filter=_selector``: the documents that match a Mango selector."""
    if not isinstance(selector, dict):
        raise BadRequest("bad_request", "Selector must be a JSON object")

    def passes(conn: sqlite3.Connection, rows: list[dict[str, Any]]) -> list[bool]:
        return [selectors.matches(selector, _document(conn, row)) for row in rows]

    return passes


def _split(name: str, what: str) -> tuple[str, str]:
    ddoc, slash, rest = name.partition("/")
    if not slash or not ddoc or not rest:
        raise BadRequest("bad_request", f"`{what}` must be of the form `designname/{what}name`")
    return f"_design/{ddoc}", rest


def _compiled(call: Call, what: str, make: Callable[[], Functions]) -> Functions:
    """The functions compiled for ``what`` (all it depends on), compiled once per database."""
    return call.store.database(call.db).function(what, make)


def _document(conn: sqlite3.Connection, row: dict[str, Any]) -> dict[str, Any]:
    """The revision a change row names, as a filter sees it."""
    rev = row["changes"][0]["rev"]
    chosen = tree.one(conn, row["id"], rev)
    shown = (
        None if chosen is None else reads.show(conn, row["id"], None, chosen, reads.DocOptions())
    )
    return shown or {"_id": row["id"], "_rev": rev, "_deleted": True}
