"""``_purge``, ``_purged_infos_limit`` and ``_purged_infos`` as CouchDB 3.4.3 answers them, on
every backend: what a purge removes from a revision tree, how ``_all_docs``, ``_changes``, the
database's info and a view forget it, and the 400s of a malformed request.
pouchdb-server has no ``_purge`` (it answers 400 ``only_multipart_accepted``)."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from service.couch import NotFound

A, B, C = "a" * 32, "b" * 32, "c" * 32
NO_PURGE = "pouchdb-server has no _purge"

pytestmark = pytest.mark.xfail_on("pouchdb", reason=NO_PURGE)


def call(bdb, method: str, path: str, body: Any = None, **headers: str) -> tuple[int, Any]:
    """A request below the database: its status and JSON answer."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    sent = {"Content-Type": "application/json", "Accept": "application/json", **headers}
    reply = bdb.couch.relay(method, f"/{bdb.name}/{path}", sent, data if body is not None else None)
    try:
        return reply.status, json.loads(reply.read_all())
    finally:
        reply.close()


def purge(bdb, asked: dict[str, list[str]]) -> dict[str, list[str]]:
    status, answer = call(bdb, "POST", "_purge", asked)
    assert status == 201, answer
    assert answer["purge_seq"] is None
    return answer["purged"]


def graft(bdb, doc_id: str, revs: list[str], start: int, **body: Any) -> str:
    doc = {"_id": doc_id, "_rev": f"{start}-{revs[0]}", **body}
    doc["_revisions"] = {"start": start, "ids": revs}
    assert bdb.bulk_docs([doc], new_edits=False) == []
    return doc["_rev"]


def put(bdb, doc: dict[str, Any]) -> str:
    """Save ``doc`` (with its ``_rev``, if any); its new rev."""
    status, answer = call(bdb, "PUT", doc["_id"], doc)
    assert status == 201, answer
    return answer["rev"]


def changed_ids(bdb) -> list[str]:
    return [row["id"] for row in call(bdb, "GET", "_changes")[1]["results"]]


def test_purging_the_only_leaf_removes_the_document_and_its_history(bdb):
    first = put(bdb, {"_id": "gone", "v": 1})
    second = put(bdb, {"_id": "gone", "_rev": first, "v": 2})
    put(bdb, {"_id": "kept"})
    assert purge(bdb, {"gone": [second]}) == {"gone": [second]}
    with pytest.raises(NotFound):
        bdb.get("gone")
    with pytest.raises(NotFound):
        bdb.get("gone", rev=first)
    assert [row["id"] for row in call(bdb, "GET", "_all_docs")[1]["rows"]] == ["kept"]
    assert changed_ids(bdb) == ["kept"]
    assert bdb.info()["doc_count"] == 1


def test_purging_a_conflict_leaf_lets_the_other_win_and_moves_the_document(bdb):
    graft(bdb, "doc", [A], 1, v="a")
    graft(bdb, "doc", [B], 1, v="b")
    put(bdb, {"_id": "later"})
    assert bdb.get("doc")["v"] == "b"
    assert purge(bdb, {"doc": [f"1-{B}"]}) == {"doc": [f"1-{B}"]}
    doc = bdb.get("doc", conflicts=True)
    assert (doc["_rev"], doc["v"]) == (f"1-{A}", "a") and "_conflicts" not in doc
    assert changed_ids(bdb) == ["later", "doc"]  # the purge gave it a new seq


def test_only_leaves_are_purged_and_unknown_revs_and_documents_are_no_error(bdb):
    first = put(bdb, {"_id": "doc"})
    second = put(bdb, {"_id": "doc", "_rev": first})
    purged = purge(bdb, {"doc": [first, "9-" + A], "nobody": ["1-" + A], "none": []})
    assert purged == {"doc": [], "nobody": [], "none": []}
    assert bdb.get("doc")["_rev"] == second


def test_the_revs_purged_are_listed_once_in_rev_order(bdb):
    graft(bdb, "doc", [A], 1)
    graft(bdb, "doc", [C, A], 2)
    graft(bdb, "doc", [B, A], 2, _deleted=True)
    purged = purge(bdb, {"doc": [f"2-{C}", f"1-{A}", f"2-{B}", f"2-{B}"]})
    assert purged == {"doc": [f"2-{B}", f"2-{C}"]}
    with pytest.raises(NotFound):
        bdb.get("doc")


def test_purge_seq_counts_documents_and_update_seq_moves(bdb):
    put(bdb, {"_id": "a"})
    before = bdb.info()
    purge(bdb, {"a": ["1-" + A], "b": []})
    after = bdb.info()
    assert after["update_seq"] != before["update_seq"]
    assert after["purge_seq"] != before["purge_seq"]
    assert after["doc_count"] == 1


def test_an_empty_purge_changes_nothing(bdb):
    put(bdb, {"_id": "a"})
    before = bdb.info()
    assert purge(bdb, {}) == {}
    assert bdb.info()["update_seq"] == before["update_seq"]


def test_a_view_forgets_the_rows_of_purged_documents(bdb):
    put(bdb, {"_id": "_design/d", "views": {"v": {"map": "function(d){ emit(d._id, d.v); }"}}})
    gone = put(bdb, {"_id": "gone", "v": 1})
    graft(bdb, "split", [A], 1, v="a")
    graft(bdb, "split", [B], 1, v="b")
    put(bdb, {"_id": "kept", "v": 3})

    def rows() -> list[list[Any]]:
        answer = call(bdb, "GET", "_design/d/_view/v")[1]
        return [[row["id"], row["value"]] for row in answer["rows"]]

    assert rows() == [["gone", 1], ["kept", 3], ["split", "b"]]  # the index is built
    purge(bdb, {"gone": [gone], "split": [f"1-{B}"]})
    assert rows() == [["kept", 3], ["split", "a"]]
    put(bdb, {"_id": "gone", "v": 4})  # the same id again is a new document
    assert rows() == [["gone", 4], ["kept", 3], ["split", "a"]]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"[]", "Request body must be a JSON object"),
        (b'"doc"', "Request body must be a JSON object"),
        (b"nope", "invalid UTF-8 JSON"),
        (b"", "invalid UTF-8 JSON"),
        (b'{"doc": "1-abc"}', "Invalid list of revisions"),
        (b'{"doc": null}', "Invalid list of revisions"),
        (b'{"ok": ["1-abc"], "doc": {}}', "Invalid list of revisions"),
        (b'{"doc": [1]}', "Invalid rev format"),
        (b'{"doc": ["abc"]}', "Invalid rev format"),
        (b'{"doc": ["1-abc", "x-1"]}', "Invalid rev format"),
    ],
)
def test_a_malformed_purge_is_a_400_and_purges_nothing(bdb, body, reason):
    saved = put(bdb, {"_id": "ok"})
    before = bdb.info()["purge_seq"]
    status, answer = call(bdb, "POST", "_purge", body)
    assert (status, answer) == (400, {"error": "bad_request", "reason": reason})
    assert bdb.get("ok")["_rev"] == saved
    assert bdb.info()["purge_seq"] == before


def test_purge_limits_documents_and_revisions(bdb):
    many = {f"d{i}": ["1-" + A] for i in range(101)}
    assert call(bdb, "POST", "_purge", many) == (
        400,
        {"error": "bad_request", "reason": "Exceeded maximum number of documents."},
    )
    revs = {"d": [f"1-{i:032x}" for i in range(1001)]}
    assert call(bdb, "POST", "_purge", revs) == (
        400,
        {"error": "bad_request", "reason": "Exceeded maximum number of revisions."},
    )


def test_purge_takes_only_post_and_json(bdb):
    assert call(bdb, "GET", "_purge") == (
        405,
        {"error": "method_not_allowed", "reason": "Only POST allowed"},
    )
    assert call(bdb, "POST", "_purge", {}, **{"Content-Type": "text/plain"}) == (
        415,
        {"error": "bad_content_type", "reason": "Content-Type must be application/json"},
    )


def test_purge_of_a_missing_database_is_a_404(bdb):
    reply = bdb.couch.relay(
        "POST", "/no-such-db-here/_purge", {"Content-Type": "application/json"}, b"{}"
    )
    try:
        assert reply.status == 404
        assert json.loads(reply.read_all()) == {
            "error": "not_found",
            "reason": "Database does not exist.",
        }
    finally:
        reply.close()


def test_purged_infos_lists_each_purge(bdb):
    saved = put(bdb, {"_id": "a"})
    purge(bdb, {"a": [saved], "b": ["2-" + B, "1-" + A, "1-" + A]})
    status, answer = call(bdb, "GET", "_purged_infos")
    assert status == 200
    infos = sorted(answer["purged_infos"], key=lambda info: info["id"])
    assert infos == [{"id": "a", "revs": [saved]}, {"id": "b", "revs": ["1-" + A, "2-" + B]}]


def test_purged_infos_limit_is_kept(bdb):
    assert call(bdb, "GET", "_purged_infos_limit") == (200, 1000)
    assert call(bdb, "PUT", "_purged_infos_limit", 5) == (200, {"ok": True})
    assert call(bdb, "GET", "_purged_infos_limit") == (200, 5)


@pytest.mark.parametrize("body", [b"0", b"-1", b'"5"', b"1.5", b"{}", b"true"])
def test_purged_infos_limit_must_be_a_positive_integer(bdb, body):
    assert call(bdb, "PUT", "_purged_infos_limit", body) == (
        400,
        {"error": "bad_request", "reason": "`purged_infos_limit` must be positive integer"},
    )
    assert call(bdb, "GET", "_purged_infos_limit") == (200, 1000)


def test_purged_infos_limit_takes_get_and_put(bdb):
    assert call(bdb, "POST", "_purged_infos_limit", 5) == (
        405,
        {"error": "method_not_allowed", "reason": "Only GET,PUT allowed"},
    )
    assert call(bdb, "PUT", "_purged_infos_limit", b"x") == (
        400,
        {"error": "bad_request", "reason": "invalid UTF-8 JSON"},
    )


def test_compaction_keeps_only_the_limit_of_purges(bdb):
    """A compaction forgets the oldest purges past ``_purged_infos_limit``."""
    assert call(bdb, "PUT", "_purged_infos_limit", 2) == (200, {"ok": True})
    for n in range(5):
        purge(bdb, {f"p{n}": [put(bdb, {"_id": f"p{n}"})]})
    assert len(call(bdb, "GET", "_purged_infos")[1]["purged_infos"]) == 5
    assert call(bdb, "POST", "_compact", {})[0] == 202
    deadline = time.monotonic() + 30
    while call(bdb, "GET", "")[1]["compact_running"] and time.monotonic() < deadline:
        time.sleep(0.1)
    kept = {info["id"] for info in call(bdb, "GET", "_purged_infos")[1]["purged_infos"]}
    # The newest two are kept: on the store, of its one file; on CouchDB, of each shard.
    assert {"p3", "p4"} <= kept and "p0" not in kept
    assert len(kept) == 2 or bdb.info().get("cluster", {}).get("q", 1) > 1


def test_a_compaction_keeps_the_purges_a_view_has_still_to_read(bdb):
    put(bdb, {"_id": "_design/d", "views": {"v": {"map": "function(d){ emit(d._id, 1); }"}}})
    saved = {f"p{n}": put(bdb, {"_id": f"p{n}"}) for n in range(5)}
    view = "_design/d/_view/v"
    assert len(call(bdb, "GET", view)[1]["rows"]) == 5  # the index is built
    assert call(bdb, "PUT", "_purged_infos_limit", 1) == (200, {"ok": True})
    for doc_id, rev in saved.items():
        purge(bdb, {doc_id: [rev]})
    assert call(bdb, "POST", "_compact", {})[0] == 202
    deadline = time.monotonic() + 30
    while call(bdb, "GET", "")[1]["compact_running"] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert call(bdb, "GET", view)[1]["rows"] == []
