"""Conflicts: one document raises, a bulk save reports per document, and both can be settled."""

from __future__ import annotations

import pytest

from service.couch import Conflict, ConflictResolution

# settee's own client suite: run on the backend, and again with settee in between.
pytestmark = pytest.mark.through_settee


@pytest.fixture
def stale(bdb):
    """Two docs saved twice on the server; the dicts returned still hold their first revs."""
    docs = [{"_id": "a", "n": 1, "mine": "a"}, {"_id": "b", "n": 1, "mine": "b"}]
    bdb.save(docs)
    stale = [dict(doc) for doc in docs]
    for doc in docs:
        doc["n"] = 2
        doc["theirs"] = True
    bdb.save(docs)
    return stale


def test_single_document_conflict_raises(bdb, stale):
    with pytest.raises(Conflict) as caught:
        bdb.save(stale[0])
    assert caught.value.status == 409 and caught.value.error == "conflict"
    assert "/a" in str(caught.value)


@pytest.mark.gen_test
async def test_single_document_conflict_raises_at_the_await(db, stale):
    with pytest.raises(Conflict):
        await db.save(stale[0])


def test_bulk_conflicts_are_pending_per_document(bdb, stale):
    fresh = {"_id": "c", "n": 1}
    result = bdb.save([stale[0], fresh, stale[1]])
    assert isinstance(result, ConflictResolution)
    assert set(result.resolved) == {"c"} and fresh["_rev"].startswith("1-")
    assert set(result.pending) == {"a", "b"}
    assert result.pending["a"]["error"] == "conflict"
    assert result.pending["a"]["doc"] is stale[0]


def test_resolve_merges_with_the_servers_copy(bdb, stale):
    result = bdb.save(stale)
    seen = []

    def merge(local, server):
        seen.append((local["mine"], server["n"]))
        if local["_id"] == "b":
            return None  # leave b pending
        return {**server, "n": server["n"] + 10, "merged": True}

    assert result.resolve(merge) is result
    assert sorted(seen) == [("a", 2), ("b", 2)]
    assert set(result.resolved) == {"a"} and set(result.pending) == {"b"}
    stored = bdb.get("a")
    assert stored["n"] == 12 and stored["merged"] and stored["theirs"]
    assert result.resolved["a"]["_rev"] == stored["_rev"]


def test_overwrite_replaces_the_servers_copy(bdb, stale):
    result = bdb.save(stale)
    assert result.overwrite() is result
    assert not result.pending and set(result.resolved) == {"a", "b"}
    stored = bdb.get("a")
    assert stored["n"] == 1 and "theirs" not in stored
    assert stale[0]["_rev"] == stored["_rev"]


def test_save_with_force_overwrites(bdb, stale):
    result = bdb.save(stale[0], force=True)
    assert not result.pending and bdb.get("a")["n"] == 1
    bulk = bdb.save([stale[1]], force=True)
    assert set(bulk.resolved) == {"b"} and bdb.get("b")["n"] == 1


def test_save_with_merge_merges(bdb, stale):
    result = bdb.save(stale[0], merge=lambda local, server: {**server, **local, "n": 3})
    assert set(result.resolved) == {"a"}
    stored = bdb.get("a")
    assert stored["n"] == 3 and stored["theirs"] and stored["mine"] == "a"


def test_merge_over_a_deleted_document_recreates_it(bdb, stale):
    current = bdb.get("a")
    bdb.delete(current)
    result = bdb.save([stale[0]])
    assert set(result.pending) == {"a"}
    servers = []
    result.resolve(lambda local, server: servers.append(server) or dict(local))
    assert servers == [None] and set(result.resolved) == {"a"}
    assert bdb.get("a")["mine"] == "a"


@pytest.mark.gen_test
async def test_resolution_is_awaitable_in_the_async_face(db, stale):
    result = await db.save(stale)
    assert set(result.pending) == {"a", "b"}
    assert await result.overwrite() is result
    assert not result.pending
    assert (await db.get("b"))["n"] == 1


def test_bulk_results_are_matched_to_documents_by_id(bdb, backend):
    """pouchdb-server lists validate_doc_update's refusals first, out of the documents' order."""
    check = "function (doc) { if (doc.bad) throw({forbidden: 'no bad docs'}); }"
    bdb.save({"_id": "_design/check", "validate_doc_update": check})
    docs = [{"_id": "good", "n": 1}, {"_id": "bad", "bad": True}, {"_id": "fine"}]
    result = bdb.save(docs)
    assert sorted(result.resolved) == ["fine", "good"]
    assert result.pending["bad"]["doc"] is docs[1] and result.pending["bad"]["error"] == "forbidden"
    assert [doc["_id"] for doc in docs] == ["good", "bad", "fine"] and "_rev" not in docs[1]
    assert docs[0]["_rev"] == bdb.get("good")["_rev"]
