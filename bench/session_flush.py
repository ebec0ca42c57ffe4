"""How much faster is one ``Session.flush()`` of 1,000 edits than 1,000 single saves?

Each round fills two fresh databases with ``--docs`` documents and reads them back (not
timed), then edits every document (``n += 1``) and writes the edits, timed, one way per
database:

- ``flush``: in a ``service.session.Session`` (blocking face), then ``S.flush()``: one
  ``_bulk_docs`` request;
- ``singles``: ``db.save(doc)`` after each edit, one PUT each, one after another (blocking);
- ``singles x16`` (with ``--concurrency 16``, the default): ``await db.save(doc)`` from 16
  asyncio tasks on the async face, for comparison with saves that overlap.

Afterwards every document is checked to hold its edit. The order of the ways rotates by round;
medians are printed with the ratios of ``flush`` to each. Backends: the embedded store (a
local path, in this process, in a temporary directory), a pouchdb-server in memory that this
script starts, and a CouchDB started from ``--couchdb-home`` (a release directory or its
``.tar.gz``) if given. Every server it starts, it stops by its PID.

    .venv/bin/python bench/session_flush.py [--docs 1000] [--rounds 5]
        [--backend embedded --backend pouchdb --backend couchdb] [--couchdb-home PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from service.couch import blocking, client  # noqa: E402
from service.session import Session  # noqa: E402
from tests.servers import CouchServer, PouchServer, couchdb_release  # noqa: E402


def filled(couch: blocking.Couch, docs: int) -> blocking.Database:
    """A fresh database holding ``docs`` documents."""
    db = couch.create("bench-" + uuid.uuid4().hex[:10])
    result = db.save([{"_id": f"doc-{i:05d}", "n": 0, "title": "x" * 100} for i in range(docs)])
    assert not result.pending
    return db


def by_flush(db: blocking.Database, docs: int, args: argparse.Namespace) -> float:
    S = Session(db)
    S.fetch([f"doc-{i:05d}" for i in range(docs)])
    started = time.perf_counter()
    for i in range(docs):
        S[f"doc-{i:05d}"]["n"] += 1
    S.flush()
    return time.perf_counter() - started


def by_singles(db: blocking.Database, docs: int, args: argparse.Namespace) -> float:
    read = db.get([f"doc-{i:05d}" for i in range(docs)])
    started = time.perf_counter()
    for doc in read:
        doc["n"] += 1
        db.save(doc)
    return time.perf_counter() - started


def by_tasks(db: blocking.Database, docs: int, args: argparse.Namespace) -> float:
    read = db.get([f"doc-{i:05d}" for i in range(docs)])

    async def run() -> float:
        async with client.Couch(db.couch.url, db.couch.endpoint.auth) as couch:
            adb = couch[db.name]
            queue = iter(read)

            async def worker() -> None:
                for doc in queue:
                    doc["n"] += 1
                    await adb.save(doc)

            started = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(args.concurrency)))
            return time.perf_counter() - started

    return asyncio.run(run())


def check(db: blocking.Database, docs: int) -> None:
    stored = db.get([f"doc-{i:05d}" for i in range(docs)])
    assert all(doc is not None and doc["n"] == 1 for doc in stored), "an edit is missing"


@contextlib.contextmanager
def server(name: str, args: argparse.Namespace) -> Iterator[str]:
    """The URL of backend ``name``, started (and stopped) here."""
    if name == "embedded":
        with tempfile.TemporaryDirectory(prefix="settee-bench-", dir=ROOT / "var") as directory:
            yield "embedded:" + directory
        return
    process = (
        PouchServer(in_memory=True)
        if name == "pouchdb"
        else CouchServer(couchdb_release(args.couchdb_home))
    )
    try:
        process.start()
        yield process.url
    finally:
        process.stop()


def bench(name: str, url: str, args: argparse.Namespace) -> dict[str, float]:
    ways: dict[str, Callable[[blocking.Database, int, argparse.Namespace], float]] = {
        "flush": by_flush,
        "singles": by_singles,
    }
    if args.concurrency > 1:
        ways[f"singles x{args.concurrency}"] = by_tasks
    seconds: dict[str, list[float]] = {way: [] for way in ways}
    names = list(ways)
    with blocking.Couch(url) as couch:
        for round_no in range(args.rounds):
            shift = round_no % len(names)
            for way in names[shift:] + names[:shift]:
                db = filled(couch, args.docs)
                elapsed = ways[way](db, args.docs, args)
                check(db, args.docs)
                couch.delete(db.name)
                seconds[way].append(elapsed)
                print(
                    f"{name:<8} round {round_no + 1} {way:<12} {elapsed * 1000:9.1f} ms "
                    f"{args.docs / elapsed:9.0f} edits/s",
                    flush=True,
                )
    return {way: statistics.median(values) for way, values in seconds.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=16, help="tasks of 'singles xN'")
    parser.add_argument("--backend", action="append", choices=("embedded", "pouchdb", "couchdb"))
    parser.add_argument("--couchdb-home", help="a CouchDB release directory or its .tar.gz")
    args = parser.parse_args()
    backends = args.backend or ["embedded", "pouchdb"] + (["couchdb"] if args.couchdb_home else [])
    if "couchdb" in backends and not args.couchdb_home:
        parser.error("--backend couchdb needs --couchdb-home")
    (ROOT / "var").mkdir(exist_ok=True)
    medians: dict[str, dict[str, float]] = {}
    for name in backends:
        with server(name, args) as url:
            medians[name] = bench(name, url, args)
    print(f"\nMedians of {args.rounds} rounds, {args.docs} edits each")
    for name, ways in medians.items():
        for way, elapsed in ways.items():
            ratio = "" if way == "flush" else f"   flush is {elapsed / ways['flush']:.1f}x faster"
            print(f"{name:<8} {way:<12} {elapsed * 1000:9.1f} ms{ratio}")


if __name__ == "__main__":
    main()
