"""Network I/O: the only module that imports an HTTP library.

``AsyncTransport`` (aiohttp) and ``BlockingTransport`` (urllib3) send ``protocol.Request``
objects over pooled keep-alive connections and hand back ``protocol.Response`` objects, or a
streamed response whose body arrives in chunks. Third-party exceptions stop here: a server that
cannot be reached becomes ``ServerUnavailable`` naming the URL without its credentials.
"""

from __future__ import annotations

import base64
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import aiohttp
import urllib3
import yarl

from .errors import CouchError, ServerError, ServerUnavailable
from .protocol import Request, Response

DEFAULT_HEADERS = {
    "Accept": "application/json",
    # pouchdb-server holds back a gzip-compressed continuous feed; CouchDB itself does not
    # compress JSON. Identity everywhere keeps feeds flowing and costs nothing on a LAN.
    "Accept-Encoding": "identity",
    "User-Agent": "settee",
}


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where a server is and how to log in: the URL without credentials, and the credentials."""

    url: str
    auth: tuple[str, str] | None = None
    timeout: float = 30.0
    connect_timeout: float = 10.0
    max_connections: int = 100

    @classmethod
    def parse(cls, url: str, auth: tuple[str, str] | None = None, **settings: Any) -> Endpoint:
        """Split ``user:password@`` out of ``url``; an explicit ``auth`` wins over it."""
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


@dataclass(slots=True)
class StreamedResponse:
    """A response whose body is read as it arrives."""

    status: int
    headers: dict[str, str]
    chunks: Any  # AsyncIterator[bytes] or Iterator[bytes], by transport
    abort: Callable[[], None] | None = None  # ends a blocked read from another thread


def _headers(raw: Any) -> dict[str, str]:
    return {name.lower(): value for name, value in raw.items()}


class AsyncTransport:
    """Pooled keep-alive HTTP for asyncio (and Tornado, which runs on it)."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self._headers = endpoint.headers()
        self._session: aiohttp.ClientSession | None = None
        self._feeds: aiohttp.ClientSession | None = None

    def _open(self, *, feeds: bool) -> aiohttp.ClientSession:
        # Feeds hold their connection for as long as they run, so they get a pool of their own
        # with no limit, and no total timeout (read timeouts are per feed).
        limit = 0 if feeds else self.endpoint.max_connections
        total = None if feeds else self.endpoint.timeout
        return aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=limit, limit_per_host=0),
            timeout=aiohttp.ClientTimeout(total=total, connect=self.endpoint.connect_timeout),
            headers=self._headers,
            auto_decompress=False,
            skip_auto_headers=("Accept-Encoding", "User-Agent"),
        )

    def _url(self, request: Request) -> yarl.URL:
        return yarl.URL(self.endpoint.url + request.target, encoded=True)

    def describe(self, request: Request) -> str:
        return f"{request.method} {self.endpoint.url}{request.path}"

    async def send(self, request: Request) -> Response:
        if self._session is None:
            self._session = self._open(feeds=False)
        try:
            async with self._session.request(
                request.method, self._url(request), headers=request.headers, data=request.body
            ) as response:
                body = await response.read()
                return Response(response.status, _headers(response.headers), body)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise self._unavailable(exc) from exc

    @contextlib.asynccontextmanager
    async def stream(
        self, request: Request, *, read_timeout: float | None = None
    ) -> AsyncIterator[StreamedResponse]:
        """Send ``request``; yield its response with ``chunks`` as an async iterator of bytes."""
        if self._feeds is None:
            self._feeds = self._open(feeds=True)
        timeout = aiohttp.ClientTimeout(
            total=None, connect=self.endpoint.connect_timeout, sock_read=read_timeout
        )
        try:
            async with self._feeds.request(
                request.method,
                self._url(request),
                headers=request.headers,
                data=request.body,
                timeout=timeout,
            ) as response:
                yield StreamedResponse(
                    response.status, _headers(response.headers), response.content.iter_any()
                )
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise self._unavailable(exc) from exc

    def _unavailable(self, exc: BaseException) -> CouchError:
        if isinstance(exc, aiohttp.ClientResponseError):
            # The server answered, but not in HTTP that parses: its fault, not the network's.
            return ServerError("bad_response", exc.message, status=502)
        return ServerUnavailable(self.endpoint.url, str(exc) or type(exc).__name__)

    async def close(self) -> None:
        for session in (self._session, self._feeds):
            if session is not None:
                await session.close()
        self._session = self._feeds = None


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

    @contextlib.contextmanager
    def stream(
        self, request: Request, *, read_timeout: float | None = None
    ) -> Iterator[StreamedResponse]:
        """Send ``request``; yield its response with ``chunks`` as an iterator of bytes."""
        timeout = urllib3.Timeout(connect=self.endpoint.connect_timeout, read=read_timeout)
        response = self._call(request, preload_content=False, timeout=timeout)
        try:
            yield StreamedResponse(
                response.status,
                _headers(response.headers),
                self._chunks(response),
                response.shutdown,
            )
        finally:
            # A stream may be left half read: its connection is closed, never reused.
            response.close()
            response.release_conn()

    def _chunks(self, response: urllib3.BaseHTTPResponse) -> Iterator[bytes]:
        try:
            yield from response.stream(65536, decode_content=False)
        except urllib3.exceptions.HTTPError as exc:
            raise self._unavailable(exc) from exc

    def _unavailable(self, exc: BaseException) -> ServerUnavailable:
        reason = getattr(exc, "reason", None) or exc
        return ServerUnavailable(self.endpoint.url, str(reason) or type(exc).__name__)

    def close(self) -> None:
        self._pool.clear()
