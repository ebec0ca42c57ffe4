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
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from ..couch.errors import CouchError, Unauthorized
from ..couch.transport import EMBEDDED, redact
from .replication import Run, Spec, opened

if TYPE_CHECKING:
    from .users import UserCtx

log = logging.getLogger("settee.store")

POLL = 2.0  # seconds a job waits on the source's changes before looking whether to stop
BACKOFF = (1, 60)  # seconds before retrying a failed job: first, most


class Job(threading.Thread):
    """One continuous replication."""

    def __init__(self, local_id: str, spec: Spec, rep_id: str, owner: UserCtx, mark: Path):
        super().__init__(name=f"settee-replication-{local_id[:8]}", daemon=True)
        self.local_id, self.spec, self.rep_id = local_id, spec, rep_id
        self.owner, self.mark = owner, mark
        self.token = f"{os.getpid()} {id(self)}"  # what its mark holds: its process, itself
        self.stopping = threading.Event()
        # Handles on this process's store the job holds while its ends are open: the
        # store closes when only jobs hold it (``Replications.only_jobs_hold``).
        store_url = EMBEDDED + str(mark.parent.parent)
        ends = (spec.source, spec.target)
        self._ends_in_store = sum(end.url.rpartition("/")[0] == store_url for end in ends)
        self.holding = 0
        self.started_on = self.updated_on = int(time.time())
        self.last: dict[str, Any] = {}
        self.error: str | None = None

    def run(self) -> None:
        delay = BACKOFF[0]
        while self._wanted():
            try:
                with (
                    opened(self.spec.source, "source") as source,
                    opened(self.spec.target, "target", create=self.spec.create_target) as target,
                ):
                    self.holding = self._ends_in_store
                    while self._wanted():
                        self.last = Run(self.spec, self.rep_id, source, target).run()
                        self.updated_on, self.error, delay = int(time.time()), None, BACKOFF[0]
                        options = {**self.spec.changes_options(), "limit": 1}
                        since = self.last.get("source_last_seq", 0)
                        source.changes(feed="longpoll", since=since, timeout=POLL, **options)
            except CouchError as exc:
                self.holding = 0
                self.error = str(exc)
                log.warning("replication %s failed, retried in %s s: %s", self.local_id, delay, exc)
                self.stopping.wait(delay)
                delay = min(delay * 2, BACKOFF[1])
            self.holding = 0
        with contextlib.suppress(FileNotFoundError):
            if self.mark.read_text() == self.token:
                self.mark.unlink()

    def _wanted(self) -> bool:
        """Whether to go on: not stopped here, and not cancelled in another process."""
        return not self.stopping.is_set() and self.mark.exists()

    def task(self) -> dict[str, Any]:
        """The job as CouchDB lists it in ``_active_tasks``."""
        history = (self.last.get("history") or [{}])[0]
        return {
            "type": "replication",
            "replication_id": self.local_id,
            "doc_id": None,
            "source": _shown(self.spec.source.url),
            "target": _shown(self.spec.target.url),
            "continuous": True,
            "user": self.owner.name,
            "pid": f"<{os.getpid()}.{self.native_id}>",
            "started_on": self.started_on,
            "updated_on": self.updated_on,
            "checkpointed_source_seq": self.last.get("source_last_seq", 0),
            "docs_read": history.get("docs_read", 0),
            "docs_written": history.get("docs_written", 0),
            "doc_write_failures": history.get("doc_write_failures", 0),
            "missing_revisions_found": history.get("missing_found", 0),
            "revisions_checked": history.get("missing_checked", 0),
            **({"error": self.error} if self.error else {}),
        }


def _shown(url: str) -> str:
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
            job = self._jobs[local_id] = Job(local_id, spec, rep_id, owner, mark)
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

    def tasks(self) -> list[dict[str, Any]]:
        with self._lock:
            jobs = [job for job in self._jobs.values() if job.is_alive()]
        return [job.task() for job in jobs]

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
