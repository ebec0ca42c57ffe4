"""Network I/O: with ``http1``, the only code that speaks HTTP.

``AsyncTransport`` (``http1``'s connections) and ``BlockingTransport`` (urllib3) send
``protocol.Request`` objects over pooled keep-alive connections and hand back
``protocol.Response`` objects, or a streamed response whose body arrives in chunks. Lower-level
exceptions stop here: a server that cannot be reached becomes ``ServerUnavailable`` naming the
URL without its credentials.
"""

from __future__ import annotations

import base64
import contextlib
import os
import ssl
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit, urlunsplit

import urllib3

from . import http1
from .errors import BadRequest, CouchError, ServerError, ServerUnavailable
from .protocol import Request, Response

if TYPE_CHECKING:
    from .cluster import Cluster

DEFAULT_HEADERS = {
    "Accept": "application/json",
    # pouchdb-server holds back a gzip-compressed continuous feed; CouchDB itself does not
    # compress JSON. Identity everywhere keeps feeds flowing and costs nothing on a LAN.
    "Accept-Encoding": "identity",
    "User-Agent": "settee",
}


EMBEDDED = "embedded:"


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where a server is and how to log in: the URL without credentials, and the credentials."""

    url: str
    auth: tuple[str, str] | None = None
    timeout: float = 30.0
    connect_timeout: float = 10.0
    max_connections: int = 100
    idle_timeout: float | None = 4.0
    # The embedded store only: a request without credentials acts as its server admin (the
    # process may open its files anyway); a gateway's clients' Couch sets False.
    local_admin: bool = True
    # Several nodes of one cluster (``service.couch.cluster``); ``url`` is the first's.
    cluster: Cluster | None = field(default=None, compare=False)

    @classmethod
    def parse(cls, url: str, auth: tuple[str, str] | None = None, **settings: Any) -> Endpoint:
        """Split ``user:password@`` out of ``url``; an explicit ``auth`` wins over it.

        ``embedded:PATH`` names the embedded store in directory ``PATH`` (made absolute).
        Several comma-separated http(s) URLs name the nodes of one cluster: their
        credentials, if any, must be the same. ``cluster=`` shares another endpoint's.
        """
        if "," in url and not url.startswith(EMBEDDED):
            return cls._parse_cluster(url, auth, **settings)
        if settings.get("cluster") is not None:
            raise ValueError("cluster= goes with several comma-separated URLs")
        if url.startswith(EMBEDDED):
            if not url[len(EMBEDDED) :]:
                raise ValueError("embedded: needs a data directory (embedded:PATH)")
            return cls(EMBEDDED + os.path.abspath(url[len(EMBEDDED) :]), auth, **settings)
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {redact(url)}")
        if parts.username is not None and auth is None:
            auth = (unquote(parts.username), unquote(parts.password or ""))
        netloc = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
        if parts.port:
            netloc += f":{parts.port}"
        base = urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))
        return cls(base, auth, **settings)

    @classmethod
    def _parse_cluster(
        cls,
        urls: str,
        auth: tuple[str, str] | None,
        cluster: Cluster | None = None,
        **settings: Any,
    ) -> Endpoint:
        from .cluster import Cluster

        nodes = [cls.parse(url.strip(), **settings) for url in urls.split(",") if url.strip()]
        if any(node.embedded for node in nodes):
            raise ValueError("a cluster's nodes are http(s) URLs, not embedded:PATH")
        given = {node.auth for node in nodes if node.auth is not None}
        if len(given) > 1:
            raise ValueError("a cluster's URLs carry different credentials")
        urls_of_nodes = [node.url for node in nodes]
        if cluster is None:
            cluster = Cluster(urls_of_nodes)
        elif list(cluster.urls) != urls_of_nodes:
            raise ValueError("cluster= names other nodes than the URLs")
        auth = auth if auth is not None else next(iter(given), None)
        return cls(urls_of_nodes[0], auth, cluster=cluster, **settings)

    @property
    def urls(self) -> tuple[str, ...]:
        """Every node's URL: the cluster's, or this one."""
        return self.cluster.urls if self.cluster is not None else (self.url,)

    @property
    def embedded(self) -> bool:
        """Whether this is the embedded store, reached in-process rather than over HTTP."""
        return self.url.startswith(EMBEDDED)

    @property
    def path(self) -> str:
        """The embedded store's data directory."""
        return self.url[len(EMBEDDED) :]

    def headers(self) -> dict[str, str]:
        headers = dict(DEFAULT_HEADERS)
        if self.auth:
            token = base64.b64encode(":".join(self.auth).encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        return headers

    def __repr__(self) -> str:
        return f"Endpoint({self.url!r})"


def redact(url: str) -> str:
    """``url`` with any password replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{netloc}"))


class AsyncBody:
    """An open response whose body is read as it arrives: ``await read()`` gives the next
    chunk (``b""`` at the end), ``async for`` iterates the chunks; ``close()`` when done."""

    __slots__ = ("_reply", "_transport", "headers", "status")

    def __init__(self, reply: http1.Reply, transport: AsyncTransport) -> None:
        self.status = reply.status
        self.headers = reply.headers
        self._reply = reply
        self._transport = transport

    async def read(self) -> bytes:
        try:
            return await self._reply.read()
        except (http1.BadResponse, OSError) as exc:
            raise self._transport._unavailable(exc) from exc

    async def read_all(self) -> bytes:
        return b"".join([chunk async for chunk in self])

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while chunk := await self.read():
            yield chunk

    def close(self) -> None:
        """Let go of the connection: back to the pool if the body was read to its end."""
        self._reply.close()


class BlockingBody:
    """An open response whose body is read as it arrives, for blocking code."""

    def __init__(self, response: urllib3.BaseHTTPResponse, transport: BlockingTransport) -> None:
        self.status = response.status
        self.headers = _headers(response.headers)
        self._response = response
        self._transport = transport
        self._chunks = self._stream()

    def _stream(self) -> Iterator[bytes]:
        try:
            yield from self._response.stream(65536, decode_content=False)
        except urllib3.exceptions.HTTPError as exc:
            raise self._transport._unavailable(exc) from exc

    def read(self) -> bytes:
        return next(self._chunks, b"")

    def read_all(self) -> bytes:
        return b"".join(self._chunks)

    def __iter__(self) -> Iterator[bytes]:
        return self._chunks

    def abort(self) -> None:
        """Make a read blocked in another thread return at once."""
        self._response.shutdown()

    def close(self) -> None:
        # A body may be left half read: its connection is closed, never reused.
        self._response.close()
        self._response.release_conn()


def _headers(raw: Any) -> dict[str, str]:
    return {name.lower(): value for name, value in raw.items()}


class AsyncTransport:
    """Pooled keep-alive HTTP/1.1 for asyncio (and Tornado, which runs on it)."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        parts = urlsplit(endpoint.url)
        https = parts.scheme == "https"
        self._tls = ssl.create_default_context() if https else None
        self._address = (parts.hostname or "", parts.port or (443 if https else 80))
        self._prefix = parts.path
        self._pool: http1.Pool | None = None
        self._feeds: http1.Pool | None = None

    def _open_pool(self, *, feeds: bool) -> http1.Pool:
        host, port = self._address
        return http1.Pool(
            host,
            port,
            tls=self._tls,
            limit=0 if feeds else self.endpoint.max_connections,
            connect_timeout=self.endpoint.connect_timeout,
            headers=self.endpoint.headers(),
            idle_timeout=self.endpoint.idle_timeout,
        )

    def _pool_for(self, *, feed: bool) -> http1.Pool:
        """The feeds' pool, or the bounded one every other request shares (created on first
        use: a pool belongs to the loop that runs it)."""
        if feed:
            if self._feeds is None:
                self._feeds = self._open_pool(feeds=True)
            return self._feeds
        if self._pool is None:
            self._pool = self._open_pool(feeds=False)
        return self._pool

    def describe(self, request: Request) -> str:
        return f"{request.method} {self.endpoint.url}{request.path}"

    def send_then(
        self, request: Request, then: Callable[[Response | BaseException], None]
    ) -> Callable[[], None]:
        """Send ``request``; ``then`` receives its response, or the client's exception for a
        failure, from the callback that saw the response whole. Returns what abandons it; a
        request that cannot be written raises its client exception here."""
        pool = self._pool_for(feed=False)

        def answered(outcome: http1.Whole | BaseException) -> None:
            if isinstance(outcome, BaseException):
                then(self._failure(outcome))
            else:
                then(Response(*outcome))

        try:
            fetching = pool.fetch_then(
                request.method,
                self._prefix + request.target,
                request.headers,
                request.body,
                timeout=self.endpoint.timeout,
                then=answered,
            )
        except ValueError as exc:  # an option that does not encode, a header HTTP refuses
            raise self._failure(exc) from exc
        return fetching.abandon

    async def open(
        self, request: Request, *, read_timeout: float | None = None, feed: bool = False
    ) -> AsyncBody:
        """Send ``request`` and return its response with the body still to be read.

        ``read_timeout`` bounds the wait for a connection, then for the head, then for each
        chunk. A response read as it comes holds its connection until closed, so it counts
        against ``max_connections`` like any other: views, ``_all_docs`` and relays are
        bounded with the rest. A ``feed`` (a continuous ``_changes``, say) holds its
        connection for as long as it runs instead, and has a pool of its own, with no limit:
        the feeds that are open must never keep a request from being answered.
        """
        pool = self._pool_for(feed=feed)
        try:
            reply = await pool.open(
                request.method,
                self._prefix + request.target,
                request.headers,
                request.body,
                read_timeout=read_timeout,
            )
        except (http1.BadResponse, OSError, ValueError) as exc:
            raise self._failure(exc) from exc
        return AsyncBody(reply, self)

    @contextlib.asynccontextmanager
    async def stream(
        self, request: Request, *, read_timeout: float | None = None, feed: bool = False
    ) -> AsyncIterator[AsyncBody]:
        """``open()`` as a context manager that closes the response on the way out."""
        body = await self.open(request, read_timeout=read_timeout, feed=feed)
        try:
            yield body
        finally:
            body.close()

    def _failure(self, exc: BaseException) -> BaseException:
        """What the client raises for a lower-level exception: ``exc`` itself if it is none of
        the network's or the request's (cancellation, say)."""
        if isinstance(exc, http1.BadResponse | OSError):
            error: BaseException = self._unavailable(exc)
        elif isinstance(exc, ValueError):
            error = BadRequest("bad_request", str(exc))
        else:
            return exc
        error.__cause__ = exc
        return error

    def _unavailable(self, exc: BaseException) -> CouchError:
        if isinstance(exc, http1.BadResponse):
            # The server answered, but not in HTTP that parses: its fault, not the network's.
            return ServerError("bad_response", str(exc), status=502)
        return ServerUnavailable(self.endpoint.url, str(exc) or type(exc).__name__)

    async def close(self) -> None:
        for pool in (self._pool, self._feeds):
            if pool is not None:
                pool.close()
        self._pool = self._feeds = None


class _Expiring:
    """A urllib3 connection that counts as dropped once idle for ``idle_timeout`` seconds, so
    that urllib3's pool closes it and connects afresh instead of reusing it (as ``http1``'s
    pool does, and for the same reason). Idle time runs from its last response's head: for a
    body read whole that is when it went back to the pool; a streamed one returns later and
    is only retired sooner."""

    idle_timeout: float | None = None
    _answered_at: float | None = None

    def getresponse(self, *args: Any, **kwargs: Any) -> Any:
        response = super().getresponse(*args, **kwargs)  # type: ignore[misc]
        self._answered_at = time.monotonic()
        return response

    @property
    def is_connected(self) -> bool:
        answered, limit = self._answered_at, self.idle_timeout
        if answered is not None and limit is not None and time.monotonic() - answered >= limit:
            return False
        return super().is_connected  # type: ignore[misc]


def _pool_classes(idle_timeout: float | None) -> dict[str, type]:
    """urllib3 connection pools whose connections expire after ``idle_timeout`` idle."""
    classes = {}
    for scheme, pool_class in (
        ("http", urllib3.HTTPConnectionPool),
        ("https", urllib3.HTTPSConnectionPool),
    ):
        connection = type(
            "Expiring" + pool_class.ConnectionCls.__name__,
            (_Expiring, pool_class.ConnectionCls),
            {"idle_timeout": idle_timeout},
        )
        classes[scheme] = type(
            "Expiring" + pool_class.__name__, (pool_class,), {"ConnectionCls": connection}
        )
    return classes


class BlockingTransport:
    """Pooled keep-alive HTTP for code without an event loop; safe to share between threads."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self._headers = endpoint.headers()
        self._pool = urllib3.PoolManager(
            maxsize=endpoint.max_connections,
            retries=False,
            timeout=urllib3.Timeout(connect=endpoint.connect_timeout, read=endpoint.timeout),
        )
        # PoolManager keeps this per instance so that it can be overridden.
        self._pool.pool_classes_by_scheme = _pool_classes(endpoint.idle_timeout)

    def describe(self, request: Request) -> str:
        return f"{request.method} {self.endpoint.url}{request.path}"

    def _call(self, request: Request, **kwargs: Any) -> urllib3.BaseHTTPResponse:
        try:
            return self._pool.request(
                request.method,
                self.endpoint.url + request.target,
                body=request.body,
                headers={**self._headers, **request.headers},
                redirect=False,
                **kwargs,
            )
        except urllib3.exceptions.HTTPError as exc:
            raise self._unavailable(exc) from exc

    def send(self, request: Request) -> Response:
        response = self._call(request)
        return Response(response.status, _headers(response.headers), response.data)

    def open(
        self, request: Request, *, read_timeout: float | None = None, feed: bool = False
    ) -> BlockingBody:
        """Send ``request`` and return its response with the body still to be read. A
        ``feed`` needs no pool of its own here: urllib3 connects afresh past ``maxsize``
        rather than wait, and keeps no more than ``maxsize`` idle."""
        timeout = urllib3.Timeout(connect=self.endpoint.connect_timeout, read=read_timeout)
        return BlockingBody(self._call(request, preload_content=False, timeout=timeout), self)

    @contextlib.contextmanager
    def stream(
        self, request: Request, *, read_timeout: float | None = None, feed: bool = False
    ) -> Iterator[BlockingBody]:
        """``open()`` as a context manager that closes the response on the way out."""
        body = self.open(request, read_timeout=read_timeout, feed=feed)
        try:
            yield body
        finally:
            body.close()

    def _unavailable(self, exc: BaseException) -> ServerUnavailable:
        reason = getattr(exc, "reason", None) or exc
        return ServerUnavailable(self.endpoint.url, str(reason) or type(exc).__name__)

    def close(self) -> None:
        self._pool.clear()


def async_transport(endpoint: Endpoint) -> Any:
    """The async transport for ``endpoint``: HTTP, or in-process for the embedded store."""
    if endpoint.embedded:
        from ..store.transport import AsyncStoreTransport

        return AsyncStoreTransport(endpoint)
    if endpoint.cluster is not None:
        from .cluster import ClusterTransport

        return ClusterTransport(endpoint, AsyncTransport)
    return AsyncTransport(endpoint)


def blocking_transport(endpoint: Endpoint) -> Any:
    """The blocking transport for ``endpoint``: HTTP, or in-process for the embedded store."""
    if endpoint.embedded:
        from ..store.transport import BlockingStoreTransport

        return BlockingStoreTransport(endpoint)
    if endpoint.cluster is not None:
        raise ValueError("several nodes need the async client (service.couch.Couch)")
    return BlockingTransport(endpoint)
