"""A request body passed on to the backend as it arrives, never held whole.

The backend's request starts as soon as the client's headers are in; the body follows
through a small bounded queue, so the service holds a few chunks of it at most, and a
client that sends faster than the backend reads is held back.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from email.message import Message
from typing import Any

from ..couch.errors import BadRequest

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


class MultipartOpening:
    """The start of a multipart body on its way to CouchDB, held back until it shows its first
    boundary. CouchDB answers a body without one with 500 and its Erlang stack, and waits for
    ever on one whose boundary comes after a preamble: such a body is refused (400) before
    any of it is sent. Only the opening is held, never more than the boundary's length."""

    __slots__ = ("_delimiter", "_held")

    def __init__(self, boundary: str) -> None:
        self._delimiter = b"--" + boundary.encode("latin1")
        self._held: bytes | None = b""

    @classmethod
    def of(cls, content_type: str) -> MultipartOpening | None:
        """One for a multipart Content-Type that names a boundary, else None."""
        header = Message()
        header["Content-Type"] = content_type
        boundary = header.get_param("boundary")
        if header.get_content_maintype() != "multipart" or not isinstance(boundary, str):
            return None
        return cls(boundary)

    def feed(self, chunk: bytes) -> bytes:
        """What may go on to the backend now: nothing until the opening is whole."""
        if self._held is None:
            return chunk
        held = self._held + chunk
        if not (held.startswith(self._delimiter) or self._delimiter.startswith(held)):
            raise BadRequest("bad_request", "a multipart body must open with its boundary")
        if len(held) < len(self._delimiter):
            self._held = held
            return b""
        self._held = None
        return held

    def end(self) -> bytes:
        """At the end of the body: 400 if it never showed its boundary."""
        if self._held is not None:
            raise BadRequest("bad_request", "a multipart body must open with its boundary")
        return b""
