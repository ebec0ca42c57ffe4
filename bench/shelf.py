"""How much faster is ``Shelf.items()`` than couchshelve's one GET per key? 10,000 keys.

Shelf: ``dict(d.items())``, pages of ``_all_docs?include_docs=true``. Per key: the pattern
of couchshelve (seed 000), which lists the keys with ``_all_docs`` and then reads each value
with its own GET, unpickling it; here written with the same blocking client, so that only
the number of requests differs. Both read the same pickle shelf and must get the same dict.
The order of the two alternates by round; medians and their ratio are printed. The shelf is
on an in-memory pouchdb-server this script starts and stops (default), on the embedded
store in a temporary directory (``--backend embedded``), on a CouchDB it starts from
``COUCHDB_HOME`` (``--backend couchdb``), or at ``--couch-url``.

    .venv/bin/python bench/shelf.py [--keys 10000] [--rounds 3] [--backend pouchdb|embedded|couchdb]
"""

from __future__ import annotations

import argparse
import base64
import os
import pickle
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from service import shelf  # noqa: E402
from service.couch import blocking  # noqa: E402
from tests.servers import CouchServer, PouchServer, couchdb_release  # noqa: E402


def per_key(db: blocking.Database) -> dict[str, Any]:
    """couchshelve's items(): the keys from _all_docs, then one GET per value."""
    ids = [row.id for row in db.view("_all_docs").rows]
    return {i: pickle.loads(base64.b64decode(db.get(i)["pickle"])) for i in ids}


def bulk(db: blocking.Database) -> dict[str, Any]:
    with shelf.open(db, "r") as d:
        return dict(d.items())


def timed(read: Callable[[blocking.Database], dict], db: blocking.Database, count: int) -> float:
    started = time.perf_counter()
    got = read(db)
    seconds = time.perf_counter() - started
    assert len(got) == count and got["k00007"] == {"n": 7, "tags": ["a", "b"]}
    return seconds


def run(url: str, args: argparse.Namespace) -> None:
    db = blocking.Database(url)
    shelf.open(db, "n").close()  # a new, empty database
    docs = [
        {"_id": f"k{n:05}", "pickle": shelf_field({"n": n, "tags": ["a", "b"]})}
        for n in range(args.keys)
    ]
    for start in range(0, len(docs), 5000):
        assert not db.save(docs[start : start + 5000]).pending
    times: dict[str, list[float]] = {"shelf items()": [], "one GET per key": []}
    arms = [("shelf items()", bulk), ("one GET per key", per_key)]
    for round_ in range(args.rounds):
        for name, read in arms if round_ % 2 == 0 else arms[::-1]:
            times[name].append(timed(read, db, args.keys))
        print(f"round {round_ + 1}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items()))
    medians = {name: statistics.median(values) for name, values in times.items()}
    for name, median in medians.items():
        print(f"{name:>16}: median {median:.3f} s ({args.keys / median:,.0f} keys/s)")
    print(f"ratio: items() is {medians['one GET per key'] / medians['shelf items()']:.1f}x faster")
    db.couch.delete(db.name)
    db.close()


def shelf_field(value: Any) -> str:
    """A value as a pickle shelf stores it (``service.shelf.formats``)."""
    return base64.b64encode(pickle.dumps(value, pickle.HIGHEST_PROTOCOL)).decode("ascii")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--keys", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--backend", choices=["pouchdb", "embedded", "couchdb"], default="pouchdb")
    parser.add_argument("--couch-url", help="a CouchDB server's URL, with credentials")
    args = parser.parse_args()
    if args.couch_url:
        run(args.couch_url.rstrip("/") + "/bench-shelf", args)
    elif args.backend == "embedded":
        with tempfile.TemporaryDirectory(prefix="bench-shelf-") as directory:
            run(f"embedded:{directory}/bench-shelf", args)
    else:
        if args.backend == "couchdb":
            server = CouchServer(couchdb_release(os.environ["COUCHDB_HOME"])).start()
        else:
            server = PouchServer().start()
        try:
            run(server.url + "/bench-shelf", args)
        finally:
            server.stop()


if __name__ == "__main__":
    main()
