"""``Store``: a data directory of databases, shared by every client of it in this process.

``Store.acquire(directory)`` gives the one Store of that directory (counting its users) and
``release()`` lets go of it; the last release closes its files and its writer thread. Reads
run in the caller's thread on a pooled connection, in a transaction of their own (one
snapshot per answer); writes go to the Store's one writer thread (``writer``).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from ..couch.errors import BadRequest, NotFound, PreconditionFailed
from ..couch.protocol import encode_json, validate_db_name
from . import access, edits, files, inline
from .continuous import Replications
from .neighbours import Neighbours
from .replicator import REPLICATOR_DB
from .scheduler import Scheduler
from .users import USERS_DB, Users
from .views import Design, Designs, Index, index_directory, remove_indexes
from .wakeup import Signal
from .writer import Work, Writer

if TYPE_CHECKING:
    from .js import Functions

MISSING_DB = "Database does not exist."


def _identity(path: Path) -> tuple[int, int] | None:
    """Which file ``path`` names now (device and inode), None if none."""
    try:
        found = os.stat(path)
    except FileNotFoundError:
        return None
    return found.st_dev, found.st_ino


class Database:
    """One database's file: reader connections, the writer's connection, its commit signal.

    Another process serving the same directory may delete the database (and make another of
    its name) while this one holds the file open: this one then reads and writes a file no
    longer in the directory. So ``identity`` is the file it opened, checked on each use
    (``replaced``), and by the writer once it holds the write lock, which a deletion holds
    while it removes the file."""

    def __init__(self, name: str, path: Path) -> None:
        self.name = name
        self.path = path
        self.identity = _identity(path)
        self.signal = Signal()
        self.dropped = False
        self._idle: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._writer: sqlite3.Connection | None = None
        self.indexes: dict[str, Index] = {}  # by signature
        self.functions: dict[str, Functions] = {}  # _changes filters, by their source's md5
        self.designs = Designs()

    @contextlib.contextmanager
    def reading(self) -> Iterator[sqlite3.Connection]:
        """A connection holding one read snapshot for the duration of the block."""
        with self._lock:
            if self.dropped:
                raise NotFound("not_found", MISSING_DB)
            conn = self._idle.pop() if self._idle else None
        if conn is None:
            conn = files.connect(self.path)
        conn.execute("BEGIN")
        try:
            yield conn
        finally:
            conn.execute("COMMIT")
            with self._lock:
                if self.dropped:
                    conn.close()
                else:
                    self._idle.append(conn)

    def replaced(self) -> bool:
        """Whether the file is no longer the one at the database's path (deleted, maybe
        made again, by another process)."""
        return _identity(self.path) != self.identity

    def writer_connection(self) -> sqlite3.Connection:
        """The writer thread's connection (NotFound once the database is deleted)."""
        if self.dropped:
            raise NotFound("not_found", MISSING_DB)
        if self._writer is None:
            self._writer = files.connect(self.path)
        return self._writer

    def index(self, design: Design, directory: Path) -> Index:
        """The open index of ``design`` (its file in ``directory``), opened on first use."""
        with self._lock:
            index = self.indexes.get(design.signature)
            if index is None:
                path = directory / f"{design.signature}.sqlite"
                index = self.indexes[design.signature] = Index(path, design)
            return index

    def function(self, key: str, make: Callable[[], Functions]) -> Functions:
        """The compiled filter of this key, made (``make()``) on first use."""
        with self._lock:
            if key not in self.functions:
                self.functions[key] = make()
            return self.functions[key]

    def forget_indexes(self, keep: set[str]) -> None:
        """Close the open indexes whose signature is not in ``keep``."""
        with self._lock:
            gone = [self.indexes.pop(sig) for sig in list(self.indexes) if sig not in keep]
        for index in gone:
            index.close()

    def close(self) -> None:
        with self._lock:
            self.dropped = True
            idle, self._idle = self._idle, []
            indexes, self.indexes = self.indexes, {}
            functions, self.functions = self.functions, {}
        for conn in idle:
            conn.close()
        for index in indexes.values():
            index.close()
        for compiled in functions.values():
            compiled.close()
        if self._writer is not None:
            self._writer.close()
            self._writer = None


class Store:
    """The databases of one data directory."""

    _open: ClassVar[dict[Path, tuple[Store, int]]] = {}
    _open_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.uuid = _server_uuid(directory)
        self.users = Users(directory)
        self._dbs: dict[str, Database] = {}
        self._lock = threading.Lock()
        self.neighbours = Neighbours(directory, self._committed_elsewhere)
        self.writer = Writer(self._committed)
        self.replications = Replications(directory)
        self.scheduler = Scheduler(self)
        self.scheduler.start()

    @classmethod
    def acquire(cls, directory: str | os.PathLike) -> Store:
        """The Store of ``directory``, shared with this process's other users of it."""
        path = Path(directory).resolve()
        with cls._open_lock:
            store, users = cls._open.get(path, (None, 0))
            if store is None:
                store = cls(path)
            cls._open[path] = (store, users + 1)
            return store

    def release(self) -> None:
        """One user fewer; the last one closes the files and stops the writer."""
        with self._open_lock:
            store, users = self._open[self.directory]
            if users > 1:
                self._open[self.directory] = (store, users - 1)
                if self.replications.only_jobs_hold(users - 1):
                    self.replications.close()  # each releases its handles as it ends
                return
            del self._open[self.directory]
        self.scheduler.close()
        self.replications.close()
        self.writer.close()
        self.neighbours.close()
        with self._lock:
            dbs, self._dbs = self._dbs, {}
        for db in dbs.values():
            db.close()

    def _committed(self, db: Database) -> None:
        """A commit of this process's writer: wake this process's feeds, tell the others."""
        db.signal.fire()
        self.neighbours.tell(db.name)

    def _committed_elsewhere(self, name: str) -> None:
        """Another process committed to database ``name``: wake the feeds waiting on it."""
        with self._lock:
            db = self._dbs.get(name)
        if db is not None:
            db.signal.fire()

    def names(self) -> list[str]:
        return files.names_in(self.directory)

    def has(self, name: str) -> bool:
        """Whether database ``name`` exists (``_users`` is not made by asking)."""
        return files.file_of(self.directory, name).exists()

    def database(self, name: str) -> Database:
        """The open database ``name``; NotFound (CouchDB's reason) if there is none.

        ``_users`` and ``_replicator`` are always there, made on first use, as CouchDB's
        set-up makes them."""
        if name in (USERS_DB, REPLICATOR_DB) and not files.file_of(self.directory, name).exists():
            with contextlib.suppress(PreconditionFailed):  # another process's was first
                self.create(name)
        db = self._dbs.get(name)
        if db is not None and not db.replaced():  # checked outside the lock: a system call
            return db
        with self._lock:
            db = self._dbs.get(name)
            if db is not None and db.replaced():
                self._retire(db)
                db = None
            if db is None:
                path = files.file_of(self.directory, name)
                if not path.exists():
                    raise NotFound("not_found", MISSING_DB)
                db = self._dbs[name] = Database(name, path)
            return db

    def _retire(self, db: Database) -> None:
        """Forget a database another process deleted (holding ``_lock``): its feeds wake
        and end, its files close in the writer, after the jobs queued for it, which fail."""
        del self._dbs[db.name]
        db.dropped = True
        db.signal.fire()
        self.writer.submit_bare(db, db.close)

    def create(self, name: str) -> None:
        """Create database ``name``: PreconditionFailed if it exists."""
        inline.slow_work_ahead()
        validate_db_name(name)
        path = files.file_of(self.directory, name)
        with self._lock:
            if path.exists():
                raise PreconditionFailed(
                    "file_exists",
                    "The database could not be created, the file already exists.",
                )
            remove_indexes(self.directory, name)  # left by a database of this name before
            # Made aside, then linked in whole: no process ever sees it without its security.
            partial = self.directory / ".creating" / str(os.getpid()) / path.name
            partial.parent.mkdir(parents=True, exist_ok=True)
            files.remove(partial)
            try:
                conn = files.connect(partial, create=True)
            except sqlite3.OperationalError:
                if len(path.name.encode()) + len("-wal") <= 255:
                    raise
                raise BadRequest(
                    "database_name_too_long", f"At least one path segment of `{name}` is too long."
                ) from None
            edits.set_meta(conn, "security", encode_json(access.ADMIN_ONLY).decode())
            conn.close()
            try:
                os.link(partial, path)
            except FileExistsError:
                raise PreconditionFailed(
                    "file_exists",
                    "The database could not be created, the file already exists.",
                ) from None
            finally:
                files.remove(partial)

    def delete(self, name: str) -> None:
        """Delete database ``name`` once the writes queued before have run."""
        db = self.database(name)

        def drop() -> None:
            with self._lock:
                if self._dbs.get(name) is db:
                    del self._dbs[name]
            conn = db.writer_connection()
            conn.execute("BEGIN IMMEDIATE")  # no other process's writer is in the file
            try:
                files.remove(db.path)
            finally:
                conn.execute("ROLLBACK")
            db.close()
            remove_indexes(self.directory, name)
            self._committed(db)  # its feeds, here and in the other processes, end

        self.writer.submit_bare(db, drop).result()

    def design(self, name: str, ddoc_id: str) -> Design:
        """The views of design document ``ddoc_id`` of database ``name`` as they are now."""
        db = self.database(name)
        with db.reading() as conn:
            return db.designs.get(conn, ddoc_id)

    def index(self, name: str, design: Design) -> Index:
        """The index of ``design``'s views in database ``name``, opened once."""
        return self.database(name).index(design, index_directory(self.directory, name))

    def drop_indexes(self, name: str, keep: set[str]) -> None:
        """Close and delete the indexes of database ``name`` whose signature is not kept."""
        self.database(name).forget_indexes(keep)
        for path in index_directory(self.directory, name).glob("*.sqlite"):
            if path.stem not in keep:
                files.remove(path)

    def read(self, name: str, query: Callable[[sqlite3.Connection], Any]) -> Any:
        """``query(conn)`` on one snapshot of database ``name``."""
        db = self.database(name)
        with db.reading() as conn:
            return query(conn)

    def write(self, name: str, work: Work) -> Future:
        """Run ``work(txn)`` in the writer; resolves once committed. Never on the event loop
        (``inline``): its caller would wait there for the commit."""
        inline.slow_work_ahead()
        return self.writer.submit(self.database(name), work)

    def write_then(self, name: str, work: Work, then: Callable[[Any], Any]) -> Any:
        """``then(work's result)`` once ``work(txn)`` is committed: on the event loop, by
        way of ``inline.Pending``, whose wait blocks nothing."""
        return inline.after(self.writer.submit(self.database(name), work), then)


def _server_uuid(directory: Path) -> str:
    """The server's ``uuid``: made once, kept in the data directory, the same ever after."""
    path = directory / "server-uuid"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        value = uuid.uuid4().hex
        path.write_text(value + "\n")
        return value
