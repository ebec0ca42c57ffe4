"""Which HTTP library should carry settee's async requests? GETs through the client, compared.

Each contender runs ``await db.get(docid)`` through ``client.Couch`` with a runner whose
transport is the candidate: the project's ``AsyncTransport`` ("settee": its own HTTP/1.1
connections, ``service/couch/http1.py``), or an adapter (here only) over aiohttp (settee's
transport until it was replaced), Tornado's ``CurlAsyncHTTPClient`` (pycurl) or
``SimpleAsyncHTTPClient``. A "direct" baseline makes the same GETs with a bare aiohttp session
(body read, JSON decoded, no settee code), so the ratio to it is what the client and its
transport cost on top of the wire.

The load goes to one in-memory pouchdb-server on 127.0.0.1 that this script starts and stops.
Runs are interleaved (the order rotates each round) and repeated; the table gives medians.
CPU per request is this process's CPU time (``time.process_time``) over the requests it made;
pouchdb-server is a separate process, so its CPU is not in it. TIME_WAIT counts the sockets
in that state, to or from the server's port, that a run left behind (entered since it began).

    .venv/bin/python bench/transports.py [--rounds 3] [--seconds 4] [--requests 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pycurl
import tornado
import ujson
import yarl
from tornado.curl_httpclient import CurlAsyncHTTPClient
from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from tornado.simple_httpclient import SimpleAsyncHTTPClient

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import time_wait_since  # noqa: E402
from service.couch.client import Couch  # noqa: E402
from service.couch.errors import ServerUnavailable  # noqa: E402
from service.couch.protocol import Request, Response  # noqa: E402
from service.couch.runner import AsyncRunner  # noqa: E402
from service.couch.transport import DEFAULT_HEADERS, Endpoint  # noqa: E402
from tests.servers import PouchServer  # noqa: E402

DB = "bench"
DOCS = 100
MAX_CLIENTS = 100


class Awaited:
    """``AsyncTransport.send_then`` over an ``async send``: the adapters' sends run as tasks."""

    async def send(self, request: Request) -> Response:
        raise NotImplementedError

    def send_then(
        self, request: Request, then: Callable[[Response | BaseException], None]
    ) -> Callable[[], None]:
        def sent(task: asyncio.Task[Response]) -> None:
            if task.cancelled():
                then(asyncio.CancelledError())
            else:
                then(task.exception() or task.result())

        task = asyncio.ensure_future(self.send(request))
        task.add_done_callback(sent)
        return task.cancel


class TornadoTransport(Awaited):
    """``AsyncTransport``'s interface (send_then, describe, close) over a Tornado HTTP client."""

    def __init__(self, endpoint: Endpoint, client: AsyncHTTPClient) -> None:
        self.endpoint = endpoint
        self._headers = endpoint.headers()  # Accept-Encoding: identity among them
        self._client = client

    def describe(self, request: Request) -> str:
        return f"{request.method} {self.endpoint.url}{request.path}"

    async def send(self, request: Request) -> Response:
        http_request = HTTPRequest(
            self.endpoint.url + request.target,
            method=request.method,
            headers={**self._headers, **request.headers},
            body=request.body,
            connect_timeout=self.endpoint.connect_timeout,
            request_timeout=self.endpoint.timeout,
            decompress_response=False,
            allow_nonstandard_methods=True,  # COPY, and POST without a body
        )
        response = await self._client.fetch(http_request, raise_error=False)
        if response.code == 599:  # Tornado's code for "no HTTP response at all"
            raise ServerUnavailable(self.endpoint.url, str(response.error))
        headers = {name.lower(): value for name, value in response.headers.get_all()}
        return Response(response.code, headers, response.body or b"")

    async def close(self) -> None:
        self._client.close()


class AiohttpTransport(Awaited):
    """``AsyncTransport``'s interface over an aiohttp session, as settee's transport was."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=MAX_CLIENTS, limit_per_host=0),
            timeout=aiohttp.ClientTimeout(total=endpoint.timeout),
            headers=endpoint.headers(),
            auto_decompress=False,
            skip_auto_headers=("Accept-Encoding", "User-Agent"),
        )

    def describe(self, request: Request) -> str:
        return f"{request.method} {self.endpoint.url}{request.path}"

    async def send(self, request: Request) -> Response:
        url = yarl.URL(self.endpoint.url + request.target, encoded=True)
        async with self._session.request(
            request.method, url, headers=request.headers, data=request.body
        ) as response:
            body = await response.read()
            headers = {name.lower(): value for name, value in response.headers.items()}
            return Response(response.status, headers, body)

    async def close(self) -> None:
        await self._session.close()


class AiohttpRunner(AsyncRunner):
    def __init__(self, endpoint: Endpoint) -> None:
        self.transport = AiohttpTransport(endpoint)


class CurlRunner(AsyncRunner):
    def __init__(self, endpoint: Endpoint) -> None:
        client = CurlAsyncHTTPClient(force_instance=True, max_clients=MAX_CLIENTS)
        self.transport = TornadoTransport(endpoint, client)


class SimpleRunner(AsyncRunner):
    def __init__(self, endpoint: Endpoint) -> None:
        client = SimpleAsyncHTTPClient(force_instance=True, max_clients=MAX_CLIENTS)
        self.transport = TornadoTransport(endpoint, client)


class Settee:
    """GETs through ``client.Couch`` with the given runner (and so transport)."""

    def __init__(self, url: str, runner_class: type[AsyncRunner]) -> None:
        self.couch = type("BenchCouch", (Couch,), {"runner_class": runner_class})(url)
        self.db = self.couch[DB]

    async def get(self, doc_id: str) -> dict:
        return await self.db.get(doc_id)

    async def close(self) -> None:
        await self.couch.close()


class Direct:
    """The same GETs with a bare aiohttp session, configured as AsyncTransport configures its."""

    def __init__(self, url: str) -> None:
        self.base = f"{url}/{DB}/"
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=MAX_CLIENTS, limit_per_host=0),
            headers=DEFAULT_HEADERS,
            auto_decompress=False,
            skip_auto_headers=("Accept-Encoding", "User-Agent"),
        )

    async def get(self, doc_id: str) -> dict:
        async with self.session.get(self.base + doc_id) as response:
            body = await response.read()
            if response.status != 200:
                raise RuntimeError(f"GET {doc_id}: {response.status}")
            return ujson.loads(body)

    async def close(self) -> None:
        await self.session.close()


CONTENDERS = {
    "direct": Direct,
    "settee": lambda url: Settee(url, AsyncRunner),
    "aiohttp": lambda url: Settee(url, AiohttpRunner),
    "curl": lambda url: Settee(url, CurlRunner),
    "simple": lambda url: Settee(url, SimpleRunner),
}


async def run(name: str, url: str, port: int, c: int, args: argparse.Namespace) -> tuple:
    """One timed run of ``c`` tasks: (req/s, CPU seconds per request, new TIME_WAIT sockets)."""
    ids = [f"doc-{i:04d}" for i in range(DOCS)]
    since = time.monotonic()
    client = CONTENDERS[name](url)
    try:
        # Warm-up, untimed: opens the connections and checks that the right documents come back.
        docs = await asyncio.gather(*(client.get(ids[i % DOCS]) for i in range(c)))
        assert all(doc["_id"] == ids[i % DOCS] for i, doc in enumerate(docs)), name
        started = 0
        deadline = time.monotonic() + args.seconds

        async def worker() -> None:
            nonlocal started
            while started < args.requests and time.monotonic() < deadline:
                started += 1
                await client.get(ids[started % DOCS])

        cpu, wall = time.process_time(), time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(c)))
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    finally:
        await client.close()
    await asyncio.sleep(0.2)  # let closed sockets reach TIME_WAIT
    return started / wall, cpu / started, time_wait_since({port}, since)


async def bench(url: str, port: int, args: argparse.Namespace) -> None:
    couch = Couch(url)
    try:
        db = await couch.create(DB)
        await db.save([{"_id": f"doc-{i:04d}", "n": i, "title": "x" * 100} for i in range(DOCS)])
    finally:
        await couch.close()
    await asyncio.sleep(0.2)  # its socket's TIME_WAIT is no run's

    names = list(CONTENDERS)
    results: dict[tuple[int, str], list[tuple]] = defaultdict(list)
    for round_no in range(args.rounds):
        order = names[round_no % len(names) :] + names[: round_no % len(names)]
        for c in args.concurrency:
            for name in order:
                result = await run(name, url, port, c, args)
                results[c, name].append(result)
                rate, cpu, tw = result
                print(
                    f"round {round_no + 1} c={c:<3} {name:<8} {rate:8.0f} req/s "
                    f"{cpu * 1e6:6.0f} µs CPU/req  TIME_WAIT +{tw}",
                    flush=True,
                )

    print(f"\nMedians of {args.rounds} rounds (≤ {args.seconds:g} s or {args.requests} GETs each)")
    print(
        f"{'c':>3}  {'contender':<9} {'req/s':>7}  {'/ direct':>8}  {'CPU µs/req':>10}  TIME_WAIT"
    )
    for c in args.concurrency:
        direct = statistics.median(r[0] for r in results[c, "direct"])
        for name in names:
            rate, cpu, tw = (statistics.median(col) for col in zip(*results[c, name], strict=True))
            ratio = rate / direct
            print(f"{c:>3}  {name:<9} {rate:7.0f}  {ratio:7.2f}x  {cpu * 1e6:10.0f}  {tw:9.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=4.0, help="time limit of a run")
    parser.add_argument("--requests", type=int, default=20000, help="request limit of a run")
    parser.add_argument(
        "--concurrency", type=lambda s: [int(c) for c in s.split(",")], default=[1, 16, 64]
    )
    args = parser.parse_args()
    print(
        f"Python {sys.version.split()[0]} (asyncio's event loop), aiohttp {aiohttp.__version__}, "
        f"tornado {tornado.version}, {pycurl.version.split()[1]}"
    )
    server = PouchServer(in_memory=True)
    try:
        server.start()
        print(f"pouchdb-server (in memory) at {server.url}, pid {server.process.pid}\n")
        asyncio.run(bench(server.url, server.port, args))
    finally:
        server.stop()


if __name__ == "__main__":
    main()
