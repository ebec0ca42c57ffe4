"""Subscriber processes for ``bench/fanout.py``: many changes-feed subscribers in one process.

It reads one JSON command per line on stdin and answers with one JSON event per line on
stdout, so that the subscribers live in a process (and on a core) of their own, apart from
settee and from the script that drives the run:

* ``{"cmd": "connect", "kind": "ws", "url": "ws://…/_changes?feed=websocket…", "count": n}``
  opens ``n`` WebSockets to settee (``concurrency`` at a time) and answers ``connected`` once
  each has had its ``{"last_seq"}`` frame (it is then registered with the live stream);
* ``{"cmd": "connect", "kind": "continuous", "url": "http://…?feed=continuous…", "count": n}``
  opens ``n`` continuous ``_changes`` feeds straight to the backend (aiohttp,
  ``Accept-Encoding: identity``); pouchdb-server sends the headers only with the first row, so
  these are known to be live only once a row has arrived (the driver writes one to check);
* ``{"cmd": "expect", "phase": p, "count": docs, "latency": bool}``: rows whose id is
  ``<p>-<index>`` (index < docs) belong to phase ``p``. Each subscriber marks the indexes it
  gets (duplicates counted); when every open subscriber has all ``docs`` of them (or the rest
  are closed), it answers ``complete`` with the wall-clock time of the last row that completed
  a subscriber. With ``latency``, each row's receive time minus the ``t`` in its document
  (``include_docs=true``; written by the driver with ``time.time()`` just before its PUT) is
  kept, in µs;
* ``{"cmd": "report", "phase": p}``: the phase's counts, latencies and close codes;
* ``{"cmd": "close"}`` closes every subscriber; ``{"cmd": "exit"}`` ends the process.

The WebSocket client is a small asyncio protocol rather than a library's client, on uvloop
where installed: it answers pings, offers no extension (frames are never compressed) and
costs the shared CPU as little as possible. A chunk is only stamped with its arrival time
when it arrives; it is parsed after the loop has taken in every socket that was ready with
it. Parsing on arrival would count against settee the time this process spends decoding the
frames of the subscribers read before: one change reaches all N sockets at once, and at
N = 100 on asyncio's loop decoding the other 99 documents took this process ~5 ms.

    .venv/bin/python bench/fanout_client.py   # driven by bench/fanout.py
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import resource
import sys
import threading
import time
import urllib.parse
from collections import Counter
from typing import Any

import aiohttp
import ujson


def emit(event: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def raise_nofile() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


class Phase:
    """The rows of one measurement, as every subscriber of this process received them."""

    def __init__(self, name: str, count: int, latency: bool) -> None:
        self.name = name
        self.count = count
        self.latency = latency
        self.latencies_us: list[int] = []
        self.complete = 0
        self.rows = 0
        self.dups = 0
        self.first: float | None = None
        self.last_complete: float | None = None
        self.announced = False


class Subscriber:
    """One subscriber's marks: per phase, a byte per expected row."""

    def __init__(self, hub: Client) -> None:
        self.hub = hub
        self.marks: dict[str, bytearray] = {}
        self.counts: dict[str, int] = {}
        self.closed: int | str | None = None  # close code, or an error's name

    def rows(self, rows: Any, now: float) -> None:
        phases = self.hub.phases
        for row in rows:
            doc_id = row.get("id")
            if doc_id is None:
                continue
            name, _, index = doc_id.rpartition("-")
            phase = phases.get(name)
            if phase is None:
                self.hub.other_rows += 1
                continue
            phase.rows += 1
            if phase.first is None:
                phase.first = now
            if phase.latency:
                doc = row.get("doc")
                if doc and "t" in doc:
                    phase.latencies_us.append(round((now - doc["t"]) * 1e6))
            marks = self.marks.get(name)
            if marks is None:
                marks = self.marks[name] = bytearray(phase.count)
                self.counts[name] = 0
            i = int(index)
            if i >= phase.count:
                continue
            if marks[i]:
                phase.dups += 1
                continue
            marks[i] = 1
            self.counts[name] += 1
            if self.counts[name] == phase.count:
                phase.complete += 1
                phase.last_complete = now
                self.hub.check(phase)

    def ended(self, why: int | str) -> None:
        if self.closed is None:
            self.closed = why
            self.hub.closed[str(why)] += 1
            for phase in self.hub.phases.values():
                self.hub.check(phase)


class WebSocket(asyncio.Protocol, Subscriber):
    """A bare WebSocket client: the upgrade, then text, ping and close frames."""

    def __init__(self, hub: Client, host: str, port: int, path: str) -> None:
        Subscriber.__init__(self, hub)
        self.request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
        self.buffer = bytearray()
        self.upgraded = False
        self.fragments: bytearray | None = None
        self.ready: asyncio.Future = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.transport.write(self.request)  # type: ignore[union-attr]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(f"closed before ready: {exc}"))
        self.ended(type(exc).__name__ if exc else "eof")

    def data_received(self, data: bytes) -> None:
        self.hub.arrived(self, data, time.time())

    def parse(self, data: bytes, now: float) -> None:
        """Take in a chunk that arrived at ``now``: the upgrade, then whole frames."""
        buffer = self.buffer
        buffer += data
        if not self.upgraded:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            if not buffer.startswith(b"HTTP/1.1 101"):
                status = bytes(buffer[:end]).split(b"\r\n", 1)[0].decode(errors="replace")
                if not self.ready.done():
                    self.ready.set_exception(ConnectionError(status))
                self.transport.close()  # type: ignore[union-attr]
                return
            del buffer[: end + 4]
            self.upgraded = True
        pos, size = 0, len(buffer)
        while size - pos >= 2:
            b0, b1 = buffer[pos], buffer[pos + 1]
            length, head = b1 & 0x7F, 2
            if length == 126:
                if size - pos < 4:
                    break
                length, head = int.from_bytes(buffer[pos + 2 : pos + 4], "big"), 4
            elif length == 127:
                if size - pos < 10:
                    break
                length, head = int.from_bytes(buffer[pos + 2 : pos + 10], "big"), 10
            if size - pos - head < length:
                break
            payload = bytes(buffer[pos + head : pos + head + length])
            pos += head + length
            opcode = b0 & 0x0F
            if opcode == 1 or opcode == 0:
                if not b0 & 0x80:  # a fragment: keep it until the last one
                    self.fragments = (self.fragments or bytearray()) + payload
                    continue
                if self.fragments is not None:
                    payload, self.fragments = bytes(self.fragments + payload), None
                self.text(payload, now)
            elif opcode == 9:
                self.send(0xA, payload)
            elif opcode == 8:
                code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
                self.ended(code)
                self.send(0x8, payload[:2])
                self.transport.close()  # type: ignore[union-attr]
                break
        if pos:
            del buffer[:pos]

    def text(self, payload: bytes, now: float) -> None:
        frame = ujson.loads(payload)
        if isinstance(frame, dict):
            if "last_seq" in frame and "id" not in frame:
                if not self.ready.done():
                    self.ready.set_result(frame["last_seq"])
                return
            frame = (frame,)
        self.rows(frame, now)

    def send(self, opcode: int, payload: bytes) -> None:
        """A masked client frame (payloads here are below 126 bytes)."""
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(bytes((0x80 | opcode, 0x80 | len(payload))) + mask + masked)

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.send(0x8, (1000).to_bytes(2, "big"))
            self.transport.close()


class ContinuousFeed(Subscriber):
    """A continuous ``_changes`` feed read straight from the backend with aiohttp."""

    def __init__(self, hub: Client, session: aiohttp.ClientSession, url: str) -> None:
        super().__init__(hub)
        self.task = asyncio.ensure_future(self.follow(session, url))

    async def follow(self, session: aiohttp.ClientSession, url: str) -> None:
        try:
            async with session.get(url, headers={"Accept-Encoding": "identity"}) as response:
                if response.status != 200:
                    self.ended(response.status)
                    return
                async for line in response.content:
                    now = time.time()
                    line = line.strip()
                    if line:
                        row = ujson.loads(line)
                        if "id" in row:
                            self.rows((row,), now)
            self.ended("eof")
        except asyncio.CancelledError:
            self.ended("closed")
            raise
        except Exception as exc:
            self.ended(type(exc).__name__)

    def close(self) -> None:
        self.task.cancel()


class Client:
    def __init__(self) -> None:
        self.subscribers: list[Any] = []
        self.phases: dict[str, Phase] = {}
        self.closed: Counter[str] = Counter()
        self.other_rows = 0
        self.session: aiohttp.ClientSession | None = None
        self.chunks: list[tuple[WebSocket, bytes, float]] = []

    def arrived(self, socket: WebSocket, data: bytes, now: float) -> None:
        """Keep a chunk for after this turn of the loop (see the module's docstring)."""
        if not self.chunks:
            asyncio.get_running_loop().call_soon(self.parse_chunks)
        self.chunks.append((socket, data, now))

    def parse_chunks(self) -> None:
        """Parse the chunks of this turn in arrival order; a socket that sends something
        unreadable is dropped (as the loop would drop it from ``data_received``), not the
        chunks of the sockets after it."""
        chunks, self.chunks = self.chunks, []
        for socket, data, now in chunks:
            if socket.closed is not None:
                continue
            try:
                socket.parse(data, now)
            except Exception as exc:
                socket.ended(f"unreadable: {type(exc).__name__}")
                socket.transport.abort()  # type: ignore[union-attr]

    def check(self, phase: Phase) -> None:
        if phase.announced or not self.subscribers:
            return
        if phase.complete + sum(self.closed.values()) >= len(self.subscribers):
            phase.announced = True
            emit({"event": "complete", "phase": phase.name, "t": phase.last_complete})

    async def connect(self, command: dict[str, Any]) -> None:
        started = time.monotonic()
        count, kind = command["count"], command["kind"]
        limit = asyncio.Semaphore(command.get("concurrency", 64))
        timeout = command.get("timeout", 60.0)
        errors: Counter[str] = Counter()
        deadline = started + timeout
        if kind == "ws":
            url = urllib.parse.urlsplit(command["url"])
            path = url.path + ("?" + url.query if url.query else "")
            loop = asyncio.get_running_loop()

            async def one() -> None:
                async with limit:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        errors["deadline"] += 1
                        return
                    try:
                        async with asyncio.timeout(min(left, 30.0)):
                            _, ws = await loop.create_connection(
                                lambda: WebSocket(self, url.hostname, url.port, path),
                                url.hostname,
                                url.port,
                            )
                            self.subscribers.append(ws)
                            await ws.ready
                    except Exception as exc:
                        errors[f"{type(exc).__name__}: {exc}"[:120]] += 1

            await asyncio.gather(*(one() for _ in range(count)))
        else:
            if self.session is None:
                self.session = aiohttp.ClientSession(
                    connector=aiohttp.TCPConnector(limit=0, limit_per_host=0),
                    timeout=aiohttp.ClientTimeout(total=None, sock_read=None),
                    auto_decompress=False,
                )
            for _ in range(count):
                self.subscribers.append(ContinuousFeed(self, self.session, command["url"]))
            await asyncio.sleep(0.5)
        ok = len(self.subscribers) - sum(self.closed.values())
        emit(
            {
                "event": "connected",
                "ok": ok,
                "failed": count - ok,
                "errors": dict(errors.most_common(5)),
                "seconds": round(time.monotonic() - started, 3),
            }
        )

    def expect(self, command: dict[str, Any]) -> None:
        phase = Phase(command["phase"], command["count"], command.get("latency", False))
        self.phases[phase.name] = phase
        self.check(phase)

    def report(self, command: dict[str, Any]) -> None:
        phase = self.phases[command["phase"]]
        counts = [s.counts.get(phase.name, 0) for s in self.subscribers]
        emit(
            {
                "event": "report",
                "phase": phase.name,
                "subscribers": len(self.subscribers),
                "complete": phase.complete,
                "min_rows": min(counts, default=0),
                "missing": sum(phase.count - c for c in counts),
                "rows": phase.rows,
                "dups": phase.dups,
                "first": phase.first,
                "last_complete": phase.last_complete,
                "latencies_us": phase.latencies_us if command.get("latencies") else [],
                "closed": dict(self.closed),
                "other_rows": self.other_rows,
            }
        )
        if command.get("forget", True):
            del self.phases[phase.name]

    async def close(self) -> None:
        for subscriber in self.subscribers:
            subscriber.closed = "closed by the driver"  # its end is not counted as a loss
            subscriber.close()
        await asyncio.sleep(0.2)
        self.subscribers.clear()
        self.closed.clear()
        emit({"event": "closed"})

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        commands: asyncio.Queue = asyncio.Queue()

        def read_stdin() -> None:
            for line in sys.stdin:
                if line.strip():
                    loop.call_soon_threadsafe(commands.put_nowait, json.loads(line))
            loop.call_soon_threadsafe(commands.put_nowait, {"cmd": "exit"})

        threading.Thread(target=read_stdin, daemon=True).start()
        emit({"event": "started", "pid": os.getpid(), "nofile": raise_nofile()})
        while True:
            command = await commands.get()
            name = command["cmd"]
            if name == "connect":
                await self.connect(command)
            elif name == "expect":
                self.expect(command)
            elif name == "report":
                self.report(command)
            elif name == "close":
                await self.close()
            elif name == "exit":
                break
        for subscriber in self.subscribers:
            subscriber.close()
        if self.session is not None:
            with contextlib.suppress(Exception):
                await self.session.close()


def new_loop() -> asyncio.AbstractEventLoop:
    """uvloop where installed: its reads cost this process a third of asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


if __name__ == "__main__":
    with asyncio.Runner(loop_factory=new_loop) as runner:
        runner.run(Client().run())
