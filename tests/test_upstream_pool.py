"""The client's connections to a backend are bounded: ``max_connections`` counts every request,
those whose answers are read as they arrive (views, ``_all_docs``, attachments, relays)
included; only changes feeds, which hold a connection for as long as they run, have a pool of
their own, so that open feeds never keep a request from being answered.

Connections are counted from ``/proc`` (``tests.sockets``): this process's established TCP
connections to the backend's port, less those open before the test began.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from urllib.parse import urlsplit

import pytest
from tornado.httpclient import AsyncHTTPClient

from service.couch import Couch
from service.couch.protocol import Request
from tests.sockets import established_to

pytestmark = pytest.mark.skip_on("embedded", reason="embedded: in-process, no connection to count")

LIMIT = 3
STREAMS = 24
DOCS = 200


@pytest.fixture
def port(server_url) -> int:
    return urlsplit(server_url).port


@pytest.fixture
def filled(bdb):
    """The fresh database with DOCS documents, a view of them, and one with an attachment."""
    bdb.save([{"_id": f"doc-{i:04}", "n": i, "text": "x" * 200} for i in range(DOCS)])
    bdb.save({"_id": "_design/d", "views": {"by_n": {"map": "function (doc) { emit(doc.n); }"}}})
    doc = bdb.get("doc-0000")
    bdb.put_attachment(doc, b"a" * 100_000, "blob", "application/octet-stream")
    return bdb


class Sampler:
    """The most connections to ``port`` seen at once (beyond those open at the start), looked
    at on every turn of a task that runs until ``stop()``."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.before = established_to(port)
        self.most = 0
        self._task = asyncio.ensure_future(self._run())

    def ours(self) -> set[int]:
        return established_to(self.port) - self.before

    def look(self) -> int:
        count = len(self.ours())
        self.most = max(self.most, count)
        return count

    async def _run(self) -> None:
        while True:
            self.look()
            await asyncio.sleep(0.005)

    async def stop(self) -> int:
        self._task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await self._task
        self.look()
        return self.most


async def until(condition: Callable[[], bool], what: str, timeout: float = 30) -> None:
    """Wait for ``condition()``, failing with ``what`` after ``timeout`` seconds."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)
    assert condition(), what


@pytest.mark.gen_test(timeout=60)
async def test_streamed_answers_never_hold_more_than_max_connections(filled, server_url, port):
    """STREAMS views, _all_docs, attachments and relays opened at once, each held unread for a
    while: LIMIT connections are made, the other requests wait their turn, and all succeed."""
    name = filled.name
    sampler = Sampler(port)
    opened = 0
    go = asyncio.Event()
    async with Couch(server_url, max_connections=LIMIT) as couch:
        db = couch[name]
        openers = [
            lambda: db.stream_view("d/by_n", include_docs=True),
            lambda: db.stream_view("_all_docs", include_docs=True),
            lambda: db.stream_attachment("doc-0000", "blob"),
            lambda: couch.relay("GET", f"/{name}/_all_docs?include_docs=true", {}),
        ]

        async def one(index: int) -> bytes:
            nonlocal opened
            body = await openers[index % len(openers)]()
            opened += 1
            await go.wait()
            try:
                return await body.read_all()
            finally:
                body.close()

        reads = asyncio.gather(*(one(i) for i in range(STREAMS)))
        await until(lambda: opened >= LIMIT, "no stream was opened")
        go.set()
        bodies = await reads
        # Kept alive after the burst: no more than the pool may hold.
        assert len(sampler.ours()) <= LIMIT
    assert await sampler.stop() <= LIMIT
    for index, body in enumerate(bodies):
        if index % len(openers) == 2:
            assert body == b"a" * 100_000
        else:
            assert len(json.loads(body)["rows"]) == DOCS + (index % len(openers) != 0)


@pytest.mark.gen_test(timeout=60)
async def test_open_feeds_take_no_connection_from_requests(filled, server_url, port):
    """More continuous feeds than ``max_connections``, all running: each has a connection of
    its own, and requests (whole and streamed) still get theirs."""
    feeds_wanted = LIMIT + 2
    sampler = Sampler(port)
    async with Couch(server_url, max_connections=LIMIT) as couch:
        db = couch[filled.name]
        seen: list[set[str]] = [set() for _ in range(feeds_wanted)]
        feeds = [
            db.changes(
                feed="continuous",
                since="now",
                heartbeat=1,
                callback=lambda seq, rows, got=got: got.update(row["id"] for row in rows),
            )
            for got in seen
        ]
        try:
            await db.save({"_id": "probe"})
            await until(lambda: all("probe" in got for got in seen), "a feed missed the probe")
            assert len(sampler.ours()) >= feeds_wanted
            results = await asyncio.gather(
                *(db.get(f"doc-{i:04}") for i in range(10)),
                *(db.view("d/by_n", limit=5) for _ in range(5)),
            )
            assert [doc["n"] for doc in results[:10]] == list(range(10))
            assert all(len(view.rows) == 5 for view in results[10:])
        finally:
            for feed in feeds:
                feed.stop()
    assert await sampler.stop() <= feeds_wanted + LIMIT


def test_a_request_for_a_live_feed_says_so():
    """Which requests go to the feeds' pool: those whose answer stays open for news."""
    assert Request("GET", "/db/_changes", {"feed": "continuous"}).is_feed
    assert Request("GET", "/db/_changes?feed=longpoll&since=now").is_feed
    assert Request("GET", "/_db_updates?feed=eventsource").is_feed
    assert not Request("GET", "/db/_changes", {"feed": "normal"}).is_feed
    assert not Request("GET", "/db/_changes?since=0").is_feed
    assert not Request("GET", "/db/_design/d/_view/v", {"limit": "5"}).is_feed


@pytest.mark.gen_test(timeout=60)
async def test_views_through_settee_hold_at_most_couch_connections(filled, start_settee, port):
    """STREAMS clients query a view through settee at once: settee opens at most
    ``couch_connections`` connections to the backend, and every client gets every row."""
    settee = start_settee(couch_connections=LIMIT)
    url = f"{settee.url}/{filled.name}/_design/d/_view/by_n?include_docs=true"
    client = AsyncHTTPClient(force_instance=True, max_clients=STREAMS)
    try:
        # settee's own first look at the backend, done before connections are counted.
        assert (await client.fetch(url, headers=settee.credentials)).code == 200
        sampler = Sampler(port)
        answers = await asyncio.gather(
            *(client.fetch(url, headers=settee.credentials) for _ in range(STREAMS))
        )
    finally:
        client.close()
    # Kept alive after the burst: no more than the pool may hold.
    assert len(sampler.ours()) <= LIMIT
    assert await sampler.stop() <= LIMIT
    assert {len(json.loads(answer.body)["rows"]) for answer in answers} == {DOCS}
