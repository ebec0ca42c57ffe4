"""Streamed views hold one row at a time: memory does not grow with the number of rows.

tracemalloc counts the Python memory allocated while iterating (exact, unlike RSS on a shared
machine). Streaming 4x more rows must not raise the peak, and it must stay far below the
peak of reading the same view whole. bench/stream_memory.py does the same at 1,000,000 rows.
"""

from __future__ import annotations

import asyncio
import logging
import tracemalloc
import uuid
from collections.abc import Callable

import pytest

from tests.waiting import until

# settee's own client suite: run on the backend, and again with settee in between.
pytestmark = pytest.mark.through_settee

ROWS = 40_000
GROWTH_ALLOWED = 1_000_000  # bytes of extra peak for 4x the rows


@pytest.fixture(scope="module")
def big(bcouch):
    """A database of ROWS documents, filled once for the module (the tests only read it)."""
    name = "test-streaming-" + uuid.uuid4().hex[:8]
    db = bcouch.create(name)
    for start in range(0, ROWS, 5_000):
        db.save([{"_id": f"row-{i:06}", "n": i} for i in range(start, start + 5_000)])
    yield db
    bcouch.delete(name)


def peak_while(consume: Callable[[], int], expected: int) -> int:
    tracemalloc.start()
    try:
        assert consume() == expected
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_blocking_iterview_memory_is_flat(big):
    def stream(limit: int) -> Callable[[], int]:
        return lambda: sum(1 for _ in big.iterview("_all_docs", limit=limit))

    quarter = peak_while(stream(ROWS // 4), ROWS // 4)
    full = peak_while(stream(ROWS), ROWS)
    whole = peak_while(lambda: len(big.view("_all_docs")), ROWS)
    assert full < quarter + GROWTH_ALLOWED, (quarter, full)
    assert full * 4 < whole, (full, whole)


def test_async_iterview_memory_is_flat(big, couch, io_loop):
    db = couch[big.name]

    def stream(limit: int) -> Callable[[], int]:
        async def count() -> int:
            return sum([1 async for _ in db.iterview("_all_docs", limit=limit)])

        return lambda: io_loop.run_sync(count)

    peak_while(stream(10), 10)  # open the connection pool outside the measurement
    quarter = peak_while(stream(ROWS // 4), ROWS // 4)
    full = peak_while(stream(ROWS), ROWS)
    assert full < quarter + GROWTH_ALLOWED, (quarter, full)


def test_iterview_rows_match_the_whole_view(big):
    streamed = [(row.id, row.value) for row in big.iterview("_all_docs", skip=10, limit=500)]
    whole = [(row.id, row.value) for row in big.view("_all_docs", skip=10, limit=500)]
    assert streamed == whole and len(streamed) == 500


class CountingRelay:
    """Reads ``path`` (``{}`` becomes the limit) from settee as a client that counts
    ``marker`` in the bytes as they arrive and drops them; ``received`` is the size of the
    last answer, which must be one whole JSON object."""

    def __init__(self, settee, io_loop, path: str, marker: bytes) -> None:
        self.settee, self.io_loop, self.path, self.marker = settee, io_loop, path, marker
        self.received = 0

    def __call__(self, limit: int) -> Callable[[], int]:
        async def count() -> int:
            rows, tail, self.received = 0, b"", 0  # tail: a marker may straddle two chunks

            def drop(chunk: bytes) -> None:
                nonlocal rows, tail
                self.received += len(chunk)
                text = tail + chunk
                rows += text.count(self.marker)
                tail = text[-len(self.marker) + 1 :]

            path = self.path.format(limit)
            response = await self.settee.fetch("GET", path, streaming_callback=drop)
            assert response.code == 200
            assert tail.rstrip().endswith(b"}")
            return rows

        return lambda: self.io_loop.run_sync(count)


def test_the_service_relays_a_view_with_flat_memory(big, start_settee, io_loop):
    """settee (in this process) relays _all_docs to a client that counts and drops the bytes.

    The response is 3.7 MB; the peak stays near 2.4 MB however many rows there are.
    """
    relay = CountingRelay(start_settee(), io_loop, f"/{big.name}/_all_docs?limit={{}}", b'"id":')
    # The first rows fill fixed-size buffers (the client's, the sockets', the test client's);
    # past them, twice the rows must not raise the peak.
    peak_while(relay(10), 10)  # open the connection pools outside the measurement
    half = peak_while(relay(ROWS // 2), ROWS // 2)
    full = peak_while(relay(ROWS), ROWS)
    assert full < half + GROWTH_ALLOWED, (half, full)
    assert full < relay.received, (full, relay.received)  # less than the response: never whole


def test_the_service_relays_a_normal_changes_feed_with_flat_memory(big, start_settee, io_loop):
    """A normal ``_changes`` of every row, relayed by settee (in this process) to a client
    that counts and drops the bytes: twice the rows must not raise the peak. On the embedded
    store, in this process too, that covers the store's reading of the feed."""
    path = f"/{big.name}/_changes?limit={{}}"
    relay = CountingRelay(start_settee(), io_loop, path, b'"seq":')
    peak_while(relay(10), 10)
    half = peak_while(relay(ROWS // 2), ROWS // 2)
    full = peak_while(relay(ROWS), ROWS)
    assert full < half + GROWTH_ALLOWED, (half, full)
    assert full < relay.received, (full, relay.received)


def test_a_client_that_leaves_mid_relay_ends_it_quietly(big, start_settee, io_loop, caplog):
    """The relay stops at the first write that fails: no error is logged, the request stops
    counting as in flight, and the service answers the next request."""
    settee = start_settee()

    async def leave_after_the_first_bytes() -> None:
        host, port = settee.url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(
            f"GET /{big.name}/_all_docs?include_docs=true HTTP/1.1\r\nHost: x\r\n"
            f"{settee.auth_lines}\r\n".encode()
        )
        assert (await reader.read(100)).startswith(b"HTTP/1.1 200")
        writer.close()
        await until(lambda: settee.in_flight.count == 0, what="no request in flight")

    caplog.set_level(logging.WARNING)
    io_loop.run_sync(leave_after_the_first_bytes)
    assert settee.in_flight.count == 0
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    response = io_loop.run_sync(lambda: settee.fetch("GET", f"/{big.name}/_all_docs?limit=1"))
    assert response.code == 200
