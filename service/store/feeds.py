"""``_changes`` answers read in steps: the normal feed, streamed in batches so that a feed of
a million rows costs a batch's memory, and the feeds that take time: continuous, longpoll and
eventsource.

A ``Feed`` does no waiting of its own: ``step(now)`` reads what has been committed since the
last step and says what to send now and how long to wait before the next step at most.
The transport drives it, waiting on the database's commit ``signal`` between steps (on an
event loop or in a thread), so a change is sent as soon as it commits, without polling.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from ..couch.protocol import encode_json
from . import queries
from .wakeup import Signal

BATCH = 500  # rows read per step, so that a long backlog never holds a thread for long

Read = Callable[[Callable[..., Any]], Any]


class Feed:
    """One ``_changes`` feed of kind ``normal``, ``continuous``, ``longpoll`` or
    ``eventsource``."""

    def __init__(
        self,
        kind: str,
        query: queries.Changes,
        read: Read,
        signal: Signal,
        *,
        heartbeat: float | None,
        timeout: float | None,
        now: float,
    ) -> None:
        self.kind = kind
        self.query = query
        self.signal = signal
        self._read = read
        self._heartbeat = heartbeat
        self._timeout = timeout
        self._started = self._beat = now
        self._sent = 0
        self._opened = False
        self._ended = False

    def step(self, now: float) -> tuple[bytes | None, float | None]:
        """What to send now (``b""``: nothing yet; None: the feed has ended), and the most
        seconds to wait for a commit before stepping again (None: no limit)."""
        if self._ended:
            return None, None
        remaining = None if self.query.limit is None else self.query.limit - self._sent
        batch = BATCH if remaining is None else min(BATCH, remaining)
        rows, scanned = self._read(lambda conn: queries.changes_page(conn, self.query, batch))
        if self.kind == "normal":
            return self._normal(rows, scanned), 0
        if rows:
            return self._deliver(rows, scanned), 0
        self.query = dataclasses.replace(self.query, since=scanned)  # past what a filter dropped
        if self._timeout is not None and now - self._started >= self._timeout:
            self._ended = True
            return self._last(), None
        waits = []
        if self._timeout is not None:
            waits.append(self._started + self._timeout - now)
        if self._heartbeat is not None:
            if now - self._beat >= self._heartbeat:
                self._beat = now
                return self._heartbeat_line(), 0
            waits.append(self._beat + self._heartbeat - now)
        return b"", min(waits) if waits else None

    def _normal(self, rows: list[dict[str, Any]], scanned: int) -> bytes:
        """The next piece of a normal feed's one JSON object, laid out as CouchDB's: a row
        a line, and its last words once the rows are done or ``limit`` is reached."""
        chunk = b'{"results":[\n' if self._sent == 0 and not self._opened else b""
        self._opened = True
        if rows:
            chunk += b",\n" if self._sent else b""
            chunk += b",\n".join(encode_json(row) for row in rows)
            self._sent += len(rows)
        self.query = dataclasses.replace(self.query, since=scanned)
        limited = self.query.limit is not None and self._sent >= self.query.limit
        if rows and not limited:
            return chunk
        self._ended = True

        def last_words(conn: Any) -> tuple[int, int]:
            last = self.query.since if limited else queries.update_seq(conn)
            return last, queries.pending(conn, last)

        last, pending = self._read(last_words)
        return chunk + b"\n],\n" + encode_json({"last_seq": last, "pending": pending})[1:] + b"\n"

    def _deliver(self, rows: list[dict[str, Any]], scanned: int) -> bytes:
        self.query = dataclasses.replace(self.query, since=scanned)
        self._sent += len(rows)
        if self.kind == "longpoll":
            self._ended = True
            pending = self._read(lambda conn: queries.pending(conn, self.query.since))
            body = {"results": rows, "last_seq": self.query.since, "pending": pending}
            return encode_json(body) + b"\n"
        if self.kind == "eventsource":
            chunk = b"".join(
                b"data: " + encode_json(row) + b"\nid: " + str(row["seq"]).encode() + b"\n\n"
                for row in rows
            )
        else:
            chunk = b"".join(encode_json(row) + b"\n" for row in rows)
        if self.query.limit is not None and self._sent >= self.query.limit:
            self._ended = True
            chunk += self._last()
        return chunk

    def _last(self) -> bytes:
        """The feed's last words: where it got to."""
        if self.kind == "longpoll":
            body = {"results": [], "last_seq": self.query.since, "pending": 0}
            return encode_json(body) + b"\n"
        if self.kind == "eventsource":
            return b""
        return encode_json({"last_seq": self.query.since, "pending": 0}) + b"\n"

    def _heartbeat_line(self) -> bytes:
        return b"event: heartbeat\ndata: \n\n" if self.kind == "eventsource" else b"\n"
