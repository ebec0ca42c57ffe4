"""The single writer: every write of a data directory, one thread, commits grouped.

Writers never wait on each other's locks: they hand their work to this thread, which takes
every job queued at that moment, runs each database's jobs in one transaction (each job in a
savepoint of its own, so one that fails leaves the others written) and commits it once:
one fsync for a whole group of concurrent writes. A job's result is delivered after its
commit, so a write is acknowledged only once it is on disk.
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..couch.errors import NotFound
from .edits import Txn

if TYPE_CHECKING:
    from .store import Database

log = logging.getLogger("settee.store")

GROUP_LIMIT = 512  # jobs at most in one commit, so that a burst still sees progress

Work = Callable[[Txn], Any]


@dataclass(slots=True)
class Job:
    db: Database
    work: Work
    future: Future
    bare: bool = False  # runs outside any transaction, between the groups before and after


class Writer:
    """The thread that runs every write job, grouping concurrent ones into one commit."""

    def __init__(self, on_commit: Callable[[Database], None]) -> None:
        self._on_commit = on_commit
        self._jobs: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="settee-store-writer", daemon=True)
        self._thread.start()

    def submit(self, db: Database, work: Work) -> Future:
        """Run ``work(txn)`` in the writer; the future resolves once it is committed."""
        future: Future = Future()
        self._jobs.put(Job(db, work, future))
        return future

    def submit_bare(self, db: Database, work: Callable[[], Any]) -> Future:
        """Run ``work()`` in the writer outside any transaction, after the jobs queued
        before it (deleting a database's file, say)."""
        future: Future = Future()
        self._jobs.put(Job(db, lambda _txn: work(), future, bare=True))
        return future

    def close(self) -> None:
        """Finish the jobs already queued, then stop the thread."""
        self._jobs.put(None)
        self._thread.join()

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            group = [job]
            stopping = False
            while len(group) < GROUP_LIMIT:
                try:
                    more = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stopping = True
                    break
                group.append(more)
            by_db: dict[int, list[Job]] = {}
            for each in group:
                if each.bare:
                    for jobs in by_db.values():
                        self._commit(jobs)
                    by_db.clear()
                    _settle(each.future, each.work, None)
                else:
                    by_db.setdefault(id(each.db), []).append(each)
            for jobs in by_db.values():
                self._commit(jobs)
            if stopping:
                return

    def _commit(self, jobs: list[Job]) -> None:
        db = jobs[0].db
        outcomes: list[tuple[Job, Any, BaseException | None]] = []
        try:
            conn = db.writer_connection()
            conn.execute("BEGIN IMMEDIATE")
            if db.replaced():  # deleted by another process since it was opened
                conn.execute("ROLLBACK")
                raise NotFound("not_found", "Database does not exist.")
        except (sqlite3.Error, OSError, LookupError) as exc:
            for job in jobs:
                job.future.set_exception(exc)
            return
        try:
            txn = Txn(conn)
            for job in jobs:
                conn.execute("SAVEPOINT job")
                try:
                    result = job.work(txn)
                except Exception as exc:
                    conn.execute("ROLLBACK TO job")
                    conn.execute("RELEASE job")
                    outcomes.append((job, None, exc))
                else:
                    conn.execute("RELEASE job")
                    outcomes.append((job, result, None))
            txn.finish()
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            log.exception("commit to %s failed", db.name)
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            for job in jobs:
                job.future.set_exception(exc)
            return
        self._on_commit(db)
        for job, result, error in outcomes:
            if error is None:
                job.future.set_result(result)
            else:
                job.future.set_exception(error)


def _settle(future: Future, work: Work, txn: Any) -> None:
    try:
        future.set_result(work(txn))
    except Exception as exc:
        future.set_exception(exc)
