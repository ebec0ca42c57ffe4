"""A write the embedded store acknowledged survives ``kill -9`` of the settee serving it.

Eight writers save documents through settee (its HTTP API, so concurrent writes are grouped
into shared commits); settee is killed with SIGKILL mid-storm, restarted on the same data,
and must hold every document it answered 201 for, the database file intact.
"""

from __future__ import annotations

import sqlite3
import threading
import time

from service.couch import CouchError, blocking
from service.store.files import file_of
from tests.servers import SetteeServer

WRITERS = 8


def test_every_acknowledged_write_survives_kill_9():
    server = SetteeServer().start()
    try:
        blocking.Couch(server.url).create("storm")
        acked: list[str] = []
        stop = threading.Event()

        def write(n: int) -> None:
            db = blocking.Couch(server.url, timeout=5, connect_timeout=1)["storm"]
            i = 0
            while not stop.is_set():
                doc_id = f"w{n}-{i:06}"
                try:
                    db.save({"_id": doc_id, "payload": "x" * 100})
                except CouchError:
                    return  # settee is gone: this write was never acknowledged
                acked.append(doc_id)
                i += 1

        writers = [threading.Thread(target=write, args=(n,)) for n in range(WRITERS)]
        for thread in writers:
            thread.start()
        deadline = time.monotonic() + 30
        while len(acked) < 500 and time.monotonic() < deadline:
            time.sleep(0.01)
        server.kill()
        stop.set()
        for thread in writers:
            thread.join(10)
        assert len(acked) >= 500, "too few writes before the kill to tell anything"
        path = file_of(server.workdir / "data", "storm")
        with sqlite3.connect(path) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        server.start()
        with blocking.Couch(server.url) as couch:
            found = {row.id for row in couch["storm"].view("_all_docs")}
        missing = set(acked) - found
        assert not missing, f"{len(missing)} acknowledged writes lost, e.g. {sorted(missing)[:3]}"
    finally:
        server.stop()
