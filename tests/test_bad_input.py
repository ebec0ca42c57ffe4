"""Bad input fails before any request, a dead server fails in time, and secrets stay secret.

A client aimed at a closed port proves "before any request": had it sent anything, the error
would be ServerUnavailable rather than the validation error.
"""

from __future__ import annotations

import asyncio
import logging
import socket

import pytest

from service.couch import BadRequest, Couch, Database, ServerUnavailable, blocking
from tests.servers import free_port
from tests.waiting import until

SECRET = "s3cr3t-pw"


@pytest.fixture
def nowhere() -> str:
    """A URL, with credentials, where nothing listens."""
    return f"http://admin:{SECRET}@127.0.0.1:{free_port()}"


@pytest.fixture
def silent_server():
    """A URL where a socket accepts connections (via the backlog) and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield f"http://admin:{SECRET}@127.0.0.1:{listener.getsockname()[1]}"


BAD_DOCS = [
    {"_id": "x", "when": object()},
    {"_id": "x", "tags": {"a", "b"}},
    {"_id": "x", "ratio": float("nan")},
    {"_id": "x", "raw": b"bytes"},
]


@pytest.mark.parametrize("doc", BAD_DOCS)
def test_unserialisable_documents_are_refused_before_any_request(nowhere, doc):
    db = blocking.Couch(nowhere)["db"]
    with pytest.raises(BadRequest, match="not JSON-serialisable"):
        db.save(doc)
    with pytest.raises(BadRequest, match="not JSON-serialisable"):
        db.save([{"_id": "fine"}, doc])


def test_unserialisable_documents_write_nothing(bdb):
    with pytest.raises(BadRequest):
        bdb.save([{"_id": "fine"}, BAD_DOCS[0]])
    assert bdb.info()["doc_count"] == 0


@pytest.mark.parametrize("name", ["Bad Name", "1db", "_secret", "UPPER", ""])
def test_illegal_database_names_are_refused_before_any_request(nowhere, name):
    couch = blocking.Couch(nowhere)
    for attempt in (
        lambda: couch[name],
        lambda: couch.create(name),
        lambda: couch.db(name),
        lambda: couch.delete(name),
        lambda: Database(name),
    ):
        with pytest.raises(BadRequest) as caught:
            attempt()
        assert caught.value.error == "illegal_database_name"


@pytest.mark.parametrize("doc_id", ["_secret", "", "_design/", 42])
def test_illegal_document_ids_are_refused_before_any_request(nowhere, doc_id):
    db = blocking.Couch(nowhere)["db"]
    for attempt in (
        lambda: db.get(doc_id),
        lambda: db.save({"_id": doc_id}),
        lambda: db.save([{"_id": "ok"}, {"_id": doc_id}]),
        lambda: db.get(["ok", doc_id]),
        lambda: db.put_attachment({"_id": doc_id}, b"x", "a.txt"),
    ):
        with pytest.raises(BadRequest) as caught:
            attempt()
        assert caught.value.error == "illegal_docid"


@pytest.mark.gen_test
async def test_async_face_raises_validation_errors_at_the_await(nowhere):
    async with Couch(nowhere) as couch:
        db = couch["db"]
        with pytest.raises(BadRequest):
            await db.save({"_id": "_bad"})
        with pytest.raises(BadRequest):
            await db.save({"_id": "x", "v": {1, 2}})


def test_documents_must_be_dicts(nowhere):
    db = blocking.Couch(nowhere)["db"]
    with pytest.raises(TypeError):
        db.save("not a doc")
    with pytest.raises(TypeError):
        db.save([{"_id": "a"}, ["not", "a", "doc"]])


def _assert_unavailable(exc: ServerUnavailable, url: str) -> None:
    assert "127.0.0.1" in str(exc) and exc.url == url.replace(f"admin:{SECRET}@", "")
    assert SECRET not in str(exc) and SECRET not in repr(exc) and "admin" not in str(exc)


def test_refused_connection_is_server_unavailable_naming_the_url(nowhere):
    couch = blocking.Couch(nowhere, connect_timeout=2)
    with pytest.raises(ServerUnavailable) as caught:
        couch.all_dbs()
    _assert_unavailable(caught.value, nowhere)


@pytest.mark.gen_test
async def test_refused_connection_async(nowhere):
    async with Couch(nowhere, connect_timeout=2) as couch:
        with pytest.raises(ServerUnavailable) as caught:
            await couch["db"].get("x")
    _assert_unavailable(caught.value, nowhere)


@pytest.mark.gen_test(timeout=10)
async def test_silent_server_times_out_within_the_configured_timeout(silent_server):
    """The server never answers: the call ends only by the timeout, long before the wait's
    deadline (which a default timeout would pass)."""
    couch = blocking.Couch(silent_server, timeout=0.5)
    with pytest.raises(ServerUnavailable) as caught:
        await asyncio.wait_for(asyncio.to_thread(couch.version), 3)
    _assert_unavailable(caught.value, silent_server)


@pytest.mark.gen_test(timeout=10)
async def test_silent_server_times_out_async(silent_server):
    async with Couch(silent_server, timeout=0.5) as couch:
        with pytest.raises(ServerUnavailable) as caught:
            await asyncio.wait_for(couch.version(), 3)
    _assert_unavailable(caught.value, silent_server)


@pytest.mark.gen_test(timeout=10)
async def test_credentials_never_in_reprs_messages_or_logs(nowhere, caplog):
    caplog.set_level(logging.DEBUG)
    async with Couch(nowhere, connect_timeout=1) as couch:
        db = couch["db"]
        texts = [repr(couch), repr(db), repr(couch.endpoint), db.url, couch.url]
        feed = db.changes(feed="continuous", callback=lambda *a: None)
        await until(lambda: feed.reconnects >= 2, what="two reconnects")
        feed.stop()
        try:
            await db.get("x")
        except ServerUnavailable as exc:
            texts += [str(exc), repr(exc), str(exc.args)]
    texts += [record.getMessage() for record in caplog.records]
    assert any("reconnecting" in text for text in texts)
    for text in texts:
        assert SECRET not in text, text
