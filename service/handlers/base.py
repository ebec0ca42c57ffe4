"""The base of every handler: collaborators, request bodies, CORS, and the one error path.

Every exception a handler lets out, from the client (``service.couch.errors``) or from Tornado,
becomes CouchDB-style JSON ``{"error", "reason"}`` in ``write_error``, and nowhere else. What
reaches the client never holds a traceback, a backend URL or a credential.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass
from typing import Any

import ujson
from tornado import httputil, iostream, web

from ..couch import Couch, Database, relax
from ..couch.errors import BadRequest, HTTPError, RequestTooLarge, ServerUnavailable
from ..credentials import credentials_of
from ..hub import HubFull
from ..inflight import InFlight
from ..metrics import Metrics
from ..settings import Settings
from . import passthrough
from .upload import BodyPipe

log = logging.getLogger("settee.handlers")

JSON_TYPE = "application/json"
RETRY_AFTER_SECONDS = 5

# Error names CouchDB uses for the statuses Tornado raises by itself.
ERROR_NAMES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    412: "precondition_failed",
    413: "too_large",
    415: "bad_content_type",
    503: "service_unavailable",
}


def json_text(value: Any) -> str:
    """A response body: JSON as CouchDB writes it (no escaped slashes), one line."""
    return ujson.dumps(value, ensure_ascii=False, escape_forward_slashes=False) + "\n"


@dataclass(frozen=True)
class ErrorReply:
    """What the client is told about a failure."""

    status: int
    error: str
    reason: str
    headers: tuple[tuple[str, str], ...] = ()


def _unavailable(why: str) -> ErrorReply:
    retry = (("Retry-After", str(RETRY_AFTER_SECONDS)),)
    return ErrorReply(503, "service_unavailable", f"{why}; try again later", retry)


def error_reply(exc: BaseException | None, status: int) -> ErrorReply:
    """The reply for ``exc`` (or for a bare ``status`` when Tornado raised none)."""
    if isinstance(exc, HTTPError):
        return ErrorReply(exc.status or 500, exc.error, exc.reason)
    if isinstance(exc, HubFull):
        return _unavailable("too many changes subscribers")
    if isinstance(exc, ServerUnavailable):
        return _unavailable("the database is unreachable")
    reason = ""
    if isinstance(exc, web.HTTPError):
        status, reason = exc.status_code, exc.reason or ""
    elif exc is not None:
        status = 500
    if status >= 500:
        return ErrorReply(status, "unknown_error", "internal error; see the service's log")
    error = ERROR_NAMES.get(status, "error")
    return ErrorReply(status, error, reason or httputil.responses.get(status, ""))


@relax
def pass_through(self: ApiHandler, *args: Any, **kwargs: Any) -> Any:
    """Relay the request to the backend as it is, and its answer back (see ``passthrough``)."""
    self._body_taken = True  # Tornado calls the method once the body is whole
    if self._relaying is None:  # not started in prepare(): the body is whole by now
        whole = self.body or self.request.body
        self._relaying = self.couch.relay(*self._relayed_request(whole or None))
    if self._piped is not None:
        yield self._piped.end()
    reply = yield self._relaying
    origin = f"{self.request.protocol}://{self.request.host}"
    self.set_status(reply.status, reason=None if reply.status in httputil.responses else "Relayed")
    headers = dict(passthrough.response_headers(reply.headers, self.couch.endpoint.urls, origin))
    if self.request.method == "HEAD" or reply.status in (204, 304):
        reply.close()
        for name, value in headers.items():
            self.set_header(name, value)
        return
    yield from self.relay_body(reply, headers)


@web.stream_request_body
class ApiHandler(web.RequestHandler):
    """Thin handlers derive from this: parse, call the client, write.

    Request bodies are received in chunks: buffered here up to ``max_body_size`` (413 past
    it), or streamed onwards by handlers that override ``data_received``. A method a handler
    does not implement is passed through to the backend as it is, body streamed.

    ``self.couch`` acts for the client: every request it makes carries the client's own
    credentials (``service.credentials``) and no others, so CouchDB decides what it may do.
    """

    SUPPORTED_METHODS = (*web.RequestHandler.SUPPORTED_METHODS, "COPY")
    route = "unknown"
    # The methods CouchDB allows on this route, as its 405 lists them (None: any, the
    # backend decides). Of these, the ones a handler does not implement are passed through.
    couchdb_methods: str | None = None
    # Whether ``data_received`` gets the body (``stream_request_body``, below), or it is
    # whole in ``request.body`` before the handler runs.
    streams_body = True
    # Slots, not the instance dict: Tornado's own attributes fill a WebSocket handler's dict
    # up to the size CPython shares between instances, and each idle subscriber is one.
    __slots__ = (
        "_body_taken",
        "_chunks",
        "_counted",
        "_piped",
        "_received",
        "_relaying",
        "config",
        "couch",
        "couch_for_clients",
        "credentials",
        "in_flight",
        "metrics",
        "own_couch",
    )

    def _take_collaborators(
        self,
        *,
        couch: Couch,
        own_couch: Couch,
        settings: Settings,
        metrics: Metrics,
        in_flight: InFlight,
    ) -> None:
        """What every handler is given (``make_app``): ``initialize`` on this class."""
        self.credentials = credentials_of(self.request.headers)
        self.couch_for_clients = couch
        self.couch = couch.acting_for(self.credentials)
        self.own_couch = own_couch
        self.config = settings
        self.metrics = metrics
        self.in_flight = in_flight
        self._chunks: list[bytes] = []
        self._received = 0  # bytes of body received
        self._body_taken = False  # the method has the body: it was whole
        self._counted = False
        self._piped: BodyPipe | None = None
        self._relaying: Any = None

    # Tornado calls ``initialize`` with the keyword arguments of the handler's route, and types
    # it ``Callable[..., None]`` so that each handler takes what its route gives it. A handler
    # that needs more (the hub, the tokens) takes those as keyword arguments of its own and
    # passes the rest to ``super().initialize``: a narrower signature here would refuse them.
    initialize: Callable[..., None] = _take_collaborators

    get = head = post = put = delete = patch = copy = pass_through

    # -- lifecycle

    def prepare(self) -> Awaitable[None] | None:
        self.in_flight.enter()
        self._counted = True
        method = self.request.method or ""
        self.config.policy.check(method, self.request.path)
        allowed = self.couchdb_methods
        if allowed and method != "OPTIONS" and method not in allowed.split(","):
            raise HTTPError("method_not_allowed", f"Only {allowed} allowed", status=405)
        length = self.request.headers.get("Content-Length", "")
        if length.isdigit() and int(length) > self.config.max_body_size:
            limit = self.config.max_body_size
            raise RequestTooLarge("too_large", f"the request body is larger than {limit} bytes")
        if self._passes_through() and self.streams_body:
            has_body = length not in ("", "0") or "Transfer-Encoding" in self.request.headers
            self._piped = BodyPipe() if has_body else None
            body = self._piped.chunks() if self._piped else None
            self._relaying = self.couch.relay(*self._relayed_request(body))
            if self._piped:
                self._piped.feeding(self._relaying)
        return None

    def _passes_through(self) -> bool:
        method = getattr(type(self), (self.request.method or "").lower(), None)
        return method is pass_through or self.relayed_as_is()

    def relayed_as_is(self) -> bool:
        """Whether this request, on a route settee handles, is one settee has nothing to add
        to, and relays: a handler's method then starts with ``pass_through``."""
        return False

    def _relayed_request(self, body: Any) -> tuple[str, str, dict[str, str], Any]:
        headers = passthrough.request_headers(self.request.headers.get_all())
        if self._piped is not None and "Content-Length" in self.request.headers:
            headers["Content-Length"] = self.request.headers["Content-Length"]
        return self.request.method or "GET", self.request.uri or "/", headers, body

    def on_finish(self) -> None:
        self._stop_relaying()
        self._leave()

    def _stop_relaying(self) -> None:
        if self._piped is not None:
            self._piped.cancel()

    def on_connection_close(self) -> None:
        """A client that leaves before its body is whole is never answered: it is no longer in
        flight. One that leaves later still has its request carried out, as CouchDB carries out
        a write whose client has gone, and shutdown waits for it (``on_finish`` ends it)."""
        whole = self._body_whole()
        super().on_connection_close()
        if not whole:  # Tornado will not call the method: nothing else ends the request
            self._stop_relaying()
            self._leave()

    def _body_whole(self) -> bool:
        """Whether the request body has all arrived. Tornado calls the handler's method once
        it has (``stream_request_body``), and a method that runs takes the body; before that,
        a declared length tells. A body that is not streamed was whole before the handler
        was made."""
        if self._body_taken or not self.streams_body:
            return True
        headers = self.request.headers
        if "Transfer-Encoding" in headers:
            return False  # chunked: whole when the method takes it
        length = headers.get("Content-Length", "0")
        return not length.isdigit() or self._received >= int(length)

    def _leave(self) -> None:
        if self._counted:
            self._counted = False
            self.in_flight.leave()

    def data_received(self, chunk: bytes) -> Awaitable[None] | None:
        # The server's max_body_size is the configured limit: a chunked body that outgrows
        # it is cut off by the server before it gets here.
        self._received += len(chunk)
        if self._piped is not None:
            return self._piped.send(chunk)
        self._chunks.append(chunk)
        return None

    def set_default_headers(self) -> None:
        """settee's headers on every response (Tornado's ``clear()`` calls this), and CORS."""
        self.set_header("Server", "settee")
        self.set_header("Content-Type", JSON_TYPE)
        self.set_header("Cache-Control", "must-revalidate")
        allowed = self.settings.get("cors_origins", ())  # runs before initialize()
        if not allowed:
            return
        origin = self.request.headers.get("Origin")
        if not origin:
            return
        if origin in allowed:
            # A listed origin's pages may send the user's credentials (cookie, Authorization).
            self.set_header("Access-Control-Allow-Origin", origin)
            self.set_header("Access-Control-Allow-Credentials", "true")
            self.set_header("Vary", "Origin")
        elif "*" in allowed:
            # Any page may read, but never with the user's credentials: browsers then keep
            # cookies out, so no site can act as its visitors do on their CouchDB.
            self.set_header("Access-Control-Allow-Origin", "*")
        else:
            return
        self.set_header("Access-Control-Expose-Headers", "ETag, Location, Retry-After")

    def options(self, *args: Any, **kwargs: Any) -> None:
        """CORS preflight: the methods this route has, and the headers a client may send."""
        methods = [m for m in self.SUPPORTED_METHODS if self._implements(m)]
        self.set_header("Access-Control-Allow-Methods", ", ".join(methods))
        self.set_header(
            "Access-Control-Allow-Headers",
            "Accept, Authorization, Content-Type, If-Match, If-None-Match, Origin, Destination",
        )
        self.set_header("Access-Control-Max-Age", "600")
        self.set_status(204)
        self.clear_header("Content-Type")

    def _implements(self, method: str) -> bool:
        implementation = getattr(type(self), method.lower(), None)
        return implementation is not getattr(web.RequestHandler, method.lower(), None)

    def compute_etag(self) -> str | None:
        """No hash of the body: documents carry their rev as ETag, set by their handlers."""
        return None

    # -- reading the request

    @property
    def body(self) -> bytes:
        """The whole request body (in the handler's method: Tornado calls it once whole)."""
        self._body_taken = True
        return b"".join(self._chunks)

    def json_body(self, *, must_be_object: bool = True) -> Any:
        """The request body as JSON: 400 ``bad_request`` if malformed (or not an object)."""
        try:
            value = ujson.loads(self.body)
        except ValueError:
            raise BadRequest("bad_request", "invalid UTF-8 JSON") from None
        if must_be_object and not isinstance(value, dict):
            raise BadRequest("bad_request", "Request body must be a JSON object")
        return value

    def database(self, name: str) -> Database:
        """The client's handle on database ``name`` (400 if the name is illegal)."""
        return self.couch[name]

    # -- writing the response

    def write_json(self, value: Any, status: int = 200) -> None:
        self.set_status(status)
        self.finish(json_text(value))

    def relay_body(self, body: Any, headers: dict[str, str]) -> Generator[Any, Any, None]:
        """Answer with a body streamed from the backend: ``headers``, then each chunk as it
        comes, flushed before the next is read, so that the service holds one chunk. A client
        that leaves ends the relay; ``body`` is closed either way."""
        try:
            for name, value in headers.items():
                self.set_header(name, value)
            while chunk := (yield body.read()):
                self.write(chunk)
                yield self.flush()
        except iostream.StreamClosedError:
            return  # the client has gone: the rest has nobody to go to
        finally:
            body.close()

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        reply = error_reply(exc, status_code)
        if isinstance(exc, ServerUnavailable) or reply.status >= 500:
            self.metrics.backend_errors.labels(
                "unavailable" if isinstance(exc, ServerUnavailable) else "server_error"
            ).inc()
        self.clear()
        self.set_status(reply.status)
        for name, value in reply.headers:
            self.set_header(name, value)
        body = {"error": reply.error, "reason": reply.reason}
        self.finish(json_text(body) if self.request.method != "HEAD" else None)

    def log_exception(self, typ: Any, value: BaseException | None, tb: Any) -> None:
        """Client errors are normal: no traceback. An unreachable backend: one line."""
        if isinstance(value, HTTPError) and value.status < 500:
            return
        if isinstance(value, ServerUnavailable | HTTPError):
            log.warning("%s %s: %s", self.request.method, self.request.path, value)
            return
        super().log_exception(typ, value, tb)


class PassThroughHandler(ApiHandler):
    """Every path settee does not handle itself: relayed to the backend, whatever the method."""

    route = "passthrough"


class NotFoundHandler(ApiHandler):
    """A request target no route can claim (not a path): 404, whatever the method."""

    route = "not_found"

    def prepare(self) -> None:
        super().prepare()
        raise web.HTTPError(404, reason="missing")
