"""A counting HTTP proxy: forwards every request to a server and notes its method and path.

For tests that must show how many requests a client made, and in what order, without
looking into the client: it stands between the client and a real server, in a thread of its
own, on a free loopback port. Whole bodies only (no feeds): each answer is read, then sent.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import urllib3

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "upgrade", "host"}


class CountingProxy:
    """``with CountingProxy("http://127.0.0.1:5984") as proxy:`` → ``proxy.url`` to talk to,
    ``proxy.requests`` the ``(method, path)`` of each request forwarded, in order."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.requests: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._pool = urllib3.PoolManager(maxsize=8, retries=False)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> CountingProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)
        self._pool.clear()

    def clear(self) -> None:
        with self._lock:
            self.requests.clear()

    def _note(self, method: str, path: str) -> None:
        with self._lock:
            self.requests.append((method, urlsplit(path).path))

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                proxy._note(self.command, self.path)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                answer = proxy._pool.request(
                    self.command,
                    proxy.upstream + self.path,
                    body=body,
                    headers=headers,
                    redirect=False,
                    decode_content=False,
                    timeout=30,
                )
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    if name.lower() not in HOP_BY_HOP | {"content-length"}:
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer.data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(answer.data)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_COPY = forward

        return Handler
