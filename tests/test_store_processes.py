"""Processes sharing the embedded store's files (``--processes N``) hear of each other's commits.

Each process has its own writer; a feed waits on its own process's commit signal. These tests
write from another process and check that this process's signal fires for that database, and
that a subscriber of one settee gets, in order, what another settee on the same files wrote.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import threading

import pytest
from tornado.websocket import websocket_connect

from service.couch import NotFound, blocking
from service.store.store import Store
from tests.servers import SetteeServer

WAIT = 30  # seconds at most for news that normally takes milliseconds

WRITE_ELSEWHERE = """
import sys
from service.couch import blocking
with blocking.Couch("embedded:" + sys.argv[1]) as couch:
    couch[sys.argv[2]].save({"_id": sys.argv[3]})
"""


REMAKE_ELSEWHERE = """
import sys
from service.couch import blocking
with blocking.Couch("embedded:" + sys.argv[1]) as couch:
    couch.delete(sys.argv[2])
    if sys.argv[3] == "remake":
        couch.create(sys.argv[2])
"""


def write_from_another_process(directory: str, db: str, doc_id: str) -> None:
    subprocess.run(
        [sys.executable, "-c", WRITE_ELSEWHERE, directory, db, doc_id], check=True, timeout=60
    )


def remake_in_another_process(directory: str, db: str, remake: bool) -> None:
    args = [directory, db, "remake" if remake else "delete"]
    subprocess.run([sys.executable, "-c", REMAKE_ELSEWHERE, *args], check=True, timeout=60)


@pytest.mark.parametrize("remake", [False, True], ids=["deleted", "deleted-and-made-again"])
def test_a_database_another_process_deletes_is_gone_here_too(tmp_path, remake):
    """This process has the database open when another deletes it (and maybe makes another
    of its name): this one must not go on reading the old file, nor acknowledge writes to
    it, which no one would ever read."""
    with blocking.Couch(f"embedded:{tmp_path}") as couch:
        db = couch.create("shared")
        db.save({"_id": "old"})
        following = threading.Event()

        def follow() -> None:
            with contextlib.suppress(NotFound):
                db.changes(feed="continuous", since=0, heartbeat=1000, callback=seen)

        def seen(seq, changes) -> None:
            following.set()

        feed = threading.Thread(target=follow)
        feed.start()
        assert following.wait(WAIT)
        remake_in_another_process(str(tmp_path), "shared", remake)
        feed.join(WAIT)
        assert not feed.is_alive(), "a feed of the deleted database goes on"
        if not remake:
            with pytest.raises(NotFound):
                db.get("old")
            with pytest.raises(NotFound):
                db.save({"_id": "lost"})
            return
        with pytest.raises(NotFound):
            db.get("old")
        db.save({"_id": "new"})
    with blocking.Couch(f"embedded:{tmp_path}") as fresh:  # what the files hold
        assert fresh["shared"].info()["doc_count"] == 1
        assert fresh["shared"].get("new")["_id"] == "new"


def test_a_commit_in_another_process_fires_this_ones_signal(tmp_path):
    with blocking.Couch(f"embedded:{tmp_path}") as couch:
        couch.create("shared")
        couch.create("other")
        store = Store.acquire(tmp_path)
        try:
            shared, other = store.database("shared"), store.database("other")
            before, other_before = shared.signal.version, other.signal.version
            fired = threading.Event()
            waiter = threading.Thread(
                target=lambda: (shared.signal.wait(before, WAIT, lambda: False), fired.set())
            )
            waiter.start()
            write_from_another_process(str(tmp_path), "shared", "from-elsewhere")
            waiter.join()
            assert shared.signal.version != before, "no news of the other process's commit"
            assert other.signal.version == other_before  # only the database written
            assert couch["shared"].get("from-elsewhere")["_id"] == "from-elsewhere"
        finally:
            store.release()


def test_a_peer_that_is_gone_is_forgotten(tmp_path):
    with blocking.Couch(f"embedded:{tmp_path}") as couch:
        couch.create("db")
        registry = tmp_path / "peers"
        (registry / "999999999-deadbeef0000").touch()  # a process that died without a word
        couch["db"].save({"_id": "a"})  # its news is refused: the peer is struck off
        peers = [p.name for p in registry.iterdir()]
        assert len(peers) == 1 and not peers[0].startswith("999999999-"), peers


@pytest.mark.gen_test(timeout=120)
async def test_a_subscriber_gets_what_another_settee_on_the_same_files_wrote():
    first = SetteeServer().start()
    data = first.workdir / "data"
    second = SetteeServer(couch_url=f"embedded:{data}").start()
    try:
        blocking.Couch(first.url).create("shared")
        ws = await websocket_connect(
            f"ws://{first.credentials}127.0.0.1:{first.port}/shared/_changes?feed=websocket&since=0"
        )
        ids = [f"doc-{i:02}" for i in range(20)]
        with blocking.Couch(second.url) as writer:
            for doc_id in ids:
                writer["shared"].save({"_id": doc_id})
        got: list[str] = []
        while len(got) < len(ids):
            message = await ws.read_message()
            assert message is not None, f"closed after {got}"
            row = json.loads(message)
            if "id" in row:  # not the {"last_seq"} that says the backlog is sent
                got.append(row["id"])
        assert got == ids
        ws.close()
    finally:
        second.stop()
        first.stop()
