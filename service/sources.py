"""Where the hub's changes come from: a ``ChangeSource``, given to the hub, not built by it.

The hub needs three things of a database's changes: where they are now (``update_seq``), a
page of them after a seq (``page``, for a subscriber's backlog), and a live feed of them
(``follow``), which keeps going through faults until stopped. ``CouchSource`` gets them from
a server through the client (a continuous ``_changes`` feed that reconnects and resumes).
A test gives the hub a scripted source instead, and can say exactly what arrives and when.

Seqs are opaque to the hub and to every source's caller: stored and passed back, never
compared.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from .couch import Couch

OnChanges = Callable[[Any, list[dict[str, Any]]], None]  # (last seq, rows), as they arrive


class Following(Protocol):
    """A live feed: ``on_changes`` is called until ``stop()``."""

    @property
    def running(self) -> bool:
        """Whether it still runs (it may be reconnecting)."""

    @property
    def reconnects(self) -> int:
        """How many times it has resumed after losing its source."""

    def stop(self) -> None:
        """Stop it; ``on_changes`` is not called again."""

    async def wait(self) -> None:
        """Return when it has stopped; raise what ended it, if not ``stop()``."""


class ChangeSource(Protocol):
    """The changes of the databases a hub serves."""

    async def update_seq(self, db: str) -> Any:
        """The seq of ``db``'s latest change."""

    async def page(self, db: str, since: Any, limit: int, options: dict[str, Any]) -> dict:
        """Up to ``limit`` changes after ``since``: ``{"results": [rows], "last_seq": S}``."""

    def follow(
        self,
        db: str,
        since: Any,
        options: dict[str, Any],
        *,
        heartbeat: float,
        on_changes: OnChanges,
    ) -> Following:
        """Start following ``db``'s changes after ``since``, ``options`` selecting them
        (include_docs, filter, style…); ``heartbeat`` is how often an idle feed shows it is
        alive."""


class CouchSource:
    """Changes from a server, through the client: one continuous ``_changes`` feed per
    ``follow``, reconnecting with backoff and resuming from the last seq it delivered."""

    def __init__(self, couch: Couch) -> None:
        self.couch = couch

    async def update_seq(self, db: str) -> Any:
        return (await self.couch[db].info())["update_seq"]

    async def page(self, db: str, since: Any, limit: int, options: dict[str, Any]) -> dict:
        return await self.couch[db].changes(since=since, limit=limit, **options)

    def follow(
        self,
        db: str,
        since: Any,
        options: dict[str, Any],
        *,
        heartbeat: float,
        on_changes: OnChanges,
    ) -> Following:
        return self.couch[db].changes(
            feed="continuous",
            since=since,
            latency=0,
            heartbeat=heartbeat,
            callback=on_changes,
            **options,
        )
