"""``POST /_replicate`` through settee: what a replication copies, where its checkpoint lets
the next one start, and CouchDB 3.4.3's answers to requests it cannot run.

On the embedded store the store itself replicates (``service/store/replication.py``); on
CouchDB and pouchdb-server, their replicators do. The same tests hold for all three, but
where pouchdb-server answers otherwise (it says which).
"""

from __future__ import annotations

import json
import uuid
from urllib.parse import quote

import pytest


def db_url(settee, name: str) -> str:
    """The database through settee, with the test server's credentials, if any."""
    url = f"{settee.url}/{quote(name, safe='')}"
    if settee.auth:
        user, password = (quote(part, safe="") for part in settee.auth)
        url = url.replace("://", f"://{user}:{password}@", 1)
    return url


async def replicate(settee, **spec):
    response = await settee.fetch("POST", "/_replicate", spec, request_timeout=60)
    return response.code, json.loads(response.body)


def docs_written(answer: dict) -> int:
    """The documents one run wrote: in its history entry (CouchDB, the embedded store), or
    at the top of the answer (pouchdb-server, whose answer has no history)."""
    return answer["history"][0]["docs_written"] if answer.get("history") else answer["docs_written"]


@pytest.fixture
def target(bcouch):
    name = "test-target-" + uuid.uuid4().hex[:8]
    yield name
    if name in bcouch.all_dbs():
        bcouch.delete(name)


@pytest.mark.xfail_on(
    "pouchdb", reason="pouchdb-server's _replicate ignores doc_ids: it copies all"
)
@pytest.mark.gen_test(timeout=120)
async def test_a_replication_copies_what_is_new_since_its_checkpoint(settee, bdb, target, bcouch):
    bdb.save([{"_id": "a", "n": 1}, {"_id": "b", "n": 2}, {"_id": "skipped", "n": 3}])
    ends = {"source": db_url(settee, bdb.name), "target": db_url(settee, target)}

    code, first = await replicate(settee, **ends, create_target=True, doc_ids=["a", "b"])
    assert code == 200 and first["ok"], first
    assert docs_written(first) == 2
    copied = bcouch[target].get(["a", "b", "skipped"])
    assert [doc and doc["n"] for doc in copied] == [1, 2, None]

    code, again = await replicate(settee, **ends, doc_ids=["a", "b"])
    assert code == 200 and again["ok"] and again.get("no_changes") is True, again

    doc = bdb.get("a")
    doc["n"] = 10
    bdb.save(doc)
    code, third = await replicate(settee, **ends, doc_ids=["a", "b"])
    assert code == 200 and docs_written(third) == 3, third  # counted on from the checkpoint
    assert bcouch[target].get("a")["n"] == 10


@pytest.mark.skip_on("pouchdb", reason="pouchdb-server's replicator has answers of its own")
@pytest.mark.gen_test(timeout=120)
async def test_requests_a_replication_cannot_run_get_couchdbs_answers(settee, bdb, target):
    source = db_url(settee, bdb.name)
    missing = db_url(settee, target)
    cases = [
        ({"source": source, "target": missing}, 500, "db_not_found"),
        ({"source": missing, "target": source}, 500, "db_not_found"),
        ({"source": source, "target": missing, "doc_ids": "a"}, 400, "bad_request"),
        ({"source": source, "target": missing, "cancel": True}, 404, "not_found"),
        ({"replication_id": "nothing-runs", "cancel": True}, 404, "not_found"),
        ({"target": missing}, 500, "error"),
    ]
    for spec, status, error in cases:
        code, answer = await replicate(settee, **spec)
        assert (code, answer["error"]) == (status, error), (spec, answer)
    assert answer["reason"] == "Missing replicator database"
    response = await settee.fetch(
        "POST", "/_replicate", b"{nope", {"Content-Type": "application/json"}
    )
    assert response.code == 400 and json.loads(response.body)["error"] == "bad_request"
