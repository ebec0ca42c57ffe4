"""Pooled connections left idle are closed before the server closes them, in both faces.

Servers close idle keep-alive connections: pouchdb-server (Node 20) 6 s after its last answer
(Node's keepAliveTimeout of 5 s, checked a second late), CouchDB 3.4 much later (still open
after 12 s). A request written as the server closes its end is lost, and only an idempotent
one may be sent again; a POST fails. The client closes idle connections first
(``idle_timeout``, 4 s by default), so that race is never run.

Which sockets are the client's is read from ``/proc``: this process's TCP connections to the
server's port, by local port.
"""

from __future__ import annotations

import asyncio
import time
from urllib.parse import urlsplit

import pytest

from service.couch import Couch, ServerUnavailable, blocking
from tests.sockets import ESTABLISHED, connections_to

pytestmark = pytest.mark.skip_on("embedded", reason="embedded: in-process, no connection to expire")


@pytest.fixture
def server_port(server_url) -> int:
    return urlsplit(server_url).port


@pytest.mark.gen_test(timeout=15)
async def test_async_idle_connections_are_closed_after_idle_timeout(server_url, server_port):
    before = set(connections_to(server_port))
    async with Couch(server_url, idle_timeout=0.3) as couch:
        await asyncio.gather(*(couch.info() for _ in range(3)))  # three at once: three made
        ours = set(connections_to(server_port)) - before
        assert len(ours) == 3
        assert {connections_to(server_port)[port] for port in ours} == {ESTABLISHED}
        deadline = asyncio.get_running_loop().time() + 3  # well before pouchdb-server's 6 s
        while ours & set(connections_to(server_port)):
            assert asyncio.get_running_loop().time() < deadline, "idle connections stayed"
            await asyncio.sleep(0.05)
        assert (await couch.info()).version
        assert len(set(connections_to(server_port)) - before - ours) == 1


def test_async_post_after_an_idle_longer_than_the_servers_keep_alive(server_url, db_name, io_loop):
    couch = Couch(server_url)  # the default idle_timeout, 4 s
    db = couch[db_name]
    try:
        io_loop.run_sync(lambda: db.save({"n": 1}))
        # The loop does not run while this sleeps: nothing sees the server close its end
        # (pouchdb-server does 6 s after its last answer), as in a process busy elsewhere.
        time.sleep(6.5)
        saved = io_loop.run_sync(lambda: db.save({"n": 2}))  # a POST, never sent twice
        assert len(saved.resolved) == 1
        assert io_loop.run_sync(lambda: db.get(next(iter(saved.resolved)))).n == 2
        assert couch._runner.transport._pool.retried == 0  # no stale connection was tried
    finally:
        io_loop.run_sync(couch.close)


def test_blocking_idle_connection_is_replaced_after_idle_timeout(server_url, server_port):
    before = set(connections_to(server_port))
    with blocking.Couch(server_url, idle_timeout=0.3) as couch:
        couch.info()
        first = set(connections_to(server_port)) - before
        assert len(first) == 1
        couch.info()
        assert set(connections_to(server_port)) - before == first  # kept alive meanwhile
        time.sleep(0.5)
        couch.info()
        now = set(connections_to(server_port)) - before
        assert len(now) == 1 and now != first  # the old one closed, a new one made


def test_without_expiry_the_same_post_is_lost(server_url, db_name, io_loop, backend):
    """Why idle_timeout exists: the race above, run with expiry turned off."""
    if backend == "couchdb":
        pytest.skip("CouchDB keeps idle connections open longer than this test waits")
    couch = Couch(server_url, idle_timeout=None)
    db = couch[db_name]
    try:
        io_loop.run_sync(lambda: db.save({"n": 1}))
        time.sleep(6.5)
        with pytest.raises(ServerUnavailable, match="closed a kept-alive connection"):
            io_loop.run_sync(lambda: db.save({"n": 2}))
    finally:
        io_loop.run_sync(couch.close)
