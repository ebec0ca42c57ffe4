"""Fixtures, layered: a backend → its server → a fresh database per test.

Every test that talks to a database runs once per backend, its id saying which:
``test_x[embedded]`` on settee's embedded store (in a temporary directory, in this process),
``test_x[pouchdb]`` on a pouchdb-server the fixtures start (in memory), ``test_x[couchdb]`` on
Apache CouchDB, either the one at ``COUCHDB_URL`` or one the fixtures start from the release
that ``COUCHDB_HOME`` names (a release directory or its ``.tar.gz``). Without either, CouchDB
is not tested, and the run says so. ``--backend NAME`` picks one. A test whose feature the
embedded store lacks yet is skipped there by ``@pytest.mark.skip_on("embedded", reason=…)``.

The client suite's modules (marked ``through_settee``) run again with settee in between.

Set-up and tear-down use the blocking client, so they need no event loop; tests then use
whichever face they are about. Async tests run on pytest-tornado's ``io_loop``.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import json
import os
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPResponse
from tornado.testing import bind_unused_port

from service.app import make_app, make_couches, make_hub, make_server
from service.couch import Couch, CouchError, blocking
from service.httpserver import Server
from service.hub import Hub
from service.inflight import InFlight
from service.metrics import Metrics
from service.settings import Settings
from service.store.users import Users
from tests.servers import (
    EMBEDDED_ADMIN,
    CouchServer,
    PouchServer,
    SetteeServer,
    couchdb_release,
)

BACKENDS = ("embedded", "pouchdb", "couchdb")
BACKENDS_KEY = pytest.StashKey[list[str]]()
COUCHDB_SOURCE_KEY = pytest.StashKey[str | None]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--backend",
        action="append",
        choices=BACKENDS,
        help="run the tests on this backend only (repeatable; default: every one available)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "xfail_on(backend, reason): a known failure (strict xfail) on that backend only",
    )
    config.addinivalue_line(
        "markers",
        "skip_on(backend, reason): a feature that backend lacks (skipped there only)",
    )
    config.addinivalue_line(
        "markers",
        "through_settee: settee's own client suite, run again with a settee process between",
    )
    url, home = os.environ.get("COUCHDB_URL"), os.environ.get("COUCHDB_HOME")
    if url:
        source = "the CouchDB at COUCHDB_URL"
        if not home:
            source += " (the tests that kill a CouchDB skip: they need COUCHDB_HOME)"
    elif home:
        source = f"started from COUCHDB_HOME={home}"
    else:
        source = None
    chosen = config.getoption("backend")
    if chosen and "couchdb" in chosen and source is None:
        raise pytest.UsageError("--backend couchdb needs COUCHDB_HOME or COUCHDB_URL")
    available = [name for name in BACKENDS if name != "couchdb" or source]
    config.stash[BACKENDS_KEY] = [name for name in available if name in (chosen or BACKENDS)]
    config.stash[COUCHDB_SOURCE_KEY] = source


def pytest_report_header(config: pytest.Config) -> str:
    source = config.stash[COUCHDB_SOURCE_KEY]
    return f"backends: {', '.join(config.stash[BACKENDS_KEY])}; couchdb: {source or 'none'}"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every test that needs a backend runs on each chosen one; the tests of modules marked
    ``through_settee`` (settee's own client suite) run a second time with settee between."""
    if "backend" in metafunc.fixturenames:
        backends = metafunc.config.stash[BACKENDS_KEY]
        metafunc.parametrize("backend", backends, indirect=True, scope="session")
    if "route" in metafunc.fixturenames and metafunc.definition.get_closest_marker(
        "through_settee"
    ):
        metafunc.parametrize("route", ["direct", "settee"], indirect=True, scope="session")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        backend = getattr(item, "callspec", None) and item.callspec.params.get("backend")
        if backend:  # carried by each of its reports, to the run's summary (in any process)
            item.user_properties.append(("backend", backend))
        for mark in item.iter_markers("xfail_on"):
            if mark.args[0] == backend:
                item.add_marker(pytest.mark.xfail(strict=True, reason=mark.kwargs["reason"]))
        for mark in item.iter_markers("skip_on"):
            if mark.args[0] == backend:
                item.add_marker(pytest.mark.skip(reason=mark.kwargs["reason"]))


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    """The outcomes per backend; and, when there was no CouchDB to test, that there was not."""
    counts: dict[str, dict[str, int]] = {}
    for outcome in ("passed", "failed", "error", "skipped", "xfailed", "xpassed"):
        for report in terminalreporter.stats.get(outcome, []):
            where = dict(getattr(report, "user_properties", ())).get("backend", "no backend")
            counts.setdefault(where, {}).setdefault(outcome, 0)
            counts[where][outcome] += 1
    terminalreporter.write_sep("-", "outcomes per backend")
    for where in (*config.stash[BACKENDS_KEY], "no backend"):
        tally = ", ".join(f"{n} {outcome}" for outcome, n in counts.get(where, {}).items())
        if tally or where != "no backend":
            terminalreporter.write_line(f"{where}: {tally or 'nothing run'}")
    figures = [
        (report.nodeid, value)
        for outcome in ("passed", "failed")
        for report in terminalreporter.stats.get(outcome, [])
        if report.when == "call"
        for name, value in report.user_properties
        if name == "figures"
    ]
    if figures:  # what a test measured (record_property("figures", ...)), shown in any run
        terminalreporter.write_sep("-", "figures")
        for nodeid, value in figures:
            terminalreporter.write_line(f"{nodeid}: {value}")
    if config.stash[COUCHDB_SOURCE_KEY] is None:
        terminalreporter.write_sep(
            "!",
            "NO CouchDB TESTED: set COUCHDB_HOME (a CouchDB release directory or its .tar.gz)"
            " or COUCHDB_URL; only pouchdb-server and the embedded store were tested",
            yellow=True,
            bold=True,
        )


@pytest.fixture(scope="session")
def backend(request) -> str:
    """``embedded``, ``pouchdb`` or ``couchdb``: the backend this run of the test is on."""
    return request.param


@pytest.fixture(scope="session")
def couchdb_home() -> Path:
    """The CouchDB release directory that COUCHDB_HOME names (an archive is unpacked once)."""
    home = os.environ.get("COUCHDB_HOME")
    if not home:
        pytest.skip("a CouchDB that can be killed needs COUCHDB_HOME (a release to start)")
    return couchdb_release(home)


@pytest.fixture(scope="session")
def route(request) -> str:
    """``direct`` to the backend, or ``settee`` in between (``through_settee`` modules)."""
    return getattr(request, "param", "direct")


@pytest.fixture(scope="session")
def server_url(backend_url, route, request):
    """The URL every test's clients talk to: the backend's, or that of a settee process in
    front of it (on embedded: a settee process serving a store of its own)."""
    if route == "direct":
        yield backend_url
        return
    couch_url = None if backend_url.startswith("embedded:") else backend_url
    server = SetteeServer(couch_url=couch_url).start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def backend_url(backend, request):
    """The URL of the backend's server, with credentials if it needs them."""
    if backend == "couchdb" and (url := os.environ.get("COUCHDB_URL")):
        url = url.rstrip("/")
        with blocking.Couch(url) as couch:
            if "couchdb" not in couch.info():
                pytest.fail(f"COUCHDB_URL does not answer as CouchDB: {couch.info()}")
        yield url
        return
    if backend == "embedded":
        with tempfile.TemporaryDirectory(prefix="settee-store-") as directory:
            yield "embedded:" + directory
        return
    if backend == "couchdb":
        server = CouchServer(request.getfixturevalue("couchdb_home")).start()
    else:
        server = PouchServer().start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def disk_server(backend, request):
    """A server of this test's own that keeps its data on disk, to kill and restart.

    On pouchdb: an on-disk pouchdb-server. On couchdb: a CouchDB node started from
    COUCHDB_HOME (the test is skipped with only COUCHDB_URL, a server it may not kill). On
    embedded: a settee process serving its store, so a kill -9 is settee's own.
    """
    if backend == "embedded":
        server = SetteeServer().start()
    elif backend == "couchdb":
        server = CouchServer(request.getfixturevalue("couchdb_home")).start()
    else:
        server = PouchServer(in_memory=False).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def bcouch(server_url):
    """A blocking client on the test server."""
    with blocking.Couch(server_url) as couch:
        yield couch


@pytest.fixture
def target(bcouch) -> Iterator[str]:
    """The name of a database a test may make (a replication's target): deleted afterwards."""
    name = "test-target-" + uuid.uuid4().hex[:8]
    yield name
    if name in bcouch.all_dbs():
        bcouch.delete(name)


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
    """A settee server in this process, on a free port, with its collaborators.

    settee acts for each client with the client's own credentials: the tests' requests carry
    the test server's (its admin's, if it has one) unless they say otherwise.
    """

    url: str
    settings: Settings
    metrics: Metrics
    in_flight: InFlight
    hub: Hub
    auth: tuple[str, str] | None = None

    @property
    def auth_lines(self) -> str:
        """The credentials as request-head lines, for tests that write HTTP by hand."""
        return "".join(f"{name}: {value}\r\n" for name, value in self.credentials.items())

    @property
    def credentials(self) -> dict[str, str]:
        """The ``Authorization`` header of the test server's credentials, if it has any."""
        if not self.auth:
            return {}
        token = base64.b64encode(":".join(self.auth).encode()).decode()
        return {"Authorization": f"Basic {token}"}

    def ws_url(self, db: str, query: str = "", *, anonymous: bool = False) -> str:
        """The WebSocket changes feed of ``db``; ``query`` is appended (``&since=0…``).
        The credentials go in the URL, which Tornado's client turns into Basic auth."""
        url = self.url.replace("http://", "ws://")
        if self.auth and not anonymous:
            user, password = (quote(part, safe="") for part in self.auth)
            url = url.replace("ws://", f"ws://{user}:{password}@")
        return url + f"/{db}/_changes?feed=websocket{query}"

    async def fetch(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: dict | None = None,
        *,
        anonymous: bool = False,
        **kwargs: Any,
    ) -> HTTPResponse:
        """A request that returns error responses instead of raising them.

        A dict or list body is sent as JSON; a str or bytes body as is. It carries the test
        server's credentials unless ``anonymous`` or ``headers`` give others.
        """
        headers = {**({} if anonymous else self.credentials), **(headers or {})}
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


async def close_hub(hub: Hub) -> None:
    hub.close()
    await hub.wait_closed()


@pytest.fixture
def start_settee(server_url, io_loop):
    """Start settee servers on the test backend (settings overridable), stopped after the test."""
    started: list[tuple[Server, Couch, Hub]] = []

    def start(**overrides: Any) -> Service:
        backend = {"couch_url": server_url}
        if server_url.startswith("embedded:"):
            admin = ":".join(EMBEDDED_ADMIN)
            backend = {"couch_url": "", "data_dir": server_url.removeprefix("embedded:")}
            backend["admin"] = admin
        settings = Settings(**{**backend, **overrides})
        if settings.embedded_dir:  # as serving does before it serves
            Users(Path(settings.embedded_dir)).ensure_admin(settings.admin_pair)
        couch, own_couch = make_couches(settings)
        metrics, in_flight = Metrics(), InFlight()
        hub = make_hub(settings, own_couch)
        metrics.watch_hub(hub)
        app = make_app(settings, couch, metrics, in_flight, hub, own_couch)
        server = make_server(app, settings)
        sock, port = bind_unused_port()
        server.add_sockets([sock])
        started.append((server, couch, hub))
        if own_couch is not couch:
            started.append((None, own_couch, None))
        url = f"http://127.0.0.1:{port}"
        auth = settings.admin_pair if settings.embedded_dir else own_couch.endpoint.auth
        return Service(url, settings, metrics, in_flight, hub, auth)

    yield start
    for server, couch, hub in started:
        if server is not None:
            server.stop()
            io_loop.run_sync(functools.partial(close_hub, hub))  # as run.py: on the loop
            io_loop.run_sync(server.close_all_connections)
        io_loop.run_sync(couch.close)


@pytest.fixture
def settee(start_settee) -> Service:
    """settee with its default settings, serving the test backend."""
    return start_settee()
