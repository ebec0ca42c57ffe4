"""Fuzzing settee's own routes: at least 1,000 bad requests per backend, generated from the
OpenAPI document (``tests/fuzzing.py``).

None may get a 5xx or no answer, show a traceback, log an error, or change anything: the list
of databases, the test database's documents with their revs, its ``_local`` document, its
counts and update seq, and its ``_security`` are compared before and after. A failure is
shrunk by hypothesis to a smallest request that shows it.
"""

from __future__ import annotations

import json
import logging
import time

import pytest
from hypothesis import HealthCheck, given, settings
from tornado.httpclient import HTTPResponse

from service.couch import NotFound
from tests.conftest import Service
from tests.fuzzing import BadRequest, Target, any_bad_request

REQUESTS = 1000
MAX_BODY_SIZE = 4096


@pytest.fixture
def target(bdb, db_name) -> Target:
    """The test database with something in it for the bad requests to name: documents, one
    with an attachment, a design document with a view, a local document."""
    doc = {"_id": "doc", "name": "a"}
    bdb.save(doc)
    bdb.put_attachment(doc, b"some notes", filename="notes.txt", content_type="text/plain")
    bdb.save({"_id": "other", "name": "b"})
    view = {"map": "function (doc) { emit(doc.name, 1); }", "reduce": "_count"}
    bdb.save({"_id": "_design/app", "views": {"by_name": view}})
    bdb.save({"_id": "_local/checkpoint", "seq": 1})
    return Target(
        db=db_name,
        docs=("doc", "other"),
        attachment="notes.txt",
        ddoc="app",
        view="by_name",
        local="checkpoint",
        max_body_size=MAX_BODY_SIZE,
    )


def snapshot(bcouch, bdb, target: Target) -> dict:
    """What a bad request must leave as it was."""
    info = bdb.info()
    return {
        "dbs": bcouch.all_dbs(),
        "docs": [(row.id, row.value["rev"]) for row in bdb.view("_all_docs")],
        "counts": [info.get(name) for name in ("doc_count", "doc_del_count", "update_seq")],
        "local": local_rev(bdb, target.local),
        "security": bdb.security(),
    }


def local_rev(bdb, name: str) -> str | None:
    try:
        return bdb.get("_local/" + name)["_rev"]
    except NotFound:
        return None


async def send(settee: Service, request: BadRequest) -> HTTPResponse:
    return await settee.fetch(
        request.method,
        request.path,
        request.body,
        request.headers,
        anonymous=request.anonymous,
        request_timeout=15,
        follow_redirects=False,
    )


def check(request: BadRequest, response: HTTPResponse) -> None:
    """A clear answer: not a 5xx, no traceback, errors in CouchDB's shape."""
    where = f"{request.method} {request.path} {request.faults} {request.body!r:.200}"
    assert response.code != 599, f"{where}: no answer ({response.error})"
    assert response.code < 500, f"{where}: {response.code} {response.body!r:.300}"
    body = response.body or b""
    assert b"Traceback" not in body, where
    json_answer = response.headers.get("Content-Type", "").startswith("application/json")
    if response.code >= 400 and request.method != "HEAD" and json_answer:
        assert {"error", "reason"} <= set(json.loads(body)), where


def test_bad_requests_get_4xx_and_change_nothing(
    start_settee, target, bcouch, bdb, io_loop, caplog, backend
):
    settee = start_settee(max_body_size=MAX_BODY_SIZE)
    before = snapshot(bcouch, bdb, target)
    statuses: list[int] = []
    accepted: list[str] = []  # writes answered 2xx: where to look if something changed

    @settings(
        max_examples=REQUESTS,
        deadline=None,
        database=None,
        print_blob=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(request=any_bad_request(target))
    def refused(request: BadRequest) -> None:
        response = io_loop.run_sync(lambda: send(settee, request))
        statuses.append(response.code)
        if request.method not in ("GET", "HEAD") and response.code < 300:
            accepted.append(f"{request.method} {request.path} {request.faults}: {response.code}")
        check(request, response)

    started = time.monotonic()
    refused()
    seconds = time.monotonic() - started
    server_errors = sum(status >= 500 for status in statuses)
    print(f"\nfuzz [{backend}]: {len(statuses)} requests, {seconds:.1f} s, {server_errors} 5xx")

    assert len(statuses) >= REQUESTS
    logged = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not logged, [record.getMessage() for record in logged[:5]]
    assert snapshot(bcouch, bdb, target) == before, accepted
