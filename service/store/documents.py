"""Endpoints of one document: ``/{db}/{docid}``, ``_local`` documents, and attachments."""

from __future__ import annotations

import base64
import dataclasses
import uuid
from typing import Any

from ..couch.errors import BadRequest, Conflict, NotFound
from ..couch.protocol import validate_doc_id
from . import attachments, edits, mixed, reads, related, replicator, revs, tree, views
from .call import Call, MethodNotAllowed
from .params import body_json, doc_options, flag, json_value
from .reply import SERVER, Reply, json_reply
from .validation import Guard
from .writer import Work

LOCAL = "_local/"


def document(call: Call, doc_id: str) -> Reply:
    """GET, PUT, DELETE of a document (HEAD is GET without the body, done by the router).

    An id no document can have is missing to a read or a delete, as CouchDB answers."""
    try:
        validate_doc_id(doc_id)
    except BadRequest:
        if call.method in ("GET", "DELETE"):
            raise NotFound("not_found", "missing") from None
        raise
    if doc_id.startswith(LOCAL):
        return local(call, doc_id)
    if call.method == "GET":
        return _get(call, doc_id)
    if call.method == "PUT":
        content_type = call.headers.get("content-type", "")
        if related.is_related(content_type):
            doc = related.document_of(content_type, call.body)
        else:
            doc = body_json(call.body, want_object=False)
        if not isinstance(doc, dict):
            raise BadRequest("bad_request", "Document must be a JSON object")
        return save(call, doc_id, doc, _rev_asked(call, doc.get("_rev")))
    if call.method == "DELETE":
        rev = _rev_asked(call, None)
        if rev is None:
            raise Conflict("conflict", "Document update conflict.")
        return save(call, doc_id, {"_deleted": True}, rev, status=200)
    if call.method == "POST":
        raise BadRequest("bad_request", "form POST of attachments: not in the embedded store yet")
    if call.method == "COPY":
        return copy(call, doc_id)
    raise MethodNotAllowed("COPY,DELETE,GET,HEAD,POST,PUT")


def copy(call: Call, doc_id: str) -> Reply:
    """``COPY``: the document (or ``?rev=``) written to the id ``Destination`` names, over
    the rev given there (``dest?rev=…``) if it exists."""
    destination = call.headers.get("destination", "")
    target, _, rest = destination.partition("?")
    target_rev = rest.removeprefix("rev=") if rest.startswith("rev=") else None
    if not target:
        raise BadRequest("bad_request", "Destination header is mandatory for COPY.")
    validate_doc_id(target)
    rev = call.query.get("rev")
    source = call.store.read(
        call.db, lambda conn: reads.document(conn, doc_id, rev, reads.DocOptions())
    )
    stubs = {name: {"stub": True} for name in source.get("_attachments", {})}
    body = {k: v for k, v in source.items() if not k.startswith("_")}
    Guard(call).admit(target, {**body, "_attachments": source.get("_attachments", {})}, target_rev)

    def work(txn: edits.Txn) -> str:
        if target.startswith(LOCAL):  # a _local copy: no tree, no attachments, never replicated
            return edits.put_local(txn.conn, target, body, target_rev)
        # The copy keeps the source's attachments: their metadata, stored content shared.
        stored = tree.body(txn.conn, doc_id, source["_rev"]) or {}
        doc = {**body, "_attachments": stored.get("_attachments", {})} if stubs else body
        return edits.edit(txn, target, doc, target_rev, kept_attachments=bool(stubs))

    new_rev = call.store.write(call.db, work).result()
    headers = {"etag": f'"{new_rev}"', "location": f"/{call.db}/{target}"}
    return json_reply(201, {"ok": True, "id": target, "rev": new_rev}, headers)


def new_document(call: Call) -> Reply:
    """``POST /{db}``: a document with its own ``_id`` or a new one."""
    doc = body_json(call.body, want_object=False)
    if not isinstance(doc, dict):
        raise BadRequest("bad_request", "Document must be a JSON object")
    doc_id = doc.get("_id") or uuid.uuid4().hex
    validate_doc_id(doc_id)
    return save(call, doc_id, doc, doc.get("_rev"))


def _rev_asked(call: Call, in_body: str | None) -> str | None:
    """The rev a write names: ``?rev=``, ``If-Match`` or the body's; 400 if they differ."""
    named = [rev for rev in (call.query.get("rev"), in_body) if rev is not None]
    if_match = call.headers.get("if-match")
    if if_match:
        named.append(if_match.strip('"'))
    if len(set(named)) > 1:
        raise BadRequest(
            "bad_request", "Document rev from request body and query string have different values"
        )
    return named[0] if named else None


def save(
    call: Call, doc_id: str, doc: dict[str, Any], rev: str | None, *, status: int = 201
) -> Reply:
    """Write one document, interactively or (``new_edits=false``) as replicated."""
    views.validate(doc_id, doc)
    replicated = not flag(call.query, "new_edits", True)
    # A replicated revision is not in the tree yet: its validation sees the current winner.
    doc = Guard(call).admit(doc_id, doc, None if replicated else rev)
    if replicated:
        doc = {**doc, "_rev": doc.get("_rev", rev)}
        work: Work = lambda txn: edits.graft(txn, doc_id, doc)  # noqa: E731
    else:
        work = lambda txn: edits.edit(txn, doc_id, doc, rev)  # noqa: E731

    def saved(new_rev: str) -> Reply:
        if call.query.get("batch") == "ok":
            return json_reply(202, {"ok": True, "id": doc_id})
        headers = {"etag": f'"{new_rev}"'}
        if status == 201:
            headers["location"] = f"/{call.db}/{doc_id}"
        return json_reply(status, {"ok": True, "id": doc_id, "rev": new_rev}, headers)

    return call.store.write_then(call.db, work, saved)


def _get(call: Call, doc_id: str) -> Reply:
    options = doc_options(call.query)
    if "open_revs" in call.query:
        raw = call.query["open_revs"]
        wanted = None if raw == "all" else json_value(call.query, "open_revs")
        if wanted is not None and not isinstance(wanted, list):
            raise BadRequest("bad_request", "Invalid list of revisions")
        for asked in wanted or []:
            revs.parse(asked)
        if wanted != []:  # none asked for: the document, as CouchDB answers
            return _open_revs(call, doc_id, wanted, options)
    rev = call.query.get("rev")
    doc = call.store.read(call.db, lambda conn: _read(call, conn, doc_id, rev, options))
    etag = f'"{doc["_rev"]}"'
    if call.headers.get("if-none-match") == etag:
        return Reply(304, {"etag": etag, "server": SERVER})
    if (
        options.attachments
        and doc.get("_attachments")
        and "multipart/related" in call.headers.get("accept", "")
    ):
        content_type, body = related.encode(doc)
        headers = {"content-type": content_type, "content-length": str(len(body))}
        return Reply(200, {**headers, "etag": etag, "server": SERVER}, body)
    return json_reply(200, doc, {"etag": etag})


def _open_revs(
    call: Call, doc_id: str, wanted: list[str] | None, options: reads.DocOptions
) -> Reply:
    """The revisions asked for: JSON, or ``multipart/mixed`` to a reader that accepts it."""

    def read(conn: Any, options: reads.DocOptions) -> list[dict[str, Any]]:
        found = reads.open_revs(conn, doc_id, wanted, options)
        return replicator.readable_rows(call.user, call.db, conn, found)

    if "multipart/mixed" not in call.headers.get("accept", ""):
        return json_reply(200, call.store.read(call.db, lambda conn: read(conn, options)))
    stubs = dataclasses.replace(options, attachments=False, revs=True)
    found = call.store.read(call.db, lambda conn: read(conn, stubs))
    since = json_value(call.query, "atts_since") if "atts_since" in call.query else []
    parts = mixed.OpenRevsParts(
        found,
        lambda query: call.store.read(call.db, query),
        call.store.database(call.db).signal,
        atts_since=[rev for rev in since if isinstance(rev, str)]
        if isinstance(since, list)
        else [],
        with_revs=options.revs,
    )
    headers = {"content-type": parts.content_type, "server": SERVER}
    return Reply(200, headers, stream=parts)


def _read(
    call: Call, conn: Any, doc_id: str, rev: str | None, options: reads.DocOptions
) -> dict[str, Any]:
    """The revision asked for, as the requester may read it (``_replicator``'s rules)."""
    return replicator.readable(call.user, call.db, conn, reads.document(conn, doc_id, rev, options))


def local(call: Call, doc_id: str) -> Reply:
    """A ``_local`` document: GET, PUT, DELETE."""
    if call.method == "GET":
        return json_reply(200, call.store.read(call.db, lambda conn: reads.local(conn, doc_id)))
    if call.method == "PUT":
        doc = body_json(call.body)
        rev = _rev_asked(call, doc.get("_rev"))
    elif call.method == "DELETE":
        doc, rev = {"_deleted": True}, _rev_asked(call, None)
    else:
        raise MethodNotAllowed("DELETE,GET,HEAD,PUT")
    status = 201 if call.method == "PUT" else 200
    return call.store.write_then(
        call.db,
        lambda txn: edits.put_local(txn.conn, doc_id, doc, rev),
        lambda new_rev: json_reply(status, {"ok": True, "id": doc_id, "rev": new_rev}),
    )


def attachment(call: Call, doc_id: str, name: str) -> Reply:
    """``/{db}/{docid}/{name}``: read, add or replace, delete an attachment."""
    validate_doc_id(doc_id)
    if doc_id.startswith(LOCAL):
        raise BadRequest("bad_request", "_local documents do not have attachments")
    if call.method == "GET":
        return _attachment_content(call, doc_id, name)
    if call.method not in ("PUT", "DELETE"):
        raise MethodNotAllowed("DELETE,GET,HEAD,PUT")
    rev = _rev_asked(call, None)
    content_type = call.headers.get("content-type", "application/octet-stream")
    data = call.body
    added = {"content_type": content_type, "length": len(data)} if call.method == "PUT" else None
    Guard(call).admit_attachment(doc_id, rev, name, added)

    def work(txn: edits.Txn) -> str:
        known = tree.load(txn.conn, doc_id)
        current: dict[str, Any] = {}
        if rev is not None and rev in known:
            current = tree.body(txn.conn, doc_id, rev) or {}
        atts = current.get("_attachments", {})
        stubs: dict[str, dict[str, Any]] = {n: {"stub": True} for n in atts}
        if call.method == "DELETE":
            if name not in stubs:
                raise NotFound("not_found", "Document is missing attachment")
            del stubs[name]
        else:
            stubs[name] = {"content_type": content_type, "data": base64.b64encode(data).decode()}
        doc = {key: value for key, value in current.items() if key != "_attachments"}
        doc["_attachments"] = stubs
        return edits.edit(txn, doc_id, doc, rev)

    new_rev = call.store.write(call.db, work).result()
    status = 200 if call.method == "DELETE" else 201
    headers = {"etag": f'"{new_rev}"'}
    if status == 201:
        headers["location"] = f"/{call.db}/{doc_id}/{name}"
    return json_reply(status, {"ok": True, "id": doc_id, "rev": new_rev}, headers)


def _attachment_content(call: Call, doc_id: str, name: str) -> Reply:
    rev = call.query.get("rev")

    def find(conn: Any) -> tuple[dict[str, Any], bytes]:
        doc = reads.document(conn, doc_id, rev, reads.DocOptions())
        body = tree.body(conn, doc_id, doc["_rev"])
        assert body is not None  # reads.document has just shown it, in this transaction
        att = body.get("_attachments", {}).get(name)
        if att is None:
            raise NotFound("not_found", "Document is missing attachment")
        return att, attachments.content(conn, att["digest"]) or b""

    att, data = call.store.read(call.db, find)
    md5 = att["digest"].removeprefix("md5-")
    return Reply(
        200,
        {
            "content-type": att["content_type"],
            "content-length": str(len(data)),
            "content-md5": md5,
            "etag": f'"{md5}"',
            "accept-ranges": "none",
            "cache-control": "must-revalidate",
            "server": SERVER,
        },
        data,
    )
