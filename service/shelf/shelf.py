"""``Shelf``: the standard library's ``shelve.Shelf`` over a CouchDB database.

One key is one document (``keys`` says how keys map to ids); its value is pickled, or JSON
(``formats``). Reads of many values go in pages of ``_all_docs?include_docs=true``, never
one request per key; ``len()`` is one request.

Writes from many processes: a shelf remembers, per key it has read or written, the rev it
last saw, and writes over that rev. By default a write that conflicts (someone else wrote
in between) learns the current rev and is sent again, with backoff, until it wins, at most
``ATTEMPTS`` times (then ConflictError): the last writer wins. With
``raiseconflicts=True`` the first conflict raises ConflictError instead, after the shelf
has fetched the key's current rev (and, with writeback, its current value): writing again
then overwrites what the other writer wrote, knowingly. A write of a key the shelf has not
seen expects it absent.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import ItemsView, Iterator, Mapping, MutableMapping, ValuesView
from typing import Any

from ..couch import blocking
from ..couch.documents import Row
from ..couch.errors import Conflict, HTTPError, NotFound, PreconditionFailed
from ..couch.protocol import encode_json
from ..couch.targets import Target, blocking_database
from . import keys as keymap
from .errors import ConflictError, ReadOnlyError
from .formats import get_format

FLAGS = ("c", "w", "r", "n")
PAGE = 1000  # rows per _all_docs request when reading many keys
ATTEMPTS = 16  # tries of a conflicting write before giving up
BACKOFF = 0.005  # seconds before the second retry, doubled after each
MAX_BACKOFF = 0.5


def open(
    target: Target,
    flag: str = "c",
    writeback: bool = False,
    raiseconflicts: bool = False,
    *,
    format: str = "pickle",
) -> Shelf:
    """Open the database ``target`` (a Database, a URL or a local path) as a Shelf.

    ``flag``: ``"c"`` creates the database if missing (the default), ``"w"`` opens an
    existing one, ``"r"`` opens an existing one read-only, ``"n"`` starts a new, empty one.
    ``format``: ``"pickle"`` (any picklable value) or ``"json"``.
    """
    return Shelf(target, flag, writeback, raiseconflicts, format=format)


class Shelf(MutableMapping[str, Any]):
    """A persistent dictionary in a CouchDB database; see ``open`` for the arguments.

    ``d[key]`` returns a new copy of the value each time (KeyError if missing), unless
    ``writeback=True``: then what is read or written is cached, and the cache's values are
    written back, those that changed, in one ``_bulk_docs`` request by ``sync()`` and
    ``close()``. Use it in one thread at a time, and close it (or use ``with``).
    """

    def __init__(
        self,
        target: Target,
        flag: str = "c",
        writeback: bool = False,
        raiseconflicts: bool = False,
        *,
        format: str = "pickle",
    ) -> None:
        if flag not in FLAGS:
            raise ValueError(f"flag must be one of {', '.join(FLAGS)}, not {flag!r}")
        self.format = get_format(format)
        db = blocking_database(target)
        self._owns_db = db is not target
        try:
            _prepare(db, flag)
        except BaseException:
            if self._owns_db:
                db.close()
            raise
        self._db: blocking.Database | None = db
        self.flag = flag
        self.writeback = bool(writeback)
        self.raiseconflicts = bool(raiseconflicts)
        self._revs: dict[str, str] = {}  # doc id → the rev this shelf last saw
        self._cache: dict[str, tuple[Any, bytes]] = {}  # key → (value, stored form), writeback

    def __repr__(self) -> str:
        name = self._db.name if self._db is not None else "closed"
        return f"<{type(self).__name__} {name!r} flag={self.flag!r} format={self.format.name!r}>"

    @property
    def db(self) -> blocking.Database:
        """The database (ValueError once the shelf is closed)."""
        if self._db is None:
            raise ValueError("invalid operation on a closed shelf")
        return self._db

    def _writable(self) -> blocking.Database:
        db = self.db
        if self.flag == "r":
            raise ReadOnlyError(f"shelf {db.name!r} was opened read-only")
        return db

    # -- one key

    def __getitem__(self, key: str) -> Any:
        doc_id = keymap.doc_id(key)
        if self.writeback and key in self._cache:
            return self._cache[key][0]
        try:
            doc = self._document(doc_id)
        except NotFound:
            raise KeyError(key) from None
        return self._loaded(key, doc)

    def _document(self, doc_id: str) -> Mapping[str, Any]:
        """The document ``doc_id`` (NotFound if missing)."""
        doc = self.db.get(doc_id)
        assert isinstance(doc, Mapping)  # one id, one document
        return doc

    def _loaded(self, key: str, doc: Mapping[str, Any]) -> Any:
        """The value of ``doc``, remembered as seen (and cached, with writeback)."""
        value = self.format.decode(doc, key)
        self._revs[doc["_id"]] = doc["_rev"]
        if self.writeback:
            self._cache[key] = (value, encode_json(doc.get(self.format.field)))
        return value

    def __setitem__(self, key: str, value: Any) -> None:
        doc_id = keymap.doc_id(key)
        db = self._writable()
        stored = self.format.encode(value)
        for attempt in range(ATTEMPTS):
            doc = {"_id": doc_id, self.format.field: stored}
            if rev := self._revs.get(doc_id):
                doc["_rev"] = rev
            try:
                db.save(doc)
            except Conflict:
                self._lost([key], attempt)
                continue
            self._revs[doc_id] = doc["_rev"]
            if self.writeback:
                self._cache[key] = (value, encode_json(stored))
            return
        raise ConflictError([key], f"still conflicting after {ATTEMPTS} attempts")

    def __delitem__(self, key: str) -> None:
        doc_id = keymap.doc_id(key)
        db = self._writable()
        self._cache.pop(key, None)
        for attempt in range(ATTEMPTS):
            rev = self._revs.get(doc_id) or self._current_revs([doc_id]).get(doc_id)
            if rev is None:
                raise KeyError(key)
            try:
                db.delete({"_id": doc_id, "_rev": rev})
            except (Conflict, NotFound):
                self._lost([key], attempt)
                continue
            self._revs.pop(doc_id, None)
            return
        raise ConflictError([key], f"still conflicting after {ATTEMPTS} attempts")

    def _lost(self, keys: list[str], attempt: int) -> None:
        """A write of ``keys`` conflicted: learn their current revs, then raise
        ConflictError (raiseconflicts, after refreshing the cache) or wait to try again."""
        ids = [keymap.doc_id(key) for key in keys]
        if self.raiseconflicts:
            self._refresh(keys)
            raise ConflictError(keys, "changed by another writer since this shelf saw them")
        for doc_id in ids:
            self._revs.pop(doc_id, None)
        self._revs.update(self._current_revs(ids))
        back_off(attempt)

    def _refresh(self, keys: list[str]) -> None:
        """Fetch the current documents of ``keys``: their revs, and cached values."""
        ids = [keymap.doc_id(key) for key in keys]
        docs = self.db.get(ids)
        assert isinstance(docs, list)  # a list of ids, a list of documents
        for key, doc_id, doc in zip(keys, ids, docs, strict=True):
            self._revs.pop(doc_id, None)
            self._cache.pop(key, None)
            if doc is not None:
                self._loaded(key, doc)

    def _current_revs(self, ids: list[str]) -> dict[str, str]:
        """The current revs of the live documents among ``ids``, in one request."""
        rows = self.db.view("_all_docs", keys=ids).rows
        return {
            str(row.id): row.value["rev"]
            for row in rows
            if row.get("error") is None and not row.value.get("deleted")
        }

    def __contains__(self, key: object) -> bool:
        doc_id = keymap.doc_id(key)
        if self.writeback and key in self._cache:
            return True
        return doc_id in self._current_revs([doc_id])

    # -- every key

    def __len__(self) -> int:
        """One request: all documents (``total_rows``) less the design documents."""
        view = self.db.view("_all_docs", startkey="_design/", endkey="_design0")
        return (view.total_rows or 0) - len(view.rows)

    def __iter__(self) -> Iterator[str]:
        for key, _ in self._rows(include_docs=False):
            yield key

    def items(self) -> ItemsView[str, Any]:
        return _BulkItems(self)

    def values(self) -> ValuesView[Any]:
        return _BulkValues(self)

    def _items(self, bounds: Mapping[str, Any] | None = None) -> Iterator[tuple[str, Any]]:
        """Every (key, value) in ``_all_docs`` order, in pages, within ``bounds``."""
        for key, row in self._rows(include_docs=True, bounds=bounds):
            if self.writeback and key in self._cache:
                yield key, self._cache[key][0]
            else:
                yield key, self._loaded(key, row["doc"])

    def _rows(
        self, *, include_docs: bool, bounds: Mapping[str, Any] | None = None
    ) -> Iterator[tuple[str, Row]]:
        """(key, row) for the ``_all_docs`` rows of keys (not design documents), ``PAGE``
        rows per request, each page starting after the last id of the one before."""
        options: dict[str, Any] = {**(bounds or {}), "limit": PAGE}
        if include_docs:
            options["include_docs"] = True
        while True:
            rows = self.db.view("_all_docs", **options).rows
            for row in rows:
                if (key := keymap.key_of(row["id"])) is not None:
                    yield key, row
            if len(rows) < PAGE:
                return
            options.update(startkey=rows[-1].id, skip=1)

    def clear(self) -> None:
        """Delete every key, a page of them per ``_bulk_docs`` request."""
        db = self._writable()
        self._cache.clear()
        page: list[tuple[str, Row]] = []
        for key, row in self._rows(include_docs=False):  # the next page is read after these
            page.append((key, row))
            if len(page) == PAGE:
                self._delete(db, page)
                page = []
        if page:
            self._delete(db, page)

    def _delete(self, db: blocking.Database, rows: list[tuple[str, Row]]) -> None:
        docs = [{"_id": row["id"], "_rev": row.value["rev"], "_deleted": True} for _, row in rows]
        self._save_all(db, docs, [key for key, _ in rows])

    # -- writing back

    def sync(self) -> None:
        """Write back the cached values that changed since they were read or written (one
        ``_bulk_docs`` request), then empty the cache. Without writeback, nothing to do."""
        if self._db is None:
            raise ValueError("invalid operation on a closed shelf")
        self._write_back(list(self._cache))

    def _write_back(self, keys: list[str]) -> None:
        """Write the changed values among the cached ``keys``, and forget them; those that
        lost to another writer (ConflictError) stay cached, refreshed with raiseconflicts."""
        changed: dict[str, Any] = {}
        for key in keys:
            value, stored = self._cache[key]
            content = self.format.encode(value)
            if encode_json(content) != stored:
                changed[key] = content
        if changed:
            docs = []
            for key, content in changed.items():
                doc_id = keymap.doc_id(key)
                doc = {"_id": doc_id, self.format.field: content}
                if rev := self._revs.get(doc_id):
                    doc["_rev"] = rev
                docs.append(doc)
            try:
                self._save_all(self._writable(), docs, list(changed))
            except ConflictError as exc:
                keys = [key for key in keys if key not in exc.keys]
                raise
            finally:
                for key in keys:
                    self._cache.pop(key, None)
        else:
            for key in keys:
                self._cache.pop(key, None)

    def _save_all(self, db: blocking.Database, docs: list[dict[str, Any]], keys: list[str]) -> None:
        """Save ``docs`` (of ``keys``) in bulk; conflicts are retried or raised as for one.

        A deletion whose document is gone meanwhile is done."""
        by_id = dict(zip((doc["_id"] for doc in docs), keys, strict=True))
        for attempt in range(ATTEMPTS):
            result = db.save(docs)
            for doc_id, doc in result.resolved.items():
                if doc.get("_deleted"):
                    self._revs.pop(doc_id, None)
                else:
                    self._revs[doc_id] = doc["_rev"]
            for doc_id, entry in result.pending.items():
                if entry["error"] != "conflict":
                    raise HTTPError(entry["error"], f"{by_id[doc_id]!r}: {entry['reason']}")
            if not result.pending:
                return
            lost = [by_id[doc_id] for doc_id in result.pending]
            self._lost(lost, attempt)
            docs = []
            for entry in result.pending.values():
                doc = entry["doc"]
                doc.pop("_rev", None)
                if rev := self._revs.get(doc["_id"]):
                    doc["_rev"] = rev
                elif doc.get("_deleted"):
                    continue
                docs.append(doc)
            if not docs:
                return
        raise ConflictError(lost, f"still conflicting after {ATTEMPTS} attempts")

    def close(self) -> None:
        """Write back (with writeback) and close; closing again does nothing."""
        if self._db is None:
            return
        try:
            self.sync()
        finally:
            if self._owns_db:
                self._db.close()
            self._db = None

    def __enter__(self) -> Shelf:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class _BulkItems(ItemsView[str, Any]):
    """``items()`` read in pages of whole documents, not one request per key."""

    _mapping: Shelf

    def __iter__(self) -> Iterator[tuple[str, Any]]:
        return self._mapping._items()


class _BulkValues(ValuesView[Any]):
    """``values()`` read in pages of whole documents, not one request per key."""

    _mapping: Shelf

    def __iter__(self) -> Iterator[Any]:
        return (value for _, value in self._mapping._items())


def back_off(attempt: int) -> None:
    """Wait before trying a lost write again: not before the first retry (the rev was
    stale), then twice as long each time, with jitter so that rivals fall out of step."""
    if attempt:
        delay = min(MAX_BACKOFF, BACKOFF * 2 ** (attempt - 1))
        time.sleep(delay * random.uniform(0.5, 1.0))


def _prepare(db: blocking.Database, flag: str) -> None:
    """Make the database what ``flag`` asks: created, checked, or new and empty."""
    if flag == "n":
        with contextlib.suppress(NotFound):
            db.couch.delete(db.name)
    if db.exists():
        return
    if flag in ("w", "r"):
        raise NotFound("not_found", f"no database {db.name!r}; flag {flag!r} needs one")
    with contextlib.suppress(PreconditionFailed):  # another process made it first
        db.couch.create(db.name)
