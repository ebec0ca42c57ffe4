"""``service.shelf.PickleShareDB``: PickleShare's store over a database, on every backend."""

from __future__ import annotations

import time

import pytest

from service.shelf import PickleShareDB, Shelf
from service.shelf.keys import doc_id, glob_match, glob_range
from service.shelf.pickleshare import bucket_of
from tests.shelves import finish, go, start_python, url_of, wait_for_line


@pytest.fixture
def p(bdb):
    with PickleShareDB(bdb) as opened:
        yield opened


def test_it_is_a_shelf(p):
    assert isinstance(p, Shelf)
    p["hello"] = 15
    p["aku ankka"] = [1, 2, 313]
    p["paths/are/ok/key"] = [1, (5, 46)]
    assert p.keys() == ["aku ankka", "hello", "paths/are/ok/key"]
    del p["aku ankka"]
    assert dict(p.items()) == {"hello": 15, "paths/are/ok/key": [1, (5, 46)]}
    p.clear()
    assert p.keys() == []


def test_keys_by_glob(p, bdb):
    keys = [
        "paths/are/ok/key",
        "paths/x/ok/y",
        "paths/a",
        "paths/b",
        "pathsz",
        "other",
        "_hidden/a",
        "~t/a",
        "é/1",
        "é/2/x",
        "p?/q",
    ]
    for key in keys:
        p[key] = key
    bdb.save({"_id": "_design/paths", "views": {}})
    assert p.keys("paths/*/ok/*") == ["paths/are/ok/key", "paths/x/ok/y"]
    assert p.keys("paths/*") == ["paths/a", "paths/b"]  # * never crosses a /
    assert p.keys("paths/[a]") == ["paths/a"]
    assert p.keys("paths?") == ["pathsz"]
    assert sorted(p.keys("*")) == ["other", "pathsz"]
    assert p.keys("_hidden/*") == ["_hidden/a"] and p.keys("~t/*") == ["~t/a"]
    assert p.keys("é/*") == ["é/1"]
    assert p.keys("p[?]/q") == ["p?/q"]
    assert p.keys("nothing*") == []
    assert sorted(p.keys()) == sorted(keys)
    with pytest.raises(TypeError):
        p.keys(5)


@pytest.mark.parametrize(
    "pattern",
    ["a", "ab*", "é*", "a\ud7ff*", "a\uffff*", "\U0010ffff*", "a\U0001f600*", "_x*", "~*", "*"],
)
def test_a_globs_id_range_holds_every_key_it_matches(pattern):
    bounds = glob_range(pattern)
    literal = pattern.split("*")[0]
    for key in (literal, literal + "b", literal + "\uffff", literal + "\U0010ffff", literal + "/"):
        assert key.startswith(literal)
        ident = doc_id(key)
        if "startkey" in bounds:
            assert ident >= bounds["startkey"]
            for order in (str, lambda s: s.encode("utf-16-be")):  # code points, UTF-16 units
                if "endkey" in bounds:
                    assert order(ident) < order(bounds["endkey"])
    assert glob_match("a/b", "a/*") and not glob_match("a/b/c", "a/*")


def test_hashed_categories(p):
    for n in range(40):
        p.hset("cat", f"key{n}", n)
    assert p.hget("cat", "key7") == 7
    assert p.hdict("cat") == {f"key{n}": n for n in range(40)}
    assert all(key.startswith("cat/") and len(key) == 6 for key in p.keys("cat/*"))
    assert p.hget("cat", "missing", "default") == "default"
    with pytest.raises(KeyError):
        p.hget("cat", "missing")
    with pytest.raises(TypeError):
        p.hset("cat", 5, "a key that is not a str")
    p.hcompress("cat")
    assert p.keys("cat/*") == ["cat/xx"]  # the buckets are gone
    assert p.hdict("cat") == {f"key{n}": n for n in range(40)}
    # compressed pairs are found only when asked to look beyond the key's bucket
    assert p.hget("cat", "key7", "not fast") == "not fast"
    assert p.hget("cat", "key7", fast_only=False) == 7
    p.hset("cat", "key7", "newer")  # into a bucket again, which wins over the compressed
    assert p.hget("cat", "key7") == "newer"
    assert p.hdict("cat")["key7"] == "newer" and len(p.hdict("cat")) == 40
    p.hcompress("cat")
    assert p.hget("cat", "key7", fast_only=False) == "newer"
    assert bucket_of("key7") == bucket_of("key7") and len(bucket_of("x")) == 2


def test_hcompress_twice_with_raiseconflicts(bdb):
    with PickleShareDB(bdb, raiseconflicts=True) as p:
        for round_ in range(2):
            p.hset("cat", f"key{round_}", round_)
            p.hcompress("cat")  # the second writes over the compressed document it read
        assert p.keys("cat/*") == ["cat/xx"] and p.hdict("cat") == {"key0": 0, "key1": 1}


HSETTER = """
import sys
from service.shelf import PickleShareDB
url, name, keys = sys.argv[1], sys.argv[2], sys.argv[3:]
with PickleShareDB(url) as p:
    print("ready", flush=True)
    sys.stdin.readline()
    for key in keys:
        p.hset("shared", key, name)
"""


def test_hset_from_two_processes_into_one_bucket_loses_nothing(bcouch, bdb):
    same = [key for key in (f"k{n}" for n in range(20000)) if bucket_of(key) == "00"][:30]
    halves = {"a": same[::2], "b": same[1::2]}
    url = url_of(bcouch, bdb)
    setters = [start_python(HSETTER, url, name, *keys) for name, keys in halves.items()]
    for setter in setters:
        wait_for_line(setter, "ready")
    go(*setters)
    for setter in setters:
        finish(setter)
    with PickleShareDB(bdb) as p:
        assert p.keys("shared/*") == ["shared/00"]
        assert p.hdict("shared") == {k: name for name, keys in halves.items() for k in keys}


WRITE_LATER = """
import sys, time
from service.shelf import PickleShareDB
with PickleShareDB(sys.argv[1]) as p:
    p["warmup"] = 0
    print("ready", flush=True)
    sys.stdin.readline()
    time.sleep(0.3)  # let the waiter settle into its wait
    p["awaited"] = {"from": "elsewhere"}
    print(time.time(), flush=True)
"""


def test_waitget_wakes_when_another_process_writes(bcouch, bdb, p):
    writer = start_python(WRITE_LATER, url_of(bcouch, bdb))
    wait_for_line(writer, "ready")
    go(writer)
    value = p.waitget("awaited", maxwaittime=30)
    woken = time.time()
    written = float(finish(writer).split()[-1])
    assert value == {"from": "elsewhere"}
    assert woken - written < 0.1, f"woke {woken - written:.3f} s after the write"


def test_waitget_returns_at_once_or_gives_up(p):
    p["there"] = 1
    started = time.monotonic()
    assert p.waitget("there") == 1
    assert time.monotonic() - started < 5
    p["gone"] = 1
    del p["gone"]
    started = time.monotonic()
    with pytest.raises(KeyError):
        p.waitget("gone", maxwaittime=0.5)  # a deleted key has no value
    assert 0.5 <= time.monotonic() - started < 5
    with pytest.raises(KeyError):
        p.waitget("never", maxwaittime=0)
    with pytest.raises(TypeError):
        p.waitget(1, maxwaittime=0)


def test_links(p):
    link = p.getlink("myobjects/test")
    link.foo = 2
    link.bar = link.foo + 5
    assert p["myobjects/test/bar"] == 7
    assert repr(link) == "<Link 'myobjects/test': bar;foo>"
    del link.foo
    assert not hasattr(link, "foo")
    with pytest.raises(AttributeError):
        del link.foo
    assert p.keys() == ["myobjects/test/bar"]


def test_uncache_forgets_and_writes_back_first(bdb):
    with PickleShareDB(bdb, writeback=True) as p:
        p["big"] = [0]
        p["small"] = 1
        p["big"].append(1)
        p.uncache("big")
        assert bdb.get("big") and PickleShareDB(bdb)["big"] == [0, 1]
        p["small"] = 2
        p.uncache()
        assert p["small"] == 2
        p.uncache("never-read")
