"""What the seed APIs accept as a database: a Database of either face, a URL, a local path."""

from __future__ import annotations

import pytest

from service.couch import BadRequest, Database, blocking
from service.couch.targets import async_database, blocking_database, database_url


def test_a_database_of_the_face_asked_for_is_used_as_it_is(bdb):
    assert blocking_database(bdb) is bdb


def test_a_blocking_database_gets_an_async_twin_on_the_same_server(bdb, io_loop):
    bdb.save({"_id": "a", "n": 1})
    twin = async_database(bdb)
    assert isinstance(twin, Database) and not isinstance(twin, blocking.Database)
    assert twin.url == bdb.url
    doc = io_loop.run_sync(lambda: twin.get("a"))
    assert doc["n"] == 1
    io_loop.run_sync(twin.close)
    assert bdb.get("a")["n"] == 1  # closing the twin leaves the original's server open


def test_an_async_database_gets_a_blocking_twin(db, bdb):
    bdb.save({"_id": "a", "n": 2})
    with blocking_database(db) as twin:
        assert isinstance(twin, blocking.Database)
        assert twin.get("a")["n"] == 2


def test_a_url_names_the_database_on_its_server(bcouch, bdb):
    bdb.save({"_id": "a"})
    url = bdb.url
    if not url.startswith("embedded:"):
        user, password = bcouch.endpoint.auth or ("", "")
        scheme, _, rest = url.partition("://")
        url = f"{scheme}://{user}:{password}@{rest}" if user else url
    with blocking_database(url) as named:
        assert named.name == bdb.name
        assert named.get("a")["_id"] == "a"


def test_a_local_path_is_a_database_of_the_embedded_store(tmp_path):
    with blocking_database(tmp_path / "shelf") as local:
        assert local.url == f"embedded:{tmp_path}/shelf"
        local.couch.create("shelf")
        local.save({"_id": "k", "v": 1})
    assert database_url(str(tmp_path / "shelf")) == f"embedded:{tmp_path}/shelf"
    with blocking_database(str(tmp_path / "shelf")) as again:
        assert again.get("k")["v"] == 1


def test_a_path_that_is_no_database_name_is_refused_before_any_request(tmp_path):
    with pytest.raises(BadRequest):
        blocking_database(tmp_path / "Not A Name")
