"""WebSocket keep-alive: one timer pings every open socket, in place of a task per socket.

Tornado's ``websocket_ping_interval`` runs a ping task for each connection, about 2 kB each;
with thousands of idle subscribers that is a good part of their memory. Here the sockets are
spread over ``SLICES`` groups and one timer pings a group at a time, so that every socket is
pinged once per ``interval`` and the pings of thousands of sockets go out a slice at a time
rather than all at once. A socket that has not answered its previous ping when the next one
is due is closed: the peer is gone, or so stuck that nothing reaches it anyway.
"""

from __future__ import annotations

import asyncio

from tornado import websocket

SLICES = 10


class Pinger:
    """Pings the WebSockets ``add``-ed to it every ``interval`` seconds until they are
    ``discard``-ed; their handlers report pongs through ``answered``."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        # handler → whether its last ping is still unanswered
        self._groups: list[dict[websocket.WebSocketHandler, bool]] = [{} for _ in range(SLICES)]
        self._added = 0
        self._turn = 0
        self._timer: asyncio.TimerHandle | None = None

    def add(self, handler: websocket.WebSocketHandler) -> None:
        self._groups[self._added % SLICES][handler] = False
        self._added += 1
        if self._timer is None:
            self._schedule()

    def discard(self, handler: websocket.WebSocketHandler) -> None:
        for group in self._groups:
            group.pop(handler, None)

    def answered(self, handler: websocket.WebSocketHandler) -> None:
        for group in self._groups:
            if handler in group:
                group[handler] = False

    def __len__(self) -> int:
        return sum(map(len, self._groups))

    def _schedule(self) -> None:
        self._timer = asyncio.get_running_loop().call_later(self.interval / SLICES, self._tick)

    def _tick(self) -> None:
        group = self._groups[self._turn]
        self._turn = (self._turn + 1) % SLICES
        for handler, unanswered in list(group.items()):
            if unanswered:
                del group[handler]
                handler.close(reason="ping timed out")
                continue
            try:
                handler.ping()
            except websocket.WebSocketClosedError:
                del group[handler]
            else:
                group[handler] = True
        if len(self):
            self._schedule()
        else:
            self._timer = None
