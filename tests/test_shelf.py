"""``service.shelf``: the standard library's shelve API over a database, on every backend."""

from __future__ import annotations

import math
import pickle
import re
import urllib.request

import pytest

from service import shelf
from service.couch import NotFound, blocking
from service.shelf.keys import doc_id, key_of
from service.shelf.shelf import PAGE
from tests.servers import SetteeServer
from tests.shelves import finish, go, start_python, url_of, wait_for_line


@pytest.fixture
def d(bdb):
    with shelf.open(bdb) as opened:
        yield opened


def test_a_shelf_is_a_mapping_that_returns_copies(d, bdb):
    d["answer"] = {"value": 42, "list": [1, (2, 3)]}
    got = d["answer"]
    assert got == {"value": 42, "list": [1, (2, 3)]}
    got["value"] = 0
    assert d["answer"]["value"] == 42  # a copy each time, as shelve without writeback
    assert d["answer"] is not d["answer"]
    d["n"] = 1
    d["n"] = 2  # overwritten
    assert "n" in d and "nope" not in d
    assert len(d) == 2
    assert sorted(d) == ["answer", "n"] == sorted(d.keys())
    assert dict(d.items()) == {"answer": got | {"value": 42}, "n": 2}
    assert sorted(map(repr, d.values())) == sorted(map(repr, [d["answer"], 2]))
    assert d.get("nope") is None and d.get("nope", 7) == 7 and d.get("n") == 2
    del d["n"]
    assert "n" not in d and len(d) == 1
    with pytest.raises(KeyError):
        d["n"]
    with pytest.raises(KeyError):
        del d["n"]
    assert d.pop("answer")["value"] == 42 and len(d) == 0
    d.update({"a": 1, "b": 2})
    assert d.setdefault("a", 5) == 1 and d == {"a": 1, "b": 2}
    # another client sees one document per key
    assert bdb.get("a")["_id"] == "a"


def test_a_closed_shelf_refuses_everything(bdb):
    d = shelf.open(bdb)
    d["k"] = 1
    d.close()
    d.close()  # again: nothing
    for action in (lambda: d["k"], lambda: d.__setitem__("k", 2), lambda: len(d), d.sync):
        with pytest.raises(ValueError, match="closed"):
            action()
    assert bdb.get("k")  # closing the shelf left the given Database open


def test_keys_map_to_ids_reversibly_and_design_documents_are_not_keys(d, bdb):
    keys = ["_private", "~tilde", "", "_design/fake", "plain", "été/🎉", "~"]
    for n, key in enumerate(keys):
        d[key] = n
    assert sorted(d) == sorted(keys)
    assert {key: d[key] for key in keys} == {key: n for n, key in enumerate(keys)}
    ids = {row.id for row in bdb.view("_all_docs").rows}
    assert ids == {"~_private", "~~tilde", "~", "~_design/fake", "plain", "été/🎉", "~~"}
    assert all(key_of(doc_id(key)) == key for key in keys)
    bdb.save({"_id": "_design/real", "views": {}})
    bdb.save({"_id": "_local/checkpoint", "n": 1})
    assert len(d) == len(keys)  # neither the design nor the local document is a key
    assert sorted(d) == sorted(keys) and len(dict(d.items())) == len(keys)
    d.clear()
    assert len(d) == 0 and list(d) == []
    assert bdb.get("_design/real")  # clear() deletes keys, not the database's design


def test_flags(bcouch, bdb, db_name):
    with shelf.open(bdb, "w") as d:
        d["k"] = "v"
    with shelf.open(bdb, "r") as d:
        assert d["k"] == "v" and len(d) == 1
        for write in (
            lambda: d.__setitem__("k", 1),
            lambda: d.__delitem__("k"),
            d.clear,
            lambda: d.update(x=1),
        ):
            with pytest.raises(shelf.ReadOnlyError):
                write()
    assert bdb.get("k")
    with shelf.open(bdb, "c") as d:  # an existing database is kept
        assert d["k"] == "v"
    with shelf.open(bdb, "n") as d:  # a new, empty one
        assert len(d) == 0
        d["fresh"] = 1
    missing = bcouch[db_name + "-missing"]
    for flag in ("w", "r"):
        with pytest.raises(NotFound):
            shelf.open(missing, flag)
    assert not missing.exists()
    try:
        with shelf.open(missing, "c") as d:  # made when missing
            d["k"] = 1
        assert missing.exists()
    finally:
        bcouch.delete(missing.name)
    for bad in ("x", "", "rw", None, 1):
        with pytest.raises(ValueError, match="flag"):
            shelf.open(bdb, bad)


def test_writeback_caches_and_writes_back_what_changed(bdb):
    with shelf.open(bdb) as plain:
        plain["list"] = [1]
        plain["list"].append(2)  # lost: a copy, as with shelve
        assert plain["list"] == [1]
    d = shelf.open(bdb, writeback=True)
    d["same"] = {"n": 1}
    items = d["list"]
    assert d["list"] is items  # the cached object
    items.append(2)
    assert bdb.get("list")["_rev"].startswith("1-")  # nothing written before sync
    same_rev = bdb.get("same")["_rev"]
    d.sync()
    assert bdb.get("same")["_rev"] == same_rev  # unchanged: not written again
    with shelf.open(bdb) as other:
        assert other["list"] == [1, 2]
    assert d["list"] is not items  # the cache was emptied
    d["list"].append(3)
    dict(d.items())  # a bulk read caches too
    d["same"]["n"] = 2
    d.close()  # writes back
    with shelf.open(bdb) as other:
        assert other["list"] == [1, 2, 3] and other["same"] == {"n": 2}


def test_values_are_pickled_or_json(bdb):
    class Point:  # not picklable: a local class
        pass

    with shelf.open(bdb) as d:
        d["set"] = {1, 2}
        d["bytes"] = b"\x00\xff"
        assert d["set"] == {1, 2} and d["bytes"] == b"\x00\xff"
        for bad in (lambda: 1, Point(), (x for x in ())):
            with pytest.raises(pickle.PicklingError):
                d["bad"] = bad
        assert "bad" not in d  # refused before any request
    stored = bdb.get("set")
    assert set(stored) == {"_id", "_rev", "pickle"}
    with shelf.open(bdb, format="json") as j:
        j["doc"] = {"title": "x", "tags": ["a"], "n": 1.5, "pair": (1, 2)}
        assert j["doc"] == {"title": "x", "tags": ["a"], "n": 1.5, "pair": [1, 2]}
        assert type(j["doc"]) is dict
        assert bdb.get("doc")["value"]["tags"] == ["a"]  # JSON others can read
        for bad in ({1, 2}, b"bytes", float("nan"), object()):
            with pytest.raises(ValueError):
                j["bad"] = bad
        with pytest.raises(shelf.FormatError):  # a JSON shelf never unpickles
            j["set"]
        bdb.save({"_id": "foreign", "title": "written by another program"})
        with pytest.raises(shelf.FormatError):
            j["foreign"]
    with shelf.open(bdb) as d:
        assert d["doc"]["tags"] == ["a"]  # a pickle shelf reads JSON values
    with pytest.raises(ValueError, match="format"):
        shelf.open(bdb, format="yaml")


def test_malformed_keys_are_refused_before_any_request(d):
    for key in (1, None, b"bytes", ("t",), 1.5):
        for action in (d.__getitem__, d.__delitem__, d.__contains__, lambda k: d.update({k: 1})):
            with pytest.raises(TypeError):
                action(key)
    with pytest.raises(ValueError):
        d["lone \udc80 surrogate"] = 1
    assert len(d) == 0


def test_a_stale_write_wins_by_default_and_raises_with_raiseconflicts(bdb):
    first, second = shelf.open(bdb), shelf.open(bdb)
    first["k"] = "first"
    assert second["k"] == "first"
    first["k"] = "first again"
    second["k"] = "second"  # its rev was stale: retried with the current one
    assert first["k"] == "second"
    careful = shelf.open(bdb, writeback=True, raiseconflicts=True)
    assert careful["k"] == "second"
    first["k"] = "third"
    with pytest.raises(shelf.ConflictError) as raised:
        careful["k"] = "careful"
    assert raised.value.keys == ["k"] and raised.value.status == 409
    assert careful["k"] == "third"  # the cache was refreshed
    careful["k"] = "careful"  # now it has seen the current value
    assert first["k"] == "careful"
    first["new"] = 0
    with pytest.raises(shelf.ConflictError):  # a key it never saw is expected absent
        careful["new"] = 1
    careful["list"] = [1]
    careful["list"].append(2)
    first["list"] = ["other"]
    with pytest.raises(shelf.ConflictError) as raised:
        careful.sync()
    assert raised.value.keys == ["list"]
    assert careful["list"] == ["other"]  # refreshed from the database
    careful["list"].append("mine")
    careful.close()
    assert first["list"] == ["other", "mine"]
    first.close()
    second.close()


WRITER = """
import sys
from service import shelf
url, name, mode, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
conflicts = 0
with shelf.open(url, raiseconflicts=mode == "raise") as d:
    print("ready", flush=True)
    sys.stdin.readline()
    for n in range(count):
        try:
            d["contested"] = (name, n)
        except shelf.ConflictError:
            conflicts += 1
print(conflicts)
"""


@pytest.mark.parametrize("mode", ["retry", "raise"])
def test_two_processes_writing_one_key(bcouch, bdb, mode):
    url, count = url_of(bcouch, bdb), 60
    writers = [start_python(WRITER, url, name, mode, str(count)) for name in ("a", "b")]
    for writer in writers:
        wait_for_line(writer, "ready")
    go(*writers)
    conflicts = [int(finish(writer).split()[-1]) for writer in writers]
    with shelf.open(bdb) as d:
        last = d["contested"]
    if mode == "retry":
        assert conflicts == [0, 0]  # every write won, after retrying where it lost
        assert tuple(last) in {("a", count - 1), ("b", count - 1)}
    else:
        assert sum(conflicts) > 0  # the loser of each race heard of it


def metric_total(url: str) -> int:
    """Requests settee has answered, its /_metrics requests aside."""
    text = urllib.request.urlopen(url + "/_metrics", timeout=10).read().decode()
    total = 0
    for line in text.splitlines():
        if line.startswith("settee_requests_total{") and 'route="metrics"' not in line:
            total += int(float(line.rsplit(" ", 1)[1]))
    return total


def test_reading_many_values_is_a_few_bulk_requests(backend, server_url):
    """Through a settee process whose /_metrics counts what the shelf sent."""
    backend_url = None if backend == "embedded" else server_url
    server = SetteeServer(couch_url=backend_url).start()
    try:
        with blocking.Couch(server.url) as couch:
            name = "shelf-counted"
            db = couch[name]
            if db.exists():
                couch.delete(name)
            couch.create(name)
            count = 2 * PAGE + 500
            docs = [{"_id": f"k{n:05}", "value": n} for n in range(count)]
            for start in range(0, count, 1000):
                db.save(docs[start : start + 1000])
            plain_url = re.sub(r"//[^@/]*@", "//", server.url)
            with shelf.open(db, format="json") as d:
                before = metric_total(plain_url)
                items = dict(d.items())
                after_items = metric_total(plain_url)
                values = list(iter(d.values()))  # list() of the view would ask len() first
                assert len(d) == count
                after_all = metric_total(plain_url)
            assert items == {f"k{n:05}": n for n in range(count)}
            assert sorted(values) == list(range(count))
            pages = math.ceil(count / PAGE)
            assert after_items - before == pages  # not one request per key
            assert after_all - after_items == pages + 1  # values(), then len() in one
            couch.delete(name)
    finally:
        server.stop()
