"""Which HTTP server settee runs on: its own (service/httpserver.py) or Tornado's HTTPServer.

Both serve settee's own Application (``make_app``) on the embedded store, in a process each,
started and stopped here by PID, on 127.0.0.1, on the event loop settee's ``event_loop``
setting picks. wrk loads one at a time with the same settings, in rounds that alternate the
order: ``GET /_up`` (the server and the app, no backend) and ``GET /bench/doc`` (a document
read from the store), at ``--connections`` keep-alive connections. For each contender: req/s,
the p99 wrk reports, and the server process's own CPU per request (utime + stime from
/proc/PID/stat over the requests wrk completed). Medians over the rounds, and the ratio of
Tornado's to settee's own server (above 1: Tornado's costs more).

    .venv/bin/python bench/http_servers.py [--rounds 5] [--seconds 4] [--connections 16]

Needs wrk (Debian's package ``wrk``). Internally, ``--serve own|tornado`` runs one server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import BENCH_ADMIN, PUBLIC  # noqa: E402
from bench.gateway import basic_auth  # noqa: E402
from tests.servers import free_port, wait_until_up  # noqa: E402

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
CONTENDERS = ("own", "tornado")
PATHS = ("/_up", "/bench/doc")
HEADERS = ["-H", "Accept: application/json", "-H", "User-Agent: wrk (bench/http_servers.py)"]


async def serve(kind: str, port: int, data_dir: str) -> None:
    """One server of ``kind`` on ``port`` with settee's app, until SIGTERM."""
    from tornado.httpserver import HTTPServer

    from service.app import make_app, make_couches, make_hub, make_server
    from service.inflight import InFlight
    from service.metrics import Metrics
    from service.settings import Settings
    from service.store.users import Users

    admin = ":".join(BENCH_ADMIN)
    settings = Settings(data_dir=data_dir, port=port, log_level="warning", admin=admin)
    Users(Path(data_dir)).ensure_admin(settings.admin_pair)  # as serving does
    couch, own_couch = make_couches(settings)
    async with couch, own_couch:
        app = make_app(
            settings, couch, Metrics(), InFlight(), make_hub(settings, own_couch), own_couch
        )
        if kind == "own":
            server = make_server(app, settings)
        else:
            server = HTTPServer(
                app,
                max_body_size=settings.max_body_size,
                idle_connection_timeout=settings.idle_timeout,
                body_timeout=settings.body_timeout,
            )
        server.listen(port, "127.0.0.1")
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        server.stop()


def cpu_seconds(pid: int) -> float:
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def start(kind: str, data_dir: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    command = [sys.executable, __file__, "--serve", kind, "--port", str(port)]
    process = subprocess.Popen([*command, "--data-dir", data_dir], cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    wait_until_up(url + "/_up", process=process)
    return process, url


def fill(url: str) -> None:
    """The document that ``GET /bench/doc`` reads, as anybody, through the server itself."""
    public = json.dumps(PUBLIC).encode()
    for method, path, body in (
        ("PUT", "/bench", b""),
        ("PUT", "/bench/_security", public),
        ("PUT", "/bench/doc", b'{"n": 1}'),
    ):
        request = urllib.request.Request(url + path, data=body, method=method)
        request.add_header("Content-Type", "application/json")
        request.add_header("Authorization", basic_auth(*BENCH_ADMIN)["Authorization"])
        urllib.request.urlopen(request, timeout=10).close()


def load(url: str, pid: int, path: str, connections: int, seconds: float) -> dict[str, float]:
    """One wrk run: req/s, p99 ms, and the server's CPU µs per request."""
    threads = str(min(2, connections))
    command = ["wrk", "-t", threads, "-c", str(connections), "-d", f"{seconds:g}s", "--latency"]
    before = cpu_seconds(pid)
    out = subprocess.run(
        [*command, *HEADERS, url + path],
        capture_output=True,
        text=True,
        timeout=seconds + 30,
        check=True,
    ).stdout
    cpu = cpu_seconds(pid) - before
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors", out)
    if errors:
        raise SystemExit(f"wrk saw errors on {url}{path}:\n{out}")
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", out)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p99": float(p99.group(1)) * scale,
        "cpu": cpu / requests * 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=4)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--serve", choices=CONTENDERS, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        from service.serving import loop_factory

        with asyncio.Runner(loop_factory=loop_factory("auto")) as runner:
            runner.run(serve(args.serve, args.port, args.data_dir))
        return
    results: dict[tuple[str, str], list[dict[str, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="settee-bench-") as tmp:
        servers = {kind: start(kind, os.path.join(tmp, kind)) for kind in CONTENDERS}
        try:
            for _, url in servers.values():
                fill(url)
            for round in range(args.rounds):
                order = CONTENDERS if round % 2 == 0 else CONTENDERS[::-1]
                for path in PATHS:
                    for kind in order:
                        process, url = servers[kind]
                        run = load(url, process.pid, path, args.connections, args.seconds)
                        results.setdefault((path, kind), []).append(run)
                print(f"round {round + 1} of {args.rounds} done", file=sys.stderr)
        finally:
            for process, _ in servers.values():
                process.terminate()
            deadline = time.monotonic() + 10
            for process, _ in servers.values():
                process.wait(timeout=max(deadline - time.monotonic(), 0.1))
    report(results, args)


def report(results: dict[tuple[str, str], list[dict[str, float]]], args) -> None:
    print(
        f"\nsettee's app on two HTTP servers: wrk -c {args.connections}, {args.rounds} rounds "
        f"of {args.seconds:g} s each, medians"
    )
    print("| path | server | req/s | p99 ms | server CPU µs/req |")
    print("|---|---|---:|---:|---:|")
    for path in PATHS:
        for kind in CONTENDERS:
            runs = results[(path, kind)]
            rps, p99, cpu = (statistics.median(run[key] for run in runs) for key in KEYS)
            print(f"| `{path}` | {kind} | {rps:,.0f} | {p99:.1f} | {cpu:,.0f} |")
    print("\nTornado's HTTPServer / settee's own, per round then median:")
    for path in PATHS:
        own, tornado = results[(path, "own")], results[(path, "tornado")]
        ratios = {
            key: statistics.median(t[key] / o[key] for o, t in zip(own, tornado, strict=True))
            for key in KEYS
        }
        print(
            f"  {path}: req/s {ratios['rps']:.2f}x, p99 {ratios['p99']:.2f}x, "
            f"CPU per request {ratios['cpu']:.2f}x"
        )


KEYS = ("rps", "p99", "cpu")

if __name__ == "__main__":
    main()
