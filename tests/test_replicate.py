"""``POST /_replicate`` through settee: what a replication copies, where its checkpoint lets
the next one start, and CouchDB 3.4.3's answers to requests it cannot run.

On the embedded store the store itself replicates (``service/store/replication.py``); on
CouchDB and pouchdb-server, their replicators do. The same tests hold for all three, but
where pouchdb-server answers otherwise (it says which).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from urllib.parse import quote

import pytest

from service.couch import blocking
from tests.conftest import answer
from tests.servers import PouchServer


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


async def wait_for(predicate, seconds: float = 20.0) -> bool:
    """Whether ``predicate()`` came true within ``seconds`` (checked every 0.1 s)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.1)
    return predicate()


def has(db, doc_id: str) -> bool:
    return db.get([doc_id])[0] is not None


@pytest.mark.skip_on(
    "pouchdb",
    reason="pouchdb-server answers 200 {ok} and no _local_id: its job cannot be cancelled",
)
@pytest.mark.gen_test(timeout=120)
async def test_a_continuous_replication_follows_the_source_until_cancelled(
    settee, bdb, target, bcouch
):
    ends = {"source": db_url(settee, bdb.name), "target": db_url(settee, target)}
    bdb.save({"_id": "before"})
    code, started = await replicate(settee, **ends, create_target=True, continuous=True)
    assert code == 202 and started["ok"] is True, started
    assert started["_local_id"].endswith("+continuous+create_target")
    copy = bcouch[target]
    assert await wait_for(lambda: target in bcouch.all_dbs() and has(copy, "before"))
    bdb.save({"_id": "after"})
    assert await wait_for(lambda: has(copy, "after"))
    tasks = answer(await settee.fetch("GET", "/_active_tasks"))
    assert [t["replication_id"] for t in tasks if t["type"] == "replication"] == [
        started["_local_id"]
    ]
    jobs = answer(await settee.fetch("GET", "/_scheduler/jobs"))["jobs"]
    (job,) = [job for job in jobs if job["id"] == started["_local_id"]]
    assert (job["database"], job["doc_id"], job["user"]) == (None, None, settee.auth[0]), job
    code, cancelled = await replicate(
        settee, **ends, create_target=True, continuous=True, cancel=True
    )
    assert (code, cancelled) == (200, {"ok": True, "_local_id": started["_local_id"]})
    bdb.save({"_id": "too-late"})
    await asyncio.sleep(3)
    assert not has(copy, "too-late")
    code, again = await replicate(settee, replication_id=started["_local_id"], cancel=True)
    assert (code, again) == (404, {"error": "not_found", "reason": "missing"})


@pytest.mark.xfail_on(
    "pouchdb", reason="pouchdb-server's _replicate ignores selector: it copies all"
)
@pytest.mark.gen_test(timeout=120)
async def test_a_replication_copies_what_its_selector_or_filter_passes(settee, bdb, target, bcouch):
    kind = "function (doc, req) { return doc.kind === req.query.kind; }"
    bdb.save(
        [
            {"_id": "_design/f", "filters": {"kind": kind}},
            {"_id": "a1", "kind": "a"},
            {"_id": "b1", "kind": "b"},
            {"_id": "c1", "kind": "c"},
        ]
    )
    ends = {"source": db_url(settee, bdb.name), "target": db_url(settee, target)}
    code, chosen = await replicate(settee, **ends, create_target=True, selector={"kind": "a"})
    assert code == 200 and chosen["ok"], chosen
    copy = bcouch[target]
    assert [has(copy, i) for i in ("a1", "b1", "c1")] == [True, False, False]
    code, filtered = await replicate(settee, **ends, filter="f/kind", query_params={"kind": "b"})
    assert code == 200 and filtered["ok"], filtered
    assert [has(copy, i) for i in ("a1", "b1", "c1")] == [True, True, False]


@pytest.mark.skip_on("pouchdb", reason="the embedded store's own replicator is under test")
@pytest.mark.skip_on("couchdb", reason="the embedded store's own replicator is under test")
@pytest.mark.gen_test(timeout=180)
async def test_a_continuous_replication_loses_nothing_when_its_target_dies(settee, bdb):
    """The target, a pouchdb-server on disk, is killed while documents are written and
    started again: the job retries, resumes from its checkpoint and copies every one."""
    outside = PouchServer(in_memory=False).start()
    try:
        blocking.Couch(outside.url).create("copy")
        ends = {"source": db_url(settee, bdb.name), "target": f"{outside.url}/copy"}
        code, started = await replicate(settee, **ends, continuous=True)
        assert code == 202, started
        copy = blocking.Database(f"{outside.url}/copy")
        written = []
        for n in range(300):
            if n == 100:
                outside.kill()
            if n == 200:
                outside.start()
            bdb.save({"_id": f"d{n:03}"})
            written.append(f"d{n:03}")
            await asyncio.sleep(0.01)
        assert await wait_for(lambda: copy.info()["doc_count"] == len(written), seconds=90)
        assert {row["id"] for row in copy.view("_all_docs")} == set(written)
        code, _ = await replicate(settee, replication_id=started["_local_id"], cancel=True)
        assert code == 200
    finally:
        outside.stop()
        shutil.rmtree(outside.workdir, ignore_errors=True)
