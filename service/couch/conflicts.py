"""Saving documents and settling conflicts, as operations (generators of requests).

A bulk save does not fail as a whole when some documents conflict: each document is resolved
(written) or pending (not written, with CouchDB's error). ``ConflictResolution`` is that
result, and it can settle what is pending by merging with the server's copy or overwriting it.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable, Mapping, MutableMapping
from typing import TYPE_CHECKING, Any, TypeVar

from .documents import as_document
from .errors import HTTPError
from .protocol import Request, Response, db_path, encode_json, validate_doc_id

if TYPE_CHECKING:
    from .client import Database

Doc = MutableMapping[str, Any]
Merge = Callable[[Doc, "Doc | None"], "Doc | None"]
T = TypeVar("T")
Flow = Generator[Request, Response, T]
"""An operation: yields requests, is sent their responses, returns a ``T``."""


def bulk_body(docs: Iterable[Mapping[str, Any]], options: Mapping[str, Any]) -> bytes:
    """The JSON body of ``_bulk_docs``; raises BadRequest before any request for bad input."""
    docs = list(docs)
    for doc in docs:
        if not isinstance(doc, Mapping):
            raise TypeError(f"documents must be dicts, not {type(doc).__name__}")
        if "_id" in doc:
            validate_doc_id(doc["_id"])
    body: dict[str, Any] = {"docs": docs}
    if options.get("all_or_nothing"):
        body["all_or_nothing"] = True
    if options.get("new_edits") is False:
        body["new_edits"] = False
    return encode_json(body)


def save_bulk(db: str, docs: list[Doc], options: Mapping[str, Any]) -> Flow:
    """Save ``docs`` in one request; returns ``(resolved, pending)`` keyed by id.

    Options: ``all_or_nothing``; ``new_edits=False`` to store replicated revisions as given.

    Written documents get their new ``_id`` and ``_rev``; the others are pending as
    ``{"doc": doc, "error": ..., "reason": ...}``. CouchDB 3 refuses ``all_or_nothing``
    whole (417, nothing written) with a reason per document: every document is then pending
    with its own.
    """
    body = bulk_body(docs, options)
    request = Request(
        "POST", db_path(db, "_bulk_docs"), {}, {"Content-Type": "application/json"}, body
    )
    try:
        results = (yield request).json()
    except HTTPError as exc:
        if not (exc.status == 417 and _per_document(exc.response, docs)):
            raise
        results = exc.response
    if options.get("new_edits") is False:
        # Replicated revisions are stored as given; CouchDB reports only the failures.
        failures = {result["id"]: result for result in results}
        results = [failures.get(doc["_id"], {"id": doc["_id"], "rev": doc["_rev"]}) for doc in docs]
    resolved: dict[str, Doc] = {}
    pending: dict[str, dict[str, Any]] = {}
    for doc, result in _paired(docs, results):
        if "error" in result:
            # CouchDB, pouchdb-server and the embedded store name the document in every
            # result; should a server not, the document's own _id stands in for it.
            pending[result.get("id") or doc["_id"]] = {
                "doc": doc,
                "error": result["error"],
                "reason": result.get("reason", ""),
            }
        else:
            doc["_id"], doc["_rev"] = result["id"], result["rev"]
            resolved[result["id"]] = doc
    return resolved, pending


def _paired(docs: list[Doc], results: list[Any]) -> Iterable[tuple[Doc, Any]]:
    """Each document with its result. CouchDB answers in the documents' order; pouchdb-server
    puts the ones validate_doc_update refused first. So results go by id, and by order only
    where ids cannot tell (a document without ``_id``, an id given twice)."""
    ids = [doc.get("_id") for doc in docs]
    by_id = {result.get("id"): result for result in results}
    if None in ids or len(set(ids)) != len(ids) or set(by_id) != set(ids):
        return zip(docs, results, strict=True)
    return [(doc, by_id[doc["_id"]]) for doc in docs]


def _per_document(answer: Any, docs: list[Doc]) -> bool:
    """Whether ``answer`` holds one result object per document."""
    return (
        isinstance(answer, list)
        and len(answer) == len(docs)
        and all(isinstance(result, Mapping) for result in answer)
    )


def fetch_current(db: str, ids: list[str], *, include_docs: bool) -> Flow:
    """The server's current rows for ``ids`` from ``_all_docs``: ``{id: row}``."""
    if not ids:
        return {}
    for doc_id in ids:
        validate_doc_id(doc_id)
    query = {"include_docs": "true"} if include_docs else {}
    response = yield Request(
        "POST",
        db_path(db, "_all_docs"),
        query,
        {"Content-Type": "application/json"},
        encode_json({"keys": ids}),
    )
    return {row["key"]: row for row in response.json()["rows"]}


def current_rev(row: Mapping[str, Any] | None) -> str | None:
    """The rev to write over: the live document's, or None when missing or deleted."""
    if not row or "error" in row or row.get("value", {}).get("deleted"):
        return None
    return row["value"]["rev"]


class ConflictResolution:
    """The result of ``Database.save``: what was written, and what conflicted.

    ``resolved`` maps id → the saved dict (``_id``/``_rev`` updated); ``pending`` maps id →
    ``{"doc": ..., "error": "conflict", "reason": ...}``. ``resolve(merge)`` and
    ``overwrite()`` settle pending conflicts and return this object, updated.
    """

    def __init__(
        self, db: Database, resolved: dict[str, Doc], pending: dict[str, dict[str, Any]]
    ) -> None:
        self._db = db
        self.resolved = resolved
        self.pending = pending

    def __repr__(self) -> str:
        # corduroy's: the guide reads the outcome of a save off it.
        if self.pending:
            plural = "s" if len(self.pending) != 1 else ""
            return f"<Conflict{plural}: {', '.join(sorted(self.pending))}>"
        plural = "s" if len(self.resolved) != 1 else ""
        return f"<Success: {len(self.resolved)} doc{plural} updated>"

    def resolve(self, merge: Merge, callback: Callable | None = None) -> Any:
        """Merge each conflicted doc with the server's copy via ``merge(local, server)``.

        A dict returned by ``merge`` is written; None leaves the doc pending.
        """
        return self._db._runner.run(self._resolve(merge), callback)

    def overwrite(self, callback: Callable | None = None) -> Any:
        """Write the pending docs over the server's copies (fetching their current revs)."""
        return self._db._runner.run(self._resolve(None), callback)

    def _conflicted(self) -> dict[str, dict[str, Any]]:
        return {i: entry for i, entry in self.pending.items() if entry["error"] == "conflict"}

    def _resolve(self, merge: Merge | None) -> Flow:
        conflicted = self._conflicted()
        current = yield from fetch_current(
            self._db.name, list(conflicted), include_docs=merge is not None
        )
        retry: list[Doc] = []
        for doc_id, entry in conflicted.items():
            row = current.get(doc_id)
            rev = current_rev(row)
            if merge is None:
                doc = entry["doc"]
            else:
                server_doc = as_document(row.get("doc")) if rev else None
                doc = merge(entry["doc"], server_doc)
                if doc is None:
                    continue
            doc["_id"] = doc_id
            if rev is None:
                doc.pop("_rev", None)
            else:
                doc["_rev"] = rev
            retry.append(doc)
        if retry:
            resolved, pending = yield from save_bulk(self._db.name, retry, {})
            for doc_id in resolved:
                self.pending.pop(doc_id, None)
            self.resolved.update(resolved)
            self.pending.update(pending)
        return self
