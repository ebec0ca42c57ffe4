"""Views, _all_docs and the bulk endpoints over HTTP: CouchDB's results, rows streamed."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest

from tests.conftest import answer

DDOC = {
    "_id": "_design/app",
    "views": {
        "by_n": {"map": "function (doc) { if (doc.n !== undefined) emit(doc.n, doc.tag); }"},
        "count": {
            "map": "function (doc) { if (doc.tag) emit([doc.tag, doc.n], 1); }",
            "reduce": "_count",
        },
    },
}


@pytest.fixture
def filled(bdb):
    """Ten documents n = 0..9, tagged even or odd, and a design document with two views."""
    bdb.save([{"_id": f"doc{n}", "n": n, "tag": "odd" if n % 2 else "even"} for n in range(10)])
    bdb.save(dict(DDOC))
    return bdb


def q(value) -> str:
    return quote(json.dumps(value))


@pytest.mark.gen_test
async def test_all_docs_get_and_post_keys(settee, db_name, filled):
    rows = answer(await settee.fetch("GET", f"/{db_name}/_all_docs"))
    assert rows["total_rows"] == 11
    assert [row["id"] for row in rows["rows"]][:2] == ["_design/app", "doc0"]
    limited = answer(await settee.fetch("GET", f"/{db_name}/_all_docs?limit=2&skip=1"))
    assert [row["id"] for row in limited["rows"]] == ["doc0", "doc1"]
    ranged = answer(
        await settee.fetch(
            "GET", f"/{db_name}/_all_docs?startkey={q('doc3')}&endkey={q('doc5')}&include_docs=true"
        )
    )
    assert [row["doc"]["n"] for row in ranged["rows"]] == [3, 4, 5]
    keys = answer(await settee.fetch("POST", f"/{db_name}/_all_docs", {"keys": ["doc7", "nope"]}))
    assert keys["rows"][0]["id"] == "doc7"
    assert keys["rows"][1] == {"key": "nope", "error": "not_found"}
    get_keys = answer(await settee.fetch("GET", f"/{db_name}/_all_docs?keys={q(['doc2'])}"))
    assert [row["id"] for row in get_keys["rows"]] == ["doc2"]


@pytest.mark.gen_test
async def test_view_options(settee, db_name, filled):
    view = f"/{db_name}/_design/app/_view/by_n"
    everything = answer(await settee.fetch("GET", view))
    assert [row["key"] for row in everything["rows"]] == list(range(10))
    assert everything["total_rows"] == 10

    async def keys(query: str) -> list:
        return [row["key"] for row in answer(await settee.fetch("GET", view + query))["rows"]]

    assert await keys("?key=4") == [4]
    assert await keys(f"?keys={q([8, 2])}") == [8, 2]
    assert await keys("?startkey=3&endkey=5") == [3, 4, 5]
    assert await keys("?start_key=3&end_key=5&inclusive_end=false") == [3, 4]
    assert await keys("?descending=true&limit=3") == [9, 8, 7]
    assert await keys("?skip=8") == [8, 9]
    assert await keys("?startkey=2&startkey_docid=doc2&endkey=2&endkey_docid=doc2") == [2]
    assert await keys("?stale=ok&limit=1") == [0]
    assert await keys("?update=true&limit=1") == [0]
    docs = answer(await settee.fetch("GET", view + "?key=6&include_docs=true"))
    assert docs["rows"][0]["doc"]["_id"] == "doc6"
    seq = answer(await settee.fetch("GET", view + "?limit=0&update_seq=true"))
    assert "update_seq" in seq
    posted = answer(await settee.fetch("POST", view, {"keys": [1, 3]}))
    assert [row["value"] for row in posted["rows"]] == ["odd", "odd"]


@pytest.mark.gen_test
async def test_reduce_and_grouping(settee, db_name, filled):
    view = f"/{db_name}/_design/app/_view/count"
    total = answer(await settee.fetch("GET", view))
    assert total["rows"] == [{"key": None, "value": 10}]
    by_tag = answer(await settee.fetch("GET", view + "?group_level=1"))
    assert by_tag["rows"] == [{"key": ["even"], "value": 5}, {"key": ["odd"], "value": 5}]
    grouped = answer(await settee.fetch("GET", view + "?group=true&limit=2"))
    assert [row["key"] for row in grouped["rows"]] == [["even", 0], ["even", 2]]
    unreduced = answer(await settee.fetch("GET", view + "?reduce=false&limit=1"))
    assert unreduced["rows"][0]["id"] == "doc0"


@pytest.mark.gen_test
async def test_reduce_with_doc_id_bounds(settee, db_name, filled):
    """Reduced rows have no doc ids: settee, which trims a map view's rows by doc id where
    the backend does not (pouchdb-server), relays a reduced view's answer as it is."""
    view = f"/{db_name}/_design/app/_view/count"
    response = await settee.fetch("GET", view + f"?startkey={q(['odd'])}&startkey_docid=doc3")
    assert response.code == 200, response.body
    assert response.headers["Content-Type"].startswith("application/json")
    assert answer(response)["rows"] == [{"key": None, "value": 5}]


@pytest.mark.gen_test
async def test_missing_view_and_database_are_404(settee, db_name, filled):
    missing_view = await settee.fetch("GET", f"/{db_name}/_design/app/_view/nope")
    assert missing_view.code == 404
    assert answer(missing_view)["error"] == "not_found"
    missing_ddoc = await settee.fetch("GET", f"/{db_name}/_design/nope/_view/x")
    assert missing_ddoc.code == 404
    missing_db = await settee.fetch("GET", "/no-such-db/_all_docs")
    assert missing_db.code == 404


@pytest.mark.gen_test
async def test_bulk_docs_reports_per_document(settee, db_name, bdb):
    bdb.save({"_id": "taken"})
    response = await settee.fetch(
        "POST", f"/{db_name}/_bulk_docs", {"docs": [{"_id": "new", "v": 1}, {"_id": "taken"}, {}]}
    )
    assert response.code == 201
    results = answer(response)
    assert results[0]["ok"] is True
    assert results[0]["id"] == "new"
    assert results[1]["error"] == "conflict"
    assert results[2]["ok"] is True
    assert bdb.get("new")["v"] == 1


@pytest.mark.gen_test
async def test_bulk_docs_new_edits_false_keeps_revisions(settee, db_name, bdb):
    response = await settee.fetch(
        "POST",
        f"/{db_name}/_bulk_docs",
        {"docs": [{"_id": "r", "_rev": "4-abc", "v": 1}], "new_edits": False},
    )
    assert response.code == 201
    assert answer(response) == []
    assert bdb.get("r")["_rev"] == "4-abc"


@pytest.mark.gen_test
async def test_bulk_get(settee, db_name, bdb, backend):
    docs = [{"_id": "g1", "v": 1}, {"_id": "g2", "v": 2}]
    bdb.save(docs)
    response = await settee.fetch(
        "POST",
        f"/{db_name}/_bulk_get?revs=true",
        {"docs": [{"id": "g1"}, {"id": "g2", "rev": docs[1]["_rev"]}, {"id": "none"}]},
    )
    assert response.code == 200
    results = answer(response)["results"]
    assert [result["id"] for result in results] == ["g1", "g2", "none"]
    assert results[0]["docs"][0]["ok"]["v"] == 1
    assert "_revisions" in results[1]["docs"][0]["ok"]
    if backend == "couchdb":
        assert results[2]["docs"][0]["error"]["error"] == "not_found"


@pytest.mark.gen_test(timeout=240)
async def test_a_100000_row_view_streams_whole_and_in_order(settee, db_name, bdb):
    """10,000 documents that emit 10 rows each: the view is read whole, every row checked."""
    bdb.save(
        {
            "_id": "_design/big",
            "views": {
                "rows": {"map": "function (doc) { for (var i = 0; i < 10; i++) emit([doc.n, i]); }"}
            },
        }
    )
    for start in range(0, 10_000, 2_000):
        bdb.save([{"_id": f"{n:05d}", "n": n} for n in range(start, start + 2_000)])
    response = await settee.fetch("GET", f"/{db_name}/_design/big/_view/rows", request_timeout=240)
    assert response.code == 200
    assert response.headers.get("Transfer-Encoding") == "chunked"
    rows = answer(response)["rows"]
    assert len(rows) == 100_000
    assert [row["key"] for row in rows] == [[n, i] for n in range(10_000) for i in range(10)]
    assert all(row["id"] == f"{row['key'][0]:05d}" for row in rows)


@pytest.mark.gen_test
async def test_bulk_docs_failures_write_nothing(settee, db_name, bdb):
    """Refused documents of a ``_bulk_docs`` leave no trace: no revision, no change, no
    count; the documents beside them are written."""
    bdb.save({"_id": "taken", "v": 0})
    updated = bdb.get("taken")
    old_rev = updated["_rev"]
    updated["v"] = 1
    bdb.save(updated)
    docs = [
        {"_id": "a", "v": 1},
        {"_id": "taken", "v": 2},  # no rev: conflict
        {"_id": "taken", "_rev": old_rev, "v": 3},  # a rev no longer a leaf: conflict
        {"_id": "b", "v": 1},
        {"_id": "a", "v": 9},  # written just before in this request: conflict
    ]
    response = await settee.fetch("POST", f"/{db_name}/_bulk_docs", {"docs": docs})
    assert response.code == 201
    assert [row.get("error") for row in answer(response)] == [
        None,
        "conflict",
        "conflict",
        None,
        "conflict",
    ]
    info = answer(await settee.fetch("GET", f"/{db_name}"))
    assert info["doc_count"] == 3
    changes = answer(await settee.fetch("GET", f"/{db_name}/_changes"))
    assert sorted(row["id"] for row in changes["results"]) == ["a", "b", "taken"]
    leaves = answer(
        await settee.fetch(
            "GET", f"/{db_name}/taken?open_revs=all", headers={"Accept": "application/json"}
        )
    )
    assert [leaf["ok"]["v"] for leaf in leaves] == [1]
    assert bdb.get("a")["v"] == 1
