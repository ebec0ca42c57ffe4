"""The embedded store against pouchdb-server, side by side in one run (issue 19).

Part 1, requests: settee serving its embedded store (``run.py``, one process, SQLite with
``synchronous=FULL``: every acknowledged write is fsynced) and pouchdb-server reached directly
(on disk, LevelDB, as a deployment would run it), both on 127.0.0.1, each with a database of
``--docs`` documents. wrk loads each in turn with the requests of ``bench/gateway.py`` (GET of
one document; PUT of new documents), at ``--connections``, for ``--rounds`` rounds, the order
alternating by round. The table gives medians and the median of each round's paired ratio
(settee-embedded / pouchdb-server direct) with its quartiles: the goals are GET ≥ 3x and
PUT ≥ 2x.

Part 2, ``_bulk_docs``: ``--bulk-docs`` new documents of ~100 bytes, in requests of 1,000
from two clients at once, through settee to the embedded store: docs/s (goal ≥ 20,000), the
same load sent to pouchdb-server beside it.

Part 3, a big database (``--big`` documents, default 1,000,000; 0 skips): written with
``_bulk_docs`` through settee, which is then stopped and started again on the same files:
the start-up (from the process's start until it answers ``/{db}``, goal < 1 s), settee's RSS
then (goal < 200 MB), and ``_changes`` of every row read as a stream: rows counted, settee's
peak RSS (VmHWM) after it against before it.

    .venv/bin/python bench/embedded.py [--rounds 5] [--seconds 5] [--connections 64]
        [--docs 1000] [--bulk-docs 100000] [--big 1000000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import BENCH_ADMIN, PUBLIC, as_admin  # noqa: E402
from bench.gateway import (  # noqa: E402
    CLIENT_HEADERS,
    DB,
    PUT_DB,
    Run,
    Served,
    Wrk,
    basic_auth,
    call,
    fill,
    need_wrk,
    paired,
    start_settee,
)
from tests.servers import PouchServer  # noqa: E402

GOALS = {"GET": 3.0, "PUT": 2.0}
BULK_GOAL = 20_000  # docs/s
START_GOAL = 1.0  # seconds
RSS_GOAL = 200  # MiB
BATCH = 1_000


def status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise LookupError(field)


def requests(args: argparse.Namespace, wrk: Wrk, settee: Served, pouch: PouchServer) -> list[str]:
    targets = {"settee-embedded": settee.url, "pouchdb-server": pouch.url}
    watch = {"settee-embedded": settee.pid, "pouchdb-server": pouch.process.pid}
    ports = {int(url.rsplit(":", 1)[1]) for url in targets.values()}
    goals = []
    for c in args.connections:
        for method in ("GET", "PUT"):
            runs: dict[str, list[Run]] = {name: [] for name in targets}
            for round_ in range(args.rounds):
                order = list(targets) if round_ % 2 == 0 else list(reversed(targets))
                for name in order:
                    runs[name].append(wrk.run(targets[name], method, c, args.seconds, watch, ports))
            ratio = paired(runs["settee-embedded"], runs["pouchdb-server"], "rps")
            print(f"\n{method} at c = {c}, {args.rounds} rounds of {args.seconds:g} s:")
            print(f"  {'':18} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
            for name, done in runs.items():
                rps = statistics.median(r.rps for r in done)
                p50 = statistics.median(r.p50_ms for r in done)
                p99 = statistics.median(r.p99_ms for r in done)
                errors = sum(r.errors for r in done)
                print(f"  {name:18} {rps:8.0f} {p50:8.2f} {p99:8.2f} {errors:7}")
            median, first, third = ratio
            print(
                f"  settee-embedded / pouchdb-server req/s: {median:.2f}x [{first:.2f}-{third:.2f}]"
            )
            goal = GOALS[method]
            verdict = "met" if median >= goal else "MISSED"
            goals.append(f"{method} c={c}: {median:.2f}x (goal >= {goal:g}x): {verdict}")
    return goals


def bulk_rate(url: str, db: str, total: int, clients: int = 2) -> float:
    """docs/s of ``total`` new documents written with ``_bulk_docs`` by ``clients`` at once."""
    call("PUT", f"{url}/{db}")
    per_client = total // clients

    def write(n: int) -> None:
        for start in range(0, per_client, BATCH):
            docs = [
                {"_id": f"c{n}-{i:08d}", "n": i, "pad": "x" * 60}
                for i in range(start, start + BATCH)
            ]
            call("POST", f"{url}/{db}/_bulk_docs", {"docs": docs})

    threads = [threading.Thread(target=write, args=(n,)) for n in range(clients)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return per_client * clients / (time.perf_counter() - began)


def stream_changes(url: str, credentials: dict[str, str]) -> int:
    """Rows of a whole ``_changes``, read as a stream and counted, none kept."""
    rows = 0
    request = urllib.request.Request(url, headers={**CLIENT_HEADERS, **credentials})
    with urllib.request.urlopen(request, timeout=600) as response:
        for line in response:
            if line.startswith(b'{"seq"'):
                rows += 1
    return rows


def big_database(args: argparse.Namespace, workdir: Path) -> list[str]:
    data = f"embedded:{workdir / 'big-data'}"
    settee = start_settee(data, workdir, "settee-big", "auto")
    try:
        rate = bulk_rate(as_admin(settee.url), "big", args.big)
    finally:
        settee.stop()
    print(f"\n{args.big:,} documents written through settee at {rate:,.0f} docs/s")
    began = time.perf_counter()
    settee = start_settee(data, workdir, "settee-big-again", "auto")
    try:
        info = call("GET", f"{as_admin(settee.url)}/big")
        started = time.perf_counter() - began
        rss = status_kib(settee.pid, "VmRSS") / 1024
        before = status_kib(settee.pid, "VmHWM") / 1024
        began = time.perf_counter()
        rows = stream_changes(f"{settee.url}/big/_changes", basic_auth(*BENCH_ADMIN))
        seconds = time.perf_counter() - began
        after = status_kib(settee.pid, "VmHWM") / 1024
    finally:
        settee.stop()
    print(f"start-up to its first answer of /big ({info['doc_count']:,} docs): {started:.2f} s")  # type: ignore[index]
    print(f"settee's RSS then: {rss:.0f} MiB")
    print(
        f"_changes: {rows:,} rows in {seconds:.1f} s; settee's peak RSS {before:.0f} MiB before, "
        f"{after:.0f} MiB after"
    )
    return [
        f"start-up, {args.big:,} docs: {started:.2f} s (goal < {START_GOAL:g} s): "
        + ("met" if started < START_GOAL else "MISSED"),
        f"RSS, {args.big:,} docs: {rss:.0f} MiB (goal < {RSS_GOAL} MiB): "
        + ("met" if rss < RSS_GOAL else "MISSED"),
        f"_changes of {rows:,} rows: peak RSS +{after - before:.0f} MiB (goal: flat): "
        + ("met" if after - before < 20 else "MISSED"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument(
        "--connections", type=lambda s: [int(c) for c in s.split(",")], default=[64]
    )
    parser.add_argument("--docs", type=int, default=1000)
    parser.add_argument("--bulk-docs", type=int, default=100_000)
    parser.add_argument("--big", type=int, default=1_000_000)
    args = parser.parse_args()
    wrk = Wrk(need_wrk(), Path(tempfile.mkdtemp(prefix="settee-bench-")), CLIENT_HEADERS)
    workdir = wrk.workdir
    print(f"bench/embedded.py: Python {sys.version.split()[0]}, work in {workdir}")
    pouch = PouchServer(in_memory=False).start()
    settee = start_settee(f"embedded:{workdir / 'data'}", workdir, "settee-embedded", "auto")
    goals = []
    try:
        fill(as_admin(settee.url), args.docs)
        for db in (DB, PUT_DB):  # loaded as anybody, as pouchdb-server is
            call("PUT", f"{as_admin(settee.url)}/{db}/_security", PUBLIC)
        fill(pouch.url, args.docs)
        goals += requests(args, wrk, settee, pouch)
        embedded = bulk_rate(as_admin(settee.url), "bulk", args.bulk_docs)
        direct = bulk_rate(pouch.url, "bulk", args.bulk_docs)
        print(f"\n_bulk_docs, {args.bulk_docs:,} docs in requests of {BATCH:,} from 2 clients:")
        print(f"  settee-embedded {embedded:9,.0f} docs/s")
        print(f"  pouchdb-server  {direct:9,.0f} docs/s  ({embedded / direct:.2f}x)")
        verdict = "met" if embedded >= BULK_GOAL else "MISSED"
        goals.append(f"_bulk_docs: {embedded:,.0f} docs/s (goal >= {BULK_GOAL:,}): {verdict}")
        complaints = settee.complaints()
    finally:
        settee.stop()
        pouch.stop()
    if args.big:
        goals += big_database(args, workdir)
    print("\ngoals:")
    for line in goals:
        print("  " + line)
    if complaints:
        print("settee's log at WARNING or above:\n  " + "\n  ".join(complaints[:20]))


if __name__ == "__main__":
    main()
