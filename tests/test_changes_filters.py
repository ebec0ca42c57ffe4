"""``_changes`` filter functions as CouchDB 3.4 runs them: a design document's
``filters.name(doc, req)``, with the request's query, deleted documents as tombstones,
``limit`` counting what passes, and a feed that moves past what a filter drops."""

from __future__ import annotations

import pytest

from tests.conftest import answer
from tests.waiting import until

FILTERS = {
    "_id": "_design/f",
    "filters": {
        "by_type": "function (doc, req) { return doc.type === req.query.type; }",
        "deleted": "function (doc) { return doc._deleted === true; }",
        "throws": "function (doc) { if (doc.type === 'a') throw 'no'; return true; }",
    },
}


@pytest.fixture
def typed(bdb):
    bdb.save(dict(FILTERS))
    bdb.save([{"_id": f"d{n}", "type": "ab"[n % 2]} for n in range(6)])
    return bdb


async def changes(settee, db: str, query: str) -> dict:
    response = await settee.fetch("GET", f"/{db}/_changes?{query}", request_timeout=30)
    assert response.code == 200, response.body
    return answer(response)


@pytest.mark.gen_test
async def test_a_filter_sees_the_requests_query(settee, db_name, typed):
    # CouchDB's shards interleave: the order across documents is not the writes' order
    got = await changes(settee, db_name, "filter=f/by_type&type=b")
    assert sorted(row["id"] for row in got["results"]) == ["d1", "d3", "d5"]
    limited = await changes(settee, db_name, "filter=f/by_type&type=a&limit=2")
    assert len(limited["results"]) == 2
    assert {row["id"] for row in limited["results"]} <= {"d0", "d2", "d4"}


@pytest.mark.gen_test
async def test_deleted_documents_reach_a_filter(settee, db_name, typed):
    typed.delete(typed.get("d4"))
    got = await changes(settee, db_name, "filter=f/deleted")
    assert [(row["id"], row.get("deleted")) for row in got["results"]] == [("d4", True)]


@pytest.mark.skip_on("pouchdb", reason="a filter that throws brings pouchdb-server down")
@pytest.mark.gen_test
async def test_a_filter_that_throws_fails_the_request(settee, db_name, typed):
    response = await settee.fetch("GET", f"/{db_name}/_changes?filter=f/throws")
    assert response.code == 500
    assert "error" in answer(response)


@pytest.mark.gen_test(timeout=40)
async def test_a_longpoll_waits_past_changes_the_filter_drops(settee, db_name, typed, io_loop):
    now = (await changes(settee, db_name, "limit=0&descending=true"))["last_seq"]
    waiting = settee.fetch(
        "GET",
        f"/{db_name}/_changes?feed=longpoll&filter=f/by_type&type=z&since={now}&timeout=20000",
        request_timeout=30,
    )
    typed.save({"_id": "not-z", "type": "a"})
    typed.save({"_id": "z1", "type": "z"})
    got = answer(await waiting)
    assert [row["id"] for row in got["results"]] == ["z1"]


@pytest.mark.gen_test
async def test_a_missing_filter_is_404(settee, db_name, typed):
    """(pouchdb-server crashed on this one: settee now checks the filter first, as it does
    for every other feed.)"""
    response = await settee.fetch("GET", f"/{db_name}/_changes?filter=f/nope")
    assert response.code == 404
    assert answer(response)["error"] == "not_found"


REQUIRING = {
    "_id": "_design/r",
    "lib": {"kinds": "exports.wanted = function (doc) { return doc.type === 'b'; };"},
    "views": {
        "lib": {"kinds": "exports.wanted = function (doc) { return doc.type === 'a'; };"},
        "a": {"map": "function (doc) { if (require('views/lib/kinds').wanted(doc)) emit(1); }"},
    },
    "filters": {"b": "function (doc) { return require('lib/kinds').wanted(doc); }"},
}


@pytest.mark.xfail_on("pouchdb", reason="pouchdb-server has no CommonJS require")
@pytest.mark.gen_test(timeout=30)
async def test_filters_require_their_design_documents_modules(settee, db_name, typed):
    """A filter function requires any module of its design document; ``filter=_view`` runs
    the view's map, which requires the modules of ``views.lib``. Editing a module is
    editing the filter."""
    typed.save(dict(REQUIRING))
    b = await changes(settee, db_name, "filter=r/b")
    assert sorted(row["id"] for row in b["results"]) == ["d1", "d3", "d5"]
    a = await changes(settee, db_name, "filter=_view&view=r/a")
    assert sorted(row["id"] for row in a["results"]) == ["d0", "d2", "d4"]
    ddoc = typed.get("_design/r")
    ddoc["lib"]["kinds"] = "exports.wanted = function (doc) { return doc._id === 'd0'; };"
    typed.save(ddoc)

    async def edited() -> bool:  # CouchDB's design document cache learns of it a moment later
        got = await changes(settee, db_name, "filter=r/b")
        return [row["id"] for row in got["results"]] == ["d0"]

    await until(edited, what="the edited module's filter")
    ddoc["filters"]["b"] = "function (doc) { return require('lib/none').wanted(doc); }"
    typed.save(ddoc)
    missing = await settee.fetch("GET", f"/{db_name}/_changes?filter=r/b")
    assert missing.code == 500 and "error" in answer(missing)
