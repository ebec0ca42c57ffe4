"""RFC 6455's closing rules on the WebSocket changes feed: once settee has sent its Close
frame, the subscription is over (it holds no place in the hub) and no data frame follows."""

from __future__ import annotations

import asyncio
import base64
import os
import struct

import pytest

CLOSE, TEXT, PING = 8, 1, 9


class SilentSubscriber:
    """A raw WebSocket client that reads what it is sent and answers nothing: no pong, no
    Close frame of its own. What a peer that has gone away looks like to the server."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, settee, db: str) -> SilentSubscriber:
        host, port = settee.url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            f"GET /{db}/_changes?feed=websocket&since=now HTTP/1.1\r\nHost: {host}\r\n"
            f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            f"{settee.auth_lines}Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert head.startswith(b"HTTP/1.1 101"), head[:200]
        return cls(reader, writer)

    async def frame(self) -> tuple[int, bytes] | None:
        """The next frame's opcode and payload; None at the end of the stream."""
        try:
            first, second = await self.reader.readexactly(2)
            length = second & 0x7F
            if length in (126, 127):
                size = 2 if length == 126 else 8
                (length,) = struct.unpack(
                    "!H" if size == 2 else "!Q", await self.reader.readexactly(size)
                )
            return first & 0x0F, await self.reader.readexactly(length)
        except (asyncio.IncompleteReadError, ConnectionError):
            return None

    async def frames_until(self, opcode: int | None) -> list[tuple[int, bytes]]:
        """Frames up to and including the first of ``opcode`` (None: up to the end)."""
        frames = []
        while (frame := await asyncio.wait_for(self.frame(), 30)) is not None:
            frames.append(frame)
            if frame[0] == opcode:
                break
        return frames


@pytest.mark.gen_test(timeout=60)
async def test_a_failed_ping_ends_the_subscription_and_nothing_follows_the_close(
    start_settee, db_name, bdb
):
    settee = start_settee(heartbeat=0.2)
    silent = await SilentSubscriber.open(settee, db_name)
    assert settee.hub.subscribers == 1
    frames = await silent.frames_until(CLOSE)  # pings it does not answer, then the Close
    assert frames[-1][0] == CLOSE
    assert {opcode for opcode, _ in frames[:-1]} <= {PING, TEXT}
    # At once, not when the closing handshake times out: the subscription is over.
    assert settee.hub.subscribers == 0
    await asyncio.to_thread(bdb.save, {"_id": "after-the-close"})
    after = await silent.frames_until(None)  # until settee ends the TCP connection
    assert after == []
    silent.writer.close()


@pytest.mark.gen_test(timeout=60)
async def test_a_subscription_the_hub_ends_sends_nothing_after_its_close(
    start_settee, db_name, bdb
):
    """The hub ends a subscription (here: shutdown, 1001); rows queued for it are not sent."""
    settee = start_settee()
    silent = await SilentSubscriber.open(settee, db_name)
    settee.hub.close()
    frames = await silent.frames_until(CLOSE)
    assert struct.unpack("!H", frames[-1][1][:2])[0] == 1001
    assert settee.hub.subscribers == 0
    assert await silent.frames_until(None) == []
    silent.writer.close()
