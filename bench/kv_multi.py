"""How much faster is ``Bucket.get_multi`` of 1,000 keys than 1,000 single ``get``s?

Three contenders read the same ``--keys`` keys (small JSON values) of one database, blocking,
side by side in each round (their order rotating by round):

- ``get_multi``: one call, one ``_all_docs`` request with the keys;
- ``get x N``: one ``get`` per key, one after another (a document GET each);
- ``get x N, async``: the same Bucket's async face (in a running loop), every ``get`` started
  at once and gathered (the client's connection pool bounds how many run together).

Each backend is started by this script and stopped by its PID: the embedded store in a
temporary directory (in this process), an in-memory pouchdb-server, and CouchDB 3.4.3 when
``COUCHDB_HOME`` names a release (``--backends`` picks). Medians of ``--rounds`` rounds.

    .venv/bin/python bench/kv_multi.py [--keys 1000] [--rounds 5] [--backends embedded,pouchdb]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from service.couch import blocking  # noqa: E402
from service.kv import Bucket  # noqa: E402
from tests.servers import CouchServer, PouchServer, couchdb_release  # noqa: E402


@contextlib.contextmanager
def server(backend: str) -> Iterator[str]:
    """The URL of a server of ``backend``, running until the block ends."""
    if backend == "embedded":
        with tempfile.TemporaryDirectory(prefix="kv-bench-") as directory:
            yield "embedded:" + directory
        return
    if backend == "couchdb":
        home = os.environ.get("COUCHDB_HOME")
        if not home:
            raise SystemExit("couchdb: set COUCHDB_HOME to a CouchDB release or its .tar.gz")
        started: CouchServer | PouchServer = CouchServer(couchdb_release(home)).start()
    else:
        started = PouchServer(in_memory=True).start()
    try:
        yield started.url
    finally:
        started.stop()


def contenders(
    bucket: Bucket, loop: asyncio.Runner, keys: list[str]
) -> dict[str, Callable[[], None]]:
    def multi() -> None:
        results = bucket.get_multi(keys)
        assert results.all_ok and len(results) == len(keys)

    def singles() -> None:
        for key in keys:
            bucket.get(key)

    async def gathered() -> None:  # the same Bucket: in this loop, its async face
        got = await asyncio.gather(*(bucket.get(key) for key in keys))
        assert len(got) == len(keys)

    return {
        "get_multi": multi,
        f"get x {len(keys)}": singles,
        f"get x {len(keys)}, async": lambda: loop.run(gathered()),
    }


def bench(backend: str, args: argparse.Namespace) -> None:
    with server(backend) as url:
        with blocking.Couch(url) as couch:
            couch.create("kv-bench")
        database = url.rstrip("/") + "/kv-bench"
        keys = [f"key-{i:05d}" for i in range(args.keys)]
        with Bucket(database) as bucket, asyncio.Runner() as loop:
            bucket.set_multi({key: {"n": i, "name": f"value {i}"} for i, key in enumerate(keys)})
            runs = contenders(bucket, loop, keys)
            times: dict[str, list[float]] = {name: [] for name in runs}
            for round_no in range(args.rounds):
                names = list(runs)
                names = names[round_no % len(names) :] + names[: round_no % len(names)]
                for name in names:
                    started = time.perf_counter()
                    runs[name]()
                    times[name].append(time.perf_counter() - started)
            loop.run(bucket.close())  # the async face's connections, in their loop
        print(f"\n{backend}: medians of {args.rounds} rounds, {args.keys} keys")
        multi = statistics.median(times["get_multi"])
        for name, seconds in times.items():
            median = statistics.median(seconds)
            print(f"  {name:<22} {median * 1000:9.1f} ms   {median / multi:6.1f}x get_multi")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--backends", default="embedded,pouchdb,couchdb")
    args = parser.parse_args()
    for backend in args.backends.split(","):
        bench(backend.strip(), args)


if __name__ == "__main__":
    main()
