"""The embedded store's seqs: one per write, increasing, recorded once per commit.

A transaction hands out seqs from a counter and records the last one when it commits; a
document that fails in a group (its savepoint rolled back) leaves a gap, never a seq given
twice, and the database's ``update_seq`` is the seq of its last write."""

from __future__ import annotations

import json

from service.store.router import Server
from service.store.store import Store


def test_a_failure_mid_group_leaves_seqs_increasing_and_update_seq_last(tmp_path):
    store = Store.acquire(tmp_path)
    try:
        server = Server(store)

        def call(method: str, path: str, body: object = None) -> object:
            data = b"" if body is None else json.dumps(body).encode()
            reply = server.handle(method, path, {"content-type": "application/json"}, data)
            chunks = [reply.body]
            while reply.stream is not None and (chunk := reply.stream.step(0.0)[0]) is not None:
                chunks.append(chunk)
            return json.loads(b"".join(chunks))

        call("PUT", "/seqs")
        call("PUT", "/seqs/taken", {})
        results = call(
            "POST", "/seqs/_bulk_docs", {"docs": [{"_id": "a"}, {"_id": "taken"}, {"_id": "c"}]}
        )
        assert [r.get("error") for r in results] == [None, "conflict", None]
        rows = call("GET", "/seqs/_changes")["results"]
        seqs = [row["seq"] for row in rows]
        assert [row["id"] for row in rows] == ["taken", "a", "c"]
        assert seqs == sorted(set(seqs))
        assert call("GET", "/seqs")["update_seq"] == seqs[-1]
        call("PUT", "/seqs/later", {})
        later = call("GET", f"/seqs/_changes?since={seqs[-1]}")["results"]
        assert [row["id"] for row in later] == ["later"]
        assert later[0]["seq"] > seqs[-1]
        assert call("GET", "/seqs")["update_seq"] == later[0]["seq"]
    finally:
        store.release()
