"""settee's HTTP/1.1 server (``service.httpserver``) on the wire: raw requests, raw responses."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging

import pytest
from tornado import iostream, web
from tornado.testing import bind_unused_port

from service.httpserver import HEAD_LIMIT, Server, Timeouts
from tests.waiting import never_within, until


async def open_to(url: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = url.removeprefix("http://").split(":")
    return await asyncio.open_connection(host, int(port))


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    """One response: status, headers (lower-case names) and body (by length or chunks)."""
    head = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)).decode("latin1")
    status_line, *lines = head.rstrip("\r\n").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.lower()] = value.strip()
    status = int(status_line.split()[1])
    if headers.get("transfer-encoding") == "chunked":
        body = b""
        while size := int((await reader.readuntil(b"\r\n")).strip(), 16):
            body += (await reader.readexactly(size + 2))[:-2]
        await reader.readexactly(2)
        return status, headers, body
    return status, headers, await reader.readexactly(int(headers.get("content-length", 0)))


async def closed_by_server(reader: asyncio.StreamReader) -> bool:
    return await asyncio.wait_for(reader.read(), 10) == b""


@pytest.mark.gen_test(timeout=30)
async def test_pipelined_requests_are_answered_in_order(settee, db_name):
    reader, writer = await open_to(settee.url)
    writer.write(
        f"GET /{db_name} HTTP/1.1\r\nHost: x\r\n{settee.auth_lines}\r\n"
        f"GET /no-such-db HTTP/1.1\r\nHost: x\r\n{settee.auth_lines}\r\n"
        f"HEAD /{db_name} HTTP/1.1\r\nHost: x\r\n{settee.auth_lines}\r\n"
        "GET /_up HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    )
    first, second = await read_response(reader), await read_response(reader)
    assert (first[0], json.loads(first[2])["db_name"]) == (200, db_name)
    assert (second[0], json.loads(second[2])["error"]) == (404, "not_found")
    status, _, body = await read_response(reader)  # HEAD: no body, and the next one parses
    assert (status, body) == (200, b"")
    assert (await read_response(reader))[0] == 200
    writer.close()


@pytest.mark.gen_test(timeout=30)
async def test_http_1_0_keeps_the_connection_only_when_asked(settee):
    reader, writer = await open_to(settee.url)
    for _ in range(2):
        writer.write(b"GET /_up HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        status, headers, _ = await read_response(reader)
        assert (status, headers["connection"]) == (200, "Keep-Alive")
    writer.write(b"GET /_up HTTP/1.0\r\n\r\n")
    assert (await read_response(reader))[0] == 200
    assert await closed_by_server(reader)
    writer.close()


@pytest.mark.gen_test(timeout=30)
async def test_connection_close_is_honoured(settee):
    reader, writer = await open_to(settee.url)
    writer.write(b"GET /_up HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    status, headers, _ = await read_response(reader)
    assert (status, headers["connection"]) == (200, "close")
    assert await closed_by_server(reader)
    writer.close()


@pytest.mark.gen_test(timeout=30)
async def test_expect_100_continue_before_the_body(start_settee, db_name, bdb):
    settee = start_settee(max_body_size=1024)
    reader, writer = await open_to(settee.url)
    body = b'{"n": 1}'
    writer.write(
        f"PUT /{db_name}/doc HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"{settee.auth_lines}"
        f"Expect: 100-continue\r\nContent-Length: {len(body)}\r\n\r\n".encode()
    )
    assert await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10) == (
        b"HTTP/1.1 100 (Continue)\r\n\r\n"
    )
    writer.write(body)
    assert (await read_response(reader))[0] == 201
    # Over the limit: refused before the body is sent, and no 100.
    writer.write(
        f"PUT /{db_name}/big HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"{settee.auth_lines}"
        "Expect: 100-continue\r\nContent-Length: 5000\r\n\r\n".encode()
    )
    status, _, answer = await read_response(reader)
    assert (status, json.loads(answer)["error"]) == (413, "too_large")
    writer.close()
    assert [doc and doc["n"] for doc in bdb.get(["doc", "big"])] == [1, None]


@pytest.mark.gen_test(timeout=30)
async def test_a_chunked_body_over_the_limit_ends_the_connection(start_settee, db_name, bdb):
    settee = start_settee(max_body_size=1024)
    reader, writer = await open_to(settee.url)
    writer.write(
        f"PUT /{db_name}/big HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"{settee.auth_lines}"
        "Transfer-Encoding: chunked\r\n\r\n".encode()
    )
    chunk = b'{"pad": "' + b"x" * 600
    writer.write(b"%x\r\n%b\r\n" % (len(chunk), chunk) * 2)
    status, _, answer = await read_response(reader)
    assert (status, json.loads(answer)["error"]) == (413, "too_large")
    assert await closed_by_server(reader)
    writer.close()
    await until(lambda: settee.in_flight.count == 0, what="no request in flight")
    assert bdb.get(["big"]) == [None]


@pytest.mark.gen_test(timeout=30)
@pytest.mark.parametrize(
    "request_head",
    [
        b"NOT HTTP AT ALL\r\n\r\n",
        b"GET /_up HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
        b"GET /_up HTTP/1.1\r\nHost: x\r\nX-Big: " + b"y" * HEAD_LIMIT + b"\r\n\r\n",
        b"GET /_up HTTP/1.1\r\n\r\n",
        b"GET /_up HTTP/2.0\r\nHost: x\r\n\r\n",
        b"PUT /x/y HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: foo\r\n"
        b"Content-Length: 2\r\n\r\n{}",
    ],
    ids=["garbage", "bad length", "head too large", "no host", "HTTP/2", "upgrade with a body"],
)
async def test_an_unreadable_request_is_400_and_closes(settee, request_head):
    reader, writer = await open_to(settee.url)
    writer.write(request_head)
    assert (await read_response(reader))[0] == 400
    assert await closed_by_server(reader)
    writer.close()


class Hello(web.RequestHandler):
    def get(self) -> None:
        self.write("hello")


@pytest.mark.gen_test(timeout=30)
async def test_idle_connections_are_closed_and_shutdown_closes_the_rest():
    server = Server(web.Application([("/", Hello)]), timeouts=Timeouts(idle=0.4))
    sock, port = bind_unused_port()
    server.add_sockets([sock])
    url = f"http://127.0.0.1:{port}"
    idle_reader, idle_writer = await open_to(url)
    idle_writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (await read_response(idle_reader))[2] == b"hello"
    assert await closed_by_server(idle_reader)  # within a sweep of the limit
    reader, writer = await open_to(url)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (await read_response(reader))[2] == b"hello"
    server.stop()
    with pytest.raises(OSError):
        await open_to(url)
    await server.close_all_connections()
    assert await closed_by_server(reader)
    assert not server.connections
    for stream in (idle_writer, writer):
        stream.close()


class Slow(web.RequestHandler):
    async def get(self) -> None:
        await asyncio.sleep(0.3)
        self.write("slow")


class Download(web.RequestHandler):
    """A 640 KiB answer of declared length, flushed in pieces, the rest once ``left`` is set
    (the client has gone); what happened to it."""

    events: list[str] = []
    left = asyncio.Event()

    async def get(self) -> None:
        self.set_header("Content-Length", str(10 * 65536))
        for piece in range(10):
            self.write(b"x" * 65536)
            try:
                await self.flush()
            except iostream.StreamClosedError:
                self.events.append("flush failed")
                return
            if piece == 0:
                await self.left.wait()

    def on_finish(self) -> None:
        self.events.append("finished")


class Big(web.RequestHandler):
    """20 MB at once; ``writing`` is set once they are written."""

    writing = asyncio.Event()

    async def get(self) -> None:
        self.write(b"x" * 20_000_000)
        self.writing.set()
        with contextlib.suppress(iostream.StreamClosedError):
            await self.flush()


class Stream(web.RequestHandler):
    """64 MiB in 1 MiB chunks, each flushed before the next is written; how many were."""

    written = 0

    async def get(self) -> None:
        Stream.written = 0
        for _ in range(64):
            self.write(b"x" * 2**20)
            await self.flush()
            Stream.written += 1


@pytest.fixture
def tiny(io_loop):
    """settee's server with a few plain Tornado handlers (no backend): (server, its URL).
    Stopped before the test's event loop closes (which closes every socket it watches)."""
    servers = []

    def start(**settings) -> tuple[Server, str]:
        routes = [("/", Hello), ("/slow", Slow), ("/download", Download), ("/big", Big)]
        routes.append(("/stream", Stream))
        server = Server(web.Application(routes), **settings)
        sock, port = bind_unused_port()
        server.add_sockets([sock])
        servers.append(server)
        return server, f"http://127.0.0.1:{port}"

    yield start
    for server in servers:
        server.stop()


@pytest.mark.gen_test(timeout=30)
async def test_a_bad_request_after_a_good_one_is_refused_after_its_answer(tiny):
    reader, writer = await open_to(tiny()[1])
    writer.write(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\nNOT HTTP\r\n\r\n")
    assert (await read_response(reader))[2] == b"slow"
    assert (await read_response(reader))[0] == 400
    assert await closed_by_server(reader)
    writer.close()


@pytest.mark.gen_test(timeout=30)
async def test_a_client_that_leaves_a_download_fails_its_flush_and_finishes_it(tiny, caplog):
    Download.events, Download.left = [], asyncio.Event()
    reader, writer = await open_to(tiny()[1])
    writer.write(b"GET /download HTTP/1.1\r\nHost: x\r\n\r\n")
    await reader.readexactly(1000)
    writer.transport.abort()
    Download.left.set()
    await until(lambda: "finished" in Download.events, what="the download to finish")
    assert Download.events == ["flush failed", "finished"]
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


@pytest.mark.gen_test(timeout=30)
async def test_shutdown_does_not_wait_for_a_client_that_does_not_read(tiny):
    server, url = tiny()
    Big.writing = asyncio.Event()
    _, writer = await open_to(url)
    writer.write(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")  # and never read
    await asyncio.wait_for(Big.writing.wait(), 10)
    server.stop()
    await asyncio.wait_for(server.close_all_connections(), 5)
    assert not server.connections
    writer.close()


@pytest.mark.gen_test(timeout=30)
async def test_a_client_that_reads_slowly_holds_the_writer_back(tiny):
    """A flush waits for the client: what is written but unread stays bounded by the sockets'
    buffers and the transport's high-water mark, not by what the handler has to send."""
    reader, writer = await open_to(tiny()[1])
    writer.write(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
    await until(lambda: Stream.written > 0, what="the writer to start")
    # The socket buffers hold a few MiB, not 64.
    await never_within(0.5, lambda: Stream.written >= 32, what="the writer outrunning the reader")
    status, _, body = await read_response(reader)
    assert (status, len(body), Stream.written) == (200, 64 * 2**20, 64)
    writer.close()
