"""ChangesFeed: a database's continuous ``_changes`` feed, followed until stopped.

The feed reconnects on its own after a dropped connection or a server restart, with
exponential backoff, and resumes from the last seq it delivered, so no change is lost.
``seq`` values are opaque (strings on CouchDB 2+, integers on pouchdb-server): they are only
stored and passed back, never compared.

A clustered CouchDB resumes a feed from a seq on any node, but where the shard copy a seq
names is gone, another copy resumes from its own checkpoint and sends some changes again.
So a feed from a cluster's nodes (``replays``), once resumed, drops a row whose document and
revisions were among the last ``REPLAY_WINDOW`` it delivered, so that a subscriber sees
each change once. (Only once resumed: a document purged, then written again with the same
body, has the same revision.) A feed from one server keeps no such memory: a busy feed's
window is about 1.5 MB, once per database followed.

``FeedState`` holds the protocol (request, rows, batching by latency) and does no I/O;
``ChangesFeed`` drives it on asyncio, ``ThreadedChangesFeed`` in a thread for blocking code.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from .errors import CouchError, ServerError, ServerUnavailable
from .protocol import Request, changes_request, decode_json, error_from, split_lines
from .protocol import Response as FullResponse
from .transport import AsyncTransport, BlockingTransport

log = logging.getLogger("settee.couch.changes")

ChangesCallback = Callable[[Any, list[dict[str, Any]]], None]

RETRYABLE = (ServerUnavailable, ServerError)
REPLAY_WINDOW = 10_000  # rows delivered that a replayed row is recognised among


class Backoff:
    """Delays between reconnection attempts: doubling from ``first`` up to ``limit``."""

    def __init__(self, first: float = 0.1, limit: float = 5.0) -> None:
        self.first, self.limit = first, limit
        self.current = first

    def next(self) -> float:
        delay, self.current = self.current, min(self.current * 2, self.limit)
        return delay

    def reset(self) -> None:
        self.current = self.first


class FeedState:
    """What a feed has received and not yet delivered, and where to resume from."""

    def __init__(
        self,
        path: str,
        options: Mapping[str, Any],
        *,
        since: Any,
        latency: float,
        heartbeat: float,
        headers: Mapping[str, str] | None = None,
        replays: bool = False,
    ) -> None:
        self.path = path
        self.options = dict(options)
        self.headers = dict(headers or {})
        self.since = since
        self.latency = latency
        self.heartbeat = heartbeat
        self.pending: list[dict[str, Any]] = []
        self.replays = replays  # whether the server may send rows again once resumed
        self.replayed = 0  # rows dropped as delivered already
        self._delivered: dict[tuple[Any, ...], None] = {}  # insertion-ordered, oldest first
        self._opened = 0  # connections opened: rows may be replays from the second on
        self.last_flush = 0.0
        self._buffer = bytearray()

    def request(self) -> Request:
        """The request that (re)opens the feed from the last delivered seq."""
        self._buffer.clear()
        self._opened += 1
        request = changes_request(
            self.path,
            {
                **self.options,
                "feed": "continuous",
                "since": self.since,
                "heartbeat": int(self.heartbeat * 1000),
            },
        )
        if self.headers:
            request.headers = {**request.headers, **self.headers}
        return request

    def receive(self, chunk: bytes) -> None:
        """Take in a chunk of the feed; change rows join ``pending``."""
        for line in split_lines(self._buffer, chunk):
            row = decode_json(line)
            if "seq" in row:
                if self.replays and not self._remember(row) and self._opened > 1:
                    self.replayed += 1
                    if not self.pending:
                        self.since = row["seq"]
                else:
                    self.pending.append(row)
            elif "last_seq" in row and not self.pending:
                self.since = row["last_seq"]

    def _remember(self, row: dict[str, Any]) -> bool:
        """Whether ``row`` is news: False if its document and revisions were among the last
        ``REPLAY_WINDOW`` rows received, else True, and it is remembered."""
        if "id" not in row:
            return True
        key = (row["id"], tuple(change.get("rev") for change in row.get("changes") or ()))
        if key in self._delivered:
            return False
        self._delivered[key] = None
        if len(self._delivered) > REPLAY_WINDOW:
            del self._delivered[next(iter(self._delivered))]
        return True

    def due_in(self, now: float) -> float | None:
        """Seconds until pending rows should be delivered (0: now), None if nothing pending."""
        if not self.pending:
            return None
        return max(0.0, self.last_flush + self.latency - now)

    def take(self, now: float) -> list[tuple[Any, list[dict[str, Any]]]]:
        """The ``(seq, rows)`` batches to deliver now: one per row when latency is 0."""
        rows, self.pending = self.pending, []
        if not rows:
            return []
        self.last_flush = now
        self.since = rows[-1]["seq"]
        if self.latency <= 0:
            return [(row["seq"], [row]) for row in rows]
        return [(self.since, rows)]


class _FeedBase:
    """What both drivers share: the user's callback, the state, and how errors are judged."""

    def __init__(self, state: FeedState, callback: ChangesCallback) -> None:
        self.callback = callback
        self.state = state
        self.reconnects = 0
        self.error: BaseException | None = None
        self._backoff = Backoff()

    @property
    def latency(self) -> float:
        return self.state.latency

    @property
    def last_seq(self) -> Any:
        """The seq of the last change delivered (or the ``since`` the feed started from)."""
        return self.state.since

    def _deliver(self, now: float) -> None:
        for seq, rows in self.state.take(now):
            try:
                self.callback(seq, rows)
            except Exception:
                log.exception("changes callback %r raised", self.callback)

    def _fatal(self, exc: BaseException) -> bool:
        """True if ``exc`` ends the feed; otherwise it is logged and the feed reconnects."""
        if isinstance(exc, RETRYABLE):
            log.warning("changes feed %s dropped (%s); reconnecting", self.state.path, exc)
            self.reconnects += 1
            return False
        log.error("changes feed %s stopped: %s", self.state.path, exc)
        self.error = exc
        return True

    @staticmethod
    def _check(status: int, headers: Mapping[str, str], body: bytes, describe: str) -> None:
        if status >= 400:
            raise error_from(FullResponse(status, headers, body), describe)


class ChangesFeed(_FeedBase):
    """A running continuous feed on asyncio; ``stop()`` ends it.

    Awaiting the feed gives the feed itself (so it can be yielded under ``@relax``);
    ``await feed.wait()`` waits for it to end, raising the error that ended it, if any.
    """

    def __init__(
        self, transport: AsyncTransport, state: FeedState, callback: ChangesCallback
    ) -> None:
        super().__init__(state, callback)
        self._transport = transport
        self._flush_handle: asyncio.TimerHandle | None = None
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.ensure_future(self._run())

    def __await__(self):
        return self._self().__await__()

    async def _self(self) -> ChangesFeed:
        return self

    def stop(self) -> None:
        self._task.cancel()
        if self._flush_handle:
            self._flush_handle.cancel()

    @property
    def running(self) -> bool:
        return not self._task.done()

    async def wait(self) -> None:
        try:
            await self._task
        except asyncio.CancelledError:
            if not self._task.cancelled():
                raise
        if self.error is not None:
            raise self.error

    async def _run(self) -> None:
        read_timeout = self.state.heartbeat * 3
        while True:
            try:
                await self._follow(read_timeout)
            except CouchError as exc:
                self._flush()
                if self._fatal(exc):
                    return
            else:
                self._flush()
                self.reconnects += 1
            await asyncio.sleep(self._backoff.next())

    async def _follow(self, read_timeout: float) -> None:
        request = self.state.request()
        describe = self._transport.describe(request)
        async with self._transport.stream(
            request, read_timeout=read_timeout, feed=True
        ) as response:
            if response.status >= 400:
                body = await response.read_all()
                self._check(response.status, response.headers, body, describe)
            async for chunk in response:
                self._backoff.reset()
                self.state.receive(chunk)
                self._schedule()

    def _schedule(self) -> None:
        due = self.state.due_in(self._loop.time())
        if due is None or self._flush_handle is not None:
            return
        if due == 0:
            self._flush()
        else:
            self._flush_handle = self._loop.call_later(due, self._flush)

    def _flush(self) -> None:
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        self._deliver(self._loop.time())


class ThreadedChangesFeed(_FeedBase):
    """A running continuous feed in a daemon thread, for blocking code; ``stop()`` ends it.

    The callback runs in the feed's thread.
    """

    def __init__(
        self, transport: BlockingTransport, state: FeedState, callback: ChangesCallback
    ) -> None:
        # Without a timer, batches are delivered when data arrives: heartbeats at least as
        # often as the latency make sure a held batch is never late by more than that.
        if state.latency > 0:
            state.heartbeat = min(state.heartbeat, state.latency)
        super().__init__(state, callback)
        self._transport = transport
        self._stopping = threading.Event()
        self._abort: Callable[[], None] | None = None
        self._thread = threading.Thread(target=self._run, name="settee-changes", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._abort is not None:
            self._abort()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def wait(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)
        if self.error is not None:
            raise self.error

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self._follow()
            except CouchError as exc:
                if self._stopping.is_set():
                    return
                self._deliver(time.monotonic())
                if self._fatal(exc):
                    return
            else:
                self._deliver(time.monotonic())
                self.reconnects += 1
            self._stopping.wait(self._backoff.next())

    def _follow(self) -> None:
        request = self.state.request()
        describe = self._transport.describe(request)
        read_timeout = self.state.heartbeat * 3
        with self._transport.stream(request, read_timeout=read_timeout, feed=True) as response:
            if response.status >= 400:
                self._check(response.status, response.headers, response.read_all(), describe)
            self._abort = response.abort
            if self._stopping.is_set():
                return
            for chunk in response:
                if self._stopping.is_set():
                    return
                self._backoff.reset()
                self.state.receive(chunk)
                if self.state.due_in(time.monotonic()) == 0:
                    self._deliver(time.monotonic())
