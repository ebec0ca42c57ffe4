"""A scripted ``ChangeSource``: the changes of one database as a list a test appends to.

It stands in for the upstream feed, not for a server: the hub under test is given exactly the
rows the test emits, when it emits them, and pages of them for backlogs. Seqs are integers
here, which the hub never looks into.
"""

from __future__ import annotations

import asyncio
from typing import Any

from service.sources import OnChanges


class ScriptedFeed:
    """One ``follow()``: rows reach ``on_changes`` as the source emits them, until stopped."""

    def __init__(self, since: Any, on_changes: OnChanges) -> None:
        self.since = since
        self.on_changes = on_changes
        self.reconnects = 0
        self._stopped = asyncio.Event()

    @property
    def running(self) -> bool:
        return not self._stopped.is_set()

    def stop(self) -> None:
        self._stopped.set()

    async def wait(self) -> None:
        await self._stopped.wait()


class ScriptedSource:
    """Every database's changes are the same list, ``rows``; ``emit()`` adds to it."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self.feeds: list[ScriptedFeed] = []
        self.pages = 0  # backlog pages asked for

    def emit(self, *doc_ids: str) -> list[dict[str, Any]]:
        """A change of each document, in one read of every running feed."""
        rows = []
        for doc_id in doc_ids:
            seq = len(self.rows) + 1
            rows.append({"seq": seq, "id": doc_id, "changes": [{"rev": f"1-{seq:x}"}]})
            self.rows.append(rows[-1])
        self.feeds = [feed for feed in self.feeds if feed.running]
        for feed in self.feeds:
            feed.on_changes(rows[-1]["seq"], rows)
        return rows

    async def update_seq(self, db: str) -> Any:
        return len(self.rows)

    async def page(self, db: str, since: Any, limit: int, options: dict[str, Any]) -> dict:
        self.pages += 1
        start = 0 if since in (0, "0") else int(since)
        results = self.rows[start : start + limit]
        return {"results": results, "last_seq": results[-1]["seq"] if results else start}

    def follow(
        self,
        db: str,
        since: Any,
        options: dict[str, Any],
        *,
        heartbeat: float,
        on_changes: OnChanges,
    ) -> ScriptedFeed:
        feed = ScriptedFeed(since, on_changes)
        self.feeds.append(feed)
        return feed
