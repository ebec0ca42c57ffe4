"""The embedded store's memory stays bounded however many threads read it (issue 17's soak).

Each reader connection kept a page cache of up to 2 MB of its own, and the store opens one per
concurrent reader: 32 threads reading a 46 MB database grew the process by 65 MiB. The caches
now share one process-wide soft limit (``files.HEAP_LIMIT``): 17 MiB. The reads run in a
process of their own so that its RSS is theirs alone.
"""

from __future__ import annotations

import json
import subprocess
import sys

from service.store import files

READ_WITH_MANY_THREADS = """
import json, sqlite3, sys, threading
from service.store.store import Store

directory, threads, rounds = sys.argv[1], 32, 300

def rss_mib():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024

store = Store.acquire(directory)
store.create("big")
fill = sqlite3.connect(store.database("big").path)
with fill:  # revisions of 1,024 documents, ~46 MB: the soak's file after ten minutes
    fill.executemany(
        "INSERT INTO revs (doc, rev, deleted, leaf, body) VALUES (?, ?, 0, 0, ?)",
        ((f"doc-{i % 1024:04}", f"{i}-x", "y" * 300) for i in range(120_000)),
    )
fill.close()

def query(n):
    return lambda conn: conn.execute(
        "SELECT count(*), max(length(body)) FROM revs WHERE doc = ?", (f"doc-{n % 1024:04}",)
    ).fetchall()

def reader(offset):
    for n in range(rounds):
        store.read("big", query(n * 37 + offset))

before = rss_mib()
workers = [threading.Thread(target=reader, args=(i,)) for i in range(threads)]
for worker in workers:
    worker.start()
for worker in workers:
    worker.join()
after = rss_mib()
store.release()
print(json.dumps({"before": before, "after": after}))
"""


def test_many_reader_threads_share_one_bounded_page_cache(tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", READ_WITH_MANY_THREADS, str(tmp_path)],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    rss = json.loads(done.stdout)
    grown = rss["after"] - rss["before"]
    limit_mib = files.HEAP_LIMIT / 2**20
    # the caches' bound, plus room for 32 threads' stacks and malloc arenas; unbounded, the
    # 32 caches grew by 64 MiB (2 MB each)
    assert grown < limit_mib + 24, f"RSS grew {grown:.1f} MiB reading with 32 threads"


def test_reads_and_writes_of_a_long_lived_document_do_not_load_its_whole_tree(
    tmp_path, monkeypatch
):
    """A document updated every few seconds has thousands of revisions (up to revs_limit).
    Loading them all for every GET and PUT made each request's work, and the memory of the
    requests in flight, grow with the document's age: in the 10-minute soak settee's RSS grew
    by 13 % and its p99 by 1.6x. A plain GET, a PUT and ``conflicts=true`` now read the
    revision, the winner or the leaves only."""
    from service.couch import blocking
    from service.store import tree

    with blocking.Couch(f"embedded:{tmp_path}") as couch:
        db = couch.create("aged")
        doc = {"_id": "old", "n": 0}
        for n in range(200):
            doc["n"] = n
            db.save(doc)
        loads: list[str] = []
        whole = tree.load
        monkeypatch.setattr(
            tree, "load", lambda conn, doc_id: loads.append(doc_id) or whole(conn, doc_id)
        )
        assert db.get("old")["n"] == 199
        assert "_conflicts" not in db.get("old", conflicts=True)
        doc["n"] = 200
        db.save(doc)
        assert db.get("old", rev=doc["_rev"])["n"] == 200
        assert loads == []
        assert len(db.get("old", revs=True)["_revisions"]["ids"]) == 201  # this one needs it
        assert loads == ["old"]
