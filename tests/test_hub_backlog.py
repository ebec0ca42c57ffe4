"""A backlog of 50,000 changes, found by the upstream feed when its backend comes back, reaches
100 WebSocket subscribers whole.

To make it a backlog for certain (not changes that trickle in while the feed reconnects), the
backend of the test's own is killed, the changes are written by a second server process on the
same data directory and port of its own, and that one is killed before the first starts again
on its port: the upstream feed resumes from its last seq into 50,000 changes at once.

The hub does the same whatever its backend; so 50,000 are written on the default backend,
the embedded store, and 10,000 on pouchdb-server, where the same run takes a minute more
(SETTEE_FULL_CONTENTION=1 writes 50,000 there too).
"""

from __future__ import annotations

import asyncio
import os

import pytest

from service.couch import blocking
from tests.servers import PouchServer, SetteeServer
from tests.test_hub_load import assert_same_changes_in_the_same_order, collectors

CHANGES = 50_000
FEWER_CHANGES = 10_000  # on pouchdb-server, unless SETTEE_FULL_CONTENTION=1
SUBSCRIBERS = 100
BULK = 5_000


def _twin(server: PouchServer | SetteeServer) -> PouchServer | SetteeServer:
    """Another server on ``server``'s data directory, on a port of its own."""
    twin = PouchServer(in_memory=False) if server.kind == "pouchdb" else SetteeServer()
    twin.workdir = server.workdir
    return twin


def _write_backlog(server: PouchServer | SetteeServer, changes: int) -> list[str]:
    """Kill ``server``, write ``changes`` documents through a twin, and start ``server``
    again."""
    server.kill()
    twin = _twin(server).start()
    try:
        db = blocking.Couch(twin.url)["backlog"]
        ids = [f"doc-{i:06}" for i in range(changes)]
        for start in range(0, changes, BULK):
            db.save([{"_id": doc_id} for doc_id in ids[start : start + BULK]])
    finally:
        twin.kill()
    server.start()
    return ids


@pytest.mark.skip_on("couchdb", reason="a second CouchDB node on the same data takes too long")
@pytest.mark.gen_test(timeout=180)
async def test_a_50000_change_backlog_after_a_restart_reaches_100_subscribers(
    start_settee, disk_server
):
    blocking.Couch(disk_server.url).create("backlog")
    settee = start_settee(couch_url=disk_server.url, couch_timeout=5)
    subscribers = await collectors(settee, "backlog", SUBSCRIBERS, "&since=now&latency=50")
    full = disk_server.kind == "embedded" or os.environ.get("SETTEE_FULL_CONTENTION") == "1"
    ids = await asyncio.to_thread(_write_backlog, disk_server, CHANGES if full else FEWER_CHANGES)
    try:
        for subscriber in subscribers:
            await subscriber.wait_for(set(ids), timeout=120)
    finally:
        for subscriber in subscribers:
            subscriber.close()
    assert settee.hub.upstreams_started == 1
    assert settee.hub.reconnects >= 1
    assert settee.hub.stats.slow_consumer_closes == 0
    # Whole and once each, every subscriber in the one order of the upstream feed.
    assert_same_changes_in_the_same_order(subscribers, ids)
