"""settee deployed as config/ describes it: two settee processes behind a real nginx.

nginx runs the shipped ``config/nginx.conf`` (ports and paths substituted by
``tests/nginx.py``; the feeds' read timeout cut to FEED_READ_TIMEOUT so that a test can outlast
it) in front of two ``run.py`` processes with ``--xheaders true`` on the test pouchdb-server.
Every request below goes through nginx. The tests that kill a settee process get a deployment
of their own.
"""

from __future__ import annotations

import asyncio
import base64
import configparser
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPRequest, HTTPResponse
from tornado.websocket import WebSocketClientConnection, websocket_connect

from service.couch.transport import Endpoint
from tests.conftest import assert_every_change_once
from tests.nginx import SHIPPED, Nginx, find_nginx
from tests.servers import EMBEDDED_ADMIN, ROOT, free_port, wait_until_up
from tests.waiting import never_within, until

NGINX = find_nginx()
pytestmark = pytest.mark.skipif(
    NGINX is None,
    reason="nginx not found (not on PATH, nor in /usr/sbin, /usr/local/sbin, "
    "/usr/local/nginx/sbin): scripts/setup installs Debian's nginx when it runs as root or "
    "with passwordless sudo",
)

FEED_READ_TIMEOUT = 2.0  # seconds: nginx's proxy_read_timeout for the feeds, in these tests
SETTEE_HEARTBEAT = 1.0  # seconds: settee's WebSocket pings, below FEED_READ_TIMEOUT
UNIT = ROOT / "config" / "settee@.service"
# The address the test client connects from: not nginx's (127.0.0.1), so that the access log
# shows whose address settee took.
CLIENT_IP = "127.0.0.2"
ACCESS_LINE = re.compile(
    r'settee\.access: (?P<ip>\S+) "(?P<method>\S+) (?P<uri>\S+)" (?P<status>\d+)'
)


class SetteeProcess:
    """``python run.py`` on a free port, its output (and so its access log) in a file."""

    def __init__(
        self,
        couch_url: str,
        workdir: Path,
        command: list[str] | None = None,
        port: int | None = None,
    ) -> None:
        self.port = port or free_port()
        self.couch_url = couch_url
        self.log_path = workdir / f"settee-{self.port}.log"
        self.command = command or [
            sys.executable,
            str(ROOT / "run.py"),
            "--port",
            str(self.port),
            "--couch-url",
            couch_url,
            "--xheaders",
            "true",
            "--log-level",
            "info",
            "--heartbeat",
            str(SETTEE_HEARTBEAT),
            "--shutdown-grace",
            "2",
            *(["--admin", ":".join(EMBEDDED_ADMIN)] if couch_url.startswith("embedded:") else []),
        ]
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, env: dict[str, str] | None = None) -> SetteeProcess:
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                self.command,
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            wait_until_up(self.url + "/_up", timeout=30)
        except OSError:
            self.stop()
            raise RuntimeError(f"settee did not come up: {self.log()}") from None
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def access(self) -> list[dict[str, str]]:
        """The access-log lines so far, parsed."""
        return [match.groupdict() for match in ACCESS_LINE.finditer(self.log())]

    def served(self, marker: str) -> list[dict[str, str]]:
        """The access-log lines of requests whose URI holds ``marker``."""
        return [line for line in self.access() if marker in line["uri"]]

    def kill(self) -> None:
        """SIGKILL, as a crash would end it."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self, timeout: float = 15) -> int | None:
        """SIGTERM, then wait; SIGKILL if it does not end in time. The exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait()
        return self.process.returncode


@dataclass
class Deployment:
    nginx: Nginx
    settees: list[SetteeProcess]

    @property
    def url(self) -> str:
        return self.nginx.url

    @property
    def ws_url(self) -> str:
        return self.nginx.url.replace("http://", "ws://")

    async def served_by(self, marker: str, timeout: float = 5) -> list[SetteeProcess]:
        """The processes that logged a request holding ``marker``: settee writes the line just
        after the response, so wait for it (up to ``timeout``)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not (found := [s for s in self.settees if s.served(marker)]):
            if loop.time() > deadline:
                break
            await asyncio.sleep(0.02)
        return found

    def logs(self) -> str:
        """Everything the processes wrote, for assertion messages."""
        parts = [f"--- settee :{s.port}\n{s.log()}" for s in self.settees]
        return "\n".join([*parts, f"--- nginx\n{self.nginx.log()}"])

    def stop(self) -> None:
        self.nginx.stop()
        for settee in self.settees:
            settee.stop()
        for workdir in {settee.log_path.parent for settee in self.settees}:
            shutil.rmtree(workdir, ignore_errors=True)


# What each deployment's clients send as their own credentials (the test server's, if it has
# any: settee passes on the client's credentials, never its own), by the deployment's URL.
CLIENT_CREDENTIALS: dict[str, dict[str, str]] = {}


def credentials_for(url: str) -> dict[str, str]:
    for base, credentials in CLIENT_CREDENTIALS.items():
        if url.startswith((base, base.replace("http://", "ws://"))):
            return credentials
    return {}


def deploy(couch_url: str, count: int = 2) -> Deployment:
    workdir = Path(tempfile.mkdtemp(prefix="settee-deploy-"))
    settees: list[SetteeProcess] = []
    try:
        for _ in range(count):
            settees.append(SetteeProcess(couch_url, workdir).start())
        nginx = Nginx(
            NGINX,
            [settee.port for settee in settees],
            free_port(),
            feed_read_timeout=f"{FEED_READ_TIMEOUT:g}s",
        ).start()
    except BaseException:
        for settee in settees:
            settee.stop()
        raise
    embedded = EMBEDDED_ADMIN if couch_url.startswith("embedded:") else None
    if auth := Endpoint.parse(couch_url).auth or embedded:
        token = base64.b64encode(":".join(auth).encode()).decode()
        CLIENT_CREDENTIALS[nginx.url] = {"Authorization": f"Basic {token}"}
    return Deployment(nginx, settees)


@pytest.fixture(scope="module")
def deployment(server_url):
    """Two settee processes behind nginx, shared by the tests that kill nothing."""
    running = deploy(server_url)
    yield running
    running.stop()


@pytest.fixture
def own_deployment(server_url):
    """Two settee processes behind nginx, for one test that may kill one of them."""
    running = deploy(server_url)
    yield running
    running.stop()


def probe() -> str:
    """A unique marker for a request's URI (settee ignores unknown query options)."""
    return "probe=" + uuid.uuid4().hex


async def fetch(
    url: str, method: str = "GET", body: Any = None, headers: dict | None = None, **kwargs: Any
) -> HTTPResponse:
    headers = {**credentials_for(url), **(headers or {})}
    if isinstance(body, dict | list):
        body = json.dumps(body)
        headers.setdefault("Content-Type", "application/json")
    if body is None and method in ("POST", "PUT"):
        body = b""
    return await AsyncHTTPClient().fetch(
        HTTPRequest(
            url,
            method=method,
            body=body,
            headers=headers,
            allow_nonstandard_methods=True,
            request_timeout=30,
            **kwargs,
        ),
        raise_error=False,
    )


def answer(response: HTTPResponse) -> Any:
    return json.loads(response.body)


# -- the configuration as shipped


def test_shipped_config_passes_nginx_t():
    """``nginx -t`` on config/nginx.conf exactly as shipped."""
    result = subprocess.run(
        [NGINX, "-t", "-c", str(SHIPPED)], capture_output=True, text=True, timeout=30
    )
    if result.returncode != 0 and os.geteuid() != 0:
        # Not root: nginx may not open Debian's pid and log files (/run/nginx.pid,
        # /var/log/nginx/). Allow exactly that, and check the same file with only those
        # paths moved.
        emerg = [line for line in result.stderr.splitlines() if "[emerg]" in line]
        assert emerg, result.stderr
        for line in emerg:
            path = re.search(r'"(/[^"]+)" failed \(13: Permission denied\)', line)
            assert path and path.group(1) in SHIPPED.read_text(), result.stderr
        nginx = Nginx(NGINX, [8001, 8002], 8080)
        rendered = nginx.check()
        nginx.stop()
        assert rendered.returncode == 0, rendered.stderr
        return
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr


def test_shipped_config_says_what_the_issue_asks():
    text = SHIPPED.read_text()
    assert re.search(r"^\s*upstream settee \{", text, re.MULTILINE)
    assert (
        len(re.findall(r"^\s*server 127\.0\.0\.1:\d+ max_fails=\d+ fail_timeout=", text, re.M)) >= 2
    )
    assert re.search(r"^\s*proxy_next_upstream error timeout;", text, re.MULTILINE)
    assert "client_max_body_size 64m;" in text  # settee's max_body_size default: 64 MiB
    feeds = re.search(r"location ~ /_changes\$ \{([^}]*)\}", text).group(1)
    assert "proxy_buffering off;" in feeds
    assert re.search(r"^\s*proxy_set_header Upgrade \$http_upgrade;", text, re.MULTILINE)
    # A location with a proxy_set_header of its own would inherit none of the server's.
    for block in re.findall(r"location [^{]*\{([^}]*)\}", text):
        assert "proxy_set_header" not in block, block
    timeout = re.search(r"proxy_read_timeout (\d+)s;", feeds).group(1)
    assert int(timeout) > 60  # settee's longest default silence on a feed (heartbeat, timeout)
    for header in ("X-Forwarded-For", "X-Forwarded-Proto", "Host"):
        assert re.search(rf"proxy_set_header {header} \$", text), header


def test_systemd_unit_command_serves_on_its_port(server_url):
    """The unit's ExecStart, with the checkout for /opt/settee and a port for %i, serves
    settee on that port with xheaders on, and stops cleanly on the unit's KillSignal."""
    unit = configparser.ConfigParser(interpolation=None, strict=False)
    unit.read_string(UNIT.read_text())
    service = unit["Service"]
    assert service["KillSignal"] == "SIGTERM"
    assert unit["Install"]["WantedBy"] == "multi-user.target"
    port = free_port()
    command = shlex.split(service["ExecStart"].replace("%i", str(port)))
    assert "--xheaders" in command and command[command.index("--xheaders") + 1] == "true"
    command = [part.replace("/opt/settee/.venv/bin/python", sys.executable) for part in command]
    command = [part.replace("/opt/settee", str(ROOT)) for part in command]
    workdir = Path(tempfile.mkdtemp(prefix="settee-unit-"))
    settee = SetteeProcess(server_url, workdir, command, port)
    try:
        settee.start(env={**os.environ, "COUCHDB_URL": server_url})  # waits for its /_up
        code = settee.stop(timeout=float(service["TimeoutStopSec"].rstrip("s")))
        assert code == 0, settee.log()
        assert f"on 127.0.0.1:{port}" in settee.log()
    finally:
        settee.stop()
        shutil.rmtree(workdir, ignore_errors=True)


# -- plain requests through nginx


@pytest.mark.gen_test(timeout=60)
async def test_crud_through_nginx(deployment, db_name):
    base = f"{deployment.url}/{db_name}"
    forged = {"X-Forwarded-Proto": "https", "X-Scheme": "https"}
    created = await fetch(base, "POST", {"title": "first"}, forged)
    assert created.code == 201, created.body
    doc_id = answer(created)["id"]
    # Built from nginx's Host (with its port) and scheme: the client's forged https is not.
    assert created.headers["Location"] == f"{deployment.url}/{db_name}/{doc_id}"

    read = await fetch(f"{base}/{doc_id}")
    assert read.code == 200
    doc = answer(read)
    assert doc["title"] == "first"
    assert read.headers["ETag"] == f'"{doc["_rev"]}"'
    assert (
        await fetch(f"{base}/{doc_id}", headers={"If-None-Match": read.headers["ETag"]})
    ).code == 304

    updated = await fetch(f"{base}/{doc_id}", "PUT", {**doc, "title": "second"})
    assert updated.code == 201, updated.body
    stale = await fetch(f"{base}/{doc_id}", "PUT", {**doc, "title": "third"})
    assert stale.code == 409 and answer(stale)["error"] == "conflict"

    named = await fetch(f"{base}/a%2Fb", "PUT", {"slash": True})  # an encoded "/" stays
    assert named.code == 201, named.body
    assert answer(await fetch(f"{base}/a%2Fb"))["_id"] == "a/b"

    gone = await fetch(f"{base}/{doc_id}?rev={answer(updated)['rev']}", "DELETE")
    assert gone.code == 200, gone.body
    missing = await fetch(f"{base}/{doc_id}")
    assert missing.code == 404 and answer(missing)["error"] == "not_found"

    bulk = await fetch(f"{base}/_bulk_docs", "POST", {"docs": [{"_id": "x"}, {"_id": "y"}]})
    assert bulk.code == 201 and [r["id"] for r in answer(bulk)] == ["x", "y"]
    all_docs = answer(await fetch(f"{base}/_all_docs"))
    assert [row["id"] for row in all_docs["rows"]] == ["a/b", "x", "y"]


@pytest.mark.gen_test(timeout=60)
async def test_view_through_nginx(deployment, db_name, bdb):
    bdb.save([{"_id": f"d{i}", "n": i} for i in range(20)])
    bdb.save(
        {
            "_id": "_design/n",
            "views": {"by_n": {"map": "function (d) { emit(d.n, 1); }", "reduce": "_count"}},
        }
    )
    view = f"{deployment.url}/{db_name}/_design/n/_view/by_n"
    rows = answer(await fetch(f"{view}?reduce=false&startkey=5&endkey=9"))["rows"]
    assert [row["key"] for row in rows] == [5, 6, 7, 8, 9]
    total = answer(await fetch(view))["rows"]
    assert total == [{"key": None, "value": 20}]
    keys = await fetch(f"{view}?reduce=false&include_docs=true", "POST", {"keys": [3, 17]})
    assert [row["doc"]["_id"] for row in answer(keys)["rows"]] == ["d3", "d17"]


@pytest.mark.gen_test(timeout=60)
async def test_attachment_through_nginx(deployment, db_name):
    """Up and down through nginx, above nginx's default 1 MiB body limit."""
    base = f"{deployment.url}/{db_name}/doc"
    content = os.urandom(3 * 1024 * 1024 + 17)
    put = await fetch(f"{base}/photo.bin", "PUT", content, {"Content-Type": "image/x-test"})
    assert put.code == 201, put.body
    got = await fetch(f"{base}/photo.bin")
    assert got.code == 200
    assert got.headers["Content-Type"] == "image/x-test"
    assert got.body == content
    doc = answer(await fetch(base))
    assert doc["_attachments"]["photo.bin"]["length"] == len(content)


@pytest.mark.gen_test(timeout=60)
async def test_body_over_the_limit_gets_couchdb_413(deployment, db_name):
    """nginx refuses a body over 64 MiB (settee's max_body_size) from its Content-Length,
    before reading it, in CouchDB's error shape."""
    reader, writer = await asyncio.open_connection("127.0.0.1", deployment.nginx.port)
    try:
        writer.write(
            f"PUT /{db_name}/big HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Type: application/json\r\nContent-Length: {64 * 1024 * 1024 + 1}\r\n"
            "\r\n".encode()
        )
        status, head = await read_head(reader)
        assert status == 413, head
        length = int(re.search(rb"Content-Length: (\d+)", head).group(1))
        body = await asyncio.wait_for(reader.readexactly(length), 10)
        assert json.loads(body)["error"] == "too_large"
        assert b"application/json" in head
    finally:
        writer.close()


@pytest.mark.gen_test(timeout=60)
async def test_up_and_ready_through_nginx(deployment):
    up = await fetch(f"{deployment.url}/_up")
    assert up.code == 200 and answer(up) == {"status": "ok"}
    ready = await fetch(f"{deployment.url}/_ready")
    assert ready.code == 200 and answer(ready)["status"] == "ok"


@pytest.mark.gen_test(timeout=60)
async def test_access_log_shows_the_client_address(deployment, db_name):
    """settee logs the address the client connected to nginx from (X-Forwarded-For, as
    nginx appends it), not nginx's own, and not one the client forged."""
    marker = probe()
    response = await fetch(
        f"{deployment.url}/{db_name}?{marker}",
        headers={"X-Forwarded-For": "203.0.113.7", "X-Real-IP": "203.0.113.8"},
        network_interface=CLIENT_IP,
    )
    assert response.code == 200
    (settee,) = await deployment.served_by(marker)
    lines = settee.served(marker)
    assert len(lines) == 1, deployment.logs()
    assert lines[0]["ip"] == CLIENT_IP
    assert lines[0]["method"] == "GET" and lines[0]["status"] == "200"


@pytest.mark.gen_test(timeout=60)
async def test_requests_are_spread_over_both_processes(deployment):
    markers = [probe() for _ in range(10)]
    for marker in markers:
        assert (await fetch(f"{deployment.url}/?{marker}")).code == 200
    served = [await deployment.served_by(marker) for marker in markers]
    assert all(len(by) == 1 for by in served), deployment.logs()
    counts = [sum(by == [s] for by in served) for s in deployment.settees]
    assert min(counts) >= 1, counts


@pytest.mark.gen_test(timeout=60)
async def test_nginx_answers_503_json_when_no_settee_is_up(server_url):
    """Both processes gone: CouchDB's 503 with Retry-After, not nginx's HTML 502."""
    running = deploy(server_url)
    try:
        for settee in running.settees:
            settee.kill()
        response = await fetch(f"{running.url}/")
        assert response.code == 503
        assert answer(response)["error"] == "service_unavailable"
        assert response.headers["Retry-After"]
    finally:
        running.stop()


# -- one process dies


@pytest.mark.gen_test(timeout=90)
async def test_requests_go_to_the_other_process_when_one_dies(own_deployment, db_name):
    deployment = own_deployment
    base = f"{deployment.url}/{db_name}"
    warm = [probe() for _ in range(4)]
    for marker in warm:
        assert (await fetch(f"{base}?{marker}")).code == 200
    served = [await deployment.served_by(marker) for marker in warm]
    assert all(any(by == [s] for by in served) for s in deployment.settees), deployment.logs()

    dead, alive = deployment.settees
    dead.kill()
    markers = []
    for i in range(20):
        marker = probe()
        markers.append(marker)
        if i % 4 == 0:
            response = await fetch(f"{base}/doc{i}?{marker}", "PUT", {"i": i})
            assert response.code == 201, (i, response.code, response.body)
        elif i % 4 == 1:
            response = await fetch(f"{base}?{marker}", "POST", {"i": i})
            assert response.code == 201, (i, response.code, response.body)
        elif i % 4 == 2:
            response = await fetch(f"{base}/doc{i - 2}?{marker}")
            assert response.code == 200, (i, response.code, response.body)
        else:
            response = await fetch(f"{deployment.url}/_up?{marker}")
            assert response.code == 200, (i, response.code, response.body)
    for marker in markers:
        assert await deployment.served_by(marker) == [alive], deployment.logs()
    rows = answer(await fetch(f"{base}/_all_docs"))["rows"]
    assert len(rows) == 10


# -- the changes feeds through nginx (issue 4's contract)


async def ws_connect(
    deployment: Deployment, db: str, query: str, **options: Any
) -> WebSocketClientConnection:
    url = f"{deployment.ws_url}/{db}/_changes?feed=websocket{query}"
    headers = {**credentials_for(url), **options.pop("headers", {})}
    request = HTTPRequest(url, connect_timeout=5, request_timeout=10, headers=headers, **options)
    return await websocket_connect(request)


async def receive(ws: WebSocketClientConnection, timeout: float = 10) -> Any:
    """The next frame, parsed; None when the socket closed."""
    message = await asyncio.wait_for(ws.read_message(), timeout)
    return None if message is None else json.loads(message)


async def rows_until_caught_up(ws: WebSocketClientConnection) -> tuple[list[dict], Any]:
    rows: list[dict] = []
    async with asyncio.timeout(20):
        while True:
            frame = await receive(ws)
            assert frame is not None, f"closed: {ws.close_code} {ws.close_reason}"
            if "last_seq" in frame and "seq" not in frame:
                return rows, frame["last_seq"]
            rows.append(frame)


async def rows_until(ws: WebSocketClientConnection, ids: set[str]) -> list[dict]:
    """Change rows until every id in ``ids`` has come (markers skipped)."""
    rows: list[dict] = []
    async with asyncio.timeout(20):
        while not ids <= {row["id"] for row in rows}:
            frame = await receive(ws)
            assert frame is not None, f"closed: {ws.close_code} {ws.close_reason}"
            batch = frame if isinstance(frame, list) else [frame]
            rows += [row for row in batch if "seq" in row]
    return rows


async def save(bdb, docs) -> None:
    await asyncio.to_thread(bdb.save, docs)


@pytest.mark.gen_test(timeout=60)
async def test_websocket_subscriber_through_nginx(deployment, db_name, bdb):
    """Backlog, caught-up marker, then live changes; idle longer than two nginx read
    timeouts in between, kept open by settee's pings."""
    bdb.save([{"_id": "a"}, {"_id": "b"}])
    marker = probe()
    ws = await ws_connect(
        deployment,
        db_name,
        f"&since=0&include_docs=true&{marker}",
        # As a browser on the page nginx serves: settee accepts the Origin because nginx
        # passes the Host on.
        headers={"Origin": deployment.url},
        network_interface=CLIENT_IP,
    )
    try:
        backlog, _ = await rows_until_caught_up(ws)
        assert_every_change_once(backlog, ["a", "b"])
        assert all(row["doc"]["_id"] == row["id"] for row in backlog)
        await never_within(
            FEED_READ_TIMEOUT * 2 + 0.5,
            lambda: ws.close_code is not None,
            what="nginx closing the socket",
        )
        await save(bdb, {"_id": "c", "v": 1})
        live = await rows_until(ws, {"c"})
        assert [row["id"] for row in live] == ["c"]
        assert live[0]["doc"]["v"] == 1
    finally:
        ws.close()
    (settee,) = await deployment.served_by(marker)
    assert [(line["ip"], line["status"]) for line in settee.served(marker)] == [(CLIENT_IP, "101")]


@pytest.mark.gen_test(timeout=90)
async def test_websocket_client_resumes_on_the_other_process(own_deployment, db_name, bdb):
    """The process holding a WebSocket dies; the client reconnects through nginx with its
    last seq, lands on the other process, and gets every change, none twice."""
    deployment = own_deployment
    bdb.save([{"_id": f"before{i}"} for i in range(3)])
    marker = probe()
    ws = await ws_connect(deployment, db_name, f"&since=0&{marker}")
    backlog, last_seq = await rows_until_caught_up(ws)
    assert_every_change_once(backlog, ["before0", "before1", "before2"])
    await save(bdb, {"_id": "live0"})
    live = await rows_until(ws, {"live0"})
    last_seq = live[-1]["seq"]

    holders = await deployment.served_by(marker)
    assert len(holders) == 1, deployment.logs()
    holders[0].kill()
    assert await receive(ws) is None  # nginx closes the client's side
    during = [{"_id": f"during{i}"} for i in range(3)]
    for doc in during:  # through nginx, while one process is dead
        assert (await fetch(f"{deployment.url}/{db_name}", "POST", doc)).code == 201

    ws = await ws_connect(deployment, db_name, f"&since={json.dumps(last_seq)}")
    try:
        await save(bdb, {"_id": "after0"})
        expected = ["during0", "during1", "during2", "after0"]
        resumed = await rows_until(ws, set(expected))
        assert_every_change_once(resumed, expected)
    finally:
        ws.close()


async def send_get(
    deployment: Deployment, path: str
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A raw HTTP/1.0 GET through nginx: the response body is then the bytes as settee sent
    them, until nginx closes the connection."""
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", deployment.nginx.port, local_addr=(CLIENT_IP, 0)
    )
    credentials = credentials_for(deployment.url)
    auth = "".join(f"{name}: {value}\r\n" for name, value in credentials.items())
    writer.write(
        f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{deployment.nginx.port}\r\n{auth}"
        "Accept-Encoding: identity\r\n\r\n".encode()
    )
    return reader, writer


async def read_head(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    return int(head.split()[1]), head


async def open_feed(
    deployment: Deployment, path: str
) -> tuple[int, bytes, asyncio.StreamReader, asyncio.StreamWriter]:
    """``send_get``, then the response's status and head."""
    reader, writer = await send_get(deployment, path)
    status, head = await read_head(reader)
    return status, head, reader, writer


def longpoll_waiting(deployment: Deployment) -> Any:
    """A condition: one of the deployment's settee processes has a longpoll waiting (settee
    answers one, head and all, once a change comes), as its /_metrics tell."""

    async def condition() -> bool:
        for settee in deployment.settees:
            url = f"http://127.0.0.1:{settee.port}/_metrics"
            metrics = (await AsyncHTTPClient().fetch(url)).body.decode()
            if 'settee_subscribers{feed="longpoll"} 1.0' in metrics:
                return True
        return False

    return condition


def read_timeouts(deployment: Deployment) -> int:
    """How many times nginx has logged that an upstream did not send within its read
    timeout."""
    return deployment.nginx.log().count("upstream timed out")


async def read_for(
    reader: asyncio.StreamReader, seconds: float
) -> tuple[list[tuple[float, bytes]], bool]:
    """What arrives within ``seconds`` as (time, bytes) pieces, and whether the stream ended."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    pieces: list[tuple[float, bytes]] = []
    while (left := deadline - loop.time()) > 0:
        try:
            data = await asyncio.wait_for(reader.read(65536), left)
        except TimeoutError:
            break
        if not data:
            return pieces, True
        pieces.append((loop.time(), data))
    return pieces, False


@pytest.mark.gen_test(timeout=60)
async def test_longpoll_through_nginx(deployment, db_name, bdb):
    bdb.save({"_id": "old"})
    since = json.dumps(bdb.info()["update_seq"])
    marker = probe()
    reader, writer = await send_get(
        deployment, f"/{db_name}/_changes?feed=longpoll&since={since}&{marker}"
    )
    try:
        await until(longpoll_waiting(deployment), what="the longpoll to wait")
        await save(bdb, {"_id": "new"})
        status, _ = await read_head(reader)
        assert status == 200
        body = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    result = json.loads(body)
    assert [row["id"] for row in result["results"]] == ["new"]
    assert result["last_seq"] == result["results"][-1]["seq"]
    (settee,) = await deployment.served_by(marker)
    assert [line["ip"] for line in settee.served(marker)] == [CLIENT_IP]


@pytest.mark.gen_test(timeout=60)
async def test_eventsource_through_nginx(deployment, db_name, bdb):
    bdb.save([{"_id": "a"}, {"_id": "b"}])
    status, head, reader, writer = await open_feed(
        deployment, f"/{db_name}/_changes?feed=eventsource&since=0&heartbeat=500"
    )
    try:
        assert status == 200
        assert b"text/event-stream" in head
        first, ended = await read_for(reader, FEED_READ_TIMEOUT)
        await save(bdb, {"_id": "c"})
        second, ended = await read_for(reader, FEED_READ_TIMEOUT + 0.5)
        assert not ended
    finally:
        writer.close()
    text = b"".join(data for _, data in first + second).decode()
    events = [event for event in text.split("\n\n") if event.strip()]
    data = [event for event in events if event.startswith("data: {")]
    rows = [json.loads(event.split("\n")[0][len("data: ") :]) for event in data]
    assert_every_change_once(rows[:2], ["a", "b"])  # the backlog; "c" was written after it
    assert [row["id"] for row in rows[2:]] == ["c"]
    ids = [re.search(r"^id: (.*)$", event, re.MULTILINE).group(1) for event in data]
    assert ids == [str(row["seq"]) for row in rows]
    assert any("heartbeat" in event for event in events), text


@pytest.mark.gen_test(timeout=60)
async def test_continuous_feed_outlasts_nginx_read_timeouts(deployment, db_name, bdb):
    """heartbeat=500 keeps a quiet continuous feed open through nginx for more than two of
    its read timeouts; a change at the end still arrives."""
    since = json.dumps(bdb.info()["update_seq"])
    status, _, reader, writer = await open_feed(
        deployment, f"/{db_name}/_changes?feed=continuous&since={since}&heartbeat=500"
    )
    timeouts = read_timeouts(deployment)
    try:
        assert status == 200
        quiet, ended = await read_for(reader, FEED_READ_TIMEOUT * 2 + 0.5)
        assert not ended, "nginx cut the feed"
        await save(bdb, {"_id": "late"})
        late, ended = await read_for(reader, 1.5)
        assert not ended, "nginx cut the feed"
    finally:
        writer.close()
    text = b"".join(data for _, data in quiet + late).decode()
    assert text.count("\n") >= 5  # heartbeats got through
    assert read_timeouts(deployment) == timeouts
    rows = [json.loads(line) for line in text.split("\n") if line.strip()]
    assert [row["id"] for row in rows] == ["late"]


@pytest.mark.gen_test(timeout=60)
async def test_quiet_feed_without_heartbeats_is_cut_at_the_read_timeout(deployment, db_name):
    """The control for the test above: the same feed with heartbeats rarer than nginx's read
    timeout is closed by nginx, which is why proxy_read_timeout must exceed them."""
    status, _, reader, writer = await open_feed(
        deployment, f"/{db_name}/_changes?feed=continuous&since=now&heartbeat=10000"
    )
    timeouts = read_timeouts(deployment)
    try:
        _, ended = await read_for(reader, FEED_READ_TIMEOUT * 3)
        assert ended, "nginx kept a silent feed open past its read timeout"
        await until(lambda: read_timeouts(deployment) > timeouts, what="nginx's read timeout")
    finally:
        writer.close()
    assert status in (200, 503)
