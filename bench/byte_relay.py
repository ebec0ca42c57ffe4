"""The cheapest gateway Python can be: a reference contender for bench/gateway.py.

Each client connection gets a backend connection of its own, and bytes pass through both ways
unread and unparsed, on uvloop. It checks nothing and has no pool, metrics or logs: it only
shows what a second process between wrk and pouchdb-server costs on this machine when that
process does next to no work, so that settee's own share of the difference can be told apart.

    .venv/bin/python bench/byte_relay.py --port 5990 --backend-port 5984
"""

from __future__ import annotations

import argparse
import asyncio

import uvloop


class Side(asyncio.Protocol):
    """One end of a relayed connection; what it receives is written to the other end."""

    def __init__(self, other: asyncio.Transport | None = None) -> None:
        self.other = other
        self.transport: asyncio.Transport | None = None
        self.early: list[bytes] = []  # received before the other end was connected

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.other is None:
            self.early.append(data)
        elif not self.other.is_closing():
            self.other.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.other is not None:
            self.other.close()


class Client(Side):
    """The end wrk connects to: it opens its backend connection as it is accepted."""

    def __init__(self, backend_port: int, tasks: set[asyncio.Task]) -> None:
        super().__init__()
        self.backend_port, self.tasks = backend_port, tasks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        task = asyncio.get_running_loop().create_task(self.connect())
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def connect(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            backend, _ = await loop.create_connection(
                lambda: Side(self.transport), "127.0.0.1", self.backend_port
            )
        except OSError:
            self.transport.close()  # type: ignore[union-attr]
            return
        if self.transport.is_closing():  # type: ignore[union-attr]
            backend.close()
            return
        self.other = backend
        for data in self.early:
            backend.write(data)
        self.early.clear()


async def serve(port: int, backend_port: int) -> None:
    tasks: set[asyncio.Task] = set()  # the connects under way, kept from the collector
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Client(backend_port, tasks), "127.0.0.1", port)
    await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--backend-port", type=int, required=True)
    args = parser.parse_args()
    uvloop.run(serve(args.port, args.backend_port))


if __name__ == "__main__":
    main()
