"""Server-wide endpoints and operations: welcome, health, metrics, 503s, access log, CORS."""

from __future__ import annotations

import email.utils
import logging
import time

import pytest

from tests.conftest import answer
from tests.servers import PouchServer, free_port


@pytest.mark.gen_test
async def test_welcome_names_settee_and_the_backend(settee, backend):
    welcome = answer(await settee.fetch("GET", "/"))
    assert welcome["couchdb"] == "Welcome"
    assert welcome["settee"]
    assert welcome["backend"]["kind"] == {"pouchdb": "pouchdb-server"}.get(backend, backend)
    assert welcome["version"] == welcome["backend"]["version"]


@pytest.mark.gen_test
async def test_up_and_ready(settee):
    assert answer(await settee.fetch("GET", "/_up")) == {"status": "ok"}
    ready = await settee.fetch("GET", "/_ready")
    assert ready.code == 200
    assert answer(ready)["status"] == "ok"


@pytest.mark.gen_test
async def test_every_answer_carries_settees_headers(settee):
    for path in ("/", "/no-such-db", "/_no_such_endpoint"):
        response = await settee.fetch("GET", path)
        assert response.headers["Server"] == "settee"
        assert response.headers["Content-Type"] == "application/json"
        assert response.headers["Cache-Control"] == "must-revalidate"
        date = email.utils.parsedate_to_datetime(response.headers["Date"])
        assert abs(date.timestamp() - time.time()) < 5


@pytest.fixture
def stoppable_backend():
    """A pouchdb-server to stop: what settee answers without a backend is the same whichever
    backend it was, so this stays on pouchdb-server, which starts fastest."""
    server = PouchServer().start()
    yield server
    server.stop()


@pytest.mark.gen_test
async def test_a_stopped_backend_is_503_with_retry_after(start_settee, stoppable_backend):
    settee = start_settee(couch_url=stoppable_backend.url, couch_timeout=5)
    assert (await settee.fetch("PUT", "/alive")).code == 201
    stoppable_backend.stop()
    for method, path, body in [
        ("GET", "/", None),
        ("GET", "/alive", None),
        ("GET", "/alive/doc", None),
        ("PUT", "/alive/doc", {"v": 1}),
        ("GET", "/alive/_all_docs", None),
        ("PUT", "/alive/doc/a.txt", b"x"),
    ]:
        response = await settee.fetch(method, path, body)
        assert response.code == 503, (method, path)
        assert response.headers["Retry-After"].isdigit()
        reply = answer(response)
        assert reply["error"] == "service_unavailable"
        assert stoppable_backend.url not in reply["reason"]
    assert (await settee.fetch("GET", "/_up")).code == 200
    not_ready = await settee.fetch("GET", "/_ready")
    assert not_ready.code == 503
    assert answer(not_ready)["status"] == "unavailable"
    metrics = (await settee.fetch("GET", "/_metrics")).body.decode()
    assert 'settee_backend_errors_total{kind="unavailable"}' in metrics


@pytest.mark.gen_test
async def test_credentials_never_reach_a_response(start_settee):
    port = free_port()
    settee = start_settee(couch_url=f"http://admin:s3cret@127.0.0.1:{port}", couch_timeout=2)
    for path in ("/", "/db", "/db/doc", "/_ready"):
        response = await settee.fetch("GET", path)
        assert b"s3cret" not in response.body
        assert "s3cret" not in str(response.headers)


@pytest.mark.gen_test
async def test_metrics_count_requests_by_route_and_status(settee, db_name):
    await settee.fetch("GET", f"/{db_name}/missing")
    await settee.fetch("GET", "/_up")
    response = await settee.fetch("GET", "/_metrics")
    assert response.headers["Content-Type"].startswith("text/plain")
    text = response.body.decode()
    assert 'settee_requests_total{method="GET",route="document",status="404"} 1.0' in text
    assert 'settee_requests_total{method="GET",route="up",status="200"} 1.0' in text
    assert 'settee_request_duration_seconds_bucket{le="0.5",route="document"}' in text
    assert "settee_requests_in_flight" in text


@pytest.mark.gen_test
async def test_access_log_has_one_line_per_request_with_the_forwarded_address(start_settee, caplog):
    settee = start_settee(xheaders=True)
    with caplog.at_level(logging.INFO, logger="settee.access"):
        await settee.fetch("GET", "/_up?x=1", headers={"X-Forwarded-For": "203.0.113.9"})
    lines = [r.getMessage() for r in caplog.records if r.name == "settee.access"]
    assert len(lines) == 1
    assert lines[0].startswith('203.0.113.9 "GET /_up?x=1" 200 ')
    assert lines[0].endswith("ms")


@pytest.mark.gen_test
async def test_forwarded_headers_are_ignored_unless_trusted(settee, caplog):
    with caplog.at_level(logging.INFO, logger="settee.access"):
        await settee.fetch("GET", "/_up", headers={"X-Forwarded-For": "203.0.113.9"})
    line = next(r.getMessage() for r in caplog.records if r.name == "settee.access")
    assert line.startswith("127.0.0.1 ")


@pytest.mark.gen_test
async def test_cors_for_any_origin_never_carries_credentials(start_settee):
    settee = start_settee(cors_origins=("*",))
    response = await settee.fetch("GET", "/_up", headers={"Origin": "https://evil.example"})
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Credentials" not in response.headers


@pytest.mark.gen_test
async def test_cors_for_allowed_origins_only(start_settee, db_name):
    settee = start_settee(cors_origins=("https://app.example",))
    allowed = await settee.fetch("GET", "/_up", headers={"Origin": "https://app.example"})
    assert allowed.headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert allowed.headers["Access-Control-Allow-Credentials"] == "true"
    other = await settee.fetch("GET", "/_up", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in other.headers
    assert "Access-Control-Allow-Credentials" not in other.headers
    preflight = await settee.fetch(
        "OPTIONS", f"/{db_name}/doc", headers={"Origin": "https://app.example"}
    )
    assert preflight.code == 204
    assert set(preflight.headers["Access-Control-Allow-Methods"].split(", ")) >= {
        "GET",
        "PUT",
        "DELETE",
        "HEAD",
    }
