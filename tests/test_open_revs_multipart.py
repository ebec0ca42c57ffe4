"""``GET /db/doc?open_revs=…`` with ``Accept: multipart/mixed``, as CouchDB 3.4.3 answers its
replicator: one part per revision, a revision with attachments a ``multipart/related`` part
of its own, a missing one an ``error="true"`` part; and the embedded store sends it in steps,
one attachment's content in memory at a time.
"""

from __future__ import annotations

import base64
import json
import re
import tracemalloc
from urllib.parse import quote

import pytest

from service.couch import Couch, blocking
from service.store.router import Server
from service.store.store import Store
from tests.conftest import answer
from tests.servers import CouchServer
from tests.test_replicate import db_url

pytestmark = pytest.mark.skip_on(
    "pouchdb", reason="pouchdb-server answers open_revs in JSON whatever the Accept header"
)

BLOB = bytes(range(256)) * 400  # 100 KiB, with CR, LF and dashes in it
MIXED = {"Accept": "multipart/mixed"}


def parts(content_type: str, body: bytes) -> list[tuple[dict[str, str], bytes]]:
    """The parts of a multipart body: each one's headers (lower-case names) and content."""
    boundary = re.search(r'boundary="?([^";]+)"?', content_type)[1].encode()
    pieces = (b"\r\n" + body).split(b"\r\n--" + boundary)
    assert pieces[0] == b"" and pieces[-1].rstrip(b"\r\n") == b"--", pieces[-1][:20]
    found = []
    for piece in pieces[1:-1]:
        head, blank, content = piece.partition(b"\r\n\r\n")
        assert blank, piece[:80]
        lines = head.decode().split("\r\n")[1:]
        headers = {k.lower(): v for k, _, v in (line.partition(": ") for line in lines)}
        found.append((headers, content))
    return found


@pytest.fixture
def branched(bdb):
    """A document with two leaves: ``2-b…`` with an attachment, ``2-c…`` without."""
    first, with_att, without = f"1-{'a' * 32}", f"2-{'b' * 32}", f"2-{'c' * 32}"
    data = base64.b64encode(BLOB).decode()
    history = {"start": 2, "ids": ["b" * 32, "a" * 32]}
    bdb.bulk_docs(
        [
            {"_id": "d", "_rev": first, "n": 1},
            {
                "_id": "d",
                "_rev": with_att,
                "n": 2,
                "_revisions": history,
                "_attachments": {"blob.bin": {"content_type": "application/x-y", "data": data}},
            },
            {
                "_id": "d",
                "_rev": without,
                "n": 3,
                "_revisions": {**history, "ids": ["c" * 32, "a" * 32]},
            },
        ],
        new_edits=False,
    )
    return bdb.name, first, with_att, without


async def get(settee, path: str, headers=MIXED):
    return await settee.fetch("GET", path, headers=headers)


@pytest.mark.gen_test(timeout=60)
async def test_each_revision_is_a_part_and_attachments_follow(settee, branched):
    db, _, with_att, without = branched
    asked = quote(json.dumps([with_att, without, "9-" + "f" * 32]))
    response = await get(settee, f"/{db}/d?open_revs={asked}")
    assert response.code == 200, response.body
    content_type = response.headers["Content-Type"]
    assert content_type.startswith("multipart/mixed; boundary=")
    (related_head, related), (plain_head, plain), (missing_head, missing) = parts(
        content_type, response.body
    )
    assert related_head["content-type"].startswith("multipart/related; boundary=")
    (doc_head, doc_json), (att_head, att_data) = parts(related_head["content-type"], related)
    assert doc_head["content-type"] == "application/json"
    doc = json.loads(doc_json)
    assert (doc["_rev"], doc["n"]) == (with_att, 2)
    stub = doc["_attachments"]["blob.bin"]
    assert stub["follows"] is True and stub["length"] == len(BLOB) and "stub" not in stub
    assert att_head["content-disposition"] == 'attachment; filename="blob.bin"'
    assert att_head["content-type"] == "application/x-y"
    assert att_head["content-length"] == str(len(BLOB)) and att_data == BLOB
    assert plain_head["content-type"] == "application/json"
    assert json.loads(plain) == {"_id": "d", "_rev": without, "n": 3}
    assert missing_head["content-type"] == 'application/json; error="true"'
    assert json.loads(missing) == {"missing": "9-" + "f" * 32}


@pytest.mark.gen_test(timeout=60)
async def test_revs_latest_and_atts_since(settee, branched):
    db, first, with_att, without = branched
    asked = quote(json.dumps([first]))
    response = await get(settee, f"/{db}/d?open_revs={asked}&latest=true&revs=true")
    assert response.code == 200, response.body
    found = parts(response.headers["Content-Type"], response.body)
    assert len(found) == 2  # both leaves below the rev asked for
    docs = []
    for head, content in found:
        if head["content-type"].startswith("multipart/related"):
            content = parts(head["content-type"], content)[0][1]
        docs.append(json.loads(content))
    assert sorted(doc["_rev"] for doc in docs) == sorted([with_att, without])
    assert all(doc["_revisions"]["ids"][-1] == "a" * 32 for doc in docs)

    since = quote(json.dumps([with_att]))  # the reader has this revision's attachments
    response = await get(
        settee, f"/{db}/d?open_revs={quote(json.dumps([with_att]))}&atts_since={since}"
    )
    ((head, content),) = parts(response.headers["Content-Type"], response.body)
    assert head["content-type"] == "application/json"
    assert json.loads(content)["_attachments"]["blob.bin"]["stub"] is True


@pytest.mark.gen_test(timeout=60)
async def test_malformed_open_revs_get_couchdbs_answers(settee, branched):
    db = branched[0]
    for asked, reason in [
        ("foo", "invalid UTF-8 JSON"),
        (quote('"x"'), "Invalid list of revisions"),
        (quote("{}"), "Invalid list of revisions"),
        (quote('["bad"]'), "Invalid rev format"),
        (quote("[1]"), "Invalid rev format"),
    ]:
        for accept in (MIXED, {"Accept": "application/json"}):
            response = await get(settee, f"/{db}/d?open_revs={asked}", accept)
            assert (response.code, answer(response)) == (
                400,
                {"error": "bad_request", "reason": reason},
            ), asked
    response = await get(settee, f"/{db}/d?open_revs=[]")  # none asked: the document
    assert response.code == 200 and answer(response)["_id"] == "d"
    response = await get(settee, f"/{db}/nosuch?open_revs=all")
    assert (response.code, answer(response)["reason"]) == (404, "missing")
    asked = quote(json.dumps(["1-" + "a" * 32]))
    response = await get(settee, f"/{db}/nosuch?open_revs={asked}")
    ((_, content),) = parts(response.headers["Content-Type"], response.body)
    assert json.loads(content) == {"missing": "1-" + "a" * 32}


@pytest.mark.gen_test(timeout=120)
async def test_couchdbs_replicator_reads_every_leaf_and_attachment(settee, branched, couchdb_home):
    """A CouchDB node pulls the document through settee, reading it with open_revs (its
    ``use_bulk_get: false``): both leaves arrive, with the attachment's bytes."""
    db, _, with_att, without = branched
    node = CouchServer(couchdb_home).start()
    try:
        couch = Couch(node.url)  # async: this thread's loop serves settee meanwhile
        try:
            result = await couch.replicate(
                db_url(settee, db), f"{node.url}/copy", create_target=True, use_bulk_get=False
            )
        finally:
            await couch.close()
        assert result["ok"] and result["history"][0]["docs_written"] == 2, result
        copy = blocking.Database(f"{node.url}/copy")
        leaves = copy.get("d", open_revs="all", revs=True, attachments=True)
        by_rev = {leaf["ok"]["_rev"]: leaf["ok"] for leaf in leaves}
        assert set(by_rev) == {with_att, without}
        data = by_rev[with_att]["_attachments"]["blob.bin"]["data"]
        assert base64.b64decode(data) == BLOB
        assert by_rev[without]["n"] == 3 and "_attachments" not in by_rev[without]
    finally:
        node.stop()


def test_the_store_holds_one_attachment_at_a_time(tmp_path):
    """Eight leaves with a 1 MiB attachment each: the answer is 8 MiB, the most memory
    held while it is read is about one attachment's."""
    size = 2**20
    store = Store.acquire(tmp_path)
    try:
        server = Server(store)
        assert server.handle("PUT", "/big", {}, b"").status == 201
        docs = [
            {
                "_id": "d",
                "_rev": f"1-{n:032x}",
                "_attachments": {
                    "a.bin": {
                        "content_type": "application/x-y",
                        "data": base64.b64encode(bytes([n]) * size).decode(),
                    }
                },
            }
            for n in range(8)
        ]
        body = json.dumps({"docs": docs, "new_edits": False}).encode()
        assert server.handle("POST", "/big/_bulk_docs", {}, body).status == 201
        del docs, body
        tracemalloc.start()
        reply = server.handle("GET", "/big/d?open_revs=all", {"accept": "multipart/mixed"}, b"")
        sent = 0
        while (chunk := reply.stream.step(0.0)[0]) is not None:
            sent += len(chunk)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert sent > 8 * size
        assert peak < 3 * size, f"{peak / size:.1f} MiB held"
    finally:
        store.release()
