"""WebSocket frames of change rows, and the pump that writes a subscription to its socket.

A row's frame is built once and sent to every subscriber as the same bytes. The pump writes
as rows arrive, from the hub's own call, so that an idle subscriber costs no task: thousands
of subscribers are thousands of socket writes per change, not thousands of task wake-ups.
"""

from __future__ import annotations

import asyncio
import struct
from asyncio import Future

import ujson
from tornado import iostream

from ..hub import CaughtUp, Encoded, HubStats, Item, Subscription


def frames(items: list[Item], *, batched: bool) -> list[bytes]:
    """WebSocket frames for queued items: one per row, or one array of the rows in a row
    when batched; a caught-up marker is always a frame of its own."""
    if not batched:
        return [item if isinstance(item, bytes) else marker(item) for item in items]
    out: list[bytes] = []
    rows: list[bytes] = []
    for item in items:
        if isinstance(item, bytes):
            rows.append(item)
            continue
        if rows:
            out.append(b"[" + b",".join(rows) + b"]")
            rows = []
        out.append(marker(item))
    if rows:
        out.append(b"[" + b",".join(rows) + b"]")
    return out


def text_frame(payload: bytes) -> bytes:
    """A WebSocket text frame as a server sends it: unmasked, uncompressed, whole (RFC 6455)."""
    length = len(payload)
    if length < 126:
        return struct.pack("!BB", 0x81, length) + payload
    if length <= 0xFFFF:
        return struct.pack("!BBH", 0x81, 126, length) + payload
    return struct.pack("!BBQ", 0x81, 127, length) + payload


def shared_frame(payload: bytes) -> bytes:
    """``text_frame(payload)``, built once per row however many subscribers send it."""
    frame = getattr(payload, "websocket_frame", None)
    if frame is None:
        frame = text_frame(payload)
        if isinstance(payload, Encoded):
            payload.websocket_frame = frame  # type: ignore[attr-defined]
    return frame


def marker(caught_up: CaughtUp) -> bytes:
    return ujson.dumps({"last_seq": caught_up.last_seq}).encode()


class FramePump:
    """Writes a subscription's rows to a WebSocket's stream, as they arrive.

    While the socket takes what it is given, the pump is idle and each batch the hub offers
    is written at once, however large. While the socket has not taken all of a write, rows
    wait in the subscription's bounded queue (where the hub closes a subscriber that lets
    too many pile up) and go out in one write when it drains. With ``latency`` > 0, the rows
    of each ``latency`` seconds go out as one array frame.
    """

    __slots__ = ("_busy", "latency", "stats", "stream", "subscription")

    def __init__(
        self,
        subscription: Subscription,
        stream: iostream.IOStream,
        latency: float,
        stats: HubStats,
    ) -> None:
        self.subscription = subscription
        self.stream = stream
        self.latency = latency
        self.stats = stats
        self._busy = False  # a write the socket has not taken, or a latency wait
        subscription.on_ready = self.ready
        subscription.idle()

    def ready(self) -> None:
        """The subscription has rows: write them now, or when the socket or latency allows."""
        if self._busy:
            return
        if self.latency > 0:
            self._busy = True
            asyncio.get_running_loop().call_later(self.latency, self._write)
        else:
            self._write()

    def _write(self) -> None:
        self._busy = False
        items = self.subscription.take()
        stream = self.stream
        if not items or stream.closed():
            return
        data = b"".join(map(shared_frame, frames(items, batched=self.latency > 0)))
        self.stats.frames_sent += len(items)
        try:
            written = stream.write(data)
        except iostream.StreamClosedError:
            return
        if stream.writing():
            self._busy = True
            written.add_done_callback(self._drained)
        else:
            self.subscription.idle()

    def _drained(self, written: Future) -> None:
        self._busy = False
        if not self.stream.closed():
            self.subscription.idle()
