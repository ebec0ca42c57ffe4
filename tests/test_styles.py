"""The main calls in each calling style: await, yield under @relax, callback, blocking.

One scenario is written once and run four ways. In the ``relax`` style every call is made by
a ``@relax`` generator method of a Tornado RequestHandler served on a port, which yields the
client call and catches what the yield raises.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import pytest
import tornado.web

from service.couch import Conflict, CouchError, NotFound, Status, relax
from tests.conftest import assert_every_change_once

# settee's own client suite: run on the backend, and again with settee in between.
pytestmark = pytest.mark.through_settee

Call = Callable[..., Any]


def scenario(call: Call) -> None:
    doc = {"_id": "one", "v": 1}
    saved = call("save", doc)
    assert doc["_rev"].startswith("1-") and saved.resolved == {"one": doc}
    got = call("get", "one")
    assert got.v == 1 and got._rev == doc["_rev"]
    with pytest.raises(NotFound):
        call("get", "missing")
    with pytest.raises(Conflict):
        call("save", {"_id": "one", "v": 2})

    bulk = [{"_id": f"b{i}", "v": i} for i in range(3)] + [{"_id": "one", "v": 3}]
    result = call("save", bulk)
    assert set(result.resolved) == {"b0", "b1", "b2"} and set(result.pending) == {"one"}
    assert [d and d["v"] for d in call("get", ["b2", "nope", "b0"])] == [2, None, 0]

    view = call("view", "_all_docs", include_docs=True)
    assert [row.id for row in view] == ["b0", "b1", "b2", "one"]
    assert view.rows[3].doc.v == 1

    call("put_attachment", doc, b"\x01\x02", "data.bin", "application/octet-stream")
    assert call("get_attachment", "one", "data.bin") == b"\x01\x02"
    call("delete_attachment", doc, "data.bin")
    with pytest.raises(NotFound):
        call("get_attachment", "one", "data.bin")

    assert call("delete", doc)["ok"]
    with pytest.raises(NotFound):
        call("get", "one")
    changes = call("changes", since=0)
    assert {row["id"] for row in changes["results"]} == {"one", "b0", "b1", "b2"}
    assert [row.get("deleted") for row in changes["results"] if row["id"] == "one"] == [True]


# -- the four styles


def test_blocking(bdb):
    scenario(lambda name, *args, **kw: getattr(bdb, name)(*args, **kw))


def test_await(db, io_loop):
    scenario(lambda name, *args, **kw: io_loop.run_sync(lambda: getattr(db, name)(*args, **kw)))


def test_callback(db, io_loop):
    statuses: list[Status] = []

    def call(name: str, *args: Any, **kw: Any) -> Any:
        async def run() -> Any:
            done = asyncio.Event()
            box: dict[str, Any] = {}

            def callback(data: Any, status: Status) -> None:
                box.update(data=data, status=status)
                done.set()

            getattr(db, name)(*args, callback=callback, **kw)
            await done.wait()
            status = box["status"]
            statuses.append(status)
            if not status.ok:
                raise status.exception
            return box["data"]

        return io_loop.run_sync(run)

    scenario(call)
    failed = [s for s in statuses if not s.ok]
    assert {s.error for s in failed} == {NotFound, Conflict}
    assert all(s.code in (404, 409) and s.headers for s in failed)
    assert all(s.code in (200, 201) and s.exception is None for s in statuses if s.ok)


def test_callback_in_the_blocking_face(bdb):
    seen = []
    doc = bdb.get("nope", callback=lambda data, status: seen.append((data, status)))
    assert doc is None
    ((data, status),) = seen
    assert data is None and status.error is NotFound and status.code == 404


class CallHandler(tornado.web.RequestHandler):
    """Runs the call registered under the URL's key by yielding it, as a service handler would."""

    def initialize(self, db: Any, calls: dict[str, Any]) -> None:
        self.db = db
        self.calls = calls

    @relax
    def post(self, key: str):
        name, args, kwargs = self.calls[key]
        try:
            result = yield getattr(self.db, name)(*args, **kwargs)
        except CouchError as exc:
            self.calls[key] = ("raised", exc)
        else:
            self.calls[key] = ("returned", result)
        self.write("done")


class ParallelHandler(tornado.web.RequestHandler):
    """Yields a list of calls, which @relax runs at once."""

    def initialize(self, db: Any) -> None:
        self.db = db

    @relax
    def get(self):
        first, second = yield [self.db.get("p1"), self.db.get("p2")]
        self.write({"sum": first.n + second.n})


class FeedHandler(tornado.web.RequestHandler):
    """Starts a continuous feed from a handler and holds it in the application."""

    def initialize(self, db: Any, feeds: list) -> None:
        self.db = db
        self.feeds = feeds

    @relax
    def post(self):
        feed = yield self.db.changes(
            feed="continuous",
            since=0,
            latency=0,
            callback=lambda seq, rows: self.feeds.extend(rows),
        )
        self.feeds.append(feed)
        self.write("following")


@pytest.fixture
def relaxed(db):
    calls: dict[str, Any] = {}
    feeds: list = []
    return calls, feeds


@pytest.fixture
def app(db, relaxed):
    calls, feeds = relaxed
    return tornado.web.Application(
        [
            (r"/call/(\w+)", CallHandler, {"db": db, "calls": calls}),
            (r"/parallel", ParallelHandler, {"db": db}),
            (r"/feed", FeedHandler, {"db": db, "feeds": feeds}),
        ]
    )


def test_relax(http_server, http_client, base_url, io_loop, relaxed):
    calls, _ = relaxed

    def call(name: str, *args: Any, **kw: Any) -> Any:
        key = f"c{len(calls)}"
        calls[key] = (name, args, kw)
        response = io_loop.run_sync(
            lambda: http_client.fetch(f"{base_url}/call/{key}", method="POST", body=b"")
        )
        assert response.body == b"done"
        outcome, value = calls[key]
        if outcome == "raised":
            raise value
        return value

    scenario(call)


def test_relax_yields_calls_in_parallel(http_server, http_client, base_url, io_loop, bdb):
    bdb.save([{"_id": "p1", "n": 1}, {"_id": "p2", "n": 2}])
    response = io_loop.run_sync(lambda: http_client.fetch(f"{base_url}/parallel"))
    assert response.body == b'{"sum": 3}'


def test_relax_handler_follows_changes(http_server, http_client, base_url, io_loop, relaxed, bdb):
    _, feeds = relaxed
    io_loop.run_sync(lambda: http_client.fetch(f"{base_url}/feed", method="POST", body=b""))
    bdb.save([{"_id": "f1"}, {"_id": "f2"}])

    async def until_received() -> None:
        while {row["id"] for row in feeds[1:]} != {"f1", "f2"}:
            await asyncio.sleep(0.02)

    io_loop.run_sync(until_received, timeout=10)
    feeds[0].stop()


def test_relax_passes_native_coroutines_through():
    async def handler_method():
        return 1

    assert relax(handler_method) is handler_method


def test_blocking_continuous_feed_in_a_thread(bdb):
    received: list[dict] = []
    arrived = threading.Event()

    def callback(seq: Any, rows: list[dict]) -> None:
        received.extend(rows)
        if len(received) >= 3:
            arrived.set()

    feed = bdb.changes(feed="continuous", since=0, latency=0, callback=callback)
    bdb.save([{"_id": f"t{i}"} for i in range(3)])
    assert arrived.wait(10)
    assert_every_change_once(received, ["t0", "t1", "t2"])
    assert feed.last_seq == received[-1]["seq"]
    feed.stop()
    feed.wait(15)
    assert not feed.running


def test_blocking_face_works_beside_a_running_loop(bdb, io_loop):
    bdb.save({"_id": "beside"})

    async def inside_the_loop() -> str:
        return bdb.get("beside")["_id"]

    assert io_loop.run_sync(inside_the_loop) == "beside"


def test_blocking_iterview_streams(bdb):
    bdb.save([{"_id": f"s{i:03}"} for i in range(50)])
    ids = [row.id for row in bdb.iterview("_all_docs", startkey="s010", limit=5)]
    assert ids == ["s010", "s011", "s012", "s013", "s014"]
