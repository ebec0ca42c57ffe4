"""A bare Tornado WebSocket server, the reference for settee's memory per idle subscriber.

It answers ``/{db}/_changes`` WebSockets as settee does (a ``{"last_seq"}`` frame on open,
so that ``bench/fanout_client.py`` counts them connected) and does nothing else: no
database, no hub. With ``--ping`` > 0 Tornado pings each socket on its own timer (settee's
heartbeat is 10 s). ``bench/fanout.py`` starts and stops it.

    .venv/bin/python bench/bare_broadcaster.py --port 8899 [--ping 10]
"""

from __future__ import annotations

import argparse
import asyncio

from tornado import web, websocket


class Feed(websocket.WebSocketHandler):
    def open(self, db: str) -> None:
        self.write_message(b'{"last_seq":0}')


class Up(web.RequestHandler):
    def get(self) -> None:
        self.write({"status": "ok"})


async def serve(port: int, ping: float) -> None:
    app = web.Application(
        [(r"/_up", Up), (r"/([^/]+)/_changes", Feed)], websocket_ping_interval=ping
    )
    app.listen(port, "127.0.0.1")
    await asyncio.Event().wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ping", type=float, default=10.0, help="seconds; 0: no pings")
    args = parser.parse_args()
    asyncio.run(serve(args.port, args.ping))
