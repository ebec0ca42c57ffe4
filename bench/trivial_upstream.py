"""A stand-in CouchDB that answers at once, so that a benchmark measures settee and not CouchDB.

Every ``GET /{db}/{id}`` gets ``200 {"_id": id, "_rev": "1-abc", ...}`` (a small fixed
document), every ``PUT /{db}/{id}`` ``201 {"ok": true, "id": id, "rev": "1-abc"}``, any other
GET (``/``, ``/{db}``) a small JSON object; anything else 405. Keep-alive HTTP/1.1 on one
asyncio protocol, with no framework: the request line, ``Content-Length`` and the blank line are
all it parses, so it costs far less CPU per request than the gateway in front of it.

    .venv/bin/python bench/trivial_upstream.py --port 5999

It prints ``listening on 127.0.0.1:PORT`` once it accepts connections, and stops on SIGTERM
or SIGINT. ``bench/gateway.py`` starts and stops it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
from urllib.parse import unquote

REV = "1-abc"
MAX_HEAD = 65536


def reply(status: str, body: bytes, keep_alive: bool) -> bytes:
    head = (
        f"HTTP/1.1 {status}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        f'ETag: "{REV}"\r\n'
        f"Connection: {'keep-alive' if keep_alive else 'close'}\r\n\r\n"
    )
    return head.encode("latin-1") + body


def answer(method: str, target: str) -> tuple[str, bytes]:
    """The status line's rest and the JSON body for ``method`` on ``target``."""
    path = target.split("?", 1)[0]
    parts = path.strip("/").split("/", 1)
    if method == "GET" and len(parts) == 2 and parts[1]:
        doc = {"_id": unquote(parts[1]), "_rev": REV, "type": "bench", "n": 1}
        return "200 OK", json.dumps(doc, separators=(",", ":")).encode()
    if method == "PUT" and len(parts) == 2 and parts[1]:
        saved = {"ok": True, "id": unquote(parts[1]), "rev": REV}
        return "201 Created", json.dumps(saved, separators=(",", ":")).encode()
    if method in ("GET", "HEAD"):
        return "200 OK", b'{"couchdb":"Welcome","version":"3.3.3","vendor":{"name":"trivial"}}'
    if method == "PUT":
        return "201 Created", b'{"ok":true}'
    return "405 Method Not Allowed", b'{"error":"method_not_allowed","reason":"trivial"}'


class Http(asyncio.Protocol):
    """One connection: parse whole requests out of the buffer, answer each, keep alive."""

    def __init__(self) -> None:
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        out = []
        close = False
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buffer) > MAX_HEAD:
                    close = True
                break
            head = self.buffer[:end].decode("latin-1")
            lines = head.split("\r\n")
            request_line = lines[0].split(" ")
            if len(request_line) != 3:
                close = True
                break
            length, keep_alive = 0, request_line[2] == "HTTP/1.1"
            for line in lines[1:]:
                name, _, value = line.partition(":")
                name = name.strip().lower()
                if name == "content-length":
                    length = int(value.strip() or 0)
                elif name == "connection":
                    keep_alive = value.strip().lower() != "close"
            if len(self.buffer) < end + 4 + length:
                break  # the body is still on its way
            self.buffer = self.buffer[end + 4 + length :]
            status, body = answer(request_line[0], request_line[1])
            if request_line[0] == "HEAD":
                out.append(reply(status, body, keep_alive)[: -len(body)])
            else:
                out.append(reply(status, body, keep_alive))
            if not keep_alive:
                close = True
                break
        if out:
            self.transport.write(b"".join(out))
        if close:
            self.transport.close()


async def serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    server = await loop.create_server(Http, host, port, backlog=1024, reuse_address=True)
    print(f"listening on {host}:{port}", flush=True)
    async with server:
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5999)
    args = parser.parse_args()
    asyncio.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
