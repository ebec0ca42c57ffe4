"""Views on the embedded store against Apache CouchDB 3.4.3, side by side in one run (issue 20).

Both get the same ``--docs`` documents (default 1,000,000: ``{"n": i, "tag": …}``), written
with ``_bulk_docs`` in requests of 10,000 (settee's embedded store through settee, CouchDB
directly; not timed), then the same design document: a JavaScript map ``emit(doc.n,
doc.tag)`` and a ``_count`` reduce.

1. Build: the first query of the view, which builds its index from nothing; docs/s, one
   server at a time, so that neither shares the two cores with the other's build.
2. Queries: wrk at ``--connections`` (64) on ``?key=K`` (one row), K near the start of the
   view and in its middle (the store counts the rows before K for ``offset``; CouchDB's
   b-tree knows it), and on the ``_count`` reduce of every row (the store keeps that count)
   and of the upper half (the store counts the range's rows; CouchDB adds the partial
   counts its b-tree keeps), ``--rounds`` rounds of ``--seconds`` each, the order alternating
   by round; medians and the median of the paired ratios (settee-embedded / CouchDB).

CouchDB is started from ``COUCHDB_HOME`` (default: the release beside this checkout, in
``../shared/couchdb/``), on 127.0.0.1, and stopped by its PID, as settee is.

    .venv/bin/python bench/views.py [--docs 1000000] [--rounds 5] [--seconds 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import urllib.error
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import as_admin  # noqa: E402
from bench.gateway import (  # noqa: E402
    CLIENT_HEADERS,
    Run,
    Wrk,
    basic_auth,
    call,
    need_wrk,
    paired,
    start_settee,
)
from tests.servers import CouchServer, couchdb_release  # noqa: E402

DB = "bench-views"
BATCH = 10_000
DESIGN = {
    "views": {
        "by_n": {"map": "function (doc) { emit(doc.n, doc.tag); }", "reduce": "_count"},
    }
}
RELEASE = ROOT.parent / "shared" / "couchdb" / "apache-couchdb-3.4.3-linux-x86_64.tar.gz"


class ViewWrk(Wrk):
    """wrk on one view URL of each server."""

    def __init__(self, wrk: str, workdir: Path, path: str, auth: dict[str, str]) -> None:
        super().__init__(wrk, workdir, {**CLIENT_HEADERS, **auth})
        self.path = path

    def command(self, url: str, method: str, c: int, seconds: float) -> list[str]:
        threads = min(2, c)
        args = [self.wrk, "-t", str(threads), "-c", str(c), "-d", f"{seconds:g}s", "--latency"]
        return [*args, *self.headers, url + self.path]


def fill(url: str, docs: int) -> None:
    call("PUT", f"{url}/{DB}")
    for start in range(0, docs, BATCH):
        rows = [
            {"_id": f"d{i:08d}", "n": i, "tag": "odd" if i % 2 else "even"}
            for i in range(start, min(start + BATCH, docs))
        ]
        call("POST", f"{url}/{DB}/_bulk_docs", {"docs": rows}, timeout=600)
    call("PUT", f"{url}/{DB}/_design/bench", DESIGN)


def build(url: str, docs: int) -> float:
    """Seconds until the first query of the view is answered: the index built from nothing.
    CouchDB answers a query that waits longer than its request timeout with a 500 and goes
    on building, so the query is asked again until it is answered."""
    began = time.perf_counter()
    while True:
        try:
            answer = call(
                "GET", f"{url}/{DB}/_design/bench/_view/by_n?limit=1&reduce=false", timeout=3600
            )
            break
        except urllib.error.HTTPError as exc:
            if exc.code != 500 or time.perf_counter() - began > 3600:
                raise
    seconds = time.perf_counter() - began
    assert answer["total_rows"] == docs, answer  # type: ignore[index]
    return seconds


def queries(
    args: argparse.Namespace, wrk_path: str, workdir: Path, targets: dict, auth: dict[str, str]
) -> list[str]:
    lines = []
    view = f"/{DB}/_design/bench/_view/by_n"
    for label, path in (
        ("one key near the start", f"{view}?key=10&reduce=false"),
        ("one key in the middle", f"{view}?key={args.docs // 2}&reduce=false"),
        ("_count of every row", view),
        ("_count of the upper half", f"{view}?startkey={args.docs // 2}"),
    ):
        # The admin of CouchDB, and of the embedded store
        wrk = ViewWrk(wrk_path, workdir, path, auth)
        runs: dict[str, list[Run]] = {name: [] for name in targets}
        rounds = args.rounds
        for round_ in range(rounds):
            order = list(targets) if round_ % 2 == 0 else list(reversed(targets))
            for name in order:
                url, pid, port = targets[name]
                runs[name].append(
                    wrk.run(url, "GET", args.connections, args.seconds, {name: pid}, {port})
                )
        print(f"\n{label} at c = {args.connections}, {rounds} rounds of {args.seconds:g} s:")
        print(f"  {'':18} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
        for name, done in runs.items():
            print(
                f"  {name:18} {statistics.median(r.rps for r in done):8.0f} "
                f"{statistics.median(r.p50_ms for r in done):8.2f} "
                f"{statistics.median(r.p99_ms for r in done):8.2f} "
                f"{sum(r.errors for r in done):7}"
            )
        median, first, third = paired(runs["settee-embedded"], runs["couchdb"], "rps")
        line = f"{label}: settee-embedded / CouchDB req/s {median:.2f}x [{first:.2f}-{third:.2f}]"
        print("  " + line)
        lines.append(line)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--connections", type=int, default=64)
    args = parser.parse_args()
    wrk_path = need_wrk()
    workdir = Path(tempfile.mkdtemp(prefix="settee-bench-views-"))
    print(f"bench/views.py: Python {sys.version.split()[0]}, work in {workdir}")
    couch = CouchServer(couchdb_release(os.environ.get("COUCHDB_HOME", RELEASE))).start()
    admin = (couch.user, couch.password)  # one admin for both: the queries send it to both
    settee = start_settee(f"embedded:{workdir / 'data'}", workdir, "settee-embedded", "auto", admin)
    try:
        bare_couch = f"http://127.0.0.1:{couch.port}"
        targets = {
            "settee-embedded": (settee.url, settee.pid, int(settee.url.rsplit(":", 1)[1])),
            "couchdb": (bare_couch, couch.process.pid, couch.port),
        }
        auth = basic_auth(couch.user, couch.password)
        built = {}
        for name, url in (("settee-embedded", as_admin(settee.url, admin)), ("couchdb", couch.url)):
            fill(url, args.docs)
            built[name] = build(url, args.docs)
            print(
                f"{name}: view of {args.docs:,} docs built in {built[name]:.1f} s "
                f"({args.docs / built[name]:,.0f} docs/s)",
                flush=True,
            )
        ratio = built["couchdb"] / built["settee-embedded"]
        summary = [f"build: settee-embedded / CouchDB docs/s {ratio:.2f}x"]
        summary += queries(args, wrk_path, workdir, targets, auth)
        complaints = settee.complaints()
    finally:
        settee.stop()
        couch.stop()
    print("\nsummary:")
    for line in summary:
        print(f"  {line}")
    if complaints:
        print(f"settee logged {len(complaints)} lines at WARNING or above, first: {complaints[0]}")


if __name__ == "__main__":
    main()
