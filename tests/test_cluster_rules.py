"""How a client of several nodes chooses, fails over and probes (``service.couch.cluster``),
without a cluster: one node is the test's backend behind settee, the other a dead port or a
stand-in that answers ``/_up``. The real cluster is tests/test_cluster.py's."""

from __future__ import annotations

import asyncio
import json

import pytest

from service.couch import Couch, ServerUnavailable, blocking, http1
from service.couch.changes import FeedState
from service.couch.cluster import Cluster, retryable
from service.couch.protocol import Request
from service.couch.transport import Endpoint
from service.handlers.passthrough import response_headers
from service.settings import Settings, load
from tests.servers import free_port


def unavailable(cause: BaseException) -> ServerUnavailable:
    error = ServerUnavailable("http://n1", str(cause))
    error.__cause__ = cause
    return error


def test_several_urls_make_a_cluster_whose_credentials_are_shared():
    endpoint = Endpoint.parse("http://u:p@127.0.0.1:1, http://127.0.0.1:2/,http://127.0.0.1:3")
    assert endpoint.url == "http://127.0.0.1:1"
    assert endpoint.urls == ("http://127.0.0.1:1", "http://127.0.0.1:2", "http://127.0.0.1:3")
    assert endpoint.auth == ("u", "p")
    assert Endpoint.parse("http://127.0.0.1:1").urls == ("http://127.0.0.1:1",)


@pytest.mark.parametrize(
    "urls",
    [
        "http://a:1,http://a:1",  # one node twice
        "http://u:p@a:1,http://v:q@b:1",  # different credentials
        "http://a:1,ftp://b:2",
        "http://a:1,embedded:/tmp/x",
        "http://a:1,",  # one node is no cluster
    ],
)
def test_a_malformed_list_of_nodes_is_refused(urls):
    with pytest.raises(ValueError):
        Endpoint.parse(urls)


def test_the_setting_takes_a_comma_separated_list_and_checks_each_url():
    settings = load(["--couch-url", "http://127.0.0.1:1,http://127.0.0.1:2"], {})
    assert settings.couch_url == "http://127.0.0.1:1,http://127.0.0.1:2"
    assert Settings(couch_url="http://127.0.0.1:1").couch_url == "http://127.0.0.1:1"
    with pytest.raises(ValueError, match="named twice"):
        Settings(couch_url="http://a:1,http://a:1")
    with pytest.raises(ValueError, match="different credentials"):
        Settings(couch_url="http://u:p@a:1,http://v:q@b:1")
    with pytest.raises(ValueError) as refused:
        Settings(couch_url="http://u:secret@a:1,gopher://u:secret@b:2")
    assert "secret" not in str(refused.value)


def test_the_blocking_face_takes_one_url():
    with pytest.raises(ValueError, match="async"):
        blocking.Couch("http://127.0.0.1:1,http://127.0.0.1:2")


def test_requests_go_round_the_nodes_that_are_up_and_to_those_down_last():
    cluster = Cluster(["a", "b", "c"])
    firsts = [cluster.order()[0] for _ in range(6)]
    assert sorted(firsts) == ["a", "a", "b", "b", "c", "c"]
    cluster.nodes["b"].up = False
    for _ in range(4):
        order = cluster.order()
        assert order[-1] == "b" and sorted(order) == ["a", "b", "c"]
    with pytest.raises(ValueError):
        Cluster(["a"])


def test_only_what_cannot_be_applied_twice_is_sent_to_another_node():
    refused, dropped = unavailable(ConnectionRefusedError()), unavailable(ConnectionResetError())
    for method in ("GET", "HEAD", "OPTIONS"):
        assert retryable(Request(method, "/db/x"), dropped)
    assert retryable(Request("PUT", "/db/x", body=b"{}"), refused)
    # http1 sent the PUT again after a closed connection, and that was refused: the first try
    # may have reached the node.
    second_try = ConnectionRefusedError()
    second_try.__cause__ = http1.StaleConnection("the server closed a kept-alive connection")
    assert not retryable(Request("PUT", "/db/x", body=b"{}"), unavailable(second_try))
    assert retryable(Request("POST", "/db", body=b"{}"), refused)
    assert not retryable(Request("PUT", "/db/x", {"rev": "1-a"}, body=b"{}"), dropped)
    assert not retryable(Request("POST", "/db", body=b"{}"), dropped)
    assert not retryable(Request("DELETE", "/db/x", {"rev": "1-a"}), dropped)
    assert not retryable(Request("GET", "/db/x"), unavailable(TimeoutError()))  # slow, not gone

    async def streamed():
        yield b"{}"

    assert not retryable(Request("PUT", "/db/x/a", body=streamed()), refused)  # spent


def test_a_location_on_any_node_is_made_settees():
    nodes = ("http://127.0.0.1:1", "http://127.0.0.1:2")
    headers = dict(response_headers({"Location": "http://127.0.0.1:2/db/x"}, nodes, "http://s"))
    assert headers["Location"] == "http://s/db/x"


def test_a_resumed_feed_drops_the_rows_it_delivered_already():
    state = FeedState("/db/_changes", {}, since="0", latency=0, heartbeat=5, replays=True)
    state.request()
    state.receive(b'{"seq":"1-a","id":"a","changes":[{"rev":"1-x"}]}\n')
    state.receive(b'{"seq":"2-a","id":"b","changes":[{"rev":"1-y"}]}\n')
    # b purged and written again with the same body, so the same rev: news on one connection.
    state.receive(b'{"seq":"3-a","id":"b","changes":[{"rev":"1-y"}]}\n')
    assert len(state.take(now=0.0)) == 3
    # Another node resumes from an older checkpoint: a and b again, then news.
    assert state.request().query["since"] == "3-a"
    state.receive(b'{"seq":"1-b","id":"a","changes":[{"rev":"1-x"}]}\n')
    state.receive(b'{"seq":"2-b","id":"b","changes":[{"rev":"1-y"}]}\n')
    assert state.since == "2-b" and state.pending == []
    state.receive(b'{"seq":"3-b","id":"a","changes":[{"rev":"2-z"}]}\n')
    assert [rows[0]["id"] for _, rows in state.take(now=0.0)] == ["a"]
    assert state.replayed == 2


def test_a_feed_from_one_server_keeps_no_memory_of_its_rows():
    """One server resumes where it was told: a row again is news, and nothing is kept."""
    state = FeedState("/db/_changes", {}, since="0", latency=0, heartbeat=5)
    state.request()
    state.receive(b'{"seq":1,"id":"a","changes":[{"rev":"1-x"}]}\n')
    state.request()
    state.receive(b'{"seq":2,"id":"a","changes":[{"rev":"1-x"}]}\n')
    assert [rows[0]["id"] for _, rows in state.take(now=0.0)] == ["a", "a"]
    assert state.replayed == 0


async def answer_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A stand-in node that answers every request 200."""
    await reader.readuntil(b"\r\n\r\n")
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
    await writer.drain()
    writer.close()


@pytest.mark.gen_test(timeout=60)
async def test_a_dead_node_is_skipped_then_probed_back_in(settee, db_name, bdb):
    dead = free_port()
    couch = Couch(f"http://127.0.0.1:{dead},{settee.url}", auth=settee.auth)
    cluster = couch.cluster
    assert cluster is not None
    cluster.probe_interval = 0.1
    try:
        db = couch[db_name]
        for n in range(4):  # refused on the dead node, so even a POST moves on
            doc = {"n": n}
            await db.save(doc)
            assert doc["_id"] and doc["_rev"]
        await db.save({"_id": "put"})
        assert (await db.get("put"))["_id"] == "put"
        assert not cluster.nodes[f"http://127.0.0.1:{dead}"].up
        assert cluster.nodes[settee.url].up and cluster.retried >= 1
        server = await asyncio.start_server(answer_up, "127.0.0.1", dead)
        try:
            for _ in range(50):
                if cluster.nodes[f"http://127.0.0.1:{dead}"].up:
                    break
                await asyncio.sleep(0.1)
            assert cluster.nodes[f"http://127.0.0.1:{dead}"].up, "the probe never saw it"
        finally:
            server.close()
    finally:
        await couch.close()
    assert (await asyncio.to_thread(bdb.info))["doc_count"] == 5


@pytest.mark.skip_on("embedded", reason="the embedded store is one process, never a cluster")
@pytest.mark.gen_test(timeout=60)
async def test_ready_and_metrics_show_each_node(start_settee, server_url):
    dead = f"http://127.0.0.1:{free_port()}"
    settee = start_settee(couch_url=f"{server_url},{dead}")
    for _ in range(4):  # round robin: the dead node is tried, and taken out
        assert (await settee.fetch("GET", "/_all_dbs")).code == 200
    ready = await settee.fetch("GET", "/_ready")
    assert ready.code == 200
    nodes = json.loads(ready.body)["nodes"]
    assert nodes[dead]["up"] is False and nodes[dead]["failures"] >= 1
    assert nodes[Endpoint.parse(server_url).url]["up"] is True
    metrics = (await settee.fetch("GET", "/_metrics")).body.decode()
    assert f'settee_upstream_node_up{{node="{dead}"}} 0.0' in metrics
    assert "settee_upstream_retries_total" in metrics


@pytest.mark.gen_test(timeout=30)
async def test_a_put_sent_again_after_a_closed_connection_is_not_taken_as_never_sent():
    """A node answers once, takes the next request on the kept-alive connection and dies: the
    pool sends the PUT again (it is idempotent in HTTP), is refused, and says the first try
    may have reached the node, so no other node is sent it."""
    taken: list[bytes] = []

    async def answer_once_then_die(reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
        await writer.drain()
        taken.append(await reader.readuntil(b"\r\n\r\n"))
        server.close()  # no more connections: the next try is refused
        writer.transport.abort()

    server = await asyncio.start_server(answer_once_then_die, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    pool = http1.Pool("127.0.0.1", port)
    try:
        assert (await pool.fetch("GET", "/", {}, None, timeout=5))[0] == 200
        with pytest.raises(ConnectionRefusedError) as refused:
            await pool.fetch("PUT", "/db/x", {}, b"{}", timeout=5)
        assert isinstance(refused.value.__cause__, http1.StaleConnection)
        assert taken and taken[0].startswith(b"PUT /db/x")
        assert not retryable(Request("PUT", "/db/x", body=b"{}"), unavailable(refused.value))
    finally:
        pool.close()
        server.close()
