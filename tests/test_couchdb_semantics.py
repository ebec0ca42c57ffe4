"""Where settee handles a route, it answers as CouchDB 3.4 does, whatever the backend.

Each case here is one where pouchdb-server answers otherwise (and, for some, where settee
itself did): a delete without a rev, a ``since`` the backend never issued, reduce on a
map-only view, a malformed rev, an over-long database name, a WebSocket feed asked for
without an upgrade. The expected answers are CouchDB 3.4.3's own.
"""

from __future__ import annotations

import json

import pytest

from tests.conftest import answer

MAP_ONLY = {"views": {"by_id": {"map": "function (doc) { emit(doc._id, 1); }"}}}


@pytest.mark.gen_test
async def test_a_delete_without_a_rev_is_a_conflict_and_deletes_nothing(settee, bdb):
    bdb.save({"_id": "live", "n": 1})
    for headers, body in (({}, None), ({"Content-Type": "application/json"}, '{"_rev":"1-x"}')):
        response = await settee.fetch("DELETE", f"/{bdb.name}/live", body, headers)
        assert response.code == 409, response.body
        assert answer(response) == {"error": "conflict", "reason": "Document update conflict."}
    assert bdb.get("live")["n"] == 1
    missing = await settee.fetch("DELETE", f"/{bdb.name}/missing")
    assert missing.code == 404


@pytest.mark.gen_test
async def test_an_attachment_delete_without_a_rev_is_a_conflict(settee, bdb):
    doc = {"_id": "with-file"}
    bdb.save(doc)
    bdb.put_attachment(doc, b"kept", "file.txt", "text/plain")
    response = await settee.fetch("DELETE", f"/{bdb.name}/with-file/file.txt")
    assert response.code == 409, response.body
    assert bdb.get_attachment("with-file", "file.txt") == b"kept"


@pytest.mark.gen_test
@pytest.mark.parametrize("since", ["abc", "-1", "1.5", "[1]", "1-abc"])
@pytest.mark.parametrize("feed", ["normal", "longpoll", "continuous", "eventsource"])
async def test_a_since_the_backend_never_issued_is_400(settee, bdb, since, feed):
    url = f"/{bdb.name}/_changes?feed={feed}&since={since}&timeout=100"
    response = await settee.fetch("GET", url)
    assert response.code == 400, response.body
    assert answer(response) == {
        "error": "bad_request",
        "reason": "Malformed sequence supplied in 'since' parameter.",
    }


@pytest.mark.gen_test
async def test_a_since_in_the_backends_own_form_is_taken(settee, bdb):
    bdb.save({"_id": "a"})
    issued = await settee.fetch("GET", f"/{bdb.name}/_changes")
    last_seq = answer(issued)["last_seq"]
    for feed in ("normal", "longpoll"):
        url = f"/{bdb.name}/_changes?feed={feed}&timeout=100&since={last_seq}"
        response = await settee.fetch("GET", url)
        assert response.code == 200, response.body
        assert answer(response)["results"] == []


@pytest.mark.gen_test
@pytest.mark.parametrize("feed", ["normal", "longpoll", "continuous"])
async def test_since_now_answers_a_seq_the_backend_issued(settee, bdb, feed):
    bdb.save([{"_id": "a"}, {"_id": "b"}])
    now = bdb.changes(since="now")["last_seq"]
    response = await settee.fetch("GET", f"/{bdb.name}/_changes?feed={feed}&since=now&timeout=200")
    assert response.code == 200, response.body
    text = response.body.decode().strip()
    last = text.splitlines()[-1] if feed == "continuous" else text
    last_seq = json.loads(last)["last_seq"]
    # The same point in the database: CouchDB may encode it otherwise (seqs are opaque),
    # but their numbers agree and nothing comes after it.
    assert last_seq != "now"
    assert str(last_seq).split("-")[0] == str(now).split("-")[0]
    assert bdb.changes(since=last_seq)["results"] == []


@pytest.mark.gen_test
async def test_reduce_or_grouping_on_a_map_only_view_is_400(settee, bdb):
    bdb.save({"_id": "_design/m", **MAP_ONLY})
    for query, reason in (
        ("reduce=true", "Reduce is invalid for map-only views."),
        ("group=true", "Invalid use of grouping on a map view."),
        ("group_level=1", "Invalid use of grouping on a map view."),
    ):
        response = await settee.fetch("GET", f"/{bdb.name}/_design/m/_view/by_id?{query}")
        assert response.code == 400, (query, response.body)
        assert answer(response) == {"error": "query_parse_error", "reason": reason}
    response = await settee.fetch("GET", f"/{bdb.name}/_all_docs?reduce=true")
    assert response.code == 400
    fine = await settee.fetch("GET", f"/{bdb.name}/_design/m/_view/by_id?reduce=false&group=false")
    assert fine.code == 200, fine.body


@pytest.mark.gen_test
async def test_a_malformed_rev_is_400_wherever_it_is_given(settee, bdb):
    bdb.save({"_id": "doc"})
    base = f"/{bdb.name}/doc"
    for method, path, body, headers in (
        ("GET", base + "?rev=bogus", None, {}),
        ("GET", base + "?rev=x-1", None, {}),
        ("PUT", base, {"_rev": "bogus"}, {}),
        ("PUT", base, {"_rev": 5}, {}),
        ("PUT", base, {}, {"If-Match": '"bogus"'}),
        ("DELETE", base + "?rev=-abc", None, {}),
        ("PUT", base + "/file.txt?rev=bogus", b"x", {"Content-Type": "text/plain"}),
    ):
        response = await settee.fetch(method, path, body, headers)
        assert response.code == 400, (method, path, body, headers, response.body)
        assert answer(response) == {"error": "bad_request", "reason": "Invalid rev format"}


@pytest.mark.gen_test
async def test_a_database_name_over_238_characters_is_400(settee, bcouch):
    name = "a" * 239
    response = await settee.fetch("PUT", f"/{name}")
    assert response.code == 400, response.body
    assert answer(response)["error"] == "database_name_too_long"
    assert name not in bcouch.all_dbs()
    longest = "b" * 238
    try:
        assert (await settee.fetch("PUT", f"/{longest}")).code == 201
    finally:
        await settee.fetch("DELETE", f"/{longest}")


@pytest.mark.gen_test
async def test_feed_websocket_without_an_upgrade_is_a_json_400(settee, db_name):
    response = await settee.fetch("GET", f"/{db_name}/_changes?feed=websocket")
    assert response.code == 400
    assert response.headers["Content-Type"] == "application/json"
    assert answer(response)["error"] == "bad_request"


PAGED = {"views": {"by_k": {"map": "function (doc) { if (doc.k) emit(doc.k, null); }"}}}


@pytest.mark.gen_test
@pytest.mark.parametrize(
    ("query", "ids", "offset"),
    [
        ("startkey=1&startkey_docid=b", ["b", "c", "d", "e"], 1),
        ("startkey=1&startkey_docid=b&limit=1", ["b"], 1),
        ("startkey=1&startkey_docid=b&skip=1&limit=2", ["c", "d"], 2),
        ("start_key=1&start_key_doc_id=c", ["c", "d", "e"], 2),
        ("endkey=1&endkey_docid=b", ["a", "b"], 0),
        ("endkey=1&endkey_docid=b&inclusive_end=false", ["a"], 0),
        ("startkey=1&startkey_docid=b&endkey=2&endkey_docid=d", ["b", "c", "d"], 1),
        ("descending=true&startkey=1&startkey_docid=b", ["b", "a"], 3),
        ("descending=true&endkey=1&endkey_docid=b", ["e", "d", "c", "b"], 0),
        ("startkey=1&startkey_docid=b&include_docs=true&limit=1", ["b"], 1),
    ],
)
async def test_doc_id_bounds_page_a_view_as_couchdb_does(settee, bdb, query, ids, offset):
    """A pager resumes from its last row's key and doc id: ``startkey_docid`` must count
    (pouchdb-server ignores it, and ``startkey=1&startkey_docid=b`` gave row ``a`` again)."""
    docs = [{"_id": i, "k": k} for i, k in (("a", 1), ("b", 1), ("c", 1), ("d", 2), ("e", 3))]
    bdb.save([*docs, {"_id": "_design/p", **PAGED}])
    response = await settee.fetch("GET", f"/{bdb.name}/_design/p/_view/by_k?{query}")
    assert response.code == 200, response.body
    view = answer(response)
    assert [row["id"] for row in view["rows"]] == ids
    assert (view["total_rows"], view["offset"]) == (5, offset)
    if "include_docs" in query:
        assert view["rows"][0]["doc"]["k"] == 1


@pytest.mark.gen_test
async def test_open_revs_answers_every_revision_asked_for(settee, bdb):
    doc = {"_id": "many", "n": 1}
    bdb.save(doc)
    first = doc["_rev"]
    doc["n"] = 2
    bdb.save(doc)
    accept = {"Accept": "application/json"}
    response = await settee.fetch("GET", f"/{bdb.name}/many?open_revs=all", headers=accept)
    assert response.code == 200, response.body
    assert [found["ok"]["n"] for found in answer(response)] == [2]
    asked = json.dumps([first])
    response = await settee.fetch("GET", f"/{bdb.name}/many?open_revs={asked}", headers=accept)
    assert [found["ok"]["_rev"] for found in answer(response)] == [first]


@pytest.mark.skip_on("pouchdb", reason='pouchdb-server answers [] and ETag "undefined"')
@pytest.mark.gen_test
async def test_a_replicated_write_answers_the_rev_its_revisions_name(settee, bdb):
    """``new_edits=false`` with ``_revisions`` and no ``_rev``: the rev written is the newest
    that ``_revisions`` names, and the answer says so (the embedded store answered null)."""
    replicated = {"n": 1, "_revisions": {"start": 2, "ids": ["bbb", "aaa"]}}
    response = await settee.fetch("PUT", f"/{bdb.name}/copied?new_edits=false", replicated)
    assert response.code == 201, response.body
    assert answer(response)["rev"] == "2-bbb"
    assert response.headers["ETag"] == '"2-bbb"'
    assert bdb.get("copied")["_rev"] == "2-bbb"


@pytest.mark.gen_test
async def test_a_replicators_writes_keep_their_revisions(settee, backend, bdb):
    """``new_edits=false`` keeps the rev given, as CouchDB's replicator needs; a multipart
    PUT carries a document with its attachment."""
    replicated = {"_rev": "3-abc", "_revisions": {"start": 3, "ids": ["abc", "bbb", "aaa"]}}
    response = await settee.fetch("PUT", f"/{bdb.name}/copied?new_edits=false", replicated)
    assert response.code == 201, response.body
    assert bdb.get("copied")["_rev"] == "3-abc"
    boundary = "settee-boundary"
    meta = {
        "text": "with file",
        "_attachments": {"file.txt": {"follows": True, "content_type": "text/plain", "length": 5}},
    }
    body = (
        f"--{boundary}\r\nContent-Type: application/json\r\n\r\n{json.dumps(meta)}\r\n"
        f"--{boundary}\r\nContent-Type: text/plain\r\n\r\nhello\r\n--{boundary}--"
    ).encode()
    content_type = f'multipart/related; boundary="{boundary}"'
    response = await settee.fetch(
        "PUT", f"/{bdb.name}/multi", body, headers={"Content-Type": content_type}
    )
    if backend == "pouchdb":  # a multipart PUT kills pouchdb-server: settee refuses it
        assert response.code == 400, response.body
        return
    assert response.code == 201, response.body
    assert bdb.get_attachment("multi", "file.txt") == b"hello"
