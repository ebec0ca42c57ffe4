"""The replications that ``_replicator`` documents describe, run by the store, as CouchDB 3's
scheduler runs them.

A document (not deleted, not a design document) whose ``_replication_state`` is neither
``completed`` nor ``failed`` is a job (``continuous.Job``): it starts as soon as it is
written, or when the store opens (so jobs outlive a restart, each resuming from its
checkpoints); editing the document restarts it, deleting it stops it. A one-shot job that
ends writes ``_replication_state: completed`` with its ``_replication_stats`` into the
document; a document naming the same replication as a running one is ``failed``, with
CouchDB's reason. Both ends are URLs with their own credentials (``replicator``'s rules),
so a job does what the document's writer could.

With ``--processes N`` one process runs them all: the one holding the lock on
``DIR/.replicator.lock`` (``fcntl.flock``; the others try again every ``ELECTION``
seconds, and the lock passes on when its holder dies). The holder writes what it runs to
``DIR/.replicator-states.json`` after each change, so every process answers
``/_scheduler`` alike.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import socket
import sqlite3
import threading
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any

from ..couch.errors import HTTPError, NotFound
from ..couch.transport import redact
from . import edits, tree
from .continuous import Job, iso_time, shown
from .replication import parse_spec
from .replicator import OWNER, REPLICATOR_DB, stripped
from .users import UserCtx

if TYPE_CHECKING:
    from .store import Store

log = logging.getLogger("settee.store")

ELECTION = 2.0  # seconds between a follower's tries for the lock, and the leader's looks
LOCK = ".replicator.lock"
STATES = ".replicator-states.json"
NODE = f"settee@{socket.gethostname()}"
# What of a document is not what it asks for: editing only these restarts nothing.
RECORDS = ("_rev", "_replication_state_time", "_replication_state_reason", "_replication_stats")


@dataclass(slots=True)
class Entry:
    """One document's replication as the scheduler knows it."""

    doc_id: str
    rev: str
    fingerprint: str
    source: str | None
    target: str | None
    state: str
    local_id: str | None = None
    job: Job | None = None
    info: dict[str, Any] = field(default_factory=dict)
    error_count: int = 0
    start_time: str | None = None
    last_updated: str | None = None

    def doc_row(self) -> dict[str, Any]:
        """Its row of ``/_scheduler/docs``, in CouchDB's two shapes: with a job, without."""
        job = self.job
        head = {"database": REPLICATOR_DB, "doc_id": self.doc_id}
        if job is None or job.state == "completed":
            info = job.stats() if job is not None else self.info
            return {
                **head,
                "id": None,
                "source": self.source,
                "target": self.target,
                "state": self.state if job is None else "completed",
                "error_count": self.error_count,
                "info": {k: v for k, v in info.items() if k not in ("source_seq", "through_seq")},
                "start_time": self.start_time if job is None else iso_time(job.started_on),
                "last_updated": self.last_updated if job is None else iso_time(job.updated_on),
            }
        return {
            **head,
            "id": job.local_id,
            "node": NODE,
            "source": self.source,
            "target": self.target,
            "state": job.state,
            "info": {"error": job.error} if job.error else job.stats(),
            "error_count": job.error_count,
            "last_updated": iso_time(job.updated_on),
            "start_time": iso_time(job.started_on),
            "source_proxy": None,
            "target_proxy": None,
        }


def job_row(job: Job) -> dict[str, Any]:
    """A running job's row of ``/_scheduler/jobs``, as CouchDB's."""
    running = job.state == "running"
    return {
        "database": REPLICATOR_DB if job.doc_id else None,
        "id": job.local_id,
        "pid": job.pid() if running else None,
        "source": shown(job.spec.source.url),
        "target": shown(job.spec.target.url),
        "user": None if job.doc_id else job.owner.name,
        "doc_id": job.doc_id,
        "info": job.stats() if running else None,
        "history": job.history,
        "node": NODE,
        "start_time": iso_time(job.started_on),
    }


class Scheduler(threading.Thread):
    """The jobs of one store's ``_replicator``, in the process that holds its lock."""

    def __init__(self, store: Store) -> None:
        super().__init__(name="settee-scheduler", daemon=True)
        self.store = store
        self._entries: dict[str, Entry] = {}
        self._guard = threading.Lock()
        self._stopping = threading.Event()
        self._lock_file: IO[bytes] | None = None

    # -- what /_scheduler shows

    def docs(self) -> list[dict[str, Any]]:
        """Every document's row, by id (from the lock holder's file in another process)."""
        if self._lock_file is None:
            return self._published().get("docs", [])
        with self._guard:
            entries = sorted(self._entries.values(), key=lambda e: e.doc_id)
        return [entry.doc_row() for entry in entries]

    def running(self) -> list[Job]:
        """The documents' jobs running in this process."""
        with self._guard:
            jobs = [e.job for e in self._entries.values() if e.job is not None]
        return [job for job in jobs if job.is_alive() and job.state != "completed"]

    def jobs(self) -> list[dict[str, Any]]:
        """The running documents' jobs' rows."""
        if self._lock_file is None:
            return self._published().get("jobs", [])
        return [job_row(job) for job in self.running()]

    def _published(self) -> dict[str, Any]:
        try:
            value = json.loads((self.store.directory / STATES).read_text())
        except (FileNotFoundError, ValueError):
            return {}
        return value if isinstance(value, dict) else {}

    def _publish(self) -> None:
        """Write the rows for the other processes (whole, then renamed into place)."""
        path = self.store.directory / STATES
        partial = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}")
        partial.write_text(json.dumps({"docs": self.docs(), "jobs": self.jobs()}))
        os.replace(partial, path)

    # -- the thread

    def run(self) -> None:
        while not self._stopping.is_set():
            try:
                if not self._lead() or not self.store.has(REPLICATOR_DB):
                    self._stopping.wait(ELECTION)
                    continue
                db = self.store.database(REPLICATOR_DB)
                version = db.signal.version
                self._sync()
                db.signal.wait(version, ELECTION, self._stopping.is_set)
            except NotFound:
                self._stopping.wait(ELECTION)
            except Exception:
                log.exception("the _replicator scheduler failed; it looks again")
                self._stopping.wait(ELECTION)
        self._stop_all()

    def close(self) -> None:
        """Stop the jobs and let go of the lock."""
        self._stopping.set()
        with contextlib.suppress(NotFound):
            if self.store.has(REPLICATOR_DB):
                self.store.database(REPLICATOR_DB).signal.wake_threads()
        if not self.is_alive():
            self._stop_all()

    def _lead(self) -> bool:
        """Whether this process runs the jobs: it holds the lock, or takes it now."""
        if self._lock_file is not None:
            return True
        handle = open(self.store.directory / LOCK, "ab")  # noqa: SIM115 (held while leading)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return False
        self._lock_file = handle
        return True

    def _stop_all(self) -> None:
        with self._guard:
            entries, self._entries = list(self._entries.values()), {}
        for entry in entries:
            if entry.job is not None:
                entry.job.stopping.set()
        if self._lock_file is not None:
            self._lock_file.close()  # the lock goes with it
            self._lock_file = None

    def _sync(self) -> None:
        """Bring the jobs in line with the documents as they are now."""
        docs = self.store.read(REPLICATOR_DB, _documents)
        with self._guard:
            for doc_id in set(self._entries) - set(docs):
                _stop(self._entries.pop(doc_id))
        for doc_id, doc in sorted(docs.items()):
            fingerprint = json.dumps(
                {k: v for k, v in doc.items() if k not in RECORDS}, sort_keys=True
            )
            with self._guard:
                entry = self._entries.get(doc_id)
                if entry is not None and entry.fingerprint == fingerprint:
                    entry.rev = doc["_rev"]
                    continue
                if entry is not None:
                    _stop(entry)
                self._entries[doc_id] = self._entry(doc, fingerprint)
        self._publish()

    def _entry(self, doc: dict[str, Any], fingerprint: str) -> Entry:
        """A document's entry: its recorded end, or a job started (with ``_guard`` held)."""
        doc_id, state = doc["_id"], doc.get("_replication_state")
        entry = Entry(
            doc_id, doc["_rev"], fingerprint, _end(doc.get("source")), _end(doc.get("target")), ""
        )
        if state in ("completed", "failed"):
            stats = doc.get("_replication_stats")
            stats = dict(stats) if isinstance(stats, dict) else {}
            entry.state, entry.last_updated = state, doc.get("_replication_state_time")
            entry.start_time = stats.pop("start_time", entry.last_updated if stats else None)
            entry.info = stats
            if state == "failed":
                entry.info = {"error": doc.get("_replication_state_reason")}
                entry.error_count = 1
            return entry
        try:
            spec = parse_spec(doc, self.store.directory, None)
        except HTTPError as exc:
            return self._failed(entry, f"{exc.error}: {exc.reason}")
        local_id = spec.local_id(self.store.uuid)
        for other in self._entries.values():
            if other.local_id == local_id and other.job is not None:
                reason = (
                    f"Replication `{local_id}` specified by document `{doc_id}` already "
                    f"started, triggered by document `{other.doc_id}` from db `{REPLICATOR_DB}`"
                )
                return self._failed(entry, reason)
        owner = UserCtx(doc.get(OWNER) if isinstance(doc.get(OWNER), str) else None)
        entry.local_id, entry.state = local_id, "initializing"
        entry.job = Job(
            local_id,
            spec,
            spec.replication_id(self.store.uuid),
            owner,
            self.store.directory,
            doc_id=doc_id,
            report=self._reported,
        )
        entry.job.start()
        return entry

    def _failed(self, entry: Entry, reason: str) -> Entry:
        now = iso_time()
        entry.state, entry.info, entry.error_count = "failed", {"error": reason}, 1
        entry.start_time = entry.last_updated = now
        fields = {
            "_replication_state": "failed",
            "_replication_state_time": now,
            "_replication_state_reason": reason,
        }
        self._record(entry.doc_id, entry.rev, fields)
        return entry

    def _reported(self, job: Job) -> None:
        """A job's news: its file brought up to date, and a finished job's document too."""
        if job.state == "completed" and job.doc_id is not None:
            with self._guard:
                entry = self._entries.get(job.doc_id)
            if entry is not None and entry.job is job:
                stats = {**job.stats(), "start_time": iso_time(job.started_on)}
                for key in ("source_seq", "through_seq"):
                    del stats[key]
                fields = {
                    "_replication_state": "completed",
                    "_replication_state_time": iso_time(job.updated_on),
                    "_replication_stats": stats,
                }
                self._record(job.doc_id, entry.rev, fields)
        with contextlib.suppress(OSError):
            self._publish()

    def _record(self, doc_id: str, rev: str, fields: dict[str, Any]) -> None:
        """Write ``fields`` into the document, if it is still at ``rev`` (else it has been
        edited meanwhile, and the edit decides)."""

        def work(txn: edits.Txn) -> str | None:
            row = txn.conn.execute("SELECT rev, deleted FROM docs WHERE id = ?", (doc_id,))
            found = row.fetchone()
            if found is None or found[0] != rev or found[1]:
                return None
            body = tree.body(txn.conn, doc_id, rev) or {}
            kept = "_attachments" in body
            return edits.edit(txn, doc_id, {**body, **fields}, rev, kept_attachments=kept)

        try:
            self.store.write(REPLICATOR_DB, work).result()
        except Exception:  # the store closing, the database deleted: nothing to record in
            log.debug("could not record the state of %s", doc_id, exc_info=True)


def _stop(entry: Entry) -> None:
    if entry.job is not None:
        entry.job.stopping.set()


def _documents(conn: sqlite3.Connection) -> dict[str, dict[str, Any]]:
    """The replication documents: every live one but the design documents."""
    rows = conn.execute(
        "SELECT id, rev FROM docs WHERE deleted = 0 AND substr(id, 1, 8) != '_design/'"
    ).fetchall()
    docs = {}
    for doc_id, rev in rows:
        body = tree.body(conn, doc_id, rev)
        if body is not None:
            docs[doc_id] = {**body, "_id": doc_id, "_rev": rev}
    return docs


def _end(value: Any) -> str | None:
    """An end of a document as the scheduler shows it: its URL, no credentials, with ``/``."""
    value = stripped(value)
    if isinstance(value, dict):
        value = value.get("url")
    if not isinstance(value, str):
        return None
    return redact(value.rstrip("/")) + "/"
