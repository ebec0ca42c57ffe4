"""service.session: fetched once, edits tracked, every change in one _bulk_docs per flush.

Requests are counted by a real HTTP proxy between the session and the server
(``tests/counting.py``); on the embedded backend the server is a settee process serving an
embedded store, since the in-process transport has no wire to count on.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import pytest

from service.couch import BadRequest, Conflict, CouchError, NotFound, blocking
from service.couch.transport import Endpoint
from service.session import (
    HOOK_ROUNDS,
    FlushError,
    FlushResult,
    NotFetched,
    Session,
    SessionError,
)
from tests.counting import CountingProxy
from tests.servers import SetteeServer

BULK = "_bulk_docs"


@pytest.fixture(scope="module")
def http_server(backend, server_url):
    """The backend as an HTTP server: itself, or a settee process serving an embedded store."""
    if backend != "embedded":
        yield server_url
        return
    server = SetteeServer().start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def counted(http_server):
    """A fresh database reached through a counting proxy: ``(proxy, blocking Database)``,
    the proxy's count starting after the database was made."""
    endpoint = Endpoint.parse(http_server)
    name = "session-" + uuid.uuid4().hex[:10]
    with CountingProxy(endpoint.url) as proxy, blocking.Couch(proxy.url, endpoint.auth) as couch:
        db = couch.create(name)
        proxy.clear()
        try:
            yield proxy, db
        finally:
            with contextlib.suppress(CouchError):
                couch.delete(name)


def paths(proxy: CountingProxy) -> list[tuple[str, str]]:
    """The requests made, each path cut to what follows the database's name."""
    return [(method, path.split("/", 2)[2]) for method, path in proxy.requests]


def fill(db, *docs: dict) -> None:
    result = db.save([dict(doc) for doc in docs])
    assert not result.pending


# -- tracking


def test_nested_edits_are_tracked_without_any_call(bdb):
    fill(bdb, {"_id": "a", "shelf": {"books": ["x"], "owner": {"name": "ann"}}}, {"_id": "b"})
    S = Session(bdb)
    books = S["a"]["shelf"]["books"]  # an edit through another name counts too
    books.append("y")
    S["a"]["shelf"]["owner"]["name"] = "bob"
    S["b"]  # fetched, never changed
    assert S.pending() == {"a": "change"}
    result = S.flush()
    assert list(result.written) == ["a"] and result.refused == {}
    stored = bdb.get("a")
    assert stored["shelf"] == {"books": ["x", "y"], "owner": {"name": "bob"}}
    assert S["a"]["_rev"] == stored["_rev"] == result.written["a"]
    assert bdb.get("b")["_rev"].startswith("1-")


def test_a_document_is_fetched_once_and_kept(counted):
    proxy, db = counted
    fill(db, {"_id": "a", "n": 1})
    proxy.clear()
    S = Session(db)
    assert S["a"] is S["a"] and S.get("a")["n"] == 1 and "a" in S
    assert paths(proxy) == [("GET", "a")]
    assert S.get("missing") is None and "missing" not in S
    with pytest.raises(KeyError):
        S["missing"]


def test_fetching_many_is_one_request(counted):
    proxy, db = counted
    fill(db, {"_id": "a"}, {"_id": "b"})
    proxy.clear()
    S = Session(db)
    a, missing, b = S.fetch(["a", "nope", "b"])
    assert (a["_id"], missing, b["_id"]) == ("a", None, "b")
    assert S.fetch(["b", "a"]) == [b, a]  # in the session: no request
    assert paths(proxy) == [("POST", "_all_docs")]


def test_creates_take_the_id_given_or_get_one(bdb):
    S = Session(bdb)
    given = S.create({"_id": "mine", "n": 1})
    doc = {"n": 2}
    generated = S.create(doc)
    assert given == "mine" and doc["_id"] == generated and len(generated) == 32
    assert S["mine"]["n"] == 1 and S[generated] is doc
    assert bdb.get([given, generated]) == [None, None]  # nothing written before the flush
    doc["n"] = 3  # edited after create, before the flush: the flush writes it
    S.flush()
    assert bdb.get(generated)["n"] == 3 and doc["_rev"].startswith("1-")
    doc["n"] = 4  # the created document is now tracked like a fetched one
    assert S.pending() == {generated: "change"}
    S.flush()
    assert bdb.get(generated)["n"] == 4


def test_deletes(bdb):
    fill(bdb, {"_id": "a"}, {"_id": "b"})
    S = Session(bdb)
    del S["a"]
    new = S.create({"_id": "new"})
    del S[new]  # created and deleted in the session: nothing to write
    assert "a" not in S and S.pending() == {"a": "delete"}
    with pytest.raises(NotFound):
        S["a"]
    with pytest.raises(KeyError):
        del S["never-was"]
    S.flush()
    with pytest.raises(NotFound):
        bdb.get("a")
    assert bdb.get(["new", "b"])[0] is None
    with pytest.raises(NotFound):
        Session(bdb)["a"]


def test_a_document_deleted_then_created_again_is_written_over(bdb):
    fill(bdb, {"_id": "a", "old": True})
    S = Session(bdb)
    del S["a"]
    S.create({"_id": "a", "new": True})
    S["b"] = {"set": True}
    S["b"] = {"set": "again"}
    S.flush()
    assert bdb.get("a")["new"] and "old" not in bdb.get("a")
    assert bdb.get("b")["set"] == "again"


# -- one request per flush


def test_a_flush_is_one_bulk_request(counted):
    proxy, db = counted
    fill(db, {"_id": "edit", "n": 0}, {"_id": "drop"}, {"_id": "keep"})
    S = Session(db)
    for doc_id in ("edit", "drop", "keep"):
        S[doc_id]
    proxy.clear()
    S["edit"]["n"] += 1
    del S["drop"]
    created = [S.create({"i": i}) for i in range(20)]
    result = S.flush()
    assert paths(proxy) == [("POST", BULK)]
    assert sorted(result.written) == sorted(["edit", "drop", *created])
    assert S.pending() == {}
    proxy.clear()
    assert S.flush() == FlushResult()  # nothing pending: no request
    assert proxy.requests == []
    assert db.info()["doc_count"] == 22


def test_conflicts_are_reported_per_document_and_the_rest_written(counted):
    proxy, db = counted
    fill(db, {"_id": "theirs", "n": 0}, {"_id": "mine", "n": 0}, {"_id": "taken"})
    S = Session(db)
    S["theirs"]["n"] = 1
    S["mine"]["n"] = 1
    S.create({"_id": "taken"})  # the server has one already
    db.save(dict(db.get("theirs"), n=99))  # someone else writes first
    proxy.clear()
    with pytest.raises(FlushError) as caught:
        S.flush()
    assert paths(proxy) == [("POST", BULK)]
    result = caught.value.result
    assert set(result.conflicts) == {"theirs", "taken"}
    assert result.conflicts["theirs"]["error"] == "conflict"
    assert list(result.written) == ["mine"] and db.get("mine")["n"] == 1
    assert db.get("theirs")["n"] == 99
    assert S.pending() == {"theirs": "change", "taken": "create"}  # kept for another try
    S.discard("theirs", "taken")
    S["theirs"]["n"] += 1  # redone over the server's copy
    assert list(S.flush().written) == ["theirs"] and db.get("theirs")["n"] == 100


def test_a_refused_document_is_reported_with_its_reason(bdb, backend):
    check = "function (doc) { if (doc.bad) throw({forbidden: 'no bad docs'}); }"
    fill(bdb, {"_id": "_design/check", "validate_doc_update": check})
    S = Session(bdb)
    S.create({"_id": "good"})
    S.create({"_id": "bad", "bad": True})
    with pytest.raises(FlushError) as caught:
        S.flush()
    refused = caught.value.result.refused
    assert refused == {"bad": {"error": "forbidden", "reason": "no bad docs"}}
    assert caught.value.result.conflicts == {} and "bad (forbidden)" in str(caught.value)
    assert bdb.get("good")["_id"] == "good"


# -- hooks


def test_hooks_add_their_changes_to_the_same_flush(counted):
    proxy, db = counted
    fill(db, {"_id": "tally", "created": 0, "changed": 0}, {"_id": "x", "n": 0}, {"_id": "y"})
    seen: list[tuple[str, str]] = []

    def on_create(S, doc):
        seen.append(("create", doc["_id"]))
        S["tally"]["created"] += 1

    def on_change(S, doc):
        seen.append(("change", doc["_id"]))
        if doc["_id"] != "tally":
            S["tally"]["changed"] += 1
        doc["stamped"] = True  # its own document: does not make it run again

    def on_delete(S, doc):
        seen.append(("delete", doc["_id"]))
        S.create({"_id": "tombstone-" + doc["_id"], "was": doc})

    S = Session(db, on_create=on_create, on_change=on_change, on_delete=on_delete)
    S["tally"], S["y"]
    S["x"]["n"] = 1
    del S["y"]
    S.create({"_id": "new"})
    proxy.clear()
    result = S.flush()
    assert paths(proxy) == [("POST", BULK)]
    assert sorted(seen) == sorted(
        [
            ("change", "x"),
            ("delete", "y"),
            ("create", "new"),
            ("create", "tombstone-y"),
            ("change", "tally"),  # changed by the first round's hooks
            ("change", "tally"),  # and again by tombstone-y's on_create
        ]
    )
    assert sorted(result.written) == ["new", "tally", "tombstone-y", "x", "y"]
    tally = db.get("tally")
    assert (tally["created"], tally["changed"], tally["stamped"]) == (2, 1, True)
    assert db.get("tombstone-y")["was"]["_id"] == "y" and db.get("x")["stamped"]


def test_hooks_that_never_settle_are_stopped_and_nothing_is_written(counted):
    proxy, db = counted
    fill(db, {"_id": "ping", "n": 0}, {"_id": "pong", "n": 0})

    def on_change(S, doc):  # each bumps the other: they would run forever
        S["pong" if doc["_id"] == "ping" else "ping"]["n"] += 1

    S = Session(db, on_change=on_change)
    S["ping"]["n"] = 1
    S["pong"]
    proxy.clear()
    with pytest.raises(SessionError, match=f"{HOOK_ROUNDS} rounds"):
        S.flush()
    assert [request for request in proxy.requests if BULK in request[1]] == []
    assert db.get("ping")["n"] == 0 and db.get("pong")["n"] == 0


def test_a_hook_that_raises_stops_the_flush_before_any_write(bdb):
    def on_create(S, doc):
        raise RuntimeError("refused by the hook")

    S = Session(bdb, on_create=on_create)
    S.create({"_id": "a"})
    with pytest.raises(RuntimeError):
        S.flush()
    assert bdb.get(["a"]) == [None]


# -- attachments


def test_attachments_are_uploaded_after_the_bulk_request_with_the_new_revs(counted):
    proxy, db = counted
    fill(db, {"_id": "old", "n": 0})
    S = Session(db)
    S["old"]["n"] = 1
    S.put_attachment("old", "notes.txt", "plain text")
    new = S.create({"kind": "photo"})
    S.put_attachment(new, "pic.png", b"\x89PNG\r\n", "image/png")
    S.put_attachment(new, "data.bin", bytearray(b"\x00\x01"))
    proxy.clear()
    result = S.flush()
    assert paths(proxy) == [
        ("POST", BULK),
        ("PUT", "old/notes.txt"),
        ("PUT", f"{new}/pic.png"),
        ("PUT", f"{new}/data.bin"),
    ]
    assert result.written[new].startswith("3-") and result.written["old"].startswith("3-")
    assert db.get_attachment(new, "pic.png") == b"\x89PNG\r\n"
    assert db.get_attachment("old", "notes.txt") == b"plain text"
    stored = db.get(new)
    assert stored["_rev"] == S[new]["_rev"] == result.written[new]
    assert stored["_attachments"]["pic.png"]["content_type"] == "image/png"
    assert stored["_attachments"]["data.bin"]["content_type"] == "application/octet-stream"
    assert S.pending() == {}
    S[new]["kind"] = "picture"  # a later edit keeps the attachments
    S.flush()
    assert db.get_attachment(new, "pic.png") == b"\x89PNG\r\n"
    assert sorted(db.get(new)["_attachments"]) == ["data.bin", "pic.png"]
    del S[new]["_attachments"]["data.bin"]  # removing one is an edit of the document
    S.flush()
    assert sorted(db.get(new)["_attachments"]) == ["pic.png"]


def test_an_attachment_of_a_refused_document_waits_for_the_next_flush(bdb):
    fill(bdb, {"_id": "a"})
    S = Session(bdb)
    S["a"]["n"] = 1
    S.put_attachment("a", "f.txt", "text")
    bdb.save(dict(bdb.get("a"), n=2))
    with pytest.raises(FlushError):
        S.flush()
    assert bdb.get("a").get("_attachments") is None
    rev = bdb.rev("a")
    S["a"]["_rev"] = rev  # overwrite the server's copy, on purpose
    S.flush()
    assert bdb.get_attachment("a", "f.txt") == b"text"


# -- with


def test_with_flushes_on_a_clean_exit(bdb):
    fill(bdb, {"_id": "a", "n": 0})
    with Session(bdb) as S:
        S["a"]["n"] = 1
        S.create({"_id": "b"})
    assert bdb.get("a")["n"] == 1 and bdb.get("b")["_id"] == "b"


def test_with_discards_on_an_exception(bdb):
    fill(bdb, {"_id": "a", "n": 0})
    with pytest.raises(RuntimeError, match="midway"), Session(bdb) as S:
        S["a"]["n"] = 1
        S.create({"_id": "b"})
        S.put_attachment("a", "f.txt", "x")
        raise RuntimeError("midway")
    assert S.pending() == {}
    assert bdb.get("a")["n"] == 0 and bdb.get(["b"]) == [None]
    assert "_attachments" not in bdb.get("a")


def test_with_reports_a_refusal_at_its_end(bdb):
    fill(bdb, {"_id": "a"})
    with pytest.raises(FlushError) as caught, Session(bdb) as S:
        S.create({"_id": "a"})
        S.create({"_id": "b"})
    assert list(caught.value.result.conflicts) == ["a"]
    assert bdb.get("b")["_id"] == "b"


def test_a_path_target_is_the_embedded_store_opened_and_closed_by_the_session(tmp_path):
    with blocking.Couch(f"embedded:{tmp_path}") as couch:
        couch.create("notes")
    with Session(tmp_path / "notes") as S:
        S.create({"_id": "first", "text": "hello"})
    assert S.db.url == f"embedded:{tmp_path}/notes"
    with Session(str(tmp_path / "notes")) as S:
        assert S["first"]["text"] == "hello"


# -- async


@pytest.mark.gen_test
async def test_the_async_face(db, bdb):
    fill(bdb, {"_id": "a", "n": 0, "deep": {"list": []}}, {"_id": "b"}, {"_id": "c"})
    touched: list[str] = []

    async def on_change(S, doc):  # an async hook may fetch
        touched.append(doc["_id"])
        if doc["_id"] != "c":
            (await S.fetch("c"))["touched_by"] = doc["_id"]

    S = Session(db, on_change=on_change)
    assert S.asynchronous
    with pytest.raises(NotFetched):
        S["a"]
    with pytest.raises(NotFound):
        await S.fetch("missing")
    a, b = await S.fetch(["a", "b"])
    assert S["a"] is a and S["b"] is b
    a["deep"]["list"].append(1)
    del S["b"]
    new = S.create({"k": 1})
    S.put_attachment(new, "f.txt", "async")
    result = await S.flush()
    assert sorted(result.written) == sorted(["a", "b", "c", new])
    assert touched == ["a", "c"]  # c changed by a's hook: its own hook ran in the next round
    assert bdb.get("a")["deep"]["list"] == [1] and bdb.get("c")["touched_by"] == "a"
    assert bdb.get_attachment(new, "f.txt") == b"async"
    with pytest.raises(NotFound):
        bdb.get("b")


@pytest.mark.gen_test
async def test_an_async_flush_is_one_bulk_request_too(counted):
    proxy, db = counted
    fill(db, {"_id": "a", "n": 0}, {"_id": "b"})

    async def on_delete(S, doc):
        S.create({"_id": "gone-" + doc["_id"]})

    async with Session(db, asynchronous=True, on_delete=on_delete) as S:
        await S.fetch(["a", "b"])
        proxy.clear()
        S["a"]["n"] = 1
        del S["b"]
        S.create({"_id": "c"})
    assert paths(proxy) == [("POST", BULK)]
    assert [doc["_id"] for doc in db.get(["a", "b", "c", "gone-b"]) if doc] == ["a", "c", "gone-b"]


@pytest.mark.gen_test
async def test_one_async_flush_at_a_time(db, bdb):
    S = Session(db)
    S.create({"_id": "a"})
    first = S.flush()
    with pytest.raises(SessionError, match="under way"):
        S.flush()
    assert list((await first).written) == ["a"]
    S.create({"_id": "b"})
    assert list((await S.flush()).written) == ["b"]


@pytest.mark.gen_test
async def test_an_edit_made_while_a_flush_is_under_way_waits_for_the_next(db, bdb):
    S = Session(db)
    doc = {"_id": "a", "n": 1}
    S.create(doc)
    flight = S.flush()
    await asyncio.sleep(0)  # the flush has sent its request
    doc["n"] = 2
    await flight
    assert bdb.get("a")["n"] == 1 and S.pending() == {"a": "change"}
    await S.flush()
    assert bdb.get("a")["n"] == 2


@pytest.mark.gen_test
async def test_async_with_flushes_or_discards(db, bdb):
    fill(bdb, {"_id": "a", "n": 0})
    async with Session(db) as S:
        (await S.fetch("a"))["n"] = 1
    assert bdb.get("a")["n"] == 1
    with pytest.raises(ValueError, match="boom"):
        async with Session(db) as S:
            (await S.fetch("a"))["n"] = 2
            raise ValueError("boom")
    assert bdb.get("a")["n"] == 1


@pytest.mark.gen_test
async def test_a_blocking_target_can_be_driven_asynchronously(bdb):
    fill(bdb, {"_id": "a", "n": 0})
    async with Session(bdb, asynchronous=True) as S:
        (await S.fetch("a"))["n"] = 5
    assert bdb.get("a")["n"] == 5


# -- malformed input


def test_malformed_documents_are_refused_before_any_request(counted):
    proxy, db = counted
    fill(db, {"_id": "a"})
    S = Session(db)
    with pytest.raises(TypeError):
        S.create(["not", "a", "dict"])
    with pytest.raises(TypeError):
        S["x"] = "text"
    for bad in ("_bad", "", 5, None):
        with pytest.raises(BadRequest):
            S.create({"_id": bad})
        with pytest.raises(BadRequest):
            S[bad]
    with pytest.raises(BadRequest):
        S["y"] = {"_id": "z"}
    S.create({"_id": "twice"})
    with pytest.raises(Conflict):
        S.create({"_id": "twice"})
    S.discard("twice")
    proxy.clear()
    S.create({"_id": "set", "value": {1, 2}})  # not JSON
    with pytest.raises(BadRequest, match="'set'"):
        S.flush()
    S.discard("set")
    S["a"]["_id"] = "b"
    with pytest.raises(BadRequest, match="_id changed"):
        S.flush()
    assert [request for request in proxy.requests if BULK in request[1]] == []


def test_malformed_attachments_and_hooks_are_refused(bdb, io_loop):
    S = Session(bdb)
    S.create({"_id": "a"})
    for name in ("", "_reserved", None):
        with pytest.raises(BadRequest):
            S.put_attachment("a", name, b"x")
    with pytest.raises(TypeError):
        S.put_attachment("a", "f", 123)
    with pytest.raises(NotFound):
        S.put_attachment("missing", "f", b"x")
    with pytest.raises(TypeError):
        Session(bdb, on_change="not callable")

    async def async_hook(S, doc):
        pass

    S = Session(bdb, on_create=async_hook)
    S.create({"_id": "b"})
    with pytest.raises(TypeError, match="async session"):
        S.flush()
    with pytest.raises((TypeError, ValueError)):
        Session(12345)
    async_session = Session(bdb, asynchronous=True)
    with pytest.raises(TypeError), async_session:
        pass
    io_loop.run_sync(async_session.close)


def test_a_hook_cannot_flush_the_session_it_runs_in(bdb):
    def on_create(S, doc):
        S.flush()

    S = Session(bdb, on_create=on_create)
    S.create({"_id": "a"})
    with pytest.raises(SessionError, match="under way"):
        S.flush()


def test_the_public_names():
    import service.session

    assert sorted(service.session.__all__) == [
        "FlushError",
        "FlushResult",
        "Hook",
        "NotFetched",
        "Session",
        "SessionError",
    ]
    assert issubclass(NotFetched, LookupError) and not issubclass(NotFetched, KeyError)
    assert issubclass(FlushError, CouchError) and issubclass(SessionError, CouchError)
