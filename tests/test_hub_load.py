"""The hub under faults and load: backend restarts, slow consumers, a thousand subscribers."""

from __future__ import annotations

import asyncio
import base64
import gc
import itertools
import os
import resource
import socket
import struct
import time

import pytest
import ujson
from tornado.websocket import WebSocketClientConnection, websocket_connect

from service.couch import Couch, blocking
from service.handlers.changes import ChangesHandler
from service.hub import Closed, Hub, Subscription
from service.sources import CouchSource
from tests.faults import FAULTS, Writer, run_faults


class Collector:
    """A WebSocket subscriber that reads every frame and keeps the ids of the rows."""

    def __init__(self, ws: WebSocketClientConnection) -> None:
        self.ws = ws
        self.ids: list[str] = []
        self.task = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        while (message := await self.ws.read_message()) is not None:
            frame = ujson.loads(message)
            for row in frame if isinstance(frame, list) else [frame]:
                if "id" in row:
                    self.ids.append(row["id"])

    async def wait_for(self, ids: set[str], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not ids <= set(self.ids) and time.monotonic() < deadline:
            closed = self.task.done() or self.ws.close_code is not None
            assert not closed, f"closed: {self.ws.close_code} {self.ws.close_reason}"
            await asyncio.sleep(0.05)

    def close(self) -> None:
        self.ws.close()
        self.task.cancel()


def assert_same_changes_in_the_same_order(subscribers: list[Collector], ids: list[str]) -> None:
    """Each subscriber got every id once, all in the one order their shared upstream feed had.

    That order is the backend's: write order on pouchdb-server, the shards interleaved on
    CouchDB (q=2), so it is compared between subscribers, never with the order of the writes.
    """
    assert sorted(subscribers[0].ids) == sorted(ids)
    for subscriber in subscribers[1:]:
        assert subscriber.ids == subscribers[0].ids


async def collectors(settee, db: str, count: int, query: str = "&since=now") -> list[Collector]:
    sockets = await asyncio.gather(
        *(websocket_connect(settee.ws_url(db, query)) for _ in range(count))
    )
    return [Collector(ws) for ws in sockets]


@pytest.mark.gen_test(timeout=240)
async def test_100_subscribers_lose_nothing_while_the_backend_restarts(start_settee, disk_server):
    """On both backends: the server of the test's own is SIGKILLed and restarted three times."""
    blocking.Couch(disk_server.url).create("faults")
    settee = start_settee(couch_url=disk_server.url, couch_timeout=5)
    subscribers = await collectors(settee, "faults", 100, "&since=0")
    writer = Writer(disk_server.url, limit=2_000)
    writer.thread.start()
    await asyncio.to_thread(run_faults, disk_server, writer)
    await asyncio.to_thread(writer.thread.join)
    assert len(writer.acked) == 2_000
    for subscriber in subscribers:
        await subscriber.wait_for(set(writer.acked), timeout=60)
    hub = settee.hub
    assert hub.upstreams_started == 1, "a fault made the hub open a second upstream feed"
    assert hub.reconnects >= FAULTS
    for subscriber in subscribers:
        assert set(subscriber.ids) >= set(writer.acked)
        assert len(subscriber.ids) == len(set(subscriber.ids)), "a change arrived twice"
        subscriber.close()


class StalledSubscriber:
    """A raw WebSocket client that opens the feed and does not read until told to."""

    def __init__(self, url: str, path: str, auth_lines: str = "") -> None:
        host, port = url.removeprefix("http://").split(":")
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.connect((host, int(port)))
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n{auth_lines}"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        self.buffer = b""
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += self.sock.recv(4096)
        assert self.buffer.startswith(b"HTTP/1.1 101"), self.buffer[:200]
        self.buffer = self.buffer.split(b"\r\n\r\n", 1)[1]

    def close_code(self, timeout: float) -> int | None:
        """Read everything that was held back, until the close frame; its code."""
        self.sock.settimeout(timeout)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            frame = self._frame()
            if frame is None:
                return None
            opcode, payload = frame
            if opcode == 8:
                return struct.unpack("!H", payload[:2])[0]
        return None

    def _frame(self) -> tuple[int, bytes] | None:
        header = self._take(2)
        if header is None:
            return None
        opcode, length = header[0] & 0x0F, header[1] & 0x7F
        if length == 126:
            length = struct.unpack("!H", self._take(2))[0]
        elif length == 127:
            length = struct.unpack("!Q", self._take(8))[0]
        payload = self._take(length)
        return None if payload is None else (opcode, payload)

    def _take(self, count: int) -> bytes | None:
        while len(self.buffer) < count:
            try:
                chunk = self.sock.recv(1 << 20)
            except OSError:
                return None
            if not chunk:
                return None
            self.buffer += chunk
        data, self.buffer = self.buffer[:count], self.buffer[count:]
        return data


@pytest.mark.gen_test(timeout=60)
async def test_pings_keep_answering_subscribers_and_close_silent_ones(start_settee, db_name, bdb):
    settee = start_settee(heartbeat=0.3)
    path = f"/{db_name}/_changes?feed=websocket&since=now"
    silent = await asyncio.to_thread(
        StalledSubscriber, settee.url, path, settee.auth_lines
    )  # never answers
    readers = await collectors(settee, db_name, 3)
    assert await asyncio.to_thread(silent.close_code, 5) == 1000  # "ping timed out"
    deadline = time.monotonic() + 10  # Tornado waits 5 s for the closing handshake
    while settee.hub.subscribers > 3 and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert settee.hub.subscribers == 3
    await asyncio.sleep(1.5)  # five intervals: the readers' client answers every ping
    await asyncio.to_thread(bdb.save, {"_id": "still-there"})
    for reader in readers:
        await reader.wait_for({"still-there"}, timeout=10)
        reader.close()


def rss_bytes() -> int:
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmRSS:"))
    return int(line.split()[1]) * 1024


MEMORY_BOUND = 300 * 1024 * 1024  # growth allowed for the whole test process


@pytest.mark.gen_test(timeout=180)
async def test_slow_consumers_are_closed_and_never_delay_the_others(start_settee, db_name, bdb):
    settee = start_settee(subscriber_buffer=100)
    path = f"/{db_name}/_changes?feed=websocket&since=now&include_docs=true"
    stalled = [
        await asyncio.to_thread(StalledSubscriber, settee.url, path, settee.auth_lines)
        for _ in range(20)
    ]
    readers = await collectors(settee, db_name, 20, "&since=now&include_docs=true")
    await asyncio.sleep(0.5)
    before = rss_bytes()
    padding = "x" * 16_000
    ids = [f"big-{n:04d}" for n in range(600)]
    for start in range(0, len(ids), 20):  # a steady stream: 20 changes every 50 ms
        docs = [{"_id": doc_id, "padding": padding} for doc_id in ids[start : start + 20]]
        await asyncio.to_thread(bdb.save, docs)
        await asyncio.sleep(0.05)
    for reader in readers:
        await reader.wait_for(set(ids), timeout=60)
    assert_same_changes_in_the_same_order(readers, ids)
    deadline = time.monotonic() + 30
    while settee.hub.stats.slow_consumer_closes < 20 and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert settee.hub.stats.slow_consumer_closes == 20
    assert rss_bytes() - before < MEMORY_BOUND
    codes = await asyncio.gather(*(asyncio.to_thread(s.close_code, 10) for s in stalled))
    assert codes == [4008] * 20
    for reader in readers:
        reader.close()


@pytest.mark.gen_test(timeout=240)
async def test_1000_subscribers_all_receive_a_burst_of_200_changes(start_settee, db_name, bdb):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 4096:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(8192, hard), hard))
    settee = start_settee()
    subscribers: list[Collector] = []
    for _ in range(10):
        subscribers += await collectors(settee, db_name, 100)
    assert settee.hub.subscribers == 1000
    assert len(settee.hub.upstreams) == 1
    ids = [f"burst-{n:03d}" for n in range(200)]
    await asyncio.to_thread(bdb.save, [{"_id": doc_id} for doc_id in ids])
    for subscriber in subscribers:
        await subscriber.wait_for(set(ids), timeout=120)
    assert_same_changes_in_the_same_order(subscribers, ids)
    for subscriber in subscribers:
        subscriber.close()


class PromptReader:
    """A WebSocket subscriber that reads all that has arrived whenever it can, and answers
    pings: a raw client, light enough that a hundred in the test's own process keep up
    with a burst of a million frames (Tornado's client parses frame by frame)."""

    def __init__(self, settee, db: str, query: str = "&since=now") -> None:
        self.url, self.path = settee.url, f"/{db}/_changes?feed=websocket{query}"
        self.auth_lines = settee.auth_lines
        self.ids: list[str] = []
        self.close_code: int | None = None

    async def connect(self) -> PromptReader:
        host, port = self.url.removeprefix("http://").split(":")
        self.reader, self.writer = await asyncio.open_connection(host, int(port))
        key = base64.b64encode(os.urandom(16)).decode()
        self.writer.write(
            f"GET {self.path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n{self.auth_lines}"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        head = await self.reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head[:200]
        self.task = asyncio.ensure_future(self._read())
        return self

    async def _read(self) -> None:
        buffer = bytearray()
        while chunk := await self.reader.read(1 << 20):
            buffer += chunk
            used = self._frames(buffer)
            del buffer[:used]

    def _frames(self, buffer: bytearray) -> int:
        """Handle the whole frames at the start of ``buffer``; how many bytes they took."""
        offset = 0
        while len(buffer) - offset >= 2:
            opcode, length, start = buffer[offset] & 0x0F, buffer[offset + 1] & 0x7F, offset + 2
            extended = {126: "!H", 127: "!Q"}.get(length)
            if extended:
                if len(buffer) < start + struct.calcsize(extended):
                    break
                (length,) = struct.unpack_from(extended, buffer, start)
                start += struct.calcsize(extended)
            if len(buffer) < start + length:
                break
            payload, offset = bytes(buffer[start : start + length]), start + length
            if opcode == 1:
                frame = ujson.loads(payload)
                rows = frame if isinstance(frame, list) else [frame]
                self.ids += [row["id"] for row in rows if "id" in row]
            elif opcode == 9:  # a ping: a client's pong is masked (with zeros, here)
                self.writer.write(struct.pack("!BB", 0x8A, 0x80 | length) + bytes(4) + payload)
            elif opcode == 8:
                self.close_code = struct.unpack_from("!H", payload)[0]
        return offset

    async def wait_for(self, ids: set[str], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not ids <= set(self.ids) and time.monotonic() < deadline:
            assert self.close_code is None and not self.task.done(), f"closed: {self.close_code}"
            await asyncio.sleep(0.05)

    def close(self) -> None:
        self.writer.close()
        self.task.cancel()


async def prompt_readers(settee, db: str, count: int) -> list[PromptReader]:
    return list(await asyncio.gather(*(PromptReader(settee, db).connect() for _ in range(count))))


class ContinuousReader:
    """An HTTP ``feed=continuous`` subscriber that reads every line as it comes."""

    def __init__(self, settee, db: str) -> None:
        self.ids: list[str] = []
        self._rest = b""
        path = f"/{db}/_changes?feed=continuous&since=now"
        self.request = asyncio.ensure_future(
            settee.fetch("GET", path, streaming_callback=self._take, request_timeout=0)
        )

    def _take(self, chunk: bytes) -> None:
        *lines, self._rest = (self._rest + chunk).split(b"\n")
        rows = [ujson.loads(line) for line in lines if line.strip()]
        self.ids += [row["id"] for row in rows if "id" in row]

    async def wait_for(self, ids: set[str], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not ids <= set(self.ids) and time.monotonic() < deadline:
            assert not self.request.done(), "the feed ended"
            await asyncio.sleep(0.05)

    def close(self) -> None:
        self.request.cancel()


async def until_followed(db, readers: list[ContinuousReader]) -> None:
    """Writes documents until every reader has one: its feed is flowing from the backend (a
    ``since=now`` feed misses what was written before the backend began it)."""
    deadline = time.monotonic() + 30
    for n in itertools.count():
        await asyncio.to_thread(db.save, {"_id": f"followed-{n}"})
        await asyncio.sleep(0.1)
        if all(reader.ids for reader in readers) or time.monotonic() > deadline:
            break
    assert all(reader.ids for reader in readers), "a reader's feed never began"


async def until_subscribed(settee, count: int) -> None:
    deadline = time.monotonic() + 10
    while settee.hub.subscribers < count and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert settee.hub.subscribers == count


@pytest.mark.gen_test(timeout=120)
async def test_a_burst_larger_than_the_buffer_reaches_readers_whole(start_settee, db_name, bdb):
    """One upstream read of more rows than ``subscriber_buffer`` is no slow consumer: the
    limit is on what a socket could not take, and these sockets take everything at once."""
    settee = start_settee(subscriber_buffer=20)
    readers = await prompt_readers(settee, db_name, 10)
    continuous = [ContinuousReader(settee, db_name) for _ in range(2)]
    await until_subscribed(settee, 12)
    ids = [f"burst-{n:04d}" for n in range(3_000)]
    await asyncio.to_thread(bdb.bulk_docs, [{"_id": doc_id} for doc_id in ids])
    for reader in [*readers, *continuous]:
        await reader.wait_for(set(ids), timeout=60)
    assert_same_changes_in_the_same_order(readers, ids)
    assert all(sorted(reader.ids) == sorted(ids) for reader in continuous)
    assert settee.hub.stats.slow_consumer_closes == 0
    for reader in [*readers, *continuous]:
        reader.close()


@pytest.mark.gen_test(timeout=120)
async def test_a_10000_document_bulk_write_reaches_100_subscribers_whole(
    start_settee, db_name, bdb
):
    settee = start_settee()
    readers = await prompt_readers(settee, db_name, 100)
    await until_subscribed(settee, 100)
    ids = [f"bulk-{n:05d}" for n in range(10_000)]
    await asyncio.to_thread(bdb.bulk_docs, [{"_id": doc_id} for doc_id in ids])
    for reader in readers:
        await reader.wait_for(set(ids), timeout=60)
    assert_same_changes_in_the_same_order(readers, ids)
    assert settee.hub.stats.slow_consumer_closes == 0
    for reader in readers:
        reader.close()


@pytest.mark.gen_test(timeout=120)
async def test_a_stalled_continuous_feed_is_ended_and_the_others_go_on(start_settee, db_name, bdb):
    settee = start_settee(subscriber_buffer=50)
    host, port = settee.url.removeprefix("http://").split(":")
    stalled = socket.socket()
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.connect((host, int(port)))
    path = f"/{db_name}/_changes?feed=continuous&since=now&include_docs=true"
    stalled.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{settee.auth_lines}\r\n".encode())
    readers = await collectors(settee, db_name, 5, "&since=now&include_docs=true")
    deadline = time.monotonic() + 10
    while settee.hub.subscribers < 6 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    padding = "x" * 16_000
    ids = [f"big-{n:04d}" for n in range(600)]
    for start in range(0, len(ids), 20):
        docs = [{"_id": doc_id, "padding": padding} for doc_id in ids[start : start + 20]]
        await asyncio.to_thread(bdb.save, docs)
        await asyncio.sleep(0.05)
    for reader in readers:
        await reader.wait_for(set(ids), timeout=60)
    assert_same_changes_in_the_same_order(readers, ids)
    deadline = time.monotonic() + 30
    while settee.hub.stats.slow_consumer_closes < 1 and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert settee.hub.stats.slow_consumer_closes == 1
    assert settee.hub.stats.subscribers_by_kind["continuous"] == 0
    stalled.close()
    for reader in readers:
        reader.close()


class FeedReader:
    """Stands for an HTTP feed's handler: takes what the hub has, is busy writing it until
    ``written`` is set (a socket that stopped taking), and learns of its close from next()."""

    def __init__(self, hub: Hub, db: str) -> None:
        self.hub, self.db = hub, db
        self.busy = asyncio.Event()
        self.code: int | None = None

    async def run(self, written: asyncio.Event) -> None:
        async with self.hub.subscribe(self.db, since="now", kind="continuous") as subscription:
            try:
                while True:
                    await subscription.next()
                    self.busy.set()
                    await written.wait()
            except Closed as closed:
                self.code = closed.code


def alive(kind: type) -> int:
    gc.collect()
    return sum(1 for thing in gc.get_objects() if isinstance(thing, kind))


@pytest.mark.gen_test(timeout=120)
async def test_subscribe_and_slow_consumer_close_cycles_leave_no_objects_behind(
    server_url, db_name, bdb
):
    """1,000 subscriptions closed as slow consumers, each told by an exception it catches:
    none of them, nor what caught it, stays alive (an exception raised again keeps the
    frames of every raise)."""
    counts = []
    async with Couch(server_url) as couch:
        hub = Hub(CouchSource(couch), queue_limit=1)
        for round in range(20):
            written = asyncio.Event()
            readers = [FeedReader(hub, db_name) for _ in range(50)]
            running = [asyncio.ensure_future(reader.run(written)) for reader in readers]
            for reader in readers:  # each took its caught-up marker and is writing it
                await asyncio.wait_for(reader.busy.wait(), 10)
            closes = hub.stats.slow_consumer_closes
            docs = [{"_id": f"r{round}-{n}"} for n in range(2)]
            await asyncio.to_thread(bdb.bulk_docs, docs)
            deadline = time.monotonic() + 10
            while hub.stats.slow_consumer_closes < closes + 50 and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            written.set()
            await asyncio.wait_for(asyncio.gather(*running), 10)
            assert {reader.code for reader in readers} == {4008}
            del readers, running, reader
            counts.append((alive(FeedReader), alive(Subscription)))
        hub.close()
        await hub.wait_closed()
    assert hub.stats.slow_consumer_closes == 1_000
    assert counts[-1] == counts[0], f"objects kept alive: {counts}"


@pytest.mark.gen_test(timeout=120)
async def test_feeds_ended_with_their_database_leave_no_handlers_behind(settee, bcouch, backend):
    """Every subscriber of a deleted database is told by an exception: each its own, so no
    handler stays alive in the traceback of another's."""
    if backend == "pouchdb":
        pytest.skip("pouchdb-server keeps a deleted database's continuous feed open")
    counts = []
    for round in range(10):
        name = f"test-gone-{round}-{time.monotonic_ns()}"
        bcouch.create(name)
        readers = [ContinuousReader(settee, name) for _ in range(10)]
        await until_subscribed(settee, 10)
        await until_followed(bcouch[name], readers)
        await asyncio.to_thread(bcouch.delete, name)
        await asyncio.wait_for(asyncio.gather(*(reader.request for reader in readers)), 30)
        assert all(reader.request.result().code == 200 for reader in readers)
        del readers
        counts.append((alive(ChangesHandler), alive(Subscription)))
    assert counts[-1] == counts[0], f"objects kept alive: {counts}"
