"""service.kv.Bucket's views and design documents, and the service's reaper, on every backend."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from service.couch import Couch, NotFound
from service.kv import ArgumentError, Bucket, NotFoundError, Result
from service.kv.reaper import Reaper
from tests.servers import EMBEDDED_ADMIN, ROOT, free_port, wait_until_up
from tests.test_kv import eventually

PAST = 30 * 24 * 3600 + 1  # a ttl read as a Unix time in 1970: expired as it is written
DDOC = {
    "views": {
        "by_k": {"map": "function (doc) { if (doc.k !== undefined) emit(doc.k, doc.n); }"},
        "count": {
            "map": "function (doc) { if (doc.k !== undefined) emit(doc.k, 1); }",
            "reduce": "_count",
        },
    }
}


@pytest.fixture
def filled(bdb) -> Bucket:
    """30 keys whose view keys repeat (k = n % 4), and the view, published."""
    bucket = Bucket(bdb)
    bucket.set_multi({f"doc{n:02d}": {"k": n % 4, "n": n} for n in range(30)})
    bucket.design_create("t", DDOC, use_devmode=False)
    return bucket


def ids(rows) -> list[str]:
    return [row.id for row in rows]


def test_pages_follow_each_other_exactly_where_keys_repeat(filled, bdb, backend, monkeypatch):
    whole = list(filled.query("t", "by_k"))
    assert len(whole) == 30 and [row.key for row in whole] == sorted(row.key for row in whole)
    sent = []
    send = bdb.couch._runner.transport.send
    monkeypatch.setattr(
        bdb.couch._runner.transport, "send", lambda request: sent.append(request) or send(request)
    )
    for page_size in (1, 4, 7, 29, 30, 31):
        sent.clear()
        paged = list(filled.query("t", "by_k", page_size=page_size))
        assert ids(paged) == ids(whole), page_size
        assert [(r.key, r.value) for r in paged] == [(r.key, r.value) for r in whole]
        pages = -(-30 // page_size)  # the extra row says whether more follow
        if backend == "pouchdb":  # it ignores startkey_docid: see service/kv/views.py
            assert pages <= len(sent) <= pages + 1  # one more, to find that out
            assert all(int(r.query.get("skip", 0)) < 8 for r in sent)  # within one key's rows
        else:
            assert len(sent) == pages
            assert not [r for r in sent if "skip" in r.query]
    assert ids(filled.query("t", "by_k", streaming=True)) == ids(whole)


def test_paging_descending_with_a_range_and_a_limit(filled):
    whole = list(filled.query("t", "by_k", descending=True))
    assert ids(filled.query("t", "by_k", descending=True, page_size=3)) == ids(whole)
    ranged = list(filled.query("t", "by_k", startkey=1, endkey=2))
    assert ids(filled.query("t", "by_k", startkey=1, endkey=2, page_size=4)) == ids(ranged)
    limited = list(filled.query("t", "by_k", limit=10))
    assert ids(filled.query("t", "by_k", limit=10, page_size=3)) == ids(limited)
    assert list(filled.query("t", "by_k", limit=0, page_size=3)) == []


def test_paging_a_grouped_reduce(filled):
    groups = list(filled.query("t", "count", group=True))
    assert [(row.key, row.value) for row in groups] == [(0, 8), (1, 8), (2, 7), (3, 7)]
    paged = list(filled.query("t", "count", group=True, page_size=1))
    assert [(row.key, row.value) for row in paged] == [(0, 8), (1, 8), (2, 7), (3, 7)]


def test_include_docs_gives_results_and_hides_expired_keys(filled):
    filled.touch("doc00", PAST)
    rows = list(filled.query("t", "by_k", key=0, include_docs=True, page_size=2))
    assert "doc00" not in ids(rows) and len(rows) == 7
    assert all(isinstance(row.doc, Result) and row.doc.value["k"] == 0 for row in rows)
    assert rows[0].docid == rows[0].id


def test_query_in_the_async_face(filled, db, io_loop):
    async def scenario():
        bucket = Bucket(db)
        return [row.id async for row in bucket.query("t", "by_k", page_size=4)]

    assert io_loop.run_sync(scenario) == ids(filled.query("t", "by_k"))


def test_malformed_queries(filled):
    for page_size in (0, -1, "3", True):
        with pytest.raises(ArgumentError):
            filled.query("t", "by_k", page_size=page_size)
    for design, view in (("", "by_k"), ("t", ""), ("a/b", "by_k"), ("t", None)):
        with pytest.raises(ArgumentError):
            filled.query(design, view)
    with pytest.raises(ArgumentError):
        filled.query("t", "by_k", keys=[1, 2], page_size=2)
    with pytest.raises(ArgumentError):
        filled.query("t", "by_k", limit="ten")
    with pytest.raises(NotFound):
        list(filled.query("t", "no_such_view"))
    assert [row.key for row in filled.query("t", "by_k", keys=[3, 2])][:1] == [3]


def test_design_documents_in_development_mode(bucket_and_db):
    bucket, bdb = bucket_and_db
    created = bucket.design_create("beer", DDOC)
    assert created.key == "_design/dev_beer" and created.value["ok"]
    assert bdb.get("_design/dev_beer")["views"]["by_k"]
    assert bucket.design_get("beer").value["views"] == DDOC["views"]
    with pytest.raises(NotFoundError):
        bucket.design_get("beer", use_devmode=False)
    bucket.set("one", {"k": 1, "n": 1})
    assert ids(bucket.query("dev_beer", "by_k")) == ["one"]
    updated = bucket.design_create("beer", '{"views": {"by_k": {"map": "function (doc) {}"}}}')
    assert updated.cas.startswith("2-")
    bucket.design_create("beer", DDOC)
    published = bucket.design_publish("beer")
    assert published.key == "_design/beer"
    assert ids(bucket.query("beer", "by_k")) == ["one"]
    with pytest.raises(NotFoundError):
        bucket.design_get("beer")  # the development copy is gone
    bucket.design_create("beer", DDOC)
    assert bucket.design_publish("dev_beer").cas.startswith("2-")  # over the production one
    assert bucket.design_delete("beer", use_devmode=False).success
    with pytest.raises(NotFoundError):
        bucket.design_delete("beer", use_devmode=False)
    with pytest.raises(NotFoundError):
        bucket.design_publish("beer")


def test_malformed_design_documents(bucket_and_db):
    bucket, _ = bucket_and_db
    for name in ("", "a/b", None, 5):
        with pytest.raises(ArgumentError):
            bucket.design_create(name, DDOC)
    with pytest.raises(ArgumentError):
        bucket.design_create("x", "not json")
    with pytest.raises(ArgumentError):
        bucket.design_create("x", [1, 2])


@pytest.fixture
def bucket_and_db(bdb):
    return Bucket(bdb), bdb


# -- the service's reaper


def test_the_reaper_enters_only_databases_with_the_index(bcouch, bdb, server_url, io_loop):
    Bucket(bdb).set_multi({"gone1": 1, "gone2": 2}, ttl=PAST)
    other = bcouch.create(bdb.name + "-noindex")
    try:
        other.save({"_id": "expired", "~kv": {"expires": 1.0}})  # no index: left alone
        couch = Couch(server_url)

        async def sweep(databases=()):
            return await Reaper(couch, 60, databases).sweep()

        assert io_loop.run_sync(lambda: sweep([other.name])) == 0
        assert io_loop.run_sync(sweep) >= 2
        for key in ("gone1", "gone2"):
            with pytest.raises(NotFound):
                bdb.get(key)
        assert other.get("expired")
        io_loop.run_sync(couch.close)
    finally:
        bcouch.delete(other.name)


def test_settee_serve_runs_the_reaper(bdb, server_url, tmp_path):
    port = free_port()
    flags = ["--couch-url", server_url]
    if server_url.startswith("embedded:"):
        store = server_url.removeprefix("embedded:")
        flags = ["--data-dir", store, "--admin", ":".join(EMBEDDED_ADMIN)]
    environ = {k: v for k, v in os.environ.items() if k != "COUCHDB_URL"}
    environ["PYTHONPATH"] = str(ROOT)
    command = [sys.executable, "-m", "service", "serve", "--port", str(port)]
    command += ["--kv-reap-interval", "0.2", "--log-level", "warning", *flags]
    process = subprocess.Popen(command, cwd=tmp_path, env=environ, stdout=subprocess.DEVNULL)
    try:
        wait_until_up(f"http://127.0.0.1:{port}/_up", process=process)
        Bucket(bdb).set("brief", "here", ttl=1)
        started = time.monotonic()

        def removed() -> bool:
            try:
                bdb.get("brief")
            except NotFound:
                return True
            return False

        eventually(removed, timeout=30)
        assert time.monotonic() - started >= 0.9  # not before it expired
    finally:
        process.terminate()
        process.wait(30)
