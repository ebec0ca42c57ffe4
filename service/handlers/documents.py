"""Databases and documents: ``/{db}`` and ``/{db}/{docid}`` (design and local documents too)."""

from __future__ import annotations

from collections.abc import Awaitable, Generator
from typing import Any
from urllib.parse import quote

from .. import options, preconditions
from ..backend import POUCHDB, kind_of
from ..couch import relax
from ..couch.errors import BadRequest, Conflict, NotFound, PreconditionFailed
from ..couch.protocol import validate_doc_id
from .base import ApiHandler, pass_through
from .upload import MultipartOpening


class DocumentWriter(ApiHandler):
    """What the handlers that write a document answer."""

    def write_saved(self, doc: dict[str, Any], batch: str | None) -> None:
        """201 ``{"ok", "id", "rev"}`` with the ETag; 202 without a rev when batched."""
        if batch:
            self.write_json({"ok": True, "id": doc["_id"]}, 202)
            return
        self.set_header("ETag", preconditions.etag(doc["_rev"]))
        self.write_json({"ok": True, "id": doc["_id"], "rev": doc["_rev"]}, 201)


class DatabaseHandler(DocumentWriter):
    """Create, inspect and delete a database; ``POST`` a document with a generated id."""

    route = "database"
    couchdb_methods = "DELETE,GET,HEAD,POST,PUT"

    @relax
    def get(self, db: str) -> Any:
        self.write_json((yield self.database(db).info()))

    @relax
    def head(self, db: str) -> Any:
        if not (yield self.database(db).exists()):
            raise NotFound("not_found", "Database does not exist.")

    @relax
    def put(self, db: str) -> Any:
        yield self.couch.create(db)
        self.set_header("Location", self.request.full_url())
        self.write_json({"ok": True}, 201)

    @relax
    def delete(self, db: str) -> Any:
        """404 for a database that does not exist, as CouchDB answers: pouchdb-server
        answers 200 (PouchDB destroys a database whether or not there is one)."""
        database = self.database(db)
        if (yield kind_of(self.own_couch)) == POUCHDB and not (yield database.exists()):
            raise NotFound("not_found", "Database does not exist.")
        yield self.couch.delete(db)
        self.write_json({"ok": True})

    @relax
    def post(self, db: str) -> Any:
        doc = self.json_body()
        batch = options.parse(self.request.arguments, options.WRITE).get("batch")
        yield self.database(db).save(doc, batch=batch)
        self.set_header("Location", self.request.full_url().rstrip("/") + "/" + quote(doc["_id"]))
        self.write_saved(doc, batch)


class DocumentHandler(DocumentWriter):
    """Read, write and delete one document, with CouchDB's options and ETag preconditions."""

    route = "document"
    couchdb_methods = "DELETE,GET,HEAD,POST,PUT,COPY"

    async def prepare(self) -> None:
        """An id no document can have is missing, as CouchDB says, except to a write. A
        multipart write is refused before any of it reaches pouchdb-server (it dies of one); on
        CouchDB and the embedded store, its opening is checked on the way
        (``MultipartOpening``)."""
        doc_id = self.path_kwargs.get("doc_id", "")
        method = self.request.method
        self._opening: MultipartOpening | None = None
        self._refused: BadRequest | None = None
        if method in ("GET", "HEAD", "DELETE") and not is_document_id(doc_id):
            super().prepare()  # counted in flight, as every request that is answered
            raise NotFound("not_found", "missing")
        content_type = self.request.headers.get("Content-Type", "")
        if method == "PUT" and content_type.startswith("multipart/"):
            if await kind_of(self.own_couch) == POUCHDB:
                self._refused = BadRequest(
                    "bad_request", "pouchdb-server takes no multipart writes: it dies of one"
                )
            self._opening = MultipartOpening.of(content_type)
            length = self.request.headers.get("Content-Length", "")
            if length in ("", "0") and "Transfer-Encoding" not in self.request.headers:
                self._opened(None)  # no body: refused before a relay starts
        super().prepare()

    def _opened(self, chunk: bytes | None) -> bytes:
        """What of ``chunk`` may go on to the backend (None: the body has ended). A multipart
        body that does not open with its boundary stops the relay, and its refusal is kept
        for the answer, once the body is in."""
        if self._refused is not None:
            return b""
        if self._opening is None:
            return chunk or b""
        try:
            return self._opening.feed(chunk) if chunk is not None else self._opening.end()
        except BadRequest as refusal:
            self._refused = refusal
            self._stop_relaying()
            return b""

    def data_received(self, chunk: bytes) -> Awaitable[None] | None:
        if chunk := self._opened(chunk):
            return super().data_received(chunk)
        return None

    def relayed_as_is(self) -> bool:
        """What settee has nothing to add to: reads of several revisions (``open_revs``: a
        list, or multipart) or asked as multipart, and writes as a replicator makes them
        (``new_edits=false``, or multipart/related: a document with its attachments)."""
        request = self.request
        if self._refused is not None:
            return False  # refused before it could be relayed
        if request.method == "GET":
            return "open_revs" in request.arguments or "multipart/" in request.headers.get(
                "Accept", ""
            )
        if request.method == "PUT":
            multipart = request.headers.get("Content-Type", "").startswith("multipart/")
            return multipart or "new_edits" in request.arguments
        return False

    @relax
    def get(self, db: str, doc_id: str) -> Any:
        if self.relayed_as_is():
            return (yield pass_through(self, db, doc_id))
        query = options.parse(self.request.arguments, options.DOCUMENT)
        doc = yield self.database(db).get(doc_id, **query)
        rev = doc.get("_rev")
        if rev:
            self.set_header("ETag", preconditions.etag(rev))
            if preconditions.matches(self.request.headers.get("If-None-Match"), rev):
                self.set_status(304)
                return
        self.write_json(doc)

    @relax
    def head(self, db: str, doc_id: str) -> Any:
        rev = yield self.database(db).rev(doc_id)
        self.set_header("ETag", preconditions.etag(rev))
        if preconditions.matches(self.request.headers.get("If-None-Match"), rev):
            self.set_status(304)

    @relax
    def put(self, db: str, doc_id: str) -> Any:
        self._opened(None)
        if self._refused is not None:
            raise self._refused
        if self.relayed_as_is():
            return (yield pass_through(self, db, doc_id))
        doc = self.json_body()
        query = options.parse(self.request.arguments, options.WRITE)
        rev = preconditions.requested_rev(
            body=doc.get("_rev"),
            query=query.get("rev"),
            if_match=self.request.headers.get("If-Match"),
        )
        create_only = self.request.headers.get("If-None-Match", "").strip() == "*"
        doc["_id"] = doc_id
        doc.pop("_rev", None)
        if rev and not create_only:
            doc["_rev"] = rev
        try:
            yield self.database(db).save(doc, batch=query.get("batch"))
        except Conflict:
            if create_only:
                raise PreconditionFailed("file_exists", "The document already exists.") from None
            raise
        self.set_header("Location", self.request.full_url().split("?")[0])
        self.write_saved(doc, query.get("batch"))

    @relax
    def delete(self, db: str, doc_id: str) -> Any:
        query = options.parse(self.request.arguments, options.WRITE)
        rev = preconditions.requested_rev(
            body=None, query=query.get("rev"), if_match=self.request.headers.get("If-Match")
        )
        if rev is None:
            yield from refuse_without_rev(self.database(db), doc_id)
        result = yield self.database(db).delete({"_id": doc_id, "_rev": rev})
        self.set_header("ETag", preconditions.etag(result["rev"]))
        self.write_json(result)


def is_document_id(doc_id: str) -> bool:
    try:
        validate_doc_id(doc_id)
    except BadRequest:
        return False
    return True


def refuse_without_rev(db: Any, doc_id: str) -> Generator[Any, Any, None]:
    """A delete that names no rev: 409 as CouchDB answers (404 if there is no document).

    pouchdb-server would delete the live document instead.
    """
    yield db.rev(doc_id)
    raise Conflict("conflict", "Document update conflict.")
