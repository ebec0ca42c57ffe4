"""The operator's narrowing at the gateway: exposed databases, read-only mode."""

from __future__ import annotations

import contextlib
import uuid

import pytest
from tornado.websocket import websocket_connect

from service.couch import CouchError
from tests.conftest import answer


@pytest.fixture
def hidden(bcouch):
    name = "hidden-" + uuid.uuid4().hex[:8]
    db = bcouch.create(name)
    db.save({"_id": "private"})
    yield db
    with contextlib.suppress(CouchError):
        bcouch.delete(name)


@pytest.mark.gen_test
async def test_only_the_exposed_databases_are_reached(start_settee, bdb, hidden):
    settee = start_settee(databases=(bdb.name,))
    bdb.save({"_id": "shown"})
    assert (await settee.fetch("GET", f"/{bdb.name}/shown")).code == 200
    for method, path in (
        ("GET", f"/{hidden.name}"),
        ("GET", f"/{hidden.name}/private"),
        ("POST", f"/{hidden.name}/_find"),
        ("DELETE", f"/{hidden.name}"),
        ("GET", f"/{hidden.name}/_changes?feed=longpoll"),
        ("GET", "/_users/_all_docs"),
        ("GET", "/_node/_local/_config"),
        ("POST", "/_replicate"),
        ("POST", "/_dbs_info"),
    ):
        body = {"selector": {}} if method == "POST" else None
        response = await settee.fetch(method, path, body)
        assert response.code == 404, (method, path, response.body)
    assert answer(await settee.fetch("GET", "/_all_dbs")) == [bdb.name]
    assert (await settee.fetch("GET", "/_uuids")).code == 200
    assert hidden.exists()


@pytest.mark.gen_test
async def test_read_only_refuses_every_write_and_keeps_reads(start_settee, bdb):
    settee = start_settee(read_only=True)
    bdb.save({"_id": "kept", "n": 1})
    for method, path, body in (
        ("PUT", f"/{bdb.name}/new", {}),
        ("POST", f"/{bdb.name}", {}),
        ("DELETE", f"/{bdb.name}/kept?rev=1-x", None),
        ("POST", f"/{bdb.name}/_bulk_docs", {"docs": [{}]}),
        ("PUT", f"/{bdb.name}/kept/file.txt", b"x"),
        ("DELETE", f"/{bdb.name}", None),
        ("PUT", f"/{bdb.name}/_security", {}),
        ("COPY", f"/{bdb.name}/kept", None),
        ("POST", f"/{bdb.name}/_index", {"index": {"fields": ["n"]}}),
    ):
        response = await settee.fetch(method, path, body, headers={"Destination": "copy"})
        assert response.code == 403, (method, path, response.body)
        assert answer(response)["reason"] == "this gateway is read-only"
    for method, path, body in (
        ("GET", f"/{bdb.name}/kept", None),
        ("POST", f"/{bdb.name}/_all_docs", {"keys": ["kept"]}),
        ("POST", f"/{bdb.name}/_bulk_get", {"docs": [{"id": "kept"}]}),
        ("POST", f"/{bdb.name}/_find", {"selector": {"n": 1}}),
    ):
        response = await settee.fetch(method, path, body)
        assert response.code == 200, (method, path, response.body)
    socket = await websocket_connect(settee.ws_url(bdb.name, "&since=0"))
    assert "kept" in await socket.read_message()
    socket.close()
    assert bdb.get(["new", "copy"]) == [None, None]
    assert bdb.exists()
