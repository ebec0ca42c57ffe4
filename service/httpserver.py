"""settee's HTTP/1.1 server: Tornado's Application and handlers, over httptools.

Tornado's own server parses each request in Python through a chain of coroutines. Here llhttp
parses (through httptools) what a Tornado ``TCPServer`` reads from each connection's
``IOStream``, and the Application is driven through the interface Tornado's server gives it
(``httputil.HTTPConnection``): less CPU per proxied request, and llhttp refuses the ambiguous
framings that request smuggling relies on (bench/README.md). Only documented Tornado interfaces
are used: a WebSocket upgrade hands the connection's own ``IOStream`` to the handler
(``detach``, as Tornado's ``HTTP1Connection`` does).

As in Tornado's server: keep-alive (HTTP/1.1, and 1.0 when asked), pipelined requests answered
in order, request bodies streamed to the handler with back-pressure, chunked responses when no
length is known, ``xheaders``, ``Expect: 100-continue``, a request head of at most 64 KiB and a
body of at most ``max_body_size`` (a chunked body that outgrows it ends the connection, with a
400 if nothing was answered yet). Beyond it, four timeouts (``Timeouts``) end a connection
whose client is too slow to send a head or a body, idles too long, or does not read.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import httptools
from tornado import httputil, iostream, netutil, tcpserver

log = logging.getLogger("settee.httpserver")

HEAD_LIMIT = 65_536  # bytes of request line and headers (Tornado's max_header_size)
PIPELINE_LIMIT = 64  # requests queued behind the one being answered, past which it is abuse
READ_SIZE = 65_536  # bytes read from a socket at a time


@dataclass(frozen=True)
class Timeouts:
    """Seconds a client may take, past which its connection is closed. Time that settee
    itself holds reading back (a handler not ready for more body, a request waiting behind
    the one being answered) does not count."""

    header: float = 60.0  # from a request's first byte to the end of its head
    body: float = 600.0  # from the end of a request's head to the end of its body
    idle: float = 3600.0  # between requests: from an answer (or connecting) to the next one
    write: float = 300.0  # a response written that the client does not read at all

    def __post_init__(self) -> None:
        if min(self.header, self.body, self.idle, self.write) <= 0:
            raise ValueError("every timeout must be > 0")

    @property
    def sweep_interval(self) -> float:
        """How often connections are checked: a quarter of the shortest timeout."""
        return min(max(min(self.header, self.body, self.idle, self.write) / 4, 0.05), 60.0)


def refusal(status: str, error: str, reason: str) -> bytes:
    """A whole answer, in CouchDB's JSON, to a request that cannot be handed to the app."""
    body = json.dumps({"error": error, "reason": reason}).encode() + b"\n"
    head = f"HTTP/1.1 {status}\r\nConnection: close\r\nContent-Type: application/json\r\n"
    return head.encode() + b"Content-Length: %d\r\n\r\n" % len(body) + body


BAD_REQUEST = refusal("400 Bad Request", "bad_request", "the request could not be parsed")
CONTINUE = b"HTTP/1.1 100 (Continue)\r\n\r\n"
END = object()  # the end of a request body, among its chunks


class Server(tcpserver.TCPServer):
    """Serve a Tornado Application on listening sockets; Tornado HTTPServer's life cycle."""

    def __init__(
        self,
        app: httputil.HTTPServerConnectionDelegate,
        *,
        xheaders: bool = False,
        max_body_size: int = 100 * 1024 * 1024,
        timeouts: Timeouts = Timeouts(),
    ) -> None:
        super().__init__(read_chunk_size=READ_SIZE)
        self.app = app
        self.xheaders = xheaders
        self.max_body_size = max_body_size
        self.timeouts = timeouts
        self.connections: set[Connection] = set()
        self._sweeper: asyncio.TimerHandle | None = None

    def add_sockets(self, sockets: Iterable[socket.socket]) -> None:
        """Serve on these listening sockets."""
        super().add_sockets(sockets)
        if self._sweeper is None:
            self._sweeper = asyncio.get_event_loop().call_later(
                self.timeouts.sweep_interval, self._sweep
            )

    async def handle_stream(self, stream: iostream.IOStream, address: Any) -> None:
        await Connection(self, stream, address).serve()

    def stop(self) -> None:
        """Stop accepting connections; those open go on being served."""
        super().stop()
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None

    async def close_all_connections(self) -> None:
        """Close every connection (whatever it is doing) and wait until they are closed."""
        closing = [connection.closed for connection in self.connections]
        for connection in list(self.connections):
            connection.abort()  # a client that does not read must not hold shutdown up
        await asyncio.gather(*closing)

    def _sweep(self) -> None:
        """Close the connections whose client has overrun a timeout."""
        now = time.monotonic()
        for connection in list(self.connections):
            overrun = connection.overrun(now, self.timeouts)
            if overrun:
                log.debug("closing a connection from %s: %s", connection.address, overrun)
                connection.abort()
        self._sweeper = asyncio.get_event_loop().call_later(
            self.timeouts.sweep_interval, self._sweep
        )


class Context:
    """Who sent a request: what Tornado's HTTPServerRequest reads from its connection."""

    __slots__ = ("protocol", "remote_ip")

    def __init__(self, address: Any, headers: httputil.HTTPHeaders, xheaders: bool) -> None:
        self.remote_ip = address[0] if isinstance(address, tuple) else "0.0.0.0"
        self.protocol = "http"
        if xheaders:
            self._apply_xheaders(headers)

    def _apply_xheaders(self, headers: httputil.HTTPHeaders) -> None:
        """As Tornado's ``xheaders``: the last X-Forwarded-For address (X-Real-Ip first), and
        X-Scheme or X-Forwarded-Proto when it says http or https."""
        forwarded = headers.get("X-Forwarded-For", self.remote_ip).split(",")[-1].strip()
        ip = headers.get("X-Real-Ip", forwarded)
        if netutil.is_valid_ip(ip):
            self.remote_ip = ip
        scheme = headers.get("X-Scheme", headers.get("X-Forwarded-Proto", self.protocol))
        scheme = scheme.split(",")[-1].strip() if scheme else scheme
        if scheme in ("http", "https"):
            self.protocol = scheme


class Connection:
    """One client's TCP connection: its requests parsed and answered one after another."""

    def __init__(self, server: Server, stream: iostream.IOStream, address: Any) -> None:
        self.server = server
        self.stream = stream
        self.address = address
        self.parser = httptools.HttpRequestParser(self)
        self.exchanges: list[Exchange] = []  # [0] is being answered; the rest wait
        self.reading: Exchange | None = None  # the one whose request is being parsed
        self.head_bytes = 0
        self.idle_since = time.monotonic()
        self.detached = self.gone = False
        self.refusing = False  # a 400 is due once the requests before it are answered
        self.refusal = BAD_REQUEST  # what refuse() answers
        self.closed: asyncio.Future = asyncio.get_event_loop().create_future()
        self.paused_at: float | None = None  # since when settee holds reading back
        self.paused_for = 0.0  # seconds it held reading back before that
        self.unread_since: float | None = None  # since when written bytes wait for the client
        self._resume: asyncio.Future | None = None
        stream.set_close_callback(self.connection_lost)
        stream.set_nodelay(True)  # answers go out as they are written

    async def serve(self) -> None:
        """Read and parse until the connection closes or is handed over (an upgrade)."""
        self.server.connections.add(self)
        stream = self.stream
        try:
            while not (self.detached or self.gone):
                if self.paused_at is not None:
                    self._resume = asyncio.get_running_loop().create_future()
                    await self._resume
                    continue
                self.data_received(await stream.read_bytes(READ_SIZE, partial=True))
        except iostream.StreamClosedError:
            pass
        finally:
            if not self.detached:
                self.abort()
                self.connection_lost()

    def data_received(self, data: bytes) -> None:
        if self.refusing or self.gone:
            return  # a read that was under way when reading paused: the rest is not read
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            pass  # reading has paused (update_reading): the rest is the upgraded protocol's
        except httptools.HttpParserError as exc:
            cause = exc.__context__
            if cause is not None and not isinstance(
                cause, httptools.HttpParserError | httputil.HTTPInputError
            ):
                log.error("a request could not be handed to the app", exc_info=cause)
            self.refuse()

    def connection_lost(self) -> None:
        if self.gone:
            return
        self.gone = True
        self.server.connections.discard(self)
        self._wake()
        if not self.detached:
            for exchange in self.exchanges:
                exchange.lost()
        if not self.closed.done():
            self.closed.set_result(None)
        # A WebSocket's request refers to this connection for as long as the socket is open:
        # what served HTTP on it is of no more use.
        self.exchanges, self.reading = [], None
        self.parser = None  # type: ignore[assignment]

    def overrun(self, now: float, timeouts: Timeouts) -> str | None:
        """Which timeout the client has overrun, if any."""
        if self.unread_since is not None and now - self.unread_since > timeouts.write:
            return "it does not read its answer"
        exchange = self.reading
        if exchange is None:
            if not self.exchanges and now - self.idle_since > timeouts.idle:
                return "idle"
            return None
        if not exchange.head_whole:
            if self.reading_for(exchange.since, now) > timeouts.header:
                return "its request head is too slow"
        elif not exchange.request_whole and self.reading_for(exchange.since, now) > timeouts.body:
            return "its request body is too slow"
        return None

    def reading_for(self, since: tuple[float, float], now: float) -> float:
        """Seconds spent reading since ``since`` (a ``clock()``), less those paused."""
        began, paused = since
        return now - began - (self.clock(now)[1] - paused)

    def clock(self, now: float | None = None) -> tuple[float, float]:
        """Now, and the seconds reading has been held back so far."""
        now = time.monotonic() if now is None else now
        held = self.paused_for + (now - self.paused_at if self.paused_at is not None else 0.0)
        return now, held

    # -- httptools callbacks (an exception raised here stops the parser: a 400)

    def on_message_begin(self) -> None:
        if len(self.exchanges) > PIPELINE_LIMIT:
            raise httptools.HttpParserError("too many requests sent ahead")
        self.reading = Exchange(self)
        self.exchanges.append(self.reading)
        self.head_bytes = 0

    def on_url(self, url: bytes) -> None:
        self.reading.url += url  # type: ignore[union-attr]
        self._count_head(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_head(len(name) + len(value))
        self.reading.headers.add(name.decode("latin1"), value.decode("latin1"))  # type: ignore[union-attr]

    def on_headers_complete(self) -> None:
        parser, exchange = self.parser, self.reading
        assert exchange is not None
        version = parser.get_http_version()
        if version not in ("1.0", "1.1"):
            raise httptools.HttpParserError(f"HTTP/{version} is not served here")
        exchange.method = parser.get_method().decode("latin1")
        exchange.version = "HTTP/" + version
        exchange.upgrade = parser.should_upgrade()
        if exchange.upgrade and (exchange.has_body() or exchange.method != "GET"):
            raise httptools.HttpParserError("only a GET without a body may upgrade")
        exchange.keep_alive = parser.should_keep_alive() and not exchange.upgrade
        exchange.head_whole = True
        exchange.since = self.clock()
        if exchange is self.exchanges[0]:
            exchange.dispatch()
        self.update_reading()

    def on_body(self, body: bytes) -> None:
        exchange = self.reading
        assert exchange is not None
        exchange.body_bytes += len(body)
        if exchange.body_bytes > self.server.max_body_size:
            if exchange.chunked:
                # Stops the parser: none of this body, nor its end, reaches the app.
                limit = self.server.max_body_size
                reason = f"the request body is larger than {limit} bytes"
                self.refusal = refusal("413 Request Entity Too Large", "too_large", reason)
                raise httptools.HttpParserError(reason)
            return  # a declared length over the limit: the handler refuses it (413) unread
        exchange.take(body)

    def on_message_complete(self) -> None:
        exchange, self.reading = self.reading, None
        if exchange is not None:
            exchange.request_whole = True
            exchange.take(END)
        self.update_reading()

    # -- for exchanges

    def send(self, data: bytes) -> asyncio.Future[None]:
        """Write ``data``; what resolves once the client has taken it, or fails with
        StreamClosedError once the connection is closed."""
        stream = self.stream
        if self.gone or self.detached or stream.closed():
            return failed(asyncio.get_event_loop().create_future())
        try:
            written = stream.write(data)
        except iostream.StreamClosedError:
            return failed(asyncio.get_event_loop().create_future())
        if stream.writing():  # not all taken at once: the write timeout runs until it is
            if self.unread_since is None:
                self.unread_since = time.monotonic()
            written.add_done_callback(self._taken)
        return written

    def _taken(self, written: asyncio.Future) -> None:
        """The client has read up to a write: it reads, so the write timeout starts again."""
        if not written.cancelled():
            written.exception()  # seen here; a closed connection is the app's to learn
        self.unread_since = time.monotonic() if self.stream.writing() else None

    def when_written(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once what is written so far has gone out (or failed to)."""
        if not self.stream.writing():
            callback()
            return

        def taken_then_callback(written: asyncio.Future) -> None:
            self._taken(written)
            callback()

        self.send(b"").add_done_callback(taken_then_callback)

    def answered(self, exchange: Exchange) -> None:
        """``exchange``'s response is whole: on to the next request, or close."""
        if self.exchanges and self.exchanges[0] is exchange:
            del self.exchanges[0]
        if self.refusing:
            self.refusing = False
            self.refuse()
            return
        if not (exchange.keep_alive and exchange.request_whole):
            self.close()  # unread body, upgrade or no keep-alive: nothing more can be read
            return
        self.idle_since = time.monotonic()
        if self.exchanges and self.exchanges[0].head_whole:
            # Not from within the app's finish(): the next request is its own turn.
            asyncio.get_running_loop().call_soon(self.exchanges[0].dispatch)
        self.update_reading()

    def update_reading(self) -> None:
        """Read while the app keeps up: not while a body waits on its handler, nor while a
        request waits behind the one being answered (a pipelining client waits too), nor past
        a refused request or an upgrade (what follows it is not HTTP: it stays in the socket
        for the stream the handler detaches)."""
        if self.gone or self.detached:
            return
        exchanges = self.exchanges
        head = exchanges[0] if exchanges else None
        pause = (
            self.refusing
            or len(exchanges) > 1
            or (head is not None and (head.blocked or (head.upgrade and head.request_whole)))
        )
        if pause and self.paused_at is None:
            self.paused_at = time.monotonic()
        elif not pause and self.paused_at is not None:
            self.paused_for += time.monotonic() - self.paused_at
            self.paused_at = None
            self._wake()

    def refuse(self) -> None:
        """A request that cannot be read: 400 (after the answers to the requests before it)
        unless an answer is under way for it, then close."""
        if self.gone or self.stream.closed():
            return
        head = self.exchanges[0] if self.exchanges else None
        if head is not None and head.request_whole and not head.answered:
            # The bad bytes came after a whole request that is being answered: answer it,
            # then refuse. Nothing after it is read or handed to the app.
            for exchange in self.exchanges[1:]:
                exchange.lost()
            del self.exchanges[1:]
            self.reading = None
            self.refusing = True
            self.update_reading()
            return
        self.refusing = True  # nothing more is read
        if not any(exchange.responding for exchange in self.exchanges):
            self.send(self.refusal)
        self.close()

    def detach(self) -> iostream.IOStream:
        """The stream, no longer served as HTTP."""
        self.detached = True
        self.stream.set_close_callback(None)
        self.server.connections.discard(self)
        self._wake()
        if not self.closed.done():
            self.closed.set_result(None)
        return self.stream

    def close(self) -> None:
        """Close once what is written has gone out."""
        self.refusing = True  # nothing more is read
        self.when_written(self.abort)

    def abort(self) -> None:
        """Close now, dropping what is not written yet."""
        if not self.detached:
            self.stream.close()

    def _wake(self) -> None:
        if self._resume is not None and not self._resume.done():
            self._resume.set_result(None)

    def _count_head(self, size: int) -> None:
        self.head_bytes += size
        if self.head_bytes > HEAD_LIMIT:
            raise httptools.HttpParserError("request head too large")


def failed(future: asyncio.Future) -> asyncio.Future:
    """``future`` failed with StreamClosedError, marked as seen (nobody may await it)."""
    if not future.done():
        future.set_exception(iostream.StreamClosedError())
        future.exception()
    return future


class Exchange(httputil.HTTPConnection):
    """One request and its response, for Tornado's request dispatcher and handler."""

    # One lives as long as each WebSocket (its handler's request holds it).
    __slots__ = (
        "_close_callback",
        "answered",
        "blocked",
        "body_bytes",
        "chunking",
        "client_gone",
        "connection",
        "context",
        "delegate",
        "events",
        "head_whole",
        "headers",
        "keep_alive",
        "method",
        "remaining",
        "request_whole",
        "responding",
        "since",
        "upgrade",
        "upgrade_head",
        "url",
        "version",
    )

    def __init__(self, connection: Connection) -> None:
        self.connection: Connection | None = connection
        self.url = b""
        self.headers = httputil.HTTPHeaders()
        self.method = self.version = ""
        self.keep_alive = self.head_whole = self.request_whole = self.upgrade = False
        self.body_bytes = 0
        self.context: Context | None = None
        self.delegate: httputil.HTTPMessageDelegate | None = None
        self.events: list[Any] = []  # body chunks and END, not yet given to the app
        self.blocked = False  # the app has not taken the last chunk (or the head) yet
        self.responding = self.answered = self.client_gone = False
        self.chunking = False
        self.remaining: int | None = None  # body bytes the response still owes
        self.upgrade_head = b""
        self.since = connection.clock()  # its head, then its body, is read since
        self._close_callback: Callable[[], None] | None = None

    @property
    def chunked(self) -> bool:
        return "Content-Length" not in self.headers

    def has_body(self) -> bool:
        headers = self.headers
        return "Transfer-Encoding" in headers or headers.get("Content-Length", "0") != "0"

    # -- the request, given to the app

    def dispatch(self) -> None:
        """Hand the request to the app (its turn on the connection has come)."""
        connection = self.connection
        if connection is None or connection.gone or self.answered:
            return  # the client has gone while this request waited its turn
        if self.upgrade and connection.stream.writing():
            # The stream is handed over whole: the answers before this one go out first.
            connection.when_written(self.dispatch)
            return
        self.context = Context(connection.address, self.headers, connection.server.xheaders)
        self.delegate = connection.server.app.start_request(connection, self)
        start_line = httputil.RequestStartLine(self.method, self.url.decode("latin1"), self.version)
        waiting = self._call(self.delegate.headers_received, start_line, self.headers)
        # A handler that streams its body answers with what to wait for before the body
        # (its prepare()); a request without a body has nothing to hold back.
        if waiting is not None and self.has_body():
            self.blocked = True
            waiting.add_done_callback(self._head_taken)
        else:
            self._head_taken(None)

    def take(self, event: Any) -> None:
        """A body chunk, or END: given to the app in order, when it is ready for them."""
        if self.answered:
            return  # the rest of a body the app answered without reading
        self.events.append(event)
        if self.delegate is not None:
            self._pump()

    def _head_taken(self, future: asyncio.Future | None) -> None:
        self.blocked = False
        if future is not None and self._failed(future):
            return
        expect = self.headers.get("Expect", "").lower() == "100-continue"
        if expect and not self.responding and not self.request_whole and self.connection:
            self.connection.send(CONTINUE)
        self._pump()

    def _chunk_taken(self, future: asyncio.Future) -> None:
        self.blocked = False
        if not self._failed(future):
            self._pump()

    def _pump(self) -> None:
        if self.answered or self.delegate is None:
            self.events.clear()  # the rest of a body nobody is reading
        while self.events and not self.blocked:
            event = self.events.pop(0)
            if event is END:
                self._call(self.delegate.finish)  # type: ignore[union-attr]
            elif (waiting := self._call(self.delegate.data_received, event)) is not None:  # type: ignore[union-attr]
                self.blocked = True
                waiting.add_done_callback(self._chunk_taken)
        if self.client_gone and not self.events:
            self.client_gone = False
            self.lost()
        if self.connection is not None:
            self.connection.update_reading()

    def _call(self, method: Callable[..., Any], *args: Any) -> asyncio.Future | None:
        """Call the app: what it gave to wait for, if it is not done yet. An app that fails
        ends the exchange (a request Tornado finds malformed: 400)."""
        try:
            result = method(*args)
        except httputil.HTTPInputError as exc:
            log.info(
                "a malformed request from %s: %s", self.context and self.context.remote_ip, exc
            )
            self._give_up(refuse=True)
            return None
        except Exception:
            log.error("the app failed on a request", exc_info=True)
            self._give_up()
            return None
        if result is None:
            return None
        future = asyncio.ensure_future(result)
        if future.done():
            self._failed(future)
            return None
        return future

    def _failed(self, future: asyncio.Future) -> bool:
        """Whether the app's ``future`` failed (then the exchange is given up)."""
        if not future.done() or (not future.cancelled() and future.exception() is None):
            return False
        if not future.cancelled():
            log.error("the app failed on a request", exc_info=future.exception())
        self._give_up()
        return True

    def _give_up(self, *, refuse: bool = False) -> None:
        """Nothing more of this request reaches the app; the connection ends (with a 400
        if it was refused and nothing was answered yet)."""
        self.delegate = None
        self.events.clear()
        connection = self.connection
        if connection is not None:
            if refuse and not self.responding:
                connection.send(BAD_REQUEST)
            connection.close() if refuse else connection.abort()

    def lost(self) -> None:
        """The client has gone: tell the app once, as Tornado's server does (the handler's
        close callback, or the dispatcher if the request was not whole). A client that sent
        its whole request and left is a request carried out without its client: the app is
        given the rest of the body first, and told after."""
        if self.request_whole and self.events and self.delegate is not None:
            self.client_gone = True
            return
        delegate, callback = self.delegate, self._close_callback
        self.delegate = self._close_callback = None
        self.events.clear()
        if delegate is None:
            return
        if not self.request_whole:
            delegate.on_connection_close()
        elif callback is not None:
            callback()

    # -- the response, from the app (httputil.HTTPConnection)

    def set_close_callback(self, callback: Callable[[], None] | None) -> None:
        self._close_callback = callback

    def write_headers(
        self,
        start_line: httputil.ResponseStartLine,  # type: ignore[override]
        headers: httputil.HTTPHeaders,
        chunk: bytes | None = None,
    ) -> asyncio.Future[None]:
        code, head_request = start_line.code, self.method == "HEAD"
        self.responding = True
        self.chunking = (
            self.version == "HTTP/1.1"
            and not head_request
            and code not in (204, 304)
            and not 100 <= code < 200
            and "Content-Length" not in headers
        )
        if self.version == "HTTP/1.1" and not self.keep_alive and code != 101:
            headers["Connection"] = "close"
        elif self.version == "HTTP/1.0" and self.keep_alive:
            headers["Connection"] = "Keep-Alive"
        if self.chunking:
            headers["Transfer-Encoding"] = "chunked"
        if head_request or code == 304:
            self.remaining = 0
        elif "Content-Length" in headers:
            self.remaining = int(headers["Content-Length"])
        lines = [f"HTTP/1.1 {code} {start_line.reason}"]
        lines += [f"{name}: {value}" for name, value in headers.get_all()]
        if any("\r" in line or "\n" in line for line in lines):
            raise ValueError(f"Illegal characters (CR or LF) in header: {lines!r}")
        data = "\r\n".join(lines).encode("latin1") + b"\r\n\r\n"
        if chunk:
            data += self._frame(chunk)
        if code == 101:
            self.upgrade_head = data  # sent through the detached stream
            return self._send(b"")
        return self._send(data)

    def write(self, chunk: bytes) -> asyncio.Future[None]:
        return self._send(self._frame(chunk) if chunk else b"")

    def finish(self) -> None:
        connection = self.connection
        # Gone as a write sees it: a stream closed under a failed flush, before the paused
        # read loop has noticed.
        gone = connection is None or connection.gone or connection.stream.closed()
        if self.remaining and not gone:
            self.close()
            raise httputil.HTTPOutputError(
                f"Tried to write {self.remaining} bytes less than Content-Length"
            )
        if self.chunking:
            self._send(b"0\r\n\r\n")
        self.answered = True
        # The handler's request holds this exchange: no way back to the handler from here.
        self.delegate = self._close_callback = None
        self.events.clear()
        if connection is not None and not gone and not self.upgrade_head:
            connection.answered(self)

    def detach(self) -> iostream.IOStream:
        """The connection's stream, for the protocol the request upgraded to (Tornado's
        ``HTTP1Connection.detach``): no longer served as HTTP."""
        connection, self.connection = self.connection, None
        if connection is None:  # answered, or handed over already: nothing left to hand
            stream = iostream.IOStream(socket.socket())
            stream.close()
            return stream
        stream = connection.detach()
        if self.upgrade_head and not stream.closed():
            stream.write(self.upgrade_head)
        # The handler's request holds this exchange for as long as the socket is open.
        self.upgrade_head, self.url, self.delegate, self.context = b"", b"", None, None
        self.events.clear()
        return stream

    def close(self) -> None:
        """End the connection now: pending writes fail with StreamClosedError."""
        if self.connection is not None:
            self.connection.abort()

    def _send(self, data: bytes) -> asyncio.Future[None]:
        if self.connection is None:
            return failed(asyncio.get_event_loop().create_future())
        return self.connection.send(data)

    def _frame(self, chunk: bytes) -> bytes:
        if self.remaining is not None:
            self.remaining -= len(chunk)
            if self.remaining < 0:
                self.close()
                raise httputil.HTTPOutputError("Tried to write more data than Content-Length")
        if self.chunking:
            return b"%x\r\n%b\r\n" % (len(chunk), chunk)
        return chunk
