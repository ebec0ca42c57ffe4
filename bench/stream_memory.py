"""Does streaming a view keep the client's memory flat? 1,000,000 ``_all_docs`` rows, measured.

This script starts one in-memory pouchdb-server on 127.0.0.1, fills a database with ``--rows``
small documents through ``_bulk_docs`` (batches of ``--batch``), then reads ``_all_docs`` (with
``limit``) in four ways, each case in a fresh Python process of its own:

* ``iterview``: ``async for row in db.iterview("_all_docs")``, rows counted and dropped;
* ``stream_view``: ``body = await db.stream_view("_all_docs")``, read chunk by chunk to the end
  (bytes and rows counted, nothing kept);
* ``view``: ``await db.view("_all_docs")``, the whole-response path, for contrast, at the smaller
  ``--whole-rows`` count (the same count is also streamed, so the two compare like for like).

Each case runs twice in its process: once untraced for the resident set (the growth of
/proc/self/status VmHWM over its value just before the read, the high-water mark having been
reset through /proc/self/clear_refs where the kernel allows it), then under tracemalloc for the
peak of the Python heap allocated while reading. tracemalloc's own bookkeeping would inflate the
resident set, hence two passes. Everything is time-bounded: the fill by ``--fill-seconds`` (it
stops early and the run uses the rows it has), each case by ``--case-seconds``.

    .venv/bin/python bench/stream_memory.py [--rows 1000000] [--whole-rows 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from service.couch.client import Couch  # noqa: E402
from tests.servers import PouchServer  # noqa: E402

DB = "stream-memory"
MiB = 1024 * 1024


def status_kib(field: str, pid: str = "self") -> int:
    """A ``kB`` field of /proc/<pid>/status (VmRSS, VmHWM), in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def reset_hwm() -> bool:
    """Reset VmHWM to the current RSS (Linux ≥ 4.0); False where that is not allowed."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


# -- the cases, run in a child process


class Counter:
    """Counts occurrences of ``pattern`` across chunk boundaries without keeping the chunks."""

    def __init__(self, pattern: bytes) -> None:
        self.pattern, self.count, self._tail = pattern, 0, b""

    def feed(self, chunk: bytes) -> None:
        data = self._tail + chunk
        self.count += data.count(self.pattern)
        self._tail = data[-(len(self.pattern) - 1) :]


async def read_iterview(db, rows: int) -> dict:
    count, last = 0, None
    async for row in db.iterview("_all_docs", limit=rows):
        count += 1
        last = row.id
    return {"rows": count, "last": last}


async def read_stream_view(db, rows: int) -> dict:
    body = await db.stream_view("_all_docs", limit=rows)
    ids, size, chunks, biggest = Counter(b'"id":'), 0, 0, 0
    try:
        while chunk := await body.read():
            ids.feed(chunk)
            size += len(chunk)
            chunks += 1
            biggest = max(biggest, len(chunk))
    finally:
        body.close()
    return {"rows": ids.count, "bytes": size, "chunks": chunks, "biggest_chunk": biggest}


async def read_view(db, rows: int) -> dict:
    view = await db.view("_all_docs", limit=rows)
    return {"rows": len(view.rows), "last": view.rows[-1].id if view.rows else None}


CASES = {"iterview": read_iterview, "stream_view": read_stream_view, "view": read_view}


async def child(case: str, rows: int, url: str, seconds: float) -> dict:
    read = CASES[case]
    async with Couch(url, timeout=seconds) as couch:
        db = couch[DB]
        await read(db, 10)  # opens the connection pool outside the measurement
        result: dict = {"case": case, "limit": rows}

        # Pass 1, untraced: the resident set.
        reset = reset_hwm()
        before = status_kib("VmHWM")
        started = time.perf_counter()
        answer = await asyncio.wait_for(read(db, rows), seconds)
        result["seconds"] = time.perf_counter() - started
        result["rss_growth"] = (status_kib("VmHWM") - before) * 1024
        result["rss_peak"] = status_kib("VmHWM") * 1024
        result["hwm_reset"] = reset
        result.update(answer)
        del answer

        # Pass 2, traced: the Python heap.
        tracemalloc.start()
        try:
            answer = await asyncio.wait_for(read(db, rows), seconds)
            result["heap_peak"] = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert answer["rows"] == result["rows"], (answer, result)
        return result


# -- the parent: server, fill, cases, table


async def fill(url: str, args: argparse.Namespace) -> int:
    """Fill the database with up to ``args.rows`` docs; the number the server holds."""
    async with Couch(url, timeout=300) as couch:
        db = await couch.create(DB)
        started = time.monotonic()
        deadline = started + args.fill_seconds
        step = max(args.rows // 10, args.batch)
        for start in range(0, args.rows, args.batch):
            if time.monotonic() >= deadline:
                print(f"fill: --fill-seconds reached at {start} docs; using those", flush=True)
                break
            docs = [{"_id": f"row-{i:07d}", "n": i} for i in range(start, start + args.batch)]
            answer = await db.bulk_docs(docs[: args.rows - start])
            failed = [row for row in answer if not row.get("ok")]
            assert not failed, failed[:3]
            done = min(start + args.batch, args.rows)
            if done % step == 0 or done == args.rows:
                elapsed = time.monotonic() - started
                print(
                    f"fill: {done:>9,} docs  {elapsed:6.0f} s  {done / elapsed:6.0f} docs/s",
                    flush=True,
                )
        return (await db.info())["doc_count"]


def run_case(case: str, rows: int, url: str, args: argparse.Namespace) -> dict:
    command = [sys.executable, __file__, "--child", case, str(rows), url, str(args.case_seconds)]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=2 * args.case_seconds + 60, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"{case} {rows}: exit {done.returncode}\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="docs in the database")
    parser.add_argument("--whole-rows", type=int, default=100_000, help="rows read whole")
    parser.add_argument("--batch", type=int, default=10_000, help="docs per _bulk_docs")
    parser.add_argument("--fill-seconds", type=float, default=1200.0)
    parser.add_argument("--case-seconds", type=float, default=600.0)
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        case, rows, url, seconds = args.child
        print(json.dumps(asyncio.run(child(case, int(rows), url, float(seconds)))))
        return

    # pouchdb-server keeps the in-memory database in V8's heap; give it room for 1M docs.
    os.environ["NODE_OPTIONS"] = os.environ.get("NODE_OPTIONS", "") + " --max-old-space-size=8192"
    server = PouchServer(in_memory=True)
    try:
        server.start()
        pid = str(server.process.pid)
        print(f"pouchdb-server (in memory) at {server.url}, pid {pid}", flush=True)
        total = asyncio.run(fill(server.url, args))
        whole = min(args.whole_rows, total)
        print(f"database holds {total:,} docs; node RSS {status_kib('VmRSS', pid) // 1024} MiB\n")

        plan = [("iterview", total), ("stream_view", total)]
        if whole < total:
            plan += [("iterview", whole), ("stream_view", whole)]
        plan += [("view", whole)]
        results = {}
        for case, rows in plan:
            print(f"running {case} over {rows:,} rows ...", flush=True)
            results[case, rows] = result = run_case(case, rows, server.url, args)
            assert result["rows"] == rows, result
    finally:
        server.stop()

    print(f"\n{'case':<12} {'rows':>9}  {'s (untraced)':>12}  {'rows/s':>8}  ", end="")
    print(f"{'heap peak MiB':>13}  {'RSS growth MiB':>14}")
    for (case, rows), r in results.items():
        print(
            f"{case:<12} {rows:>9,}  {r['seconds']:12.1f}  {rows / r['seconds']:8.0f}  "
            f"{r['heap_peak'] / MiB:13.2f}  {r['rss_growth'] / MiB:14.1f}"
        )
    stream = results["stream_view", total]
    print(
        f"\nstream_view over {total:,} rows: {stream['bytes'] / MiB:.0f} MiB in "
        f"{stream['chunks']:,} chunks, largest {stream['biggest_chunk'] / 1024:.0f} KiB"
    )
    if not all(r["hwm_reset"] for r in results.values()):
        print("(VmHWM could not be reset: RSS growth is over the process's earlier peak)")
    view = results["view", whole]
    for case in ("iterview", "stream_view"):
        small, big = results[case, whole], results[case, total]
        heap = view["heap_peak"] / small["heap_peak"]
        if small["rss_growth"] >= MiB:
            rss = f"{view['rss_growth'] / small['rss_growth']:.0f}x RSS growth"
        else:
            rss = f"RSS growth {view['rss_growth'] / MiB:.1f} MiB against < 1 MiB"
        print(
            f"{case}: heap peak at {total:,} rows / at {whole:,} rows = "
            f"{big['heap_peak'] / small['heap_peak']:.2f}x; "
            f"view / {case} at {whole:,} rows = {heap:.0f}x heap, {rss}"
        )


if __name__ == "__main__":
    main()
