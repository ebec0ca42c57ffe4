"""Revision trees as CouchDB 3.4 keeps them, on every backend: what a replicator writes
(``new_edits=false``), the winner among conflicting branches, and the reads over the tree
(``conflicts``, ``revs_info``, ``open_revs``, ``latest``, ``_revs_diff``, ``_bulk_get``,
``style=all_docs``), plus ``_local`` documents and ``since=now``."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import pytest

from service.couch import Conflict, NotFound

A, B, C = "a" * 32, "b" * 32, "c" * 32


def raw(bdb, method: str, path: str, body: Any = None) -> Any:
    """A request the client has no method for, below the database; its JSON answer."""
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    reply = bdb.couch.relay(method, f"/{bdb.name}/{path}", headers, data)
    try:
        return json.loads(reply.read_all())
    finally:
        reply.close()


def graft(bdb, doc_id: str, revs: list[str], start: int, **body) -> None:
    doc = {"_id": doc_id, "_rev": f"{start}-{revs[0]}", **body}
    doc["_revisions"] = {"start": start, "ids": revs}
    assert bdb.bulk_docs([doc], new_edits=False) == []


@pytest.fixture
def branched(bdb):
    """``doc`` with two branches from 1-a: 2-b (deleted) and 3-c over 2-a."""
    graft(bdb, "doc", [A], 1, v="root")
    graft(bdb, "doc", [B, A], 2, _deleted=True)
    graft(bdb, "doc", [C, A, A], 3, v="long")
    return bdb


@pytest.mark.xfail_on("pouchdb", reason="pouchdb-server has no deleted_conflicts")
def test_the_longest_live_branch_wins(branched):
    doc = branched.get("doc", conflicts=True, deleted_conflicts=True)
    assert doc["_rev"] == f"3-{C}" and doc["v"] == "long"
    assert "_conflicts" not in doc
    assert doc["_deleted_conflicts"] == [f"2-{B}"]


@pytest.mark.xfail_on("pouchdb", reason="pouchdb-server lists _conflicts in another order")
def test_among_live_leaves_of_one_generation_the_highest_hash_wins(bdb):
    graft(bdb, "doc", [A], 1, v="a")
    graft(bdb, "doc", [C], 1, v="c")
    graft(bdb, "doc", [B], 1, v="b")
    doc = bdb.get("doc", conflicts=True)
    assert (doc["_rev"], doc["v"]) == (f"1-{C}", "c")
    assert doc["_conflicts"] == [f"1-{B}", f"1-{A}"]


@pytest.mark.xfail_on("pouchdb", reason="pouchdb-server's reason for a deleted document is missing")
def test_a_deleted_winner_makes_the_document_deleted_until_a_live_leaf_remains(bdb):
    graft(bdb, "doc", [A], 1, v="a")
    graft(bdb, "doc", [B, A], 2, _deleted=True)
    with pytest.raises(NotFound) as missing:
        bdb.get("doc")
    assert missing.value.reason == "deleted"
    assert bdb.get("doc", rev=f"2-{B}")["_deleted"] is True
    graft(bdb, "doc", [C], 1, v="c")  # a live leaf, however short, beats a deleted one
    assert bdb.get("doc")["_rev"] == f"1-{C}"


def test_revs_and_revs_info_follow_the_branch_read(branched):
    doc = branched.get("doc", revs=True, revs_info=True)
    assert doc["_revisions"] == {"start": 3, "ids": [C, A, A]}
    assert [info["rev"] for info in doc["_revs_info"]] == [f"3-{C}", f"2-{A}", f"1-{A}"]
    assert doc["_revs_info"][0]["status"] == "available"
    assert doc["_revs_info"][1]["status"] == "missing"  # known only by its id


@pytest.mark.skip_on("pouchdb", reason="pouchdb-server dies on this open_revs read")
def test_open_revs_all_and_latest(branched):
    rows = raw(branched, "GET", "doc?open_revs=all")
    assert sorted(row["ok"]["_rev"] for row in rows) == [f"2-{B}", f"3-{C}"]
    asked = quote(json.dumps([f"1-{A}", f"9-{A}"]))
    rows = raw(branched, "GET", f"doc?open_revs={asked}&latest=true")
    assert sorted(row["ok"]["_rev"] for row in rows if "ok" in row) == [f"2-{B}", f"3-{C}"]
    assert {"missing": f"9-{A}"} in rows


def test_an_interactive_edit_must_name_a_leaf(branched):
    with pytest.raises(Conflict):
        branched.save({"_id": "doc", "_rev": f"1-{A}"})
    saved = branched.save({"_id": "doc", "_rev": f"2-{B}", "v": "revived"})
    assert saved.resolved["doc"]["_rev"].startswith("3-")


def test_revs_diff_and_bulk_get(branched):
    diff = raw(branched, "POST", "_revs_diff", {"doc": [f"3-{C}", f"4-{A}"], "other": [f"1-{A}"]})
    assert diff["doc"]["missing"] == [f"4-{A}"]
    assert diff["other"] == {"missing": [f"1-{A}"]}
    answer = branched.bulk_get([{"id": "doc", "rev": f"3-{C}"}], revs=True)
    assert answer[0]["docs"][0]["ok"]["_revisions"]["ids"] == [C, A, A]


def test_changes_all_docs_style_lists_every_leaf(branched):
    rows = branched.changes(style="all_docs")["results"]
    (row,) = [row for row in rows if row["id"] == "doc"]
    assert sorted(change["rev"] for change in row["changes"]) == [f"2-{B}", f"3-{C}"]


def test_local_documents_have_no_tree_and_no_changes(bdb):
    saved = bdb.save({"_id": "_local/checkpoint", "seq": 1})
    assert saved.resolved["_local/checkpoint"]["_rev"] == "0-1"
    assert bdb.get("_local/checkpoint")["seq"] == 1
    assert bdb.changes()["results"] == []
    assert bdb.view("_all_docs").rows == []


def test_since_now_starts_after_every_change(bdb):
    bdb.save([{"_id": "a"}, {"_id": "b"}])
    now = bdb.changes(since="now")
    assert now["results"] == []
    bdb.save({"_id": "c"})
    assert [row["id"] for row in bdb.changes(since=now["last_seq"])["results"]] == ["c"]
