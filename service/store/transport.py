"""The in-process transports: the client's requests answered by the store, no socket.

``Couch("embedded:/path/to/dir")`` runs its operations over these instead of HTTP: each
``protocol.Request`` goes to the store's ``Server`` as it is (method, path and query, headers,
body) and its ``Reply`` comes back as a ``protocol.Response``, or as a body read in chunks for
relays and feeds. They offer what ``transport.AsyncTransport`` and ``BlockingTransport`` offer,
so the runners, the changes feeds, the handlers' relays and the hub use them unchanged.

The async face runs the store's work in a thread pool, except a document's GET, PUT or
DELETE, a few indexed reads and one write the loop does itself, awaiting the writer's commit
(``inline`` says why); a feed waits for the database's next commit on the loop itself
(``Signal.wait_async``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ..couch.errors import BadRequest
from ..couch.protocol import Request, Response
from ..couch.transport import Endpoint
from . import inline
from .reply import Reply
from .router import Server
from .store import Store

WORKERS = 32  # threads running store work for one async client: concurrent writes group
CHUNK = 65536  # a whole reply is read in pieces of this size, as a socket would give it


def _target(request: Request) -> str:
    try:
        target = request.target
        target.encode()
    except UnicodeEncodeError as exc:
        raise BadRequest("bad_request", f"not text a URL can carry: {exc}") from exc
    return target


def _headers(reply: Reply, endpoint: Endpoint) -> dict[str, str]:
    """The reply's headers, a ``Location`` made absolute on the client's URL."""
    headers = dict(reply.headers)
    if headers.get("location", "").startswith("/"):
        headers["location"] = endpoint.url + headers["location"]
    return headers


class _Base:
    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self.store = Store.acquire(endpoint.path)
        self.server = Server(self.store, local_admin=endpoint.local_admin)
        self._closed = False

    def headers(self, request: Request) -> dict[str, str]:
        """The request's headers, with the endpoint's credentials when it carries none of its
        own (a ``Couch(url, auth=…)`` acts as that user here as over HTTP)."""
        headers = {name.lower(): value for name, value in request.headers.items()}
        if self.endpoint.auth and not ({"authorization", "cookie"} & headers.keys()):
            headers["authorization"] = self.endpoint.headers()["Authorization"]
        return headers

    def describe(self, request: Request) -> str:
        return f"{request.method} {self.endpoint.url}{request.path}"

    def _release(self) -> None:
        if not self._closed:
            self._closed = True
            self.store.release()


class _Pieces:
    """A whole reply's body, handed out in pieces."""

    def __init__(self, reply: Reply) -> None:
        self._reply = reply
        self._offset = 0
        self._done = False

    def _piece(self) -> bytes:
        body = self._reply.body
        piece = body[self._offset : self._offset + CHUNK]
        self._offset += len(piece)
        self._done = self._offset >= len(body)
        return piece


class AsyncStoreBody(_Pieces):
    """A reply read in chunks on the event loop: a whole body's, or a feed's as they come."""

    def __init__(self, reply: Reply, headers: dict[str, str], run: Callable[..., Any]) -> None:
        super().__init__(reply)
        self.status = reply.status
        self.headers = headers
        self._run = run

    async def read(self) -> bytes:
        if self._done:
            return b""
        feed = self._reply.stream
        if feed is None:
            return self._piece()
        while True:
            version = feed.signal.version
            chunk, wait = await self._run(feed.step, time.monotonic())
            if chunk is None:
                self._done = True
                return b""
            if chunk:
                return chunk
            await feed.signal.wait_async(version, wait)

    async def read_all(self) -> bytes:
        return b"".join([chunk async for chunk in self])

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while chunk := await self.read():
            yield chunk

    def close(self) -> None:
        self._done = True


class AsyncStoreTransport(_Base):
    """The store behind asyncio futures; its work runs in a pool of threads."""

    def __init__(self, endpoint: Endpoint) -> None:
        super().__init__(endpoint)
        self._pool = ThreadPoolExecutor(WORKERS, thread_name_prefix="settee-store")

    async def _in_pool(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    async def _reply(self, request: Request, target: str) -> AsyncStoreBody:
        body = request.body
        if body is not None and not isinstance(body, bytes | bytearray | str):
            body = b"".join([bytes(chunk) async for chunk in body])
        if isinstance(body, str):
            body = body.encode()
        headers = self.headers(request)
        args = (request.method, target, headers, bytes(body or b""))
        reply = None
        if self.server.quick(request.method, target, headers, len(args[3])):
            try:
                with inline.running():
                    reply = self.server.handle(*args)
            except inline.WouldBlock:
                pass
            except inline.Pending as pending:
                with contextlib.suppress(Exception):  # what the write raised, finish answers
                    await asyncio.wrap_future(pending.future)
                reply = pending.finish(pending.future)
        if reply is None:
            reply = await self._in_pool(self.server.handle, *args)
        return AsyncStoreBody(reply, _headers(reply, self.endpoint), self._in_pool)

    def send_then(
        self, request: Request, then: Callable[[Response | BaseException], None]
    ) -> Callable[[], None]:
        """Answer ``request``; ``then`` receives the Response (or the exception) later, never
        before this returns. Returns what abandons it."""
        target = _target(request)

        async def answer() -> Response:
            body = await self._reply(request, target)
            return Response(body.status, body.headers, await body.read_all())

        task = asyncio.ensure_future(answer())

        def done(finished: asyncio.Future) -> None:
            if finished.cancelled():
                then(asyncio.CancelledError())
            elif (exc := finished.exception()) is not None:
                then(exc)
            else:
                then(finished.result())

        task.add_done_callback(done)

        def abandon() -> None:
            task.cancel()

        return abandon

    async def open(
        self, request: Request, *, read_timeout: float | None = None, feed: bool = False
    ) -> AsyncStoreBody:
        """Answer ``request``, its body to be read in chunks (a feed's as changes commit)."""
        return await self._reply(request, _target(request))

    @contextlib.asynccontextmanager
    async def stream(
        self, request: Request, *, read_timeout: float | None = None, feed: bool = False
    ) -> AsyncIterator[AsyncStoreBody]:
        body = await self.open(request)
        try:
            yield body
        finally:
            body.close()

    async def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._release()


class BlockingStoreBody(_Pieces):
    """A reply read in chunks in the calling thread; ``abort()`` from another thread ends a
    feed's wait at once."""

    def __init__(self, reply: Reply, headers: dict[str, str]) -> None:
        super().__init__(reply)
        self.status = reply.status
        self.headers = headers

    def read(self) -> bytes:
        if self._done:
            return b""
        feed = self._reply.stream
        if feed is None:
            return self._piece()
        while not self._done:
            version = feed.signal.version
            chunk, wait = feed.step(time.monotonic())
            if chunk is None:
                break
            if chunk:
                return chunk
            feed.signal.wait(version, wait, lambda: self._done)
        self._done = True
        return b""

    def read_all(self) -> bytes:
        return b"".join(self)

    def __iter__(self) -> Iterator[bytes]:
        while chunk := self.read():
            yield chunk

    def abort(self) -> None:
        self._done = True
        if self._reply.stream is not None:
            self._reply.stream.signal.wake_threads()

    def close(self) -> None:
        self.abort()


class BlockingStoreTransport(_Base):
    """The store for code without an event loop; safe to share between threads."""

    def _reply(self, request: Request) -> BlockingStoreBody:
        body = request.body
        if isinstance(body, str):
            body = body.encode()
        elif body is not None and not isinstance(body, bytes | bytearray):
            body = b"".join(_chunks(body))
        reply = self.server.handle(
            request.method, _target(request), self.headers(request), bytes(body or b"")
        )
        return BlockingStoreBody(reply, _headers(reply, self.endpoint))

    def send(self, request: Request) -> Response:
        body = self._reply(request)
        return Response(body.status, body.headers, body.read_all())

    def open(
        self, request: Request, *, read_timeout: float | None = None, feed: bool = False
    ) -> BlockingStoreBody:
        return self._reply(request)

    @contextlib.contextmanager
    def stream(
        self, request: Request, *, read_timeout: float | None = None, feed: bool = False
    ) -> Iterator[BlockingStoreBody]:
        body = self.open(request)
        try:
            yield body
        finally:
            body.close()

    def close(self) -> None:
        self._release()


def _chunks(body: Iterable[bytes]) -> Iterator[bytes]:
    for chunk in body:
        yield bytes(chunk)
