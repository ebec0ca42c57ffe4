"""A request body passed on to the backend as it arrives, never held whole.

The backend's request starts as soon as the client's headers are in; the body follows
through a small bounded queue, so the service holds a few chunks of it at most, and a
client that sends faster than the backend reads is held back.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

QUEUED_CHUNKS = 8


class BodyPipe:
    """Chunks in from the client (``send``), out to the backend (``chunks``)."""

    __slots__ = ("_queue", "consumer")

    def __init__(self) -> None:
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue(QUEUED_CHUNKS)
        self.consumer: asyncio.Future[Any] | None = None

    async def chunks(self) -> AsyncIterator[bytes]:
        """What the backend's request sends: the body's chunks, until ``end()``."""
        while (chunk := await self._queue.get()) is not None:
            yield chunk

    def feeding(self, consumer: asyncio.Future[Any]) -> asyncio.Future[Any]:
        """Note the request that reads ``chunks()``: once it is answered, chunks are dropped."""
        self.consumer = consumer
        return consumer

    async def send(self, chunk: bytes | None) -> None:
        """Queue ``chunk`` (None: the end); drop it if the backend has already answered."""
        consumer = self.consumer
        if consumer is None or consumer.done():
            return
        queued = asyncio.ensure_future(self._queue.put(chunk))
        await asyncio.wait((queued, consumer), return_when=asyncio.FIRST_COMPLETED)
        queued.cancel()

    async def end(self) -> None:
        await self.send(None)

    def cancel(self) -> None:
        """A client that leaves mid-body must not leave a half-sent request behind."""
        if self.consumer is not None and not self.consumer.done():
            self.consumer.cancel()
