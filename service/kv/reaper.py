"""The service's reaper: every ``interval`` seconds, the expired keys of every database that
holds the expiry index (``_design/kv``) are removed through it (see ``expiry``).

It runs with settee's own credentials (``own_couch``: the configured CouchDB user, or the
embedded store's admin), and widens no one's rights by it: it enters only databases whose
admins installed the index (only a database admin may write a design document), and deletes
only documents whose writers set them to expire; CouchDB's ``validate_doc_update`` judges
those deletes as settee's, like any other write. Until it passes, readers through
``service.kv`` already see expired keys as gone. Each server process runs one; two that
delete the same document at once conflict, and one of them wins.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

from service.couch import Couch, CouchError

from .bucket import Bucket

log = logging.getLogger("settee.kv")


class Reaper:
    """Removes expired keys every ``interval`` seconds from ``databases`` (none named:
    every database the server lists), through ``couch``."""

    def __init__(self, couch: Couch, interval: float, databases: Sequence[str] = ()) -> None:
        self.couch = couch
        self.interval = interval
        self.databases = tuple(databases)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        """Sweep every interval; a failed sweep is logged (once until it changes: a server
        that refuses settee ``_all_dbs`` would say so every minute) and tried again."""
        last_failure = ""
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.sweep()
            except CouchError as exc:
                if str(exc) != last_failure:
                    log.warning("expired keys not removed: %s", exc)
                last_failure = str(exc)
            except Exception:
                log.exception("expired keys not removed")
            else:
                last_failure = ""

    async def sweep(self) -> int:
        """One pass over the databases: how many documents were removed."""
        names = self.databases or await self.couch.all_dbs()
        removed = 0
        for name in names:
            if name.startswith("_"):
                continue
            try:
                removed += await Bucket(self.couch[name]).reap()
            except CouchError as exc:  # gone since listed, or not settee's to read
                log.debug("expired keys of %s not removed: %s", name, exc)
        if removed:
            log.info("removed %d expired keys", removed)
        return removed
