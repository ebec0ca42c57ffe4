"""View queries page by page, and design documents with Couchbase's development mode.

Pages follow each other by position, never by ``skip``: a page asks for one row more than it
delivers, and that row's key and document id are where the next page starts (``startkey`` and
``startkey_docid``, both inclusive). Rows of one key are ordered by document id, so this is
exact however often a key repeats, and rows written between pages are neither skipped nor
repeated before the position reached.

pouchdb-server ignores ``startkey_docid``: a page there starts at the first row of the key.
That is recognised (a row before the position) and, there only, the rows of that one key
already delivered are skipped with ``skip``; never a skip over the view.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any, cast

from service.couch.client import Database
from service.couch.conflicts import Flow
from service.couch.documents import Row
from service.couch.errors import NotFound
from service.couch.protocol import Request, doc_path, encode_json, json_body

from .errors import ArgumentError, KVError, NotFoundError
from .formats import Transcoder
from .ops import Entry, read
from .results import Result, ViewRow

DEFAULT_PAGE = 1000
START_OPTIONS = ("startkey", "start_key", "startkey_docid", "start_key_doc_id", "skip")


def _same(a: Any, b: Any) -> bool:
    """Two view keys are the same JSON (``1 == True`` in Python, not in CouchDB)."""
    return encode_json(a) == encode_json(b)


class Pager:
    """The pages of one query: ``page()`` is the flow of the next one ([] once done)."""

    def __init__(
        self,
        db: Database,
        design: str,
        view: str,
        page_size: int | None,
        options: dict[str, Any],
        transcoder: Transcoder | None,
    ) -> None:
        for part in (design, view):
            if not isinstance(part, str) or not part or "/" in part:
                raise ArgumentError(f"design and view are names, not {part!r}")
        limit = options.pop("limit", None)
        if limit is not None and (
            isinstance(limit, bool) or not isinstance(limit, int) or limit < 0
        ):
            raise ArgumentError(f"limit must be an int >= 0, not {limit!r}")
        if page_size is not None:
            if type(page_size) is not int or page_size < 1:
                raise ArgumentError(f"page_size must be an int >= 1, not {page_size!r}")
            if "keys" in options:
                raise ArgumentError("a keys= query is one request: it cannot be paged")
        self.db, self.name, self.page_size = db, f"{design}/{view}", page_size
        self.options, self.remaining, self.transcoder = options, limit, transcoder
        self.descending = bool(options.get("descending"))
        self.start: Row | None = None
        self.run = 0  # rows delivered with the start's key
        self.ignores_docid = False
        self.done = False

    def page(self) -> Flow[list[ViewRow]]:
        if self.done:
            return []
        if self.page_size is None:
            self.done = True
            options = {**self.options, "limit": self.remaining}
            return self._rows((yield from Database.view.__wrapped__(self.db, self.name, **options)))
        ask = self.page_size if self.remaining is None else min(self.page_size, self.remaining)
        if ask == 0:
            self.done = True
            return []
        rows = yield from self._fetch(ask + 1)
        more = len(rows) > ask
        self.done = not more
        delivered = rows[:ask]
        self._follow(delivered, rows[ask] if more else None)
        if self.remaining is not None:
            self.remaining -= len(delivered)
        return self._rows(delivered)

    def _fetch(self, limit: int) -> Flow[list[Row]]:
        options = {**self.options, "limit": limit}
        start = self.start
        if start is not None:
            for name in START_OPTIONS:
                options.pop(name, None)
            options["startkey"] = start.key
            if start.id is not None:
                options["startkey_docid"] = start.id
                if self.ignores_docid and self.run:
                    options["skip"] = self.run
        rows = (yield from Database.view.__wrapped__(self.db, self.name, **options)).rows
        if start is not None and not self.ignores_docid and rows and self._before(rows[0]):
            self.ignores_docid = True  # pouchdb-server: see the module's docstring
            if self.run:
                options["skip"] = self.run
                rows = (yield from Database.view.__wrapped__(self.db, self.name, **options)).rows
        return rows

    def _before(self, row: Row) -> bool:
        start = self.start
        if start is None or start.id is None or row.id is None or not _same(row.key, start.key):
            return False
        return row.id > start.id if self.descending else row.id < start.id

    def _follow(self, delivered: list[Row], following: Row | None) -> None:
        """Count the rows of the last key delivered; the next page starts at ``following``."""
        for row in delivered:
            if self.start is not None and _same(row.key, self.start.key):
                self.run += 1
            else:
                self.start, self.run = row, 1
        if following is not None:
            if self.start is None or not _same(following.key, self.start.key):
                self.run = 0
            self.start = following

    def _rows(self, rows: Any) -> list[ViewRow]:
        now = time.time()
        decode = read(self.transcoder)
        found = []
        for row in rows:
            doc: Result | None = None
            if isinstance(row.get("doc"), dict):
                outcome = decode(row.id or "", Entry(row["doc"]), now)
                if isinstance(outcome, NotFoundError):
                    continue  # expired: gone for readers, though the index still has it
                doc = outcome.result if isinstance(outcome, KVError) else cast(Result, outcome)
            found.append(ViewRow(row.key, row.value, row.id, doc))
        return found


def design_id(name: Any, use_devmode: bool) -> str:
    """``_design/NAME``, with ``dev_`` before NAME in development mode."""
    if isinstance(name, str):
        name = name.removeprefix("_design/")
    if not isinstance(name, str) or not name or "/" in name:
        raise ArgumentError(f"a design document's name is a str without '/', not {name!r}")
    if use_devmode and not name.startswith("dev_"):
        name = "dev_" + name
    return "_design/" + name


def _current_rev(db: Database, doc_id: str) -> Flow[str | None]:
    try:
        return (yield from Database.rev.__wrapped__(db, doc_id))
    except NotFound:
        return None


def _put(db: Database, doc_id: str, ddoc: Mapping[str, Any], rev: str | None) -> Flow[Result]:
    body = {k: v for k, v in ddoc.items() if k not in ("_id", "_rev")}
    if rev is not None:
        body["_rev"] = rev
    data, headers = json_body(body)
    answer = (yield Request("PUT", doc_path(db.name, doc_id), {}, headers, data)).json()
    return Result(doc_id, answer, answer["rev"])


def design_create(db: Database, name: str, ddoc: Any, use_devmode: bool) -> Flow[Result]:
    """Write design document ``name`` (a dict, or its JSON text), over any it replaces."""
    doc_id = design_id(name, use_devmode)
    if isinstance(ddoc, str | bytes):
        try:
            ddoc = json.loads(ddoc)
        except ValueError as exc:
            raise ArgumentError(f"the design document is not JSON: {exc}") from None
    if not isinstance(ddoc, Mapping):
        raise ArgumentError(f"a design document is a dict, not {type(ddoc).__name__}")
    rev = yield from _current_rev(db, doc_id)
    return (yield from _put(db, doc_id, ddoc, rev))


def design_get(db: Database, name: str, use_devmode: bool) -> Flow[Result]:
    doc_id = design_id(name, use_devmode)
    try:
        doc = (yield Request("GET", doc_path(db.name, doc_id))).json()
    except NotFound:
        raise NotFoundError("no such design document", doc_id) from None
    return Result(doc_id, doc, doc["_rev"])


def design_delete(db: Database, name: str, use_devmode: bool) -> Flow[Result]:
    doc_id = design_id(name, use_devmode)
    rev = yield from _current_rev(db, doc_id)
    if rev is None:
        raise NotFoundError("no such design document", doc_id)
    answer = (yield Request("DELETE", doc_path(db.name, doc_id), {"rev": rev})).json()
    return Result(doc_id, answer, answer.get("rev"))


def design_publish(db: Database, name: str) -> Flow[Result]:
    """Copy ``_design/dev_NAME`` to ``_design/NAME`` (replacing it) and remove the dev copy."""
    dev = yield from design_get(db, name, True)
    production_id = "_design/" + dev.key.removeprefix("_design/dev_")
    rev = yield from _current_rev(db, production_id)
    result = yield from _put(db, production_id, dev.value, rev)
    yield Request("DELETE", doc_path(db.name, dev.key), {"rev": dev.cas or ""})
    return result
