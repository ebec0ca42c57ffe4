"""Fixtures, layered: a server (pouchdb-server, or COUCHDB_URL) → a fresh database per test.

Set-up and tear-down use the blocking client, so they need no event loop; tests then use
whichever face they are about. Async tests run on pytest-tornado's ``io_loop``.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPResponse
from tornado.testing import bind_unused_port

from service.app import make_app, make_hub
from service.couch import Couch, CouchError, blocking
from service.httpserver import Server
from service.hub import Hub
from service.inflight import InFlight
from service.metrics import Metrics
from service.settings import Settings
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


@pytest.fixture
def disk_server():
    """A pouchdb-server of this test's own that keeps its data on disk, to kill and restart."""
    server = PouchServer(in_memory=False).start()
    try:
        yield server
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


@dataclass
class Service:
    """A settee server in this process, on a free port, with its collaborators."""

    url: str
    settings: Settings
    metrics: Metrics
    in_flight: InFlight
    hub: Hub

    def ws_url(self, db: str, query: str = "") -> str:
        """The WebSocket changes feed of ``db``; ``query`` is appended (``&since=0…``)."""
        return self.url.replace("http://", "ws://") + f"/{db}/_changes?feed=websocket{query}"

    async def fetch(
        self, method: str, path: str, body: Any = None, headers: dict | None = None, **kwargs: Any
    ) -> HTTPResponse:
        """A request that returns error responses instead of raising them.

        A dict or list body is sent as JSON; a str or bytes body as is.
        """
        headers = dict(headers or {})
        if isinstance(body, dict | list):
            body = json.dumps(body)
            headers.setdefault("Content-Type", "application/json")
        if body is None and method in ("POST", "PUT") and "body_producer" not in kwargs:
            body = b""
        return await AsyncHTTPClient().fetch(
            self.url + path,
            method=method,
            body=body,
            headers=headers,
            raise_error=False,
            allow_nonstandard_methods=True,
            **{"request_timeout": 60, **kwargs},
        )


def answer(response: HTTPResponse) -> Any:
    """The JSON body of a response."""
    return json.loads(response.body)


def assert_every_change_once(rows: list[dict], expected_ids: list[str]) -> None:
    """Each expected change arrived exactly once, and one document's revisions in order.

    That is what CouchDB promises, not write order across documents: it shards a database
    (q=2 by default) and its ``_changes`` interleaves the shards. ``expected_ids`` names a
    document once per change expected of it.
    """
    assert sorted(row["id"] for row in rows) == sorted(expected_ids)
    generations: dict[str, list[int]] = {}
    for row in rows:
        generation = int(row["changes"][0]["rev"].split("-")[0])
        generations.setdefault(row["id"], []).append(generation)
    for doc_id, seen in generations.items():
        assert seen == sorted(set(seen)), f"{doc_id}: revisions out of order: {seen}"


@pytest.fixture
def start_settee(server_url, io_loop):
    """Start settee servers on the test backend (settings overridable), stopped after the test."""
    started: list[tuple[Server, Couch, Hub]] = []

    def start(**overrides: Any) -> Service:
        settings = Settings(**{"couch_url": server_url, **overrides})
        couch = Couch(settings.couch_url, settings.couch_auth, timeout=settings.couch_timeout)
        metrics, in_flight = Metrics(), InFlight()
        hub = make_hub(settings, couch)
        metrics.watch_hub(hub)
        app = make_app(settings, couch, metrics, in_flight, hub)
        server = Server(app, xheaders=settings.xheaders, max_body_size=settings.max_body_size)
        sock, port = bind_unused_port()
        server.add_sockets([sock])
        started.append((server, couch, hub))
        return Service(f"http://127.0.0.1:{port}", settings, metrics, in_flight, hub)

    yield start
    for server, couch, hub in started:
        server.stop()
        hub.close()
        io_loop.run_sync(hub.wait_closed)
        io_loop.run_sync(server.close_all_connections)
        io_loop.run_sync(couch.close)


@pytest.fixture
def settee(start_settee) -> Service:
    """settee with its default settings, serving the test backend."""
    return start_settee()
