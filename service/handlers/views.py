"""Views, ``_all_docs`` and the bulk endpoints.

View rows are relayed as the backend sends them, chunk by chunk, each chunk flushed before the
next is read: the service holds one chunk, however large the view.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from .. import options
from ..backend import COUCHDB, kind_of
from ..couch import relax
from ..couch.errors import BadRequest
from . import docid_range
from .base import JSON_TYPE, ApiHandler, json_text


class RowsHandler(ApiHandler):
    """What a view and ``_all_docs`` share: their query, rows relayed as they come."""

    couchdb_methods = "GET,HEAD,POST"

    def keys_body(self) -> dict[str, Any]:
        """The ``{"keys": [...]}`` body of a POST query (keys optional)."""
        body = self.json_body()
        if "keys" in body and not isinstance(body["keys"], list):
            raise BadRequest("bad_request", "`keys` member must be an array.")
        return {"keys": body["keys"]} if "keys" in body else {}

    def relay(self, db: str, name: str, extra: dict[str, Any]) -> Generator[Any, Any, None]:
        query = {**options.parse(self.request.arguments, options.VIEW), **extra}
        yield from self.check_reduce(db, name, query)
        bounded = name != "_all_docs" and "keys" not in query and docid_range.applies(query)
        # pouchdb-server ignores the doc-id bounds, which every pager relies on.
        if bounded and (yield kind_of(self.own_couch)) != COUCHDB:
            if (yield from self.reduces(db, name, query)):  # reduced rows have no doc ids
                body = yield self.database(db).stream_view(name, **query)
                yield from self.relay_body(body, {"Content-Type": JSON_TYPE})
            else:
                yield self.relay_docid_range(db, name, query)
            return
        body = yield self.database(db).stream_view(name, **query)
        headers = {"Content-Type": body.headers.get("content-type", "application/json")}
        if "etag" in body.headers:
            headers["ETag"] = body.headers["etag"]
        yield from self.relay_body(body, headers)

    def reduces(self, db: str, name: str, query: dict[str, Any]) -> Generator[Any, Any, bool]:
        """Whether view ``name`` answers ``query`` with reduced rows."""
        ddoc, _, view = name.partition("/")
        design = yield self.database(db).get("_design/" + ddoc)
        reduces = "reduce" in ((design.get("views") or {}).get(view) or {})
        return reduces and query.get("reduce") is not False

    async def relay_docid_range(self, db: str, name: str, query: dict[str, Any]) -> None:
        """The rows of a map view between doc-id bounds, trimmed by settee (docid_range)."""
        database = self.database(db)
        bounds = docid_range.DocIdRange(query)
        asked = docid_range.backend_query(query)
        head = await database.view(name, **{**asked, "limit": 0})
        offset = await self._rows_before(database, name, bounds)
        skip, limit = query.get("skip", 0), query.get("limit")
        sent = 0
        async for row in database.iterview(name, **asked):
            if bounds.before_start(row.key, row.id):
                offset += 1
                continue
            if bounds.past_end(row.key, row.id) or (limit is not None and sent >= limit):
                break
            if skip:
                skip, offset = skip - 1, offset + 1
                continue
            if not sent:  # the offset is known once the rows before the range are counted
                self.write(f'{{"total_rows":{head.total_rows},"offset":{offset},"rows":[\n')
            shown = {"id": row.id, "key": row.key, "value": row.value}
            if query.get("include_docs"):
                shown["doc"] = row.doc
            self.write(("" if not sent else ",\n") + json_text(shown).rstrip("\n"))
            sent += 1
            if sent % 100 == 0:
                await self.flush()
        if not sent:
            self.write(f'{{"total_rows":{head.total_rows},"offset":{offset},"rows":[\n')
        self.finish("\n]}\n")

    @staticmethod
    async def _rows_before(database: Any, name: str, bounds: docid_range.DocIdRange) -> int:
        """The rows before the start key, counted: pouchdb-server's ``offset`` is always 0."""
        if bounds.start_key is docid_range.UNBOUNDED:
            return 0
        before = {"endkey": bounds.start_key, "inclusive_end": False, "reduce": False}
        return sum(
            [1 async for _ in database.iterview(name, descending=bounds.descending, **before)]
        )

    def check_reduce(self, db: str, name: str, query: dict[str, Any]) -> Generator[Any, Any, None]:
        """400 for ``reduce=true`` or grouping on a view that has no reduce, as CouchDB
        answers (pouchdb-server returns the map rows instead)."""
        wants_reduce = query.get("reduce") is True
        if not (wants_reduce or query.get("group") is True or "group_level" in query):
            return
        if name != "_all_docs":
            ddoc, _, view = name.partition("/")
            design = yield self.database(db).get("_design/" + ddoc)
            views = design.get("views") or {}
            if view not in views or "reduce" in views[view]:
                return  # the backend says what is missing, or reduces
        if wants_reduce:
            raise BadRequest("query_parse_error", "Reduce is invalid for map-only views.")
        raise BadRequest("query_parse_error", "Invalid use of grouping on a map view.")


class ViewHandler(RowsHandler):
    """``GET/POST /{db}/_design/{ddoc}/_view/{view}``: rows streamed to the client."""

    route = "view"

    @relax
    def get(self, db: str, ddoc: str, view: str) -> Any:
        yield from self.relay(db, f"{ddoc}/{view}", {})

    @relax
    def post(self, db: str, ddoc: str, view: str) -> Any:
        yield from self.relay(db, f"{ddoc}/{view}", self.keys_body())


class AllDocsHandler(RowsHandler):
    """``GET/POST /{db}/_all_docs``: rows streamed to the client."""

    route = "all_docs"

    @relax
    def get(self, db: str) -> Any:
        yield from self.relay(db, "_all_docs", {})

    @relax
    def post(self, db: str) -> Any:
        yield from self.relay(db, "_all_docs", self.keys_body())


class BulkDocsHandler(ApiHandler):
    """``POST /{db}/_bulk_docs``: many writes, one result per document."""

    route = "bulk_docs"
    couchdb_methods = "POST"

    @relax
    def post(self, db: str) -> Any:
        body = self.json_body()
        docs = body.get("docs")
        if not isinstance(docs, list):
            raise BadRequest("bad_request", "POST body must include `docs` parameter.")
        if not all(isinstance(doc, dict) for doc in docs):
            raise BadRequest("bad_request", "Document must be a JSON object")
        flags = {name: body[name] for name in ("new_edits", "all_or_nothing") if name in body}
        if not all(isinstance(value, bool) for value in flags.values()):
            raise BadRequest("bad_request", "`new_edits` and `all_or_nothing` must be booleans")
        self.write_json((yield self.database(db).bulk_docs(docs, **flags)), 201)


class BulkGetHandler(ApiHandler):
    """``POST /{db}/_bulk_get``: many reads (by id, optionally rev), one result per request."""

    route = "bulk_get"
    couchdb_methods = "POST"

    @relax
    def post(self, db: str) -> Any:
        query = options.parse(self.request.arguments, options.BULK_GET)
        docs = self.json_body().get("docs")
        if not isinstance(docs, list) or not all(
            isinstance(doc, dict) and isinstance(doc.get("id"), str) for doc in docs
        ):
            raise BadRequest("bad_request", "`docs` must be a list of objects with an `id`")
        results = yield self.database(db).bulk_get(docs, **query)
        self.write_json({"results": results})
