"""Every CouchDB endpoint settee does not handle itself is passed through as it is.

Each case asks the backend directly and through settee with the same request and the same
credentials, and expects the same answer: settee adds nothing and hides nothing.
"""

from __future__ import annotations

import base64
import io
import json
import tracemalloc
from typing import Any

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPRequest, HTTPResponse
from tornado.httputil import HTTPHeaders

from service.couch import Couch
from service.couch.transport import Endpoint
from tests.conftest import answer

JSON = {"Content-Type": "application/json"}

# (method, path with DB for the test database, JSON body or None, extra headers)
SAME_ANSWER = [
    ("GET", "/_uuids?count=3", None, {}),
    ("GET", "/_session", None, {}),
    ("GET", "/_active_tasks", None, {}),
    ("GET", "/DB/_security", None, {}),
    ("GET", "/DB/_design_docs", None, {}),
    ("GET", "/DB/_revs_limit", None, {}),
    ("POST", "/DB/_revs_diff", {"doc": ["1-abc", "9-fff"]}, JSON),
    ("POST", "/DB/_missing_revs", {"doc": ["9-fff"]}, JSON),
    ("POST", "/DB/_find", {"selector": {"n": {"$gt": 1}}, "fields": ["_id", "n"]}, JSON),
    ("POST", "/DB/_find", {"selector": "not an object"}, JSON),
    ("POST", "/DB/_explain", {"selector": {"n": 1}}, JSON),
    ("GET", "/DB/_index", None, {}),
    ("GET", "/DB/_design/d/_info", None, {}),
    ("GET", "/DB/_design/d/_show/echo/doc", None, {}),
    ("GET", "/DB/_design/missing/_info", None, {}),
    ("GET", "/DB/_no_such_endpoint", None, {}),
    ("GET", "/_no_such_endpoint", None, {}),
    ("POST", "/DB/_compact", None, JSON),
    ("POST", "/DB/_ensure_full_commit", None, JSON),
    ("POST", "/_session", {"name": "nobody", "password": "wrong"}, JSON),
    ("POST", "/_dbs_info", {"keys": ["DB"]}, JSON),
]

DESIGN = {
    "_id": "_design/d",
    "language": "javascript",
    "views": {"by_n": {"map": "function (doc) { if (doc.n) emit(doc.n, null); }"}},
    "shows": {"echo": "function (doc, req) { return {json: {id: doc && doc._id}}; }"},
}


def basic(auth: tuple[str, str] | None) -> dict[str, str]:
    if not auth:
        return {}
    return {"Authorization": "Basic " + base64.b64encode(":".join(auth).encode()).decode()}


async def fetch(url: str, method: str, body: Any, headers: dict[str, str]) -> HTTPResponse:
    data = json.dumps(body) if body is not None else (b"" if method in ("POST", "PUT") else None)
    return await AsyncHTTPClient().fetch(
        url,
        method=method,
        body=data,
        headers=headers,
        raise_error=False,
        allow_nonstandard_methods=True,
    )


def comparable(response: HTTPResponse, path: str) -> Any:
    """What must be the same either way: the status and, where it is stable, the body."""
    if "_uuids" in path:
        return response.code, len(answer(response)["uuids"])
    if "_active_tasks" in path or ("_info" in path and response.code == 200):
        return response.code, type(answer(response)).__name__
    try:
        return response.code, answer(response)
    except ValueError:
        return response.code, response.body


@pytest.fixture
def filled(bdb):
    bdb.save([{"_id": "doc", "n": 1}, {"_id": "two", "n": 2}, {"_id": "three", "n": 3}, DESIGN])
    return bdb


@pytest.mark.gen_test
@pytest.mark.parametrize(("method", "path", "body", "headers"), SAME_ANSWER)
async def test_an_endpoint_settee_does_not_handle_answers_as_the_backend(
    settee, server_url, filled, method, path, body, headers
):
    endpoint = Endpoint.parse(server_url)
    path = path.replace("DB", filled.name)
    headers = {**headers, "Accept": "application/json", **settee.credentials}
    if endpoint.embedded:
        direct = await ask_the_store(server_url, method, path, body, headers)
    else:
        direct = await fetch(endpoint.url + path, method, body, headers)
    through = await fetch(settee.url + path, method, body, headers)
    assert comparable(through, path) == comparable(direct, path), through.body
    assert through.headers["Content-Type"] == direct.headers["Content-Type"]


async def ask_the_store(
    url: str, method: str, path: str, body: Any, headers: dict[str, str]
) -> HTTPResponse:
    """The embedded store's own answer, through the client's in-process transport."""
    data = json.dumps(body).encode() if body is not None else None
    async with Couch(url) as couch:
        reply = await couch.relay(method, path, headers, data)
        try:
            content = await reply.read_all()
        finally:
            reply.close()
    request = HTTPRequest(url + path, method=method)
    return HTTPResponse(request, reply.status, HTTPHeaders(reply.headers), io.BytesIO(content))


@pytest.mark.gen_test
async def test_copy_writes_the_destination(settee, filled):
    response = await settee.fetch("COPY", f"/{filled.name}/doc", headers={"Destination": "copied"})
    assert response.code == 201, response.body
    assert filled.get("copied")["n"] == 1


@pytest.mark.gen_test
async def test_writes_to_couchdbs_own_endpoints_go_through(settee, filled):
    response = await settee.fetch("POST", f"/{filled.name}/_index", {"index": {"fields": ["n"]}})
    assert response.code == 200, response.body
    assert answer(response)["result"] in ("created", "exists")


@pytest.mark.gen_test
async def test_security_and_revs_limit_are_written_through(settee, backend, filled):
    if backend == "pouchdb":
        pytest.skip("pouchdb-server has no PUT /{db}/_security or /{db}/_revs_limit")
    security = {"admins": {"names": [], "roles": []}, "members": {"names": [], "roles": ["x"]}}
    response = await settee.fetch("PUT", f"/{filled.name}/_security", security)
    assert response.code == 200, response.body
    assert filled.security()["members"]["roles"] == ["x"]
    response = await settee.fetch("PUT", f"/{filled.name}/_revs_limit", "7")
    assert response.code == 200, response.body
    assert answer(await settee.fetch("GET", f"/{filled.name}/_revs_limit")) == 7


@pytest.mark.gen_test
async def test_settees_routes_refuse_what_couchdb_refuses_with_405(settee, db_name):
    for method, path, allowed in [
        ("PATCH", f"/{db_name}/doc", "DELETE,GET,HEAD,POST,PUT,COPY"),
        ("DELETE", "/_all_dbs", "GET,HEAD"),
        ("PUT", f"/{db_name}/_bulk_docs", "POST"),
        ("PATCH", f"/{db_name}/doc/att.txt", "DELETE,GET,HEAD,PUT"),
        ("DELETE", f"/{db_name}/_all_docs", "GET,HEAD,POST"),
    ]:
        response = await settee.fetch(method, path, b"{}" if method != "DELETE" else None)
        assert response.code == 405, (method, path)
        assert answer(response) == {
            "error": "method_not_allowed",
            "reason": f"Only {allowed} allowed",
        }


@pytest.mark.gen_test
async def test_hop_by_hop_headers_stay_on_their_hop(settee, filled):
    """A header named by ``Connection`` ends at settee, even the client's credentials: the
    request goes on as anonymous, never with anything of settee's in their place."""
    response = await settee.fetch(
        "GET",
        "/_session",
        headers={"Connection": "keep-alive, Authorization, X-Private", "X-Private": "secret"},
    )
    assert response.code == 200
    assert answer(response)["userCtx"]["name"] is None
    assert "Keep-Alive" not in response.headers


@pytest.mark.gen_test
async def test_location_points_at_settee(settee, backend, filled):
    if backend == "pouchdb":
        pytest.skip("pouchdb-server sends no Location on COPY")
    response = await settee.fetch("COPY", f"/{filled.name}/doc", headers={"Destination": "c2"})
    assert response.headers["Location"] == f"{settee.url}/{filled.name}/c2"


@pytest.mark.skip_on("embedded", reason="the embedded store takes and gives whole bodies")
@pytest.mark.gen_test(timeout=120)
async def test_a_large_passthrough_is_streamed_both_ways(settee, filled):
    """A 16 MB request body and a ~6 MB answer pass through settee (in this process) while
    its memory peak stays a small fraction of either."""
    filled.save([{"_id": f"big-{i:05}", "n": i + 10, "pad": "x" * 1000} for i in range(6_000)])
    count = 200_000

    async def produce(write):
        await write(b'{"doc": [')
        for start in range(0, count, 10_000):
            await write(",".join(f'"1-{i:032x}"' for i in range(start, start + 10_000)).encode())
            if start + 10_000 < count:
                await write(b",")
        await write(b"]}")

    url = f"/{filled.name}/_find"
    query = {"selector": {"n": {"$gte": 10}}, "limit": 10_000}
    await settee.fetch("POST", url, query, headers=JSON)  # open the pools before measuring
    tracemalloc.start()
    try:
        received = 0

        def count_bytes(chunk: bytes) -> None:
            nonlocal received
            received += len(chunk)

        found = await settee.fetch(
            "POST", url, json.dumps(query), headers=JSON, streaming_callback=count_bytes
        )
        diffed = await settee.fetch(
            "POST",
            f"/{filled.name}/_revs_diff",
            headers=JSON,
            body_producer=produce,
            streaming_callback=count_bytes,
            request_timeout=120,
        )
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert found.code == 200 and diffed.code == 200
    assert received > 6_000_000 + count * 36
    assert peak < 4_000_000, peak
