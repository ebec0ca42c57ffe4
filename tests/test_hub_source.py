"""The hub on an injected change source: a scripted one (``tests.scripted``), which says
exactly what the upstream feed brings and when, and the real ones on every backend.

Subscribing and leaving 10,000 times leaves memory where it was: the objects the garbage
collector tracks and the bytes tracemalloc sees are counted after a warm-up and at the end,
and may not grow by more than a small fraction of one object per cycle.
"""

from __future__ import annotations

import asyncio
import gc
import os
import tracemalloc
from typing import Any

import pytest

from service.couch import Couch
from service.hub import CaughtUp, Hub, Subscription
from service.sources import CouchSource
from tests.scripted import ScriptedSource

CYCLES = 10_000
WARM_UP = 1_000
# What 9,000 cycles may leave behind: less than one object per 30 cycles, less than 8 bytes a
# cycle. A cycle that kept anything of its own (a subscription, a timer, a task) leaves more.
MAX_NEW_OBJECTS = 300
MAX_NEW_BYTES = 64 * 1024
MAX_NEW_RSS = 8 * 1024 * 1024  # the process as a whole, allocator slack included


async def until_caught_up(subscription: Subscription) -> tuple[list[bytes], Any]:
    """The rows a subscription is sent before its caught-up marker, and the marker's seq."""
    rows: list[bytes] = []
    while True:
        for item in await subscription.next():
            if isinstance(item, CaughtUp):
                return rows, item.last_seq
            rows.append(item)


@pytest.mark.gen_test(timeout=30)
async def test_a_late_subscriber_gets_backlog_then_live_rows_of_a_scripted_feed_once():
    source = ScriptedSource()
    source.emit(*(f"old-{i}" for i in range(1_200)))  # three backlog pages
    hub = Hub(source, linger=0)
    # The first subscriber starts the upstream feed; the late one joins it from seq 0.
    async with hub.subscribe("db", since="now"), hub.subscribe("db", since=0) as late:
        live = source.emit("live-0", "live-1")  # arrive while it catches up: held
        rows, last_seq = await until_caught_up(late)
        source.emit("after")
        after = await late.next()
    assert source.pages == 3
    assert len(rows) == 1_200 + 2  # the backlog already holds the two live rows…
    held = [item for item in after if not isinstance(item, CaughtUp)]
    assert [item for item in held if b"live-" in item] == []  # …which are not sent twice
    assert [b"after" in item for item in held] == [True]
    assert last_seq == live[-1]["seq"]
    hub.close()
    await hub.wait_closed()


def _live_objects() -> tuple[int, int, int]:
    """Objects the collector tracks, bytes tracemalloc traces, and the resident set size."""
    gc.collect()
    with open("/proc/self/statm") as statm:
        rss = int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    return len(gc.get_objects()), tracemalloc.get_traced_memory()[0], rss


async def _cycle(hub: Hub, db: str, index: int, backlog_every: int) -> None:
    """One subscriber joins and leaves; every ``backlog_every``-th reads a backlog first."""
    since: Any = 0 if index % backlog_every == 0 else "now"
    async with hub.subscribe(db, since=since) as subscription:
        if since == 0:
            await until_caught_up(subscription)
        else:
            await asyncio.sleep(0)  # its catch-up task starts, and is cancelled as it leaves


async def _cycles_leave_memory_flat(hub: Hub, db: str, backlog_every: int) -> None:
    tracemalloc.start()
    try:
        for index in range(WARM_UP):
            await _cycle(hub, db, index, backlog_every)
        objects, traced, rss = _live_objects()
        for index in range(WARM_UP, CYCLES):
            await _cycle(hub, db, index, backlog_every)
        objects_after, traced_after, rss_after = _live_objects()
    finally:
        tracemalloc.stop()
    assert hub.subscribers == 0
    assert objects_after - objects <= MAX_NEW_OBJECTS
    assert traced_after - traced <= MAX_NEW_BYTES
    assert rss_after - rss <= MAX_NEW_RSS


@pytest.mark.gen_test(timeout=60)
async def test_subscribe_and_close_cycles_on_a_scripted_feed_leave_memory_flat():
    source = ScriptedSource()
    source.emit(*(f"doc-{i}" for i in range(10)))
    hub = Hub(source)  # the default linger: the feed outlives each of its subscribers
    await _cycles_leave_memory_flat(hub, "db", backlog_every=10)
    assert hub.upstreams_started == 1
    hub.close()
    await hub.wait_closed()


@pytest.mark.gen_test(timeout=60)
async def test_subscribe_and_close_cycles_on_the_backend_leave_memory_flat(
    server_url, bdb, db_name
):
    bdb.save([{"_id": f"doc-{i}"} for i in range(10)])
    async with Couch(server_url) as couch:
        hub = Hub(CouchSource(couch))
        await _cycles_leave_memory_flat(hub, db_name, backlog_every=500)
        assert hub.upstreams_started == 1
        hub.close()
        await hub.wait_closed()
