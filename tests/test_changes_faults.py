"""A ChangesFeed survives its server being killed and restarted, and loses no change.

A server of the test's own that keeps its data on disk (``disk_server``: a pouchdb-server, or
a CouchDB node started from COUCHDB_HOME) is killed with SIGKILL and started again on the same
port three times while a writer keeps writing. Every document the server acknowledged, before,
during and after the faults, must reach the feed's callback, exactly once.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from service.couch import Couch, blocking
from tests.faults import FAULTS, Writer, assert_everything_delivered_once, run_faults


@pytest.mark.parametrize("latency", [0, 0.2])
@pytest.mark.gen_test(timeout=120)
async def test_async_feed_loses_nothing_across_restarts(disk_server, latency):
    blocking.Couch(disk_server.url).create("faults")
    writer = Writer(disk_server.url)
    for i in range(20):
        writer.write(f"before-{i:03}")
    received: list[str] = []
    async with Couch(disk_server.url) as couch:
        feed = couch["faults"].changes(
            feed="continuous",
            since=0,
            latency=latency,
            heartbeat=0.5,
            callback=lambda seq, rows: received.extend(row["id"] for row in rows),
        )
        writer.thread.start()
        await asyncio.to_thread(run_faults, disk_server, writer)
        writer.stop.set()
        await asyncio.to_thread(writer.thread.join)
        for i in range(20):
            await asyncio.to_thread(writer.write, f"after-{i:03}")
        deadline = time.monotonic() + 60
        while set(writer.acked) - set(received) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        feed.stop()
    assert feed.reconnects >= FAULTS
    assert any(doc_id.startswith("during-") for doc_id in writer.acked)
    assert_everything_delivered_once(writer, received)


def test_threaded_feed_loses_nothing_across_restarts(disk_server):
    blocking.Couch(disk_server.url).create("faults")
    writer = Writer(disk_server.url)
    for i in range(20):
        writer.write(f"before-{i:03}")
    received: list[str] = []
    feed = blocking.Database(f"{disk_server.url}/faults").changes(
        feed="continuous",
        since=0,
        latency=0,
        heartbeat=0.5,
        callback=lambda seq, rows: received.extend(row["id"] for row in rows),
    )
    writer.thread.start()
    run_faults(disk_server, writer)
    writer.stop.set()
    writer.thread.join()
    for i in range(20):
        writer.write(f"after-{i:03}")
    deadline = time.monotonic() + 60
    while set(writer.acked) - set(received) and time.monotonic() < deadline:
        time.sleep(0.1)
    feed.stop()
    feed.wait(10)
    assert feed.reconnects >= FAULTS
    assert_everything_delivered_once(writer, received)
