"""settee in front of a real three-node CouchDB cluster, and what it does when a node dies.

One cluster for the module (``tests.cluster``: three nodes from the release COUCHDB_HOME
names; the module is skipped without one), and one settee process in front of it
(``--couch-url`` with the three node URLs). The kill test has 100 WebSocket subscribers and a
steady writer; one node is SIGKILLed, started again, then another is killed: every subscriber
must get every acknowledged change, readers must see no 5xx, the writer none beyond the one
write in flight on the killed node's connection, and ``/_ready`` must show the nodes.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import tempfile
import time
from typing import Any

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPResponse
from tornado.websocket import websocket_connect

from service.couch import Couch
from tests.cluster import CouchCluster
from tests.servers import SetteeServer, couchdb_release
from tests.sockets import established_to
from tests.test_hub_load import Collector

SUBSCRIBERS = 100
IDLE = 4.5  # seconds after which settee's client has closed its idle pooled connections


@pytest.fixture(scope="module")
def cluster():
    home = os.environ.get("COUCHDB_HOME")
    if not home:
        pytest.skip("a CouchDB cluster needs COUCHDB_HOME (a CouchDB release to start)")
    started = CouchCluster(couchdb_release(home)).start()
    yield started
    started.stop()


@pytest.fixture(scope="module")
def gateway(cluster):
    """settee in front of the three nodes, in a process of its own."""
    server = SetteeServer(
        couch_url=",".join(cluster.urls),
        args=("--couch-timeout", "10", "--heartbeat", "1"),
    ).start()
    yield server
    server.stop()
    shutil.rmtree(server.workdir, ignore_errors=True)


class Client:
    """HTTP requests to settee with the cluster admin's credentials; answers, never raises."""

    def __init__(self, gateway: SetteeServer, cluster: CouchCluster) -> None:
        self.base = f"http://127.0.0.1:{gateway.port}"
        node = cluster.nodes[0]
        token = base64.b64encode(f"{node.user}:{node.password}".encode()).decode()
        self.headers = {"Authorization": f"Basic {token}", "Content-Type": "application/json"}
        self.ws_base = f"ws://{node.user}:{node.password}@127.0.0.1:{gateway.port}"
        self.http = AsyncHTTPClient(force_instance=True, max_clients=20)

    async def call(self, method: str, path: str, body: Any = None) -> HTTPResponse:
        data = (
            json.dumps(body) if body is not None else (b"" if method in ("PUT", "POST") else None)
        )
        return await self.http.fetch(
            self.base + path,
            method=method,
            body=data,
            headers=self.headers,
            raise_error=False,
            request_timeout=30,
        )

    async def json(self, method: str, path: str, body: Any = None) -> Any:
        return json.loads((await self.call(method, path, body)).body)


class SteadyWriter:
    """PUTs documents one after another; a write that fails with 5xx is counted, then sent
    again as it was (a 409 then says the first one landed): either way it is acknowledged."""

    def __init__(self, client: Client, db: str) -> None:
        self.client, self.db = client, db
        self.acked: list[str] = []
        self.failed_in_flight: list[tuple[str, int]] = []
        self.landed_before_failing = 0
        self.running = True

    async def run(self, limit: int = 5_000) -> None:
        for n in range(limit):
            if not self.running:
                return
            doc_id = f"w{n:05}"
            while True:
                answer = await self.client.call("PUT", f"/{self.db}/{doc_id}", {"n": n})
                if answer.code in (201, 202):
                    break
                if answer.code == 409:  # sent again after a 5xx: the first one had landed
                    self.landed_before_failing += 1
                    break
                assert answer.code >= 500, (answer.code, answer.body)
                self.failed_in_flight.append((doc_id, answer.code))
                await asyncio.sleep(0.05)
            self.acked.append(doc_id)
            await asyncio.sleep(0.005)


class SteadyReader:
    """GETs the documents written so far, round and round, and counts the 5xx answers."""

    def __init__(self, client: Client, writer: SteadyWriter) -> None:
        self.client, self.writer = client, writer
        self.reads = 0
        self.errors: list[int] = []
        self.running = True

    async def run(self) -> None:
        while self.running:
            ids = self.writer.acked[-20:] or [None]
            for doc_id in ids:
                path = f"/{self.writer.db}/{doc_id}" if doc_id else f"/{self.writer.db}"
                answer = await self.client.call("GET", path)
                self.reads += 1
                if answer.code >= 500:
                    self.errors.append(answer.code)
            await asyncio.sleep(0.01)


async def node_states(client: Client) -> dict[str, bool]:
    ready = await client.json("GET", "/_ready")
    return {url: state["up"] for url, state in ready["nodes"].items()}


async def node_of_the_feed(gateway: SetteeServer, cluster: CouchCluster) -> int:
    """The index of the node settee's one upstream feed is connected to: once pooled
    connections have gone idle and closed, the only connection settee holds to a node."""
    assert gateway.process is not None
    await asyncio.sleep(IDLE)
    held = [len(established_to(node.port, gateway.process.pid)) for node in cluster.nodes]
    assert sorted(held) == [0, 0, 1], held
    return held.index(1)


async def wait_for_state(client: Client, url: str, up: bool, seconds: float = 20) -> float:
    """Seconds until ``/_ready`` shows node ``url`` up (or down)."""
    started = time.monotonic()
    while (await node_states(client))[url] != up:
        assert time.monotonic() - started < seconds, f"{url} never shown {'up' if up else 'down'}"
        await asyncio.sleep(0.1)
    return time.monotonic() - started


@pytest.mark.gen_test(timeout=120)
async def test_subscribers_and_clients_survive_the_death_of_nodes(
    cluster, gateway, record_property
):
    client = Client(gateway, cluster)
    assert (await client.call("PUT", "/kill")).code in (201, 202)
    ready = await client.json("GET", "/_ready")
    assert ready["status"] == "ok" and all(state["up"] for state in ready["nodes"].values())
    sockets = await asyncio.gather(
        *(
            websocket_connect(f"{client.ws_base}/kill/_changes?feed=websocket&since=0")
            for _ in range(SUBSCRIBERS)
        )
    )
    subscribers = [Collector(ws) for ws in sockets]
    # The first node killed is the one the subscribers' shared feed reads from.
    feeding = await node_of_the_feed(gateway, cluster)
    other = (feeding + 1) % len(cluster.nodes)
    first, second = cluster.nodes[feeding], cluster.nodes[other]
    first_url, second_url = cluster.plain_urls[feeding], cluster.plain_urls[other]
    writer = SteadyWriter(client, "kill")
    reader = SteadyReader(client, writer)
    writing = asyncio.ensure_future(writer.run())
    reading = asyncio.ensure_future(reader.run())
    started = time.monotonic()

    await asyncio.sleep(1.5)
    first.kill()
    shown_down = await wait_for_state(client, first_url, up=False)
    await asyncio.sleep(1.5)
    await asyncio.to_thread(first.start)
    shown_up = await wait_for_state(client, first_url, up=True)
    await asyncio.sleep(1.5)
    second.kill()
    second_shown_down = await wait_for_state(client, second_url, up=False)
    states_with_second_down = await node_states(client)
    await asyncio.sleep(1.5)
    writer.running = reader.running = False
    await writing
    await reading
    for subscriber in subscribers:
        await subscriber.wait_for(set(writer.acked), timeout=30)
    elapsed = time.monotonic() - started
    metrics = (await client.call("GET", "/_metrics")).body.decode()
    reconnects = next(
        float(line.split()[-1])
        for line in metrics.splitlines()
        if line.startswith("settee_upstream_reconnects_total")
    )
    await asyncio.to_thread(second.start)  # the module's cluster whole again
    await wait_for_state(client, second_url, up=True)

    got = [len(set(subscriber.ids) & set(writer.acked)) for subscriber in subscribers]
    duplicates = sum(len(s.ids) - len(set(s.ids)) for s in subscribers)
    figures = (
        f"{len(writer.acked)} writes acknowledged in {elapsed:.1f} s, "
        f"{reader.reads} reads; {SUBSCRIBERS} subscribers got {min(got)}..{max(got)} of them "
        f"({duplicates} duplicate rows in all); 5xx: reads {len(reader.errors)}, writes "
        f"{len(writer.failed_in_flight)} {writer.failed_in_flight} (in flight on a killed "
        f"node; {writer.landed_before_failing} of them had landed); node shown down after "
        f"{shown_down:.2f} s and {second_shown_down:.2f} s, up again {shown_up:.2f} s after "
        f"its restart; the shared feed resumed {reconnects:.0f} times on another node"
    )
    record_property("figures", figures)  # in the run's summary (conftest), -s or not
    print(f"\ncluster kill test: {figures}")
    print(
        "metrics: "
        + "; ".join(line for line in metrics.splitlines() if line.startswith("settee_upstream"))
    )
    assert min(got) == len(writer.acked), "a subscriber missed an acknowledged change"
    assert reconnects >= 1, "the shared feed never had to move"
    assert duplicates == 0, "a change replayed by the resumed feed reached a subscriber twice"
    assert not reader.errors, "a read failed while another node could answer"
    assert len(writer.failed_in_flight) <= 2, "more 5xx than writes in flight at the kills"
    assert states_with_second_down == {url: url != second_url for url in cluster.plain_urls}, (
        states_with_second_down
    )
    for subscriber in subscribers:
        assert subscriber.ws.close_code is None, "a subscriber was disconnected"
        subscriber.close()
    client.http.close()


async def whole_docs(db: Any) -> dict[str, dict]:
    """Every document of ``db`` with its conflicts, by id."""
    view = await db.view("_all_docs", include_docs=True, conflicts=True)
    return {row["id"]: dict(row["doc"]) for row in view}


@pytest.mark.gen_test(timeout=120)
async def test_an_embedded_database_moves_to_the_cluster_whole(cluster, gateway, record_property):
    """``_replicate`` from the embedded store to the cluster through settee: documents, their
    revisions and conflicts, and attachments arrive whole, and read the same on every node."""
    admin = cluster.nodes[0]
    directory = tempfile.mkdtemp(prefix="settee-move-")
    try:
        async with Couch(f"embedded:{directory}") as local:
            db = await local.db("moving", create_if_missing=True)
            for n in range(50):
                await db.save({"_id": f"doc-{n:02}", "n": n})
            doc = await db.get("doc-00")
            doc["n"] = "edited"
            await db.save(doc)
            await db.bulk_docs(
                [{"_id": "doc-01", "_rev": "2-" + "b" * 32, "n": "conflicting"}], new_edits=False
            )
            await db.put_attachment(await db.get("doc-02"), b"\x00\x01binary", "blob.bin")
            local_docs = await whole_docs(db)
            target = f"http://{admin.user}:{admin.password}@127.0.0.1:{gateway.port}/moved"
            result = await local.replicate("moving", target, create_target=True)
        assert result["ok"], result
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    assert local_docs["doc-01"].get("_conflicts")
    for node in cluster.nodes:
        async with Couch(node.url) as remote:
            moved = remote["moved"]
            docs = await whole_docs(moved)
            assert docs.keys() == local_docs.keys()
            for doc_id, doc in local_docs.items():
                assert docs[doc_id]["_rev"] == doc["_rev"], doc_id
                assert docs[doc_id].get("_conflicts") == doc.get("_conflicts"), doc_id
            assert docs["doc-00"]["n"] == "edited"
            blob = await moved.get_attachment("doc-02", "blob.bin")
            assert bytes(blob) == b"\x00\x01binary"
    moved = f"{len(local_docs)} documents with their revisions, conflicts and attachment"
    record_property("figures", f"embedded -> cluster: {moved}, read whole on all three nodes")
