"""A range ``_all_docs`` answered in pages: one JSON object sent a batch of rows at a time,
so that listing a database of a million documents costs one batch's memory.

The transports drive it as they drive a ``Feed`` (``step``); it never waits: each step reads
the next page, past the last id sent, in a read of its own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..couch.protocol import encode_json
from . import queries
from .wakeup import Signal

BATCH = 500  # rows read per step

Read = Callable[[Callable[..., Any]], Any]


class AllDocsPages:
    """The steps of one range ``_all_docs`` answer, laid out as CouchDB's."""

    def __init__(
        self, query: queries.AllDocs, read: Read, signal: Signal, *, update_seq: bool
    ) -> None:
        self.query = query
        self.signal = signal
        self._read = read
        self._update_seq = update_seq
        self._after: Any = queries.UNBOUNDED
        self._sent = 0
        self._started = False
        self._ended = False

    def step(self, now: float) -> tuple[bytes | None, float | None]:
        """The next piece of the answer (None once it has all been sent); never a wait."""
        if self._ended:
            return None, None
        chunk = b""
        if not self._started:
            self._started = True
            total, offset = self._read(lambda conn: queries.all_docs_head(conn, self.query))
            chunk = b'{"total_rows":%d,"offset":%d,"rows":[\r\n' % (total, offset)
        limit = self.query.limit
        count = BATCH if limit is None else min(BATCH, limit - self._sent)
        rows = []
        if count > 0:
            after = self._after
            rows = self._read(lambda conn: queries.all_docs_rows(conn, self.query, after, count))
        if rows:
            chunk += b",\r\n" if self._sent else b""
            chunk += b",\r\n".join(encode_json(row) for row in rows)
            self._after = rows[-1]["id"]
            self._sent += len(rows)
            if len(rows) == count and (limit is None or self._sent < limit):
                return chunk, 0
        self._ended = True
        chunk += b"\r\n]"
        if self._update_seq:
            chunk += b',"update_seq":' + encode_json(self._read(queries.update_seq))
        return chunk + b"}\n", 0
