"""A document's GET, PUT and DELETE are answered on the event loop, and only what is cheap
is: a request that needs slow work (a password never checked before, a validation function)
is sent back to a worker thread before it has any effect, and answered there; a write's
commit is awaited, not waited for."""

from __future__ import annotations

import base64

import pytest

from service.couch import Couch, Forbidden, NotFound, Unauthorized
from service.store import inline
from service.store.router import Server
from service.store.store import Store

PASSWORD = "s3cret pass"


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.fixture
def server(tmp_path):
    store = Store.acquire(tmp_path)
    server = Server(store)  # a request without credentials acts as the server admin
    assert server.handle("PUT", "/db", {}, b"").status == 201
    assert server.handle("PUT", "/db/doc", {}, b'{"n": 1}').status == 201
    user = b'{"name": "alice", "type": "user", "roles": [], "password": "%s"}' % PASSWORD.encode()
    assert server.handle("PUT", "/_users/org.couchdb.user:alice", {}, user).status == 201
    members = b'{"members": {"names": ["alice"]}}'
    assert server.handle("PUT", "/db/_security", {}, members).status == 200
    yield server
    store.release()


JSON = {"content-type": "application/json"}


@pytest.mark.parametrize(
    "method, target",
    [
        ("GET", "/db/doc"),
        ("HEAD", "/db/doc?rev=1-abc&revs=true&conflicts=true"),
        ("GET", "/db/_design/app"),
        ("GET", "/db/_local/checkpoint"),
        ("GET", "/db/a%2Fb"),
        ("PUT", "/db/doc"),
        ("PUT", "/db/doc?new_edits=false"),
        ("DELETE", "/db/doc?rev=1-abc"),
        ("PUT", "/db/_local/checkpoint"),
        ("POST", "/db"),
    ],
)
def test_a_documents_read_or_write_is_quick(method, target):
    assert Server.quick(method, target, JSON, 100)


@pytest.mark.parametrize(
    "method, target, headers, size",
    [
        ("PUT", "/db/doc", JSON, 65537),
        ("PUT", "/db/doc", {"content-type": "multipart/related; boundary=x"}, 100),
        ("PUT", "/db/_design/app", JSON, 100),
        ("PUT", "/db/doc/attachment.txt", {"content-type": "text/plain"}, 10),
        ("POST", "/db/_bulk_docs", JSON, 100),
        ("PUT", "/db", JSON, 0),
        ("PUT", "/_users/org.couchdb.user:x", JSON, 100),
        ("COPY", "/db/doc", {}, 0),
    ],
)
def test_what_may_take_long_to_write_is_not_quick(method, target, headers, size):
    assert not Server.quick(method, target, headers, size)


@pytest.mark.parametrize(
    "method, target",
    [
        ("GET", "/"),
        ("GET", "/db"),
        ("GET", "/db/_all_docs"),
        ("GET", "/db/_changes"),
        ("GET", "/db/_design/app/_view/v"),
        ("GET", "/db/_design/_view"),
        ("GET", "/db/doc/attachment.txt"),
        ("GET", "/db/doc?open_revs=all"),
        ("GET", "/db/doc?attachments=true"),
        ("GET", "/db/doc?atts_since=%5B%5D"),
        ("GET", "/_users"),
        ("GET", "/_all_dbs/x"),
    ],
)
def test_what_may_read_much_is_not_quick(method, target):
    assert not Server.quick(method, target, {}, 0)


def test_a_password_never_checked_sends_the_request_to_a_thread(server):
    with inline.running():
        assert server.handle("GET", "/db/doc", {}, b"").status == 200
        with pytest.raises(inline.WouldBlock):
            server.handle("GET", "/db/doc", basic("alice", PASSWORD), b"")
        with pytest.raises(inline.WouldBlock):  # a wrong password is hashed, in a thread
            server.handle("GET", "/db/doc", basic("alice", "wrong"), b"")
    assert server.handle("GET", "/db/doc", basic("alice", "wrong"), b"").status == 401
    assert server.handle("GET", "/db/doc", basic("alice", PASSWORD), b"").status == 200
    with inline.running():  # checked once, remembered: the loop answers it now
        assert server.handle("GET", "/db/doc", basic("alice", PASSWORD), b"").status == 200
        with pytest.raises(inline.WouldBlock):  # but another password is hashed again
            server.handle("GET", "/db/doc", basic("alice", "wrong"), b"")


def test_a_write_on_the_loop_is_awaited_not_waited_for(server):
    """On the loop a write hands its job to the writer and raises ``Pending``; finishing it
    once committed gives the answer (or its refusal), never a wait on the loop."""
    with inline.running(), pytest.raises(inline.Pending) as raised:
        server.handle("PUT", "/db/new", JSON, b'{"n": 2}')
    pending = raised.value
    pending.future.result(timeout=30)  # what the transport awaits
    assert pending.finish(pending.future).status == 201
    with inline.running(), pytest.raises(inline.Pending) as raised:
        server.handle("PUT", "/db/new", JSON, b'{"n": 3}')  # no rev: a conflict
    assert raised.value.finish(raised.value.future).status == 409
    with inline.running():  # a read: answered at once
        assert server.handle("HEAD", "/db/new", {}, b"").status == 200


def test_validation_functions_run_in_a_thread(server):
    rule = b'{"validate_doc_update": "function (doc) { if (doc.bad) throw({forbidden: 1}); }"}'
    assert server.handle("PUT", "/db/_design/rules", JSON, rule).status == 201
    with inline.running(), pytest.raises(inline.WouldBlock):
        server.handle("PUT", "/db/checked", JSON, b'{"bad": true}')
    assert server.handle("PUT", "/db/checked", JSON, b'{"bad": true}').status == 403


def test_making_a_database_is_never_done_on_the_loop(tmp_path):
    store = Store.acquire(tmp_path)
    try:
        with inline.running(), pytest.raises(inline.WouldBlock):
            store.create("made")
        assert not store.has("made")
    finally:
        store.release()


@pytest.mark.gen_test
async def test_the_async_client_gets_its_answers_either_way(server, tmp_path):
    """Through ``Couch("embedded:…")``: the first GET with a password goes to a thread, the
    next ones stay on the loop; the answers are the same."""
    async with Couch(f"embedded:{tmp_path}", auth=("alice", PASSWORD)) as couch:
        db = await couch.db("db")
        for _ in range(3):
            assert (await db.get("doc"))["n"] == 1
        with pytest.raises(NotFound):
            await db.get("missing")
    async with Couch(f"embedded:{tmp_path}", auth=("alice", "wrong")) as couch:
        with pytest.raises(Unauthorized):
            await (await couch.db("db")).get("doc")
    async with Couch(f"embedded:{tmp_path}", auth=("bob", PASSWORD)) as couch:
        with pytest.raises(Unauthorized):
            await (await couch.db("db")).get("doc")
    server.handle("PUT", "/db/_security", {}, b'{"members": {"names": ["carol"]}}')
    async with Couch(f"embedded:{tmp_path}", auth=("alice", PASSWORD)) as couch:
        with pytest.raises(Forbidden):
            await (await couch.db("db")).get("doc")
