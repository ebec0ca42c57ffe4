"""Mango (``_find``, ``_index``, ``_explain``) as CouchDB 3.4 answers it, on every backend."""

from __future__ import annotations

import pytest

from tests.conftest import answer

PEOPLE = [
    {"_id": "ada", "name": "Ada", "age": 36, "tags": ["math", "code"], "home": {"city": "London"}},
    {"_id": "bob", "name": "bob", "age": 25, "tags": ["code"], "home": {"city": "Paris"}},
    {"_id": "cy", "name": "Cy", "age": 41.5, "tags": [], "nick": None},
    {"_id": "dee", "name": "Dee", "age": "unknown", "tags": ["art", "math", "code"]},
    {"_id": "eve", "name": "Eve", "age": 25, "home": {"city": "London", "zip": "E1"}},
]


@pytest.fixture
def people(bdb):
    bdb.save([dict(person) for person in PEOPLE])
    bdb.save({"_id": "_design/not-a-person", "views": {}})
    return bdb


async def find(settee, db: str, query: dict) -> dict:
    response = await settee.fetch("POST", f"/{db}/_find", query)
    assert response.code == 200, response.body
    return answer(response)


async def ids(settee, db: str, selector: dict, **options) -> list[str]:
    found = await find(settee, db, {"selector": selector, **options})
    return [doc["_id"] for doc in found["docs"]]


SELECTORS = [
    ({"age": 25}, ["bob", "eve"]),
    ({"age": {"$gt": 30}}, ["ada", "cy", "dee"]),  # a string collates after every number
    ({"age": {"$lt": 30}}, ["bob", "eve"]),
    ({"age": {"$in": [36, 41.5]}}, ["ada", "cy"]),
    ({"age": {"$nin": [25]}}, ["ada", "cy", "dee"]),
    ({"nick": {"$exists": True}}, ["cy"]),
    ({"home": {"$exists": False}}, ["cy", "dee"]),
    ({"age": {"$type": "string"}}, ["dee"]),
    ({"name": {"$regex": "^[A-C]"}}, ["ada", "cy"]),
    ({"$or": [{"age": 25}, {"name": "Cy"}]}, ["bob", "cy", "eve"]),
    ({"$and": [{"age": 25}, {"home.city": "London"}]}, ["eve"]),
    ({"home": {"city": "London"}}, ["ada", "eve"]),
    pytest.param(
        {"home.city": {"$ne": "London"}},
        ["bob"],
        marks=pytest.mark.xfail_on(
            "pouchdb", reason="pouchdb-server's $ne matches a missing field"
        ),
    ),
    ({"tags": {"$elemMatch": {"$eq": "art"}}}, ["dee"]),
    ({"tags": {"$all": ["math", "code"]}}, ["ada", "dee"]),
    ({"tags": {"$size": 0}}, ["cy"]),
    ({"age": {"$mod": [5, 0]}}, ["bob", "eve"]),
    pytest.param(
        {"age": {"$not": {"$eq": 25}}},
        ["ada", "cy", "dee"],
        marks=pytest.mark.xfail_on("pouchdb", reason="pouchdb-server has no field-level $not"),
    ),
    ({"tags": "code"}, []),
    ({}, ["ada", "bob", "cy", "dee", "eve"]),
]


@pytest.mark.parametrize(("selector", "expected"), SELECTORS)
@pytest.mark.gen_test
async def test_selectors_match_as_couchdbs(settee, db_name, people, selector, expected):
    assert sorted(await ids(settee, db_name, selector)) == expected


@pytest.mark.xfail_on("pouchdb", reason="pouchdb-server gives no warning and no bookmark")
@pytest.mark.gen_test
async def test_fields_limit_skip_and_bookmark(settee, db_name, people):
    found = await find(settee, db_name, {"selector": {}, "fields": ["_id", "home.city"]})
    assert found["docs"][0] == {"_id": "ada", "home": {"city": "London"}}
    assert found["docs"][2] == {"_id": "cy"}
    assert "warning" in found
    first = await find(settee, db_name, {"selector": {}, "limit": 2})
    assert [d["_id"] for d in first["docs"]] == ["ada", "bob"]
    after = await find(settee, db_name, {"selector": {}, "limit": 2, "bookmark": first["bookmark"]})
    assert [d["_id"] for d in after["docs"]] == ["cy", "dee"]
    assert await ids(settee, db_name, {}, skip=3) == ["dee", "eve"]


@pytest.mark.xfail_on("pouchdb", reason="pouchdb-server answers bad_request, not no_usable_index")
@pytest.mark.gen_test
async def test_a_sort_needs_an_index_that_starts_with_its_fields(settee, db_name, people):
    response = await settee.fetch(
        "POST", f"/{db_name}/_find", {"selector": {"age": {"$gt": 0}}, "sort": ["age"]}
    )
    assert response.code == 400
    assert answer(response)["error"] == "no_usable_index"
    created = await settee.fetch(
        "POST", f"/{db_name}/_index", {"index": {"fields": ["age"]}, "name": "by-age", "ddoc": "ix"}
    )
    assert answer(created) == {"result": "created", "id": "_design/ix", "name": "by-age"}
    again = await settee.fetch(
        "POST", f"/{db_name}/_index", {"index": {"fields": ["age"]}, "name": "by-age", "ddoc": "ix"}
    )
    assert answer(again)["result"] == "exists"
    query = {"selector": {"age": {"$gt": 0}}, "sort": ["age"]}
    # "unknown" is a string: it collates after every number, so it is above 0 too
    assert await ids(settee, db_name, **query) == ["bob", "eve", "ada", "cy", "dee"]
    query["sort"] = [{"age": "desc"}]
    assert await ids(settee, db_name, **query) == ["dee", "cy", "ada", "eve", "bob"]
    listed = answer(await settee.fetch("GET", f"/{db_name}/_index"))
    assert [i["name"] for i in listed["indexes"]] == ["_all_docs", "by-age"]
    explained = answer(
        await settee.fetch("POST", f"/{db_name}/_explain", {"selector": {"age": 25}})
    )
    assert explained["index"]["name"] == "by-age"
    deleted = await settee.fetch("DELETE", f"/{db_name}/_index/_design/ix/json/by-age")
    assert answer(deleted) == {"ok": True}
    assert len(answer(await settee.fetch("GET", f"/{db_name}/_index"))["indexes"]) == 1


BAD_QUERIES = [
    ({}, 400),
    pytest.param(
        {"selector": []}, 400, marks=pytest.mark.xfail_on("pouchdb", reason="pouchdb-server: 200")
    ),
    pytest.param(
        {"selector": {}, "limit": -1},
        400,
        marks=pytest.mark.xfail_on("pouchdb", reason="pouchdb-server: 200"),
    ),
    ({"selector": {"age": {"$bogus": 1}}}, 400),
    ({"selector": {}, "sort": "age"}, 400),
]


@pytest.mark.parametrize(("query", "status"), BAD_QUERIES)
@pytest.mark.gen_test
async def test_bad_queries_are_400(settee, db_name, people, query, status):
    response = await settee.fetch("POST", f"/{db_name}/_find", query)
    assert response.code == status, response.body
    assert "error" in answer(response)


NUMBERED = [
    {"_id": f"d{i:02}", "n": i % 12, "s": "abm"[i % 3], "k": [i % 3, i % 5]} for i in range(60)
] + [
    {"_id": "x-null", "n": None, "s": "m"},
    {"_id": "x-str", "n": "7", "s": "m"},
    {"_id": "x-true", "n": True, "s": "b"},
    {"_id": "x-missing", "s": "m"},
    {"_id": "x-arr", "n": [3], "s": "a"},
    {"_id": "x-obj", "n": {"v": 1}, "s": "a"},
]
RANGES = [
    {"n": 5},
    {"n": {"$gt": 5}},
    {"n": {"$gte": 5, "$lt": 8}},
    {"n": {"$lte": 0}},
    {"n": {"$gt": "6"}},
    {"n": {"$lt": None}},
    {"n": {"$gt": None}},
    {"n": {"$eq": 7}},
    {"n": [3]},
    {"n": {"$gt": 3, "$type": "number"}},
    {"n": {"$gt": 9, "$lte": 11}, "k": [0, 0]},
    {"$and": [{"n": {"$gt": 2}}, {"n": {"$lt": 4}}]},
    {"s": "m", "n": {"$gt": 3}},
    {"s": {"$gt": "a"}, "n": 1},
    {"s": "b", "n": {"$in": [1, 4]}},
]


@pytest.mark.xfail_on(
    "pouchdb", reason="pouchdb-server's _find: 400 'Cannot read properties of null' on mixed types"
)
@pytest.mark.gen_test
async def test_an_index_narrows_what_is_read_not_what_matches(settee, bdb, db_name):
    """Each selector finds the same documents with json indexes as by a whole scan, in the
    index's order: its fields, then ``_id``."""
    bdb.save([dict(doc) for doc in NUMBERED])
    everything = {"limit": 1000}
    scanned = [sorted(await ids(settee, db_name, selector, **everything)) for selector in RANGES]
    for fields in (["n"], ["s", "n"]):
        made = await settee.fetch("POST", f"/{db_name}/_index", {"index": {"fields": fields}})
        assert made.code == 200, made.body
    for selector, expected in zip(RANGES, scanned, strict=True):
        explained = answer(
            await settee.fetch("POST", f"/{db_name}/_explain", {"selector": selector})
        )
        assert explained["index"]["type"] == "json", selector
        found = await ids(settee, db_name, selector, **everything)
        assert sorted(found) == expected, selector
    by_n = await find(settee, db_name, {"selector": {"n": {"$gte": 3, "$lte": 4}}, "limit": 1000})
    assert [(d["n"], d["_id"]) for d in by_n["docs"]] == sorted(
        (d["n"], d["_id"]) for d in NUMBERED[:60] if 3 <= d["n"] <= 4
    )
    page = await find(
        settee, db_name, {"selector": {"n": {"$gt": 10}}, "sort": [{"n": "desc"}], "limit": 3}
    )
    assert [d["_id"] for d in page["docs"]] == ["x-obj", "x-arr", "x-str"]  # collation: last
    rest = await find(
        settee,
        db_name,
        {"selector": {"n": {"$gt": 10}}, "sort": [{"n": "desc"}], "bookmark": page["bookmark"]},
    )
    assert [d["_id"] for d in rest["docs"]] == ["d59", "d47", "d35", "d23", "d11"]
