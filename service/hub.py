"""The hub: one upstream ``_changes`` feed per (database, filter), fanned out to subscribers.

An upstream feed starts with its first subscriber and stops a while (``linger``) after its
last one leaves. It comes from the hub's ``ChangeSource`` (``service.sources``): from a server,
the client's ChangesFeed, which reconnects with backoff and resumes from the last seq it saw, so
subscribers stay subscribed through a backend restart; in a test, a scripted one.

Each change row is encoded to JSON once and the same bytes are offered to every subscriber.
A subscriber that is idle (it has written all it took) is handed the rows of a read at once,
however many. Rows that arrive while it is still busy with what it took wait in its queue; a
subscriber that lets ``queue_limit`` of them pile up is closed as a slow consumer (it resumes
with ``since``), so it never delays the others or grows memory. The limit is on what a
subscriber failed to take, not on how many rows one read of the upstream feed brings.

Joining late: a subscriber whose ``since`` is behind the stream is registered first (live
rows are held for it from then on), then served its backlog from ``_changes?since=…`` in
pages, then a caught-up marker, then the held rows. A change can show up both in the backlog
and from the shared feed: among the held rows, or after the switch to live rows, since the
backlog is a read of its own and can be ahead of the shared feed. It is passed on once: held
rows of a document up to the very change the backlog sent of it (the same revisions and
deletion; only the seq may differ) are left out, as are, once live, the document's first row
if it is that very change. Every other row is passed on, whatever its generation: a
replicated conflict that wins at the same generation, the lower generation that wins when a
winning branch is deleted, and every later row of the document. A backlog change waits for
its repeat among the last ``queue_limit + RECENT_IDS`` documents the backlog sent.
Seqs are opaque: never compared.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import ujson

from .sources import ChangeSource, Following

log = logging.getLogger("settee.hub")

BACKLOG_PAGE = 500
RECENT_IDS = 1_000  # backlog changes whose repeat is awaited, beyond queue_limit


class Encoded(bytes):
    """A change row encoded once for all its subscribers. Being an object of its own, it can
    also carry what a feed derives from it once for everyone (a WebSocket frame)."""


def encode(row: dict[str, Any]) -> Encoded:
    return Encoded(ujson.dumps(row, ensure_ascii=False, escape_forward_slashes=False).encode())


ChangeKey = tuple[tuple[str, ...], bool]


def change_key(row: dict[str, Any]) -> ChangeKey:
    """What two rows of the same change of a document have in common, seq aside: its
    revisions and whether it is a deletion (a document with ``include_docs`` is the rev's)."""
    return tuple(change["rev"] for change in row.get("changes", ())), bool(row.get("deleted"))


Accepts = Callable[[dict[str, Any]], bool]
Batch = Sequence[tuple[dict[str, Any], bytes]]  # change rows with their encoded bytes


def not_covered(held: Batch, sent: dict[str, ChangeKey]) -> Batch:
    """The live rows held during a catch-up that its backlog did not cover; the documents
    whose backlog row was among them leave ``sent``.

    ``sent`` is the backlog's last change of each document. A held row of the same change is
    that very change; held rows of the document before it are older states, superseded by
    what the backlog sent. Every other row is passed on, whatever its revision.
    """
    covered_until: dict[str, int] = {}
    for index, (row, _) in enumerate(held):
        if sent.get(row["id"]) == change_key(row):
            covered_until[row["id"]] = index
    for doc_id in covered_until:
        del sent[doc_id]
    return [
        (row, frame)
        for index, (row, frame) in enumerate(held)
        if index > covered_until.get(row["id"], -1)
    ]


def local_filter(options: dict[str, Any]) -> tuple[dict[str, Any], Accepts | None]:
    """Split off the built-in filters the hub applies itself (``_doc_ids``, ``_design``).

    Their subscribers then share the database's one unfiltered upstream feed, and the filters
    work on every backend (pouchdb-server has no ``_design``). Returns the options left for
    the upstream feed and the test a row must pass (None: every row passes).
    """
    name = options.get("filter")
    if name == "_doc_ids":
        ids = frozenset(options["doc_ids"])
        rest = {k: v for k, v in options.items() if k not in ("filter", "doc_ids")}
        return rest, lambda row: row["id"] in ids
    if name == "_design":
        rest = {k: v for k, v in options.items() if k != "filter"}
        return rest, lambda row: row["id"].startswith("_design/")
    return options, None


@dataclass(frozen=True, slots=True)
class CaughtUp:
    """Queued after the backlog: everything up to ``last_seq`` has been sent."""

    last_seq: Any


Item = bytes | CaughtUp


class Viewer(NamedTuple):
    """Who a feed is read as, when it is not settee: ``identity`` tells viewers apart (their
    credentials), ``source`` gives the changes as this one sees them."""

    identity: Hashable
    source: ChangeSource


class HubFull(Exception):
    """The hub has as many subscribers as it is allowed."""


class Closed(Exception):
    """The subscription was ended by the hub; ``reason`` says why, ``code`` as a WebSocket
    close code.

    ``SLOW_CONSUMER`` and the like name a kind of close, and are never raised: a subscription
    is closed with an exception of its own, and each raise is of a fresh one (``again()``).
    One instance raised again and again keeps every raise's frames in its traceback, and
    with them every handler it was raised to. A close is of a kind when it equals it (the same
    code and reason): ``closed == SLOW_CONSUMER``.
    """

    def __init__(self, reason: str, code: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code

    def again(self) -> Closed:
        """A fresh exception of the same kind, without a traceback."""
        return type(self)(self.reason, self.code)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Closed):
            return NotImplemented
        return (self.code, self.reason) == (other.code, other.reason)

    def __hash__(self) -> int:
        return hash((self.code, self.reason))


SLOW_CONSUMER = Closed("slow consumer", 4008)
GOING_AWAY = Closed("server shutting down", 1001)


@dataclass
class HubStats:
    """Counters for /_metrics."""

    frames_sent: int = 0
    slow_consumer_closes: int = 0
    subscribers_by_kind: dict[str, int] = field(default_factory=dict)


class Subscription:
    """One subscriber's place in a shared feed: a bounded queue of encoded rows and markers.

    The subscriber either waits for items (``next()``) or, to spare a task per subscriber,
    sets ``on_ready`` and says when it is ``idle()``: the hub then calls it as items arrive,
    once per batch, and the subscriber ``take()``s them at once or when its socket has room
    again. Between taking items and being idle (or waiting in ``next()``) it is busy: only
    the rows that arrive then count towards ``queue_limit``.
    """

    __slots__ = (
        "_held",
        "_idle",
        "_room",
        "_sent",
        "_stats",
        "_waiter",
        "accepts",
        "closed",
        "kind",
        "on_close",
        "on_ready",
        "queue",
        "queue_limit",
        "upstream",
    )

    def __init__(
        self, kind: str, queue_limit: int, stats: HubStats, accepts: Accepts | None = None
    ) -> None:
        self.kind = kind
        self.accepts = accepts
        self.queue: list[Item] = []
        self.queue_limit = queue_limit
        self.upstream: Upstream | None = None
        self.closed: Closed | None = None
        # Called when the hub ends the subscription: a subscriber blocked on a socket that
        # does not drain will not see ``next()`` raise, so it is told here.
        self.on_close: Callable[[Closed], None] | None = None
        self.on_ready: Callable[[], None] | None = None
        self._stats = stats
        self._waiter: asyncio.Future | None = None
        self._room: asyncio.Future | None = None
        self._held: list[tuple[dict[str, Any], bytes]] | None = []  # None once live
        self._idle = False  # whether the subscriber takes whatever arrives, at once
        # id → the backlog's change of it whose repeat the shared feed has not brought yet
        self._sent: dict[str, ChangeKey] | None = None

    # -- the hub's side

    def offer(self, batch: Batch) -> None:
        """Live rows from the upstream feed."""
        self._deliver(self._accept(batch))

    def _accept(self, batch: Batch) -> list[Item]:
        """The frames of the rows meant for this subscriber; none while it catches up (they
        are held until it is live)."""
        if self.closed:
            return []
        if self.accepts is not None:
            batch = [(row, frame) for row, frame in batch if self.accepts(row)]
        if self._held is not None:
            self._held.extend(batch)
            if len(self._held) > self.queue_limit:
                self.close(SLOW_CONSUMER)
            return []
        if self._sent:
            batch = [(row, frame) for row, frame in batch if not self._repeats_backlog(row)]
        return [frame for _, frame in batch]

    def _repeats_backlog(self, row: dict[str, Any]) -> bool:
        """Whether ``row`` is the backlog's change of its document, brought late by the shared
        feed (the backlog read the database ahead of it). Only the document's first live row
        is judged, and left out only if it is that very change: any other revision is passed
        on, and so is every later row of the document."""
        assert self._sent is not None
        sent = self._sent.pop(row["id"], None)
        return sent is not None and sent == change_key(row)

    def _deliver(self, items: list[Item]) -> None:
        """Queue items: an idle subscriber is told and takes them all, however many; for a
        busy one they wait, and past ``queue_limit`` of them it is a slow consumer."""
        if not items or self.closed:
            return
        self.queue += items
        if self._idle:
            self._wake()
        elif len(self.queue) > self.queue_limit:
            self.close(SLOW_CONSUMER)

    async def backlog(self, batch: Batch) -> None:
        """Rows of the backlog: waits for room in the queue instead of overflowing it."""
        for row, frame in batch:
            while len(self.queue) >= self.queue_limit and not self.closed:
                self._wake()
                self._room = asyncio.get_running_loop().create_future()
                await self._room
            if self.closed:
                return
            self._remember(row)
            self.queue.append(frame)
        self._wake()

    def go_live(self, last_seq: Any) -> None:
        """The backlog is sent: mark it, pass on the held rows it did not cover, go live."""
        held, self._held = self._held or [], None
        if self.closed:
            self._sent = None
            return
        live = not_covered(held, self._sent or {})
        self._deliver([CaughtUp(last_seq), *self._accept(live)])

    def _remember(self, row: dict[str, Any]) -> None:
        """Keep the latest backlog rows: a held row can only repeat a change made after this
        subscription began, and the backlog lists those last."""
        if self._sent is None:
            self._sent = {}
        self._sent.pop(row["id"], None)
        self._sent[row["id"]] = change_key(row)
        if len(self._sent) > self.queue_limit + RECENT_IDS:
            del self._sent[next(iter(self._sent))]

    def close(self, reason: Closed) -> None:
        if self.closed:
            return
        self.closed = reason.again()
        self.queue.clear()
        self._held = None
        if reason == SLOW_CONSUMER:
            self._stats.slow_consumer_closes += 1
        self._make_room()
        self._wake()
        if self.on_close is not None:
            self.on_close(self.closed)

    def _wake(self) -> None:
        if self.on_ready is not None:
            if not self.closed:
                self.on_ready()
        elif self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _make_room(self) -> None:
        if self._room is not None and not self._room.done():
            self._room.set_result(None)

    # -- the subscriber's side

    async def next(self) -> list[Item]:
        """Everything queued, waiting for at least one item (idle while it waits); raises
        Closed when ended."""
        while not self.queue:
            if self.closed:
                raise self.closed.again()
            self._waiter = asyncio.get_running_loop().create_future()
            self._idle = True
            try:
                await self._waiter
            finally:
                self._idle = False
        return self.take()

    def take(self) -> list[Item]:
        """Everything queued, without waiting. Having taken something, the subscriber is
        busy with it until it is ``idle()`` or waits in ``next()``."""
        items, self.queue = self.queue, []
        if items:
            self._idle = False
        self._make_room()
        return items

    def idle(self) -> None:
        """The subscriber has written all it took: it takes what arrives at once, however
        much (``on_ready`` is called for it)."""
        self._idle = True
        if self.queue:
            self._wake()


class Upstream:
    """One shared continuous feed and its subscribers."""

    def __init__(
        self, source: ChangeSource, db: str, options: dict[str, Any], heartbeat: float
    ) -> None:
        self.source = source
        self.db = db
        self.options = options
        self.heartbeat = heartbeat
        self.subscribers: set[Subscription] = set()
        self.last_seq: Any = None
        self.feed: Following | None = None
        self._arrived: list[dict[str, Any]] = []
        self.ended: Closed | None = None
        self.idle_since: float | None = None
        self.linger_timer: asyncio.TimerHandle | None = None  # one at most, however many leave
        self._started: asyncio.Future | None = None
        self._watcher: asyncio.Future | None = None

    async def start(self) -> None:
        """Find where the database is now and follow it from there (once, however many ask)."""
        if self._started is None:
            self._started = asyncio.ensure_future(self._start())
        await asyncio.shield(self._started)

    async def _start(self) -> None:
        self.last_seq = await self.source.update_seq(self.db)
        if self.ended:
            return
        self.feed = self.source.follow(
            self.db,
            self.last_seq,
            self.options,
            heartbeat=self.heartbeat,
            on_changes=self._on_change,
        )
        self._watcher = asyncio.ensure_future(self._watch(self.feed))

    def _on_change(self, seq: Any, rows: list[dict[str, Any]]) -> None:
        """Rows arrive one by one; they are passed on together at the end of this turn of
        the event loop, so that a subscriber writes once for all the rows of a read."""
        if not rows:
            return
        if not self._arrived:
            asyncio.get_running_loop().call_soon(self._fan_out)
        self._arrived += rows

    def _fan_out(self) -> None:
        batch = [(row, encode(row)) for row in self._arrived]
        self._arrived = []
        self.last_seq = batch[-1][0]["seq"]
        for subscription in list(self.subscribers):  # a subscriber may leave as it is told
            subscription.offer(batch)

    async def _watch(self, feed: Following) -> None:
        try:
            await feed.wait()
        except Exception as exc:
            error = getattr(exc, "error", type(exc).__name__)
            log.warning("upstream feed of %s ended: %s", self.db, exc)
            self.end(Closed(f"upstream feed ended: {error}", 1011))

    def end(self, reason: Closed) -> None:
        self.ended = reason
        if self.linger_timer is not None:
            self.linger_timer.cancel()
            self.linger_timer = None
        if self._started is not None and not self._started.done():
            self._started.cancel()
        if self.feed is not None:
            self.feed.stop()
        for subscription in list(self.subscribers):
            subscription.close(reason)

    @property
    def stopping(self) -> bool:
        """Whether its start or its feed is still running."""
        starting = self._started is not None and not self._started.done()
        return starting or (self.feed is not None and self.feed.running)

    async def stopped(self) -> None:
        """Wait for an ended feed to finish (its start, its connection)."""
        if self._started is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await self._started
        if self.feed is not None:
            await self.feed.wait()

    @property
    def reconnects(self) -> int:
        return self.feed.reconnects if self.feed is not None else 0


class Subscribing:
    """``async with hub.subscribe(…) as subscription``: joins on entry, leaves on exit.

    A class rather than a generator-based context manager: thousands of these live as long
    as their subscribers, and this is the smaller object."""

    __slots__ = ("args", "hub", "subscription")

    def __init__(
        self,
        hub: Hub,
        db: str,
        since: Any,
        kind: str,
        options: dict[str, Any],
        viewer: Viewer | None,
    ) -> None:
        self.hub = hub
        self.args = (db, since, kind, options, viewer)
        self.subscription: Subscription | None = None

    async def __aenter__(self) -> Subscription:
        self.subscription = await self.hub.join(*self.args)
        return self.subscription

    async def __aexit__(self, *exc_info: object) -> None:
        self.leave()

    def leave(self) -> None:
        """Unsubscribe now, before the ``async with`` ends (once: leaving it does no more)."""
        subscription, self.subscription = self.subscription, None
        if subscription is not None:
            self.hub.leave(subscription)


class Hub:
    """Subscriptions to databases' changes, sharing one upstream feed per database and filter,
    each from ``source``."""

    def __init__(
        self,
        source: ChangeSource,
        *,
        queue_limit: int = 1_000,
        max_subscribers: int = 10_000,
        linger: float = 30.0,
        heartbeat: float = 10.0,
    ) -> None:
        self.source = source
        self.queue_limit = queue_limit
        self.max_subscribers = max_subscribers
        self.linger = linger
        self.heartbeat = heartbeat
        self.stats = HubStats()
        self.upstreams: dict[tuple[str, str, Hashable], Upstream] = {}
        self.subscribers = 0
        self.upstreams_started = 0
        self._closing = False
        self._ending: list[Upstream] = []
        self._catching_up: dict[Subscription, asyncio.Future] = {}

    def subscribe(
        self,
        db: str,
        *,
        since: Any = "now",
        kind: str = "websocket",
        viewer: Viewer | None = None,
        **options: Any,
    ) -> Subscribing:
        """Follow ``db``'s changes from ``since`` (a seq, 0 or ``"now"``) while inside
        ``async with hub.subscribe(…) as subscription``.

        ``options`` select the feed: include_docs, filter, doc_ids, selector, view, style.
        With a ``viewer``, the feed is read as that viewer, shared only with subscribers
        who are the same viewer (for a filter function, which may decide by ``req.userCtx``).
        Entering raises HubFull past ``max_subscribers``; leaving always unsubscribes.
        """
        return Subscribing(self, db, since, kind, options, viewer)

    async def join(
        self,
        db: str,
        since: Any,
        kind: str,
        options: dict[str, Any],
        viewer: Viewer | None = None,
    ) -> Subscription:
        """A new subscription to ``db``'s shared feed; ``leave`` must follow."""
        if self.subscribers >= self.max_subscribers or self._closing:
            raise HubFull(f"{self.subscribers} subscribers already")
        options, accepts = local_filter(options)
        subscription = Subscription(kind, self.queue_limit, self.stats, accepts)
        self._count(kind, +1)
        try:
            upstream = await self._upstream(db, options, viewer)
        except BaseException:
            self._count(kind, -1)
            raise
        subscription.upstream = upstream
        upstream.subscribers.add(subscription)
        upstream.idle_since = None
        if upstream.ended:
            subscription.close(upstream.ended)
        catch_up = asyncio.ensure_future(self._catch_up(upstream, subscription, since))
        self._catching_up[subscription] = catch_up
        catch_up.add_done_callback(lambda _: self._catching_up.pop(subscription, None))
        return subscription

    def leave(self, subscription: Subscription) -> None:
        self._count(subscription.kind, -1)
        catch_up = self._catching_up.pop(subscription, None)
        if catch_up is not None:
            catch_up.cancel()
        upstream = subscription.upstream
        if upstream is not None:
            upstream.subscribers.discard(subscription)
            if not upstream.subscribers:
                self._linger(upstream)

    async def _upstream(self, db: str, options: dict[str, Any], viewer: Viewer | None) -> Upstream:
        key = (db, ujson.dumps(sorted(options.items())), viewer and viewer.identity)
        upstream = self.upstreams.get(key)
        if upstream is None or upstream.ended:
            source = viewer.source if viewer else self.source
            upstream = Upstream(source, db, options, self.heartbeat)
            self.upstreams[key] = upstream
            self.upstreams_started += 1
        try:
            await upstream.start()
        except BaseException:
            if self.upstreams.get(key) is upstream and not upstream.subscribers:
                del self.upstreams[key]
                upstream.end(Closed("not started", 1011))
                self._ended(upstream)
            raise
        return upstream

    async def _catch_up(self, upstream: Upstream, subscription: Subscription, since: Any) -> None:
        try:
            last_seq = upstream.last_seq
            if since != "now":
                last_seq = await self._send_backlog(upstream, subscription, since)
            subscription.go_live(last_seq)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("backlog of %s since %r failed: %s", upstream.db, since, exc)
            subscription.close(Closed(f"backlog failed: {getattr(exc, 'error', exc)}", 1011))

    async def _send_backlog(
        self, upstream: Upstream, subscription: Subscription, since: Any
    ) -> Any:
        while not subscription.closed:
            page = await upstream.source.page(upstream.db, since, BACKLOG_PAGE, upstream.options)
            accepts = subscription.accepts
            rows = [row for row in page["results"] if accepts is None or accepts(row)]
            await subscription.backlog([(row, encode(row)) for row in rows])
            since = page["last_seq"]
            if len(page["results"]) < BACKLOG_PAGE:
                break
        return since

    def _linger(self, upstream: Upstream) -> None:
        """Its last subscriber has left: stop the feed in ``linger`` seconds unless one joins.

        One timer per feed, not one per leave: subscribers that come and go by the thousand
        would otherwise keep a timer each alive for ``linger`` seconds."""
        loop = asyncio.get_running_loop()
        upstream.idle_since = loop.time()
        if upstream.linger_timer is None:
            upstream.linger_timer = loop.call_later(self.linger, self._close_if_idle, upstream)

    def _close_if_idle(self, upstream: Upstream) -> None:
        """Stop a feed nobody has used for ``linger`` seconds; look again later if it was
        used in the meantime and is idle again."""
        upstream.linger_timer = None
        idle_since = upstream.idle_since
        if upstream.subscribers or idle_since is None:
            return
        loop = asyncio.get_running_loop()
        left = idle_since + self.linger - loop.time()
        if left > self.linger * 0.01:  # a timer may fire a clock tick early: that is on time
            upstream.linger_timer = loop.call_later(left, self._close_if_idle, upstream)
            return
        upstream.end(Closed("idle", 1000))
        self._ended(upstream)
        for key, value in list(self.upstreams.items()):
            if value is upstream:
                del self.upstreams[key]

    def _ended(self, upstream: Upstream) -> None:
        """Remember a stopped feed until it has let go of its connection."""
        self._ending = [u for u in self._ending if u.stopping]
        self._ending.append(upstream)

    def _count(self, kind: str, delta: int) -> None:
        self.subscribers += delta
        by_kind = self.stats.subscribers_by_kind
        by_kind[kind] = by_kind.get(kind, 0) + delta

    @property
    def reconnects(self) -> int:
        return sum(upstream.reconnects for upstream in self.upstreams.values())

    def close(self) -> None:
        """Shutting down: refuse new subscribers, end every subscription (1001) and feed."""
        self._closing = True
        for upstream in list(self.upstreams.values()):
            upstream.end(GOING_AWAY)
            self._ended(upstream)
        self.upstreams.clear()

    async def wait_closed(self) -> None:
        """Wait until the feeds that were stopped have let go of their connections."""
        for upstream in self._ending:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await upstream.stopped()
        self._ending.clear()
