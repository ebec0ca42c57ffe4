"""Continuous replications of the embedded store: ``_replicate`` with ``"continuous": true``.

Each runs in a thread of its own: it catches up from the checkpoint both ends agree on (a
``replication.Run``, checkpointed at its end), then waits on the source's ``_changes``
(``longpoll``, ``POLL`` seconds at most) and catches up again, until cancelled. An end that
fails (a server down, a database deleted) is retried after 1, 2, 4 … 60 s, as CouchDB's
scheduler retries a crashing job; the checkpoints make the next run start where the last
one stopped, so a restart loses nothing.

Like CouchDB's ``_replicate`` jobs, they are transient: they end with the process. With
``--processes N`` a job runs in the process that was asked for it; each job keeps a file in
``DIR/.replications/`` naming its process, so that a cancel reaching another process removes
the file and the job, seeing it gone, stops within ``POLL`` seconds.

The same ``Job`` runs the replication of a ``_replicator`` document (``scheduler``), one-shot
ones too (they end ``completed`` after their one catch-up); those have no file here.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from ..couch.errors import CouchError, HTTPError, Unauthorized
from ..couch.transport import EMBEDDED, redact
from .replication import Run, Spec, opened

if TYPE_CHECKING:
    from .users import UserCtx

log = logging.getLogger("settee.store")

POLL = 2.0  # seconds a job waits on the source's changes before looking whether to stop
BACKOFF = (1, 60)  # seconds before retrying a failed job: first, most


class Job(threading.Thread):
    """One replication run by the store: a continuous one of ``_replicate``, or the one a
    ``_replicator`` document describes (``doc_id``), continuous or not.

    Its ``state`` is CouchDB's scheduler's: ``initializing``, ``running``, ``crashing``
    (an end failed; retried after the backoff), ``completed`` (a one-shot one, done).
    ``report(job)``, if given, is called after each change of state or of its figures."""

    def __init__(
        self,
        local_id: str,
        spec: Spec,
        rep_id: str,
        owner: UserCtx,
        directory: Path,
        mark: Path | None = None,
        *,
        doc_id: str | None = None,
        report: Callable[[Job], None] | None = None,
    ) -> None:
        super().__init__(name=f"settee-replication-{local_id[:8]}", daemon=True)
        self.local_id, self.spec, self.rep_id = local_id, spec, rep_id
        self.owner, self.mark, self.doc_id, self.report = owner, mark, doc_id, report
        self.token = f"{os.getpid()} {id(self)}"  # what its mark holds: its process, itself
        self.stopping = threading.Event()
        # Handles on this process's store the job holds while its ends are open: the
        # store closes when only jobs hold it (``Replications.only_jobs_hold``).
        store_url = EMBEDDED + str(directory)
        ends = (spec.source, spec.target)
        self._ends_in_store = sum(end.url.rpartition("/")[0] == store_url for end in ends)
        self.holding = 0
        self.started_on = self.updated_on = int(time.time())
        self.last: dict[str, Any] = {}
        self.error: str | None = None
        self.state = "initializing"
        self.error_count = 0
        self.history: list[dict[str, Any]] = []
        self._event("added")

    def run(self) -> None:
        delay = BACKOFF[0]
        while self._wanted():
            try:
                self._event("started")
                with (
                    opened(self.spec.source, "source") as source,
                    opened(self.spec.target, "target", create=self.spec.create_target) as target,
                ):
                    self.holding = self._ends_in_store
                    self._changed("running")
                    while self._wanted():
                        self.last = Run(self.spec, self.rep_id, source, target).run()
                        self.error, delay = None, BACKOFF[0]
                        if not self.spec.continuous:
                            self._changed("completed")
                            return
                        self._changed("running")
                        options = {**self.spec.changes_options(), "limit": 1}
                        since = self.last.get("source_last_seq", 0)
                        source.changes(feed="longpoll", since=since, timeout=POLL, **options)
            except CouchError as exc:
                self.holding = 0
                self.error = (
                    f"{exc.error}: {exc.reason}" if isinstance(exc, HTTPError) else str(exc)
                )
                self.error_count += 1
                self._event("crashed", reason=self.error)
                self._changed("crashing")
                log.warning("replication %s failed, retried in %s s: %s", self.local_id, delay, exc)
                self.stopping.wait(delay)
                delay = min(delay * 2, BACKOFF[1])
            finally:
                self.holding = 0
                self._unmark_if_done()

    def _unmark_if_done(self) -> None:
        if self.mark is None or (self._wanted() and self.state != "completed"):
            return
        with contextlib.suppress(FileNotFoundError):
            if self.mark.read_text() == self.token:
                self.mark.unlink()

    def _wanted(self) -> bool:
        """Whether to go on: not stopped here, and not cancelled in another process."""
        return not self.stopping.is_set() and (self.mark is None or self.mark.exists())

    def _event(self, kind: str, **details: Any) -> None:
        """An entry of the job's history, newest first, as CouchDB keeps its last 20."""
        self.history = [{"timestamp": iso_time(), "type": kind, **details}, *self.history][:20]

    def _changed(self, state: str) -> None:
        self.state, self.updated_on = state, int(time.time())
        if self.report is not None:
            self.report(self)

    def stats(self) -> dict[str, Any]:
        """Its figures as CouchDB's scheduler shows them (``info``)."""
        history = (self.last.get("history") or [{}])[0]
        seq = self.last.get("source_last_seq", 0)
        return {
            "revisions_checked": history.get("missing_checked", 0),
            "missing_revisions_found": history.get("missing_found", 0),
            "docs_read": history.get("docs_read", 0),
            "docs_written": history.get("docs_written", 0),
            "changes_pending": None,
            "doc_write_failures": history.get("doc_write_failures", 0),
            "bulk_get_docs": history.get("docs_read", 0),
            "bulk_get_attempts": history.get("docs_read", 0),
            "checkpointed_source_seq": seq,
            "source_seq": seq,
            "through_seq": seq,
        }

    def task(self) -> dict[str, Any]:
        """The job as CouchDB lists it in ``_active_tasks``."""
        stats = self.stats()
        return {
            "type": "replication",
            "replication_id": self.local_id,
            "doc_id": self.doc_id,
            "source": shown(self.spec.source.url),
            "target": shown(self.spec.target.url),
            "continuous": self.spec.continuous,
            "user": self.owner.name,
            "pid": self.pid(),
            "started_on": self.started_on,
            "updated_on": self.updated_on,
            "checkpointed_source_seq": stats["checkpointed_source_seq"],
            "docs_read": stats["docs_read"],
            "docs_written": stats["docs_written"],
            "doc_write_failures": stats["doc_write_failures"],
            "missing_revisions_found": stats["missing_revisions_found"],
            "revisions_checked": stats["revisions_checked"],
            **({"error": self.error} if self.error else {}),
        }

    def pid(self) -> str:
        return f"<{os.getpid()}.{self.native_id}>"


def iso_time(seconds: float | None = None) -> str:
    """A time as CouchDB's scheduler writes it: ``2026-12-06T20:11:58Z``."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def shown(url: str) -> str:
    """An end as a client may see it: a database of the store by its name alone."""
    return url.rpartition("/")[2] + "/" if url.startswith(EMBEDDED) else redact(url) + "/"


class Replications:
    """The continuous replications of one store in this process."""

    def __init__(self, directory: Path) -> None:
        self._marks = directory / ".replications"
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()

    def _mark(self, local_id: str) -> Path:
        return self._marks / quote(local_id, safe="")

    def start(self, local_id: str, spec: Spec, rep_id: str, owner: UserCtx) -> None:
        """Run the replication unless it runs already, here or in another process."""
        mark = self._mark(local_id)
        with self._lock:
            job = self._jobs.get(local_id)
            if job is not None and job.is_alive() and not job.stopping.is_set():
                return
            if _running_elsewhere(mark):
                return
            self._marks.mkdir(exist_ok=True)
            directory = self._marks.parent
            job = self._jobs[local_id] = Job(local_id, spec, rep_id, owner, directory, mark)
            mark.write_text(job.token)
        job.start()

    def cancel(self, local_id: str, user: UserCtx) -> bool:
        """Stop the replication (False: none runs); Unauthorized for anyone but the user who
        started it and the server admins, as CouchDB."""
        mark = self._mark(local_id)
        with self._lock:
            job = self._jobs.pop(local_id, None)
        if job is not None and job.is_alive():
            if not (user.is_admin or user.name == job.owner.name):
                with self._lock:
                    self._jobs[local_id] = job
                raise Unauthorized("unauthorized", "Authentication required.")
            job.stopping.set()
            with contextlib.suppress(FileNotFoundError):
                mark.unlink()
            return True
        if _running_elsewhere(mark):
            with contextlib.suppress(FileNotFoundError):
                mark.unlink()
            return True
        return False

    def running(self) -> list[Job]:
        with self._lock:
            return [job for job in self._jobs.values() if job.is_alive()]

    def only_jobs_hold(self, handles: int) -> bool:
        """Whether the jobs hold all of ``handles`` on the store (no one else uses it)."""
        with self._lock:
            return handles <= sum(job.holding for job in self._jobs.values() if job.is_alive())

    def close(self) -> None:
        """Stop every job (each ends within ``POLL`` seconds)."""
        with self._lock:
            jobs, self._jobs = list(self._jobs.values()), {}
        for job in jobs:
            job.stopping.set()


def _running_elsewhere(mark: Path) -> bool:
    """Whether ``mark`` names a live process other than this one."""
    try:
        pid = int(mark.read_text().split()[0])
    except (FileNotFoundError, ValueError, IndexError):
        return False
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
