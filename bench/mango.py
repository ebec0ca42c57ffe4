"""``_find`` with and without a json index, on the embedded store and on Apache CouchDB 3.4.3,
side by side in one run (issue 20).

Both get the same ``--docs`` documents (default 100,000: ``{"n": i, "m": i, "tag": …}``),
then a json index on ``n`` only. Then, ``--queries`` times each (alternating servers), a
``_find`` of ten documents by a range of ``n`` (the index's) and the same range of ``m``
(no index: every document is read), each at a random place. Printed: each server's median
milliseconds a query, the index's speed-up on each, and settee-embedded / CouchDB.

    .venv/bin/python bench/mango.py [--docs 100000] [--queries 200]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import as_admin  # noqa: E402
from bench.gateway import call, start_settee  # noqa: E402
from tests.servers import CouchServer, couchdb_release  # noqa: E402

DB = "bench-mango"
BATCH = 10_000
RELEASE = ROOT.parent / "shared" / "couchdb" / "apache-couchdb-3.4.3-linux-x86_64.tar.gz"


def fill(url: str, docs: int) -> None:
    call("PUT", f"{url}/{DB}")
    for start in range(0, docs, BATCH):
        rows = [
            {"_id": f"d{i:08d}", "n": i, "m": i, "tag": "odd" if i % 2 else "even"}
            for i in range(start, min(start + BATCH, docs))
        ]
        call("POST", f"{url}/{DB}/_bulk_docs", {"docs": rows}, timeout=600)
    call("POST", f"{url}/{DB}/_index", {"index": {"fields": ["n"]}, "name": "by-n"})


def find(url: str, field: str, low: int) -> float:
    """Milliseconds of one ``_find`` of ten documents from ``low`` on ``field``."""
    query = {"selector": {field: {"$gte": low, "$lt": low + 10}}, "limit": 10}
    began = time.perf_counter()
    answer = call("POST", f"{url}/{DB}/_find", query, timeout=600)
    took = (time.perf_counter() - began) * 1000
    assert len(answer["docs"]) == 10, answer  # type: ignore[index]
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--unindexed", type=int, default=10, help="queries without the index")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="settee-bench-mango-"))
    print(f"bench/mango.py: Python {sys.version.split()[0]}, work in {workdir}")
    couch = CouchServer(couchdb_release(os.environ.get("COUCHDB_HOME", RELEASE))).start()
    admin = (couch.user, couch.password)
    settee = start_settee(f"embedded:{workdir / 'data'}", workdir, "settee-embedded", "auto", admin)
    try:
        urls = {"settee-embedded": as_admin(settee.url, admin), "couchdb": couch.url}
        for url in urls.values():
            fill(url, args.docs)
            find(url, "n", 0)  # builds the index: not timed
        pick = random.Random(1)
        timed: dict[tuple[str, str], list[float]] = {}
        for field, count in (("n", args.queries), ("m", args.unindexed)):
            for i in range(count):
                low = pick.randrange(args.docs - 10)
                for name in list(urls) if i % 2 == 0 else list(reversed(urls)):
                    timed.setdefault((name, field), []).append(find(urls[name], field, low))
    finally:
        settee.stop()
        couch.stop()
    medians = {key: statistics.median(values) for key, values in timed.items()}
    print(f"\n_find of 10 documents by a range, {args.docs:,} documents; median ms a query:")
    print(f"  {'':18} {'indexed (n)':>12} {'no index (m)':>13} {'speed-up':>9}")
    for name in urls:
        indexed, scanned = medians[(name, "n")], medians[(name, "m")]
        print(f"  {name:18} {indexed:12.1f} {scanned:13.1f} {scanned / indexed:8.0f}x")
    ratio = medians[("couchdb", "n")] / medians[("settee-embedded", "n")]
    print(f"  indexed, settee-embedded / CouchDB speed: {ratio:.2f}x")


if __name__ == "__main__":
    main()
