"""Endpoints over many documents: ``_bulk_docs``, ``_bulk_get``, ``_revs_diff``."""

from __future__ import annotations

import uuid
from typing import Any

from ..couch.errors import BadRequest, HTTPError
from ..couch.protocol import validate_doc_id
from . import edits, reads, views
from .call import Call, MethodNotAllowed
from .params import body_json, doc_options
from .replicator import readable_rows
from .reply import Reply, json_reply
from .validation import Guard


def bulk_docs(call: Call) -> Reply:
    """Write many documents in one transaction; one result per document (with
    ``new_edits=false``, only the failures), as CouchDB 3 answers."""
    if call.method != "POST":
        raise MethodNotAllowed("POST")
    request = body_json(call.body)
    docs = request.get("docs")
    if not isinstance(docs, list):
        raise BadRequest("bad_request", "POST body must include `docs` parameter.")
    new_edits = request.get("new_edits", True) is not False
    for doc in docs:
        if not isinstance(doc, dict):
            raise BadRequest("bad_request", "Document must be a JSON object")
        if new_edits and "_id" not in doc:
            doc["_id"] = uuid.uuid4().hex

    guard = Guard(call)
    refused = {i: _refusal(guard, docs, i, new_edits) for i in range(len(docs))}

    def work(txn: edits.Txn) -> list[dict[str, Any]]:
        return [refused[i] or _write_one(txn, doc, new_edits) for i, doc in enumerate(docs)]

    results = call.store.write(call.db, work).result()
    if not new_edits:
        results = [result for result in results if "error" in result]
    return json_reply(201, results)


def _refusal(
    guard: Guard, docs: list[dict[str, Any]], i: int, new_edits: bool
) -> dict[str, Any] | None:
    """The result of a document CouchDB would refuse to write (a design document that does
    not build, or one its user may not write), else None; ``docs[i]`` becomes the document
    as it is to be written (a ``_users`` password hashed)."""
    doc = docs[i]
    doc_id = doc.get("_id")
    if not isinstance(doc_id, str):
        return None
    try:
        views.validate(doc_id, doc)
        docs[i] = guard.admit(doc_id, doc, doc.get("_rev") if new_edits else None)
    except HTTPError as exc:
        refusal = {"id": doc_id, "error": exc.error, "reason": exc.reason}
        return refusal if new_edits else {"id": doc_id, "rev": doc.get("_rev"), **refusal}
    return None


def _write_one(txn: edits.Txn, doc: dict[str, Any], new_edits: bool) -> dict[str, Any]:
    """One document of a bulk write: its failure is its alone. An edit without attachments
    fails before it writes anything; any other write takes a savepoint to roll back to (a
    savepoint costs SQLite a copy of every page it then changes: a third of a bulk write's
    time, when each document took one)."""
    given = doc.get("_id")
    guarded = not new_edits or "_attachments" in doc
    if guarded:
        txn.conn.execute("SAVEPOINT doc")
    try:
        doc_id = validate_doc_id(given)
        if doc_id.startswith("_local/"):
            rev = edits.put_local(txn.conn, doc_id, doc, doc.get("_rev"))
        elif new_edits:
            rev = edits.edit(txn, doc_id, doc, doc.get("_rev"))
        else:
            rev = edits.graft(txn, doc_id, doc)
    except HTTPError as exc:
        if guarded:
            txn.conn.execute("ROLLBACK TO doc")
            txn.conn.execute("RELEASE doc")
        return {"id": given, "error": exc.error, "reason": exc.reason}
    if guarded:
        txn.conn.execute("RELEASE doc")
    return {"ok": True, "id": doc_id, "rev": rev}


def bulk_get(call: Call) -> Reply:
    """``_bulk_get``: per id asked for, its revisions (``{"ok": doc}``) or an error."""
    if call.method != "POST":
        raise MethodNotAllowed("POST")
    asked = body_json(call.body).get("docs")
    if not isinstance(asked, list):
        raise BadRequest("bad_request", "Missing JSON list of 'docs'.")
    options = doc_options(call.query)

    def fetch(conn: Any) -> list[dict[str, Any]]:
        return [
            {
                "id": item.get("id"),
                "docs": readable_rows(call.user, call.db, conn, _bulk_get_one(conn, item, options)),
            }
            for item in asked
        ]

    return json_reply(200, {"results": call.store.read(call.db, fetch)})


def _bulk_get_one(conn: Any, item: Any, options: reads.DocOptions) -> list[dict[str, Any]]:
    doc_id, rev = item.get("id"), item.get("rev")
    try:
        validate_doc_id(doc_id)
        if rev is None:
            return [{"ok": reads.document(conn, doc_id, None, options)}]
        found = reads.open_revs(conn, doc_id, [rev], options)
    except HTTPError as exc:
        found = [{"missing": rev}] if rev else []
        if not found:
            error = {"id": doc_id, "rev": "undefined", "error": exc.error, "reason": exc.reason}
            return [{"error": error}]
    return [
        {"ok": each["ok"]}
        if "ok" in each
        else {
            "error": {
                "id": doc_id,
                "rev": each["missing"],
                "error": "not_found",
                "reason": "missing",
            }
        }
        for each in found
    ]


def revs_diff(call: Call) -> Reply:
    """``_revs_diff``: which of the revs asked about the database lacks."""
    if call.method != "POST":
        raise MethodNotAllowed("POST")
    asked = body_json(call.body)
    for doc_id, wanted in asked.items():
        if not isinstance(wanted, list):
            raise BadRequest("bad_request", f"revs of {doc_id} must be a list")
    return json_reply(200, call.store.read(call.db, lambda conn: reads.revs_diff(conn, asked)))
