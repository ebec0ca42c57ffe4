"""The changes feeds: WebSocket, longpoll, continuous, eventsource and normal, from the hub."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.websocket import WebSocketClientConnection, websocket_connect

from tests.conftest import answer, assert_every_change_once
from tests.waiting import until


async def connect(settee, db: str, query: str = "") -> WebSocketClientConnection:
    return await websocket_connect(settee.ws_url(db, query))


async def receive(ws: WebSocketClientConnection, timeout: float = 10) -> Any:
    message = await asyncio.wait_for(ws.read_message(), timeout)
    assert message is not None, f"closed: {ws.close_code} {ws.close_reason}"
    return json.loads(message)


async def rows_until(ws, count: int, timeout: float = 20) -> list[dict]:
    """Change rows (in order, markers skipped) until ``count`` have arrived."""
    rows: list[dict] = []
    async with asyncio.timeout(timeout):
        while len(rows) < count:
            frame = await receive(ws, timeout)
            batch = frame if isinstance(frame, list) else [frame]
            rows += [row for row in batch if "seq" in row]
    return rows


def subscribed(settee, feed: str) -> Any:
    """A condition: ``settee`` has a subscriber of ``feed``, as its /_metrics tell."""

    async def condition() -> bool:
        metrics = (await settee.fetch("GET", "/_metrics")).body.decode()
        return f'settee_subscribers{{feed="{feed}"}} 1.0' in metrics

    return condition


async def until_caught_up(ws) -> tuple[list[dict], Any]:
    """The backlog rows and the caught-up marker's last_seq."""
    rows = []
    while "last_seq" not in (frame := await receive(ws)):
        rows.append(frame)
    return rows, frame["last_seq"]


@pytest.mark.gen_test(timeout=30)
async def test_websocket_backlog_marker_then_live(settee, db_name, bdb):
    bdb.save([{"_id": "a"}, {"_id": "b"}])
    ws = await connect(settee, db_name, "&since=0")
    backlog, last_seq = await until_caught_up(ws)
    assert_every_change_once(backlog, ["a", "b"])
    assert set(backlog[0]) == {"seq", "id", "changes"}
    assert last_seq == backlog[-1]["seq"]
    await asyncio.to_thread(bdb.save, {"_id": "c", "v": 1})
    live = await receive(ws)
    assert live["id"] == "c"
    assert live["changes"][0]["rev"].startswith("1-")
    ws.close()


@pytest.mark.gen_test(timeout=30)
async def test_websocket_since_now_include_docs_and_deletions(settee, db_name, bdb):
    bdb.save({"_id": "old"})
    ws = await connect(settee, db_name, "&since=now&include_docs=true")
    backlog, _ = await until_caught_up(ws)
    assert backlog == []
    doc = {"_id": "new", "v": 7}
    await asyncio.to_thread(bdb.save, doc)
    row = await receive(ws)
    assert row["doc"]["v"] == 7
    await asyncio.to_thread(bdb.delete, doc)
    row = await receive(ws)
    assert row["deleted"] is True
    ws.close()


@pytest.mark.gen_test(timeout=30)
async def test_websocket_latency_batches_rows_into_arrays(settee, db_name, bdb):
    ws = await connect(settee, db_name, "&since=now&latency=300")
    assert "last_seq" in await receive(ws)
    await asyncio.to_thread(bdb.save, [{"_id": f"d{n}"} for n in range(5)])
    frame = await receive(ws)
    assert isinstance(frame, list)
    received = list(frame)
    while len(received) < 5:
        received += await receive(ws)
    assert_every_change_once(received, [f"d{n}" for n in range(5)])
    ws.close()


@pytest.mark.gen_test(timeout=30)
async def test_websocket_filters(settee, db_name, bdb, backend):
    bdb.save(
        {
            "_id": "_design/f",
            "filters": {"odd": "function (doc) { return doc.n % 2 === 1; }"},
            "views": {"big": {"map": "function (doc) { if (doc.n > 2) emit(doc._id); }"}},
        }
    )
    bdb.save([{"_id": f"n{n}", "n": n} for n in range(5)])

    async def ids(query: str) -> list[str]:
        ws = await connect(settee, db_name, "&since=0" + query)
        rows, _ = await until_caught_up(ws)
        ws.close()
        return sorted(row["id"] for row in rows)

    assert await ids('&filter=_doc_ids&doc_ids=["n1","n4"]') == ["n1", "n4"]
    assert await ids("&filter=_design") == ["_design/f"]
    if backend != "pouchdb":
        assert await ids("&filter=_view&view=f/big") == ["n3", "n4"]
        assert await ids('&filter=_selector&selector={"n":{"$lt":2}}') == ["n0", "n1"]
    else:  # pouchdb-server has neither (a _view filter crashes it): refused before it sees it
        for query in ("&filter=_view&view=f/big", '&filter=_selector&selector={"n":1}'):
            with pytest.raises(HTTPClientError) as raised:
                await connect(settee, db_name, query)
            assert raised.value.code == 400
    assert await ids("&filter=f/odd") == ["n1", "n3"]


@pytest.mark.gen_test(timeout=30)
@pytest.mark.parametrize(
    ("query", "status", "error"),
    [
        ("&since=0&limit=x", 400, "query_parse_error"),
        ("&latency=soon", 400, "query_parse_error"),
        ("&include_docs=maybe", 400, "query_parse_error"),
        ("&filter=_doc_ids", 400, "bad_request"),
        ("&filter=_selector", 400, "bad_request"),
        ("&filter=_nope", 400, "bad_request"),
        ("&filter=noslash", 400, "bad_request"),
        ("&filter=missing/filter", 404, "not_found"),
        ("&filter=_view&view=missing/view", 404, "not_found"),
    ],
)
async def test_bad_websocket_options_fail_before_the_upgrade(settee, db_name, query, status, error):
    with pytest.raises(HTTPClientError) as raised:
        await connect(settee, db_name, query)
    assert raised.value.code == status
    assert answer(raised.value.response)["error"] == error


@pytest.mark.gen_test(timeout=30)
async def test_an_unknown_database_is_404_before_the_upgrade(settee):
    with pytest.raises(HTTPClientError) as raised:
        await connect(settee, "no-such-db")
    assert raised.value.code == 404
    assert answer(raised.value.response)["error"] == "not_found"
    assert settee.hub.subscribers == 0


@pytest.mark.gen_test(timeout=30)
async def test_subscribers_share_one_upstream_feed(settee, db_name, bdb):
    sockets = [await connect(settee, db_name, "&since=now") for _ in range(5)]
    for ws in sockets:
        await until_caught_up(ws)
    assert len(settee.hub.upstreams) == 1
    await asyncio.to_thread(bdb.save, {"_id": "shared"})
    for ws in sockets:
        assert (await receive(ws))["id"] == "shared"
        ws.close()
    metrics = (await settee.fetch("GET", "/_metrics")).body.decode()
    assert "settee_upstream_feeds 1.0" in metrics
    assert 'settee_subscribers{feed="websocket"}' in metrics


@pytest.mark.gen_test(timeout=60)
async def test_late_join_gets_backlog_then_live_without_gap_or_duplicate(settee, db_name, bdb):
    first = await connect(settee, db_name, "&since=now")
    await until_caught_up(first)
    writing = True
    saved = [0]

    def write() -> int:
        while writing and saved[0] < 2000:
            bdb.save({"_id": f"w{saved[0]:04d}"})
            saved[0] += 1
        return saved[0]

    writer = asyncio.ensure_future(asyncio.to_thread(write))
    await until(lambda: saved[0] >= 100, timeout=30, what="writes before the late join")
    late = await connect(settee, db_name, "&since=0")
    joined = saved[0]
    await until(lambda: saved[0] >= joined + 100, timeout=30, what="writes after the late join")
    writing = False
    written = await writer
    expected = [f"w{n:04d}" for n in range(written)]
    late_rows = await rows_until(late, written)
    first_rows = await rows_until(first, written)
    assert_every_change_once(late_rows, expected)
    assert_every_change_once(first_rows, expected)
    first.close()
    late.close()


@pytest.mark.gen_test(timeout=30)
async def test_longpoll(settee, db_name, bdb):
    bdb.save({"_id": "x"})
    at_once = answer(await settee.fetch("GET", f"/{db_name}/_changes?feed=longpoll&since=0"))
    assert [row["id"] for row in at_once["results"]] == ["x"]
    assert at_once["last_seq"] == at_once["results"][-1]["seq"]
    assert at_once["pending"] == 0
    since = at_once["last_seq"]

    waiting = asyncio.ensure_future(
        settee.fetch("GET", f"/{db_name}/_changes?feed=longpoll&since={since}")
    )
    await until(subscribed(settee, "longpoll"), what="the longpoll to wait")
    assert not waiting.done()
    await asyncio.to_thread(bdb.save, {"_id": "y"})
    later = answer(await waiting)
    assert [row["id"] for row in later["results"]] == ["y"]

    empty = answer(
        await settee.fetch(
            "GET", f"/{db_name}/_changes?feed=longpoll&since={later['last_seq']}&timeout=500"
        )
    )
    assert empty == {"results": [], "last_seq": later["last_seq"], "pending": 0}


@pytest.mark.gen_test(timeout=30)
async def test_longpoll_heartbeats_while_waiting(settee, db_name):
    response = await settee.fetch(
        "GET", f"/{db_name}/_changes?feed=longpoll&since=now&timeout=700&heartbeat=200"
    )
    assert response.body.startswith(b"\n\n")
    assert json.loads(response.body)["results"] == []


async def stream(settee, path: str, *until: bytes, timeout: float = 15, headers=None) -> bytes:
    """Read a streamed response until each of ``until`` appears in it (then hang up)."""
    received = bytearray()
    done = asyncio.get_running_loop().create_future()

    def take(chunk: bytes) -> None:
        received.extend(chunk)
        if all(part in received for part in until) and not done.done():
            done.set_result(None)

    request = settee.fetch("GET", path, streaming_callback=take, headers=headers or {})
    fetching = asyncio.ensure_future(request)
    await asyncio.wait_for(asyncio.wait({fetching, done}, return_when="FIRST_COMPLETED"), timeout)
    fetching.cancel()
    return bytes(received)


@pytest.mark.gen_test(timeout=30)
async def test_continuous_feed_with_heartbeats_and_timeout(settee, db_name, bdb):
    bdb.save([{"_id": "c1"}, {"_id": "c2"}])
    response = await settee.fetch(
        "GET", f"/{db_name}/_changes?feed=continuous&since=0&timeout=1200&heartbeat=300"
    )
    lines = response.body.split(b"\n")
    rows = [json.loads(line) for line in lines if line.strip()]
    assert_every_change_once(rows[:2], ["c1", "c2"])
    assert rows[-1] == {"last_seq": rows[1]["seq"]}
    assert lines.count(b"") >= 3  # heartbeats: blank lines


@pytest.mark.gen_test(timeout=30)
async def test_continuous_feed_streams_live_rows(settee, db_name, bdb):
    async def write_soon():
        await until(subscribed(settee, "continuous"), what="the feed to start")
        await asyncio.to_thread(bdb.save, {"_id": "live-row"})

    writing = asyncio.ensure_future(write_soon())
    data = await stream(settee, f"/{db_name}/_changes?feed=live&since=now", b"live-row")
    await writing
    assert b'"id":"live-row"' in data


@pytest.mark.gen_test(timeout=30)
async def test_eventsource_with_last_event_id_resume(settee, db_name, bdb):
    bdb.save([{"_id": "e1"}, {"_id": "e2"}])
    path = f"/{db_name}/_changes?feed=eventsource"
    data = await stream(settee, path + "&since=0", b'"id":"e1"', b'"id":"e2"')
    events = [block for block in data.decode().split("\n\n") if block.startswith("data:")]
    first = dict(line.split(": ", 1) for line in events[0].split("\n"))
    seen = json.loads(first["data"])["id"]  # e1 or e2: CouchDB's shards interleave
    (other,) = {"e1", "e2"} - {seen}
    resumed = await stream(
        settee, path, f'"id":"{other}"'.encode(), headers={"Last-Event-ID": first["id"]}
    )
    assert f'"id":"{seen}"'.encode() not in resumed
    assert f'"id":"{other}"'.encode() in resumed


@pytest.mark.gen_test(timeout=30)
async def test_eventsource_heartbeats(settee, db_name):
    data = await stream(
        settee, f"/{db_name}/_changes?feed=eventsource&since=now&heartbeat=200", b"heartbeat"
    )
    assert b"event: heartbeat\n" in data


@pytest.mark.gen_test
async def test_normal_feed_goes_to_the_backend(settee, db_name, bdb):
    bdb.save([{"_id": "n1"}, {"_id": "n2"}])
    result = answer(await settee.fetch("GET", f"/{db_name}/_changes?limit=1"))
    assert len(result["results"]) == 1 and result["results"][0]["id"] in ("n1", "n2")
    result = answer(await settee.fetch("GET", f"/{db_name}/_changes"))
    assert_every_change_once(result["results"], ["n1", "n2"])
    bad = await settee.fetch("GET", f"/{db_name}/_changes?feed=sideways")
    assert bad.code == 400


@pytest.mark.gen_test(timeout=30)
async def test_subscribers_past_the_limit_get_503(start_settee, db_name):
    settee = start_settee(max_subscribers=2)
    sockets = [await connect(settee, db_name, "&since=now") for _ in range(2)]
    with pytest.raises(HTTPClientError) as raised:
        await connect(settee, db_name, "&since=now")
    assert raised.value.code == 503
    assert answer(raised.value.response)["error"] == "service_unavailable"
    for ws in sockets:
        ws.close()


@pytest.mark.gen_test(timeout=30)
async def test_shutdown_closes_websockets_with_1001(settee, db_name):
    ws = await connect(settee, db_name, "&since=now")
    await until_caught_up(ws)
    settee.hub.close()
    assert await asyncio.wait_for(ws.read_message(), 5) is None
    assert ws.close_code == 1001


@pytest.mark.gen_test(timeout=30)
async def test_origin_is_checked(start_settee, db_name):
    settee = start_settee(cors_origins=("https://app.example",))
    allowed = HTTPRequest(settee.ws_url(db_name), headers={"Origin": "https://app.example"})
    (await websocket_connect(allowed)).close()
    refused = HTTPRequest(settee.ws_url(db_name), headers={"Origin": "https://evil.example"})
    with pytest.raises(HTTPClientError) as raised:
        await websocket_connect(refused)
    assert raised.value.code == 403


def replicate_in(bdb, doc_id: str, rev: str, parent: str, **body: Any) -> None:
    """Write revision ``rev`` of ``doc_id`` as replication does (``new_edits=false``)."""
    start, rev_id = rev.split("-", 1)
    history = {"start": int(start), "ids": [rev_id, parent.split("-", 1)[1]]}
    doc = {"_id": doc_id, "_rev": rev, "_revisions": history, **body}
    assert bdb.bulk_docs([doc], new_edits=False) == []


async def live_rows_until(ws, doc_id: str) -> list[dict]:
    """Rows (markers skipped) until one of ``doc_id`` has arrived."""
    rows: list[dict] = []
    while not rows or rows[-1]["id"] != doc_id:
        frame = await receive(ws)
        rows += [row for row in (frame if isinstance(frame, list) else [frame]) if "seq" in row]
    return rows


def winners(rows: list[dict], doc_id: str) -> list[str]:
    return [row["changes"][0]["rev"] for row in rows if row["id"] == doc_id]


@pytest.mark.gen_test(timeout=30)
async def test_a_replicated_winner_of_the_same_generation_reaches_a_late_joiner(
    settee, db_name, bdb
):
    """Sent ``x`` at 2-… in its backlog, a subscriber gets the conflicting 2-ffff… that a
    replication brings and that wins, as CouchDB's own ``_changes`` lists it."""
    doc = {"_id": "x"}
    bdb.save(doc)
    first = doc["_rev"]
    bdb.save(doc)
    ws = await connect(settee, db_name, "&since=0")
    backlog, last_seq = await until_caught_up(ws)
    assert winners(backlog, "x") == [doc["_rev"]]
    winner = "2-" + "f" * 32
    await asyncio.to_thread(replicate_in, bdb, "x", winner, first, replicated=True)
    await asyncio.to_thread(bdb.save, {"_id": "after"})
    assert winners(bdb.changes(since=last_seq)["results"], "x") == [winner]
    assert winners(await live_rows_until(ws, "after"), "x") == [winner]
    ws.close()


@pytest.mark.gen_test(timeout=30)
async def test_deleting_the_winning_branch_reaches_a_late_joiner(settee, db_name, bdb):
    """Sent ``x`` at 3-… in its backlog, a subscriber is told when that branch is deleted
    and the other branch, at 2-…, becomes the winner: a lower generation is a change too."""
    doc = {"_id": "x"}
    bdb.save(doc)
    first = doc["_rev"]
    bdb.save(doc)
    bdb.save(doc)
    loser = "2-" + "0" * 32
    replicate_in(bdb, "x", loser, first, branch="other")
    ws = await connect(settee, db_name, "&since=0")
    backlog, last_seq = await until_caught_up(ws)
    assert winners(backlog, "x") == [doc["_rev"]]
    await asyncio.to_thread(bdb.delete, doc)
    await asyncio.to_thread(bdb.save, {"_id": "after"})
    assert winners(bdb.changes(since=last_seq)["results"], "x") == [loser]
    assert winners(await live_rows_until(ws, "after"), "x") == [loser]
    ws.close()
