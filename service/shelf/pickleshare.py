"""``PickleShareDB``: PickleShare's store over a CouchDB database, a ``Shelf`` with its extras.

PickleShare kept one file per key in a directory tree, so keys read as paths
(``paths/are/ok/key``) and globs select them. Here a key is a document and
``keys("paths/*/ok/*")`` reads only the ``_all_docs`` range of the pattern's literal prefix.

Hashed categories keep many small values in few documents: ``hset(root, key, value)`` puts
the pair into the dict stored at ``root/XX``, ``XX`` being one of 256 buckets chosen from
the key (a hash that is the same in every process). ``hcompress(root)`` merges the buckets
into ``root/xx`` and deletes them, so ``hset`` starts again on small dicts; ``hget`` then
finds a compressed key only with ``fast_only=False``. Unlike PickleShare's, ``hset`` is safe
with many writers (read, change and write over the rev read, again if another came first),
and ``hcompress`` never deletes a bucket that changed while it ran.

``waitget(key)`` waits on the ``_changes`` feed for that one document (a longpoll with the
``_doc_ids`` filter), so it returns as soon as another process writes the key.
"""

from __future__ import annotations

import contextlib
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from ..couch.errors import Conflict, NotFound
from ..couch.targets import Target
from . import keys as keymap
from .errors import ConflictError
from .shelf import ATTEMPTS, Shelf, back_off

BUCKETS = 256
COMPRESSED = "xx"
WATCH = 1.0  # seconds between looks at whether a waited-on feed has failed
_MISSING: Any = object()


def bucket_of(key: str) -> str:
    """The bucket of a hashed category that holds ``key``: two hex digits, the same in
    every process (``hash()`` of a str is not)."""
    if not isinstance(key, str):
        raise TypeError(f"hashed category keys are str, not {type(key).__name__}: {key!r}")
    return f"{zlib.crc32(key.encode()) % BUCKETS:02x}"


class PickleShareDB(Shelf):
    """A Shelf (flag ``"c"``) with PickleShare's globs, hashed categories, waits and links.

    ``format``, ``writeback`` and ``raiseconflicts`` are the Shelf's.
    """

    def __init__(
        self,
        target: Target,
        *,
        writeback: bool = False,
        raiseconflicts: bool = False,
        format: str = "pickle",
    ) -> None:
        super().__init__(target, "c", writeback, raiseconflicts, format=format)

    def keys(self, globpat: str | None = None) -> list[str]:  # type: ignore[override]
        """Every key, or those matching ``globpat`` (``*``, ``?``, ``[...]``; none crosses a
        ``/``), in id order."""
        if globpat is None:
            return list(self)
        return [key for key, _ in self._matching(globpat, include_docs=False)]

    def _matching(self, globpat: str, *, include_docs: bool) -> Iterator[tuple[str, Any]]:
        """(key, row) for each key matching ``globpat``, from its prefix's id range."""
        if not isinstance(globpat, str):
            raise TypeError(f"a glob is a str, not {type(globpat).__name__}")
        for key, row in self._rows(include_docs=include_docs, bounds=keymap.glob_range(globpat)):
            if keymap.glob_match(key, globpat):
                yield key, row

    # -- hashed categories

    def hset(self, hashroot: str, key: str, value: Any) -> None:
        """Set ``key`` to ``value`` in hashed category ``hashroot``."""
        bucket = f"{hashroot}/{bucket_of(key)}"
        self._update(bucket, lambda pairs: {**pairs, key: value})

    def hget(self, hashroot: str, key: str, default: Any = _MISSING, fast_only: bool = True) -> Any:
        """The value of ``key`` in hashed category ``hashroot``: from its bucket, else (with
        ``fast_only=False``) from the whole category, compressed part included; else
        ``default``, or KeyError without one."""
        pairs = self.get(f"{hashroot}/{bucket_of(key)}", {})
        if key in pairs:
            return pairs[key]
        if not fast_only:
            pairs = self.hdict(hashroot)
            if key in pairs:
                return pairs[key]
        if default is _MISSING:
            raise KeyError(key)
        return default

    def hdict(self, hashroot: str) -> dict[str, Any]:
        """Every pair of hashed category ``hashroot``: the compressed ones, then the
        buckets' (newer, so they win), in one or a few requests."""
        merged: dict[str, Any] = {}
        for _, _, pairs in self._category(hashroot):
            merged.update(pairs)
        return merged

    def hcompress(self, hashroot: str) -> None:
        """Merge hashed category ``hashroot`` into ``hashroot/xx`` and delete its buckets,
        so that ``hset`` is fast again. A bucket written meanwhile is kept: its pairs stay
        where ``hget`` finds them first."""
        category = list(self._category(hashroot))
        merged: dict[str, Any] = {}
        for _, _, pairs in category:
            merged.update(pairs)
        self[f"{hashroot}/{COMPRESSED}"] = merged
        db = self._writable()
        for key, rev, _ in category:
            if key.endswith("/" + COMPRESSED):
                continue
            # A bucket written (or deleted) by another process since it was read stays.
            with contextlib.suppress(Conflict, NotFound):
                db.delete({"_id": keymap.doc_id(key), "_rev": rev})
            self._revs.pop(keymap.doc_id(key), None)

    def _category(self, hashroot: str) -> Iterator[tuple[str, str, dict[str, Any]]]:
        """(key, rev, pairs) of a category's documents, the compressed one first; their
        revs are remembered as seen."""
        found = []
        for key, row in self._matching(f"{hashroot}/*", include_docs=True):
            doc = row["doc"]
            found.append((key, doc["_rev"], self.format.decode(doc, key)))
            self._revs[doc["_id"]] = doc["_rev"]  # seen: hcompress writes over it
        found.sort(key=lambda entry: not entry[0].endswith("/" + COMPRESSED))
        return iter(found)

    def _update(self, key: str, change: Callable[[dict[str, Any]], Any]) -> None:
        """Read ``key``, ``change`` its value and write it over the rev read; again, with
        the newer value, if another writer came first."""
        doc_id = keymap.doc_id(key)
        db = self._writable()
        for attempt in range(ATTEMPTS):
            back_off(attempt)
            try:
                doc = self._document(doc_id)
            except NotFound:
                current, rev = {}, None
            else:
                current, rev = self.format.decode(doc, key), doc["_rev"]
            new = {"_id": doc_id, self.format.field: self.format.encode(change(current))}
            if rev:
                new["_rev"] = rev
            try:
                db.save(new)
            except Conflict:
                continue
            self._revs[doc_id] = new["_rev"]
            self._cache.pop(key, None)
            return
        raise ConflictError([key], f"still conflicting after {ATTEMPTS} attempts")

    # -- waiting, links, the cache

    def waitget(self, key: str, maxwaittime: float = 60) -> Any:
        """The value of ``key`` as soon as it has one, waiting at most ``maxwaittime``
        seconds (then KeyError).

        It follows the key's changes rather than polling: after one read, a continuous
        ``_changes`` feed from the start, filtered to the key's document, whose first row
        with a value (written since the read, or by another process while it waits) ends
        the wait. The time limit
        is kept here, not by the server (pouchdb-server ignores a longpoll's ``timeout``).
        """
        deadline = time.monotonic() + maxwaittime
        with contextlib.suppress(KeyError):
            return self[key]  # at once, when it has a value
        doc_id = keymap.doc_id(key)
        found: list[Mapping[str, Any]] = []
        written = threading.Event()

        def changed(seq: Any, rows: list[Mapping[str, Any]]) -> None:
            for row in rows:
                if row.get("id") == doc_id and not row.get("deleted") and row.get("doc"):
                    found.append(row["doc"])
                    written.set()

        feed = self.db.changes(
            feed="continuous",
            callback=changed,
            since=0,
            filter="_doc_ids",
            doc_ids=[doc_id],
            include_docs=True,
            latency=0,
        )
        try:
            while not written.wait(max(0.0, min(deadline - time.monotonic(), WATCH))):
                if feed.error is not None:
                    raise feed.error
                if time.monotonic() >= deadline:
                    raise KeyError(key)
        finally:
            feed.stop()
        return self._loaded(key, found[-1])

    def getlink(self, folder: str) -> Link:
        """Attribute access to the keys under ``folder/``: ``getlink("a").b`` is ``db["a/b"]``."""
        return Link(self, folder)

    def uncache(self, *keys: str) -> None:
        """Forget what the shelf holds for ``keys`` (all, if none given): the revs it saw
        and, with writeback, the cached values, written back first if they changed. Frees
        memory after reading many large values."""
        if not keys:
            self._revs.clear()
            self._write_back(list(self._cache))
            return
        for key in keys:
            self._revs.pop(keymap.doc_id(key), None)
        self._write_back([key for key in keys if key in self._cache])


class Link:
    """The keys under one folder of a PickleShareDB, as attributes (PickleShare's links)."""

    def __init__(self, db: PickleShareDB, folder: str) -> None:
        object.__setattr__(self, "_db", db)
        object.__setattr__(self, "_folder", folder.rstrip("/"))

    def _key(self, name: str) -> str:
        return f"{self._folder}/{name}"

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        try:
            return self._db[self._key(name)]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        self._db[self._key(name)] = value

    def __delattr__(self, name: str) -> None:
        try:
            del self._db[self._key(name)]
        except KeyError:
            raise AttributeError(name) from None

    def __dir__(self) -> list[str]:
        return [key.rpartition("/")[2] for key in self._db.keys(self._key("*"))]

    def __repr__(self) -> str:
        return f"<Link {self._folder!r}: {';'.join(dir(self))}>"
