"""Drivers that run the client's operations over a transport, one per calling style.

An operation is a generator that yields ``protocol.Request`` objects, receives
``protocol.Response`` objects and returns its result. ``AsyncRunner`` runs it behind an asyncio
future (awaitable, yieldable under ``@relax``); ``BlockingRunner`` runs it to completion in the
calling thread. Both deliver to corduroy-style callbacks ``fn(data, status)``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Generator, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from .changes import ChangesCallback, ChangesFeed, FeedState, ThreadedChangesFeed
from .documents import Headers, Row
from .errors import CouchError
from .protocol import Request, Response, RowParser, error_from
from .transport import (
    AsyncBody,
    AsyncTransport,
    BlockingBody,
    BlockingTransport,
    Endpoint,
    async_transport,
    blocking_transport,
)

log = logging.getLogger("settee.couch")

Operation = Generator[Request, Response, Any]
Callback = Callable[[Any, "Status"], None]


@dataclass(slots=True)
class Status:
    """How a request ended, passed as the last argument to callbacks.

    ``status.error is NotFound`` reads naturally in a callback; ``exception`` is the instance.
    """

    ok: bool
    code: int
    headers: Mapping[str, str] = field(default_factory=Headers)
    exception: BaseException | None = None

    def __post_init__(self) -> None:
        if type(self.headers) is not Headers:
            self.headers = Headers(self.headers)  # read in any case, as Tornado's were

    @property
    def error(self) -> type[BaseException] | None:
        return type(self.exception) if self.exception is not None else None

    @classmethod
    def failed(cls, exc: BaseException) -> Status:
        return cls(False, getattr(exc, "status", 0), getattr(exc, "headers", {}), exc)


class _Exchange:
    """Steps an operation, checking each response; remembers the last one for Status."""

    def __init__(self, operation: Operation, describe: Callable[[Request], str]) -> None:
        self.operation = operation
        self.describe = describe
        self.last: Response | None = None

    def start(self) -> Request:
        return next(self.operation)

    def step(self, request: Request, response: Response) -> Request:
        self.last = response
        if response.status >= 400:
            return self.operation.throw(error_from(response, self.describe(request)))
        return self.operation.send(response)

    def status(self) -> Status:
        last = self.last
        return Status(True, last.status, last.headers) if last else Status(True, 0)


def _deliver(callback: Callback, value: Any, status: Status) -> None:
    try:
        callback(value, status)
    except Exception:
        log.exception("callback %r raised", callback)


def _retrieved(done: asyncio.Future) -> None:
    """Marks a failure as heard, so that asyncio does not report it as never retrieved."""
    if not done.cancelled():
        done.exception()


class _Call:
    """Drives one operation by callbacks: each response is handed to the operation from the
    callback that saw it whole, and its next request goes out there and then. No task, and no
    turn of the loop between a response and the next request or the result."""

    __slots__ = ("_abandon", "exchange", "result", "transport")

    def __init__(
        self, exchange: _Exchange, transport: AsyncTransport, loop: asyncio.AbstractEventLoop
    ) -> None:
        self.exchange = exchange
        self.transport = transport
        self.result: asyncio.Future = loop.create_future()
        self.result.add_done_callback(self._settled)
        self._abandon: Callable[[], None] | None = None

    def begin(self) -> None:
        self._advance(self.exchange.start)

    def _advance(self, step: Callable[..., Request], *args: Any) -> None:
        try:
            request = step(*args)
        except StopIteration as finished:
            self.result.set_result(finished.value)
        except Exception as exc:  # the operation's own error, or one it let through
            self.result.set_exception(exc)
        else:
            try:
                # ``then`` never runs before send_then returns, so this abandon is current.
                self._abandon = self.transport.send_then(
                    request, lambda outcome: self._answered(request, outcome)
                )
            except Exception as exc:  # refused before sending: a target that does not encode
                self.result.set_exception(exc)

    def _answered(self, request: Request, outcome: Response | BaseException) -> None:
        self._abandon = None
        if self.result.done():
            return  # cancelled: nobody waits for it
        if isinstance(outcome, asyncio.CancelledError):
            self.result.cancel()
        elif isinstance(outcome, BaseException):
            self.result.set_exception(outcome)  # unreachable, say: the operation ends here
        else:
            self._advance(self.exchange.step, request, outcome)

    def _settled(self, result: asyncio.Future) -> None:
        if result.cancelled() and self._abandon is not None:
            self._abandon()


class AsyncRunner:
    """Runs operations behind asyncio futures over pooled keep-alive HTTP/1.1 connections."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.transport = async_transport(endpoint)

    def run(self, operation: Operation, callback: Callback | None = None) -> asyncio.Future:
        """Start ``operation``: its first request is sent before this returns (when a
        connection is free). The future resolves to its result; cancelling it abandons the
        request under way. Outside a running loop (``loop.run_until_complete(call)``) the
        operation starts once the loop runs it."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            later = asyncio.ensure_future(self._when_running(operation, callback))
            if callback is not None:  # the callback hears of a failure; nobody awaits this
                later.add_done_callback(_retrieved)
            return later
        call = _Call(_Exchange(operation, self.transport.describe), self.transport, loop)
        if callback is not None:
            call.result.add_done_callback(
                lambda done: self._callback(done, call.exchange, callback)
            )
        call.begin()
        return call.result

    async def _when_running(self, operation: Operation, callback: Callback | None) -> Any:
        return await self.run(operation, callback)

    @staticmethod
    def _callback(done: asyncio.Future, exchange: _Exchange, callback: Callback) -> None:
        if done.cancelled():
            return
        if (exc := done.exception()) is not None:
            _deliver(callback, None, Status.failed(exc))
        else:
            _deliver(callback, done.result(), exchange.status())

    def open(self, request: Request) -> asyncio.Future[AsyncBody]:
        """Send ``request``; resolve to its response with the body still to be read.

        An error status raises its exception here, as for any other call.
        """
        return asyncio.ensure_future(self._open(request))

    async def _open(self, request: Request) -> AsyncBody:
        body = await self.transport.open(request, read_timeout=self.transport.endpoint.timeout)
        if body.status >= 400:
            try:
                data = await body.read_all()
            finally:
                body.close()
            describe = self.transport.describe(request)
            raise error_from(Response(body.status, body.headers, data), describe)
        return body

    def relay(self, request: Request) -> asyncio.Future[AsyncBody]:
        """Send ``request`` as it is; resolve to its response whatever the status, with the
        body still to be read: for relaying an exchange the client has no operation for."""
        timeout = self.transport.endpoint.timeout
        return asyncio.ensure_future(
            self.transport.open(request, read_timeout=timeout, feed=request.is_feed)
        )

    async def rows(self, request: Request) -> AsyncIterator[Row]:
        """Stream the rows of a view response as they arrive."""
        body = await self._open(request)
        try:
            parser = RowParser()
            async for chunk in body:
                for row in parser.feed(chunk):
                    yield Row(row)
            parser.close()
        finally:
            body.close()

    def follow(self, state: FeedState, callback: ChangesCallback) -> ChangesFeed:
        """Start following a continuous changes feed."""
        return ChangesFeed(self.transport, state, callback)

    async def close(self) -> None:
        await self.transport.close()


class BlockingRunner:
    """Runs operations to completion in the calling thread over a pooled urllib3 transport."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.transport = blocking_transport(endpoint)

    def run(self, operation: Operation, callback: Callback | None = None) -> Any:
        exchange = _Exchange(operation, self.transport.describe)
        try:
            value = self._drive(exchange)
        except CouchError as exc:
            if callback is None:
                raise
            _deliver(callback, None, Status.failed(exc))
            return None
        if callback is not None:
            _deliver(callback, value, exchange.status())
        return value

    def _drive(self, exchange: _Exchange) -> Any:
        try:
            request = exchange.start()
            while True:
                request = exchange.step(request, self.transport.send(request))
        except StopIteration as finished:
            return finished.value

    def open(self, request: Request) -> BlockingBody:
        """Send ``request``; return its response with the body still to be read."""
        body = self.transport.open(request, read_timeout=self.transport.endpoint.timeout)
        if body.status >= 400:
            try:
                data = body.read_all()
            finally:
                body.close()
            describe = self.transport.describe(request)
            raise error_from(Response(body.status, body.headers, data), describe)
        return body

    def relay(self, request: Request) -> BlockingBody:
        """Send ``request`` as it is; return its response whatever the status, with the body
        still to be read."""
        timeout = self.transport.endpoint.timeout
        return self.transport.open(request, read_timeout=timeout, feed=request.is_feed)

    def rows(self, request: Request) -> Iterator[Row]:
        """Stream the rows of a view response as they arrive."""
        body = self.open(request)
        try:
            parser = RowParser()
            for chunk in body:
                yield from map(Row, parser.feed(chunk))
            parser.close()
        finally:
            body.close()

    def follow(self, state: FeedState, callback: ChangesCallback) -> ThreadedChangesFeed:
        """Start following a continuous changes feed in a thread of its own."""
        return ThreadedChangesFeed(self.transport, state, callback)

    def close(self) -> None:
        self.transport.close()


def _with_headers(request: Request, headers: Mapping[str, str]) -> Request:
    return Request(
        request.method, request.path, request.query, {**request.headers, **headers}, request.body
    )


def _sending(operation: Operation, headers: Mapping[str, str]) -> Operation:
    """``operation`` with ``headers`` added to each request it yields."""
    try:
        request = next(operation)
        while True:
            try:
                response = yield _with_headers(request, headers)
            except BaseException as exc:
                request = operation.throw(exc)
            else:
                request = operation.send(response)
    except StopIteration as finished:
        return finished.value


class CredentialedRunner:
    """Another runner's connections, with a client's credential headers on every request.

    The service answers each client with the client's own rights: it runs the client's
    operations through one of these over a pool that has no credentials of its own.
    """

    __slots__ = ("headers", "runner")

    def __init__(self, runner: AsyncRunner | BlockingRunner, headers: Mapping[str, str]) -> None:
        self.runner = runner
        self.headers = dict(headers)

    @property
    def transport(self) -> AsyncTransport | BlockingTransport:
        return self.runner.transport

    def run(self, operation: Operation, callback: Callback | None = None) -> Any:
        return self.runner.run(_sending(operation, self.headers), callback)

    def open(self, request: Request) -> Any:
        return self.runner.open(_with_headers(request, self.headers))

    def relay(self, request: Request) -> Any:
        return self.runner.relay(_with_headers(request, self.headers))

    def rows(self, request: Request) -> Any:
        return self.runner.rows(_with_headers(request, self.headers))

    def follow(self, state: FeedState, callback: ChangesCallback) -> Any:
        state.headers.update(self.headers)
        return self.runner.follow(state, callback)

    def close(self) -> Any:
        """The connections belong to the runner this one borrows: they stay open."""
        return asyncio.sleep(0) if isinstance(self.runner, AsyncRunner) else None
