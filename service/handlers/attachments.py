"""Attachments, ``/{db}/{docid}/{name}``, streamed both ways with their content type.

A download is relayed chunk by chunk with a flush between chunks. An upload starts its request
to the backend as soon as the headers arrive, and the body follows through a small bounded
queue: the service holds a few chunks of an attachment, never all of it.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from .. import options, preconditions
from ..couch import relax
from .base import ApiHandler
from .documents import refuse_without_rev
from .upload import BodyPipe

RELAYED_HEADERS = ("Content-Type", "Content-Length", "Content-Encoding", "ETag", "Content-MD5")


class AttachmentHandler(ApiHandler):
    """Read, write and delete one attachment of a document."""

    route = "attachment"
    couchdb_methods = "DELETE,GET,HEAD,PUT"

    def initialize(self, **collaborators: Any) -> None:
        super().initialize(**collaborators)
        self._upload = BodyPipe()

    def _rev(self) -> str | None:
        query = options.parse(self.request.arguments, options.WRITE)
        return preconditions.requested_rev(
            body=None, query=query.get("rev"), if_match=self.request.headers.get("If-Match")
        )

    # -- download

    @relax
    def get(self, db: str, doc_id: str, name: str) -> Any:
        body = yield self._open(db, doc_id, name)
        yield from self.relay_body(body, self._relayed_headers(body.headers))

    @relax
    def head(self, db: str, doc_id: str, name: str) -> Any:
        body = yield self._open(db, doc_id, name)
        body.close()
        for header, value in self._relayed_headers(body.headers).items():
            self.set_header(header, value)

    def _open(self, db: str, doc_id: str, name: str) -> Any:
        """The attachment of the revision the query names (a conflict's, say), else the
        current one's: replicators read each leaf revision's attachments by ``rev``."""
        rev = options.parse(self.request.arguments, options.WRITE).get("rev")
        return self.database(db).stream_attachment(doc_id, name, rev=rev)

    @staticmethod
    def _relayed_headers(headers: dict[str, str]) -> dict[str, str]:
        return {name: headers[name.lower()] for name in RELAYED_HEADERS if name.lower() in headers}

    def prepare(self) -> Awaitable[None] | None:
        super().prepare()
        if self.request.method == "PUT":
            db, doc_id, name = (self.path_kwargs[k] for k in ("db", "doc_id", "name"))
            doc = {"_id": doc_id, "_rev": self._rev()}
            content_type = self.request.headers.get("Content-Type", "application/octet-stream")
            self._upload.feeding(
                self.database(db).put_attachment(
                    doc, self._upload.chunks(), filename=name, content_type=content_type
                )
            )
        return None

    async def data_received(self, chunk: bytes) -> None:
        await self._upload.send(chunk)

    @relax
    def put(self, db: str, doc_id: str, name: str) -> Any:
        yield self._upload.end()
        result = yield self._upload.consumer
        self.set_header("ETag", preconditions.etag(result["rev"]))
        self.set_header("Location", self.request.full_url().split("?")[0])
        self.write_json(result, 201)

    def on_finish(self) -> None:
        self._upload.cancel()
        super().on_finish()

    def on_connection_close(self) -> None:
        self._upload.cancel()
        super().on_connection_close()

    # -- delete

    @relax
    def delete(self, db: str, doc_id: str, name: str) -> Any:
        doc = {"_id": doc_id, "_rev": self._rev()}
        if doc["_rev"] is None:
            yield from refuse_without_rev(self.database(db), doc_id)
        result = yield self.database(db).delete_attachment(doc, name)
        self.set_header("ETag", preconditions.etag(result["rev"]))
        self.write_json(result)
