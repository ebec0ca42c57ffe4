"""How much faster is one bulk save than a save per document? 10,000 new docs, both ways.

Bulk: ``await db.save(list)`` (``_bulk_docs``) in batches of ``--batch`` docs, one after
another; the default batch is all 10,000 in one request. Singles: ``await db.save(doc)`` (a
PUT each) from ``--concurrency`` asyncio tasks (16 by default). Each round writes into fresh
databases on one in-memory pouchdb-server that this script starts and stops; the order of the
two alternates by round, the document count is checked afterwards, and medians are printed.
A run that reaches ``--seconds`` stops early and counts only what it saved.

    .venv/bin/python bench/bulk_save.py [--docs 10000] [--batch 10000] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from service.couch.client import Couch, Database  # noqa: E402
from tests.servers import PouchServer  # noqa: E402


def new_docs(count: int) -> list[dict]:
    return [{"_id": f"doc-{i:05d}", "n": i, "title": "x" * 100} for i in range(count)]


async def bulk(db: Database, docs: list[dict], args: argparse.Namespace) -> int:
    """Save ``docs`` with one ``db.save(list)`` per batch; the number saved."""
    saved, deadline = 0, time.monotonic() + args.seconds
    for start in range(0, len(docs), args.batch):
        if time.monotonic() >= deadline:
            break
        result = await db.save(docs[start : start + args.batch])
        assert not result.pending, result.pending
        saved += len(result.resolved)
    return saved


async def singles(db: Database, docs: list[dict], args: argparse.Namespace) -> int:
    """Save ``docs`` one ``db.save(doc)`` at a time from ``args.concurrency`` tasks."""
    queue, deadline = iter(docs), time.monotonic() + args.seconds
    saved = 0

    async def worker() -> None:
        nonlocal saved
        for doc in queue:
            if time.monotonic() >= deadline:
                return
            await db.save(doc)
            saved += 1

    await asyncio.gather(*(worker() for _ in range(args.concurrency)))
    return saved


async def bench(url: str, args: argparse.Namespace) -> None:
    rates: dict[str, list[float]] = {"bulk": [], "singles": []}
    async with Couch(url) as couch:
        for round_no in range(args.rounds):
            order = ["bulk", "singles"] if round_no % 2 == 0 else ["singles", "bulk"]
            for name in order:
                db = await couch.create(f"{name}-{round_no}")
                started = time.perf_counter()
                saved = await {"bulk": bulk, "singles": singles}[name](
                    db, new_docs(args.docs), args
                )
                elapsed = time.perf_counter() - started
                count = (await db.info())["doc_count"]
                assert count == saved, (name, count, saved)
                rates[name].append(saved / elapsed)
                print(
                    f"round {round_no + 1} {name:<8} {saved:6d} docs in {elapsed:6.2f} s "
                    f"{saved / elapsed:8.0f} docs/s",
                    flush=True,
                )
    bulk_rate, single_rate = (statistics.median(rates[name]) for name in ("bulk", "singles"))
    print(f"\nMedians of {args.rounds} rounds, {args.docs} docs each (≤ {args.seconds:g} s a run)")
    print(f"{f'bulk, batches of {args.batch}':<24} {bulk_rate:8.0f} docs/s")
    print(f"{f'singles, {args.concurrency} tasks':<24} {single_rate:8.0f} docs/s")
    print(f"bulk / singles: {bulk_rate / single_rate:.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=10000)
    parser.add_argument("--batch", type=int, default=10000, help="docs per bulk request")
    parser.add_argument("--concurrency", type=int, default=16, help="tasks saving singles")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=60.0, help="time limit of a run")
    args = parser.parse_args()
    server = PouchServer(in_memory=True)
    try:
        server.start()
        print(f"pouchdb-server (in memory) at {server.url}, pid {server.process.pid}\n")
        asyncio.run(bench(server.url, args))
    finally:
        server.stop()


if __name__ == "__main__":
    main()
