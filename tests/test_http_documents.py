"""The HTTP API on databases and documents: CouchDB's shapes, statuses and preconditions."""

from __future__ import annotations

import uuid

import pytest

from tests.conftest import answer


def new_name() -> str:
    return "http-" + uuid.uuid4().hex[:12]


@pytest.mark.gen_test
async def test_database_lifecycle(settee, bcouch):
    name = new_name()
    created = await settee.fetch("PUT", f"/{name}")
    assert created.code == 201
    assert answer(created) == {"ok": True}
    assert created.headers["Location"].endswith(f"/{name}")
    assert name in bcouch.all_dbs()
    assert name in answer(await settee.fetch("GET", "/_all_dbs"))
    info = answer(await settee.fetch("GET", f"/{name}"))
    assert info["db_name"] == name
    assert info["doc_count"] == 0
    assert (await settee.fetch("HEAD", f"/{name}")).code == 200
    again = await settee.fetch("PUT", f"/{name}")
    assert again.code == 412
    assert answer(again)["error"] == "file_exists"
    deleted = await settee.fetch("DELETE", f"/{name}")
    assert (deleted.code, answer(deleted)) == (200, {"ok": True})
    assert name not in bcouch.all_dbs()
    missing = await settee.fetch("GET", f"/{name}")
    assert missing.code == 404
    assert answer(missing)["error"] == "not_found"
    assert (await settee.fetch("HEAD", f"/{name}")).code == 404


@pytest.mark.gen_test
async def test_put_get_update_delete_a_document(settee, db_name, bdb):
    created = await settee.fetch("PUT", f"/{db_name}/doc1", {"title": "hello", "n": 1})
    assert created.code == 201
    result = answer(created)
    assert result["ok"] is True
    assert result["id"] == "doc1"
    rev1 = result["rev"]
    assert created.headers["ETag"] == f'"{rev1}"'
    assert created.headers["Location"].endswith(f"/{db_name}/doc1")
    assert bdb.get("doc1")["title"] == "hello"

    read = await settee.fetch("GET", f"/{db_name}/doc1")
    assert read.code == 200
    assert read.headers["ETag"] == f'"{rev1}"'
    assert read.headers["Content-Type"] == "application/json"
    assert answer(read) == {"_id": "doc1", "_rev": rev1, "title": "hello", "n": 1}

    updated = await settee.fetch("PUT", f"/{db_name}/doc1", {"_rev": rev1, "title": "again"})
    rev2 = answer(updated)["rev"]
    assert updated.code == 201
    assert rev2.startswith("2-")

    stale = await settee.fetch("PUT", f"/{db_name}/doc1", {"_rev": rev1, "title": "stale"})
    assert stale.code == 409
    assert answer(stale)["error"] == "conflict"

    stale_delete = await settee.fetch("DELETE", f"/{db_name}/doc1?rev={rev1}")
    assert stale_delete.code == 409
    deleted = await settee.fetch("DELETE", f"/{db_name}/doc1?rev={rev2}")
    assert deleted.code == 200
    assert answer(deleted)["ok"] is True
    assert answer(deleted)["rev"].startswith("3-")
    gone = await settee.fetch("GET", f"/{db_name}/doc1")
    assert gone.code == 404
    assert answer(gone)["error"] == "not_found"


@pytest.mark.gen_test
async def test_post_creates_a_document_with_a_generated_id(settee, db_name, bdb):
    created = await settee.fetch("POST", f"/{db_name}", {"kind": "generated"})
    assert created.code == 201
    doc_id = answer(created)["id"]
    assert created.headers["Location"].endswith(f"/{db_name}/{doc_id}")
    assert bdb.get(doc_id)["kind"] == "generated"
    named = await settee.fetch("POST", f"/{db_name}", {"_id": "chosen", "kind": "named"})
    assert answer(named)["id"] == "chosen"


@pytest.mark.gen_test
async def test_document_read_options(settee, db_name, bdb):
    doc = {"_id": "opt", "v": 1}
    bdb.save(doc)
    first = doc["_rev"]
    doc["v"] = 2
    bdb.save(doc)
    bdb.put_attachment(doc, b"hello", "a.txt", "text/plain")

    old = answer(await settee.fetch("GET", f"/{db_name}/opt?rev={first}"))
    assert (old["_rev"], old["v"]) == (first, 1)
    revs = answer(await settee.fetch("GET", f"/{db_name}/opt?revs=true"))
    assert revs["_revisions"]["start"] == 3
    assert len(revs["_revisions"]["ids"]) == 3
    info = answer(await settee.fetch("GET", f"/{db_name}/opt?revs_info=true"))
    assert [entry["rev"] for entry in info["_revs_info"]][:1] == [doc["_rev"]]
    stub = answer(await settee.fetch("GET", f"/{db_name}/opt"))
    assert stub["_attachments"]["a.txt"]["stub"] is True
    inline = answer(await settee.fetch("GET", f"/{db_name}/opt?attachments=true"))
    assert inline["_attachments"]["a.txt"]["data"] == "aGVsbG8="
    conflicts = answer(await settee.fetch("GET", f"/{db_name}/opt?conflicts=true"))
    assert "_conflicts" not in conflicts


@pytest.mark.gen_test
async def test_conflicts_option_lists_conflicting_revisions(settee, db_name, bdb):
    bdb.save(
        [{"_id": "c", "_rev": "1-aaa", "v": 1}, {"_id": "c", "_rev": "1-bbb", "v": 2}],
        new_edits=False,
    )
    doc = answer(await settee.fetch("GET", f"/{db_name}/c?conflicts=true"))
    assert doc["_rev"] == "1-bbb"
    assert doc["_conflicts"] == ["1-aaa"]


@pytest.mark.gen_test
async def test_etag_and_if_none_match_give_304(settee, db_name, bdb):
    doc = {"_id": "e"}
    bdb.save(doc)
    etag = f'"{doc["_rev"]}"'
    same = await settee.fetch("GET", f"/{db_name}/e", headers={"If-None-Match": etag})
    assert same.code == 304
    assert same.body == b""
    assert same.headers["ETag"] == etag
    other = await settee.fetch("GET", f"/{db_name}/e", headers={"If-None-Match": '"1-other"'})
    assert other.code == 200
    head = await settee.fetch("HEAD", f"/{db_name}/e")
    assert (head.code, head.headers["ETag"]) == (200, etag)
    assert (
        await settee.fetch("HEAD", f"/{db_name}/e", headers={"If-None-Match": etag})
    ).code == 304
    assert (await settee.fetch("HEAD", f"/{db_name}/missing")).code == 404


@pytest.mark.gen_test
async def test_if_match_supplies_the_rev_for_put_and_delete(settee, db_name, bdb):
    doc = {"_id": "m", "v": 1}
    bdb.save(doc)
    updated = await settee.fetch(
        "PUT", f"/{db_name}/m", {"v": 2}, headers={"If-Match": f'"{doc["_rev"]}"'}
    )
    assert updated.code == 201
    rev2 = answer(updated)["rev"]
    stale = await settee.fetch("DELETE", f"/{db_name}/m", headers={"If-Match": f'"{doc["_rev"]}"'})
    assert stale.code == 409
    deleted = await settee.fetch("DELETE", f"/{db_name}/m", headers={"If-Match": f'"{rev2}"'})
    assert deleted.code == 200
    assert bdb.get(["m"]) == [None]


@pytest.mark.gen_test
async def test_disagreeing_revs_are_a_bad_request(settee, db_name, bdb):
    doc = {"_id": "d"}
    bdb.save(doc)
    response = await settee.fetch("PUT", f"/{db_name}/d?rev=1-other", {"_rev": doc["_rev"], "v": 2})
    assert response.code == 400
    assert answer(response)["error"] == "bad_request"
    assert bdb.get("d")["_rev"] == doc["_rev"]


@pytest.mark.gen_test
async def test_if_none_match_star_creates_only(settee, db_name, bdb):
    headers = {"If-None-Match": "*"}
    created = await settee.fetch("PUT", f"/{db_name}/once", {"v": 1}, headers=headers)
    assert created.code == 201
    again = await settee.fetch("PUT", f"/{db_name}/once", {"v": 2}, headers=headers)
    assert again.code == 412
    assert answer(again)["error"] == "file_exists"
    assert bdb.get("once")["v"] == 1


@pytest.mark.gen_test
async def test_design_and_local_documents(settee, db_name, bdb):
    ddoc = {"views": {"all": {"map": "function (doc) { emit(doc._id, null); }"}}}
    created = await settee.fetch("PUT", f"/{db_name}/_design/app", ddoc)
    assert created.code == 201
    assert answer(created)["id"] == "_design/app"
    read = answer(await settee.fetch("GET", f"/{db_name}/_design/app"))
    assert read["views"] == ddoc["views"]
    deleted = await settee.fetch("DELETE", f"/{db_name}/_design/app?rev={read['_rev']}")
    assert deleted.code == 200

    local = await settee.fetch("PUT", f"/{db_name}/_local/checkpoint", {"seq": 5})
    assert local.code == 201
    assert answer(await settee.fetch("GET", f"/{db_name}/_local/checkpoint"))["seq"] == 5


@pytest.mark.gen_test
async def test_ids_with_slashes_and_unicode_round_trip(settee, db_name, bdb):
    created = await settee.fetch("PUT", f"/{db_name}/a%2Fb%20%C3%A9", {"v": 1})
    assert answer(created)["id"] == "a/b é"
    assert bdb.get("a/b é")["v"] == 1
    assert answer(await settee.fetch("GET", f"/{db_name}/a%2Fb%20%C3%A9"))["_id"] == "a/b é"


@pytest.mark.gen_test
async def test_batch_ok_answers_202(settee, db_name, bdb):
    response = await settee.fetch("PUT", f"/{db_name}/later?batch=ok", {"v": 1})
    assert response.code == 202
    assert answer(response) == {"ok": True, "id": "later"}


@pytest.mark.gen_test
async def test_the_other_read_options_reach_the_backend(settee, db_name, bdb, backend):
    """pouchdb-server ignores these; CouchDB answers them. settee checks and passes them on."""
    doc = {"_id": "o"}
    bdb.save(doc)
    first = doc["_rev"]
    bdb.put_attachment(doc, b"hi", "a.txt", "text/plain")
    for query in ("local_seq=true", "meta=true", "deleted_conflicts=true", "latest=true"):
        assert (await settee.fetch("GET", f"/{db_name}/o?{query}")).code == 200
    since = answer(await settee.fetch("GET", f'/{db_name}/o?atts_since=["{first}"]'))
    if backend == "couchdb":
        local = answer(await settee.fetch("GET", f"/{db_name}/o?local_seq=true"))
        assert "_local_seq" in local
        assert since["_attachments"]["a.txt"]["data"] == "aGk="
    else:
        assert since["_attachments"]["a.txt"]["stub"] is True
