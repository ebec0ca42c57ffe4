"""The async transport's HTTP/1.1 connections against servers that misbehave on purpose.

pouchdb-server exercises the ordinary paths in every other test; here a small asyncio server
on 127.0.0.1 answers each request with bytes the test chooses, to reach what pouchdb-server
does not do on demand: stale keep-alive connections, bodies delimited by a close, silence,
garbage, and back-pressure.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import struct
from collections.abc import Awaitable, Callable

import pytest
import trustme

from service.couch import http1
from tests.waiting import until

Answer = Callable[[bytes, asyncio.StreamReader, asyncio.StreamWriter], Awaitable[bool]]

OK = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{"ok":true}'


class Scripted:
    """A server that reads each request head and hands it to ``answer``; the connection stays
    open while ``answer`` returns True. Counts connections and keeps every request head."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.heads: list[bytes] = []
        self.connections = 0
        self.open_now = 0
        self.most_open = 0
        self.server: asyncio.base_events.Server | None = None
        self.serving: set[asyncio.Task] = set()

    async def start(self) -> Scripted:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    @property
    def port(self) -> int:
        return self.server.sockets[0].getsockname()[1]

    def pool(self, **settings) -> http1.Pool:
        return http1.Pool("127.0.0.1", self.port, **settings)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.serving.add(asyncio.current_task())
        self.connections += 1
        self.open_now += 1
        self.most_open = max(self.most_open, self.open_now)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                self.heads.append(head)
                if not await self.answer(head, reader, writer):
                    return
        finally:
            self.open_now -= 1
            writer.close()

    async def stop(self) -> None:
        self.server.close()
        for task in self.serving:
            task.cancel()
        await asyncio.gather(*self.serving, return_exceptions=True)
        await self.server.wait_closed()


async def scripted(answer: Answer) -> Scripted:
    return await Scripted(answer).start()


async def reply(writer: asyncio.StreamWriter, data: bytes) -> bool:
    writer.write(data)
    await writer.drain()
    return True


def answers_ok(after: float = 0) -> Answer:
    """A server that answers every request with ``OK``, ``after`` seconds."""

    async def answer(head: bytes, reader: asyncio.StreamReader, writer) -> bool:
        if after:
            await asyncio.sleep(after)
        return await reply(writer, OK)

    return answer


async def never_answers(head: bytes, reader: asyncio.StreamReader, writer) -> bool:
    """Reads nothing more and answers nothing: the client has to find out on its own."""
    await asyncio.sleep(10)
    return False


@pytest.mark.gen_test
async def test_keep_alive_reuses_one_connection_and_sends_the_defaults():
    server = await scripted(answers_ok())
    pool = server.pool(headers={"Accept": "application/json", "User-Agent": "settee"})
    for _ in range(5):
        status, headers, body = await pool.fetch("GET", "/db/doc", {}, None, timeout=5)
        assert (status, headers["content-type"], body) == (200, "application/json", b'{"ok":true}')
    assert server.connections == 1
    head = server.heads[0].decode()
    assert head.startswith("GET /db/doc HTTP/1.1\r\n")
    assert f"Host: 127.0.0.1:{server.port}\r\n" in head
    assert "Accept: application/json\r\n" in head and "User-Agent: settee\r\n" in head
    # A header of the request replaces the default of the same name, whatever its case.
    await pool.fetch("GET", "/db/doc", {"accept": "*/*"}, None, timeout=5)
    assert "accept: */*\r\n" in server.heads[-1].decode()
    assert "application/json" not in server.heads[-1].decode()
    pool.close()
    await server.stop()


@pytest.mark.gen_test
async def test_head_reply_has_no_body_whatever_its_length_says():
    async def answer(head, reader, writer):
        if head.startswith(b"HEAD"):
            return await reply(
                writer, b'HTTP/1.1 200 OK\r\nETag: "1-a"\r\nContent-Length: 50\r\n\r\n'
            )
        return await reply(writer, OK)

    server = await scripted(answer)
    pool = server.pool()
    status, headers, body = await pool.fetch("HEAD", "/db/doc", {}, None, timeout=5)
    assert (status, headers["etag"], body) == (200, '"1-a"', b"")
    status, _, body = await pool.fetch("GET", "/db/doc", {}, None, timeout=5)
    assert (status, body) == (200, b'{"ok":true}')
    assert server.connections == 1
    pool.close()
    await server.stop()


@pytest.mark.gen_test
async def test_stale_kept_alive_connection_is_retried_for_idempotent_requests_only():
    answered = 0

    async def answer(head, reader, writer):
        # Each connection answers one request, then closes on the next without a word: what a
        # server does when its keep-alive timeout ends as a request arrives.
        nonlocal answered
        if head.startswith(b"POST"):
            await reader.readexactly(2)
        if getattr(writer, "answered", False):
            return False
        writer.answered = True
        answered += 1
        return await reply(writer, OK)

    server = await scripted(answer)
    pool = server.pool()
    await pool.fetch("GET", "/a", {}, None, timeout=5)
    status, _, _ = await pool.fetch("GET", "/a", {}, None, timeout=5)
    assert status == 200 and server.connections == 2
    with pytest.raises(http1.StaleConnection):
        await pool.fetch("POST", "/db", {}, b"{}", timeout=5)
    assert answered == 2
    pool.close()
    await server.stop()


@pytest.mark.gen_test
async def test_bodies_delimited_by_close_chunked_or_both_ways_at_once():
    replies = [
        b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nread until the end",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
        # pouchdb-server's _list output: a length and chunks; the chunks win.
        b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"7\r\n[0,1,2]\r\n0\r\n\r\n",
    ]

    async def answer(head, reader, writer):
        await reply(writer, replies[int(head.split(b" ")[1][1:])])
        return head.split(b" ")[1] == b"/1"

    server = await scripted(answer)
    pool = server.pool()
    assert (await pool.fetch("GET", "/0", {}, None, timeout=5))[2] == b"read until the end"
    assert (await pool.fetch("GET", "/1", {}, None, timeout=5))[2] == b"hello world"
    assert (await pool.fetch("GET", "/2", {}, None, timeout=5))[2] == b"[0,1,2]"
    # The first closed by design, the second kept alive for the third, which is not kept
    # (a reply with both a length and chunks is not trusted with another exchange).
    assert server.connections == 2
    assert not pool._idle
    pool.close()
    await server.stop()


@pytest.mark.gen_test
async def test_silence_times_out_and_garbage_is_a_bad_response():
    async def answer(head, reader, writer):
        if b"/silent" in head:
            await asyncio.sleep(5)
            return False
        return await reply(writer, b"SMTP ready\r\n\r\n")

    server = await scripted(answer)
    pool = server.pool()
    with pytest.raises(TimeoutError):  # the server would close the connection after 5 s
        await pool.fetch("GET", "/silent", {}, None, timeout=0.3)
    with pytest.raises(http1.BadResponse):
        await pool.fetch("GET", "/garbage", {}, None, timeout=5)
    pool.close()
    await server.stop()


@pytest.mark.gen_test
async def test_refused_connection_is_an_os_error():
    server = await scripted(answers_ok())
    port = server.port
    await server.stop()
    pool = http1.Pool("127.0.0.1", port)
    with pytest.raises(OSError):
        await pool.fetch("GET", "/", {}, None, timeout=5)
    pool.close()


@pytest.mark.gen_test
async def test_limit_holds_requests_until_a_connection_is_free():
    server = await scripted(answers_ok(after=0.05))
    pool = server.pool(limit=2)
    results = await asyncio.gather(
        *(pool.fetch("GET", f"/{n}", {}, None, timeout=5) for n in range(8))
    )
    assert [status for status, _, _ in results] == [200] * 8
    assert server.connections == 2 and server.most_open == 2
    # A request given up while it waits for a connection leaves no slot taken.
    heads = len(server.heads)
    waiting = [asyncio.ensure_future(pool.fetch("GET", "/", {}, None, timeout=5)) for _ in range(3)]
    await until(lambda: len(server.heads) == heads + 2, what="two requests on the two slots")
    waiting[2].cancel()
    assert [r[0] for r in await asyncio.gather(*waiting[:2])] == [200, 200]
    assert (await pool.fetch("GET", "/", {}, None, timeout=5))[0] == 200
    assert server.connections == 2
    pool.close()
    await server.stop()


@pytest.mark.gen_test
async def test_streamed_upload_is_chunked_unless_its_length_is_given():
    received = []

    async def answer(head, reader, writer):
        if b"chunked" in head.lower():
            body = b""
            while size := int((await reader.readline()).strip(), 16):
                body += await reader.readexactly(size)
                await reader.readexactly(2)
            await reader.readexactly(2)
        else:
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            body = await reader.readexactly(length)
        received.append(body)
        return await reply(writer, OK)

    async def parts():
        for n in range(100):
            yield b"%05d" % n

    server = await scripted(answer)
    pool = server.pool()
    whole = b"".join(b"%05d" % n for n in range(100))
    assert (await pool.fetch("PUT", "/a", {}, parts(), timeout=5))[0] == 200
    headers = {"Content-Length": str(len(whole))}
    assert (await pool.fetch("PUT", "/b", headers, parts(), timeout=5))[0] == 200
    assert received == [whole, whole]
    assert server.connections == 1
    pool.close()
    await server.stop()


@pytest.mark.gen_test
async def test_open_reads_a_large_body_as_it_arrives_and_bounds_each_wait():
    size = 8 * 1024 * 1024

    async def answer(head, reader, writer):
        if b"/slow" in head:
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n")
            await writer.drain()
            await asyncio.sleep(5)
            return False
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size)
        for _ in range(size // 65536):
            writer.write(b"x" * 65536)
            await writer.drain()
        return True

    server = await scripted(answer)
    pool = server.pool(limit=0)
    reply_ = await pool.open("GET", "/big", {}, None, read_timeout=5)
    assert reply_.status == 200
    got, reads, largest = 0, 0, 0
    while chunk := await reply_.read():
        got += len(chunk)
        reads += 1
        largest = max(largest, len(chunk))
    reply_.close()
    reply_.close()  # twice: the connection goes back to the pool once
    assert got == size and reads > 1
    # Reading pauses at the high-water mark: no read returns far more than it.
    assert largest <= http1.HIGH_WATER + 256 * 1024
    assert len(pool._idle) == 1  # read to its end: kept
    slow = await pool.open("GET", "/slow", {}, None, read_timeout=0.3)
    assert await slow.read() == b"abc"
    with pytest.raises(TimeoutError):
        await slow.read()
    slow.close()
    pool.close()
    await server.stop()


@pytest.mark.gen_test
async def test_line_breaks_in_headers_or_target_are_refused_before_sending():
    server = await scripted(answers_ok())
    pool = server.pool()
    with pytest.raises(ValueError):
        await pool.fetch("GET", "/", {"X-A": "1\r\nX-Injected: 2"}, None, timeout=5)
    with pytest.raises(ValueError):
        await pool.fetch("GET", "/a b", {}, None, timeout=5)
    assert server.heads == []
    pool.close()
    await server.stop()


@pytest.mark.gen_test
async def test_closed_pool_fails_exchanges_under_way_and_refuses_new_ones():
    server = await scripted(never_answers)
    pool = server.pool()
    under_way = asyncio.ensure_future(pool.fetch("GET", "/", {}, None, timeout=10))
    await until(lambda: server.heads, what="the request to arrive")
    pool.close()
    with pytest.raises(ConnectionError, match="closed on this side"):
        await under_way
    with pytest.raises(ConnectionError, match="closed"):
        await pool.fetch("GET", "/", {}, None, timeout=5)
    await server.stop()


@pytest.mark.gen_test
async def test_the_pool_frames_bodies_itself_whatever_the_headers_say():
    async def answer(head, reader, writer):
        length = head.lower().split(b"content-length: ")[1].split(b"\r\n")[0]
        await reader.readexactly(int(length))
        return await reply(writer, OK)

    server = await scripted(answer)
    pool = server.pool()
    framing = {"Content-Length": "999", "Transfer-Encoding": "chunked"}
    assert (await pool.fetch("PUT", "/a", framing, b"{}", timeout=5))[0] == 200
    head = server.heads[0].decode().lower()
    assert head.count("content-length") == 1 and "content-length: 2\r\n" in head
    assert "transfer-encoding" not in head
    assert (await pool.fetch("POST", "/a", {}, None, timeout=5))[0] == 200
    assert "content-length: 0\r\n" in server.heads[1].decode().lower()
    pool.close()
    await server.stop()


@pytest.mark.gen_test
async def test_https_with_the_servers_certificate_checked(tmp_path):
    authority = trustme.CA()
    certificate = authority.issue_cert("127.0.0.1")
    served = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    certificate.configure_cert(served)
    trusting = ssl.create_default_context()
    authority.configure_trust(trusting)

    server = Scripted(answers_ok())
    server.server = await asyncio.start_server(server._serve, "127.0.0.1", 0, ssl=served)
    pool = http1.Pool("127.0.0.1", server.port, tls=trusting)
    assert await pool.fetch("GET", "/", {}, None, timeout=5) == (
        200,
        {"content-type": "application/json", "content-length": "11"},
        b'{"ok":true}',
    )
    pool.close()
    # A client that does not trust the server's authority refuses the connection.
    doubting = http1.Pool("127.0.0.1", server.port, tls=ssl.create_default_context())
    with pytest.raises(ssl.SSLCertVerificationError):
        await doubting.fetch("GET", "/", {}, None, timeout=5)
    doubting.close()
    await server.stop()


# -- what a second pair of eyes found (each failed before its fix)


async def slow_parts(count=20, size=100):
    for _ in range(count):
        await asyncio.sleep(0.01)
        yield b"x" * size


@pytest.mark.gen_test
async def test_an_answer_during_a_streamed_upload_ends_it():
    async def answer(head, reader, writer):
        await reply(writer, b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 2\r\n\r\nno")
        while await reader.read(65536):
            pass
        return False

    server = await scripted(answer)
    pool = server.pool()
    status, _, body = await pool.fetch("PUT", "/db/doc/a", {}, slow_parts(), timeout=5)
    assert (status, body) == (413, b"no")
    assert not pool._idle  # the server did not read the whole request: not reused
    pool.close()
    await server.stop()


@pytest.mark.gen_test
async def test_the_timeout_covers_an_upload_the_server_does_not_read():
    server = await scripted(never_answers)
    pool = server.pool()
    with pytest.raises(TimeoutError):  # the server never answers: only the timeout ends it
        await pool.fetch("PUT", "/a", {}, slow_parts(10_000, 65536), timeout=0.5)
    pool.close()
    await server.stop()


@pytest.mark.gen_test
async def test_a_streamed_body_longer_or_shorter_than_its_length_is_refused():
    server = await scripted(never_answers)
    pool = server.pool()
    for length in ("10", "5000"):
        with pytest.raises(ValueError, match="Content-Length"):
            await pool.fetch("PUT", "/a", {"Content-Length": length}, slow_parts(3), timeout=5)
    assert not pool._idle
    pool.close()
    await server.stop()


@pytest.mark.gen_test
async def test_a_body_that_came_whole_while_reading_was_paused_leaves_the_connection_usable():
    size = 400 * 1024  # past the high-water mark, sent at once

    async def answer(head, reader, writer):
        big = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size + b"x" * size
        return await reply(writer, big if b"/big" in head else OK)

    server = await scripted(answer)
    pool = server.pool(limit=0)
    opened = await pool.open("GET", "/big", {}, None, read_timeout=2)
    await asyncio.sleep(0.2)  # not reading: the whole body arrives meanwhile
    opened.close()
    assert (await pool.fetch("GET", "/small", {}, None, timeout=2))[0] == 200
    assert server.connections == 1
    pool.close()
    await server.stop()


@pytest.mark.gen_test
async def test_the_limit_holds_when_connections_are_not_kept_alive():
    async def answer(head, reader, writer):
        await reply(writer, OK.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n", 1))
        return False

    server = await scripted(answer)
    pool = server.pool(limit=1)

    async def worker():
        for _ in range(3):
            assert (await pool.fetch("GET", "/", {}, None, timeout=5))[0] == 200

    await asyncio.gather(worker(), worker())
    assert server.connections == 6 and server.most_open == 1
    pool.close()
    await server.stop()


@pytest.mark.gen_test
async def test_closing_the_pool_fails_requests_waiting_for_a_connection():
    server = await scripted(answers_ok(after=0.2))
    pool = server.pool(limit=1)
    under_way = asyncio.ensure_future(pool.fetch("GET", "/", {}, None, timeout=5))
    waiting = asyncio.ensure_future(pool.fetch("GET", "/", {}, None, timeout=5))
    await until(lambda: server.heads, what="the first request to arrive")
    pool.close()
    for request in (under_way, waiting):
        with pytest.raises(ConnectionError):
            await request
    await until(lambda: not pool._open and not pool._idle, what="the pool to let go")
    assert server.connections == 1
    await server.stop()


@pytest.mark.gen_test
async def test_odd_answers_reset_upgrade_unsolicited_bytes_and_repeated_headers():
    async def answer(head, reader, writer):
        path = head.split(b" ")[1]
        if path == b"/reset":
            writer.write(b"HTTP/1.1 200 OK\r\n\r\npartial")
            await writer.drain()
            # A reset, not an orderly close: the body is cut short.
            linger = struct.pack("ii", 1, 0)
            writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
            writer.transport.abort()
            return False
        if path == b"/upgrade":
            await reply(writer, b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n")
            return False
        if path == b"/cookies":
            await reply(
                writer, b"HTTP/1.1 200 OK\r\nVary: A\r\nVary: B\r\nContent-Length: 0\r\n\r\n"
            )
            await asyncio.sleep(0.1)
            # Bytes nobody asked for, then silence: the client must not take them as an answer.
            await reply(writer, b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\n\r\n")
            return True
        return await reply(writer, OK)

    server = await scripted(answer)
    pool = server.pool()
    with pytest.raises(ConnectionError):
        await pool.fetch("GET", "/reset", {}, None, timeout=5)
    with pytest.raises(http1.BadResponse, match="switched protocols"):
        await pool.fetch("GET", "/upgrade", {}, None, timeout=5)
    _, headers, _ = await pool.fetch("GET", "/cookies", {}, None, timeout=5)
    assert headers == {"vary": "A, B", "content-length": "0"}
    await until(lambda: not pool._idle, what="the connection that sent the 408 to go")
    assert headers == {"vary": "A, B", "content-length": "0"}  # the 408 changed nothing
    assert (await pool.fetch("GET", "/", {}, None, timeout=5))[0] == 200
    with pytest.raises(ValueError):
        await pool.fetch("GET", "/", {"Bad Name": "x"}, None, timeout=5)
    with pytest.raises(ValueError):
        await pool.fetch("GET", "/", {"X-Nul": "a\0b"}, None, timeout=5)
    pool.close()
    await server.stop()


@pytest.mark.gen_test
async def test_a_kept_alive_connection_takes_a_request_at_once_and_fails_it_the_same_way():
    async def answer(head, reader, writer):
        path = head.split(b" ")[1]
        if path == b"/silent":
            await asyncio.sleep(5)
            return False
        if path == b"/garbage":
            await reply(writer, b"SMTP ready\r\n\r\n")
            return False
        return await reply(writer, OK)

    server = await scripted(answer)
    pool = server.pool()
    await pool.fetch("GET", "/ok", {}, None, timeout=5)  # connects: the kept one is idle now
    outcomes: list[object] = []
    done = asyncio.Event()

    def then(outcome: object) -> None:
        outcomes.append(outcome)
        done.set()

    pool.fetch_then("GET", "/ok", {}, None, timeout=5, then=then)
    assert not pool._idle  # taken before fetch_then returned, not a turn of the loop later
    await done.wait()
    await until(lambda: pool._idle, what="the connection to be idle again")
    assert outcomes == [
        (200, {"content-type": "application/json", "content-length": "11"}, b'{"ok":true}')
    ]
    assert server.connections == 1 and len(pool._idle) == 1

    with pytest.raises(TimeoutError):
        await pool.fetch("GET", "/silent", {}, None, timeout=0.3)
    await pool.fetch("GET", "/ok", {}, None, timeout=5)
    with pytest.raises(http1.BadResponse):
        await pool.fetch("GET", "/garbage", {}, None, timeout=5)
    await pool.fetch("GET", "/ok", {}, None, timeout=5)
    heads = len(server.heads)
    abandoned = asyncio.ensure_future(pool.fetch("GET", "/silent", {}, None, timeout=5))
    await until(lambda: len(server.heads) > heads, what="the request to arrive")
    abandoned.cancel()
    assert (await pool.fetch("GET", "/ok", {}, None, timeout=5))[0] == 200
    # Each failure closed its connection, and only those: ok, silent, garbage, silent.
    assert server.connections == 4
    assert len(pool._open) == 1
    with pytest.raises(ValueError):
        await pool.fetch("GET", "/a b", {}, None, timeout=5)
    pool.close()
    await server.stop()


@pytest.mark.gen_test
async def test_a_second_answer_in_the_same_packet_leaves_the_first_whole():
    second = b"HTTP/1.1 500 Oops\r\nX-Extra: 1\r\nContent-Length: 3\r\n\r\nbad"

    async def answer(head, reader, writer):
        if head.startswith(b"HEAD"):
            await reply(writer, b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n" + second)
        else:
            await reply(writer, OK + second)
        return True

    server = await scripted(answer)
    pool = server.pool()
    whole = (200, {"content-type": "application/json", "content-length": "11"}, b'{"ok":true}')
    assert await pool.fetch("GET", "/connects", {}, None, timeout=5) == whole
    await until(lambda: not pool._idle, what="the connection that answered twice to go")
    answered: asyncio.Future = asyncio.get_running_loop().create_future()
    pool.fetch_then("GET", "/kept-alive", {}, None, timeout=5, then=answered.set_result)
    assert await answered == whole
    assert await pool.fetch("HEAD", "/", {}, None, timeout=5) == (
        200,
        {"content-length": "11"},
        b"",
    )
    for method, body in (("GET", b'{"ok":true}'), ("HEAD", b"")):  # read as a stream
        streamed = await pool.open(method, "/streamed", {}, None, read_timeout=5)
        assert streamed.status == 200
        assert b"".join([await streamed.read(), await streamed.read()]) == body
        assert await streamed.read() == b""
        streamed.close()
    await until(lambda: not pool._idle, what="every connection that answered twice to go")
    assert server.connections == 5  # none of them trusted again
    pool.close()
    await server.stop()
