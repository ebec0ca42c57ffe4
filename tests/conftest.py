"""Fixtures, layered: a server (pouchdb-server, or COUCHDB_URL) → a fresh database per test.

Set-up and tear-down use the blocking client, so they need no event loop; tests then use
whichever face they are about. Async tests run on pytest-tornado's ``io_loop``.
"""

from __future__ import annotations

import contextlib
import os
import uuid

import pytest

from service.couch import Couch, CouchError, blocking
from tests.servers import PouchServer


@pytest.fixture(scope="session")
def server_url():
    """The URL of the CouchDB-compatible server every test talks to."""
    if url := os.environ.get("COUCHDB_URL"):
        yield url.rstrip("/")
        return
    server = PouchServer().start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def backend(server_url) -> str:
    """``couchdb`` or ``pouchdb``: for the few tests where the two rightly differ."""
    with blocking.Couch(server_url) as couch:
        welcome = couch.info()
    return "couchdb" if "couchdb" in welcome else "pouchdb"


@pytest.fixture(scope="session")
def bcouch(server_url):
    """A blocking client on the test server."""
    with blocking.Couch(server_url) as couch:
        yield couch


@pytest.fixture
def db_name(bcouch) -> str:
    """The name of a fresh, empty database, deleted after the test."""
    name = "test-" + uuid.uuid4().hex[:12]
    bcouch.create(name)
    yield name
    with contextlib.suppress(CouchError):
        bcouch.delete(name)


@pytest.fixture
def bdb(bcouch, db_name) -> blocking.Database:
    """The fresh database, through the blocking face."""
    return bcouch[db_name]


@pytest.fixture
def couch(server_url, io_loop):
    """An async client, closed after the test."""
    client = Couch(server_url)
    yield client
    io_loop.run_sync(client.close)


@pytest.fixture
def db(couch, db_name):
    """The fresh database, through the async face."""
    return couch[db_name]
