"""View indexes: a design document's views, kept in a SQLite file of their own and brought up
to date incrementally when queried.

A design document's views share one index file, named by their signature (the functions,
the options and the collator), in ``DIR/indexes/<database>/``: editing a view makes a new
index, and the old one stays until ``_view_cleanup``. A row is (view, sort key, doc id,
value sort key, n, key, value), its primary key in CouchDB's view order: the key's collation
bytes (``collation.sort_key``), then the doc id by code point, then, for the rows one document
emits with one key, the value in Erlang's term order (``collation.term_key``), as CouchDB
orders them. The
file records the database seq it has caught up with; an update maps the documents written
since, a batch at a time, and replaces their rows, each batch in one transaction with the new
seq, so that an update cut short leaves a consistent index to resume from. Each view's rows
are also counted in blocks (``blocks``), for ``offset`` and a range's ``_count``.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import shutil
import sqlite3
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from ..couch.errors import BadRequest, NotFound
from ..couch.protocol import decode_json, encode_json
from . import blocks, collation, files, purge, reads, tree
from .reduce import BUILT_IN

if TYPE_CHECKING:
    from .js import Functions

BATCH = 200  # documents mapped per call into V8, and written per index transaction

SCHEMA = (
    """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rows (
    view INTEGER NOT NULL,
    sort BLOB NOT NULL,
    doc TEXT NOT NULL,
    vsort BLOB NOT NULL,
    n INTEGER NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (view, sort, doc, vsort, n)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS rows_by_doc ON rows (doc);
CREATE TABLE IF NOT EXISTS counts (view INTEGER PRIMARY KEY, rows INTEGER NOT NULL);
"""
    + blocks.SCHEMA
)
FORMAT = "2"  # of the index file: one of another format is rebuilt (2: counted blocks)

Read = Callable[[Callable[[sqlite3.Connection], Any]], Any]


@dataclass(frozen=True, slots=True)
class Design:
    """What of a design document its views are built from."""

    id: str
    language: str
    names: tuple[str, ...]
    maps: tuple[str, ...]
    reduces: tuple[str | None, ...]
    include_design: bool
    local_seq: bool
    lib: str = "{}"  # the JSON of ``views.lib``: the modules map functions may require

    @property
    def signature(self) -> str:
        design = self.names, self.maps, self.reduces, self.include_design, self.local_seq, self.lib
        described = encode_json([self.language, *design])
        return hashlib.md5(described + (collation.COLLATOR + FORMAT).encode()).hexdigest()

    @property
    def modules(self) -> dict[str, Any]:
        """What ``require()`` in a map function finds: ``views.lib``, as in CouchDB."""
        return {"views": {"lib": decode_json(self.lib)}}

    def view(self, name: str) -> int:
        """The index of view ``name``; NotFound ``missing_named_view`` if there is none."""
        try:
            return self.names.index(name)
        except ValueError:
            raise NotFound("not_found", "missing_named_view") from None


def design_from(doc: dict[str, Any]) -> Design:
    """A design document's views; 400 ``invalid_design_doc`` as CouchDB 3.4 words it."""
    language = doc.get("language", "javascript")
    views = doc.get("views", {})
    options = doc.get("options", {})
    if not isinstance(views, dict):
        raise BadRequest("invalid_design_doc", "`views` field must have object type")
    if not isinstance(options, dict):
        raise BadRequest("invalid_design_doc", "`options` field must have object type")
    names, maps, reduces = [], [], []
    lib = views.get("lib", {})
    for name, view in views.items():
        if name == "lib" and isinstance(view, dict):
            continue  # not a view: the CommonJS modules of the map functions
        if not isinstance(view, dict) or not isinstance(view.get("map"), str):
            raise BadRequest("invalid_design_doc", f"View `{name}` must contain map function")
        reduce = view.get("reduce")
        if reduce is not None and not isinstance(reduce, str):
            raise BadRequest("invalid_design_doc", f"`{name}` reduce must be a string")
        if isinstance(reduce, str) and reduce.startswith("_") and reduce not in BUILT_IN:
            reason = f"`{reduce}` is not a supported reduce function."
            raise BadRequest("invalid_design_doc", reason)
        names.append(name)
        maps.append(view["map"])
        reduces.append(reduce)
    return Design(
        doc["_id"],
        language,
        tuple(names),
        tuple(maps),
        tuple(reduces),
        options.get("include_design") is True,
        options.get("local_seq") is True,
        encode_json(lib if isinstance(lib, dict) else {}).decode(),
    )


def validate(doc_id: str, doc: dict[str, Any]) -> None:
    """Refuse a design document whose views cannot be built, as CouchDB refuses it on
    save: 400 ``invalid_design_doc`` or ``compilation_error``."""
    if not doc_id.startswith("_design/") or doc.get("_deleted"):
        return
    if doc.get("language", "javascript") != "javascript":
        return  # CouchDB 3.4 saves a design document of another language unchecked
    design = design_from({**doc, "_id": doc_id})
    if not design.names:
        return
    functions = _functions(design)
    try:
        functions.check()
    finally:
        functions.close()


def _functions(design: Design) -> Functions:
    """The design's JavaScript: its map functions and its reduces that are not built in.
    (V8 is loaded on the first use of a view, not when settee starts.) A Mango json index
    (language ``query``) is mapped in Python."""
    if design.language == "query":
        from .jsonindex import FieldsMap

        return FieldsMap(design.maps[0])  # type: ignore[return-value]
    from .js import Functions

    reduces = [None if r is None or r.startswith("_") else r for r in design.reduces]
    return Functions(list(design.maps), reduces, list(design.names), root=design.modules)


def read_design(conn: sqlite3.Connection, ddoc_id: str) -> Design:
    """The views of design document ``ddoc_id`` (NotFound ``missing`` if there is none)."""
    return design_from(reads.document(conn, ddoc_id, None, reads.DocOptions()))


class Designs:
    """A database's design documents as views, read again only when their rev changes: a
    query then costs one lookup of the rev, not the document's body and its signature."""

    def __init__(self) -> None:
        self._known: dict[str, tuple[str, Design]] = {}
        self._lock = threading.Lock()

    def get(self, conn: sqlite3.Connection, ddoc_id: str) -> Design:
        row = conn.execute("SELECT rev, deleted FROM docs WHERE id = ?", (ddoc_id,)).fetchone()
        if row is None or row[1]:
            raise NotFound("not_found", "deleted" if row else "missing")
        with self._lock:
            known = self._known.get(ddoc_id)
        if known is not None and known[0] == row[0]:
            return known[1]
        design = read_design(conn, ddoc_id)
        with self._lock:
            self._known[ddoc_id] = (row[0], design)
        return design


def index_directory(directory: Path, db: str) -> Path:
    return directory / "indexes" / quote(db, safe="")


def remove_indexes(directory: Path, db: str) -> None:
    shutil.rmtree(index_directory(directory, db), ignore_errors=True)


class Index:
    """The index file of one design document's views in one database."""

    def __init__(self, path: Path, design: Design) -> None:
        self.path = path
        self.design = design
        self.functions = _functions(design)
        self._updating = threading.Lock()
        self._updater: sqlite3.Connection | None = None  # the one that writes, under the lock
        self._idle: list[sqlite3.Connection] = []
        self._idle_lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.closing(self._connect()) as conn:
            conn.executescript(SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        conn = files.connect(self.path, create=True, schema="")
        conn.execute("PRAGMA synchronous=NORMAL")  # an index is rebuilt, not restored
        return conn

    @contextlib.contextmanager
    def reading(self) -> Iterator[sqlite3.Connection]:
        """A connection holding one read snapshot of the index for the block."""
        with self._idle_lock:
            conn = self._idle.pop() if self._idle else None
        conn = conn or self._connect()
        conn.execute("BEGIN")
        try:
            yield conn
        finally:
            conn.execute("COMMIT")
            with self._idle_lock:
                self._idle.append(conn)

    def seq(self) -> int:
        with self.reading() as conn:
            return indexed_seq(conn)

    def update(self, read_db: Read, until: int | None = None) -> int:
        """Map what the database wrote since the index's seq (up to ``until``, the seq read
        when the query came: later writes wait for the next query); the seq now indexed."""
        if until is not None and (indexed := self.seq()) >= until:
            return indexed  # up to date: no lock, no writing connection
        with self._updating:
            if self._updater is None:
                self._updater = self._connect()
            conn = self._updater
            since = indexed_seq(conn)
            while until is None or since < until:
                batch = read_db(functools.partial(_changed, since=since, design=self.design))
                if not batch:
                    break
                mapped = [doc for _, _, doc in batch if doc is not None]
                emitted = self.functions.map(mapped) if mapped else []
                since = batch[-1][0]
                _replace(conn, [doc_id for _, doc_id, _ in batch], _rows(batch, emitted), since)
            return since

    def close(self) -> None:
        self.functions.close()
        with self._idle_lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
        with self._updating:
            if self._updater is not None:
                self._updater.close()
                self._updater = None


def indexed_seq(conn: sqlite3.Connection) -> int:
    """The database seq an index file has caught up with."""
    row = conn.execute("SELECT value FROM meta WHERE key = 'seq'").fetchone()
    return int(row[0]) if row else 0


def _changed(
    conn: sqlite3.Connection, *, since: int, design: Design
) -> list[tuple[int, str, dict[str, Any] | None]]:
    """The next batch of documents written after ``since``: (seq, id, the document a map
    function sees, or None if it has no rows: deleted, a design document, or purged whole).
    A purged document has no row in ``docs`` left: its purge, at the seq it took, stands for
    it; each purge up to the batch's last seq comes with the batch, so none is cut in two."""
    found = conn.execute(
        "SELECT seq, id, rev, deleted FROM docs WHERE seq > ? ORDER BY seq LIMIT ?",
        (since, BATCH),
    ).fetchall()
    options = reads.DocOptions(conflicts=True, local_seq=design.local_seq)
    batch: list[tuple[int, str, dict[str, Any] | None]] = []
    for seq, doc_id, rev, deleted in found:
        doc = None
        if not deleted and (design.include_design or not doc_id.startswith("_design/")):
            chosen = tree.one(conn, doc_id, rev)
            doc = None if chosen is None else reads.show(conn, doc_id, None, chosen, options)
        batch.append((seq, doc_id, doc))
    upto = found[-1][0] if len(found) == BATCH else None
    gone = purge.gone_between(conn, since, upto)
    if gone:
        batch = sorted(batch + [(seq, doc_id, None) for seq, doc_id in gone], key=lambda b: b[0])
    return batch


def _rows(
    batch: list[tuple[int, str, dict[str, Any] | None]], emitted: list[list[list[list[Any]]]]
) -> list[tuple[Any, ...]]:
    """The index rows of a mapped batch: per document mapped, per view, per row emitted."""
    per_doc = iter(emitted)
    rows = []
    for _, doc_id, doc in batch:
        if doc is None:
            continue
        for view, pairs in enumerate(next(per_doc)):
            for n, (key, value) in enumerate(pairs):
                key_json, value_json = encode_json(key).decode(), encode_json(value).decode()
                sorts = collation.sort_key(key), collation.term_key(value)
                rows.append((view, sorts[0], doc_id, sorts[1], n, key_json, value_json))
    return rows


def _replace(conn: sqlite3.Connection, doc_ids: list[str], rows: list[tuple], seq: int) -> None:
    """Replace the rows of ``doc_ids`` with ``rows``, keeping each view's count, and record
    ``seq``, in one transaction."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        marks = ",".join("?" * len(doc_ids))
        removed = conn.execute(
            f"SELECT view, sort, doc, vsort, n FROM rows WHERE doc IN ({marks})", doc_ids
        ).fetchall()
        conn.execute(f"DELETE FROM rows WHERE doc IN ({marks})", doc_ids)
        conn.executemany("INSERT INTO rows VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
        blocks.changed(conn, removed, [row[:5] for row in rows])
        delta: dict[int, int] = {}
        for row in removed:
            delta[row[0]] = delta.get(row[0], 0) - 1
        for row in rows:
            delta[row[0]] = delta.get(row[0], 0) + 1
        conn.executemany(
            "INSERT INTO counts VALUES (?, ?) ON CONFLICT (view) DO UPDATE SET rows = rows + ?",
            [(view, change, change) for view, change in delta.items() if change],
        )
        conn.execute("INSERT OR REPLACE INTO meta VALUES ('seq', ?)", (seq,))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def total_rows(conn: sqlite3.Connection, view: int) -> int:
    """The rows of one view, kept as they change."""
    row = conn.execute("SELECT rows FROM counts WHERE view = ?", (view,)).fetchone()
    return row[0] if row else 0
