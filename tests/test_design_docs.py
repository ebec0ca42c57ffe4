"""``_design_docs`` and ``…/queries`` as CouchDB 3.4.3 answers them, on every backend:
``_all_docs`` over the design documents only, with its options, ``total_rows`` counting the
design documents and ``offset`` every document before the first row."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import pytest

NO_DESIGN_DOCS = "pouchdb-server has no _design_docs (404 not_found missing)"


def call(bdb, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    reply = bdb.couch.relay(method, f"/{bdb.name}/{path}", headers, data)
    try:
        return reply.status, json.loads(reply.read_all())
    finally:
        reply.close()


@pytest.fixture
def designs(bdb):
    """Design documents a, b, c among plain documents A and z, a _local one and a deleted
    design document d."""
    docs = [{"_id": f"_design/{n}"} for n in "abc"] + [{"_id": "A"}, {"_id": "z"}]
    bdb.bulk_docs([*docs, {"_id": "_design/d"}, {"_id": "_local/x"}])
    _status, doc = call(bdb, "GET", "_design/d")
    assert call(bdb, "DELETE", f"_design/d?rev={doc['_rev']}")[0] == 200
    return bdb


def listing(bdb, query: str = "", **options: Any) -> dict[str, Any]:
    params = "&".join(f"{k}={quote(json.dumps(v))}" for k, v in options.items())
    status, answer = call(bdb, "GET", f"_design_docs?{query}{'&' if query else ''}{params}")
    assert status == 200, answer
    return answer


def ids(answer: dict[str, Any]) -> list[str]:
    return [row["id"] for row in answer["rows"]]


@pytest.mark.xfail_on("pouchdb", reason=NO_DESIGN_DOCS)
def test_design_docs_lists_only_design_documents(designs):
    answer = listing(designs)
    assert (answer["total_rows"], answer["offset"]) == (3, 1)
    assert ids(answer) == ["_design/a", "_design/b", "_design/c"]
    assert answer["rows"][0]["value"]["rev"].startswith("1-")


@pytest.mark.xfail_on("pouchdb", reason=NO_DESIGN_DOCS)
def test_design_docs_descending_skip_and_limit(designs):
    answer = listing(designs, "descending=true")
    assert (answer["offset"], ids(answer)) == (1, ["_design/c", "_design/b", "_design/a"])
    answer = listing(designs, "limit=1&skip=1")
    assert (answer["offset"], ids(answer)) == (2, ["_design/b"])


@pytest.mark.xfail_on("pouchdb", reason=NO_DESIGN_DOCS)
def test_design_docs_ranges_stay_within_the_design_documents(designs):
    assert ids(listing(designs, startkey="_design/b")) == ["_design/b", "_design/c"]
    answer = listing(designs, "descending=true", startkey="_design/b")
    assert (answer["offset"], ids(answer)) == (2, ["_design/b", "_design/a"])
    assert ids(listing(designs, "inclusive_end=false", endkey="_design/b")) == ["_design/a"]
    assert ids(listing(designs, startkey="")) == ["_design/a", "_design/b", "_design/c"]
    assert ids(listing(designs, "descending=true", endkey="B")) == [
        "_design/c",
        "_design/b",
        "_design/a",
    ]
    assert listing(designs, startkey="a") == {"total_rows": 3, "offset": 3, "rows": []}
    assert ids(listing(designs, key="A")) == []


@pytest.mark.xfail_on("pouchdb", reason=NO_DESIGN_DOCS)
def test_design_docs_key_with_include_docs(designs):
    answer = listing(designs, "include_docs=true", key="_design/a")
    assert ids(answer) == ["_design/a"]
    assert answer["rows"][0]["doc"]["_id"] == "_design/a"


@pytest.mark.xfail_on("pouchdb", reason=NO_DESIGN_DOCS)
def test_design_docs_keys_leave_out_other_documents(designs):
    keys = ["_design/c", "A", "_design/d", "_design/zz", "_local/x"]
    for status, answer in (
        call(designs, "GET", f"_design_docs?keys={quote(json.dumps(keys))}"),
        call(designs, "POST", "_design_docs", {"keys": keys}),
    ):
        assert status == 200
        assert (answer["total_rows"], answer["offset"]) == (3, None)
        rows = answer["rows"]
        assert [row["key"] for row in rows] == ["_design/c", "_design/d", "_design/zz"]
        assert rows[1]["value"]["deleted"] is True
        assert rows[2] == {"key": "_design/zz", "error": "not_found"}


@pytest.mark.xfail_on("pouchdb", reason=NO_DESIGN_DOCS)
def test_design_docs_update_seq(designs):
    answer = listing(designs, "update_seq=true&limit=0")
    assert answer["rows"] == [] and "update_seq" in answer


@pytest.mark.xfail_on("pouchdb", reason=NO_DESIGN_DOCS)
def test_design_docs_queries_answers_each_query(designs):
    queries = [
        {"descending": True, "limit": 1},
        {"startkey": "_design/b", "update_seq": True},
        {"key": "_design/a", "include_docs": True},
    ]
    status, answer = call(designs, "POST", "_design_docs/queries?skip=0", {"queries": queries})
    assert status == 200
    first, second, third = answer["results"]
    assert (first["total_rows"], first["offset"], ids(first)) == (3, 1, ["_design/c"])
    assert ids(second) == ["_design/b", "_design/c"] and "update_seq" in second
    assert ids(third) == ["_design/a"] and third["rows"][0]["doc"]["_id"] == "_design/a"
    status, answer = call(designs, "POST", "_all_docs/queries?limit=1", {"queries": [{}]})
    assert (status, ids(answer["results"][0])) == (200, ["A"])


@pytest.mark.xfail_on("pouchdb", reason=NO_DESIGN_DOCS)
def test_design_docs_queries_refuses_malformed_requests(designs):
    assert call(designs, "POST", "_design_docs/queries", {}) == (
        400,
        {"error": "bad_request", "reason": "POST body must include `queries` parameter."},
    )
    assert call(designs, "POST", "_design_docs/queries", {"queries": {}}) == (
        400,
        {"error": "bad_request", "reason": "`queries` member must be an array."},
    )
    assert call(designs, "GET", "_design_docs/queries") == (
        405,
        {"error": "method_not_allowed", "reason": "Only POST allowed"},
    )


@pytest.mark.xfail_on("pouchdb", reason=NO_DESIGN_DOCS)
def test_design_docs_refuses_malformed_requests(designs):
    assert call(designs, "PUT", "_design_docs", {}) == (
        405,
        {"error": "method_not_allowed", "reason": "Only GET,HEAD,POST allowed"},
    )
    assert call(designs, "POST", "_design_docs", {"keys": "x"}) == (
        400,
        {"error": "bad_request", "reason": "`keys` body member must be an array."},
    )
    assert call(designs, "GET", f"_design_docs?keys={quote(json.dumps('x'))}") == (
        400,
        {"error": "bad_request", "reason": "`keys` parameter must be an array."},
    )
    assert call(designs, "POST", "_design_docs", []) == (
        400,
        {"error": "bad_request", "reason": "Request body must be a JSON object"},
    )
    assert call(designs, "GET", "_design_docs?startkey=bad")[0] == 400
