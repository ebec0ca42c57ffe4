"""The ``_replicator`` database and ``/_scheduler``: persistent replications as CouchDB 3.4.3
runs them, on the embedded store (``service/store/scheduler.py``) and on CouchDB.

A document in ``_replicator`` starts its replication, editing it restarts it, deleting it
stops it; a one-shot one ends ``completed`` in the document; a second document for the same
replication is ``failed``; malformed documents get CouchDB's refusals; a user's document is
theirs, and its credentials are hidden from others. pouchdb-server has neither
``_scheduler`` nor CouchDB 3's ``_replicator`` rules: these tests are skipped there.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import urllib.request
import uuid
from typing import Any
from urllib.parse import quote

import pytest

from service.couch import NotFound, blocking
from tests.conftest import answer
from tests.servers import EMBEDDED_ADMIN, SetteeServer
from tests.test_replicate import db_url
from tests.waiting import never_within, until

pytestmark = pytest.mark.skip_on(
    "pouchdb", reason="pouchdb-server has no /_scheduler and no CouchDB 3 _replicator rules"
)

DOC_ROW = {"database", "doc_id", "id", "source", "target", "state", "info", "error_count"}
JOB_ROW = {"database", "id", "pid", "source", "target", "user", "doc_id", "info", "history"}


async def call(settee, method: str, path: str, body: Any = None, **options: Any):
    response = await settee.fetch(method, path, body, **options)
    return response.code, answer(response)


@pytest.fixture
def rep_id(bcouch):
    """A ``_replicator`` document's id, its document deleted after the test."""
    doc_id = "rep-" + uuid.uuid4().hex[:10]
    yield doc_id
    doc = bcouch["_replicator"].get([doc_id])[0]
    if doc is not None:
        bcouch["_replicator"].delete(doc)


def copied(couch: blocking.Couch, db: str, doc_id: str) -> bool:
    """Whether document ``doc_id`` is in database ``db`` (which may not exist yet)."""
    try:
        return couch[db].get([doc_id])[0] is not None
    except NotFound:
        return False


async def doc_state(settee, doc_id: str) -> dict[str, Any]:
    code, doc = await call(settee, "GET", f"/_replicator/{doc_id}")
    assert code == 200, doc
    return doc


async def scheduler_doc(settee, doc_id: str) -> dict[str, Any] | None:
    code, row = await call(settee, "GET", f"/_scheduler/docs/_replicator/{doc_id}")
    return row if code == 200 else None


@pytest.mark.gen_test(timeout=60)
async def test_a_one_shot_document_runs_to_completed(settee, bdb, bcouch, target, rep_id):
    bdb.save([{"_id": "a"}, {"_id": "b"}])
    spec = {"source": db_url(settee, bdb.name), "target": db_url(settee, target)}
    code, put = await call(settee, "PUT", f"/_replicator/{rep_id}", {**spec, "create_target": True})
    assert code == 201, put

    async def completed() -> bool:
        return (await doc_state(settee, rep_id)).get("_replication_state") == "completed"

    await until(completed, timeout=30, what="the replication to complete")
    doc = await doc_state(settee, rep_id)
    assert doc["_rev"].startswith("2-") and doc["owner"] == settee.auth[0]
    assert doc["_replication_stats"]["docs_written"] == 2
    assert {"start_time", "checkpointed_source_seq", "revisions_checked"} <= set(
        doc["_replication_stats"]
    )
    assert {row["id"] for row in bcouch[target].view("_all_docs")} == {"a", "b"}
    row = await scheduler_doc(settee, rep_id)
    assert row is not None and row["state"] == "completed" and row["id"] is None, row
    assert set(row) >= DOC_ROW and row["info"]["docs_written"] == 2
    assert row["source"].endswith(f"/{bdb.name}/") and "@" not in row["source"]


@pytest.mark.gen_test(timeout=60)
async def test_a_continuous_document_follows_until_deleted(settee, bdb, bcouch, target, rep_id):
    spec = {"source": db_url(settee, bdb.name), "target": db_url(settee, target)}
    body = {**spec, "create_target": True, "continuous": True}
    code, put = await call(settee, "PUT", f"/_replicator/{rep_id}", body)
    assert code == 201, put
    bdb.save({"_id": "first"})
    await until(lambda: copied(bcouch, target, "first"), 30, "the first copy")

    async def running() -> bool:  # its figures are brought up to date after each round
        row = await scheduler_doc(settee, rep_id)
        return row is not None and row["state"] == "running" and row["info"]["docs_written"] > 0

    await until(running, 30, "the job to be running, its first round counted")
    row = await scheduler_doc(settee, rep_id)
    assert row["id"].endswith("+continuous+create_target") and row["node"], row
    assert row["error_count"] == 0
    code, jobs = await call(settee, "GET", "/_scheduler/jobs")
    assert code == 200 and {"total_rows", "offset", "jobs"} == set(jobs)
    mine = [job for job in jobs["jobs"] if job["doc_id"] == rep_id]
    assert len(mine) == 1 and set(mine[0]) >= JOB_ROW, jobs
    assert mine[0]["database"] == "_replicator" and mine[0]["id"] == row["id"]
    assert {"started", "added"} <= {event["type"] for event in mine[0]["history"]}
    code, one = await call(settee, "GET", f"/_scheduler/jobs/{quote(row['id'])}")
    assert code == 200 and one["doc_id"] == rep_id
    code, tasks = await call(settee, "GET", "/_active_tasks")
    assert any(t["type"] == "replication" and t.get("doc_id") == rep_id for t in tasks), tasks

    bdb.save({"_id": "second"})
    await until(lambda: copied(bcouch, target, "second"), 30, "the second copy")
    # The document's state is the scheduler's, not written into it while it runs.
    assert "_replication_state" not in await doc_state(settee, rep_id)

    doc = await doc_state(settee, rep_id)
    code, _ = await call(settee, "DELETE", f"/_replicator/{rep_id}?rev={doc['_rev']}")
    assert code == 200

    async def gone() -> bool:
        _, jobs = await call(settee, "GET", "/_scheduler/jobs")
        return not any(job["doc_id"] == rep_id for job in jobs["jobs"])

    await until(gone, 30, "the job to stop")
    assert await scheduler_doc(settee, rep_id) is None
    bdb.save({"_id": "after"})
    await never_within(1.5, lambda: copied(bcouch, target, "after"), "a copy")


@pytest.mark.gen_test(timeout=60)
async def test_editing_a_document_restarts_its_replication(settee, bdb, bcouch, target, rep_id):
    bdb.save([{"_id": "a"}, {"_id": "b"}])
    spec = {"source": db_url(settee, bdb.name), "target": db_url(settee, target)}
    body = {**spec, "create_target": True, "continuous": True, "doc_ids": ["a"]}
    code, put = await call(settee, "PUT", f"/_replicator/{rep_id}", body)
    assert code == 201, put
    await until(lambda: copied(bcouch, target, "a"), 30, "a's copy")
    assert not copied(bcouch, target, "b")
    edited = {**body, "doc_ids": ["b"], "_rev": put["rev"]}
    code, put = await call(settee, "PUT", f"/_replicator/{rep_id}", edited)
    assert code == 201, put
    await until(lambda: copied(bcouch, target, "b"), 30, "b's copy")


@pytest.mark.gen_test(timeout=60)
async def test_a_second_document_for_a_running_replication_fails(settee, bdb, target, rep_id):
    spec = {"source": db_url(settee, bdb.name), "target": db_url(settee, target)}
    body = {**spec, "create_target": True, "continuous": True}
    code, _ = await call(settee, "PUT", f"/_replicator/{rep_id}", body)
    assert code == 201

    async def running() -> bool:
        row = await scheduler_doc(settee, rep_id)
        return row is not None and row["state"] == "running"

    await until(running, 30, "the first job to run")
    twin = rep_id + "-twin"
    try:
        code, _ = await call(settee, "PUT", f"/_replicator/{twin}", body)
        assert code == 201

        async def failed() -> bool:
            return (await doc_state(settee, twin)).get("_replication_state") == "failed"

        await until(failed, 30, "the twin to fail")
        doc = await doc_state(settee, twin)
        first = (await scheduler_doc(settee, rep_id))["id"]
        assert doc["_replication_state_reason"] == (
            f"Replication `{first}` specified by document `{twin}` already started, "
            f"triggered by document `{rep_id}` from db `_replicator`"
        )
        row = await scheduler_doc(settee, twin)
        assert row["state"] == "failed" and row["id"] is None and row["error_count"] == 1
        assert row["info"] == {"error": doc["_replication_state_reason"]}
    finally:
        doc = await doc_state(settee, twin)
        await call(settee, "DELETE", f"/_replicator/{twin}?rev={doc['_rev']}")


@pytest.mark.gen_test(timeout=60)
async def test_since_seq_starts_a_replication_there(settee, bdb, bcouch, target, rep_id):
    bdb.save({"_id": "before"})
    since = bdb.changes()["last_seq"]
    bdb.save({"_id": "after"})
    spec = {"source": db_url(settee, bdb.name), "target": db_url(settee, target)}
    body = {**spec, "create_target": True, "since_seq": since}
    code, put = await call(settee, "PUT", f"/_replicator/{rep_id}", body)
    assert code == 201, put

    async def completed() -> bool:
        return (await doc_state(settee, rep_id)).get("_replication_state") == "completed"

    await until(completed, timeout=30, what="the replication to complete")
    assert copied(bcouch, target, "after") and not copied(bcouch, target, "before")


@pytest.mark.gen_test(timeout=60)
async def test_a_job_whose_source_is_missing_is_crashing(settee, bdb, rep_id):
    missing = db_url(settee, bdb.name + "-nosuch")
    body = {"source": missing, "target": db_url(settee, bdb.name), "continuous": True}
    code, put = await call(settee, "PUT", f"/_replicator/{rep_id}", body)
    assert code == 201, put

    async def crashing() -> bool:
        row = await scheduler_doc(settee, rep_id)
        return row is not None and row["state"] == "crashing"

    await until(crashing, 30, "the job to crash")
    row = await scheduler_doc(settee, rep_id)
    shown = missing.split("@")[-1]
    assert row["info"] == {"error": f"db_not_found: could not open http://{shown}/"}, row
    assert row["error_count"] >= 1 and row["id"], row
    code, job = await call(settee, "GET", f"/_scheduler/jobs/{quote(row['id'])}")
    assert code == 200 and job["pid"] is None and job["info"] is None, job
    assert (
        job["history"][0]["type"] == "crashed"
        and job["history"][0]["reason"] == (row["info"]["error"])
    )


def _throw(text: str) -> str:
    return f'{{throw,{{bad_request,<<"{text}">>}}}}'


URL = "http://127.0.0.1:9/db"
MALFORMED = [
    ({}, "Missing replicator database"),
    ({"source": URL}, "Missing replicator database"),
    ({"source": "db", "target": URL}, "local_endpoints_not_supported"),
    ({"source": "ftp://x/y", "target": URL}, "local_endpoints_not_supported"),
    ({"source": 5, "target": URL}, "{error,function_clause}"),
    ({"source": {"url": 5}, "target": URL}, "endpoint has an invalid url"),
    ({"source": {"headers": {}}, "target": URL}, "endpoint has an invalid url"),
    ({"continuous": "yes"}, _throw("parameter `continuous` must be a boolean")),
    ({"create_target": 1}, _throw("parameter `create_target` must be a boolean")),
    ({"doc_ids": "a"}, _throw("parameter `doc_ids` must be an array")),
    ({"filter": 5}, "{error,badarg}"),
    ({"selector": []}, _throw("parameter `selector` must be a JSON object")),
    ({"filter": "d/f", "query_params": 5}, _throw("parameter `query_params` must be an object")),
    (
        {"doc_ids": ["a"], "filter": "d/f"},
        '{throw,{bad_request,"`doc_ids`,`filter`,`selector` are mutually exclusive"}}',
    ),
]


@pytest.mark.gen_test(timeout=60)
async def test_malformed_documents_get_couchdbs_refusals(settee):
    ends = {"source": URL, "target": URL}
    for fields, reason in MALFORMED:
        body = fields if "source" in fields or not fields else {**ends, **fields}
        code, refused = await call(settee, "POST", "/_replicator", body)
        assert (code, refused) == (403, {"error": "forbidden", "reason": reason}), body
    # Not checked: a deletion, and a document marked failed.
    code, put = await call(settee, "PUT", "/_replicator/marked", {"_replication_state": "failed"})
    assert code == 201, put
    code, _ = await call(settee, "DELETE", f"/_replicator/marked?rev={put['rev']}")
    assert code == 200


async def _user(settee) -> tuple[str, dict[str, str]]:
    name = "u" + uuid.uuid4().hex[:8]
    user = {"name": name, "password": "pw", "roles": [], "type": "user"}
    code, made = await call(settee, "PUT", f"/_users/org.couchdb.user:{name}", user)
    assert code == 201, made
    token = base64.b64encode(f"{name}:pw".encode()).decode()
    return name, {"Authorization": f"Basic {token}"}


@pytest.mark.gen_test(timeout=60)
async def test_a_document_is_its_owners_and_its_credentials_are_hidden(settee, rep_id):
    code, security = await call(settee, "GET", "/_replicator/_security")
    assert code == 200
    opened = {"members": {"roles": []}, "admins": {"roles": ["_admin"]}}
    code, _ = await call(settee, "PUT", "/_replicator/_security", opened)
    assert code == 200
    try:
        bob, as_bob = await _user(settee)
        eve, as_eve = await _user(settee)
        source = f"http://{bob}:pw@127.0.0.1:9/src"
        spec = {"source": source, "target": {"url": URL, "headers": {"Authorization": "x"}}}

        body = {**spec, "owner": eve}
        code, refused = await call(settee, "PUT", f"/_replicator/{rep_id}", body, headers=as_bob)
        assert (code, refused["reason"]) == (
            403,
            "Can't update replication documents from other users.",
        )
        code, put = await call(settee, "PUT", f"/_replicator/{rep_id}", spec, headers=as_bob)
        assert code == 201, put
        code, own = await call(settee, "GET", f"/_replicator/{rep_id}", headers=as_bob)
        assert own["owner"] == bob and own["source"] == source and own["_rev"] == put["rev"]
        code, seen = await call(settee, "GET", f"/_replicator/{rep_id}", headers=as_eve)
        assert code == 200 and seen["source"] == "http://127.0.0.1:9/src"
        assert seen["target"] == {"url": URL}
        assert seen["_rev"] != put["rev"] and seen["_rev"].startswith("1-")
        # Every read hides them: open_revs, _bulk_get, _find (under the same made-up rev).
        code, leaves = await call(
            settee, "GET", f"/_replicator/{rep_id}?open_revs=all", headers=as_eve
        )
        assert code == 200 and leaves == [{"ok": seen}], leaves
        asked = {"docs": [{"id": rep_id}]}
        code, got = await call(settee, "POST", "/_replicator/_bulk_get", asked, headers=as_eve)
        assert code == 200 and got["results"][0]["docs"] == [{"ok": seen}], got
        query = {"selector": {"_id": rep_id}}
        code, found = await call(settee, "POST", "/_replicator/_find", query, headers=as_eve)
        assert code == 200 and found["docs"] == [seen], found
        code, full = await call(settee, "GET", f"/_replicator/{rep_id}")
        assert full["source"] == source and full["_rev"] == put["rev"]
        for path in ("/_replicator/_all_docs", "/_replicator/_changes", "/_scheduler/docs"):
            code, refused = await call(settee, "GET", path, headers=as_eve)
            assert (code, refused["reason"]) == (401, "You are not a server admin."), path
    finally:
        await call(settee, "PUT", "/_replicator/_security", security)


@pytest.mark.gen_test(timeout=60)
async def test_scheduler_requests_get_couchdbs_answers(settee):
    for query, reason in [
        ("limit=x", 'Invalid value for integer: "x"'),
        ("skip=-1", 'Invalid value for positive integer: "-1"'),
        (
            "states=bogus",
            "States must be one or more of "
            "[initializing,error,running,pending,crashing,completed,failed]",
        ),
    ]:
        code, refused = await call(settee, "GET", f"/_scheduler/docs?{query}")
        assert (code, refused) == (400, {"error": "query_parse_error", "reason": reason})
    code, listed = await call(settee, "GET", "/_scheduler/docs?limit=0&skip=1")
    assert code == 200 and listed["docs"] == []
    assert listed["offset"] == min(1, listed["total_rows"])  # never past the end
    code, listed = await call(settee, "GET", "/_scheduler/docs/_replicator?limit=1")
    assert code == 200 and {"total_rows", "offset", "docs"} == set(listed)
    assert len(listed["docs"]) <= 1
    assert (await call(settee, "GET", "/_scheduler/docs/nosuchdb/x"))[0] == 400
    assert await call(settee, "GET", "/_scheduler/docs/_replicator/nosuch") == (
        404,
        {"error": "not_found", "reason": "missing"},
    )
    assert (await call(settee, "GET", "/_scheduler/jobs/nosuch"))[0] == 404
    code, refused = await call(settee, "POST", "/_scheduler/jobs", {})
    assert (code, refused["error"]) == (405, "method_not_allowed")
    code, refused = await call(settee, "GET", "/_scheduler/jobs", anonymous=True)
    assert (code, refused["reason"]) == (401, "You are not a server admin.")


@pytest.mark.gen_test(timeout=120)
async def test_a_document_replication_outlives_a_restart(disk_server):
    """Source and target on one server, killed (-9) and started again: the continuous
    job of the document runs again, from its checkpoint."""
    with blocking.Couch(disk_server.url) as couch:
        couch.create("src")
        couch["src"].save({"_id": "before"})
        base = disk_server.url
        body = {"source": f"{base}/src", "target": f"{base}/dst", "create_target": True}
        couch["_replicator"].save({"_id": "kept", **body, "continuous": True})
        await until(lambda: copied(couch, "dst", "before"), 30, "the first copy")
    disk_server.restart()
    with blocking.Couch(disk_server.url) as couch:
        couch["src"].save({"_id": "after"})
        await until(lambda: copied(couch, "dst", "after"), 60, "a copy after the restart")
        assert json.dumps(couch["_replicator"].get("kept")).count("_replication_state") == 0


def scheduler_jobs(server: SetteeServer) -> list[dict[str, Any]]:
    token = base64.b64encode(":".join(EMBEDDED_ADMIN).encode()).decode()
    url = f"http://127.0.0.1:{server.port}/_scheduler/jobs"
    request = urllib.request.Request(url, headers={"Authorization": f"Basic {token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)["jobs"]


@pytest.mark.gen_test(timeout=60)
async def test_with_processes_one_of_them_runs_each_job():
    """Two processes share the store: one runs the document's job, both list it as
    running there; when that process is killed, the other runs it on."""
    server = SetteeServer(args=["--processes", "2"]).start()
    try:
        with blocking.Couch(server.url) as couch:
            couch.create("src")
            couch["src"].save({"_id": "one"})
            body = {"source": f"{server.url}/src", "target": f"{server.url}/dst"}
            body = {**body, "create_target": True, "continuous": True}
            couch["_replicator"].save({"_id": "job", **body})
            await until(lambda: copied(couch, "dst", "one"), 30, "the copy")
            pids = set()
            for _ in range(20):
                jobs = scheduler_jobs(server)  # a new connection each: to any process
                pids |= {job["pid"] for job in jobs if job["doc_id"] == "job"}
            assert len(pids) == 1, pids
            # The process that runs it dies: another takes the lock and resumes the job.
            (runner,) = pids
            os.kill(int(runner.strip("<>").split(".")[0]), signal.SIGKILL)
        with blocking.Couch(server.url) as couch:  # new connections: to the one left
            couch["src"].save({"_id": "two"})
            await until(lambda: copied(couch, "dst", "two"), 30, "a copy by the next process")
            jobs = scheduler_jobs(server)
            assert [job["pid"] != runner for job in jobs if job["doc_id"] == "job"] == [True]
    finally:
        server.stop()
