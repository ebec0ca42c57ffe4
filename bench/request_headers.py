"""What does pouchdb-server pay for a request's headers? GETs straight to it, no gateway.

wrk loads one in-memory pouchdb-server on 127.0.0.1 (started and stopped here) with
``GET /bench/doc-1`` at c = 64, once per arm and round, the order alternating by round. The arms
differ only in the headers each request carries: none but ``Host`` (bare wrk), each header
settee's client sends on its own (``Accept: application/json``, ``Accept-Encoding: identity``,
``User-Agent: settee``), and all three, as settee sends them. The table gives medians of
pouchdb-server's req/s and CPU per request, and their ratios to bare wrk.

Why it matters: ``bench/gateway.py`` compares requests made through settee with the same
requests made directly, and settee's requests to the backend carry its headers whatever the
client sent. If headers cost pouchdb-server CPU, a direct arm of bare requests would charge
settee for headers that every client sends; pouchdb-server does take another path for
``Accept: application/json`` (it answers ``application/json`` rather than ``text/plain``).

    .venv/bin/python bench/request_headers.py [--rounds 6] [--seconds 4]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.gateway import cpu_seconds, header_flags, need_wrk, parse_wrk  # noqa: E402
from tests.servers import PouchServer  # noqa: E402

SETTEE_HEADERS = {
    "Accept": "application/json",
    "Accept-Encoding": "identity",
    "User-Agent": "settee",
}
ARMS: dict[str, dict[str, str]] = {
    "bare (Host only)": {},
    **{f"{name} only": {name: value} for name, value in SETTEE_HEADERS.items()},
    "all three": SETTEE_HEADERS,
}


def put(url: str, body: object = None) -> None:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="PUT")
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=30):
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=4.0)
    args = parser.parse_args()
    rounds = max(1, min(args.rounds, 20))
    seconds = max(1.0, min(args.seconds, 60.0))
    wrk = need_wrk()
    pouch = PouchServer().start()
    try:
        put(f"{pouch.url}/bench")
        put(f"{pouch.url}/bench/doc-1", {"title": "a small document", "n": 1})
        url = f"{pouch.url}/bench/doc-1"
        pid = pouch.process.pid  # type: ignore[union-attr]
        subprocess.run([wrk, "-t2", "-c64", "-d1s", url], capture_output=True, timeout=60)
        results: dict[str, list[tuple[float, float]]] = {name: [] for name in ARMS}
        for round_ in range(rounds):
            order = list(ARMS) if round_ % 2 == 0 else list(reversed(ARMS))
            for name in order:
                flags = header_flags(ARMS[name])
                before = cpu_seconds(pid)
                done = subprocess.run(
                    [wrk, "-t2", "-c64", f"-d{seconds:g}s", "--latency", *flags, url],
                    capture_output=True,
                    text=True,
                    timeout=seconds + 30,
                )
                spent = cpu_seconds(pid) - before
                rps, _, _, requests, errors = parse_wrk(done.stdout)
                if errors:
                    sys.exit(f"{name}: {errors} errors\n{done.stdout}")
                cpu_us = spent * 1e6 / max(requests, 1)
                results[name].append((rps, cpu_us))
                print(f"  round {round_ + 1} {name:<26} {rps:6.0f} req/s  {cpu_us:5.0f} µs/req")
    finally:
        pouch.stop()
    bare = [statistics.median(x[i] for x in results["bare (Host only)"]) for i in (0, 1)]
    print()
    print(f"pouchdb-server, GET c=64, medians of {rounds} runs of {seconds:g} s:")
    print()
    print("| headers beyond Host | req/s | / bare | CPU µs/req | / bare | CPU µs/req, range |")
    print("|---|--:|--:|--:|--:|--:|")
    for name, runs in results.items():
        rps, cpu_us = (statistics.median(x[i] for x in runs) for i in (0, 1))
        low, high = min(x[1] for x in runs), max(x[1] for x in runs)
        print(
            f"| {name} | {rps:.0f} | {rps / bare[0]:.3f} | {cpu_us:.0f} | {cpu_us / bare[1]:.3f} "
            f"| {low:.0f}-{high:.0f} |"
        )


if __name__ == "__main__":
    main()
