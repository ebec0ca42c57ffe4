"""Several CouchDB nodes of one cluster behind one client: which node a request goes to, and
which node is taken out after a failure and probed back in.

``Couch("http://n1:5984,http://n2:5984,http://n3:5984")`` spreads its requests over the nodes
that answer (round robin). A node that cannot be reached is marked down and skipped; once it
is down, a probe asks its ``/_up`` every ``PROBE_INTERVAL`` seconds and puts it back when it
answers 200 (or 401/403, to a probe without credentials). ``Cluster`` holds that state: two
clients of the same nodes (settee's own and its clients') share one by passing ``cluster=``,
so that what one learns the other knows.

A request that failed on a node is sent to the next one only when that cannot apply it twice:

- any request whose connection was refused (nothing reached the node), unless that was a
  second try after a first that met a connection the node had closed (``http1`` sends a
  PUT or DELETE again then; the first may have reached the node);
- a GET, HEAD or OPTIONS whatever happened (they change nothing).

Any other request whose connection dropped may have been applied before the node died: it is
not retried, and fails with ``ServerUnavailable`` (settee answers 503). The client decides:
a PUT or DELETE with the same ``rev`` sent again is safe (a 409 then says the first landed),
a POST to a database (the server picks the id) is not.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import http1
from .errors import ServerUnavailable
from .protocol import Request, Response
from .transport import AsyncTransport

if TYPE_CHECKING:
    from .transport import AsyncBody, Endpoint

PROBE_INTERVAL = 1.0  # seconds between probes of a node that is down
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# /_up's answers of a node that serves: 200, or a refusal of an anonymous probe where
# require_valid_user is on. In maintenance mode it answers 404.
UP = frozenset({200, 401, 403})


@dataclass(slots=True)
class NodeState:
    """What is known of one node: up or down since when, and how often it failed."""

    url: str
    up: bool = True
    since: float = dataclasses.field(default_factory=time.time)
    failures: int = 0


class Cluster:
    """The nodes of one cluster and their health, shared by the clients that reach them."""

    def __init__(self, urls: Sequence[str], probe_interval: float = PROBE_INTERVAL) -> None:
        if len(urls) < 2:
            raise ValueError("a cluster needs two nodes or more")
        if len(set(urls)) != len(urls):
            raise ValueError("a cluster's nodes must differ")
        self.nodes = {url: NodeState(url) for url in urls}
        self.probe_interval = probe_interval
        self.retried = 0  # requests sent again on another node
        self._turn = itertools.count()
        self._probes: dict[str, asyncio.Future[None]] = {}

    @property
    def urls(self) -> tuple[str, ...]:
        return tuple(self.nodes)

    def order(self) -> list[str]:
        """The nodes to try, in turn: those up, from the next in the round, then those down
        (a request is tried on every node before it fails)."""
        up = [url for url, node in self.nodes.items() if node.up]
        down = [url for url, node in self.nodes.items() if not node.up]
        if up:
            start = next(self._turn) % len(up)
            up = up[start:] + up[:start]
        return up + down

    def failed(self, url: str, probe: Callable[[], Any]) -> asyncio.Future[None] | None:
        """``url`` could not be reached: mark it down, and start ``probe()`` (a coroutine that
        returns once the node answers) unless one already runs for it; the probe started."""
        node = self.nodes[url]
        node.failures += 1
        if node.up:
            node.up, node.since = False, time.time()
        if url in self._probes:
            return None
        task = self._probes[url] = asyncio.ensure_future(probe())
        task.add_done_callback(lambda _: self._probes.pop(url, None))
        return task

    def recovered(self, url: str) -> None:
        node = self.nodes[url]
        if not node.up:
            node.up, node.since = True, time.time()

    def status(self) -> dict[str, Any]:
        """Each node's state, as ``/_ready`` shows it."""
        return {
            url: {"up": node.up, "since": round(node.since, 3), "failures": node.failures}
            for url, node in self.nodes.items()
        }


def never_sent(exc: BaseException) -> bool:
    """Whether ``exc`` says the request never reached the node: its connection was refused,
    and not on a second try after a first that met a closed connection (which it may have)."""
    cause = exc.__cause__
    return isinstance(cause, ConnectionRefusedError) and not isinstance(
        cause.__cause__, http1.StaleConnection
    )


def node_down(exc: BaseException) -> bool:
    """Whether ``exc`` says the node is gone (not merely slow, which a timeout may be)."""
    return isinstance(exc, ServerUnavailable) and not isinstance(exc.__cause__, TimeoutError)


def retryable(request: Request, exc: BaseException) -> bool:
    """Whether ``request``, failed with ``exc`` on one node, may be sent to another."""
    if not node_down(exc):
        return False
    if request.body is not None and not isinstance(request.body, bytes | bytearray | memoryview):
        return False  # a streamed body is spent
    return never_sent(exc) or request.method in SAFE_METHODS


class ClusterTransport:
    """An ``AsyncTransport`` for several nodes: each request on a node chosen by the cluster,
    and on the next one after a failure that allows it (see the module's docstring)."""

    def __init__(self, endpoint: Endpoint, node_transport: Callable[[Endpoint], AsyncTransport]):
        assert endpoint.cluster is not None
        self.endpoint = endpoint
        self.cluster = endpoint.cluster
        self._probes: set[asyncio.Future[None]] = set()
        self._nodes = {
            url: node_transport(dataclasses.replace(endpoint, url=url, cluster=None))
            for url in self.cluster.urls
        }

    def describe(self, request: Request) -> str:
        return f"{request.method} {self.endpoint.url}{request.path}"

    def _failed(self, url: str, exc: BaseException) -> None:
        if node_down(exc) and (probe := self.cluster.failed(url, lambda: self._probe(url))):
            self._probes.add(probe)
            probe.add_done_callback(self._probes.discard)

    async def _probe(self, url: str) -> None:
        """Ask ``url``'s ``/_up`` until it answers as a node that serves; then it is up."""
        transport = self._nodes[url]
        while True:
            await asyncio.sleep(self.cluster.probe_interval)
            try:
                body = await transport.open(Request("GET", "/_up"), read_timeout=5.0)
            except ServerUnavailable:
                continue
            body.close()
            if body.status in UP:
                self.cluster.recovered(url)
                return

    def send_then(
        self, request: Request, then: Callable[[Response | BaseException], None]
    ) -> Callable[[], None]:
        """As ``AsyncTransport.send_then``, on one node after another while a failure allows."""
        order = iter(self.cluster.order())
        abandon: list[Callable[[], None]] = []

        def send(url: str) -> None:
            abandon[:] = [self._nodes[url].send_then(request, lambda out: answered(url, out))]

        def answered(url: str, outcome: Response | BaseException) -> None:
            if isinstance(outcome, BaseException):
                self._failed(url, outcome)
                following = next(order, None) if retryable(request, outcome) else None
                if following is not None:
                    self.cluster.retried += 1
                    try:
                        send(following)
                    except BaseException as exc:
                        then(exc)
                    return
            then(outcome)

        send(next(order))
        return lambda: abandon[0]()

    async def open(
        self, request: Request, *, read_timeout: float | None = None, feed: bool = False
    ) -> AsyncBody:
        """As ``AsyncTransport.open``, on one node after another while a failure allows; once
        the head is in, the body is read from that node."""
        order = self.cluster.order()
        for position, url in enumerate(order):
            try:
                return await self._nodes[url].open(request, read_timeout=read_timeout, feed=feed)
            except ServerUnavailable as exc:
                self._failed(url, exc)
                if position == len(order) - 1 or not retryable(request, exc):
                    raise
                self.cluster.retried += 1
        raise AssertionError("a cluster has nodes")

    stream = AsyncTransport.stream  # ``open()`` as a context manager, as a node's

    async def close(self) -> None:
        for probe in list(self._probes):
            probe.cancel()  # it probes through this transport's connections
        for transport in self._nodes.values():
            await transport.close()
