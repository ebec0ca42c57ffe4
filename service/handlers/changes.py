"""``/{db}/_changes``: the normal feed from the backend; the others from the hub.

``feed=websocket`` upgrades to a WebSocket (settee's own feed, DESIGN.md); ``longpoll``,
``continuous`` (``live``) and ``eventsource`` are CouchDB's HTTP feeds. All of them are served
from the hub's one shared upstream feed per database and filter. Every option is checked, and
the database and filter looked up, before a WebSocket is opened or a feed begins.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from typing import Any
from urllib.parse import urlsplit

import ujson
from tornado import iostream, websocket

from .. import options
from ..backend import COUCHDB, EMBEDDED, kind_of
from ..couch import relax
from ..couch.errors import BadRequest, NotFound, Unauthorized
from ..hub import (
    SLOW_CONSUMER,
    CaughtUp,
    Closed,
    Hub,
    HubFull,
    Item,
    Subscribing,
    Subscription,
    Viewer,
)
from ..reauthorize import Key, Reauthorizer
from ..sources import CouchSource
from ..tokens import SubscriberTokens
from .base import JSON_TYPE, ApiHandler, json_text
from .frames import FramePump
from .keepalive import Pinger

# The options that choose an upstream feed; the others shape what one subscriber receives.
FEED_OPTIONS = ("include_docs", "filter", "doc_ids", "selector", "view", "style", "conflicts")
OWN_ARGUMENTS = ("token",)  # settee's, never a filter's
BUILTIN_FILTERS = ("_doc_ids", "_selector", "_design", "_view")
DEFAULT_HEARTBEAT = 60.0
DEFAULT_TIMEOUT = 60.0
# CouchDB 2+'s seqs: a number, a dash and an opaque base64url tail. Whether the tail decodes
# is the backend's to judge; nothing else can be a seq it issued.
COUCHDB_SEQ = re.compile(r"\d+-[A-Za-z0-9_-]+\Z")


def seq_of(row: bytes) -> Any:
    return ujson.loads(row)["seq"]


class Reauthorized:
    """A subscription that the reauthorizer checks again for as long as it lasts. A class,
    not a generator: one lives for as long as each subscriber stays."""

    __slots__ = ("_key", "_subscription", "credentials", "db", "reauthorizer", "subscribing")

    def __init__(
        self,
        subscribing: Subscribing,
        reauthorizer: Reauthorizer,
        db: str,
        credentials: dict[str, str],
    ) -> None:
        self.subscribing, self.reauthorizer = subscribing, reauthorizer
        self.db, self.credentials = db, credentials
        self._key: Key | None = None
        self._subscription: Subscription | None = None

    async def __aenter__(self) -> Subscription:
        subscription = self._subscription = await self.subscribing.__aenter__()
        self._key = self.reauthorizer.add(self.db, self.credentials, subscription)
        return subscription

    async def __aexit__(self, *exc_info: Any) -> None:
        self.leave()

    def leave(self) -> None:
        """Unsubscribe now, before the ``async with`` ends (once: leaving it does no more)."""
        key, subscription, self._key, self._subscription = self._key, self._subscription, None, None
        if key is not None and subscription is not None:
            self.reauthorizer.discard(key, subscription)
        self.subscribing.leave()


class ChangesHandler(websocket.WebSocketHandler, ApiHandler):
    route = "changes"
    couchdb_methods = "GET,POST,HEAD"
    __slots__ = ("feed", "hub", "latency", "pinger", "reauthorizer", "subscription", "tokens")

    def initialize(
        self,
        *,
        hub: Hub,
        pinger: Pinger,
        reauthorizer: Reauthorizer,
        tokens: SubscriberTokens,
        **collaborators: Any,
    ) -> None:
        ApiHandler.initialize(self, **collaborators)
        self.hub = hub
        self.pinger = pinger
        self.reauthorizer = reauthorizer
        self.tokens = tokens
        self.subscription: Subscription | None = None
        self.feed: Reauthorized | None = None

    # -- checked before anything starts

    @relax
    async def get(self, db: str) -> None:
        # A coroutine, not a generator: the WebSocket lives inside this call, within the
        # subscription's ``async with``.
        query = options.parse(self.request.arguments, options.CHANGES)
        query.update(self._filter_arguments(query.get("filter")))
        feed = query.pop("feed", "normal")
        if feed == "live":
            feed = "continuous"
        await self._check_since(query.get("since", 0))
        if feed == "websocket":
            if self.request.headers.get("Upgrade", "").lower() != "websocket":
                raise BadRequest("bad_request", "feed=websocket needs a WebSocket upgrade request")
            self._no_cookie_from_other_pages()
        if feed in ("websocket", "eventsource"):  # a browser can set no header on either
            self._redeem_token()
        if feed == "normal":
            # Checked here too: pouchdb-server crashes on a missing filter function or a
            # _view filter in a normal feed, as in the others.
            await self._check_filter(db, query)
            body = await self.database(db).stream_changes(**query)
            await relax(self.relay_body)(body, {"Content-Type": JSON_TYPE})
            return
        # The backend judges the client's right to this feed, and its seqs, before any feed:
        # as CouchDB answers the client's own _changes (_users: 401 for all but admins).
        since = query.get("since", 0)
        await self.database(db).changes(since="now" if since == 0 else since, limit=1)
        await self._check_filter(db, query)
        if self.hub.subscribers >= self.hub.max_subscribers:
            raise HubFull(f"{self.hub.subscribers} subscribers already")
        if feed == "websocket":
            # Subscribe, then upgrade: a backend that cannot be followed is an HTTP error,
            # not a socket that opens and closes. The subscription lasts as long as the socket.
            self.feed = self._subscription(db, query, "websocket")
            async with self.feed as subscription:
                subscription.on_close = self._end
                self.subscription, self.latency = subscription, query.get("latency", 0)
                # What was parsed from the request is used up; an idle subscriber need not
                # hold it for the life of its socket (this frame and the request would).
                del query
                self.request.arguments = self.request.query_arguments = {}
                await websocket.WebSocketHandler.get(self, db)
        elif feed == "longpoll":
            await self._longpoll(db, query)
        elif feed == "eventsource":
            await self._stream(db, query, eventsource=True)
        else:
            await self._stream(db, query, eventsource=False)

    async def _check_filter(self, db: str, query: dict[str, Any]) -> None:
        """400 for a filter that cannot work, 404 for a database or filter that is missing."""
        name = query.get("filter")
        database = self.database(db)
        if name is None or name == "_design":
            return
        if name == "_doc_ids":
            if not all(isinstance(i, str) for i in query.get("doc_ids") or [None]):
                raise BadRequest("bad_request", "filter=_doc_ids needs doc_ids=[…] (strings)")
        elif name == "_selector":
            if "selector" not in query:
                raise BadRequest("bad_request", "filter=_selector needs selector={…}")
            await self._check_backend_has(name)
        elif name == "_view":
            await self._check_design(database, query.get("view", ""), "views")
            await self._check_backend_has(name)
        elif name.startswith("_"):
            raise BadRequest("bad_request", f"unknown builtin filter name: {name}")
        else:
            await self._check_design(database, name, "filters")

    async def _check_since(self, since: Any) -> None:
        """400 for a ``since`` the backend never issued, as CouchDB answers: pouchdb-server
        would echo it back as ``last_seq``, and a client resuming from that skips changes."""
        if since in (0, "now"):
            return
        if await kind_of(self.own_couch) == COUCHDB:
            valid = isinstance(since, str) and COUCHDB_SEQ.match(since)
        else:
            valid = isinstance(since, int)
        if not valid:
            raise BadRequest("bad_request", "Malformed sequence supplied in 'since' parameter.")

    async def _check_backend_has(self, name: str) -> None:
        """pouchdb-server lacks ``_selector`` and ``_view`` (the latter crashes it)."""
        if await kind_of(self.own_couch) not in (COUCHDB, EMBEDDED):
            raise BadRequest("bad_request", f"filter={name} needs CouchDB as the backend")

    @staticmethod
    async def _check_design(database: Any, name: str, kind: str) -> None:
        ddoc, _, function = name.partition("/")
        if not ddoc or not function or "/" in function:
            raise BadRequest("bad_request", f"`{name}` is not of the form designname/{kind[:-1]}")
        design = await database.get("_design/" + ddoc)
        if function not in (design.get(kind) or {}):
            raise NotFound("not_found", f"missing json key: {function}")

    def _filter_arguments(self, name: str | None) -> dict[str, str]:
        """The request's other arguments, for a filter function: CouchDB hands it the whole
        query (``req.query``), and a filter such as ``doc.type === req.query.type`` needs
        them. They go upstream with the feed, and a feed is shared only with the same ones."""
        if name is None or name.startswith("_"):
            return {}
        return {
            argument: values[-1].decode("utf-8", "replace")
            for argument, values in self.request.query_arguments.items()
            if argument not in options.CHANGES and argument not in OWN_ARGUMENTS
        }

    def _subscription(self, db: str, query: dict[str, Any], kind: str) -> Reauthorized:
        feed_options = {
            name: value
            for name, value in query.items()
            if name in FEED_OPTIONS or name not in options.CHANGES
        }
        viewer = None
        if feed_options.get("filter", "_doc_ids") not in BUILTIN_FILTERS:
            # A filter function sees req.userCtx: it must run as this client, not settee.
            viewer = Viewer(frozenset(self.credentials.items()), CouchSource(self.couch))
        subscribing = self.hub.subscribe(
            db, since=query.get("since", 0), kind=kind, viewer=viewer, **feed_options
        )
        return Reauthorized(subscribing, self.reauthorizer, db, self.credentials)

    # -- WebSocket

    def check_origin(self, origin: str) -> bool:
        return "*" in self.config.cors_origins or self._trusted_origin(origin)

    def _trusted_origin(self, origin: str) -> bool:
        """The page's own host, or an origin ``cors_origins`` lists by name."""
        own = urlsplit(origin).netloc.lower() == self.request.host.lower()
        return own or origin in self.config.cors_origins or super().check_origin(origin)

    def _redeem_token(self) -> None:
        """``?token=`` (``POST /_settee/token``): subscribe with the credentials it stands
        for, whatever else the request carries."""
        token = self.get_query_argument("token", None)
        if token is None:
            return
        credentials = self.tokens.redeem(token)
        if credentials is None:
            raise Unauthorized("unauthorized", "the token is unknown, used or expired")
        self.credentials = credentials
        self.couch = self.couch_for_clients.acting_for(credentials)

    def _no_cookie_from_other_pages(self) -> None:
        """With ``cors_origins = *`` any page may open a WebSocket, but not as its visitor:
        a browser sends the visitor's cookies with every page's WebSocket, so a page of an
        origin not trusted by name subscribes without the session cookie."""
        origin = self.request.headers.get("Origin")
        if origin and "Cookie" in self.credentials and not self._trusted_origin(origin):
            del self.credentials["Cookie"]
            self.couch = self.couch_for_clients.acting_for(self.credentials)

    def open(self, db: str) -> None:
        self._leave()  # an open WebSocket is not a request in flight; shutdown closes it
        subscription = self.subscription
        if subscription.closed:
            self.close(subscription.closed.code, subscription.closed.reason)
            return
        FramePump(subscription, self.ws_connection.stream, self.latency, self.hub.stats)
        self.pinger.add(self)

    def _end(self, closed: Closed) -> None:
        """The hub ended the subscription: close the socket with its code and reason."""
        self.close(closed.code, closed.reason)

    def close(self, code: int | None = None, reason: str | None = None) -> None:
        """Send the Close frame, the subscription ended first: no data frame may follow a
        Close (RFC 6455, 5.5.1), and a peer that never answers it (Tornado waits 5 s) holds
        no place in the hub meanwhile."""
        if self.ws_connection is not None:  # open: before, open() sees how it was closed
            self._unsubscribe(Closed(reason or "closed", code or 1000))
        super().close(code, reason)

    def _unsubscribe(self, closed: Closed) -> None:
        """End the subscription at once: its pump writes nothing more, the hub forgets it."""
        subscription, feed, self.subscription, self.feed = self.subscription, self.feed, None, None
        if subscription is not None:
            subscription.on_close = None  # this is the close it would call for
            subscription.close(closed)
        if feed is not None:
            feed.leave()

    def on_pong(self, data: bytes) -> None:
        self.pinger.answered(self)

    def on_close(self) -> None:
        self.pinger.discard(self)
        self._unsubscribe(Closed("connection closed", 1006))

    def get_compression_options(self) -> None:
        """No per-message compression: the frame pump writes plain frames itself."""
        return None

    def on_connection_close(self) -> None:
        websocket.WebSocketHandler.on_connection_close(self)
        self._leave()

    # -- HTTP feeds

    async def _longpoll(self, db: str, query: dict[str, Any]) -> None:
        """Changes since ``since`` at once if there are any, else the next ones (or none
        when ``timeout`` passes), in CouchDB's normal-feed shape; a newline every
        ``heartbeat`` while waiting, as CouchDB sends, keeps proxies from timing out."""
        limit, heartbeat = query.get("limit"), query.get("heartbeat")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + query.get("timeout", DEFAULT_TIMEOUT)
        rows: list[bytes] = []
        last_seq: Any = None
        caught_up = False
        async with self._subscription(db, query, "longpoll") as subscription:
            with contextlib.suppress(Closed, iostream.StreamClosedError):
                while not (caught_up and rows) and (left := deadline - loop.time()) > 0:
                    try:
                        async with asyncio.timeout(min(left, heartbeat or left)):
                            items = await subscription.next()
                    except TimeoutError:
                        if heartbeat:
                            self.write(b"\n")
                            await self.flush()
                        continue
                    for item in items:
                        if isinstance(item, bytes):
                            rows.append(item)
                        else:
                            caught_up, last_seq = True, item.last_seq
        if limit is not None:
            rows = rows[:limit]
        if rows:
            last_seq = seq_of(rows[-1])
        if last_seq is None:  # ended before the hub caught up: ask where the database is
            last_seq = await self._current_seq(db)
        body = b'{"results":[' + b",\n".join(rows) + b'],"last_seq":'
        self.finish(body + ujson.dumps(last_seq).encode() + b',"pending":0}\n')

    async def _stream(self, db: str, query: dict[str, Any], *, eventsource: bool) -> None:
        """Rows as they come, with heartbeats, until ``timeout`` or the end of the feed."""
        heartbeat = query.get("heartbeat", DEFAULT_HEARTBEAT)
        if eventsource:
            self.set_header("Content-Type", "text/event-stream")
            self.set_header("Cache-Control", "no-cache")
            if last_id := self.request.headers.get("Last-Event-ID"):
                query = {**query, "since": options.CHANGES["since"](last_id)}
        self.set_header("X-Accel-Buffering", "no")
        last_seq = None
        kind = "eventsource" if eventsource else "continuous"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + query["timeout"] if "timeout" in query else None
        try:
            async with self._subscription(db, query, kind) as subscription:
                subscription.on_close = self._hang_up_if_slow
                while deadline is None or loop.time() < deadline:
                    wait = heartbeat if deadline is None else min(heartbeat, deadline - loop.time())
                    try:
                        async with asyncio.timeout(wait):
                            items = await subscription.next()
                    except TimeoutError:
                        self.write(b"event: heartbeat\ndata: \n\n" if eventsource else b"\n")
                    else:
                        written = self._write_rows(items, eventsource)
                        last_seq = last_seq if written is None else written
                    await self.flush()
        except Closed as closed:
            if closed == SLOW_CONSUMER:
                return  # the connection was closed (below): nothing more can be sent
        except iostream.StreamClosedError:
            return
        if not eventsource:
            if last_seq is None:
                last_seq = await self._current_seq(db)
            self.write(json_text({"last_seq": last_seq}).encode())
        self.finish()

    async def _current_seq(self, db: str) -> Any:
        """The seq the database is at now: a ``last_seq`` is always one the backend issued."""
        return (await self.database(db).changes(since="now", limit=1))["last_seq"]

    def _hang_up_if_slow(self, closed: Closed) -> None:
        """A slow consumer's feed ends by closing the socket: it is not reading, so a closing
        line would wait behind what it has not read; the pending flush fails, and ends it."""
        if closed == SLOW_CONSUMER:
            self.request.connection.close()

    def _write_rows(self, items: list[Item], eventsource: bool) -> Any:
        """Write the rows among ``items``; the seq of the last one (or the one the hub caught
        up at; None if neither)."""
        rows = [item for item in items if isinstance(item, bytes)]
        if not rows:
            caught_up = [item.last_seq for item in items if isinstance(item, CaughtUp)]
            return caught_up[-1] if caught_up else None
        if eventsource:
            for row in rows:
                self.write(b"data: " + row + b"\nid: " + str(seq_of(row)).encode() + b"\n\n")
        else:
            self.write(b"\n".join(rows) + b"\n")
        self.hub.stats.frames_sent += len(rows)
        return seq_of(rows[-1])
