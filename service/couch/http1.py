"""HTTP/1.1 client connections on asyncio: what the async transport sends requests over.

Not aiohttp, for its cost: in front of a server that answers at once, a Tornado handler that
fetched each document with aiohttp spent ~250 µs of CPU per request on it, and with these
connections ~50 µs (bench/README.md). A connection is one asyncio protocol whose responses
httptools (llhttp, Node's parser) parses; a ``Pool`` per server keeps them alive between
requests, up to a limit. A response is either read whole (``Pool.fetch``) or as its body
arrives (``Pool.open``), with reading paused while unread data piles up.

Failures are builtin exceptions: ``OSError`` from connecting, ``ConnectionError`` when the
server drops a connection mid-exchange, ``TimeoutError``, and ``BadResponse`` for bytes that
do not parse as HTTP. The transport turns them into the client's errors. The error of a
request sent a second time after a stale connection (see ``StaleConnection``) has that
``StaleConnection`` as its ``__cause__``: the first try may have reached the server.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import re
import ssl
from collections.abc import AsyncIterable, Callable, Mapping
from typing import Any

import httptools

HIGH_WATER = 256 * 1024  # unread body bytes at which a connection stops reading
HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+\Z")  # an HTTP token
BAD_VALUE = re.compile(r"[\r\n\0]")
IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})


class BadResponse(Exception):
    """The server sent something that is not an HTTP/1.1 response."""


class StaleConnection(ConnectionError):
    """A kept-alive connection was closed by the server before any byte of an answer: an
    idempotent request may be sent again."""


class Unsolicited(Exception):
    """Raised from the parser's callbacks to stop it at bytes that follow a whole answer."""


class Connection(asyncio.Protocol):
    """One keep-alive connection: one exchange at a time, its response parsed as it arrives."""

    def __init__(self, pool: Pool) -> None:
        self._pool = pool
        self._loop = pool.loop
        self._transport: asyncio.Transport | None = None
        self._parser = parser(self)
        self.lost = False
        self.reused = False
        self.idle_since = 0.0  # the loop's time when it last went back to the pool
        self._parsing = False
        self._begin(head_only=False, stream=False)
        self._drained: asyncio.Future[None] | None = None

    def _begin(self, *, head_only: bool, stream: bool) -> None:
        self.status = 0
        self.headers: dict[str, str] = {}
        self._chunks: list[bytes] = []
        self._buffered = 0
        self._head_only = head_only
        self._stream = stream
        self._interim = False
        self._headers_done = False
        self.complete = False
        self.keep_alive = False
        self._replied = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._then: Callable[[], None] | None = None
        self._then_due = False
        self._timer: asyncio.TimerHandle | None = None
        self._reading_paused = False
        self._cut_short = False

    # -- an exchange, as the pool drives it

    def send(
        self,
        head: bytes,
        body: bytes | None,
        *,
        head_only: bool,
        stream: bool,
        timeout: float | None,
        then: Callable[[], None],
    ) -> None:
        """Start an exchange: write the request's head and, if it is in memory, its body
        (a streamed body follows with ``upload()``).

        ``then()`` runs once: when the response is whole, or with ``stream`` when its head is
        in (the body is then ``read()``), or when the exchange has failed (``error``); from
        the callback that saw it, not a turn of the loop later, and after the parser is done
        with the bytes at hand, so that ``then`` may start the next exchange. ``timeout``
        covers the upload too."""
        self._begin(head_only=head_only, stream=stream)
        self._then = then
        self.time_out_after(timeout)
        self._transport.write(head + body if body else head)

    async def upload(self, body: AsyncIterable[bytes], length: int | None) -> None:
        """Write a request body that comes from an async iterable, after ``send()`` wrote the
        head, honouring back-pressure: chunked, or as it comes when its ``length`` is given.
        An answer (or a failure) before the body is all sent ends the upload, and the
        connection is not kept: the server has not read the whole request."""
        if not await self._upload(body, length):
            self._cut_short = True
            self.keep_alive = False
            if (close := getattr(body, "aclose", None)) is not None:
                await close()

    async def _upload(self, body: AsyncIterable[bytes], length: int | None) -> bool:
        """Send ``body``; whether all of it went before the exchange ended."""
        left = length
        async for chunk in body:
            if self.lost or self.complete or self._error is not None:
                return False
            if left is None:
                if chunk:
                    self._transport.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            else:
                left -= len(chunk)
                if left < 0:
                    raise ValueError("the request body is longer than its Content-Length")
                self._transport.write(chunk)
            if self._drained is not None:
                await self._drained
        if left:
            raise ValueError("the request body is shorter than its Content-Length")
        if length is None and not self.lost:
            self._transport.write(b"0\r\n\r\n")
        return True

    def time_out_after(self, seconds: float | None) -> None:
        """Fail the exchange with TimeoutError unless its waiter resolves within ``seconds``."""
        self._stop_timer()
        if seconds is not None:
            self._timer = self._loop.call_later(seconds, self._time_out)

    async def read(self, timeout: float | None) -> bytes:
        """The body bytes received since the last read; ``b""`` once the body is whole."""
        while not self._chunks:
            if self._error is not None:
                raise self._error
            if self.complete:
                return b""
            waiter = self._waiter = self._loop.create_future()
            self.time_out_after(timeout)
            try:
                await waiter
            finally:
                self._stop_timer()
        data = b"".join(self._chunks) if len(self._chunks) > 1 else self._chunks[0]
        self._chunks.clear()
        self._buffered = 0
        self._resume_reading()
        return data

    def body(self) -> bytes:
        return b"".join(self._chunks)

    def close(self) -> None:
        """Close from this side; an exchange in progress fails with ConnectionError."""
        if not self.lost:
            self.lost = True
            if self._exchanging():
                self._fail(
                    ConnectionError(
                        "the connection was closed on this side before the response came"
                    )
                )
        self._stop_timer()
        if self._transport is not None:
            self._transport.close()

    # -- asyncio protocol callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.complete:
            # Bytes nobody asked for (a 408 before the server hangs up, say): the connection
            # is not to be trusted with another exchange.
            self.close()
            return
        self._replied = True
        self._parsing = True
        try:
            self._parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
            if not self.complete:  # else: bytes after a whole answer (Unsolicited), kept whole
                reason = str(exc) or "the response does not parse"
                self._fail(
                    BadResponse("the server switched protocols" if self.status == 101 else reason)
                )
            self.close()
        finally:
            self._parsing = False
        if self._then_due:
            self._call_then()  # after the parser is done with this data: ``then`` may reuse it

    def connection_lost(self, exc: BaseException | None) -> None:
        closed_here, self.lost = self.lost, True
        self._pool.forget(self)
        if not closed_here and self._exchanging():
            if exc is None and self._headers_done and self._delimited_by_close():
                self._message_done()
            elif self.reused and not self._replied:
                self._fail(StaleConnection("the server closed a kept-alive connection"))
            else:
                self._fail(ConnectionError(str(exc or "the server closed the connection")))
        self.resume_writing()

    def pause_writing(self) -> None:
        self._drained = self._loop.create_future()

    def resume_writing(self) -> None:
        """Let an upload waiting for the socket to drain go on (and see why, if it ended)."""
        drained, self._drained = self._drained, None
        if drained is not None and not drained.done():
            drained.set_result(None)

    # -- httptools callbacks

    def on_message_begin(self) -> None:
        if self.complete:
            # A second answer in the same read: parsing stops here, before it can overwrite
            # the first, and the connection is closed as for any bytes nobody asked for.
            raise Unsolicited

    def on_header(self, name: bytes, value: bytes) -> None:
        key, text = name.decode("latin-1").lower(), value.decode("latin-1")
        # A repeated header's values are joined, as HTTP says they may be.
        self.headers[key] = f"{self.headers[key]}, {text}" if key in self.headers else text

    def on_headers_complete(self) -> None:
        self.status = self._parser.get_status_code()
        if self.status < 200:
            self._interim = True  # 100 Continue and the like: the real answer follows
            self.headers = {}
            return
        self._headers_done = True
        if self._head_only:
            # llhttp cannot be told that a reply to HEAD has no body: finish here and give the
            # connection a fresh parser for its next exchange.
            self._message_done()
            self._parser = parser(self)
        elif self._stream:
            self._wake()

    def on_body(self, body: bytes) -> None:
        if self.complete:
            raise Unsolicited  # after a reply to HEAD, whose parser reads its length as body
        self._chunks.append(body)
        if self._stream:
            self._buffered += len(body)
            if self._buffered > HIGH_WATER and not self._reading_paused:
                self._reading_paused = True
                self._transport.pause_reading()
            self._wake()

    def on_message_complete(self) -> None:
        if self._interim:
            self._interim = False
            return
        if not self.complete:
            self._message_done()

    # -- internals

    def _message_done(self) -> None:
        self.complete = True
        # A body sent with both a length and chunks (pouchdb-server's _list output) is read by
        # its chunks, but its connection is not trusted with another exchange.
        framed_twice = "content-length" in self.headers and "transfer-encoding" in self.headers
        self.keep_alive = (
            not self.lost
            and not framed_twice
            and not self._cut_short
            and self._parser.should_keep_alive()
        )
        self._resume_reading()  # nothing more of this body to hold back
        self._wake()
        self.resume_writing()

    def _exchanging(self) -> bool:
        """Whether an exchange is under way and has not failed yet."""
        started = self._waiter is not None or self._then is not None or self._stream
        return started and not self.complete and self._error is None

    def _delimited_by_close(self) -> bool:
        headers = self.headers
        return "content-length" not in headers and "chunked" not in headers.get(
            "transfer-encoding", ""
        )

    def _resume_reading(self) -> None:
        if self._reading_paused and not self.lost:
            self._reading_paused = False
            self._transport.resume_reading()

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        self._stop_timer()
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        if self._then is not None:
            if self._parsing:
                self._then_due = True
            else:
                self._call_then()

    def _fail(self, error: BaseException) -> None:
        self._error = error
        waiter, self._waiter = self._waiter, None
        self._stop_timer()
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)
            # Retrieved here so that no "never retrieved" warning follows when the exchange
            # was abandoned first (an upload that failed, a cancelled request): whoever
            # awaits the waiter still gets the error.
            waiter.exception()
        if self._then is not None and not self._then_due:
            self._call_then()
        self.resume_writing()

    def _call_then(self) -> None:
        then, self._then = self._then, None
        self._then_due = False
        if then is not None:
            then()

    @property
    def error(self) -> BaseException | None:
        """Why the exchange failed, if it did."""
        return self._error

    def _time_out(self) -> None:
        self._timer = None
        self._fail(TimeoutError("no response in time"))
        self.close()


class Reply:
    """A response whose body is read as it arrives; ``close()`` gives the connection back."""

    __slots__ = ("_connection", "_pool", "_read_timeout", "headers", "status")

    def __init__(self, connection: Connection, pool: Pool, read_timeout: float | None) -> None:
        self.status = connection.status
        self.headers = connection.headers
        self._connection: Connection | None = connection
        self._pool = pool
        self._read_timeout = read_timeout

    async def read(self) -> bytes:
        """The next part of the body; ``b""`` at its end."""
        if self._connection is None:
            raise ConnectionError("the response was closed")
        return await self._connection.read(self._read_timeout)

    def close(self) -> None:
        """Back to the pool if the body was read to its end and the server keeps it alive;
        closed otherwise. Closing again does nothing."""
        connection, self._connection = self._connection, None
        if connection is not None:
            self._pool.release(connection)


Whole = tuple[int, dict[str, str], bytes]  # a response read whole: status, headers, body


class Fetch:
    """One ``Pool.fetch_then`` exchange. A request with its body in memory goes out at once
    over an idle connection, and ``then`` runs as the response completes; anything else
    (connecting, waiting for a turn, a streamed body, a second try) runs as a task."""

    __slots__ = (
        "_connection",
        "_pool",
        "_request",
        "_retry",
        "_stale",
        "_task",
        "_then",
        "_timeout",
    )

    def __init__(
        self,
        pool: Pool,
        method: str,
        target: str,
        headers: Mapping[str, str],
        body: Any,
        timeout: float | None,
        then: Callable[[Whole | BaseException], None],
    ) -> None:
        self._pool = pool
        self._request = (method, target, headers, body)
        self._timeout = timeout
        self._then = then
        self._retry = method in IDEMPOTENT
        self._connection: Connection | None = None
        self._task: asyncio.Task[Whole] | None = None
        self._stale: StaleConnection | None = None  # what the first try met, if tried twice

    def start(self) -> None:
        """Send the request, or raise ``ValueError`` for one that HTTP cannot carry (nothing
        goes out then, and ``then`` is not called)."""
        pool = self._pool
        method, target, headers, body = self._request
        head, streamed, _ = pool._head(method, target, headers, body)
        connection = None if streamed else pool.take_idle()
        if connection is None:
            self._task = pool.loop.create_task(
                pool._fetch(method, target, headers, body, timeout=self._timeout, retry=self._retry)
            )
            self._task.add_done_callback(self._fetched)
            return
        self._connection = connection
        connection.send(
            head,
            body,
            head_only=method == "HEAD",
            stream=False,
            timeout=self._timeout,
            then=self._answered,
        )

    def abandon(self) -> None:
        """Give up on the response: its connection is closed (``then`` is told so)."""
        if self._connection is not None:
            self._connection.close()
        elif self._task is not None:
            self._task.cancel()

    def _answered(self) -> None:
        connection, self._connection = self._connection, None
        assert connection is not None
        pool = self._pool
        if connection.complete:
            outcome: Whole | BaseException = (
                connection.status,
                connection.headers,
                connection.body(),
            )
            pool.release(connection)
        elif isinstance(connection.error, StaleConnection) and self._retry:
            pool.release(connection)
            pool.retried += 1
            self._retry = False
            self._stale = connection.error
            self.start()
            return
        else:
            assert connection.error is not None  # then() runs when complete, or on a failure
            outcome = connection.error
            connection.close()
            pool.release(connection)
        self._then(outcome)

    def _fetched(self, task: asyncio.Task[Whole]) -> None:
        self._task = None
        if task.cancelled():
            self._then(asyncio.CancelledError())
        elif (error := task.exception()) is not None:
            self._then(_after(self._stale, error))
        else:
            self._then(task.result())


def _after(stale: StaleConnection | None, error: BaseException) -> BaseException:
    """``error``, with the ``StaleConnection`` its request met on a first try as its cause."""
    if stale is not None and error.__cause__ is None:
        error.__cause__ = stale
    return error


class Pool:
    """Keep-alive connections to one server, at most ``limit`` at once (0: no limit); over
    TLS with the ``tls`` context if one is given.

    A connection idle for ``idle_timeout`` seconds (None: for ever) is closed rather than
    reused. Servers close idle keep-alive connections too (pouchdb-server 6 s after its last
    answer: Node's keepAliveTimeout of 5 s, checked a second late): a request written just as
    the server closes its end is lost, and only an idempotent one may be sent again. Closing
    first, earlier than the server would, means that race is never run.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        tls: ssl.SSLContext | None = None,
        limit: int = 100,
        connect_timeout: float = 10.0,
        headers: Mapping[str, str] | None = None,
        idle_timeout: float | None = 4.0,
    ) -> None:
        self.loop = asyncio.get_running_loop()
        self.host, self.port = host, port
        self.limit = limit
        self.connect_timeout = connect_timeout
        self.idle_timeout = idle_timeout
        self.retried = 0  # requests sent again after a kept-alive connection proved stale
        self._tls = tls
        self._closed = False
        self._idle: list[Connection] = []  # oldest first: each goes back at the end
        self._sweep: asyncio.TimerHandle | None = None
        self._open: set[Connection] = set()
        self._connecting = 0
        self._waiters: collections.deque[asyncio.Future[Connection | None]] = collections.deque()
        authority = host if ":" not in host else f"[{host}]"
        default_port = 443 if tls else 80
        host_header = authority if port == default_port else f"{authority}:{port}"
        self._defaults = {"host": ("Host", host_header)}
        for name, value in (headers or {}).items():
            self._defaults[name.lower()] = (name, value)
        self._default_block = header_block(dict(self._defaults.values()))

    def fetch(
        self,
        method: str,
        target: str,
        headers: Mapping[str, str],
        body: Any,
        *,
        timeout: float | None,
    ) -> asyncio.Future[Whole]:
        """Send a request and read its whole response: a future of (status, headers, body).

        ``timeout`` bounds the wait for a free connection, and then the exchange. Cancelling
        the future abandons the exchange (its connection is closed)."""
        answer: asyncio.Future[Whole] = self.loop.create_future()

        def settle(outcome: Whole | BaseException) -> None:
            if answer.done():
                return
            if isinstance(outcome, asyncio.CancelledError):
                answer.cancel()
            elif isinstance(outcome, BaseException):
                answer.set_exception(outcome)
            else:
                answer.set_result(outcome)

        try:
            fetching = self.fetch_then(method, target, headers, body, timeout=timeout, then=settle)
        except ValueError as exc:
            answer.set_exception(exc)
            return answer
        answer.add_done_callback(lambda done: fetching.abandon() if done.cancelled() else None)
        return answer

    def fetch_then(
        self,
        method: str,
        target: str,
        headers: Mapping[str, str],
        body: Any,
        *,
        timeout: float | None,
        then: Callable[[Whole | BaseException], None],
    ) -> Fetch:
        """``fetch()`` for a caller that would rather be called back: ``then`` receives
        (status, headers, body) or the exception, from the callback that saw the response
        whole, never before this returns. A request HTTP cannot carry (its target or a header)
        raises ``ValueError`` here, and nothing is sent."""
        fetching = Fetch(self, method, target, headers, body, timeout, then)
        fetching.start()
        return fetching

    async def _fetch(
        self,
        method: str,
        target: str,
        headers: Mapping[str, str],
        body: Any,
        *,
        timeout: float | None,
        retry: bool,
    ) -> Whole:
        connection = await self._exchange(method, target, headers, body, False, timeout, retry)
        result = (connection.status, connection.headers, connection.body())
        self.release(connection)
        return result

    async def open(
        self,
        method: str,
        target: str,
        headers: Mapping[str, str],
        body: Any,
        *,
        read_timeout: float | None,
    ) -> Reply:
        """Send a request; return its response once the headers are in, the body to be read."""
        connection = await self._exchange(
            method, target, headers, body, True, read_timeout, method in IDEMPOTENT
        )
        return Reply(connection, self, read_timeout)

    async def _exchange(
        self,
        method: str,
        target: str,
        headers: Mapping[str, str],
        body: Any,
        stream: bool,
        timeout: float | None,
        retry: bool,
    ) -> Connection:
        """Send a request over a connection of the pool and wait for the response (its head,
        with ``stream``); once more on another connection if the first turns out stale and
        ``retry`` allows it (never for a streamed body)."""
        head, streamed, length = self._head(method, target, headers, body)
        retry = retry and not streamed
        stale: StaleConnection | None = None
        while True:
            try:
                connection = await self._acquire(timeout)
            except BaseException as exc:
                _after(stale, exc)
                raise
            answered = self.loop.create_future()
            try:
                connection.send(
                    head,
                    None if streamed else body,
                    head_only=method == "HEAD",
                    stream=stream,
                    timeout=timeout,
                    then=functools.partial(_resolve, answered),
                )
                if streamed:
                    await connection.upload(body, length)
                await answered
                if connection.error is not None and not connection.complete:
                    raise connection.error
                return connection
            except StaleConnection as exc:
                self.release(connection)
                if not retry:
                    raise
                self.retried += 1
                retry = False
                stale = exc
            except BaseException:
                connection.close()
                self.release(connection)
                raise

    def _head(
        self, method: str, target: str, headers: Mapping[str, str], body: Any
    ) -> tuple[bytes, bool, int | None]:
        """The request line and headers; whether the body is streamed, and its given length.

        The pool frames the body itself: a ``Content-Length`` among ``headers`` is kept only
        for a streamed body (sent as it comes, not chunked), and ``Transfer-Encoding`` never.
        """
        if not target.isascii() or not target.isprintable() or " " in target:
            raise ValueError(f"not a request target: {target!r}")
        streamed = body is not None and not isinstance(body, bytes | bytearray | memoryview)
        block = self._default_block
        length = None
        if headers:
            merged = dict(self._defaults)
            for name, value in headers.items():
                lowered = name.lower()
                if lowered in ("content-length", "transfer-encoding"):
                    if not streamed or lowered != "content-length":
                        continue
                    length = int(value)
                merged[lowered] = (name, value)
            block = header_block(dict(merged.values()))
        if streamed and length is None:
            block += "Transfer-Encoding: chunked\r\n"
        elif body is not None and not streamed:
            block += f"Content-Length: {len(body)}\r\n"
        elif body is None and method in ("POST", "PUT"):
            block += "Content-Length: 0\r\n"
        return f"{method} {target} HTTP/1.1\r\n{block}\r\n".encode("latin-1"), streamed, length

    async def _acquire(self, timeout: float | None) -> Connection:
        """An idle connection, a new one while under the limit, or the next one given back."""
        while True:
            if self._closed:
                raise ConnectionError("the client is closed")
            if (idle := self.take_idle()) is not None:
                return idle
            if not self.limit or len(self._open) + self._connecting < self.limit:
                return await self._connect(reserved=False)
            handed = await self._wait_turn(timeout)
            if handed is None:
                return await self._connect(reserved=True)
            if not handed.lost:
                return handed
            # It closed on the way here, and its slot went to the next in line: queue again.

    def take_idle(self) -> Connection | None:
        """The connection kept alive last, if one is idle, not expired, and the pool open."""
        idle, limit = self._idle, self.idle_timeout
        if idle and limit is not None and self.loop.time() - idle[0].idle_since >= limit:
            self._close_expired()  # the loop was too busy to sweep them in time
        while self._idle and not self._closed:
            connection = self._idle.pop()
            if not connection.lost:
                connection.reused = True
                return connection
        return None

    def _close_expired(self) -> None:
        """Close the idle connections that have been idle ``idle_timeout`` seconds, and sweep
        again when the next one will have been."""
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        now = self.loop.time()
        idle = self._idle
        expired = 0
        while expired < len(idle) and now - idle[expired].idle_since >= self.idle_timeout:
            expired += 1
        if expired:
            closing, self._idle = idle[:expired], idle[expired:]
            for connection in closing:
                connection.close()
        self._schedule_sweep()

    def _schedule_sweep(self) -> None:
        if self._sweep is None and self._idle and not self._closed:
            due = self._idle[0].idle_since + self.idle_timeout
            self._sweep = self.loop.call_at(due, self._close_expired)

    async def _wait_turn(self, timeout: float | None) -> Connection | None:
        """Wait for a connection given back, or (None) for a slot reserved to connect in."""
        waiter: asyncio.Future[Connection | None] = self.loop.create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(timeout):
                return await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                # Given up (cancelled, out of time) just as its turn came: pass it on.
                if (handed := waiter.result()) is not None:
                    self.release(handed)
                else:
                    self._connecting -= 1
                    self._free_slot()
            raise

    async def _connect(self, *, reserved: bool) -> Connection:
        """A new connection, in a slot of its own (``reserved`` for it by ``_free_slot``)."""
        if not reserved:
            self._connecting += 1
        try:
            async with asyncio.timeout(self.connect_timeout):
                _, connection = await self.loop.create_connection(
                    lambda: Connection(self),
                    self.host,
                    self.port,
                    ssl=self._tls,
                    server_hostname=self.host if self._tls else None,
                )
        except BaseException:
            self._connecting -= 1
            self._free_slot()
            raise
        self._connecting -= 1
        if self._closed:
            connection.close()
            raise ConnectionError("the client is closed")
        self._open.add(connection)
        return connection

    def release(self, connection: Connection) -> None:
        """Take a connection back after an exchange: kept if it can serve another."""
        if connection.complete and connection.keep_alive and not connection.lost:
            if (waiter := self._next_waiter()) is not None:
                connection.reused = True
                waiter.set_result(connection)
            elif not self._closed:
                connection.idle_since = self.loop.time()
                self._idle.append(connection)
                if self.idle_timeout is not None:
                    self._schedule_sweep()
            else:
                connection.close()
        else:
            connection.close()
            self.forget(connection)

    def forget(self, connection: Connection) -> None:
        """A connection has closed: it no longer counts against the limit."""
        if connection in self._open:
            self._open.discard(connection)
            with contextlib.suppress(ValueError):
                self._idle.remove(connection)
            self._free_slot()

    def _free_slot(self) -> None:
        """A slot under the limit is free: reserve it for the oldest waiter, if any."""
        if (waiter := self._next_waiter()) is not None:
            self._connecting += 1
            waiter.set_result(None)

    def _next_waiter(self) -> asyncio.Future[Connection | None] | None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                return waiter
        return None

    def close(self) -> None:
        """Close every connection; exchanges in progress or waiting, and any later, fail with
        ConnectionError."""
        self._closed = True
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        while (waiter := self._next_waiter()) is not None:
            waiter.set_exception(ConnectionError("the client is closed"))
        for connection in list(self._open):
            connection.close()
        self._idle.clear()


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def parser(connection: Connection) -> httptools.HttpResponseParser:
    """A response parser that reads a body sent with both a length and chunked encoding (as
    pouchdb-server sends _list output) by its chunks, as HTTP/1.1 says a client may."""
    parsing = httptools.HttpResponseParser(connection)
    parsing.set_dangerous_leniencies(lenient_chunked_length=True)
    return parsing


def header_block(headers: Mapping[str, str]) -> str:
    """``Name: value`` lines, refusing names that are not HTTP tokens and values that would
    end a header (or the head) early."""
    lines = []
    for name, value in headers.items():
        text = str(value)
        if not HEADER_NAME.match(name) or BAD_VALUE.search(text):
            raise ValueError(f"not a header HTTP allows: {name!r}")
        lines.append(f"{name}: {text}\r\n")
    return "".join(lines)
