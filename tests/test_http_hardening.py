"""The HTTP server against hostile clients: slow ones (timeouts) and ambiguous framings
(request smuggling). Every connection is on 127.0.0.1 and every loop is bounded."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from tornado import web
from tornado.testing import bind_unused_port

from service.httpserver import Server, Timeouts
from service.settings import Settings, load
from tests.test_httpserver import Big, Hello, closed_by_server, open_to, read_response

SLOWLORIS = 1_000


async def wait_for(condition, timeout: float, what: str) -> None:
    """Until ``condition()`` holds; fails saying ``what`` if ``timeout`` passes first."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"still waiting: {what}"
        await asyncio.sleep(0.05)


async def trickle(writers: list[asyncio.StreamWriter], byte: bytes, done: asyncio.Event) -> None:
    """One ``byte`` to each connection, a tenth of a second apart, until ``done`` (for 30 s at
    most): a client that sends just enough to look alive."""
    for _ in range(300):
        if done.is_set():
            return
        for writer in writers:
            if not writer.is_closing():
                writer.write(byte)
        await asyncio.sleep(0.1)


async def end_of(reader: asyncio.StreamReader) -> bytes:
    """What is left to read before the server closes: ``b""`` for a close, whether it shows
    as an end of stream or (a trickled byte having met the closed socket) as a reset."""
    try:
        return await asyncio.wait_for(reader.read(), 60)
    except ConnectionError:
        return b""


async def while_trickling(writers: list[asyncio.StreamWriter], byte: bytes, checks) -> None:
    """Run ``checks`` while ``writers`` trickle ``byte``s."""
    done = asyncio.Event()

    async def checking() -> None:
        try:
            await checks
        finally:
            done.set()

    await asyncio.gather(trickle(writers, byte, done), checking())


@pytest.mark.gen_test(timeout=120)
async def test_a_thousand_slowloris_connections_do_not_stop_service_and_are_closed(
    start_settee,
):
    settee = start_settee(header_timeout=1.0)
    loris = []
    for _ in range(SLOWLORIS):
        reader, writer = await open_to(settee.url)
        writer.write(b"GET /_up HTTP/1.1\r\nHost: x\r\nX-Slow: ")  # a head never finished
        loris.append((reader, writer))

    async def checks() -> None:
        for _ in range(20):  # others are served meanwhile, each on a connection of its own
            assert (await settee.fetch("GET", "/_up")).code == 200
        # Each ends (generously bounded: the machine may be busy; no duration is asserted).
        ends = await asyncio.gather(*(end_of(r) for r, _ in loris))
        assert set(ends) == {b""}

    try:
        await while_trickling([writer for _, writer in loris], b"y", checks())
        assert (await settee.fetch("GET", "/_up")).code == 200
    finally:
        for _, writer in loris:
            writer.close()


@pytest.mark.gen_test(timeout=60)
async def test_a_body_trickled_in_is_cut_off_by_the_body_timeout(start_settee, db_name):
    settee = start_settee(body_timeout=1.0)
    reader, writer = await open_to(settee.url)
    writer.write(
        f"PUT /{db_name}/slow HTTP/1.1\r\nHost: x\r\n{settee.auth_lines}"
        "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{".encode()
    )
    closed = []

    async def checks() -> None:
        closed.append(await closed_by_server(reader))

    await while_trickling([writer], b" ", checks())
    writer.close()
    assert closed == [True]
    assert (await settee.fetch("GET", f"/{db_name}/slow")).code == 404


@pytest.fixture
def serve(io_loop):
    """settee's server with plain Tornado handlers and the given timeouts: (server, URL)."""
    servers = []

    def start(timeouts: Timeouts) -> tuple[Server, str]:
        server = Server(web.Application([("/", Hello), ("/big", Big)]), timeouts=timeouts)
        sock, port = bind_unused_port()
        server.add_sockets([sock])
        servers.append(server)
        return server, f"http://127.0.0.1:{port}"

    yield start
    for server in servers:
        server.stop()


@pytest.mark.gen_test(timeout=60)
async def test_a_client_that_does_not_read_its_answer_is_cut_off_by_the_write_timeout(serve):
    server, url = serve(Timeouts(write=0.5))
    _, writer = await open_to(url)
    writer.write(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")  # 20 MB, never read
    await wait_for(lambda: len(server.connections) == 1, 10, "the connection")
    await wait_for(lambda: not server.connections, 30, "the write timeout")
    writer.close()


@pytest.mark.gen_test(timeout=60)
async def test_the_idle_timeout_waits_for_the_first_request_too(serve):
    url = serve(Timeouts(idle=0.5))[1]
    reader, writer = await open_to(url)  # and says nothing
    assert await closed_by_server(reader)
    writer.close()


@pytest.mark.gen_test(timeout=60)
async def test_a_slow_request_head_is_not_an_idle_connection(serve):
    """The header timeout runs from a request's first byte, however long the idle timeout."""
    url = serve(Timeouts(header=0.5, idle=3600))[1]
    reader, writer = await open_to(url)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\n")
    assert (await read_response(reader))[2] == b"hello"
    assert await closed_by_server(reader)
    writer.close()


@pytest.mark.parametrize("timeout", ["header", "body", "idle", "write"])
def test_every_timeout_is_a_setting_and_must_be_positive(timeout):
    assert getattr(load([f"--{timeout}-timeout", "2.5"], {}), f"{timeout}_timeout") == 2.5
    assert getattr(load([], {f"SETTEE_{timeout.upper()}_TIMEOUT": "7"}), f"{timeout}_timeout") == 7
    with pytest.raises(ValueError, match="timeouts must be > 0"):
        Settings(**{f"{timeout}_timeout": 0})


# Framings that two HTTP parsers may read differently: a proxy in front (nginx) and settee,
# or settee and the backend. Each is refused with 400 and the connection closed, before any
# of it reaches a handler. What CouchDB 3.4.3 itself answers is in the README (hardening).
SMUGGLING = {
    "CL and TE": b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "TE and CL": b"Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n",
    "two different CLs": b"Content-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
    "a CL list": b"Content-Length: 2, 3\r\n\r\n{}",
    "a signed CL": b"Content-Length: +2\r\n\r\n{}",
    "TE xchunked": b"Transfer-Encoding: xchunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
    "TE chunked, identity": b"Transfer-Encoding: chunked, identity\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
    "TE twice": b"Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n"
    b"2\r\n{}\r\n0\r\n\r\n",
    "TE with a space before the colon": b"Transfer-Encoding : chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
    "TE folded": b"Transfer-Encoding:\r\n chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
    "TE after a vertical tab": b"Transfer-Encoding:\x0bchunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
    "bare LF in the chunks": b"Transfer-Encoding: chunked\r\n\r\n2\n{}\n0\n\n",
    "bare LF in the head": b"Content-Length: 2\n\n{}",
    "bare CR in the head": b"Content-Length: 2\r\r\n\r\n{}",
}


@pytest.mark.gen_test(timeout=30)
@pytest.mark.parametrize("framing", list(SMUGGLING), ids=list(SMUGGLING))
async def test_an_ambiguous_framing_is_400_and_closes(settee, db_name, bdb, framing):
    reader, writer = await open_to(settee.url)
    head = f"POST /{db_name} HTTP/1.1\r\nHost: x\r\n{settee.auth_lines}"
    head += "Content-Type: application/json\r\n"
    # A second request follows: were the first one's end misread, it would be smuggled in.
    smuggled = f"PUT /{db_name}/smuggled HTTP/1.1\r\nHost: x\r\n{settee.auth_lines}"
    smuggled += "Content-Length: 2\r\n\r\n{}"
    writer.write(head.encode() + SMUGGLING[framing] + smuggled.encode())
    status, _, body = await read_response(reader)
    assert (status, json.loads(body)["error"]) == (400, "bad_request")
    assert await closed_by_server(reader)
    writer.close()
    assert (await asyncio.to_thread(bdb.info))["doc_count"] == 0
