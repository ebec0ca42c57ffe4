"""The data directory: one SQLite file per database, and how each connection is opened.

A database's file is its name quoted for a file name (``a/b`` → ``a%2Fb.sqlite``), so
every legal CouchDB name maps to one file and back. Every connection uses WAL (readers never
wait for the writer) and ``synchronous=FULL``: a commit is on disk before it is acknowledged.

SQLite's page caches are bounded for the whole process (``HEAP_LIMIT``), not per connection:
the store opens a reader connection per concurrent read, and a cache of 2 MB for each of 32
took 65 MiB more than one bound cache (tests/test_store_memory.py); the operating system
caches the files anyway.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from urllib.parse import quote, unquote

SUFFIX = ".sqlite"
HEAP_LIMIT = 16 * 2**20  # bytes: SQLite's soft limit on its heap, shared by every connection

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID;
-- One row per document: its winning revision, cached, and the seq of its last write.
CREATE TABLE IF NOT EXISTS docs (
    id TEXT PRIMARY KEY,
    rev TEXT NOT NULL,
    deleted INTEGER NOT NULL,
    seq INTEGER NOT NULL
) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS docs_by_seq ON docs (seq);
-- One row per revision: its parent, whether it is a leaf or deleted, and its body (NULL for
-- an ancestor known only by its id).
CREATE TABLE IF NOT EXISTS revs (
    doc TEXT NOT NULL,
    rev TEXT NOT NULL,
    parent TEXT,
    deleted INTEGER NOT NULL,
    leaf INTEGER NOT NULL,
    seq INTEGER,
    body TEXT,
    PRIMARY KEY (doc, rev)
) WITHOUT ROWID;
-- _local documents: no revision tree, never in _changes.
CREATE TABLE IF NOT EXISTS local (id TEXT PRIMARY KEY, rev INTEGER NOT NULL, body TEXT NOT NULL)
    WITHOUT ROWID;
-- Attachment contents, once per content whatever the number of revisions holding them.
CREATE TABLE IF NOT EXISTS blobs (digest TEXT PRIMARY KEY, data BLOB NOT NULL) WITHOUT ROWID;
"""


def file_of(directory: Path, name: str) -> Path:
    return directory / (quote(name, safe="") + SUFFIX)


def names_in(directory: Path) -> list[str]:
    """The names of the databases whose files are in ``directory``, sorted."""
    found = (unquote(p.name[: -len(SUFFIX)]) for p in directory.glob("*" + SUFFIX))
    return sorted(found)


def connect(path: Path, *, create: bool = False, schema: str = SCHEMA) -> sqlite3.Connection:
    """A connection to a database file, in autocommit mode (transactions are explicit).

    FileNotFoundError if the file is missing and ``create`` is false; ``schema`` is run on
    a connection that may create the file.
    """
    if not create and not path.exists():
        raise FileNotFoundError(path)
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA busy_timeout=10000")
    conn.execute(f"PRAGMA soft_heap_limit={HEAP_LIMIT}")  # the process's, set again harmlessly
    if create and schema:
        conn.executescript(schema)
    return conn


def remove(path: Path) -> None:
    """Delete a database's file and its WAL companions."""
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
